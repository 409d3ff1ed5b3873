#!/bin/sh
# Install what pushrelay needs, build it with warnings as errors and the
# sanitizers, and run the whole test suite (make check, then make
# distcheck). This is the README's test command, and what CI runs.
#
#   contrib/test.sh            everything
#   SKIP_INSTALL=1 contrib/test.sh   when the packages are already there
#   SKIP_DISTCHECK=1 contrib/test.sh skip the distcheck pass
#   SKIP_FUZZ=1 contrib/test.sh      skip the fuzzing (FUZZ_SECONDS=60 each)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
	sh contrib/install-deps.sh
fi

# playwright-core for the dashboard test (tests/check_dashboard.sh), into
# tests/dashboard/node_modules; it drives /usr/bin/chromium and downloads
# no browser of its own. 1.61 is the last release that runs on Debian 12's
# node 18.
if [ ! -d tests/dashboard/node_modules/playwright-core ]; then
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-audit \
		--no-fund --prefix tests/dashboard playwright-core@1.61
fi

jobs=$(nproc 2>/dev/null || echo 2)
flags="--enable-werror --enable-sanitizers"

autoreconf -fi >/dev/null
# shellcheck disable=SC2086
./configure $flags
make -j"$jobs"

status=0
# CI must run the browser test, not skip it (distcheck's copy of the tree
# has no node_modules, so there it is skipped).
PR_REQUIRE_DASHBOARD=1 make -j"$jobs" check || status=$?

# Check's own summary for every test program, then one total line.
passed=0
failed=0
for log in tests/check_*.log; do
	[ -f "$log" ] || continue
	echo "== ${log%.log}"
	grep -E '^[0-9]+%: Checks: ' "$log" || true
	grep -E ':[FE]:' "$log" || true
	line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1 || true)
	if [ -z "$line" ]; then
		# A script test (the dashboard): its last "N passed, N failed".
		grep -E '^(PASS|FAIL|SKIP): ' "$log" || true
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
		if [ -n "$line" ]; then
			set -- $line
			passed=$((passed + $1))
			failed=$((failed + $3))
		fi
	elif [ -n "$line" ]; then
		n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/')
		set -- $n
		passed=$((passed + $1 - $2 - $3))
		failed=$((failed + $2 + $3))
	fi
done
if [ "$status" -ne 0 ]; then
	for log in tests/check_*.log; do
		grep -q -E '^(FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null || continue
		echo "== $log (failed)"
		tail -n 60 "$log"
	done
fi
echo "checks: $passed passed, $failed failed"
[ "$status" -eq 0 ] || exit "$status"

# Fuzz every libFuzzer target for FUZZ_SECONDS (clang; tests/fuzz/README.md).
# A crash fails the run and leaves its reproducer in tests/fuzz/.
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
	make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
fi

if [ "${SKIP_DISTCHECK:-0}" != 1 ]; then
	make -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS="$flags"
fi

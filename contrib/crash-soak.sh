#!/bin/sh
# crash-soak.sh - kill pushrelayd with SIGKILL and start it again, over and
# over, under mixed load (ingest, pushes to the mock APNs/FCM, inbox fetches
# and acks), and check that nothing answered 202 was lost and nothing
# acknowledged came back. It runs tests/check_soak (its "crash" case) from a
# build directory for CYCLES kills, each after up to SECONDS of load, and
# prints a table per cycle and the totals.
#
#   contrib/crash-soak.sh BUILD_DIR [CYCLES [SECONDS]]
#
# BUILD_DIR is a configured build (in or out of tree); the programs the soak
# needs are made there if missing. CYCLES defaults to 50, SECONDS to 2.5.
# SOAK_SEED=N repeats a run's choices; SOAK_DEBUG=1 prints every failed
# request; TH_KEEP=1 keeps the daemon's directory (database, log). The full
# output goes to BUILD_DIR/crash-soak.log. Exit status: 0 when every check
# held.
set -eu

usage() {
	echo "usage: $0 BUILD_DIR [CYCLES [SECONDS]]" >&2
	exit 2
}

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
	usage
fi
build=$(cd "$1" && pwd) || usage
cycles=${2:-50}
seconds=${3:-2.5}
case $cycles in '' | *[!0-9]*) usage ;; esac
case $seconds in '' | *[!0-9.]*) usage ;; esac
srcdir=$(cd "$(dirname "$0")/.." && pwd)

for p in pushrelayd pushrelayctl tests/mock/pr-mock tests/check_soak; do
	if [ ! -x "$build/$p" ]; then
		echo "crash-soak: making $p in $build" >&2
		make -C "$build" "$p" >/dev/null
	fi
done

# A directory of its own: the daemon's and the mock's files live there.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/crash-soak.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -z "${TH_KEEP:-}" ]; then
		rm -rf "$tmp"
	else
		echo "crash-soak: kept $tmp" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log=$build/crash-soak.log
echo "crash-soak: $cycles cycles of up to ${seconds}s against $build (log: $log)"
status=0
TMPDIR=$tmp \
	PUSHRELAYD=$build/pushrelayd \
	PUSHRELAYCTL=$build/pushrelayctl \
	PR_MOCK=$build/tests/mock/pr-mock \
	PR_SRCDIR=$srcdir \
	SOAK_CYCLES=$cycles \
	SOAK_SECONDS=$seconds \
	CK_RUN_CASE=crash \
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$build/tests/check_soak" >"$log" 2>&1 || status=$?

# "soak: cycle 3/50: killed after 1.81s, back in 0.25s; events 2312 (+699),
# unknown 15, fetches 1465, acks 921, pushes 2210, violations 0; at 5.2s"
awk '
/^soak: cycle / {
	if (!head++) {
		printf "%6s %7s %6s %6s %7s %6s %7s %7s %7s %7s %5s\n",
		    "cycle", "at s", "ran s", "down s", "events", "new",
		    "unknown", "fetches", "acks", "pushes", "viol"
	}
	line = $0
	sub(/^soak: cycle /, "", line)
	gsub(/[^0-9. ]/, " ", line)
	n = split(line, f, " ")
	if (n >= 12)
		printf "%6s %7s %6s %6s %7s %6s %7s %7s %7s %7s %5s\n", f[1],
		    f[12], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11]
}
/^soak: summary / {
	print ""
	print "totals"
	for (i = 3; i <= NF; i++) {
		split($i, kv, "=")
		printf "  %-28s %s\n", kv[1], kv[2]
	}
}
' "$log"

if [ "$status" -eq 0 ]; then
	echo "crash-soak: PASS ($cycles kills, nothing lost, nothing redelivered)"
else
	echo "crash-soak: FAIL (exit $status); the first problems:" >&2
	grep -E "VIOLATION|Assertion|ERROR|%: Checks" "$log" | head -30 >&2 || true
fi
exit "$status"

#!/bin/sh
# Run integration test programs with every pushrelayd they start under
# valgrind memcheck, then fail if any daemon reported a memory error or a
# definite leak. CI checks memory with ASan + LeakSanitizer instead (much
# faster); this is the second opinion, for a build WITHOUT the sanitizers:
#
#   mkdir /tmp/bv && cd /tmp/bv && /path/to/configure && make && cd -
#   contrib/valgrind-check.sh /tmp/bv                 # the default set
#   contrib/valgrind-check.sh /tmp/bv check_dispatch  # chosen programs
#
# Daemons the tests stop with SIGKILL report errors but cannot report
# leaks; those stopped with SIGTERM report both.
set -eu

build=${1:?usage: contrib/valgrind-check.sh BUILD_DIR [check_X...]}
shift
build=$(cd "$build" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 2; }
if [ $# -eq 0 ]; then
	set -- check_ingest check_inbox check_dispatch check_admin \
		check_webhook check_metrics check_secrets
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/vg" "$work/tmp"
cat > "$work/pushrelayd" <<WRAP
#!/bin/sh
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \\
	--show-leak-kinds=definite,indirect \\
	--errors-for-leak-kinds=definite,indirect \\
	--log-file=$work/vg/%p.log $build/pushrelayd "\$@"
WRAP
chmod +x "$work/pushrelayd"

status=0
for t in "$@"; do
	make -C "$build" "tests/$t" >/dev/null
	printf '%-16s ' "$t"
	if PUSHRELAYD=$work/pushrelayd PUSHRELAYCTL=$build/pushrelayctl \
	    PR_SRCDIR=$src PR_MOCK=$build/tests/mock/pr-mock \
	    CK_DEFAULT_TIMEOUT=300 TMPDIR=$work/tmp \
	    "$build/tests/$t" > "$work/$t.out" 2>&1; then
		grep -E '^[0-9]+%: Checks' "$work/$t.out" || echo
	else
		echo "FAILED under valgrind:"
		tail -n 20 "$work/$t.out"
		status=1
	fi
done

runs=$(find "$work/vg" -name '*.log' | wc -l)
bad=$(grep -l -E 'Invalid (read|write|free)|uninitialised|Conditional jump|Syscall param|Mismatched free|definitely lost: [1-9]|indirectly lost: [1-9]' \
	"$work"/vg/*.log 2>/dev/null || true)
exited=$(grep -l 'ERROR SUMMARY' "$work"/vg/*.log 2>/dev/null | wc -l)
echo "daemons run under memcheck: $runs ($exited exited and checked for leaks)"
if [ -n "$bad" ]; then
	for f in $bad; do
		echo "== $f"
		cat "$f"
	done
	echo "valgrind: errors in $(echo "$bad" | wc -l) daemon(s)"
	exit 1
fi
echo "valgrind: no memory errors, no definite or indirect leaks"
exit "$status"

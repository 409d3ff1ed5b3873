#!/bin/sh
# Replay every fuzz target's corpus (tests/fuzz/corpus/<target>/: the seeds
# and every reproducer of a fixed crash) through the target's entry point,
# built by make check with gcc and the configured sanitizers. A crash,
# sanitizer report or leak fails the test. `make fuzz` is the fuzzing
# itself (clang + libFuzzer); this keeps its findings fixed everywhere.
set -u

src=${PR_SRCDIR:?PR_SRCDIR is not set (run through make check)}
pass=0
fail=0
for t in http1 http2 event_json client_token config apns_response \
	fcm_response; do
	corpus=$src/tests/fuzz/corpus/fuzz_$t
	if ! [ -d "$corpus" ] || [ -z "$(ls "$corpus")" ]; then
		echo "FAIL: fuzz_$t: no corpus in $corpus"
		fail=$((fail + 1))
	elif ./tests/fuzz/replay_$t "$corpus"; then
		echo "PASS: fuzz_$t"
		pass=$((pass + 1))
	else
		echo "FAIL: fuzz_$t (exit $?)"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/bin/sh
# No secret in any daemon log of the whole suite. The harness keeps a copy
# of every pushrelayd log in $PR_LOG_COLLECT and writes every secret it
# handed a daemon to $PR_LOG_COLLECT/secrets.list: API keys, client-token
# and webhook secrets, key passwords, and the lines of each private key a
# config names. make check runs this after every other test (Makefile.am
# makes its log depend on theirs). Besides those exact secrets, the logs
# are searched for the shapes of secrets: API keys, JWTs, OAuth access
# tokens, PEM private keys and bearer credentials.
set -u

dir=${PR_LOG_COLLECT:?PR_LOG_COLLECT is not set (run through make check)}
fail=0
pass=0

ok() {
	echo "PASS: $1"
	pass=$((pass + 1))
}
bad() {
	echo "FAIL: $1"
	fail=$((fail + 1))
}

# Extended regexps for secrets of any test, including ones the harness
# never saw (JWTs the relay mints, OAuth tokens the mock issues).
patterns='prk_[A-Za-z0-9_-]{20,}
eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}
ya29\.[A-Za-z0-9_.-]{8,}
-----BEGIN [A-Z ]*PRIVATE KEY-----
[Bb]earer [A-Za-z0-9._~+/-]{16,}
"private_key" *:'

# The patterns must match what they are meant to match, or this test could
# never fail.
sample=$(mktemp) || exit 1
trap 'rm -f "$sample" "$sample.secrets"' EXIT
cat > "$sample" <<'SAMPLE'
key prk_Q2hlY2tpbmcgdGhlIHBhdHRlcm5zIHdvcmsu
jwt eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJURUFNMTIzNDU2In0.c2ln
oauth ya29.mock-0123456789abcdef
-----BEGIN PRIVATE KEY-----
Authorization: Bearer 0123456789abcdefghij
{"private_key": "x"}
SAMPLE
n=$(printf '%s\n' "$patterns" | wc -l)
found=0
while IFS= read -r re; do
	grep -Eq -e "$re" "$sample" && found=$((found + 1))
done <<EOF2
$patterns
EOF2
if [ "$found" -eq "$n" ]; then
	ok "the $n secret patterns match their samples"
else
	bad "only $found of $n secret patterns match their samples"
fi

logs=$(find "$dir" -name '*.log' -type f 2>/dev/null | sort)
nlogs=$(printf '%s' "$logs" | grep -c . || true)
# The suite starts well over a hundred daemons; a handful means the
# collection broke, and then this test would pass on nothing.
if [ "$nlogs" -ge 20 ]; then
	ok "$nlogs daemon logs collected"
else
	bad "only $nlogs daemon logs in $dir (run the whole suite first)"
fi

list=$dir/secrets.list
nsec=0
if [ -s "$list" ]; then
	sort -u "$list" > "$sample.secrets"
	nsec=$(wc -l < "$sample.secrets")
fi
if [ "$nsec" -ge 10 ]; then
	ok "$nsec distinct secrets recorded by the harness"
else
	bad "only $nsec secrets recorded in $list"
fi

# Exact secrets: print where, never the secret itself.
if [ "$nsec" -gt 0 ] && [ "$nlogs" -gt 0 ]; then
	hits=$(printf '%s\n' "$logs" | xargs grep -F -l -f "$sample.secrets" || true)
	if [ -z "$hits" ]; then
		ok "no recorded secret in any log"
	else
		bad "a recorded secret appears in: $(echo $hits)"
	fi
fi

# Shapes of secrets.
while IFS= read -r re; do
	[ -n "$re" ] || continue
	[ "$nlogs" -gt 0 ] || break
	hits=$(printf '%s\n' "$logs" | xargs grep -E -l -e "$re" || true)
	if [ -z "$hits" ]; then
		ok "no log matches /$re/"
	else
		bad "/$re/ matches in: $(echo $hits)"
		printf '%s\n' "$logs" | xargs grep -E -h -o -e "$re" |
			cut -c1-12 | sed 's/$/... (cut)/' | head -n 5
	fi
done <<EOF2
$patterns
EOF2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

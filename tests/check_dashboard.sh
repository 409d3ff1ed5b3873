#!/bin/sh
# The admin dashboard (GET /admin/) in headless Chromium. Starts the mock
# APNs/FCM server and pushrelayd (admin on a Unix socket and on a loopback
# TCP port with an admin key), makes one push dead, then runs
# tests/dashboard/dashboard.test.mjs (playwright-core driving Debian's
# /usr/bin/chromium): the page's numbers must match the API, and its Retry
# button must requeue the dead job.
#
# Needs node, playwright-core (npm install --prefix tests/dashboard
# playwright-core@1.61, as contrib/test.sh does) and chromium. Without them
# the test is skipped (77), unless PR_REQUIRE_DASHBOARD=1 (CI): then it fails.
set -u

srcdir=${PR_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
PUSHRELAYD=${PUSHRELAYD:-./pushrelayd}
PR_MOCK=${PR_MOCK:-./tests/mock/pr-mock}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
passed=0
failed=0

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] && exit 0
	exit 1
}
skip() {
	if [ "${PR_REQUIRE_DASHBOARD:-0}" = 1 ]; then
		echo "FAIL: $1 (PR_REQUIRE_DASHBOARD=1)"
		failed=$((failed + 1))
		finish
	fi
	echo "SKIP: $1"
	exit 77
}
ok() { echo "PASS: $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); finish; }

command -v node >/dev/null 2>&1 || skip "node not installed"
command -v curl >/dev/null 2>&1 || skip "curl not installed"
command -v python3 >/dev/null 2>&1 || skip "python3 not installed"
[ -x "$CHROMIUM" ] || skip "$CHROMIUM not installed"
[ -d "$srcdir/tests/dashboard/node_modules/playwright-core" ] ||
	skip "playwright-core not installed in $srcdir/tests/dashboard"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pr-dash.XXXXXX") || exit 1
chmod 700 "$tmp"
mock_pid=
relay_pid=
cleanup() {
	[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null
	[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
	[ -n "$relay_pid" ] && wait "$relay_pid" 2>/dev/null
	[ -n "$mock_pid" ] && wait "$mock_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Three free loopback ports (a small race, but the kernel rarely reuses).
set -- $(python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
mock_port=$1
api_port=$2
admin_port=$3

"$PR_MOCK" --make-credentials "$tmp/mock" >/dev/null || bad "pr-mock --make-credentials"
"$PR_MOCK" --listen "127.0.0.1:$mock_port" --cert "$tmp/mock/tls.crt" \
	--key "$tmp/mock/tls.key" --apns-key "$tmp/mock/AuthKey_TESTKEY001.p8" \
	--apns-key-id TESTKEY001 --apns-team-id TEAM123456 \
	--fcm-credentials "$tmp/mock/service-account.json" \
	>"$tmp/mock.log" 2>&1 &
mock_pid=$!

cat >"$tmp/pushrelay.conf" <<CONF
[server]
listen = 127.0.0.1:$api_port

[admin]
listen = unix:$tmp/admin.sock
listen = 127.0.0.1:$admin_port

[storage]
path = $tmp/pushrelay.db

[log]
level = info

[push]
max_attempts = 1

[app "chat"]
push_mode = alert
client_token_secret = dashboard-test-client-token-secret-0123456789
apns_key_file = $tmp/mock/AuthKey_TESTKEY001.p8
apns_key_id = TESTKEY001
apns_team_id = TEAM123456
apns_topic = com.example.chat
apns_url = https://127.0.0.1:$mock_port
apns_sandbox_url = https://127.0.0.1:$mock_port
fcm_credentials = $tmp/mock/service-account.json
fcm_url = https://127.0.0.1:$mock_port
fcm_token_url = https://127.0.0.1:$mock_port/token
ca_file = $tmp/mock/tls.crt
CONF

"$PUSHRELAYD" -c "$tmp/pushrelay.conf" >"$tmp/relay.log" 2>&1 &
relay_pid=$!

# wait_for SECONDS COMMAND...: retry every 0.2 s until it succeeds.
wait_for() {
	n=$(($1 * 5))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		n=$((n - 1))
	done
	return 1
}
mockc() { curl -sS -m 5 --cacert "$tmp/mock/tls.crt" "$@"; }
admin() { curl -sS -m 5 --unix-socket "$tmp/admin.sock" "$@"; }
relay_up() { curl -sf -m 2 "http://127.0.0.1:$api_port/healthz"; }

wait_for 20 mockc -f "https://127.0.0.1:$mock_port/mock/stats" ||
	{ cat "$tmp/mock.log"; bad "pr-mock did not start"; }
wait_for 30 admin -f http://admin/v1/admin/stats ||
	{ cat "$tmp/relay.log"; bad "pushrelayd did not start"; }
ok "mock and relay started"

code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$api_port/admin/")
[ "$code" = 404 ] || bad "GET /admin/ on the public listener: $code, want 404"
code=$(admin -o /dev/null -w '%{http_code} %{redirect_url}' http://admin/admin)
[ "$code" = "301 http://admin/admin/" ] || bad "GET /admin on the admin socket: $code"
admin -f -D "$tmp/h" -o "$tmp/page.html" http://admin/admin/ || bad "GET /admin/ on the admin socket"
grep -qi '^content-security-policy:' "$tmp/h" && ! grep -Eqi '(src|href)="(https?:)?//' "$tmp/page.html" ||
	bad "the page has no CSP or loads an external resource"
ok "page on the admin listener only, self-contained"

key_of() { sed -n 's/.*"key" *: *"\([^"]*\)".*/\1/p'; }
admin_key=$(admin -X POST -H 'Content-Type: application/json' \
	-d '{"name":"dashboard","scope":"admin"}' http://admin/v1/admin/keys | key_of)
ingest_key=$(admin -X POST -H 'Content-Type: application/json' \
	-d '{"name":"ingest","scope":"ingest"}' http://admin/v1/admin/keys | key_of)
[ -n "$admin_key" ] && [ -n "$ingest_key" ] || bad "create keys"

token=a1b2c3d4e5f60718293a4b5c6d7e8f90
mockc -f -X POST -H 'Content-Type: application/json' \
	-d "{\"token\":\"$token\",\"status\":503,\"times\":1}" \
	"https://127.0.0.1:$mock_port/mock/script" >/dev/null || bad "mock rule"
curl -sSf -m 5 -X PUT "http://127.0.0.1:$api_port/v1/devices/phone-1" \
	-H "Authorization: Bearer $ingest_key" -H 'Content-Type: application/json' \
	-d "{\"user\":\"alice\",\"platform\":\"apns\",\"token\":\"$token\"}" \
	>/dev/null || bad "register device"
curl -sSf -m 5 "http://127.0.0.1:$api_port/v1/events" \
	-H "Authorization: Bearer $ingest_key" -H 'Content-Type: application/json' \
	-d '{"id":"m-dead-1","user":"alice","payload":{"text":"hi"},"push":{"mode":"alert","title":"Bob","body":"hi <b>&amp;</b>"}}' \
	>/dev/null || bad "post event"
dead_now() { admin -f http://admin/v1/admin/stats | grep -q '"dead": *[1-9]'; }
wait_for 30 dead_now || { admin http://admin/v1/admin/stats; cat "$tmp/relay.log"; bad "push did not go dead"; }
ok "one push is dead"

work="$tmp/browser"
mkdir -p "$work"
if PR_DASH_URL="http://127.0.0.1:$admin_port/admin/" PR_DASH_KEY="$admin_key" \
	PR_DASH_PROFILE="$work/profile" PR_DASH_SCREENSHOT="${PR_DASH_SCREENSHOT:-}" \
	CHROMIUM="$CHROMIUM" NODE_PATH="$srcdir/tests/dashboard/node_modules" \
	timeout 120 node "$srcdir/tests/dashboard/dashboard.test.mjs"; then
	ok "dashboard in headless chromium"
else
	echo "--- relay log"; tail -n 40 "$tmp/relay.log"
	bad "dashboard in headless chromium"
fi
finish

#!/bin/sh
# shellcheck disable=SC2046
# The inbox as a reconnecting app sees it, against a pushrelayd built
# without sanitizers:
#
#  - drain rate: messages/s served to one client that fetches a backlog of
#    MESSAGES messages with GET /v1/inbox?after=N&limit=LIMIT page by page
#    over one keep-alive connection (after = the previous page's next)
#    until "more" is false; read-only, so repeated RUNS times (best and
#    median); then RUNS runs more, each on a fresh backlog of its own, with
#    POST /v1/inbox/ack {"up_to":next} after each page, as a real app does;
#  - live latency: CLIENTS WebSocket streams (GET /v1/stream, one user,
#    device and client token each) connected at once, then single events
#    posted at a steady RATE/s for DURATION s over HTTP/1.1 keep-alive, each
#    to a random connected user; the time from writing the POST to the
#    frame carrying that event id arriving, p50/p99/max, and the events
#    lost (answered 202 but no frame within LOST_AFTER s: must be 0).
#
# contrib/bench/ws-load.py (Python 3, standard library only) is the client
# for both. Loopback only; every step is capped in count and in time.
#
#   contrib/bench/inbox-bench.sh            build build/bench, run, print a table
#   QUICK=1 contrib/bench/inbox-bench.sh    2,000 messages, 100 clients, 3 s
#   CLIENTS=2000 RATE=500 contrib/bench/inbox-bench.sh
#   PUSHRELAYD=/path/to/pushrelayd PUSHRELAYCTL=/path/to/pushrelayctl ...
#
# Knobs (defaults; QUICK=1 shrinks the sizes):
#   MESSAGES=10000   backlog for the drain (QUICK: 2000)
#   LIMIT=500        limit= of each inbox page ([inbox] max_limit is 500)
#   RUNS=3           read-only drains; best and median are shown
#   CLIENTS=1000     WebSocket streams for the live test (QUICK: 100)
#   RATE=200         events/s posted during the live test
#   DURATION=10      seconds of posting (QUICK: 3)
#   POSTERS=16       keep-alive connections the events are posted over
#   WS_ACK=1         clients answer every frame with {"ack":seq}; 0: never
#   LOST_AFTER=5     seconds a frame may take before its event counts lost
#   RUN_SECONDS=120  time cap of each ws-load command (the live test: on top
#                    of its DURATION)
#   SYNC=full        [storage] synchronous
#   PORT=18291
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${QUICK:-0}" = 1 ]; then
	q_msgs=2000 q_clients=100 q_secs=3
else
	q_msgs=10000 q_clients=1000 q_secs=10
fi
MESSAGES=${MESSAGES:-$q_msgs}
LIMIT=${LIMIT:-500}
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-$q_clients}
RATE=${RATE:-200}
DURATION=${DURATION:-$q_secs}
POSTERS=${POSTERS:-16}
WS_ACK=${WS_ACK:-1}
LOST_AFTER=${LOST_AFTER:-5}
RUN_SECONDS=${RUN_SECONDS:-120}
SYNC=${SYNC:-full}
PORT=${PORT:-18291}
SECRET=inbox-bench-client-token-secret-0123456789abcdef

for t in curl python3; do
	command -v $t >/dev/null || {
		echo "$t missing" >&2
		exit 1
	}
done
python3 -c 'import sys; sys.exit(sys.version_info < (3, 7))' || {
	echo "ws-load.py needs Python 3.7 or later" >&2
	exit 1
}

# One file descriptor per stream in the daemon and in the client, and the
# posters besides.
need=$((CLIENTS + POSTERS + 256))
[ "$need" -gt 8192 ] || need=8192
# ulimit -n and -Hn: not POSIX, but dash, bash, busybox and ksh have them.
# shellcheck disable=SC3045
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
	need=$hard
fi
# shellcheck disable=SC3045
ulimit -n "$need"
[ $((CLIENTS + POSTERS + 64)) -le "$need" ] || {
	echo "open files limit $need is too low for $CLIENTS clients" >&2
	exit 1
}

b="$top/build/bench"
mkdir -p "$b"
if [ -z "${PUSHRELAYD:-}" ]; then
	if [ ! -f "$b/Makefile" ]; then
		[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null)
		(cd "$b" && "$top/configure" CFLAGS="-O2 -g" >/dev/null)
	fi
	# Always make: a daemon built before the inbox would not do.
	(cd "$b" && make -j"$(nproc)" pushrelayd pushrelayctl >/dev/null)
	PUSHRELAYD="$b/pushrelayd"
fi
PUSHRELAYCTL=${PUSHRELAYCTL:-$(dirname "$PUSHRELAYD")/pushrelayctl}
WSLOAD="python3 -B $top/contrib/bench/ws-load.py --port $PORT --timeout $RUN_SECONDS"

pid=
work=$(mktemp -d)
stop_daemon() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	pid=
}
trap 'stop_daemon; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

fail() {
	echo "inbox-bench: $*" >&2
	echo "--- daemon log (tail) ---" >&2
	tail -n 20 "$work/daemon.log" >&2 || true
	exit 1
}

cat >"$work/bench.conf" <<CONF
[server]
listen = 127.0.0.1:$PORT
max_connections = $((CLIENTS + POSTERS + 1000))
[admin]
listen = unix:$work/admin.sock
[storage]
path = $work/pushrelay.db
synchronous = $SYNC
[inbox]
max_limit = $LIMIT
max_waiters = $((CLIENTS + 1000))
[log]
level = warn
[app "chat"]
client_token_secret = $SECRET
CONF
# Someone else's daemon on the port would answer our requests.
if curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
	echo "inbox-bench: port $PORT is in use; set PORT" >&2
	exit 1
fi
"$PUSHRELAYD" -c "$work/bench.conf" 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 50); do
	curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
kill -0 "$pid" 2>/dev/null || fail "pushrelayd did not start"
key=$("$PUSHRELAYCTL" -c "$work/bench.conf" --json keys create bench \
	--scope ingest | sed -n 's/.*"key" *: *"\([^"]*\)".*/\1/p')
[ -n "$key" ] || fail "could not create an ingest key"

# val FILE NAME: the value(s) after NAME in a ws-load output.
val() { awk -v n="$2" '$1 == n { $1 = ""; sub(/^ /, ""); print; exit }' "$1"; }

load0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- drain ------------------------------------------------------------------
# u0/d0 for the read-only runs; uaI/daI, a backlog each, for the RUNS
# runs that acknowledge (an acknowledged backlog is gone).
$WSLOAD register --key "$key" --first 0 --count 1 >/dev/null ||
	fail "register d0"
$WSLOAD register --key "$key" --prefix a --first 0 --count "$RUNS" \
	>/dev/null || fail "register da0.."
$WSLOAD ingest --key "$key" --user u0 --count "$MESSAGES" --prefix b \
	>"$work/ingest0" || fail "ingest for u0"
i=0
while [ "$i" -lt "$RUNS" ]; do
	$WSLOAD ingest --key "$key" --user "ua$i" --count "$MESSAGES" \
		--prefix "a$i" >/dev/null || fail "ingest for ua$i"
	i=$((i + 1))
done
ingest_s=$(val "$work/ingest0" ingest_seconds)

$WSLOAD drain --secret "$SECRET" --user u0 --device d0 --expect "$MESSAGES" \
	--limit "$LIMIT" --runs "$RUNS" --pid "$pid" >"$work/drain" ||
	fail "drain"
i=0
: >"$work/drain_ack"
while [ "$i" -lt "$RUNS" ]; do
	$WSLOAD drain --secret "$SECRET" --user "ua$i" --device "da$i" \
		--expect "$MESSAGES" --limit "$LIMIT" --runs 1 --ack \
		--pid "$pid" >"$work/drain_ack$i" || fail "drain with acks"
	# One line per run: msgs/s ms/page ack-p50 ack-max left loop% store%
	# client% other%.
	echo "$(val "$work/drain_ack$i" msgs_per_s_best)" \
		"$(val "$work/drain_ack$i" ms_per_page)" \
		"$(val "$work/drain_ack$i" ack_ms)" \
		"$(val "$work/drain_ack$i" left_after_ack)" \
		"$(val "$work/drain_ack$i" drain_cpu)" >>"$work/drain_ack"
	i=$((i + 1))
done

# ---- live -------------------------------------------------------------------
$WSLOAD register --key "$key" --first 1 --count "$CLIENTS" >"$work/reg" ||
	fail "register $CLIENTS devices"
ack_flag=
[ "$WS_ACK" = 1 ] && ack_flag=--ack
$WSLOAD live --key "$key" --secret "$SECRET" --first 1 --clients "$CLIENTS" \
	--rate "$RATE" --seconds "$DURATION" --posters "$POSTERS" \
	--lost-after "$LOST_AFTER" --pid "$pid" $ack_flag \
	>"$work/live" 2>"$work/live.err" || {
	cat "$work/live.err" >&2
	fail "live"
}
kill -0 "$pid" 2>/dev/null || fail "pushrelayd died"
warns=$(grep -c . "$work/daemon.log" || true)
stop_daemon

# ---- the table --------------------------------------------------------------
# "set -- $(...)" below splits a line of numbers into $1.. on purpose
# (shellcheck SC2046 is off for the file).
pages=$(awk '$1 == "run" { print $4; exit }' "$work/drain")
cpu() { # cpu FILE NAME: "loop% store% gen% other%"
	val "$1" "$2"
}
set -- $(val "$work/live" latency_ms)
p50=$1 p90=$2 p99=$3 pmax=$4
set -- $(val "$work/live" rss_kb)
rss0=$1 rss1=$2 rss2=$3
set -- $(val "$work/live" tool_lag_ms)
lag99=$1 lagmax=$2

printf '\npushrelayd inbox on %s (%s cores), synchronous=%s, %s-byte payloads\n' \
	"$(uname -m)" "$(nproc)" "$SYNC" 209
printf '%-44s %12s  %s\n' "measure" "value" "notes"
row() { printf '%-44s %12s  %s\n' "$1" "$2" "$3"; }
row "drain msgs/s, best of $RUNS" "$(val "$work/drain" msgs_per_s_best)" \
	"$MESSAGES messages, limit=$LIMIT, $pages pages; CPU% over the runs, loop/store/client/other: $(cpu "$work/drain" drain_cpu)"
row "drain msgs/s, median of $RUNS" "$(val "$work/drain" msgs_per_s_median)" \
	"runs: $(awk '$1 == "run" { printf "%s%s", s, $6; s = " / " }' "$work/drain")"
row "drain msgs/s, GET to last byte only" "$(val "$work/drain" msgs_per_s_server)" \
	"the best run without the client's own time between pages"
row "drain ms/page (median run)" "$(val "$work/drain" ms_per_page)" \
	"GET to last byte p50 $(val "$work/drain" page_ms_p50), max $(val "$work/drain" page_ms_max); client JSON parse $(val "$work/drain" parse_ms_per_page)/page"
# The run with the median rate of the acknowledging runs.
set -- $(sort -n "$work/drain_ack" | awk -v n="$RUNS" 'NR == int((n + 1) / 2)')
row "drain + ack msgs/s, best of $RUNS" "$(sort -n "$work/drain_ack" | tail -n 1 | cut -d' ' -f1)" \
	"GET page + POST /v1/inbox/ack up_to=next, each on a fresh backlog; runs: $(awk '{ printf "%s%s", s, $1; s = " / " }' "$work/drain_ack")"
row "drain + ack msgs/s, median of $RUNS" "$1" \
	"$2 ms/page, ack p50/max $3/$4 ms; CPU% $6 $7 $8 $9; inbox left after: $5"
set -- $(val "$work/live" frame_after_202_ms)
row "live p50 ms" "$p50" \
	"$(val "$work/live" connected) streams, $(val "$work/live" rate_achieved) events/s for $DURATION s, POST to frame (p90 $p90); frame minus 202: p50 $1, p99 $2 ms"
set -- $(val "$work/live" post_ms)
row "live p99 ms" "$p99" "POST to its 202: p50 $1, p99 $2, max $3 ms"
row "live max ms" "$pmax" "$(val "$work/live" late_posts) posts >10 ms behind schedule; client loop lag p99 $lag99, max $lagmax ms"
lost=$(val "$work/live" lost)
accepted=$(val "$work/live" accepted)
posted=$(val "$work/live" posted)
closed=$(val "$work/live" closed_during_run)
verdict=ok
[ "$lost" = 0 ] && [ "$accepted" = "$posted" ] && [ "$closed" = 0 ] ||
	verdict=FAILED
row "lost (no frame in ${LOST_AFTER}s)" "$lost" \
	"$verdict: of $accepted queued ($posted posted); $closed streams closed"
row "daemon RSS before streams" "$((rss0 / 1024)) MiB" "${rss0} kB"
row "daemon RSS with $CLIENTS streams" "$((rss1 / 1024)) MiB" \
	"$(((rss1 - rss0) * 1024 / CLIENTS)) bytes per stream; after the run $((rss2 / 1024)) MiB"
printf '\nlive CPU%% (loop/store/client/other, 100 = one core): %s; WS acks %s (%s acked); %s events posted over %s connections\n' \
	"$(cpu "$work/live" live_cpu)" "$([ "$WS_ACK" = 1 ] && echo on || echo off)" \
	"$(val "$work/live" acks)" "$(val "$work/live" posted)" "$POSTERS"
printf 'backlog ingest: %s events in batches of 100 in %s s; %s devices registered in %s s; connect %s s\n' \
	"$MESSAGES" "$ingest_s" "$CLIENTS" "$(val "$work/reg" register_seconds)" \
	"$(val "$work/live" connect_seconds)"
printf 'daemon log lines at level warn: %s; load average before the runs: %s\n' \
	"$warns" "$load0"
if [ -s "$work/live.err" ]; then
	cat "$work/live.err"
fi
[ "$verdict" = ok ]

#!/bin/sh
# Push dispatch throughput and latency against the bundled mock APNs
# (tests/mock/pr-mock, ES256 JWTs checked), with h2load's rate for the same
# request over one connection, in the same run, as the bound:
#
#   bound    h2load -c1 -m1000 POST /3/device/<64 hex> with the relay's
#            headers and a payload like the relay's
#   drain    JOBS devices, one event each while APNs is paused; resume and
#            time until the mock has seen JOBS pushes: pushes/s, once per
#            entry of CONNS_LIST ([push] connections)
#   latency  a steady LAT_RATE events/s for LAT_SECONDS to LAT_DEVICES
#            devices in turn; event-to-request latency (the mock's arrival
#            time minus the post time) p50/p99/max; daemon RSS before/after
#
# Loopback only; every loop and run is capped in count and in time.
#
#   contrib/bench/push-bench.sh            build build/bench, run, print a table
#   QUICK=1 contrib/bench/push-bench.sh    10,000 jobs, a 5 s latency run
#   PUSHRELAYD=/path/to/pushrelayd PR_MOCK=/path/to/pr-mock ...
#
# Knobs (defaults; QUICK=1 shrinks the sizes):
#   JOBS=100000          pushes queued for each drain run (one per device)
#   CONNS_LIST="1 4"     [push] connections of the drain runs
#   MAX_STREAMS=1000 MAX_IN_FLIGHT=4000 CLAIM_BATCH=1000   [push], drain runs
#   DRAIN_SYNC=normal    [storage] synchronous of the drain runs
#   DRAIN_SECONDS=300    time cap of a drain
#   POLL=0.2             seconds between GET /mock/stats while draining
#   BOUND_REQS=200000 BOUND_STREAMS=1000   h2load -n, -m (one connection)
#   LAT_RATE=2000 LAT_SECONDS=20 LAT_DEVICES=2000
#   LAT_SYNC=full        [storage] synchronous of the latency run; its [push]
#                        section is the default one
#   PORT=18183           the daemon's HTTP port (the mock picks its own)
#   KEEP=1               keep the temporary directory (logs, databases, the
#                        latency samples in lat/latency.tsv)
#   REPEAT=1             h2load runs, and drain runs per connection count;
#                        the best of each is shown (REPEAT=3 on a machine
#                        others are using)
#   PERF=1               also `perf record` the daemon during each drain
#                        (perf.<conns>.<run>.data in PERF_DIR, default
#                        build/bench/perf) with PERF_ARGS, default
#                        "--call-graph dwarf,16384 -F 499" (Debian's libcurl
#                        and libc have no frame pointers: -g loses callers)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${QUICK:-0}" = 1 ]; then
	q_jobs=10000 q_bound=50000 q_lat=5
else
	q_jobs=100000 q_bound=200000 q_lat=20
fi
JOBS=${JOBS:-$q_jobs}
CONNS_LIST=${CONNS_LIST:-1 4}
MAX_STREAMS=${MAX_STREAMS:-1000}
MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-4000}
CLAIM_BATCH=${CLAIM_BATCH:-1000}
DRAIN_SYNC=${DRAIN_SYNC:-normal}
DRAIN_SECONDS=${DRAIN_SECONDS:-300}
POLL=${POLL:-0.2}
BOUND_REQS=${BOUND_REQS:-$q_bound}
BOUND_STREAMS=${BOUND_STREAMS:-1000}
LAT_RATE=${LAT_RATE:-2000}
LAT_SECONDS=${LAT_SECONDS:-$q_lat}
LAT_DEVICES=${LAT_DEVICES:-2000}
LAT_SYNC=${LAT_SYNC:-full}
PORT=${PORT:-18183}
PERF=${PERF:-0}
REPEAT=${REPEAT:-1}

for t in curl h2load python3; do
	command -v $t >/dev/null || {
		echo "$t missing: run contrib/install-deps.sh" >&2
		exit 1
	}
done
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
	echo "PERF=1 needs perf (linux-perf)" >&2
	exit 1
fi

b="$top/build/bench"
mkdir -p "$b"
if [ -z "${PUSHRELAYD:-}" ]; then
	if [ ! -f "$b/Makefile" ]; then
		[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null)
		(cd "$b" && "$top/configure" CFLAGS="-O2 -g" >/dev/null)
	fi
	# Always make: cheap when nothing changed. A tree that does not build
	# (work in progress) falls back to the binaries already there.
	if ! (cd "$b" && make -j"$(nproc)" pushrelayd pushrelayctl \
		tests/mock/pr-mock >"$b/push-bench-make.log" 2>&1); then
		for f in pushrelayd pushrelayctl tests/mock/pr-mock; do
			[ -x "$b/$f" ] || {
				tail -n 20 "$b/push-bench-make.log" >&2
				echo "make failed and there is no $b/$f;" \
					"set PUSHRELAYD (and PR_MOCK)" >&2
				exit 1
			}
		done
		echo "warning: make failed (see $b/push-bench-make.log);" \
			"using the binaries already in $b" >&2
	fi
	PUSHRELAYD="$b/pushrelayd"
fi
PUSHRELAYCTL=${PUSHRELAYCTL:-$(dirname "$PUSHRELAYD")/pushrelayctl}
PR_MOCK=${PR_MOCK:-$(dirname "$PUSHRELAYD")/tests/mock/pr-mock}
[ -x "$PR_MOCK" ] || {
	echo "no pr-mock at $PR_MOCK (set PR_MOCK)" >&2
	exit 1
}
GEN="python3 $top/contrib/bench/push-latency.py"

pid='' mock_pid='' perf_pid=''
work=$(mktemp -d)
stop_pid() { # stop_pid PID: TERM, wait at most 10 s, then KILL
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
stop_daemon() {
	stop_pid "$perf_pid"
	perf_pid=
	stop_pid "$pid"
	pid=
}
stop_mock() {
	stop_pid "$mock_pid"
	mock_pid=
}
if [ "${KEEP:-0}" = 1 ]; then
	trap 'stop_daemon; stop_mock; echo "kept $work" >&2' EXIT
else
	trap 'stop_daemon; stop_mock; rm -rf "$work"' EXIT
fi
trap 'exit 130' INT TERM

cores=$(nproc)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
hz=$(getconf CLK_TCK)
ticks() { # CPU ticks used so far by process $1 (all its threads)
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
val() { # val NAME FILE: the value of a "name value" line
	awk -v k="$1" '$1 == k { print $2 }' "$2"
}

# ---- the mock ---------------------------------------------------------------

"$PR_MOCK" --make-credentials "$work/mock" >/dev/null
creds="--apns-key $work/mock/AuthKey_TESTKEY001.p8 --apns-key-id TESTKEY001"
creds="$creds --apns-team-id TESTTEAM01"
start_mock() { # start_mock MAX_RECORD
	rm -f "$work/mock/port"
	# shellcheck disable=SC2086
	"$PR_MOCK" --listen 127.0.0.1:0 --cert "$work/mock/tls.crt" \
		--key "$work/mock/tls.key" --port-file "$work/mock/port" \
		$creds --max-record "$1" >>"$work/mock.log" 2>&1 &
	mock_pid=$!
	for _ in $(seq 50); do
		[ -s "$work/mock/port" ] && break
		sleep 0.1
	done
	[ -s "$work/mock/port" ] || {
		echo "pr-mock did not start" >&2
		cat "$work/mock.log" >&2
		exit 1
	}
	mport=$(cat "$work/mock/port")
	murl="https://127.0.0.1:$mport"
}
mock() { # mock METHOD PATH
	curl -sf --http2 --max-time 10 --cacert "$work/mock/tls.crt" \
		-X "$1" "$murl$2"
}

# ---- the daemon ---------------------------------------------------------------

# start_daemon DIR SYNC [PUSH SETTINGS...]: a fresh database in DIR, the
# app pointed at the mock; sets pid and key.
start_daemon() {
	d=$1 sync=$2
	shift 2
	mkdir -p "$d"
	{
		cat <<CONF
[server]
listen = 127.0.0.1:$PORT
max_connections = 10000
[admin]
listen = unix:$d/admin.sock
[storage]
path = $d/pushrelay.db
synchronous = $sync
[log]
level = warn
[push]
CONF
		for kv in "$@"; do echo "$kv"; done
		cat <<CONF
[app "bench"]
push_mode = alert
apns_key_file = $work/mock/AuthKey_TESTKEY001.p8
apns_key_id = TESTKEY001
apns_team_id = TESTTEAM01
apns_topic = com.example.bench
apns_url = $murl
apns_sandbox_url = $murl
ca_file = $work/mock/tls.crt
CONF
	} >"$d/bench.conf"
	conf="$d/bench.conf"
	"$PUSHRELAYD" -c "$conf" 2>"$d/daemon.log" &
	pid=$!
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	key=$("$PUSHRELAYCTL" -c "$conf" --json keys create bench \
		--scope ingest | sed -n 's/.*"key" *: *"\([^"]*\)".*/\1/p')
	[ -n "$key" ] || {
		echo "could not create an ingest key" >&2
		cat "$d/daemon.log" >&2
		exit 1
	}
}
sent_total() { # pushes the daemon counted as sent, from /metrics
	curl -sf --max-time 10 "http://127.0.0.1:$PORT/metrics" | awk '
		/^pushrelay_pushes_total\{/ && /outcome="sent"/ { n += $2 }
		END { print n + 0 }'
}
ctl() { "$PUSHRELAYCTL" -c "$conf" "$@"; }

results="$work/results"
: >"$results"

# ---- 1. the bound: h2load, one connection -------------------------------

start_mock 0
# shellcheck disable=SC2086
jwt=$("$PR_MOCK" --print-jwt $creds)
exp=$(($(date +%s) + 86400))
# The relay's payload for these events (apns.c build_payload), and one URI
# per device token as the relay's requests have.
printf '{"aps":{"alert":{"title":"Bob","body":"Are we still on for lunch?"},"mutable-content":1},"message_id":"e12345","seq":1}' \
	>"$work/payload.json"
python3 - "$murl" 10000 >"$work/uris" <<'PY'
import hashlib, sys
for i in range(int(sys.argv[2])):
    t = hashlib.sha256(b"pushrelay-bench-%d" % i).hexdigest()
    print("%s/3/device/%s" % (sys.argv[1], t))
PY
# One h2load run, a row in $work/rows: its CPU (getrusage of the child)
# and the mock's, per request, go in the loop% and mock% columns' place
# as µs per request.
bound_once() {
	m0=$(ticks "$mock_pid")
	timeout 120 python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print("h2load_cpu_seconds %.3f" % (u.ru_utime + u.ru_stime))' \
		h2load -n "$BOUND_REQS" -c 1 -m "$BOUND_STREAMS" -t 1 \
		-i "$work/uris" -d "$work/payload.json" \
		-H "authorization: bearer $jwt" -H "apns-push-type: alert" \
		-H "apns-topic: com.example.bench" -H "apns-priority: 10" \
		-H "apns-expiration: $exp" \
		-H "apns-id: 4a9f1c3e-7b2d-4e8f-9a1b-2c3d4e5f6a7b" \
		>"$work/h2load.out" 2>&1 || true
	m1=$(ticks "$mock_pid")
	cat "$work/h2load.out" >>"$work/h2load.log"
	rate=$(awk '/^finished in/ { gsub(",", "", $4); printf "%.0f", $4 }' \
		"$work/h2load.out")
	ok=$(awk '/^status codes:/ { print $3 }' "$work/h2load.out")
	if [ -z "$rate" ] || [ "${ok:-0}" -ne "$BOUND_REQS" ]; then
		echo "h2load against the mock failed:" >&2
		cat "$work/h2load.out" >&2
		exit 1
	fi
	awk -v n="$BOUND_REQS" -v r="$rate" -v hz="$hz" -v m0="$m0" \
		-v m1="$m1" -v s="$BOUND_STREAMS" '
		/^h2load_cpu_seconds/ { cpu = $2 }
		END {
			secs = n / r
			printf "bound|h2load, 1 connection, -m%s|%.0f|100.0|%.3f|%.0f|-|%.0f|-|%.2f|%.2f|-|h2load CPU in loop%%\n",
				s, r, secs, 100 * cpu / secs,
				100 * (m1 - m0) / hz / secs, 1e6 * cpu / n,
				1e6 * (m1 - m0) / hz / n
		}' "$work/h2load.out" >>"$work/rows"
}
: >"$work/rows"
r=1
while [ "$r" -le "$REPEAT" ]; do
	bound_once
	r=$((r + 1))
done
sort -t'|' -k3,3nr "$work/rows" | head -n 1 >>"$results"
bound=$(cut -d'|' -f3 "$results")

# ---- 2. drain runs -------------------------------------------------------------

drain() { # drain CONNS RUN: one drain run, a row in $work/rows
	c=$1
	mock POST /mock/reset >/dev/null
	d="$work/drain$c.$2"
	start_daemon "$d" "$DRAIN_SYNC" "connections = $c" \
		"max_streams = $MAX_STREAMS" "max_in_flight = $MAX_IN_FLIGHT" \
		"claim_batch = $CLAIM_BATCH"
	ctl providers pause apns >/dev/null
	$GEN register --port "$PORT" --key "$key" --count "$JOBS" \
		--timeout "$DRAIN_SECONDS" >"$d/gen.out"
	$GEN ingest --port "$PORT" --key "$key" --count "$JOBS" --batch 100 \
		--conns 8 --depth 2 --prefix "e$c-" --timeout "$DRAIN_SECONDS" \
		>>"$d/gen.out"
	if [ "$PERF" = 1 ]; then
		pdir=${PERF_DIR:-$b/perf}
		mkdir -p "$pdir"
		# shellcheck disable=SC2086
		perf record ${PERF_ARGS:---call-graph dwarf,16384 -F 499} \
			-p "$pid" -o "$pdir/perf.$c.$2.data" \
			>"$d/perf.log" 2>&1 &
		perf_pid=$!
		sleep 0.5
	fi
	$GEN drain --mock "$murl" --cacert "$work/mock/tls.crt" \
		--pid "$pid" --mock-pid "$mock_pid" --target "$JOBS" \
		--poll "$POLL" --timeout "$DRAIN_SECONDS" -- \
		"$PUSHRELAYCTL" -c "$conf" providers resume apns \
		>>"$d/gen.out" || {
		cat "$d/gen.out" "$d/daemon.log" >&2
		exit 1
	}
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
		perf_pid=
	fi
	# The daemon counts a push once its answer is read: a moment after
	# the mock counted the request.
	for _ in $(seq 50); do
		sent=$(sent_total)
		[ "$sent" -ge "$JOBS" ] && break
		sleep 0.1
	done
	o="$d/gen.out"
	note="sent $sent"
	[ "$sent" -eq "$JOBS" ] || note="$note (expected $JOBS)"
	note="$note; $(val drain_daemon_connections "$o") TLS connections"
	seen=$(val drain_seen "$o")
	[ "$seen" -eq "$JOBS" ] || note="$note; mock saw $seen"
	echo "drain|drain, $c connection$([ "$c" = 1 ] || echo s)|$(val drain_per_s "$o")|$(
		awk -v a="$(val drain_per_s "$o")" -v b="$bound" \
			'BEGIN { printf "%.1f", 100 * a / b }')|$(val drain_seconds "$o")|$(
		val drain_loop_cpu "$o")|$(val drain_threads_cpu "$o")|$(
		val drain_mock_cpu "$o")|$(val drain_other_cpu "$o")|$(
		awk -v l="$(val drain_loop_cpu "$o")" \
			-v m="$(val drain_mock_cpu "$o")" \
			-v r="$(val drain_per_s "$o")" \
			'BEGIN { printf "%.2f|%.2f", 1e4 * l / r, 1e4 * m / r }')|$(
		val drain_rss_kb "$o")|$note" >>"$work/rows"
	echo "drain, $c connection(s), run $2: registered $JOBS devices at $(
		val register_per_s "$o")/s, ingested $(val ingest_queued "$o") events at $(
		val ingest_per_s "$o")/s; daemon threads other than the loop: $(
		val drain_threads "$o") (% of a core)" >>"$work/notes"
	stop_daemon
}

for c in $CONNS_LIST; do
	: >"$work/rows"
	r=1
	while [ "$r" -le "$REPEAT" ]; do
		drain "$c" "$r"
		r=$((r + 1))
	done
	# The best run of this connection count becomes its row.
	sort -t'|' -k3,3nr "$work/rows" | head -n 1 >>"$results"
done

# ---- 3. latency at a steady rate ----------------------------------------------

stop_mock
start_mock $((LAT_RATE * LAT_SECONDS + LAT_DEVICES + 1000))
d="$work/lat"
start_daemon "$d" "$LAT_SYNC"
$GEN register --port "$PORT" --key "$key" --count "$LAT_DEVICES" \
	--timeout 120 >"$d/gen.out"
# Warm up (not measured): one push per device, the provider connection is
# up and the JWT accepted before the measured run.
$GEN ingest --port "$PORT" --key "$key" --count "$LAT_DEVICES" --batch 100 \
	--prefix W --timeout 120 >>"$d/gen.out"
for _ in $(seq 300); do
	n=$(mock GET /mock/stats | sed -n 's/.*"apns":\([0-9]*\).*/\1/p')
	[ "${n:-0}" -ge "$LAT_DEVICES" ] && break
	sleep 0.1
done
$GEN latency --port "$PORT" --key "$key" --mock "$murl" \
	--cacert "$work/mock/tls.crt" --pid "$pid" --mock-pid "$mock_pid" \
	--devices "$LAT_DEVICES" --rate "$LAT_RATE" --seconds "$LAT_SECONDS" \
	--conns 16 --depth 64 --timeout 60 --settle 30 \
	--dump "$d/latency.tsv" >>"$d/gen.out" || {
	cat "$d/gen.out" "$d/daemon.log" >&2
	exit 1
}
lat_sent=$(sent_total)
stop_daemon
stop_mock

# ---- the table ------------------------------------------------------------------

o="$d/gen.out"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
printf '\npushrelayd push dispatch to pr-mock (APNs, ES256 JWT checked) on %s, %s cores\n' \
	"$(uname -m)" "$cores"
awk -F'|' '
	BEGIN {
		printf "%-30s %9s %7s %7s %6s %8s %6s %7s %8s %8s %8s  %s\n",
			"run", "pushes/s", "% bound", "seconds", "loop%",
			"threads%", "mock%", "other%", "loop us", "mock us",
			"RSS", "notes"
	}
	{
		rss = $12 == "-" ? "-" : sprintf("%.0f MiB", $12 / 1024)
		printf "%-30s %9s %7s %7s %6s %8s %6s %7s %8s %8s %8s  %s\n",
			$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, rss, $13
	}' "$results"
printf '\nlatency at a steady %s events/s for %ss (%s devices, each event to the next one):\n' \
	"$LAT_RATE" "$LAT_SECONDS" "$LAT_DEVICES"
printf '  %-24s %s\n' "posted / accepted" "$(val lat_posted "$o") / $(val lat_accepted "$o") (at $(val lat_rate "$o")/s; most behind schedule $(val lat_behind_max "$o"))"
printf '  %-24s %s\n' "pushes arrived" "$(val lat_arrived "$o") (non-200 at the mock: $(val lat_non200 "$o"); daemon counted $lat_sent sent incl. $LAT_DEVICES warm-up)"
printf '  %-24s %s\n' "new TLS connections" "$(val lat_new_connections "$o") opened by the daemon during the run"
printf '  %-24s p50 %s ms   p90 %s ms   p99 %s ms   max %s ms   (min %s ms; %s over 100 ms)\n' \
	"event-to-request" "$(val lat_p50_ms "$o")" "$(val lat_p90_ms "$o")" \
	"$(val lat_p99_ms "$o")" "$(val lat_max_ms "$o")" "$(val lat_min_ms "$o")" \
	"$(val lat_over_100ms "$o")"
printf '  %-24s before %s, after %s (peak %s)\n' "daemon RSS" \
	"$(mib "$(val lat_rss_before_kb "$o")")" \
	"$(mib "$(val lat_rss_after_kb "$o")")" \
	"$(mib "$(val lat_hwm_after_kb "$o")")"
printf '  %-24s loop %s%%, other threads %s%%, mock %s%%, machine %s%% (100 = one core)\n' \
	"CPU during the run" "$(val lat_loop_cpu "$o")" \
	"$(val lat_threads_cpu "$o")" "$(val lat_mock_cpu "$o")" \
	"$(val lat_machine_cpu "$o")"
printf '\n'
cat "$work/notes"
printf 'bound: h2load -n%s -c1 -m%s -t1, %s distinct device tokens, one JWT, payload %s bytes; best of %s\n' \
	"$BOUND_REQS" "$BOUND_STREAMS" "$(wc -l <"$work/uris")" \
	"$(wc -c <"$work/payload.json")" "$REPEAT"
printf 'drain: %s jobs, [push] max_streams %s, max_in_flight %s, claim_batch %s; [storage] synchronous %s;\n' \
	"$JOBS" "$MAX_STREAMS" "$MAX_IN_FLIGHT" "$CLAIM_BATCH" "$DRAIN_SYNC"
# shellcheck disable=SC2016
printf '       timed from `pushrelayctl providers resume apns` to the mock counting the last push (polled every %ss, interpolated)\n' "$POLL"
printf 'latency: [storage] synchronous %s, [push] defaults; latency = mock arrival (ms, its loop clock) - post time\n' "$LAT_SYNC"
printf 'loop%%: daemon main thread (bound row: h2load); threads%%: its other threads; mock%%: pr-mock; other%%: the rest of the machine (100 = one core)\n'
printf 'loop us / mock us: CPU microseconds per push (per request) of the daemon main thread (h2load) and of the mock: independent of other load\n'
printf 'load average before the runs: %s\n' "$load0"

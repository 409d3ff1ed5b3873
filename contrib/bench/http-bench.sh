#!/bin/sh
# Requests per second for GET /healthz over HTTP/1.1 keep-alive (wrk) and
# HTTP/2 h2c (h2load), against a pushrelayd built without sanitizers.
# Loopback only; every run is bounded in time or request count.
#
#   contrib/bench/http-bench.sh            build build/bench, run, print a table
#   PUSHRELAYD=/path/to/pushrelayd contrib/bench/http-bench.sh
#   DURATION=10 CONNS=64 H2_REQS=400000 contrib/bench/http-bench.sh
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
H2_CONNS=${H2_CONNS:-16}
H2_STREAMS=${H2_STREAMS:-32}
H2_REQS=${H2_REQS:-400000}
PORT=${PORT:-18181}

for tool in wrk h2load; do
	command -v $tool >/dev/null || {
		echo "$tool missing: run contrib/install-deps.sh" >&2
		exit 1
	}
done

if [ -z "${PUSHRELAYD:-}" ]; then
	b="$top/build/bench"
	if [ ! -x "$b/pushrelayd" ]; then
		[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null)
		mkdir -p "$b"
		(cd "$b" && "$top/configure" CFLAGS="-O2 -g" >/dev/null &&
			make -j"$(nproc)" pushrelayd >/dev/null)
	fi
	PUSHRELAYD="$b/pushrelayd"
fi

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
cat >"$work/bench.conf" <<CONF
[server]
listen = 127.0.0.1:$PORT
max_connections = 10000
[admin]
listen = unix:$work/admin.sock
[storage]
path = $work/pushrelay.db
[log]
level = warn
CONF
"$PUSHRELAYD" -c "$work/bench.conf" 2>"$work/daemon.log" &
pid=$!
up=0
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && up=1 && break
	sleep 0.1
done
if [ "$up" != 1 ]; then
	echo "pushrelayd did not start:" >&2
	cat "$work/daemon.log" >&2
	exit 1
fi

url="http://127.0.0.1:$PORT/healthz"
# Warm up briefly, then measure.
wrk -t1 -c8 -d1s "$url" >/dev/null 2>&1 || true
h1=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$url")
h1_rps=$(echo "$h1" | awk '/Requests\/sec/ {print $2}')
h1_p50=$(echo "$h1" | awk '$1 == "50%" {print $2}')
h1_p99=$(echo "$h1" | awk '$1 == "99%" {print $2}')

h2=$(h2load -n"$H2_REQS" -c"$H2_CONNS" -m"$H2_STREAMS" -t2 "$url")
h2_rps=$(echo "$h2" | awk '/^finished in/ {gsub(",", "", $4); print $4}')
h2_ok=$(echo "$h2" | awk '/^status codes:/ {print $3}')
h2_mean=$(echo "$h2" | awk '/^time for request:/ {print $6}')

rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status")

printf '\npushrelayd GET /healthz on %s (%s cores)\n' "$(uname -m)" "$(nproc)"
printf '%-28s %14s %12s %12s\n' "protocol" "requests/s" "p50" "p99/mean"
printf '%-28s %14s %12s %12s\n' "HTTP/1.1 keep-alive (wrk)" "$h1_rps" "$h1_p50" "$h1_p99"
printf '%-28s %14s %12s %12s\n' "HTTP/2 h2c (h2load)" "$h2_rps" "-" "$h2_mean"
printf '\nwrk: -t2 -c%s -d%ss; h2load: -n%s -c%s -m%s -t2 (%s 2xx)\n' \
	"$CONNS" "$DURATION" "$H2_REQS" "$H2_CONNS" "$H2_STREAMS" "$h2_ok"
printf 'daemon RSS after the runs: %s\n' "$rss"

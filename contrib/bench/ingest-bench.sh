#!/bin/sh
# Durable ingest rate of POST /v1/events, in events per second, for single
# events and for batches, over HTTP/2 (h2c) and HTTP/1.1 keep-alive, with
# [storage] synchronous = full and normal; in the same run the raw SQLite
# batched-insert rate (store-bench) as the bound. Every event has a unique
# id (h2post), so nothing is answered "duplicate" and skipped. Loopback
# only; every run is capped in requests and in time.
#
#   contrib/bench/ingest-bench.sh          build build/bench, run, print a table
#   QUICK=1 contrib/bench/ingest-bench.sh  a few seconds per mode
#   MODES=full SINGLE_REQS=400000 contrib/bench/ingest-bench.sh
#   PUSHRELAYD=/path/to/pushrelayd PUSHRELAYCTL=/path/to/pushrelayctl ...
#
# Knobs (defaults; QUICK=1 shrinks the sizes):
#   MODES="full normal"   synchronous modes to run
#   SINGLE_REQS=200000    single-event requests per protocol
#   BATCH_REQS=5000       batch requests per protocol (x BATCH events)
#   BATCH=100             events per batch ([ingest] max_events is 100)
#   USERS=100             users with one device each; events go round-robin
#   H2_CONNS=8 H2_STREAMS=64      HTTP/2 single events
#   H1_CONNS=64                   HTTP/1.1 single events
#   BATCH_H2_CONNS=4 BATCH_H2_STREAMS=16 BATCH_H1_CONNS=32   batches
#   RUN_SECONDS=60        time cap of each run
#   STORE_ROWS=1000000 STORE_BATCH=1000   store-bench rows, rows per commit
#   REPEAT=1              runs of each measurement; the best one is shown
#                         (REPEAT=3 on a machine others are using)
#   PORT=18182
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${QUICK:-0}" = 1 ]; then
	q_single=20000 q_batch=400 q_store=100000 q_secs=10
else
	q_single=200000 q_batch=5000 q_store=1000000 q_secs=60
fi
MODES=${MODES:-full normal}
SINGLE_REQS=${SINGLE_REQS:-$q_single}
BATCH_REQS=${BATCH_REQS:-$q_batch}
BATCH=${BATCH:-100}
H2_CONNS=${H2_CONNS:-8}
H2_STREAMS=${H2_STREAMS:-64}
H1_CONNS=${H1_CONNS:-64}
BATCH_H2_CONNS=${BATCH_H2_CONNS:-4}
BATCH_H2_STREAMS=${BATCH_H2_STREAMS:-16}
BATCH_H1_CONNS=${BATCH_H1_CONNS:-32}
RUN_SECONDS=${RUN_SECONDS:-$q_secs}
STORE_ROWS=${STORE_ROWS:-$q_store}
STORE_BATCH=${STORE_BATCH:-1000}
REPEAT=${REPEAT:-1}
USERS=${USERS:-100}
PORT=${PORT:-18182}

command -v curl >/dev/null || {
	echo "curl missing: run contrib/install-deps.sh" >&2
	exit 1
}

b="$top/build/bench"
mkdir -p "$b"
if [ -z "${PUSHRELAYD:-}" ]; then
	if [ ! -f "$b/Makefile" ]; then
		[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null)
		(cd "$b" && "$top/configure" CFLAGS="-O2 -g" >/dev/null)
	fi
	# Always make: a daemon built before the ingest API would not do. When
	# the tree does not build (work in progress), say so and use what an
	# earlier make left, if anything.
	if ! (cd "$b" && make -j"$(nproc)" pushrelayd pushrelayctl \
		>"$b/ingest-bench-make.log" 2>&1); then
		if [ -x "$b/pushrelayd" ] && [ -x "$b/pushrelayctl" ]; then
			echo "the tree does not build (see $b/ingest-bench-make.log):" \
				"using the pushrelayd already in $b" >&2
		else
			tail -n 20 "$b/ingest-bench-make.log" >&2
			exit 1
		fi
	fi
	PUSHRELAYD="$b/pushrelayd"
	PUSHRELAYCTL=${PUSHRELAYCTL:-$b/pushrelayctl}
fi
PUSHRELAYCTL=${PUSHRELAYCTL:-$(dirname "$PUSHRELAYD")/pushrelayctl}

CC=${CC:-cc}
tool() { # tool NAME LIBS: build contrib/bench/NAME.c when it changed
	src="$top/contrib/bench/$1.c"
	if [ ! -x "$b/$1" ] || [ -n "$(find "$src" -newer "$b/$1")" ]; then
		$CC -O2 -g -Wall -Wextra -o "$b/$1" "$src" "$2"
	fi
}
tool h2post -lnghttp2
tool store-bench -lsqlite3
H2POST="$b/h2post"
STORE_BENCH="$b/store-bench"

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

# CPU ticks of the daemon's main (loop) thread, of the rest of the process
# (the store thread, and any thread that came and went), and the machine's
# idle and total ticks over all cores: "loop other idle total".
ticks() {
	# Fields after the ")" that ends comm: utime is the 12th, stime the
	# 13th; the process's own line counts threads that have exited too.
	l=$(sed 's/^.*) //' "/proc/$pid/task/$pid/stat" 2>/dev/null |
		awk '{ print $12 + $13 }')
	a=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null |
		awk '{ print $12 + $13 }')
	printf '%d %d ' "${l:-0}" "$((${a:-0} - ${l:-0}))"
	awk '$1 == "cpu" { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' \
		/proc/stat
}
hz=$(getconf CLK_TCK)
cores=$(grep -c "^cpu[0-9]" /proc/stat)

# Events an h2post run saw acknowledged: 2xx answers x events per request,
# less the results that said "duplicate".
acked() {
	awk -v nev="$1" '/^status 2[0-9][0-9]:/ { ok += $3 }
		/^duplicates/ { dup = $2 } END { print ok * nev - dup }'
}

results="$work/results"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$results"
: >"$work/rows"

# best: of the rows in $work/rows, append the one with the highest rate.
best() {
	sort -t'|' -k4,4nr "$work/rows" | head -n 1 >>"$results"
	: >"$work/rows"
}

# run LABEL BATCH -- h2post arguments...: REPEAT measured runs, the best
# one becomes a result row.
run() {
	r=0
	while [ "$r" -lt "$REPEAT" ]; do
		once "$@"
		r=$((r + 1))
	done
	best
}

once() {
	label=$1 nev=$2
	shift 3
	before=$(ticks)
	out=$("$H2POST" -T "$RUN_SECONDS" -e "$nev" -u "$USERS" \
		-H "Authorization: Bearer $key" \
		-H "Content-Type: application/json" "$@" \
		"http://127.0.0.1:$PORT/v1/events") || true
	after=$(ticks)
	echo "$out" >>"$work/h2post.log"
	echo "$out" | acked "$nev" >>"$d/acked"
	echo "$out" | awk -v mode="$mode" -v label="$label" -v nev="$nev" \
		-v before="$before" -v after="$after" -v hz="$hz" -v cores="$cores" '
		/^elapsed/ { secs = $2 }
		/^events\/s/ { eps = $2 }
		/^latency_ms/ { p50 = $3; p99 = $7 }
		/^status [0-9]+:/ { st = $2 + 0; if (st < 200 || st > 299) bad += $3 }
		/^status other/ { bad += $3 }
		/^requests [0-9]+ of/ { bad += $8; open = $10; unsent = $15 }
		/^duplicates/ { dup = $2 }
		/^cpu/ { gen = $4; gsub(/[(%]/, "", gen) }
		END {
			split(before, b, " "); split(after, a, " ")
			loop = secs > 0 ? 100 * (a[1] - b[1]) / hz / secs : 0
			store = secs > 0 ? 100 * (a[2] - b[2]) / hz / secs : 0
			# Everything else that ran: other processes, and kernel
			# time not charged to a task (100 = one core).
			busy = a[4] > b[4] ? 1 - (a[3] - b[3]) / (a[4] - b[4]) : 0
			other = busy * cores * 100 - loop - store - gen
			if (other < 0) other = 0
			note = ""
			if (bad + 0) note = note " " bad " failed/non-2xx"
			if (dup + 0) note = note " " dup " duplicates"
			if (unsent + open > 0) note = note " time cap"
			printf "%s|%s|%s|%.0f|%s|%s|%.0f|%.0f|%s|%.0f|%s\n", mode,
				label, nev, eps, p50, p99, loop, store, gen, other, note
		}' >>"$work/rows"
}

single='{"id":"%ID%","user":"u%U%"}'
i=0
batch_body=
while [ "$i" -lt "$BATCH" ]; do
	batch_body="$batch_body${batch_body:+,}$single"
	i=$((i + 1))
done
printf '{"events":[%s]}' "$batch_body" >"$work/batch.json"

for mode in $MODES; do
	case $mode in full | normal) ;; *)
		echo "MODES: full or normal, not $mode" >&2
		exit 1
		;;
	esac
	d="$work/$mode"
	mkdir -p "$d"
	cat >"$d/bench.conf" <<CONF
[server]
listen = 127.0.0.1:$PORT
max_connections = 10000
[admin]
listen = unix:$d/admin.sock
[storage]
path = $d/pushrelay.db
synchronous = $mode
[log]
level = warn
CONF
	"$PUSHRELAYD" -c "$d/bench.conf" 2>"$d/daemon.log" &
	pid=$!
	for _ in $(seq 50); do
		curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	key=$("$PUSHRELAYCTL" -c "$d/bench.conf" --json keys create bench \
		--scope ingest | sed -n 's/.*"key" *: *"\([^"]*\)".*/\1/p')
	[ -n "$key" ] || {
		echo "could not create an ingest key" >&2
		cat "$d/daemon.log" >&2
		exit 1
	}
	# One device per user: every event fans out to one inbox and one
	# push. One curl for all of them (a config block per device).
	u=0
	while [ "$u" -lt "$USERS" ]; do
		[ "$u" -eq 0 ] || echo next
		cat <<CURL
url = "http://127.0.0.1:$PORT/v1/devices/bench-$u"
request = PUT
header = "Authorization: Bearer $key"
header = "Content-Type: application/json"
data = "{\"user\":\"u$u\",\"platform\":\"fcm\",\"token\":\"t$u\"}"
output = /dev/null
write-out = "%{http_code}\\n"
CURL
		u=$((u + 1))
	done >"$d/devices.curl"
	n=$(curl -s -K "$d/devices.curl" | grep -c '^20[01]$' || true)
	[ "$n" -eq "$USERS" ] || {
		echo "registered $n of $USERS devices" >&2
		exit 1
	}
	# Warm up (not measured).
	"$H2POST" -n 2000 -c 4 -m 16 -T 10 -u "$USERS" \
		-H "Authorization: Bearer $key" \
		-H "Content-Type: application/json" -d "$single" \
		"http://127.0.0.1:$PORT/v1/events" | acked 1 >"$d/acked" || true

	run "HTTP/2" 1 -- -p h2 -n "$SINGLE_REQS" -c "$H2_CONNS" \
		-m "$H2_STREAMS" -d "$single"
	run "HTTP/1.1" 1 -- -p h1 -n "$SINGLE_REQS" -c "$H1_CONNS" \
		-d "$single"
	run "HTTP/2" "$BATCH" -- -p h2 -n "$BATCH_REQS" -c "$BATCH_H2_CONNS" \
		-m "$BATCH_H2_STREAMS" -d "@$work/batch.json"
	run "HTTP/1.1" "$BATCH" -- -p h1 -n "$BATCH_REQS" \
		-c "$BATCH_H1_CONNS" -d "@$work/batch.json"
	rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status")
	stop_daemon
	# Durability check: every acknowledged event is in the database (more
	# may be, answered after a run's time cap).
	acks=$(awk '{ n += $1 } END { print n + 0 }' "$d/acked")
	if command -v sqlite3 >/dev/null; then
		stored=$(sqlite3 "$d/pushrelay.db" 'SELECT count(*) FROM messages')
		verdict=ok
		[ "$stored" -ge "$acks" ] || verdict="MISSING EVENTS"
		echo "$mode: daemon RSS after the runs $rss; $acks events acknowledged, $stored stored: $verdict" >>"$work/rss"
	else
		echo "$mode: daemon RSS after the runs $rss; $acks events acknowledged (no sqlite3 to count them)" >>"$work/rss"
	fi

	for f in "" -f; do
		r=0
		while [ "$r" -lt "$REPEAT" ]; do
			out=$("$STORE_BENCH" -s "$mode" -n "$STORE_ROWS" \
				-b "$STORE_BATCH" -T "$RUN_SECONDS" -d "$d" $f)
			echo "$out" >>"$work/store-bench.log"
			echo "$out" | awk -v mode="$mode" -v f="$f" \
				-v nb="$STORE_BATCH" '
				/^rows\/s/ { rps = $2 }
				/^txn_ms/ { p50 = $3; p99 = $5 }
				/^rows [0-9]+ of/ { if ($2 != $4) note = " time cap" }
				END {
					printf "%s|%s|%s|%.0f|%s|%s|-|-|-|-|%s\n",
						mode, f == "" ? "raw SQLite" \
						: "raw+fan-out", nb, rps, p50,
						p99, note
				}' >>"$work/rows"
			r=$((r + 1))
		done
		best
	done
done

printf '\npushrelayd POST /v1/events on %s (%s cores), %s user(s) with one device each\n' \
	"$(uname -m)" "$(nproc)" "$USERS"
awk -F'|' '
	{ rows[NR] = $0 }
	$2 == "raw SQLite" { raw[$1] = $4 }
	$2 == "raw+fan-out" { fan[$1] = $4 }
	$2 != "raw SQLite" && $2 != "raw+fan-out" && $3 > 1 { bat[$1 "|" $2] = $4 }
	END {
		printf "%-7s %-12s %6s %10s %8s %8s %6s %7s %5s %6s  %s\n",
			"sync", "protocol", "batch", "events/s", "p50 ms",
			"p99 ms", "loop%", "store%", "gen%", "other%", "notes"
		for (i = 1; i <= NR; i++) {
			split(rows[i], r, "|")
			printf "%-7s %-12s %6s %10s %8s %8s %6s %7s %5s %6s %s\n",
				r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
				r[9], r[10], r[11]
		}
		printf "\n"
		for (k in bat) {
			split(k, m, "|")
			if (raw[m[1]] > 0)
				printf "%s batched ingest over %s: %.1f%% of the raw" \
					" batched-insert bound (%s rows/s), %.0f%% of" \
					" raw+fan-out\n", m[1], m[2],
					100 * bat[k] / raw[m[1]], raw[m[1]],
					fan[m[1]] ? 100 * bat[k] / fan[m[1]] : 0 | "sort"
		}
	}' "$results"
cat "$work/rss"
printf '\nh2post: single -c%s -m%s (h2) / -c%s (h1), %s requests; batch of %s:' \
	"$H2_CONNS" "$H2_STREAMS" "$H1_CONNS" "$SINGLE_REQS" "$BATCH"
printf ' -c%s -m%s (h2) / -c%s (h1), %s requests; each run capped at %ss;' \
	"$BATCH_H2_CONNS" "$BATCH_H2_STREAMS" "$BATCH_H1_CONNS" "$BATCH_REQS" \
	"$RUN_SECONDS"
printf ' best of %s run(s) per row\n' "$REPEAT"
printf 'store-bench: %s rows, %s per transaction; latency there is per' \
	"$STORE_ROWS" "$STORE_BATCH"
printf ' transaction. loop%%/store%%: CPU of the daemon main thread / the rest of it;\n'
printf 'gen%%: CPU of the load generator; other%%: CPU of everything else on the'
printf ' machine (100 = one core).\nload average before the runs: %s\n' "$load0"

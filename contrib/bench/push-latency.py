#!/usr/bin/env python3
"""Load generator and measurements for contrib/bench/push-bench.sh.

Standard library only. It talks HTTP/1.1 keep-alive (pipelined, several
connections, one selector loop) to pushrelayd, and reaches the mock
APNs/FCM server (TLS, ALPN h2 only) through the curl command.

  push-latency.py register --port P --key K --count N [--first F]
        PUT /v1/devices/d<i> {"user":"u<i>","platform":"apns","token":HEX64}
        for i in [F, F+N): one user per device, distinct tokens.
  push-latency.py ingest --port P --key K --count N [--batch 100] [--prefix e]
        POST /v1/events, one event per user u<i>, --batch events a request.
  push-latency.py drain --mock URL --cacert CRT --target N --pid DAEMON_PID
        --mock-pid PID -- COMMAND...
        runs COMMAND (pushrelayctl providers resume apns), then polls
        GET /mock/stats until apns >= N; prints the drain time and the CPU
        each process (and the daemon's main thread) used meanwhile.
  push-latency.py latency --port P --key K --mock URL --cacert CRT
        --pid DAEMON_PID --devices D --rate R --seconds S
        posts single events at a steady R/s to users u0..u(D-1) in turn,
        waits for the pushes, reads the mock's records and prints the
        event-to-request latency (mock arrival "at" minus the post time).

Every loop is bounded by a count and a deadline. Output is "name value"
lines for the shell to pick up; errors go to stderr, exit status 1.
Loopback only: --host must be a loopback address.
"""

import argparse
import collections
import hashlib
import ipaddress
import json
import os
import selectors
import socket
import subprocess
import sys
import time


def die(msg):
    print("push-latency: " + msg, file=sys.stderr)
    sys.exit(1)


def token(i):
    return hashlib.sha256(b"pushrelay-bench-%d" % i).hexdigest()


PUSH = {"mode": "alert", "title": "Bob", "body": "Are we still on for lunch?"}


# ---- HTTP/1.1 client: pipelined keep-alive connections ---------------------


class Conn:
    __slots__ = ("sock", "out", "inbuf", "pending", "idx")

    def __init__(self, host, port, idx):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.out = bytearray()
        self.inbuf = bytearray()
        self.pending = collections.deque()  # tags of requests in flight
        self.idx = idx

    def parse(self):
        """Complete responses in inbuf: [(tag, status, body)]."""
        done = []
        buf = self.inbuf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            clen = 0
            for h in head[1:]:
                k, _, v = h.partition(":")
                if k.strip().lower() == "content-length":
                    clen = int(v)
            if len(buf) < end + 4 + clen:
                break
            body = bytes(buf[end + 4:end + 4 + clen])
            del buf[:end + 4 + clen]
            if not self.pending:
                die("an answer nobody asked for")
            done.append((self.pending.popleft(), status, body))
        return done


class Client:
    """Requests over `conns` keep-alive connections, at most `depth` in
    flight on each (HTTP/1.1 pipelining; the daemon answers in order)."""

    def __init__(self, host, port, conns, depth):
        ip = ipaddress.ip_address(socket.gethostbyname(host))
        if not ip.is_loopback:
            die("%s is not a loopback address" % host)
        self.sel = selectors.DefaultSelector()
        self.conns = [Conn(host, port, i) for i in range(conns)]
        for c in self.conns:
            self.sel.register(c.sock, selectors.EVENT_READ, c)
        self.depth = depth
        self.in_flight = 0

    def close(self):
        for c in self.conns:
            self.sel.unregister(c.sock)
            c.sock.close()
        self.sel.close()

    def least_loaded(self):
        return min(self.conns, key=lambda c: len(c.pending))

    def send(self, c, raw, tag):
        c.pending.append(tag)
        self.in_flight += 1
        if c.out:
            c.out += raw
            return
        try:
            n = c.sock.send(raw)
        except BlockingIOError:
            n = 0
        if n < len(raw):
            c.out += raw[n:]
            self.sel.modify(c.sock, selectors.EVENT_READ |
                            selectors.EVENT_WRITE, c)

    def poll(self, timeout):
        """Wait up to timeout s; return completed [(tag, status, body)]."""
        done = []
        for sk, ev in self.sel.select(timeout):
            c = sk.data
            if ev & selectors.EVENT_WRITE and c.out:
                try:
                    n = c.sock.send(c.out)
                    del c.out[:n]
                except BlockingIOError:
                    pass
                if not c.out:
                    self.sel.modify(c.sock, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(262144)
                except BlockingIOError:
                    continue
                if not data:
                    die("the daemon closed a connection with %d requests "
                        "open" % len(c.pending))
                c.inbuf += data
                got = c.parse()
                self.in_flight -= len(got)
                done.extend(got)
        return done


def request(method, path, key, body):
    b = json.dumps(body, separators=(",", ":")).encode()
    return (("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n\r\n") % (method, path, key, len(b))
            ).encode() + b


def bulk(args, reqs, what):
    """Send every request in reqs (a list of bytes) as fast as the daemon
    answers them; returns (seconds, status counts, bodies of non-2xx)."""
    cl = Client(args.host, args.port, args.conns, args.depth)
    n, i, answered = len(reqs), 0, 0
    status = collections.Counter()
    bad = []
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    while answered < n:
        if time.monotonic() > deadline:
            die("%s: time cap of %ss hit with %d of %d answered" %
                (what, args.timeout, answered, n))
        for c in cl.conns:
            while i < n and len(c.pending) < cl.depth:
                cl.send(c, reqs[i], i)
                i += 1
        for tag, st, body in cl.poll(1.0):
            answered += 1
            status[st] += 1
            if not 200 <= st < 300 and len(bad) < 5:
                bad.append(body[:300])
            if what == "ingest" and 200 <= st < 300:
                res = json.loads(body).get("results", [])
                status["queued"] += sum(1 for r in res
                                        if r.get("status") == "queued")
    secs = time.monotonic() - t0
    cl.close()
    return secs, status, bad


def cmd_register(args):
    reqs = [request("PUT", "/v1/devices/d%d" % i, args.key,
                    {"user": "u%d" % i, "platform": "apns",
                     "token": token(i)})
            for i in range(args.first, args.first + args.count)]
    secs, st, bad = bulk(args, reqs, "register")
    ok = sum(v for k, v in st.items() if isinstance(k, int) and
             200 <= k < 300)
    print("register_ok %d" % ok)
    print("register_seconds %.3f" % secs)
    print("register_per_s %.0f" % (ok / secs if secs else 0))
    if ok != args.count:
        die("register: %d of %d answered 2xx (%s); first errors: %s" %
            (ok, args.count, dict(st), bad))


def cmd_ingest(args):
    reqs = []
    for s in range(args.first, args.first + args.count, args.batch):
        evs = [{"id": "%s%d" % (args.prefix, i), "user": "u%d" % i,
                "push": PUSH}
               for i in range(s, min(s + args.batch,
                                     args.first + args.count))]
        reqs.append(request("POST", "/v1/events", args.key,
                            {"events": evs}))
    secs, st, bad = bulk(args, reqs, "ingest")
    print("ingest_queued %d" % st["queued"])
    print("ingest_seconds %.3f" % secs)
    print("ingest_per_s %.0f" % (st["queued"] / secs if secs else 0))
    if st["queued"] != args.count:
        die("ingest: %d of %d events queued (%s); first errors: %s" %
            (st["queued"], args.count, dict(st), bad))


# ---- the mock, /proc -------------------------------------------------------


MOCK_CALLS = [0]  # control requests made, each on a connection of its own


def mock_get(args, path):
    MOCK_CALLS[0] += 1
    try:
        out = subprocess.run(
            ["curl", "-sf", "--http2", "--max-time", "10", "--cacert",
             args.cacert, args.mock + path],
            stdout=subprocess.PIPE, check=True, timeout=15).stdout
    except (subprocess.CalledProcessError,
            subprocess.TimeoutExpired) as e:
        die("GET %s from the mock failed: %s" % (path, e))
    return json.loads(out)


HZ = os.sysconf("SC_CLK_TCK")


def proc_ticks(pid):
    """{tid: (comm, utime+stime ticks)} of every thread of pid."""
    res = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return res
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        res[int(tid)] = (comm, int(fields[11]) + int(fields[12]))
    return res


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v[:8])  # idle + iowait, total


def rss_kb(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class CpuWindow:
    """CPU used between start() and stop() by the daemon's main thread,
    its other threads (by name), the mock, and the whole machine."""

    def __init__(self, pid, mock_pid):
        self.pid, self.mock_pid = pid, mock_pid

    def sample(self):
        return (proc_ticks(self.pid), proc_ticks(self.mock_pid)
                if self.mock_pid else {}, machine_ticks(), time.monotonic())

    def start(self):
        self.a = self.sample()

    def report(self, prefix):
        b = self.sample()
        secs = b[3] - self.a[3]
        cores = os.cpu_count() or 1

        def pct(t):
            return 100.0 * t / HZ / secs if secs > 0 else 0.0
        main = other = 0
        names = collections.Counter()
        for tid, (comm, t) in b[0].items():
            d = t - self.a[0].get(tid, (comm, 0))[1]
            if tid == self.pid:
                main += d
            else:
                other += d
                names[comm] += d
        mock = sum(t - self.a[1].get(tid, ("", 0))[1]
                   for tid, (_, t) in b[1].items())
        idle = b[2][0] - self.a[2][0]
        total = b[2][1] - self.a[2][1]
        busy = (1 - idle / total) * cores * 100 if total > 0 else 0
        print("%s_loop_cpu %.0f" % (prefix, pct(main)))
        print("%s_threads_cpu %.0f" % (prefix, pct(other)))
        print("%s_threads %s" % (prefix, ",".join(
            "%s:%.0f" % (k, pct(v)) for k, v in names.most_common()) or "-"))
        print("%s_mock_cpu %.0f" % (prefix, pct(mock)))
        print("%s_machine_cpu %.0f" % (prefix, busy))
        print("%s_other_cpu %.0f" % (prefix, max(
            0.0, busy - pct(main) - pct(other) - pct(mock))))


def cmd_drain(args):
    cpu = CpuWindow(args.pid, args.mock_pid)
    before = mock_get(args, "/mock/stats")["apns"]
    if before:
        die("drain: the mock has already seen %d APNs requests" % before)
    cpu.start()
    t0 = time.monotonic()
    subprocess.run(args.command, check=True, stdout=subprocess.DEVNULL)
    prev_t, prev_n, t, n, polls = t0, 0, t0, 0, 0
    deadline = t0 + args.timeout
    max_polls = int(args.timeout / args.poll) + 100
    while n < args.target and polls < max_polls:
        if time.monotonic() > deadline:
            break
        time.sleep(args.poll)
        prev_t, prev_n = t, n
        a = time.monotonic()
        n = mock_get(args, "/mock/stats")["apns"]
        t = (a + time.monotonic()) / 2  # the count is from about here
        polls += 1
    cpu.report("drain")
    if n < args.target:
        print("drain_seen %d" % n)
        die("drain: %d of %d pushes after %.0fs" % (n, args.target,
                                                     t - t0))
    # The last push arrived between the last two polls; interpolate at the
    # rate seen between them (the poll interval bounds the error).
    end = prev_t + (t - prev_t) * ((args.target - prev_n) /
                                   max(1, n - prev_n))
    secs = end - t0
    # Connections the daemon opened: the mock's count (since the reset)
    # less those of our own control requests (this one included).
    conns = mock_get(args, "/mock/stats")["connections"] - MOCK_CALLS[0]
    print("drain_seen %d" % n)
    print("drain_daemon_connections %d" % conns)
    print("drain_seconds %.3f" % secs)
    print("drain_seconds_upper %.3f" % (t - t0))
    print("drain_per_s %.0f" % (args.target / secs))
    print("drain_rss_kb %d" % rss_kb(args.pid))
    print("drain_hwm_kb %d" % rss_kb(args.pid, "VmHWM"))


def pctl(sorted_v, p):
    if not sorted_v:
        return float("nan")
    k = min(len(sorted_v) - 1, max(0, int(round(p / 100.0 *
                                                 len(sorted_v) + 0.5)) - 1))
    return sorted_v[k]


def cmd_latency(args):
    total = int(args.rate * args.seconds)
    cl = Client(args.host, args.port, args.conns, args.depth)
    posted = {}
    status = collections.Counter()
    bad = []
    st0 = mock_get(args, "/mock/stats")
    base, conns0, calls0 = st0["apns"], st0["connections"], MOCK_CALLS[0]
    cpu = CpuWindow(args.pid, args.mock_pid)
    rss0, hwm0 = rss_kb(args.pid), rss_kb(args.pid, "VmHWM")
    cpu.start()
    i = answered = behind = 0
    t0 = time.monotonic()
    deadline = t0 + args.seconds + args.timeout
    while answered < total:
        now = time.monotonic()
        if now > deadline:
            die("latency: time cap hit with %d of %d answered" %
                (answered, total))
        due = min(total, int((now - t0) * args.rate) + 1)
        if due - i > args.rate * 0.01:
            behind = max(behind, due - i)
        while i < due:
            c = cl.least_loaded()
            eid = "%s%d" % (args.prefix, i)
            raw = request("POST", "/v1/events", args.key,
                          {"id": eid, "user": "u%d" % (i % args.devices),
                           "push": PUSH})
            posted[eid] = time.time()
            cl.send(c, raw, i)
            i += 1
        wait = 0.0 if i >= total else max(
            0.0, t0 + (i / args.rate) - time.monotonic())
        for tag, st, body in cl.poll(min(wait, 0.05) if i < total
                                     else 0.2):
            answered += 1
            status[st] += 1
            if st != 202 and len(bad) < 5:
                bad.append(body[:300])
    post_secs = time.monotonic() - t0
    cl.close()
    ok = status[202]
    # Wait for the pushes: every accepted event makes one.
    seen = 0
    settle_end = time.monotonic() + args.settle
    while time.monotonic() < settle_end:
        seen = mock_get(args, "/mock/stats")["apns"] - base
        if seen >= ok:
            break
        time.sleep(0.2)
    cpu.report("lat")
    # New connections the daemon opened during the run (the mock's count
    # less those of our own control requests).
    conns = mock_get(args, "/mock/stats")["connections"] - conns0 - (
        MOCK_CALLS[0] - calls0)
    rss1, hwm1 = rss_kb(args.pid), rss_kb(args.pid, "VmHWM")
    # The mock's records, page by page (bounded).
    lat = []
    after, pages, nrec, non200 = 0, 0, 0, 0
    seen_ids = set()
    dump = open(args.dump, "w") if args.dump else None
    if dump:
        dump.write("message_id\tposted\tlatency_ms\tconn\n")
    max_pages = total // 10000 + 10
    while pages < max_pages:
        page = mock_get(args, "/mock/requests?kind=apns&limit=10000&after=%d"
                        % after)
        pages += 1
        recs = page.get("requests", [])
        if not recs:
            break
        for r in recs:
            nrec += 1
            if r.get("status") != 200:
                non200 += 1
            try:
                mid = json.loads(r.get("body") or "{}").get("message_id")
            except ValueError:
                continue
            t = posted.get(mid)
            if t is None or mid in seen_ids:
                continue
            seen_ids.add(mid)
            lat.append(r["at"] / 1000.0 - t)
            if dump:
                dump.write("%s\t%.6f\t%.3f\t%s\n" % (
                    mid, t, (r["at"] / 1000.0 - t) * 1000.0, r.get("conn")))
        after = page.get("next", after)
    if dump:
        dump.close()
    lat.sort()
    ms = [x * 1000.0 for x in lat]
    print("lat_posted %d" % total)
    print("lat_accepted %d" % ok)
    print("lat_post_seconds %.3f" % post_secs)
    print("lat_rate %.0f" % (total / post_secs if post_secs else 0))
    print("lat_behind_max %d" % behind)
    print("lat_records %d" % nrec)
    print("lat_non200 %d" % non200)
    print("lat_arrived %d" % len(lat))
    print("lat_new_connections %d" % conns)
    print("lat_p50_ms %.1f" % pctl(ms, 50))
    print("lat_p90_ms %.1f" % pctl(ms, 90))
    print("lat_p99_ms %.1f" % pctl(ms, 99))
    print("lat_max_ms %.1f" % (ms[-1] if ms else float("nan")))
    print("lat_over_100ms %d" % sum(1 for x in ms if x > 100))
    print("lat_min_ms %.1f" % (ms[0] if ms else float("nan")))
    print("lat_rss_before_kb %d" % rss0)
    print("lat_rss_after_kb %d" % rss1)
    print("lat_hwm_before_kb %d" % hwm0)
    print("lat_hwm_after_kb %d" % hwm1)
    if ok != total:
        print("push-latency: %d of %d events answered 202 (%s); first "
              "errors: %s" % (ok, total, dict(status), bad), file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, http=True, mock=False):
        if http:
            sp.add_argument("--host", default="127.0.0.1")
            sp.add_argument("--port", type=int, required=True)
            sp.add_argument("--key", required=True)
            sp.add_argument("--conns", type=int, default=16)
            sp.add_argument("--depth", type=int, default=4)
        if mock:
            sp.add_argument("--mock", required=True,
                            help="https://127.0.0.1:PORT of pr-mock")
            sp.add_argument("--cacert", required=True)
            sp.add_argument("--pid", type=int, required=True)
            sp.add_argument("--mock-pid", type=int, default=0)
        sp.add_argument("--timeout", type=float, default=300)

    sp = sub.add_parser("register")
    common(sp)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--first", type=int, default=0)

    sp = sub.add_parser("ingest")
    common(sp)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--first", type=int, default=0)
    sp.add_argument("--batch", type=int, default=100)
    sp.add_argument("--prefix", default="e")

    sp = sub.add_parser("drain")
    common(sp, http=False, mock=True)
    sp.add_argument("--target", type=int, required=True)
    sp.add_argument("--poll", type=float, default=0.2)
    sp.add_argument("command", nargs="+")

    sp = sub.add_parser("latency")
    common(sp, mock=True)
    sp.add_argument("--devices", type=int, default=2000)
    sp.add_argument("--rate", type=float, default=2000)
    sp.add_argument("--seconds", type=float, default=20)
    sp.add_argument("--settle", type=float, default=30,
                    help="seconds to wait for the last pushes")
    sp.add_argument("--prefix", default="L")
    sp.add_argument("--dump", help="write message_id, post time, latency "
                    "ms and mock connection of every push to this file")

    args = p.parse_args()
    if getattr(args, "count", 1) < 1 or getattr(args, "conns", 1) < 1:
        die("--count and --conns must be positive")
    {"register": cmd_register, "ingest": cmd_ingest, "drain": cmd_drain,
     "latency": cmd_latency}[args.cmd](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Load generator and measurements for contrib/bench/inbox-bench.sh.

Python 3 standard library only (asyncio, raw sockets, hmac). It speaks
HTTP/1.1 keep-alive (Content-Length framed answers, what pushrelayd sends)
and just enough RFC 6455 for a client: a masked text frame out, text,
ping, pong and close frames in, fragments reassembled.

  ws-load.py register --port P --key K --first F --count N [--prefix X]
        PUT /v1/devices/dX<i> {"user":"uX<i>","platform":"fcm",
        "token":"tX<i>"} for i in [F, F+N), over --conns connections.
  ws-load.py ingest --port P --key K --user U --count N [--batch 100]
        [--prefix b]
        POST /v1/events: N events for user U in batches, each with a
        ~200-byte chat payload and push mode "none".
  ws-load.py drain --port P --secret S --user U --device D --expect N
        [--limit 500] [--runs 3] [--ack] [--pid DAEMON_PID]
        fetches GET /v1/inbox?after=A&limit=L page by page over one
        keep-alive connection (after = the last page's next) until "more"
        is false; with --ack, POST /v1/inbox/ack {"up_to":next} after each
        page (--runs must then be 1: the backlog is gone afterwards).
        Prints messages/s and ms per page for each run, best and median.
  ws-load.py live --port P --key K --secret S --first F --clients N
        --rate R --seconds T [--ack] [--pid DAEMON_PID]
        opens N WebSocket streams (GET /v1/stream, users u<F>..,
        devices d<F>.., a token each), waits until all are up, then posts
        single events at a steady R/s for T s, each to a random connected
        user, over --posters keep-alive connections, and records the post
        time and the frame arrival time of each event id. Prints
        p50/p99/max latency and the events lost (answered 202 but no frame
        within --lost-after s).

Every loop is bounded by a count and a deadline. Output is "name value"
lines for the shell to pick up; errors go to stderr, exit status 1.
Loopback only: --host must be a loopback address.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import random
import resource
import socket
import statistics
import struct
import sys
import time


class Fatal(Exception):
    pass


def die(msg):
    """Stop the command: main() prints msg and exits 1."""
    raise Fatal(msg)


def out(name, *values):
    print(name, *values, flush=True)


now = time.perf_counter


# ---- client tokens ---------------------------------------------------------

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def client_token(secret, user, device, ttl=7200):
    head = b64u(b'{"alg":"HS256","typ":"JWT"}')
    claims = b64u(json.dumps({"sub": user, "device": device,
                              "exp": int(time.time()) + ttl},
                             separators=(",", ":")).encode())
    signing = head + b"." + claims
    sig = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + b64u(sig)).decode()


# ---- payloads --------------------------------------------------------------

WORDS = ("are we still on for lunch tomorrow I can bring the slides the "
         "meeting moved to three please call me when you land sounds good "
         "see you there").split()


def payload(i):
    """A chat message of about 200 bytes of JSON, varied per event."""
    r = random.Random(i)
    text = " ".join(r.choice(WORDS) for _ in range(24))
    p = {"type": "message", "conversation": "conv-%04d" % (i % 997),
         "from": "user-%d" % (i % 101), "text": text[:100],
         "sent_at": "2024-05-01T12:%02d:%02d.%03dZ" % (i // 60 % 60, i % 60,
                                                       i % 1000)}
    return p


# ---- CPU accounting --------------------------------------------------------

HZ = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    """(main thread ticks, other threads ticks, machine idle, machine
    total) of the daemon pid, or None without a pid."""
    if not pid:
        return None
    main = other = 0
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        n = int(fields[11]) + int(fields[12])  # utime, stime
        if int(t) == pid:
            main += n
        else:
            other += n
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:9]]
    return main, other, cpu[3] + cpu[4], sum(cpu)


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class CpuWindow:
    """CPU of the daemon's loop thread, its other threads, this tool and
    everything else, over a window, in % of one core."""

    def __init__(self, pid):
        self.pid = pid
        self.t0 = now()
        self.b = ticks(pid)
        self.s0 = self_cpu()

    def report(self, prefix):
        secs = now() - self.t0
        a = ticks(self.pid)
        gen = 100 * (self_cpu() - self.s0) / secs if secs > 0 else 0
        if not self.b or not a or secs <= 0:
            out(prefix + "_cpu", "- - %.0f -" % gen)
            return
        loop = 100 * (a[0] - self.b[0]) / HZ / secs
        store = 100 * (a[1] - self.b[1]) / HZ / secs
        cores = os.cpu_count() or 1
        dt = a[3] - self.b[3]
        busy = 1 - (a[2] - self.b[2]) / dt if dt > 0 else 0
        other = max(0, busy * cores * 100 - loop - store - gen)
        out(prefix + "_cpu", "%.0f %.0f %.0f %.0f" % (loop, store, gen, other))


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, TypeError):
        pass
    return 0


# ---- HTTP/1.1 keep-alive ---------------------------------------------------


def check_host(host):
    try:
        ip = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        die("cannot resolve %s" % host)
    if not ip.is_loopback:
        die("%s is not a loopback address" % host)


async def open_conn(args):
    r, w = await asyncio.wait_for(
        asyncio.open_connection(args.host, args.port), args.connect_timeout)
    sock = w.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return r, w


def http_request(method, path, bearer, body=None):
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    if bearer:
        head += "Authorization: Bearer %s\r\n" % bearer
    if body is None:
        return (head + "\r\n").encode()
    if not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body, separators=(",", ":")).encode()
    head += ("Content-Type: application/json\r\n"
             "Content-Length: %d\r\n\r\n" % len(body))
    return head.encode() + body


async def http_read(r, timeout):
    """One Content-Length framed answer: (status, body bytes)."""
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        die("bad status line %r" % lines[0])
    clen = None
    for h in lines[1:]:
        k, _, v = h.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            clen = int(v)
        elif k == "transfer-encoding":
            die("chunked answers are not understood")
    body = b""
    if clen:
        body = await asyncio.wait_for(r.readexactly(clen), timeout)
    return status, body


async def call(r, w, method, path, bearer, body=None, timeout=30):
    w.write(http_request(method, path, bearer, body))
    return await http_read(r, timeout)


async def bulk(args, reqs, what):
    """Every request in reqs over args.conns connections, args.depth
    pipelined on each; returns (seconds, {status: count}, first bad
    bodies, 2xx bodies)."""
    status, bad, good = {}, [], []
    it = iter(enumerate(reqs))

    async def worker():
        r, w = await open_conn(args)
        try:
            while True:
                batch = []
                for _ in range(args.depth):
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    batch.append(nxt)
                if not batch:
                    return
                w.write(b"".join(req for _, req in batch))
                for _ in batch:
                    st, body = await http_read(r, args.timeout)
                    status[st] = status.get(st, 0) + 1
                    if 200 <= st < 300:
                        good.append(body)
                    elif len(bad) < 5:
                        bad.append(body[:300])
        finally:
            w.close()

    t0 = now()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(worker() for _ in range(args.conns))),
            args.timeout)
    except asyncio.TimeoutError:
        die("%s: time cap of %ss hit with %d of %d answered" %
            (what, args.timeout, sum(status.values()), len(reqs)))
    return now() - t0, status, bad, good


async def cmd_register(args):
    reqs = [http_request("PUT", "/v1/devices/d%s%d" % (args.prefix, i),
                         args.key,
                         {"user": "u%s%d" % (args.prefix, i),
                          "platform": "fcm",
                          "token": "t%s%d" % (args.prefix, i)})
            for i in range(args.first, args.first + args.count)]
    secs, status, bad, _ = await bulk(args, reqs, "register")
    ok = sum(n for st, n in status.items() if st in (200, 201))
    out("registered", ok)
    out("register_seconds", "%.3f" % secs)
    if ok != args.count:
        die("registered %d of %d devices: %s %s" %
            (ok, args.count, status, bad))


async def cmd_ingest(args):
    reqs = []
    for first in range(0, args.count, args.batch):
        evs = [{"id": "%s-%d" % (args.prefix, i), "user": args.user,
                "payload": payload(i), "push": {"mode": "none"}}
               for i in range(first, min(args.count, first + args.batch))]
        reqs.append(http_request("POST", "/v1/events", args.key,
                                 {"events": evs}))
    secs, status, bad, good = await bulk(args, reqs, "ingest")
    queued = sum(sum(1 for x in json.loads(b).get("results", [])
                     if x.get("status") == "queued") for b in good)
    out("queued", queued)
    out("ingest_seconds", "%.3f" % secs)
    if queued != args.count:
        die("ingest: %d of %d events queued: %s %s" %
            (queued, args.count, status, bad))


# ---- drain -----------------------------------------------------------------


async def drain_once(args, tok, r, w, acks):
    """One drain of the backlog; returns (messages, [page seconds],
    total seconds, parse seconds); the time of each ack goes to acks."""
    after, msgs, pages, parse = 0, 0, [], 0.0
    last_seq = 0
    t0 = now()
    deadline = t0 + args.timeout
    for _ in range(args.max_pages):
        if now() > deadline:
            die("drain: time cap of %ss hit after %d messages" %
                (args.timeout, msgs))
        p0 = now()
        st, body = await call(r, w, "GET", "/v1/inbox?after=%d&limit=%d" %
                              (after, args.limit), tok, None, args.timeout)
        p1 = now()
        if st != 200:
            die("inbox answered %d: %s" % (st, body[:300]))
        doc = json.loads(body)
        page = doc["messages"]
        for m in page:
            if m["seq"] <= last_seq:
                die("seq %d after %d: out of order" % (m["seq"], last_seq))
            last_seq = m["seq"]
        parse += now() - p1
        msgs += len(page)
        if page:
            after = doc["next"]
        if args.ack and page:
            a0 = now()
            st, body = await call(r, w, "POST", "/v1/inbox/ack", tok,
                                  {"up_to": after}, args.timeout)
            if st != 200:
                die("ack answered %d: %s" % (st, body[:300]))
            acks.append(now() - a0)
        pages.append(p1 - p0)
        if not doc["more"]:
            break
    else:
        die("drain: more than %d pages" % args.max_pages)
    return msgs, pages, now() - t0, parse


async def cmd_drain(args):
    if args.ack and args.runs != 1:
        die("--ack consumes the backlog: --runs 1")
    tok = client_token(args.secret, args.user, args.device)
    r, w = await open_conn(args)
    rates, all_pages, per_run, acks = [], [], [], []
    cpu = CpuWindow(args.pid)
    for i in range(args.runs):
        msgs, pages, secs, parse = await drain_once(args, tok, r, w, acks)
        if msgs != args.expect:
            die("drain run %d: %d messages, expected %d" %
                (i + 1, msgs, args.expect))
        rate = msgs / secs
        rates.append(rate)
        all_pages.extend(pages)
        per_run.append((rate, secs, pages, parse))
        out("run", i + 1, msgs, len(pages), "%.4f" % secs, "%.0f" % rate,
            "%.2f" % (1000 * secs / len(pages)),
            "%.2f" % (1000 * parse / len(pages)))
    cpu.report("drain")
    if args.ack:
        # Everything acknowledged: the inbox is empty now.
        st, body = await call(r, w, "GET", "/v1/inbox?limit=1", tok, None,
                              args.timeout)
        left = len(json.loads(body)["messages"]) if st == 200 else -1
        out("left_after_ack", left)
        if left != 0:
            die("after acking everything the inbox still answers %d "
                "(status %d)" % (left, st))
    w.close()
    rates_sorted = sorted(rates)
    med = statistics.median(rates_sorted)
    best = max(per_run, key=lambda x: x[0])
    all_pages.sort()
    out("msgs_per_s_best", "%.0f" % best[0])
    # The same run counting only the time from each GET out to its last
    # byte in: the client's parsing (and acks) left out.
    out("msgs_per_s_server", "%.0f" % (args.expect / sum(best[2])))
    out("msgs_per_s_median", "%.0f" % med)
    # ms per page: wall time of the run / pages (request out to the next
    # request out, client parse included) for the median run, and the
    # request-to-last-byte time of the pages over all runs.
    mid = sorted(per_run, key=lambda x: x[0])[len(per_run) // 2]
    out("ms_per_page", "%.2f" % (1000 * mid[1] / len(mid[2])))
    out("page_ms_p50", "%.2f" % (1000 * all_pages[len(all_pages) // 2]))
    out("page_ms_max", "%.2f" % (1000 * all_pages[-1]))
    out("parse_ms_per_page", "%.2f" % (1000 * mid[3] / len(mid[2])))
    if acks:
        acks.sort()
        out("ack_ms", "%.2f %.2f" % (1000 * acks[len(acks) // 2],
                                     1000 * acks[-1]))


# ---- WebSocket -------------------------------------------------------------


def ws_frame(opcode, data):
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return head + mask + body


class Stream:
    __slots__ = ("i", "user", "r", "w", "frames", "acks", "closed")

    def __init__(self, i):
        self.i = i
        self.user = "u%d" % i
        self.r = self.w = None
        self.frames = 0
        self.acks = 0
        self.closed = None


async def ws_open(args, st, tok):
    key = base64.b64encode(os.urandom(16)).decode()
    r, w = await open_conn(args)
    w.write(("GET /v1/stream?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
             "Authorization: Bearer %s\r\n\r\n" % (key, tok)).encode())
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"),
                                  args.connect_timeout)
    text = head.decode("latin-1")
    if not text.startswith("HTTP/1.1 101"):
        w.close()
        raise RuntimeError("stream %d: %s" % (st.i, text.split("\r\n")[0]))
    want = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    if want.decode() not in text:
        w.close()
        raise RuntimeError("stream %d: wrong Sec-WebSocket-Accept" % st.i)
    st.r, st.w = r, w


async def ws_reader(args, st, arrivals):
    """Read frames until the stream closes or the task is cancelled."""
    r, w = st.r, st.w
    msg, msg_op = bytearray(), 0
    try:
        while True:
            h = await r.readexactly(2)
            fin, op = h[0] & 0x80, h[0] & 0x0F
            n = h[1] & 0x7F
            if h[1] & 0x80:
                raise RuntimeError("masked server frame")
            if n == 126:
                n = struct.unpack("!H", await r.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await r.readexactly(8))[0]
            if n > args.max_frame:
                raise RuntimeError("frame of %d bytes" % n)
            data = await r.readexactly(n) if n else b""
            t = now()
            if op == 0x9:  # ping: pong with the same payload
                w.write(ws_frame(0xA, data))
                continue
            if op == 0xA:
                continue
            if op == 0x8:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 \
                    else 1005
                st.closed = "close %d %s" % (code, data[2:].decode(
                    "utf-8", "replace"))
                try:
                    w.write(ws_frame(0x8, data[:2]))
                except Exception:
                    pass
                return
            if op in (0x1, 0x2):
                msg, msg_op = bytearray(data), op
            elif op == 0x0:
                msg += data
            if not fin:
                continue
            if msg_op != 0x1:
                raise RuntimeError("binary message")
            doc = json.loads(msg)
            mid = doc.get("id")
            if mid is not None:
                st.frames += 1
                if mid not in arrivals:
                    arrivals[mid] = (t, st.i)
                if args.ack:
                    w.write(ws_frame(0x1, b'{"ack":%d}' % doc["seq"]))
            elif "acked" in doc:
                st.acks += 1
            elif "error" in doc:
                raise RuntimeError("stream error: %s" % msg.decode())
    except asyncio.CancelledError:
        raise
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        st.closed = "eof (%s)" % type(e).__name__
    except Exception as e:  # noqa: BLE001 - report, do not crash the run
        st.closed = "error: %s" % e


async def loop_lag(stop, lags):
    """How late a 10 ms timer fires: this tool's own scheduling delay,
    which every latency sample includes."""
    while not stop.is_set():
        t = now()
        await asyncio.sleep(0.01)
        lags.append(now() - t - 0.01)


async def cmd_live(args):
    if args.clients < 1 or args.rate <= 0 or args.seconds <= 0:
        die("clients, rate and seconds must be positive")
    # --timeout bounds everything but the posting itself.
    run_deadline = now() + args.timeout + args.seconds
    streams = [Stream(i) for i in range(args.first, args.first + args.clients)]
    arrivals = {}
    rss0 = rss_kb(args.pid)

    # Connect, at most --connect-parallel handshakes at once.
    sem = asyncio.Semaphore(args.connect_parallel)
    failures = []

    async def connect(st):
        async with sem:
            try:
                await ws_open(args, st, client_token(
                    args.secret, st.user, "d%d" % st.i))
            except (OSError, RuntimeError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError, asyncio.LimitOverrunError) \
                    as e:
                failures.append(str(e) or type(e).__name__)

    t0 = now()
    try:
        await asyncio.wait_for(asyncio.gather(*(connect(s) for s in streams)),
                               args.connect_cap)
    except asyncio.TimeoutError:
        die("only %d of %d streams connected within %ss" %
            (sum(1 for s in streams if s.w), args.clients, args.connect_cap))
    connected = [s for s in streams if s.w]
    out("connected", len(connected))
    out("connect_seconds", "%.3f" % (now() - t0))
    if failures:
        die("%d streams failed to connect, e.g. %s" %
            (len(failures), failures[0]))
    readers = [asyncio.ensure_future(ws_reader(args, s, arrivals))
               for s in connected]
    # Let the initial (empty) backlog fetches finish and the loop settle.
    await asyncio.sleep(args.settle)
    early = [s for s in connected if s.closed]
    if early:
        die("%d streams closed before the run: %s" %
            (len(early), early[0].closed))
    rss1 = rss_kb(args.pid)

    # Post single events at a steady pace over keep-alive connections.
    n = int(args.rate * args.seconds)
    rng = random.Random(args.seed)
    idle = asyncio.Queue()
    posters = []
    for _ in range(args.posters):
        r, w = await open_conn(args)
        posters.append(w)
        idle.put_nowait((r, w))
    posted = {}    # id -> post time
    answered = []  # seconds from each post to its answer
    answer_at = {}  # id -> time of its answer
    accepted = set()
    status, bad, late = {}, [], 0
    stop = asyncio.Event()
    lags = []
    lag_task = asyncio.ensure_future(loop_lag(stop, lags))
    pending = set()

    async def post(conn, k, user):
        r, w = conn
        eid = "%s-%d" % (run_id, k)
        body = {"id": eid, "user": user, "payload": payload(k),
                "push": {"mode": "none"}}
        req = http_request("POST", "/v1/events", args.key, body)
        posted[eid] = now()
        try:
            w.write(req)
            st, resp = await http_read(r, args.timeout)
        except (OSError, asyncio.IncompleteReadError,
                asyncio.TimeoutError) as e:
            # The connection is gone: tell the dispatcher, which stops.
            idle.put_nowait("posting %s: %s" % (eid, str(e) or
                                               type(e).__name__))
            return
        answer_at[eid] = now()
        answered.append(answer_at[eid] - posted[eid])
        status[st] = status.get(st, 0) + 1
        if st == 202 and b'"queued"' in resp:
            accepted.add(eid)
        elif len(bad) < 5:
            bad.append("%d %s" % (st, resp[:200]))
        idle.put_nowait(conn)

    # Ids unique across runs against one database: a repeated id would be
    # answered "duplicate" and never reach a stream.
    run_id = "L%x" % int(time.time() * 1000)
    cpu = CpuWindow(args.pid)
    t_start = now()
    for k in range(n):
        t_due = t_start + k / args.rate
        d = t_due - now()
        if d > 0:
            await asyncio.sleep(d)
        if now() > run_deadline:
            die("time cap of %ss hit while posting" % args.timeout)
        conn = await asyncio.wait_for(idle.get(), args.timeout)
        if isinstance(conn, str):
            die(conn)
        if now() - t_due > 0.01:
            late += 1
        st = connected[rng.randrange(len(connected))]
        task = asyncio.ensure_future(post(conn, k, st.user))
        pending.add(task)
        task.add_done_callback(pending.discard)
    t_posted = now()
    if pending:
        await asyncio.wait_for(asyncio.gather(*pending), args.timeout)
    # Wait for the frames: until every accepted event arrived, or
    # --lost-after seconds after the last post.
    t_wait_end = t_posted + args.lost_after
    while now() < t_wait_end and not accepted <= arrivals.keys():
        await asyncio.sleep(0.01)
    cpu.report("live")
    stop.set()
    await lag_task
    rss2 = rss_kb(args.pid)

    lat = sorted(arrivals[e][0] - posted[e] for e in accepted
                 if e in arrivals and arrivals[e][0] - posted[e] <=
                 args.lost_after)
    lost = len(accepted) - len(lat)
    closed = [s for s in connected if s.closed]
    for t in readers:
        t.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for s in connected:
        s.w.close()
    for w in posters:
        w.close()

    def pct(p):
        if not lat:
            return float("nan")
        return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))]

    out("posted", n)
    out("accepted", len(accepted))
    out("post_seconds", "%.3f" % (t_posted - t_start))
    out("rate_achieved", "%.1f" % (n / (t_posted - t_start)))
    out("late_posts", late)
    out("received", len(lat))
    out("lost", lost)
    out("latency_ms", "%.2f %.2f %.2f %.2f" % (pct(0.5), pct(0.9), pct(0.99),
                                               1000 * lat[-1] if lat else
                                               float("nan")))
    answered.sort()
    out("post_ms", "%.2f %.2f %.2f" % tuple(
        1000 * answered[min(len(answered) - 1, int(p * len(answered)))]
        for p in (0.5, 0.99, 1.0)))
    # The frame against the 202: both leave after the commit, so this is
    # the wake, the stream's fetch and the frame, without the commit.
    after = sorted(arrivals[e][0] - answer_at[e] for e in accepted
                   if e in arrivals and e in answer_at)
    if after:
        out("frame_after_202_ms", "%.2f %.2f %.2f" % tuple(
            1000 * after[min(len(after) - 1, int(p * len(after)))]
            for p in (0.5, 0.99, 1.0)))
    lags.sort()
    out("tool_lag_ms", "%.2f %.2f" % (
        1000 * lags[int(0.99 * len(lags))] if lags else 0,
        1000 * lags[-1] if lags else 0))
    out("frames", sum(s.frames for s in connected))
    out("acks", sum(s.acks for s in connected))
    out("closed_during_run", len(closed))
    out("rss_kb", rss0, rss1, rss2)
    if len(accepted) != n:
        print("ws-load: %d of %d posts queued; answers %s, e.g. %s" %
              (len(accepted), n, status, bad), file=sys.stderr)
    if closed:
        print("ws-load: %d streams closed during the run, e.g. %s" %
              (len(closed), closed[0].closed), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=120,
                    help="cap of the whole command (live: besides its "
                    "--seconds of posting), and of one answer")
    ap.add_argument("--connect-timeout", type=float, default=10)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("register")
    p.add_argument("--key", required=True)
    p.add_argument("--prefix", default="",
                   help="device d<prefix><i> of user u<prefix><i>")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--depth", type=int, default=16)

    p = sub.add_parser("ingest")
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--prefix", default="b")
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--depth", type=int, default=4)

    p = sub.add_parser("drain")
    p.add_argument("--secret", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--ack", action="store_true")
    p.add_argument("--max-pages", type=int, default=100000)
    p.add_argument("--pid", type=int, default=0)

    p = sub.add_parser("live")
    p.add_argument("--key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--posters", type=int, default=16,
                   help="keep-alive connections that post events")
    p.add_argument("--ack", action="store_true",
                   help='answer each frame with {"ack":seq}')
    p.add_argument("--lost-after", type=float, default=5)
    p.add_argument("--connect-parallel", type=int, default=64)
    p.add_argument("--connect-cap", type=float, default=60)
    p.add_argument("--settle", type=float, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-frame", type=int, default=1 << 20)
    p.add_argument("--pid", type=int, default=0)

    args = ap.parse_args()
    fn = {"register": cmd_register, "ingest": cmd_ingest,
          "drain": cmd_drain, "live": cmd_live}[args.cmd]
    cap = args.timeout + 30 + (args.seconds if args.cmd == "live" else 0)
    try:
        check_host(args.host)
        asyncio.run(asyncio.wait_for(fn(args), cap))
    except Fatal as e:
        msg = str(e)
    except asyncio.TimeoutError:
        msg = "%s: time cap hit" % args.cmd
    except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
        msg = "%s: %s" % (args.cmd, e)
    else:
        return
    print("ws-load: " + msg, file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()

/*
 * h2post.c - a small loopback load generator that posts a unique body per
 * request, over h2c (HTTP/2 with prior knowledge) or HTTP/1.1 keep-alive.
 *
 * h2load and wrk send one fixed body, and pushrelay answers a repeated
 * event id with "duplicate" and stores nothing, which would flatter an
 * ingest benchmark. h2post fills a body template instead: every "%ID%"
 * becomes a new process-unique string (a per-run prefix and a counter), so
 * each event of each request is new, and every "%U%" the next number of
 * 0..USERS-1 (-u), to spread events over users. It runs N requests over C
 * connections (M streams in flight per HTTP/2 connection, one request at a time
 * per HTTP/1.1 connection), stops at the -T time cap whatever is left, and
 * prints requests/s, events/s, status counts, how many results said
 * "duplicate", and p50/p90/p99/max latency (submit to last response byte).
 *
 * One thread and poll(2). Memory is bounded by the arguments: one latency
 * sample per request (N), one body buffer per stream slot (C x M), fixed
 * socket buffers per connection. Loopback only: a host that does not
 * resolve to 127.0.0.0/8 or ::1 is refused.
 *
 *   cc -O2 -Wall -Wextra -o h2post h2post.c -lnghttp2
 *   h2post -n 100000 -c 8 -m 64 -T 30 -e 1 \
 *          -H 'Authorization: Bearer KEY' -H 'Content-Type: application/json' \
 *          -d '{"id":"%ID%","user":"u"}' http://127.0.0.1:8080/v1/events
 *
 * Only Content-Length framed HTTP/1.1 responses are understood (pushrelay
 * never sends chunked ones); a chunked answer fails the connection.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS   1024
#define MAX_STREAMS 1024
#define MAX_HEADERS 32
#define MAX_BODY    (1024 * 1024)
#define MAX_SECONDS 3600
#define IN_BUF	    (64 * 1024) /* h1 response head + body chunk; h2 reads */
#define OUT_MIN	    (64 * 1024) /* output buffer per connection, at least */
#define ID_TOKEN    "%ID%"
#define USER_TOKEN  "%U%"
#define DUP_NEEDLE  "\"duplicate\""

enum proto { P_H2, P_H1 };

struct conn;

/* One request in flight: an HTTP/2 stream, or the HTTP/1.1 request. */
struct slot {
	struct conn *c;
	int busy;
	uint64_t t0;  /* ns, when the request was submitted */
	int status;   /* :status, 0 until the response head */
	size_t dup_m; /* matched prefix of DUP_NEEDLE so far */
	long dups;    /* DUP_NEEDLE seen in this response's body */
	char *body;   /* max_body bytes, owned by the slot */
	size_t len, off;
};

enum h1_state { H1_IDLE, H1_HEAD, H1_BODY };

struct conn {
	int fd;
	int connecting;
	int connected; /* once connected: worth connecting again if lost */
	int idx;
	nghttp2_session *h2;
	struct slot *slots; /* M (h2) or 1 (h1) */
	int active;
	unsigned char *out; /* pending bytes to write */
	size_t out_len, out_off, out_cap;
	uint64_t produced; /* bytes the h2 session handed over, in total */
	unsigned char in[IN_BUF];
	size_t in_len;
	/* HTTP/1.1 response parsing */
	enum h1_state h1;
	size_t body_left;
	int close_after;
};

enum { T_NONE, T_ID, T_USER };

struct seg {
	const char *p; /* into the template */
	size_t len;
	int kind; /* what goes after this text: T_ID, T_USER or nothing */
};

static struct {
	enum proto proto;
	long n, conns, streams, seconds, events;
	const char *method;
	char host[256], port[16], authority[300], path[2048];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const char *hdr_name[MAX_HEADERS], *hdr_value[MAX_HEADERS];
	size_t n_hdr;
	char *tmpl;
	size_t tmpl_len;
	struct seg *segs;
	size_t n_segs, n_ids, n_users, max_body;
	unsigned long long next_user;
	long users; /* %U% runs through 0..users-1 */
	char prefix[40];
	unsigned long long next_id;
	size_t dup_fail[sizeof(DUP_NEEDLE)];

	/* progress */
	uint64_t start, deadline;
	long issued, done, failed, unfinished;
	int stopping; /* the run is over: open requests are unfinished */
	long reconnects, max_reconnects, connect_errors, proto_errors;
	long status[600];
	long status_other;
	long dups;
	uint32_t *lat_us; /* n samples */
	long n_lat;
	struct conn *c;
} B;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("h2post: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long num(const char *s, const char *what, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die("%s must be an integer %ld..%ld, not \"%s\"", what, lo, hi,
		    s);
	return v;
}

static void usage(void)
{
	fputs("usage: h2post [-p h2|h1] [-n REQUESTS] [-c CONNS] [-m STREAMS]"
	      " [-T SECONDS]\n"
	      "              [-e EVENTS_PER_REQUEST] [-u USERS] [-X METHOD]"
	      " [-H 'Name: value']...\n"
	      "              [-d BODY | -d @FILE] http://127.0.0.1:PORT/PATH\n"
	      "Each \"%ID%\" in the body becomes a unique id, each \"%U%\" the"
	      " next of 0..USERS-1.\nLoopback only.\n",
	      stderr);
	exit(2);
}

/* ---- arguments ----------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!f)
		die("%s: %s", path, strerror(errno));
	buf = malloc(MAX_BODY + 1);
	if (!buf)
		die("out of memory");
	n = fread(buf, 1, MAX_BODY + 1, f);
	if (ferror(f))
		die("%s: read error", path);
	fclose(f);
	if (n > MAX_BODY)
		die("%s: larger than %d bytes", path, MAX_BODY);
	buf[n] = 0;
	*len = n;
	return buf;
}

/* Split the template at each %ID% once, so filling a body is a copy. */
/* The next %ID% or %U% in [p, end), or NULL; *kind says which. */
static const char *next_token(const char *p, const char *end, int *kind)
{
	const char *id = memmem(p, (size_t)(end - p), ID_TOKEN, 4);
	const char *u = memmem(p, (size_t)(end - p), USER_TOKEN, 3);

	if (u && (!id || u < id)) {
		*kind = T_USER;
		return u;
	}
	*kind = id ? T_ID : T_NONE;
	return id;
}

/* Split the template at each token once, so filling a body is a copy. */
static void compile_template(void)
{
	const char *p = B.tmpl, *end = B.tmpl + B.tmpl_len, *hit;
	size_t cap = 1, room;
	int kind;

	for (hit = next_token(p, end, &kind); hit;
	     hit = next_token(hit + 1, end, &kind))
		cap++;
	B.segs = calloc(cap, sizeof(*B.segs));
	if (!B.segs)
		die("out of memory");
	for (;;) {
		hit = next_token(p, end, &kind);
		B.segs[B.n_segs].p = p;
		B.segs[B.n_segs].len =
		    hit ? (size_t)(hit - p) : (size_t)(end - p);
		B.segs[B.n_segs].kind = kind;
		B.n_segs++;
		if (!hit)
			break;
		if (kind == T_ID) {
			B.n_ids++;
			p = hit + 4;
		} else {
			B.n_users++;
			p = hit + 3;
		}
	}
	/* An id is the prefix and at most 20 digits; a user at most 7. */
	room = B.tmpl_len + B.n_ids * (strlen(B.prefix) + 20) + B.n_users * 7;
	if (room > MAX_BODY)
		die("a filled body may exceed %d bytes", MAX_BODY);
	B.max_body = room;
}

static void fill_body(struct slot *s)
{
	char *o = s->body;
	size_t room = B.max_body + 1;
	int k;

	for (size_t i = 0; i < B.n_segs; i++) {
		memcpy(o, B.segs[i].p, B.segs[i].len);
		o += B.segs[i].len;
		room -= B.segs[i].len;
		if (B.segs[i].kind == T_NONE)
			continue;
		if (B.segs[i].kind == T_ID)
			k = snprintf(o, room, "%s%llu", B.prefix, B.next_id++);
		else
			k = snprintf(o, room, "%lu",
				     (unsigned long)(B.next_user++ % B.users));
		o += k;
		room -= (size_t)k;
	}
	s->len = (size_t)(o - s->body);
	s->off = 0;
}

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

static void parse_url(const char *url)
{
	struct addrinfo hints, *res, *ai;
	const char *p, *host, *hend, *slash;
	size_t hl;
	int rc;

	if (strncmp(url, "http://", 7) != 0)
		die("only http:// URLs (h2c or HTTP/1.1 on loopback)");
	p = url + 7;
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	if (*p == '[') {
		host = p + 1;
		hend = memchr(host, ']', (size_t)(slash - host));
		if (!hend)
			die("bad IPv6 literal in %s", url);
		p = hend + 1;
	} else {
		host = p;
		hend = memchr(p, ':', (size_t)(slash - p));
		if (!hend)
			hend = slash;
		p = hend;
	}
	hl = (size_t)(hend - host);
	if (hl == 0 || hl >= sizeof(B.host))
		die("bad host in %s", url);
	memcpy(B.host, host, hl);
	B.host[hl] = 0;
	if (*p == ':') {
		size_t pl = (size_t)(slash - p - 1);

		if (pl == 0 || pl >= sizeof(B.port))
			die("bad port in %s", url);
		memcpy(B.port, p + 1, pl);
		B.port[pl] = 0;
		num(B.port, "port", 1, 65535);
	} else {
		snprintf(B.port, sizeof(B.port), "80");
	}
	snprintf(B.path, sizeof(B.path), "%s", *slash ? slash : "/");
	if (strchr(B.host, ':'))
		snprintf(B.authority, sizeof(B.authority), "[%s]:%s", B.host,
			 B.port);
	else
		snprintf(B.authority, sizeof(B.authority), "%s:%s", B.host,
			 B.port);

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(B.host, B.port, &hints, &res);
	if (rc)
		die("%s: %s", B.host, gai_strerror(rc));
	/* Every address the name has must be loopback, not just the first. */
	for (ai = res; ai; ai = ai->ai_next)
		if (!is_loopback(ai->ai_addr))
			die("%s is not a loopback address: refusing", B.host);
	memcpy(&B.addr, res->ai_addr, res->ai_addrlen);
	B.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void add_header(char *h)
{
	char *colon = strchr(h, ':'), *v;

	if (!colon || colon == h)
		die("a header is 'Name: value', not \"%s\"", h);
	if (B.n_hdr == MAX_HEADERS)
		die("at most %d headers", MAX_HEADERS);
	*colon = 0;
	for (char *q = h; *q; q++) /* HTTP/2 wants lower case names */
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (strcasecmp(h, "host") == 0 ||
	    strcasecmp(h, "content-length") == 0 ||
	    strcasecmp(h, "connection") == 0)
		die("h2post sets the %s header itself", h);
	B.hdr_name[B.n_hdr] = h;
	B.hdr_value[B.n_hdr] = v;
	B.n_hdr++;
}

/* ---- accounting ---------------------------------------------------------- */

static void dup_init(void)
{
	const char *n = DUP_NEEDLE;
	size_t k = 0, len = strlen(n);

	B.dup_fail[0] = 0;
	for (size_t i = 1; i < len; i++) {
		while (k && n[i] != n[k])
			k = B.dup_fail[k - 1];
		if (n[i] == n[k])
			k++;
		B.dup_fail[i] = k;
	}
}

/* Count DUP_NEEDLE in a body that arrives in pieces (KMP). */
static void dup_scan(struct slot *s, const unsigned char *p, size_t len)
{
	const char *n = DUP_NEEDLE;
	size_t nl = sizeof(DUP_NEEDLE) - 1, m = s->dup_m;

	for (size_t i = 0; i < len; i++) {
		while (m && p[i] != (unsigned char)n[m])
			m = B.dup_fail[m - 1];
		if (p[i] == (unsigned char)n[m])
			m++;
		if (m == nl) {
			s->dups++;
			m = B.dup_fail[m - 1];
		}
	}
	s->dup_m = m;
}

static int can_issue(void)
{
	return B.issued < B.n && now_ns() < B.deadline;
}

static void slot_start(struct slot *s)
{
	fill_body(s);
	s->busy = 1;
	s->status = 0;
	s->dup_m = 0;
	s->dups = 0;
	s->t0 = now_ns();
	s->c->active++;
	B.issued++;
}

/* A request finished: ok when a whole response arrived. */
static void slot_end(struct slot *s, int ok)
{
	uint64_t us;

	if (!s->busy)
		return;
	s->busy = 0;
	s->c->active--;
	if (B.stopping) {
		B.unfinished++;
		return;
	}
	if (!ok || s->status == 0) {
		B.failed++;
		return;
	}
	B.done++;
	if (s->status >= 100 && s->status < 600)
		B.status[s->status]++;
	else
		B.status_other++;
	B.dups += s->dups;
	us = (now_ns() - s->t0) / 1000;
	if (B.n_lat < B.n)
		B.lat_us[B.n_lat++] =
		    us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* ---- output buffer ------------------------------------------------------- */

static size_t out_room(struct conn *c)
{
	if (c->out_off == c->out_len) {
		c->out_off = 0;
		c->out_len = 0;
	} else if (c->out_off > 0 && c->out_cap - c->out_len < c->out_cap / 4) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	return c->out_cap - c->out_len;
}

/* Write what is pending. 0, or -1 when the connection broke. */
static int flush_out(struct conn *c)
{
	ssize_t w;

	while (c->out_off < c->out_len) {
		w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		c->out_off += (size_t)w;
	}
	return 0;
}

/* ---- HTTP/2 -------------------------------------------------------------- */

static ssize_t h2_send_cb(nghttp2_session *session, const uint8_t *data,
			  size_t length, int flags, void *user_data)
{
	struct conn *c = user_data;
	size_t room = out_room(c);

	(void)session;
	(void)flags;
	if (room == 0)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (length > room)
		length = room;
	memcpy(c->out + c->out_len, data, length);
	c->out_len += length;
	c->produced += length;
	return (ssize_t)length;
}

static int h2_header_cb(nghttp2_session *session, const nghttp2_frame *frame,
			const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen, uint8_t flags,
			void *user_data)
{
	struct slot *s;
	int st = 0;

	(void)flags;
	(void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || namelen != 7 ||
	    memcmp(name, ":status", 7) != 0 || valuelen != 3)
		return 0;
	s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!s)
		return 0;
	for (size_t i = 0; i < 3; i++)
		st = st * 10 + (value[i] - '0');
	if (st >= 200 || s->status == 0) /* a final answer replaces a 1xx */
		s->status = st;
	return 0;
}

static int h2_data_cb(nghttp2_session *session, uint8_t flags,
		      int32_t stream_id, const uint8_t *data, size_t len,
		      void *user_data)
{
	struct slot *s =
	    nghttp2_session_get_stream_user_data(session, stream_id);

	(void)flags;
	(void)user_data;
	if (s)
		dup_scan(s, data, len);
	return 0;
}

static int h2_close_cb(nghttp2_session *session, int32_t stream_id,
		       uint32_t error_code, void *user_data)
{
	struct slot *s =
	    nghttp2_session_get_stream_user_data(session, stream_id);

	(void)user_data;
	if (s)
		slot_end(s, error_code == NGHTTP2_NO_ERROR);
	return 0;
}

static ssize_t h2_body_cb(nghttp2_session *session, int32_t stream_id,
			  uint8_t *buf, size_t length, uint32_t *data_flags,
			  nghttp2_data_source *source, void *user_data)
{
	struct slot *s = source->ptr;
	size_t n = s->len - s->off;

	(void)session;
	(void)stream_id;
	(void)user_data;
	if (n > length)
		n = length;
	memcpy(buf, s->body + s->off, n);
	s->off += n;
	if (s->off == s->len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int h2_submit(struct conn *c, struct slot *s)
{
	nghttp2_nv nv[4 + MAX_HEADERS + 1];
	nghttp2_data_provider dp;
	char clen[24];
	size_t n = 0;
	int32_t id;

#define NV(nm, val)                                                            \
	do {                                                                   \
		nv[n].name = (uint8_t *)(nm);                                  \
		nv[n].namelen = strlen(nm);                                    \
		nv[n].value = (uint8_t *)(val);                                \
		nv[n].valuelen = strlen(val);                                  \
		nv[n].flags = NGHTTP2_NV_FLAG_NONE;                            \
		n++;                                                           \
	} while (0)
	slot_start(s);
	NV(":method", B.method);
	NV(":scheme", "http");
	NV(":authority", B.authority);
	NV(":path", B.path);
	for (size_t i = 0; i < B.n_hdr; i++)
		NV(B.hdr_name[i], B.hdr_value[i]);
	if (B.tmpl) {
		snprintf(clen, sizeof(clen), "%zu", s->len);
		NV("content-length", clen);
	}
#undef NV
	dp.source.ptr = s;
	dp.read_callback = h2_body_cb;
	id = nghttp2_submit_request(c->h2, NULL, nv, n, B.tmpl ? &dp : NULL, s);
	if (id < 0) {
		fprintf(stderr, "h2post: submit: %s\n", nghttp2_strerror(id));
		slot_end(s, 0);
		return -1;
	}
	return 0;
}

static void h2_fill(struct conn *c)
{
	for (long i = 0; i < B.streams && can_issue(); i++)
		if (!c->slots[i].busy && h2_submit(c, &c->slots[i]))
			break;
}

static int h2_open(struct conn *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_settings_entry iv[2] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24},
	};
	int rv;

	rv = nghttp2_session_callbacks_new(&cb);
	if (rv)
		return -1;
	nghttp2_session_callbacks_set_send_callback(cb, h2_send_cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_header_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb,
								  h2_data_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_close_cb);
	rv = nghttp2_session_client_new(&c->h2, cb, c);
	nghttp2_session_callbacks_del(cb);
	if (rv)
		return -1;
	rv = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
	if (rv == 0)
		rv = nghttp2_session_set_local_window_size(
		    c->h2, NGHTTP2_FLAG_NONE, 0, 1 << 24);
	return rv ? -1 : 0;
}

/* Run the session's output into the buffer and the socket, until the
 * session has nothing more or the socket is full. */
static int h2_pump(struct conn *c)
{
	uint64_t before;

	for (;;) {
		before = c->produced;
		if (nghttp2_session_send(c->h2))
			return -1;
		if (flush_out(c))
			return -1;
		if (c->produced == before || c->out_off < c->out_len)
			return 0;
	}
}

static int h2_read(struct conn *c)
{
	ssize_t r, used;

	for (;;) {
		r = recv(c->fd, c->in, sizeof(c->in), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0)
			return -1;
		used = nghttp2_session_mem_recv(c->h2, c->in, (size_t)r);
		if (used < 0) {
			if (B.proto_errors++ == 0)
				fprintf(stderr, "h2post: HTTP/2: %s\n",
					nghttp2_strerror((int)used));
			return -1;
		}
		if ((size_t)r < sizeof(c->in))
			break;
	}
	h2_fill(c);
	if (!nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2))
		return -1; /* GOAWAY and nothing left */
	return h2_pump(c);
}

/* ---- HTTP/1.1 ------------------------------------------------------------ */

static int h1_submit(struct conn *c)
{
	struct slot *s = &c->slots[0];
	size_t room;
	char *o;
	int k;

	slot_start(s);
	room = out_room(c);
	o = (char *)c->out + c->out_len;
	k = snprintf(o, room, "%s %s HTTP/1.1\r\nHost: %s\r\n", B.method,
		     B.path, B.authority);
	for (size_t i = 0; i < B.n_hdr && k > 0 && (size_t)k < room; i++)
		k += snprintf(o + k, room - (size_t)k, "%s: %s\r\n",
			      B.hdr_name[i], B.hdr_value[i]);
	if (k > 0 && (size_t)k < room)
		k += snprintf(o + k, room - (size_t)k,
			      "Content-Length: %zu\r\n\r\n",
			      B.tmpl ? s->len : 0);
	if (k < 0 || (size_t)k + s->len >= room) {
		fprintf(stderr, "h2post: request larger than the buffer\n");
		slot_end(s, 0);
		return -1;
	}
	if (B.tmpl)
		memcpy(o + k, s->body, s->len);
	c->out_len += (size_t)k + (B.tmpl ? s->len : 0);
	c->h1 = H1_HEAD;
	return flush_out(c);
}

/* Parse the response head in c->in[0..end). 0, or -1 for garbage. */
static int h1_head(struct conn *c, size_t end)
{
	struct slot *s = &c->slots[0];
	char *p = (char *)c->in, *e = p + end, *line, *nl;
	long cl = -1;

	if (end < 12 || memcmp(p, "HTTP/1.", 7) != 0)
		return -1;
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	s->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	c->close_after = p[7] == '0';
	line = (char *)memchr(p, '\n', end) + 1; /* the head ends in CRLF */
	for (; line < e; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(e - line));
		if (!nl)
			break;
		if (strncasecmp(line, "content-length:", 15) == 0)
			cl = strtol(line + 15, NULL, 10);
		else if (strncasecmp(line, "transfer-encoding:", 18) == 0)
			return -1; /* chunked: not supported */
		else if (strncasecmp(line, "connection:", 11) == 0 &&
			 memmem(line, (size_t)(nl - line), "close", 5))
			c->close_after = 1;
	}
	if (cl < 0 && s->status != 204 && s->status != 304)
		return -1;
	c->body_left = cl < 0 ? 0 : (size_t)cl;
	return 0;
}

static int h1_read(struct conn *c)
{
	struct slot *s = &c->slots[0];
	unsigned char *hit;
	size_t take, head;
	ssize_t r;

	for (;;) {
		if (c->in_len == sizeof(c->in))
			return -1; /* a head larger than the buffer */
		r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len,
			 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0)
			return -1;
		c->in_len += (size_t)r;
		if (c->h1 == H1_IDLE)
			return -1; /* bytes nobody asked for */
		if (c->h1 == H1_HEAD) {
			hit = memmem(c->in, c->in_len, "\r\n\r\n", 4);
			if (!hit)
				continue;
			head = (size_t)(hit - c->in) + 4;
			if (h1_head(c, head))
				return -1;
			memmove(c->in, c->in + head, c->in_len - head);
			c->in_len -= head;
			c->h1 = H1_BODY;
		}
		take = c->in_len < c->body_left ? c->in_len : c->body_left;
		dup_scan(s, c->in, take);
		c->body_left -= take;
		memmove(c->in, c->in + take, c->in_len - take);
		c->in_len -= take;
		if (c->body_left > 0)
			continue;
		c->h1 = H1_IDLE;
		slot_end(s, 1);
		if (c->close_after)
			return -1;
		if (c->in_len)
			return -1;
		if (can_issue())
			return h1_submit(c);
		return 0;
	}
}

/* ---- connections --------------------------------------------------------- */

static void conn_close(struct conn *c)
{
	if (c->h2) {
		nghttp2_session_del(
		    c->h2); /* closes streams: slot_end(.., 0) */
		c->h2 = NULL;
	}
	for (long i = 0; i < (B.proto == P_H2 ? B.streams : 1); i++)
		slot_end(&c->slots[i], 0);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->active = 0;
	c->out_len = c->out_off = c->in_len = 0;
	c->h1 = H1_IDLE;
}

static int conn_open(struct conn *c)
{
	int one = 1, fd;

	fd = socket(B.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	/* Even when connect() succeeds at once, conn_ready() starts the
	 * requests: the socket polls writable at once. */
	c->connecting = 1;
	if (connect(fd, (struct sockaddr *)&B.addr, B.addrlen) &&
	    errno != EINPROGRESS)
		return -1;
	if (B.proto == P_H2 && h2_open(c))
		return -1;
	return 0;
}

/* The socket is connected: start sending. */
static int conn_ready(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		if (B.connect_errors++ == 0)
			fprintf(stderr, "h2post: connect %s: %s\n", B.authority,
				strerror(err ? err : errno));
		return -1;
	}
	c->connecting = 0;
	c->connected = 1;
	if (B.proto == P_H2) {
		h2_fill(c);
		return h2_pump(c);
	}
	return can_issue() ? h1_submit(c) : 0;
}

/* Lost a connection: count what was in flight, and connect again while
 * work is left (not when it never connected: the server is not there). */
static void conn_lost(struct conn *c)
{
	conn_close(c);
	if (!c->connected || !can_issue() || B.reconnects >= B.max_reconnects)
		return;
	B.reconnects++;
	if (conn_open(c))
		conn_close(c);
}

static int conn_idle(const struct conn *c)
{
	return c->fd < 0 || (c->active == 0 && !c->connecting);
}

/* ---- main loop ----------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(double p)
{
	long k;

	if (B.n_lat == 0)
		return 0;
	k = (long)(p * (double)B.n_lat + 0.999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= B.n_lat)
		k = B.n_lat - 1;
	return B.lat_us[k] / 1000.0;
}

static void report(double secs)
{
	double rps = secs > 0 ? (double)B.done / secs : 0, cpu;
	long ok = 0, events;
	struct rusage ru;

	for (int i = 200; i < 300; i++)
		ok += B.status[i];
	events = ok * B.events - B.dups;
	if (events < 0)
		events = 0;
	qsort(B.lat_us, (size_t)B.n_lat, sizeof(*B.lat_us), cmp_u32);

	printf("h2post: %s %s%s, %ld connections", B.method, B.authority,
	       B.path, B.conns);
	if (B.proto == P_H2)
		printf(" x %ld streams (h2c)\n", B.streams);
	else
		printf(" (HTTP/1.1 keep-alive)\n");
	printf("ids: %s<n>, %zu per request, %llu used; %%U%% over %ld\n",
	       B.prefix, B.n_ids, B.next_id, B.users);
	printf("elapsed %.3f s\n", secs);
	printf("requests %ld of %ld sent: %ld answered, %ld failed, %ld open"
	       " at the end, %ld not sent\n",
	       B.issued, B.n, B.done, B.failed, B.unfinished, B.n - B.issued);
	for (int i = 0; i < 600; i++)
		if (B.status[i])
			printf("status %d: %ld\n", i, B.status[i]);
	if (B.status_other)
		printf("status other: %ld\n", B.status_other);
	printf("duplicates %ld\n", B.dups);
	printf("reconnects %ld, failed connects %ld\n", B.reconnects,
	       B.connect_errors);
	printf("requests/s %.1f\n", rps);
	printf("events/s %.1f\n", secs > 0 ? (double)events / secs : 0);
	printf("latency_ms p50 %.3f p90 %.3f p99 %.3f max %.3f\n", pct_ms(0.50),
	       pct_ms(0.90), pct_ms(0.99),
	       B.n_lat ? B.lat_us[B.n_lat - 1] / 1000.0 : 0);
	/* The generator shares the machine with the daemon: say what it took.
	 */
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
		printf("cpu %.3f s (%.0f%% of one core)\n", cpu,
		       secs > 0.01 ? 100 * cpu / secs : 0);
	}
}

static void run(void)
{
	struct pollfd *pfd = calloc((size_t)B.conns, sizeof(*pfd));
	uint64_t now, end;
	long live;
	int rc, tmo;

	if (!pfd)
		die("out of memory");
	B.start = now_ns();
	B.deadline = B.start + (uint64_t)B.seconds * 1000000000u;
	for (long i = 0; i < B.conns; i++)
		if (conn_open(&B.c[i]))
			die("connect %s: %s", B.authority, strerror(errno));
	for (;;) {
		now = now_ns();
		if (now >= B.deadline)
			break;
		live = 0;
		for (long i = 0; i < B.conns; i++) {
			struct conn *c = &B.c[i];

			pfd[i].fd = c->fd;
			pfd[i].events = 0;
			pfd[i].revents = 0;
			if (c->fd < 0)
				continue;
			if (conn_idle(c) && !can_issue())
				continue;
			live++;
			pfd[i].events = POLLIN;
			if (c->connecting || c->out_off < c->out_len ||
			    (c->h2 && nghttp2_session_want_write(c->h2)))
				pfd[i].events |= POLLOUT;
		}
		if (live == 0)
			break;
		tmo = (int)((B.deadline - now) / 1000000u) + 1;
		if (tmo > 100)
			tmo = 100;
		rc = poll(pfd, (nfds_t)B.conns, tmo);
		if (rc < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (long i = 0; rc > 0 && i < B.conns; i++) {
			struct conn *c = &B.c[i];
			short re = pfd[i].revents;
			int bad = 0;

			if (!re || c->fd < 0)
				continue;
			if (c->connecting) {
				bad = conn_ready(c);
			} else {
				if (re & (POLLIN | POLLHUP | POLLERR))
					bad = B.proto == P_H2 ? h2_read(c)
							      : h1_read(c);
				if (!bad && (re & POLLOUT))
					bad = B.proto == P_H2 ? h2_pump(c)
							      : flush_out(c);
			}
			if (bad)
				conn_lost(c);
		}
	}
	end = now_ns();
	B.stopping = 1;
	for (long i = 0; i < B.conns; i++)
		conn_close(&B.c[i]);
	report((double)(end - B.start) / 1e9);
	free(pfd);
}

int main(int argc, char **argv)
{
	const char *body = NULL;
	int opt;

	B.proto = P_H2;
	B.n = 10000;
	B.conns = 8;
	B.streams = 64;
	B.seconds = 30;
	B.events = 1;
	B.users = 1;
	while ((opt = getopt(argc, argv, "p:n:c:m:T:e:u:X:H:d:h")) != -1) {
		switch (opt) {
		case 'p':
			if (strcmp(optarg, "h2") == 0)
				B.proto = P_H2;
			else if (strcmp(optarg, "h1") == 0)
				B.proto = P_H1;
			else
				die("-p is h2 or h1");
			break;
		case 'n': B.n = num(optarg, "-n", 1, 100000000); break;
		case 'c': B.conns = num(optarg, "-c", 1, MAX_CONNS); break;
		case 'm': B.streams = num(optarg, "-m", 1, MAX_STREAMS); break;
		case 'T': B.seconds = num(optarg, "-T", 1, MAX_SECONDS); break;
		case 'e': B.events = num(optarg, "-e", 1, 1000000); break;
		case 'u': B.users = num(optarg, "-u", 1, 1000000); break;
		case 'X': B.method = optarg; break;
		case 'H': add_header(optarg); break;
		case 'd': body = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	parse_url(argv[optind]);
	if (B.proto == P_H1)
		B.streams = 1;
	if (!B.method)
		B.method = body ? "POST" : "GET";
	/* Unique across runs against one database: time, pid and a counter. */
	snprintf(B.prefix, sizeof(B.prefix), "b%lx-%x-",
		 (unsigned long)time(NULL), (unsigned)getpid());
	if (body && body[0] == '@') {
		B.tmpl = read_file(body + 1, &B.tmpl_len);
	} else if (body) {
		B.tmpl_len = strlen(body);
		if (B.tmpl_len > MAX_BODY)
			die("body larger than %d bytes", MAX_BODY);
		B.tmpl = strdup(body);
		if (!B.tmpl)
			die("out of memory");
	}
	if (B.tmpl)
		compile_template();
	dup_init();
	signal(SIGPIPE, SIG_IGN);

	B.lat_us = calloc((size_t)B.n, sizeof(*B.lat_us));
	B.c = calloc((size_t)B.conns, sizeof(*B.c));
	if (!B.lat_us || !B.c)
		die("out of memory");
	B.max_reconnects = 10 * B.conns;
	for (long i = 0; i < B.conns; i++) {
		struct conn *c = &B.c[i];

		c->fd = -1;
		c->idx = (int)i;
		c->out_cap = OUT_MIN + B.max_body + 4096;
		c->out = malloc(c->out_cap);
		c->slots = calloc((size_t)B.streams, sizeof(*c->slots));
		if (!c->out || !c->slots)
			die("out of memory");
		for (long k = 0; k < B.streams; k++) {
			c->slots[k].c = c;
			c->slots[k].body = malloc(B.max_body + 1);
			if (!c->slots[k].body)
				die("out of memory");
		}
	}
	run();
	for (long i = 0; i < B.conns; i++) {
		for (long k = 0; k < B.streams; k++)
			free(B.c[i].slots[k].body);
		free(B.c[i].slots);
		free(B.c[i].out);
	}
	free(B.c);
	free(B.lat_us);
	free(B.segs);
	free(B.tmpl);
	return B.done > 0 ? 0 : 1;
}

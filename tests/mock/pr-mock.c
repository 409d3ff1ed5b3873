/*
 * pr-mock.c - the mock's server: command line, the loopback listener, TLS
 * (ALPN "h2" only, TLS 1.2+), one nghttp2 server session per connection on
 * one libev loop, and the dispatch of complete request streams to the
 * APNs, FCM, OAuth and control handlers (see mock.h for the map).
 *
 * I/O: TLS records are read until OpenSSL wants more and fed to nghttp2;
 * nghttp2's output is then pulled into one buffer and written with
 * SSL_write. Nothing nghttp2 calls back into closes a connection: a "drop"
 * only sets a flag the I/O path acts on once nghttp2 has returned. Delayed
 * answers are libev timers on the stream, so the loop never blocks.
 *
 * This program deliberately shares no code with the relay (it is the
 * reference the relay is checked against) and links only OpenSSL,
 * nghttp2, jansson and libev.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jwt.h"
#include "mock.h"

/* Pull nghttp2 output until this much is waiting for SSL_write. */
#define OUT_HIGH (64 * 1024)
/* SSL_read calls per wakeup before other connections get a turn. */
#define READS_PER_WAKEUP 64
/* HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE as observed from APNs (8000). */
#define MAX_HEADER_LIST 8000
/* Connection-level receive window: many streams' bodies in flight. */
#define CONN_WINDOW (1 << 20)
/* Finished streams a connection keeps for reuse, buffers and all, when
 * their buffers are no larger than SPARE_MAX_BUF: it saves most of the
 * allocations a request costs. */
#define SPARE_STREAMS 64
#define SPARE_MAX_BUF 16384

static void conn_kick(struct mock_conn *c);

/* --- small helpers ---------------------------------------------------- */

uint64_t mock_rand(struct mock_server *srv)
{
	uint64_t x = srv->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	srv->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

double mock_now(const struct mock_server *srv)
{
	return ev_now(srv->loop);
}

nghttp2_nv mock_nv(const char *name, const char *value)
{
	nghttp2_nv nv = {(uint8_t *)(uintptr_t)name,
			 (uint8_t *)(uintptr_t)value, strlen(name),
			 strlen(value), NGHTTP2_NV_FLAG_NONE};

	return nv;
}

const char *mock_str(const struct mock_stream *st, const struct mock_hdr *h)
{
	return h->nlen && st->hbuf ? st->hbuf + h->value : "";
}

const char *mock_header(const struct mock_stream *st, const char *name,
			size_t *len)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < st->nhdr; i++) {
		const struct mock_hdr *h = &st->hdrs[i];

		if (h->nlen == nlen &&
		    memcmp(st->hbuf + h->name, name, nlen) == 0) {
			if (len)
				*len = h->vlen;
			return st->hbuf + h->value;
		}
	}
	return NULL;
}

/* --- streams ---------------------------------------------------------- */

static void stream_free(struct mock_stream *st)
{
	struct mock_conn *c = st->conn;

	if (st->delayed) {
		ev_timer_stop(c->srv->loop, &st->timer);
		c->srv->ndelayed--;
	}
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	c->nstreams--;
	free(st->token);
	free(st->project);
	free(st->resp);
	if (c->nspare < SPARE_STREAMS && st->hcap <= SPARE_MAX_BUF &&
	    st->bcap <= SPARE_MAX_BUF) {
		struct mock_stream keep = *st;

		memset(st, 0, sizeof(*st));
		st->hbuf = keep.hbuf;
		st->hcap = keep.hcap;
		st->hdrs = keep.hdrs;
		st->hdrcap = keep.hdrcap;
		st->body = keep.body;
		st->bcap = keep.bcap;
		st->next = c->spare;
		c->spare = st;
		c->nspare++;
		return;
	}
	free(st->hbuf);
	free(st->hdrs);
	free(st->body);
	free(st);
}

static void spares_free(struct mock_conn *c)
{
	while (c->spare) {
		struct mock_stream *st = c->spare;

		c->spare = st->next;
		free(st->hbuf);
		free(st->hdrs);
		free(st->body);
		free(st);
	}
	c->nspare = 0;
}

/* Copy len bytes plus a NUL into the stream's header buffer. */
static int hbuf_add(struct mock_stream *st, const uint8_t *p, size_t len,
		    uint32_t *off)
{
	size_t need = st->hlen + len + 1;

	if (need > MOCK_MAX_HEADER_BYTES)
		return -1;
	if (need > st->hcap) {
		size_t cap = st->hcap ? st->hcap * 2 : 512;
		char *n;

		while (cap < need)
			cap *= 2;
		n = realloc(st->hbuf, cap);
		if (!n)
			return -1;
		st->hbuf = n;
		st->hcap = cap;
	}
	memcpy(st->hbuf + st->hlen, p, len);
	st->hbuf[st->hlen + len] = '\0';
	*off = (uint32_t)st->hlen;
	st->hlen = need;
	return 0;
}

static ssize_t body_read_cb(nghttp2_session *ngh, int32_t stream_id,
			    uint8_t *buf, size_t length, uint32_t *data_flags,
			    nghttp2_data_source *source, void *user_data)
{
	struct mock_stream *st = source->ptr;
	size_t n = st->rlen - st->roff;

	if (n > length)
		n = length;
	memcpy(buf, st->resp + st->roff, n);
	st->roff += n;
	if (st->roff == st->rlen)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

void mock_respond(struct mock_stream *st, int status, const nghttp2_nv *extra,
		  size_t nextra, const char *body, size_t len,
		  const char *reason)
{
	struct mock_conn *c = st->conn;
	nghttp2_nv nv[16];
	nghttp2_data_provider prd, *pp = NULL;
	char sbuf[8], lbuf[24];
	size_t n = 0;

	if (st->answered)
		return;
	st->answered = 1;
	if (status < 100 || status > 599)
		status = 500;
	sbuf[0] = (char)('0' + status / 100);
	sbuf[1] = (char)('0' + status / 10 % 10);
	sbuf[2] = (char)('0' + status % 10);
	sbuf[3] = '\0';
	nv[n++] = mock_nv(":status", sbuf);
	for (size_t i = 0; i < nextra && n < 12; i++)
		nv[n++] = extra[i];
	if (body && len) {
		st->resp = malloc(len);
		if (st->resp) {
			memcpy(st->resp, body, len);
			st->rlen = len;
			snprintf(lbuf, sizeof(lbuf), "%zu", len);
			nv[n++] = mock_nv("content-type", "application/json");
			nv[n++] = mock_nv("content-length", lbuf);
			prd.source.ptr = st;
			prd.read_callback = body_read_cb;
			pp = &prd;
		}
	}
	if (st->kind != MOCK_CONTROL)
		c->srv->stats.status[status]++;
	mock_record(st, status, reason, st->act);
	if (nghttp2_submit_response(c->ngh, st->id, nv, n, pp) != 0)
		nghttp2_submit_rst_stream(c->ngh, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_INTERNAL_ERROR);
}

void mock_conn_raise_streams(struct mock_conn *c)
{
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
				     c->srv->max_streams};

	if (c->streams_raised || c->srv->initial_streams >= c->srv->max_streams)
		return;
	c->streams_raised = 1;
	nghttp2_submit_settings(c->ngh, NGHTTP2_FLAG_NONE, &iv, 1);
}

static int path_is(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(path, prefix, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/' || path[n] == '?');
}

/* The request is complete: hand it to its handler. */
static void dispatch(struct mock_stream *st)
{
	struct mock_server *srv = st->conn->srv;
	const char *path = mock_str(st, &st->path);

	st->dispatched = 1;
	st->at = mock_now(srv);
	if (path_is(path, "/mock")) {
		st->kind = MOCK_CONTROL;
		mock_control_handle(st);
		return;
	}
	srv->stats.requests++;
	if (path_is(path, "/3/device")) {
		st->kind = MOCK_APNS;
		srv->stats.apns++;
	} else if (strncmp(path, "/v1/projects/", 13) == 0) {
		st->kind = MOCK_FCM;
		srv->stats.fcm++;
	} else if (path_is(path, "/token")) {
		st->kind = MOCK_OAUTH;
		srv->stats.oauth++;
	} else {
		st->kind = MOCK_OTHER;
		srv->stats.other++;
	}
	if (st->head_over) {
		static const char b[] = "{\"reason\":\"HeaderListTooLarge\"}";

		mock_respond(st, 431, NULL, 0, b, sizeof(b) - 1,
			     "HeaderListTooLarge");
		return;
	}
	switch (st->kind) {
	case MOCK_APNS: mock_apns_handle(st); break;
	case MOCK_FCM: mock_fcm_handle(st); break;
	case MOCK_OAUTH: mock_oauth_handle(st); break;
	default: {
		/* Whatever the APNs host does not know is a bad path. */
		static const char b[] = "{\"reason\":\"BadPath\"}";

		mock_respond(st, 404, NULL, 0, b, sizeof(b) - 1, "BadPath");
		break;
	}
	}
}

/* --- nghttp2 callbacks ------------------------------------------------ */

static int on_begin_headers_cb(nghttp2_session *ngh, const nghttp2_frame *frame,
			       void *user_data)
{
	struct mock_conn *c = user_data;
	struct mock_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (c->spare) {
		st = c->spare;
		c->spare = st->next;
		c->nspare--;
		st->next = NULL;
	} else {
		st = calloc(1, sizeof(*st));
		if (!st)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->conn = c;
	st->id = frame->hd.stream_id;
	if (nghttp2_session_set_stream_user_data(ngh, st->id, st)) {
		free(st->hbuf);
		free(st->hdrs);
		free(st->body);
		free(st);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	c->nstreams++;
	return 0;
}

static struct mock_hdr *pseudo(struct mock_stream *st, const uint8_t *name,
			       size_t len)
{
	if (len == 7 && memcmp(name, ":method", 7) == 0)
		return &st->method;
	if (len == 5 && memcmp(name, ":path", 5) == 0)
		return &st->path;
	if (len == 10 && memcmp(name, ":authority", 10) == 0)
		return &st->authority;
	return NULL; /* :scheme */
}

static int on_header_cb(nghttp2_session *ngh, const nghttp2_frame *frame,
			const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen, uint8_t flags,
			void *user_data)
{
	struct mock_stream *st;
	struct mock_hdr *h;

	/* Trailers are not kept: no endpoint here uses them. */
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = nghttp2_session_get_stream_user_data(ngh, frame->hd.stream_id);
	if (!st || st->head_over)
		return 0;
	if (namelen && name[0] == ':') {
		h = pseudo(st, name, namelen);
		if (!h)
			return 0;
		if (hbuf_add(st, value, valuelen, &h->value))
			st->head_over = 1;
		h->vlen = (uint32_t)valuelen;
		h->nlen = 1; /* present */
		return 0;
	}
	if (st->nhdr == st->hdrcap) {
		size_t cap = st->hdrcap ? st->hdrcap * 2 : 16;
		struct mock_hdr *n;

		if (st->nhdr >= MOCK_MAX_HEADERS) {
			st->head_over = 1;
			return 0;
		}
		n = realloc(st->hdrs, cap * sizeof(*n));
		if (!n) {
			st->head_over = 1;
			return 0;
		}
		st->hdrs = n;
		st->hdrcap = cap;
	}
	h = &st->hdrs[st->nhdr];
	if (hbuf_add(st, name, namelen, &h->name) ||
	    hbuf_add(st, value, valuelen, &h->value)) {
		st->head_over = 1;
		return 0;
	}
	h->nlen = (uint32_t)namelen;
	h->vlen = (uint32_t)valuelen;
	st->nhdr++;
	return 0;
}

static int on_data_chunk_recv_cb(nghttp2_session *ngh, uint8_t flags,
				 int32_t stream_id, const uint8_t *data,
				 size_t len, void *user_data)
{
	struct mock_stream *st =
	    nghttp2_session_get_stream_user_data(ngh, stream_id);
	size_t need;

	if (!st || st->body_over || st->answered)
		return 0;
	need = st->blen + len;
	if (need > MOCK_MAX_BODY) {
		st->body_over = 1; /* answered 413 when the stream ends */
		return 0;
	}
	if (need > st->bcap) {
		size_t cap = st->bcap ? st->bcap * 2 : 1024;
		char *n;

		while (cap < need)
			cap *= 2;
		n = realloc(st->body, cap);
		if (!n) {
			st->body_over = 1;
			return 0;
		}
		st->body = n;
		st->bcap = cap;
	}
	memcpy(st->body + st->blen, data, len);
	st->blen = need;
	return 0;
}

static int on_frame_recv_cb(nghttp2_session *ngh, const nghttp2_frame *frame,
			    void *user_data)
{
	struct mock_stream *st;

	if ((frame->hd.type != NGHTTP2_HEADERS &&
	     frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(ngh, frame->hd.stream_id);
	if (st && !st->dispatched)
		dispatch(st);
	return 0;
}

static int on_stream_close_cb(nghttp2_session *ngh, int32_t stream_id,
			      uint32_t error_code, void *user_data)
{
	struct mock_stream *st =
	    nghttp2_session_get_stream_user_data(ngh, stream_id);

	if (!st)
		return 0;
	if (!st->answered && st->dispatched && st->kind != MOCK_CONTROL)
		mock_record(st, 0, NULL, MOCK_CANCELLED);
	nghttp2_session_set_stream_user_data(ngh, stream_id, NULL);
	stream_free(st);
	return 0;
}

static int session_new(struct mock_conn *c)
{
	struct mock_server *srv = c->srv;
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_settings_entry iv[2] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->initial_streams},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST},
	};
	int rv = -1;

	if (nghttp2_session_callbacks_new(&cbs))
		return -1;
	nghttp2_session_callbacks_set_on_begin_headers_callback(
	    cbs, on_begin_headers_cb);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
	    cbs, on_data_chunk_recv_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
							     on_frame_recv_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(
	    cbs, on_stream_close_cb);
	if (nghttp2_session_server_new(&c->ngh, cbs, c))
		goto out;
	if (nghttp2_submit_settings(c->ngh, NGHTTP2_FLAG_NONE, iv, 2) ||
	    nghttp2_session_set_local_window_size(c->ngh, NGHTTP2_FLAG_NONE, 0,
						  CONN_WINDOW))
		goto out;
	rv = 0;
out:
	nghttp2_session_callbacks_del(cbs);
	return rv;
}

/* --- connections ------------------------------------------------------ */

static void conn_free(struct mock_conn *c)
{
	struct mock_server *srv = c->srv;

	/* nghttp2_session_del runs no callbacks; our streams go after it. */
	if (c->ngh)
		nghttp2_session_del(c->ngh);
	while (c->streams) {
		struct mock_stream *st = c->streams;

		if (!st->answered && st->dispatched && st->kind != MOCK_CONTROL)
			mock_record(st, 0, NULL, MOCK_CANCELLED);
		stream_free(st);
	}
	spares_free(c);
	ev_io_stop(srv->loop, &c->io);
	ev_timer_stop(srv->loop, &c->linger_w);
	if (c->ssl) {
		if (!c->drop && c->ngh && !c->lingering)
			SSL_shutdown(c->ssl); /* best effort close_notify */
		SSL_free(c->ssl);
	}
	ERR_clear_error();
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	free(c->out);
	free(c->jwt);
	free(c);
}

static void conn_events(struct mock_conn *c, unsigned events)
{
	if (events == c->io_events)
		return;
	ev_io_stop(c->srv->loop, &c->io);
	ev_io_set(&c->io, c->fd, (int)events);
	ev_io_start(c->srv->loop, &c->io);
	c->io_events = events;
}

/* 0 when OpenSSL only wants more I/O, -1 on EOF or a failure. */
static int ssl_retry(struct mock_conn *c, int n)
{
	int e = SSL_get_error(c->ssl, n);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

static int conn_read(struct mock_conn *c)
{
	uint8_t buf[16384];

	for (int i = 0; i < READS_PER_WAKEUP; i++) {
		ssize_t rv;
		int n;

		ERR_clear_error();
		n = SSL_read(c->ssl, buf, sizeof(buf));
		if (n <= 0)
			return ssl_retry(c, n);
		c->in_recv = 1;
		rv = nghttp2_session_mem_recv(c->ngh, buf, (size_t)n);
		c->in_recv = 0;
		if (rv < 0 || c->drop)
			return -1;
	}
	if (SSL_has_pending(c->ssl))
		ev_feed_event(c->srv->loop, &c->io, EV_READ);
	return 0;
}

static int out_append(struct mock_conn *c, const uint8_t *data, size_t len)
{
	if (c->ooff && c->ooff == c->olen)
		c->ooff = c->olen = 0;
	if (c->olen + len > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 16384;
		char *n;

		if (c->ooff) {
			memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
			c->olen -= c->ooff;
			c->ooff = 0;
		}
		while (cap < c->olen + len)
			cap *= 2;
		if (cap != c->ocap) {
			n = realloc(c->out, cap);
			if (!n)
				return -1;
			c->out = n;
			c->ocap = cap;
		}
	}
	memcpy(c->out + c->olen, data, len);
	c->olen += len;
	return 0;
}

static int conn_write(struct mock_conn *c)
{
	for (;;) {
		int n;

		while (!c->wblocked && c->olen - c->ooff < OUT_HIGH) {
			const uint8_t *data;
			ssize_t got = nghttp2_session_mem_send(c->ngh, &data);

			if (got < 0)
				return -1;
			if (got == 0)
				break;
			if (out_append(c, data, (size_t)got))
				return -1;
		}
		if (c->olen == c->ooff)
			return 0;
		ERR_clear_error();
		n = SSL_write(c->ssl, c->out + c->ooff,
			      (int)(c->olen - c->ooff));
		if (n <= 0) {
			c->wblocked = 1;
			return ssl_retry(c, n);
		}
		c->wblocked = 0;
		c->ooff += (size_t)n;
	}
}

static void linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	conn_free(w->data);
}

/* The session is over (GOAWAY sent, streams done): close like a server
 * should, not with a reset that could overtake the last answers. */
static void conn_linger(struct mock_conn *c)
{
	SSL_shutdown(c->ssl);
	shutdown(c->fd, SHUT_WR);
	c->lingering = 1;
	conn_events(c, EV_READ);
	ev_timer_init(&c->linger_w, linger_cb, 2.0, 0.0);
	c->linger_w.data = c;
	ev_timer_start(c->srv->loop, &c->linger_w);
}

/* After input or a timer: write what nghttp2 has, close when done. */
static void conn_kick(struct mock_conn *c)
{
	if (c->lingering)
		return;
	if (c->drop || conn_write(c)) {
		conn_free(c);
		return;
	}
	if (!nghttp2_session_want_read(c->ngh) &&
	    !nghttp2_session_want_write(c->ngh) && c->olen == c->ooff) {
		conn_linger(c);
		return;
	}
	conn_events(c, EV_READ | (c->olen > c->ooff ? EV_WRITE : 0));
}

void mock_conn_kick(struct mock_conn *c)
{
	if (!c->in_recv)
		conn_kick(c);
}

/* 1 when the handshake is done, 0 while it goes on, -1 on failure. */
static int handshake(struct mock_conn *c)
{
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;
	int n, e;

	ERR_clear_error();
	n = SSL_do_handshake(c->ssl);
	if (n != 1) {
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ) {
			conn_events(c, EV_READ);
			return 0;
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			conn_events(c, EV_READ | EV_WRITE);
			return 0;
		}
		return -1;
	}
	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0)
		return -1;
	return session_new(c) ? -1 : 1;
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mock_conn *c = w->data;

	if (c->lingering) {
		char sink[16384];
		ssize_t n = read(c->fd, sink, sizeof(sink));

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			conn_free(c);
		return;
	}

	if (!c->ngh) {
		int r = handshake(c);

		if (r < 0) {
			conn_free(c);
			return;
		}
		if (r == 0)
			return;
	}
	if (conn_read(c)) {
		conn_free(c);
		return;
	}
	conn_kick(c);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mock_server *srv = w->data;

	for (;;) {
		int one = 1, fd = accept4(srv->lfd, NULL, NULL,
					  SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct mock_conn *c;

		if (fd < 0)
			return; /* EAGAIN, or EMFILE and friends: retry later */
		if (srv->nconns >= MOCK_MAX_CONNS) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (c)
			c->ssl = SSL_new(srv->ctx);
		if (!c || !c->ssl || !SSL_set_fd(c->ssl, fd)) {
			if (c)
				SSL_free(c->ssl);
			free(c);
			close(fd);
			continue;
		}
		SSL_set_accept_state(c->ssl);
		SSL_set_app_data(c->ssl, c);
		c->srv = srv;
		c->fd = fd;
		c->id = ++srv->next_conn_id;
		c->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = c;
		srv->conns = c;
		srv->nconns++;
		srv->stats.connections++;
		ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
		c->io.data = c;
		c->io_events = EV_READ;
		ev_io_start(loop, &c->io);
	}
}

/* --- startup ---------------------------------------------------------- */

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
		if (in[i] == 2 && i + 3 <= inlen &&
		    memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL; /* h2 only, like APNs */
}

/*
 * A TLS rule ({"kind":"tls","action":"fail"}) refuses the handshake the way
 * a broken or overloaded front end does: a fatal handshake_failure alert in
 * answer to the ClientHello, then the connection closes. Asked once per
 * connection (a TLS 1.3 HelloRetryRequest brings a second ClientHello).
 */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct mock_conn *c = SSL_get_app_data(ssl);
	struct mock_server *srv = arg;

	if (!c || c->hello_seen)
		return SSL_CLIENT_HELLO_SUCCESS;
	c->hello_seen = 1;
	if (!mock_tls_fail(srv))
		return SSL_CLIENT_HELLO_SUCCESS;
	if (srv->verbose)
		fprintf(stderr, "pr-mock: conn %llu: TLS handshake refused\n",
			(unsigned long long)c->id);
	*al = SSL_AD_HANDSHAKE_FAILURE;
	return SSL_CLIENT_HELLO_ERROR;
}

static SSL_CTX *tls_new(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
				     SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	/* RFC 9113 9.2.2: TLS 1.2 with AEAD ephemeral suites only. */
	if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	return ctx;
}

/* Bind host:port on loopback only; returns the socket or -1. */
static int listen_on(const char *spec, int *port_out, char *host_out,
		     size_t host_len)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sa;
	socklen_t slen = sizeof(sa);
	long port;
	char *end;
	int fd, one = 1;

	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "pr-mock: %s is not a loopback address\n",
			host);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 1024) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &slen) != 0) {
		fprintf(stderr, "pr-mock: cannot listen on %s: %s\n", spec,
			strerror(errno));
		close(fd);
		return -1;
	}
	*port_out = ntohs(sa.sin_port);
	inet_ntop(AF_INET, &sa.sin_addr, host_out, (socklen_t)host_len);
	return fd;
}

static int write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *fp;
	int rv;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	if (!fp)
		return -1;
	rv = fprintf(fp, "%d\n", port) < 0 ? -1 : 0;
	if (fclose(fp) != 0)
		rv = -1;
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -1;
	return rv;
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *fp)
{
	fputs(
	    "usage: pr-mock --listen 127.0.0.1:PORT --cert FILE --key FILE\n"
	    "               [--port-file FILE]\n"
	    "               [--apns-key AuthKey.p8 --apns-key-id KEYID "
	    "--apns-team-id TEAMID]\n"
	    "               [--fcm-credentials service-account.json]\n"
	    "               [--token-lifetime SECONDS] [--max-record N]\n"
	    "               [--initial-streams N] [--max-streams N] "
	    "[--verbose]\n"
	    "       pr-mock --make-credentials DIR [--project P] "
	    "[--token-uri URL]\n"
	    "       pr-mock --print-jwt --apns-key AuthKey.p8 --apns-key-id "
	    "KEYID --apns-team-id TEAMID\n"
	    "\n"
	    "A loopback TLS HTTP/2 stand-in for APNs (POST /3/device/TOKEN),\n"
	    "FCM HTTP v1 (POST /v1/projects/P/messages:send) and Google's\n"
	    "OAuth token endpoint (POST /token), scripted and inspected "
	    "through\n"
	    "/mock/script, /mock/reset, /mock/requests and /mock/stats.\n"
	    "Without --apns-key, APNs runs in certificate mode (no JWT "
	    "checks);\n"
	    "without --fcm-credentials, FCM accepts any bearer token.\n",
	    fp);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

struct opts {
	const char *listen, *cert, *key, *port_file, *apns_key, *apns_key_id,
	    *apns_team_id, *fcm_credentials, *make_credentials, *project,
	    *token_uri;
	int print_jwt;
	long token_lifetime, max_record, initial_streams, max_streams;
	int verbose;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum {
		O_LISTEN = 256,
		O_CERT,
		O_KEY,
		O_PORT_FILE,
		O_APNS_KEY,
		O_APNS_KEY_ID,
		O_APNS_TEAM_ID,
		O_FCM,
		O_LIFETIME,
		O_MAX_RECORD,
		O_INITIAL,
		O_MAX_STREAMS,
		O_MAKE,
		O_PROJECT,
		O_TOKEN_URI,
		O_PRINT_JWT,
	};
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, O_LISTEN},
	    {"cert", required_argument, NULL, O_CERT},
	    {"key", required_argument, NULL, O_KEY},
	    {"port-file", required_argument, NULL, O_PORT_FILE},
	    {"apns-key", required_argument, NULL, O_APNS_KEY},
	    {"apns-key-id", required_argument, NULL, O_APNS_KEY_ID},
	    {"apns-team-id", required_argument, NULL, O_APNS_TEAM_ID},
	    {"fcm-credentials", required_argument, NULL, O_FCM},
	    {"token-lifetime", required_argument, NULL, O_LIFETIME},
	    {"max-record", required_argument, NULL, O_MAX_RECORD},
	    {"initial-streams", required_argument, NULL, O_INITIAL},
	    {"max-streams", required_argument, NULL, O_MAX_STREAMS},
	    {"make-credentials", required_argument, NULL, O_MAKE},
	    {"project", required_argument, NULL, O_PROJECT},
	    {"token-uri", required_argument, NULL, O_TOKEN_URI},
	    {"print-jwt", no_argument, NULL, O_PRINT_JWT},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};

	memset(o, 0, sizeof(*o));
	o->token_lifetime = 3600;
	o->max_record = 100000;
	o->initial_streams = 1000;
	o->max_streams = 1000;
	for (;;) {
		int bad = 0, ch = getopt_long(argc, argv, "vh", longopts, NULL);

		if (ch == -1)
			break;
		switch (ch) {
		case O_LISTEN: o->listen = optarg; break;
		case O_CERT: o->cert = optarg; break;
		case O_KEY: o->key = optarg; break;
		case O_PORT_FILE: o->port_file = optarg; break;
		case O_APNS_KEY: o->apns_key = optarg; break;
		case O_APNS_KEY_ID: o->apns_key_id = optarg; break;
		case O_APNS_TEAM_ID: o->apns_team_id = optarg; break;
		case O_FCM: o->fcm_credentials = optarg; break;
		case O_MAKE: o->make_credentials = optarg; break;
		case O_PROJECT: o->project = optarg; break;
		case O_TOKEN_URI: o->token_uri = optarg; break;
		case O_PRINT_JWT: o->print_jwt = 1; break;
		case O_LIFETIME:
			bad = parse_long(optarg, 1, 86400 * 30,
					 &o->token_lifetime);
			break;
		case O_MAX_RECORD:
			bad = parse_long(optarg, 0, 10000000, &o->max_record);
			break;
		case O_INITIAL:
			bad = parse_long(optarg, 1, 1L << 30,
					 &o->initial_streams);
			break;
		case O_MAX_STREAMS:
			bad = parse_long(optarg, 1, 1L << 30, &o->max_streams);
			break;
		case 'v': o->verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
		if (bad) {
			fprintf(stderr, "pr-mock: bad value '%s'\n", optarg);
			return -1;
		}
	}
	if (optind != argc)
		return -1;
	if (o->make_credentials)
		return 0;
	if (o->print_jwt && o->apns_key && o->apns_key_id && o->apns_team_id)
		return 0;
	if (o->print_jwt) {
		fprintf(stderr, "pr-mock: --print-jwt needs --apns-key, "
				"--apns-key-id and --apns-team-id\n");
		return -1;
	}
	if (!o->listen || !o->cert || !o->key) {
		fprintf(stderr, "pr-mock: --listen, --cert and --key are "
				"required\n");
		return -1;
	}
	if ((o->apns_key || o->apns_key_id || o->apns_team_id) &&
	    !(o->apns_key && o->apns_key_id && o->apns_team_id)) {
		fprintf(stderr, "pr-mock: --apns-key, --apns-key-id and "
				"--apns-team-id go together\n");
		return -1;
	}
	if (o->initial_streams > o->max_streams)
		o->max_streams = o->initial_streams;
	return 0;
}

static int server_init(struct mock_server *srv, const struct opts *o)
{
	char err[512] = "";
	uint64_t seed;

	memset(srv, 0, sizeof(*srv));
	srv->lfd = -1;
	srv->loop = EV_DEFAULT;
	srv->token_lifetime = o->token_lifetime;
	srv->max_record = (size_t)o->max_record;
	srv->initial_streams = (uint32_t)o->initial_streams;
	srv->max_streams = (uint32_t)o->max_streams;
	srv->verbose = o->verbose;
	srv->apns_key_id = o->apns_key_id;
	srv->apns_team_id = o->apns_team_id;
	if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
		return -1;
	srv->rng = seed | 1;
	if (o->apns_key) {
		srv->apns_key =
		    mock_creds_load_key(o->apns_key, err, sizeof(err));
		if (!srv->apns_key ||
		    EVP_PKEY_get_base_id(srv->apns_key) != EVP_PKEY_EC) {
			fprintf(stderr, "pr-mock: %s\n",
				err[0] ? err : "the APNs key is not EC");
			return -1;
		}
	}
	if (o->fcm_credentials) {
		if (mock_sa_load(&srv->sa, o->fcm_credentials, err,
				 sizeof(err))) {
			fprintf(stderr, "pr-mock: %s\n", err);
			return -1;
		}
		srv->have_sa = 1;
	}
	if (srv->max_record) {
		srv->records = calloc(srv->max_record, sizeof(*srv->records));
		if (!srv->records)
			return -1;
	}
	srv->ctx = tls_new(o->cert, o->key);
	if (!srv->ctx) {
		fprintf(stderr, "pr-mock: cannot load %s / %s\n", o->cert,
			o->key);
		ERR_print_errors_fp(stderr);
		return -1;
	}
	SSL_CTX_set_client_hello_cb(srv->ctx, client_hello_cb, srv);
	srv->lfd =
	    listen_on(o->listen, &srv->port, srv->host, sizeof(srv->host));
	if (srv->lfd < 0)
		return -1;
	if (o->port_file && write_port_file(o->port_file, srv->port)) {
		fprintf(stderr, "pr-mock: cannot write %s\n", o->port_file);
		return -1;
	}
	return 0;
}

static void server_cleanup(struct mock_server *srv)
{
	while (srv->conns)
		conn_free(srv->conns);
	mock_control_free(srv);
	if (srv->lfd >= 0) {
		ev_io_stop(srv->loop, &srv->lio);
		close(srv->lfd);
	}
	SSL_CTX_free(srv->ctx);
	EVP_PKEY_free(srv->apns_key);
	mock_sa_cleanup(&srv->sa);
	free(srv->records);
}

/* A fresh APNs provider token on stdout (iat = now). */
static int print_jwt(const struct opts *o)
{
	char err[512] = "";
	EVP_PKEY *key = mock_creds_load_key(o->apns_key, err, sizeof(err));
	char *tok =
	    key ? mock_jwt_sign_es256(key, o->apns_key_id, o->apns_team_id,
				      (long long)time(NULL))
		: NULL;
	int rv = tok ? 0 : 1;

	if (tok)
		printf("%s\n", tok);
	else
		fprintf(stderr, "pr-mock: %s\n", err[0] ? err : "cannot sign");
	free(tok);
	EVP_PKEY_free(key);
	return rv;
}

int main(int argc, char **argv)
{
	static struct mock_server srv; /* large (token ring): not on stack */
	struct opts o;
	int rv = 1;

	if (parse_opts(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	if (o.make_credentials) {
		char err[512];

		if (mock_creds_make(o.make_credentials, o.project, o.token_uri,
				    err, sizeof(err))) {
			fprintf(stderr, "pr-mock: %s\n", err);
			return 1;
		}
		printf("pr-mock: credentials in %s (APNs key id %s)\n",
		       o.make_credentials, MOCK_APNS_KEY_ID);
		return 0;
	}
	if (o.print_jwt)
		return print_jwt(&o);
	signal(SIGPIPE, SIG_IGN);
	if (server_init(&srv, &o))
		goto out;
	ev_io_init(&srv.lio, accept_cb, srv.lfd, EV_READ);
	srv.lio.data = &srv;
	ev_io_start(srv.loop, &srv.lio);
	ev_signal_init(&srv.sigterm, signal_cb, SIGTERM);
	ev_signal_init(&srv.sigint, signal_cb, SIGINT);
	ev_signal_start(srv.loop, &srv.sigterm);
	ev_signal_start(srv.loop, &srv.sigint);
	printf("pr-mock listening on %s:%d\n", srv.host, srv.port);
	fflush(stdout);
	ev_run(srv.loop, 0);
	ev_signal_stop(srv.loop, &srv.sigterm);
	ev_signal_stop(srv.loop, &srv.sigint);
	rv = 0;
out:
	server_cleanup(&srv);
	ev_loop_destroy(EV_DEFAULT);
	return rv;
}

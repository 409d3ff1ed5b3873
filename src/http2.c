/*
 * http2.c - the HTTP/2 session, on nghttp2 (server side). Each stream is
 * one pr_request: nghttp2's callbacks fill in its headers and body, it is
 * dispatched when the peer ends the stream, and its answer goes out as a
 * response whose body nghttp2 pulls from the request. The stream object
 * lives until nghttp2 closes the stream or the session is freed, so a
 * deferred handler may answer at any time before its abort callback runs.
 *
 * Limits come from the config. SETTINGS advertise max_streams and
 * max_header_bytes. Streams past max_streams are refused by nghttp2:
 * REFUSED_STREAM while our SETTINGS are unacknowledged, a connection
 * PROTOCOL_ERROR once the peer has acked them and still exceeds.
 * Header bytes and count (431), a :path longer than max_header_bytes
 * (414; past 4 x max_header_bytes of header block the flood guard ends
 * the connection with ENHANCE_YOUR_CALM instead), Content-Length and body
 * bytes (413) and the body timeout (408)
 * answer the stream early, then reset it with NO_ERROR if the peer is
 * still sending (RFC 9113 8.1). Output is pulled from nghttp2 only while
 * the connection's output buffer has room.
 *
 * nghttp2 must not be re-entered from its own callbacks, and a handler may
 * answer from inside one (pr_respond -> pr_conn_kick -> flush), so flush()
 * does nothing while `depth` says nghttp2 is on the stack; whoever called
 * into nghttp2 flushes when it returns.
 */
#include "autoconf.h"

#include <limits.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "conn.h"
#include "http.h"
#include "http2.h"
#include "log.h"
#include "pushrelay.h"
#include "server.h"

/*
 * Peer RST_STREAM budget against "rapid reset" (CVE-2023-44487): a token
 * bucket with nghttp2 1.57's defaults, which older libraries lack.
 */
#define RST_BURST 1000.0
#define RST_RATE  33.0

/*
 * A peer that keeps sending header fields after passing max_header_bytes
 * this many times over (RFC 9113 accounting: name + value + 32 a field)
 * is cut off instead of being decoded forever.
 */
#define HEADER_ABUSE_FACTOR 4

/* Largest per-stream and connection receive window we advertise. */
#define MAX_WINDOW (1 << 20)

enum shut_state {
	SHUT_NONE = 0,
	SHUT_NOTICE, /* GOAWAY(2^31-1) + PING sent, waiting for the ack */
	SHUT_FINAL,  /* GOAWAY with the last stream we serve submitted */
};

/* Body bytes an early-answered stream may still send before a reset:
 * one default flow-control window. */
#define DISCARD_MAX 65535

struct h2;

struct h2_stream {
	struct pr_request req; /* req.session points back here */
	struct h2 *h;
	int32_t id;
	size_t sent;	   /* response body bytes handed to nghttp2 */
	size_t wire_bytes; /* header bytes seen, RFC 9113 accounting */
	int header_err;	   /* first enum pr_error from building the request */
	int uri_too_long;  /* :path alone passed max_header_bytes (414) */
	int remote_done;   /* the peer ended the stream: request complete */
	int rejected;	   /* answered or reset early; input is ignored */
	int rst_after;	   /* reset with NO_ERROR once the answer is out */
	int answer_out;	   /* the early answer's last frame has been sent */
	size_t discarded;  /* body bytes ignored after an early answer */
	int in_dispatch;   /* the router is on the stack */
	int closed;	   /* nghttp2 is done with the stream */
	struct h2_stream *prev, *next;
};

struct h2 {
	struct pr_conn *c;
	nghttp2_session *ngh;
	struct h2_stream *streams; /* every stream with a request */
	size_t n_streams;
	int depth;	  /* >0 while nghttp2 or a batch is on the stack */
	int progress;	  /* stream bytes moved since the timer was set */
	int preface_done; /* the peer's first SETTINGS arrived */
	int conn_error;	  /* a GOAWAY with an error code went out */
	int dead;	  /* nghttp2 failed; input is discarded */
	int freeing;
	uint32_t calm_code; /* GOAWAY code after our callback gave up */
	enum shut_state shut;
	double rst_tokens;
	double rst_last;
};

static const struct pr_request_ops h2_request_ops;
static int h2_flush(struct pr_conn *c);

static struct h2 *sess(struct pr_conn *c)
{
	return c->session;
}

static const struct pr_config *cfg_of(const struct h2 *h)
{
	return h->c->server->cfg;
}

static struct h2_stream *stream_get(struct h2 *h, int32_t id)
{
	return nghttp2_session_get_stream_user_data(h->ngh, id);
}

/*
 * Forget a stream nghttp2 no longer knows (or the session is going): a
 * handler still holding the request hears about it through its abort
 * callback first.
 */
static void stream_release(struct h2_stream *st)
{
	struct h2 *h = st->h;

	st->closed = 1;
	if (st->req.deferred && !st->req.responded)
		pr_request_abort(&st->req);
	if (st->prev)
		st->prev->next = st->next;
	else
		h->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	h->n_streams--;
	pr_request_cleanup(&st->req);
	free(st);
}

/* Arm the connection's timer for what the streams are waiting on. */
static void update_timer(struct h2 *h)
{
	struct pr_conn *c = h->c;
	enum pr_timer_kind want;
	int receiving = 0, waiting = 0;

	/* Shutting down keeps DRAIN; before the preface the conn's HEADER
	 * timer stands. */
	if (h->shut != SHUT_NONE || !h->preface_done ||
	    (c->flags & (PR_CONN_CLOSING | PR_CONN_SHUTDOWN)))
		return;
	for (struct h2_stream *st = h->streams; st; st = st->next) {
		if (!st->remote_done && (!st->rejected || st->rst_after))
			receiving = 1;
		else if (!st->req.responded)
			waiting = 1;
	}
	if (h->n_streams == 0)
		want = PR_TIMER_IDLE;
	else if (receiving)
		want = PR_TIMER_BODY;
	else if (waiting)
		want = PR_TIMER_NONE; /* handlers time their own work */
	else
		want = PR_TIMER_IDLE; /* answers wait for the peer's window */
	/* IDLE without streams is not extended by PINGs or SETTINGS. */
	if (want != c->timer_kind ||
	    (want != PR_TIMER_NONE && h->n_streams && h->progress))
		pr_conn_set_timer(c, want);
	h->progress = 0;
}

/* Answer a stream before its request is complete, and stop reading it. */
static void reject(struct h2_stream *st, int status, const char *code,
		   const char *msg)
{
	st->rejected = 1;
	st->rst_after = 1; /* only acted on while the peer is still sending */
	pr_respond_error(&st->req, status, code, NULL, "%s", msg);
}

static void reset(struct h2_stream *st, uint32_t code)
{
	st->rejected = 1;
	nghttp2_submit_rst_stream(st->h->ngh, NGHTTP2_FLAG_NONE, st->id, code);
}

/* Final GOAWAY: streams up to the last one we processed still finish. */
static void final_goaway(struct h2 *h)
{
	h->shut = SHUT_FINAL;
	nghttp2_submit_goaway(h->ngh, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(h->ngh),
			      NGHTTP2_NO_ERROR, NULL, 0);
}

static int name_is(const char *n, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(n, lit, len) == 0;
}

/* One decoded request field into the request. */
static int add_field(struct h2_stream *st, const char *n, size_t nlen,
		     const char *v, size_t vlen)
{
	struct pr_request *req = &st->req;

	if (nlen == 0 || n[0] != ':')
		return pr_request_add_header(req, n, nlen, v, vlen);
	if (name_is(n, nlen, ":method"))
		return pr_request_set_method(req, v, vlen);
	if (name_is(n, nlen, ":path")) {
		/* As over HTTP/1.1: a target too long on its own is 414. */
		if (vlen > (size_t)cfg_of(st->h)->max_header_bytes) {
			st->uri_too_long = 1;
			return PR_ERR_LIMIT;
		}
		return pr_request_set_target(req, v, vlen);
	}
	if (name_is(n, nlen, ":authority"))
		return pr_request_add_header(req, "host", 4, v, vlen);
	return PR_OK; /* :scheme, :protocol */
}

/* Nonzero when the decimal value v exceeds max (nghttp2 checked syntax). */
static int length_over(const char *v, long max)
{
	unsigned long long n = 0;

	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return 0;
		if (n > (ULLONG_MAX - 9) / 10)
			return 1;
		n = n * 10 + (unsigned)(*v - '0');
	}
	return n > (unsigned long long)max;
}

/* The request head is complete: refuse it now or wait for the body. */
static void headers_done(struct h2_stream *st)
{
	struct pr_request *req = &st->req;
	const char *cl;
	int rv = st->header_err;

	if (rv == PR_OK && (req->method[0] == '\0' || !req->path))
		rv = PR_ERR_INVAL; /* e.g. CONNECT, which has no :path */
	pr_request_take_id(req);
	switch (rv) {
	case PR_OK: break;
	case PR_ERR_LIMIT:
		if (st->uri_too_long)
			reject(st, 414, "uri_too_long",
			       "the request-target exceeds max_header_bytes");
		else
			reject(st, 431, "headers_too_large",
			       "request headers exceed max_header_bytes or "
			       "max_headers");
		return;
	case PR_ERR_NOMEM: reset(st, NGHTTP2_INTERNAL_ERROR); return;
	default:
		reject(st, 400, "bad_request", "malformed request head");
		return;
	}
	cl = pr_request_header(req, "content-length");
	if (cl && length_over(cl, cfg_of(st->h)->max_body_bytes))
		reject(st, 413, "body_too_large",
		       "the request body exceeds max_body_bytes");
}

/* The peer ended the stream: hand the request to the router. */
static void request_done(struct h2_stream *st)
{
	struct h2 *h = st->h;

	st->remote_done = 1;
	if (st->rejected || st->req.responded)
		return;
	st->in_dispatch = 1;
	st->req.in_handler = 1;
	pr_server_dispatch(h->c->server, &st->req, h->c->listen_flags);
	st->req.in_handler = 0;
	st->in_dispatch = 0;
	if (st->closed)
		stream_release(st);
}

/* Spend one token of the peer's RST_STREAM budget. */
static int rst_budget(struct h2 *h)
{
	double now = ev_now(h->c->server->loop);

	h->rst_tokens += (now - h->rst_last) * RST_RATE;
	h->rst_last = now;
	if (h->rst_tokens > RST_BURST)
		h->rst_tokens = RST_BURST;
	if (h->rst_tokens < 1.0) {
		pr_log(PR_LOG_INFO, h->c->id, "%s: too many stream resets",
		       h->c->peer);
		h->calm_code = NGHTTP2_ENHANCE_YOUR_CALM;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	h->rst_tokens -= 1.0;
	return 0;
}

/* --- nghttp2 callbacks ------------------------------------------------ */

static int on_begin_headers_cb(nghttp2_session *ngh, const nghttp2_frame *frame,
			       void *user_data)
{
	struct h2 *h = user_data;
	struct h2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST the stream
							       */
	st->h = h;
	st->id = frame->hd.stream_id;
	pr_request_init(&st->req, h->c, PR_PROTO_HTTP2, &h2_request_ops, st);
	if (nghttp2_session_set_stream_user_data(ngh, st->id, st)) {
		pr_request_cleanup(&st->req);
		free(st);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->next = h->streams;
	if (h->streams)
		h->streams->prev = st;
	h->streams = st;
	h->n_streams++;
	h->progress = 1;
	return 0;
}

static int on_header_cb(nghttp2_session *ngh, const nghttp2_frame *frame,
			const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen, uint8_t flags,
			void *user_data)
{
	struct h2 *h = user_data;
	struct h2_stream *st;
	size_t limit;
	int rv;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	st = stream_get(h, frame->hd.stream_id);
	if (!st)
		return 0;
	h->progress = 1;
	st->wire_bytes += namelen + valuelen + 32;
	limit = (size_t)cfg_of(h)->max_header_bytes * HEADER_ABUSE_FACTOR;
	if (st->wire_bytes > limit) {
		pr_log(PR_LOG_INFO, h->c->id, "%s: header flood on stream %d",
		       h->c->peer, (int)st->id);
		h->calm_code = NGHTTP2_ENHANCE_YOUR_CALM;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	/* Trailers are counted above but not kept: no route uses them. */
	if (frame->headers.cat != NGHTTP2_HCAT_REQUEST || st->header_err)
		return 0;
	rv = add_field(st, (const char *)name, namelen, (const char *)value,
		       valuelen);
	if (rv)
		st->header_err = rv; /* answered when the head is complete */
	return 0;
}

static int on_data_chunk_recv_cb(nghttp2_session *ngh, uint8_t flags,
				 int32_t stream_id, const uint8_t *data,
				 size_t len, void *user_data)
{
	struct h2 *h = user_data;
	struct h2_stream *st = stream_get(h, stream_id);
	int rv;

	if (st && st->rejected) {
		/* Swallow what is already on its way (some clients treat an
		 * early reset as a failure); past one window, reset. */
		st->discarded += len;
		if (st->rst_after && st->answer_out &&
		    st->discarded > DISCARD_MAX && !st->remote_done) {
			st->rst_after = 0;
			nghttp2_submit_rst_stream(ngh, NGHTTP2_FLAG_NONE,
						  st->id, NGHTTP2_NO_ERROR);
		}
		return 0;
	}
	if (!st || st->req.responded)
		return 0; /* nghttp2 still credits the flow-control window */
	h->progress = 1;
	rv = pr_buf_append(&st->req.body, data, len);
	if (rv == PR_ERR_LIMIT)
		reject(st, 413, "body_too_large",
		       "the request body exceeds max_body_bytes");
	else if (rv)
		reset(st, NGHTTP2_INTERNAL_ERROR);
	return 0;
}

static int on_frame_recv_cb(nghttp2_session *ngh, const nghttp2_frame *frame,
			    void *user_data)
{
	struct h2 *h = user_data;
	struct h2_stream *st;

	switch (frame->hd.type) {
	case NGHTTP2_SETTINGS: h->preface_done = 1; return 0;
	case NGHTTP2_PING:
		if ((frame->hd.flags & NGHTTP2_FLAG_ACK) &&
		    h->shut == SHUT_NOTICE)
			final_goaway(h);
		return 0;
	case NGHTTP2_RST_STREAM: return rst_budget(h);
	case NGHTTP2_HEADERS:
		st = stream_get(h, frame->hd.stream_id);
		if (!st)
			return 0;
		if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
			headers_done(st);
		break;
	case NGHTTP2_DATA:
		st = stream_get(h, frame->hd.stream_id);
		if (!st)
			return 0;
		break;
	default: return 0;
	}
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		request_done(st);
	return 0;
}

static int on_frame_send_cb(nghttp2_session *ngh, const nghttp2_frame *frame,
			    void *user_data)
{
	struct h2 *h = user_data;
	struct h2_stream *st;

	switch (frame->hd.type) {
	case NGHTTP2_GOAWAY:
		if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
			h->conn_error = 1;
		return 0;
	case NGHTTP2_DATA:
		h->progress = 1;
		/* fall through */
	case NGHTTP2_HEADERS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
			return 0;
		st = stream_get(h, frame->hd.stream_id);
		/* An early answer is out. If the peer has sent more than a
		 * window since, ask it to stop; otherwise let what is in
		 * flight arrive (on_data_chunk_recv_cb resets later). */
		if (st) {
			st->answer_out = 1;
			if (st->rst_after && !st->remote_done &&
			    st->discarded > DISCARD_MAX) {
				st->rst_after = 0;
				nghttp2_submit_rst_stream(
				    ngh, NGHTTP2_FLAG_NONE, st->id,
				    NGHTTP2_NO_ERROR);
			}
		}
		return 0;
	default: return 0;
	}
}

static int on_stream_close_cb(nghttp2_session *ngh, int32_t stream_id,
			      uint32_t error_code, void *user_data)
{
	struct h2_stream *st = stream_get(user_data, stream_id);

	if (!st)
		return 0;
	if (st->in_dispatch) {
		st->closed = 1; /* request_done() releases it */
		return 0;
	}
	stream_release(st);
	return 0;
}

/* nghttp2 pulls the response body straight from the request. */
static ssize_t body_read_cb(nghttp2_session *ngh, int32_t stream_id,
			    uint8_t *buf, size_t length, uint32_t *data_flags,
			    nghttp2_data_source *source, void *user_data)
{
	struct h2_stream *st = source->ptr;
	size_t left = st->req.resp_len - st->sent;
	size_t n = left < length ? left : length;

	if (n)
		memcpy(buf, st->req.resp_body + st->sent, n);
	st->sent += n;
	if (st->sent == st->req.resp_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* --- the request ops -------------------------------------------------- */

static nghttp2_nv make_nv(const char *name, const char *value)
{
	nghttp2_nv nv = {
	    .name = (uint8_t *)name,
	    .value = (uint8_t *)value,
	    .namelen = strlen(name),
	    .valuelen = strlen(value),
	    .flags = NGHTTP2_NV_FLAG_NONE,
	};

	return nv;
}

/*
 * Handler headers HTTP/2 forbids (connection-specific, RFC 9113 8.2.2),
 * pseudo-headers, and those this file writes itself.
 */
static int skip_header(const struct pr_request *req, const char *name)
{
	static const char *const banned[] = {
	    "connection", "keep-alive", "proxy-connection", "transfer-encoding",
	    "upgrade",	  "te",		"content-length",   "x-request-id",
	};

	if (name[0] == '\0' || name[0] == ':')
		return 1;
	for (size_t i = 0; i < PR_ARRAY_SIZE(banned); i++)
		if (strcasecmp(name, banned[i]) == 0)
			return 1;
	return req->resp_type && strcasecmp(name, "content-type") == 0;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/*
 * Submit req's answer. nghttp2 copies the header fields; the body stays
 * in the request, which lives until the stream closes.
 */
static void h2_respond(struct pr_request *req)
{
	struct h2_stream *st = req->session;
	struct h2 *h = st->h;
	nghttp2_nv nv[4 + PR_MAX_RESP_HEADERS];
	nghttp2_data_provider body, *prd = NULL;
	char status[8], clen[24];
	int code = req->status, no_body, rv;
	size_t n = 0;

	if (st->closed || h->freeing)
		return; /* the peer is gone; nobody to tell */
	if (code < 200 || code > 599)
		code = 500; /* interim or nonsense codes cannot end a stream */
	no_body = code == 204 || code == 304;
	snprintf(status, sizeof(status), "%d", code);
	nv[n++] = make_nv(":status", status);
	if (req->resp_type)
		nv[n++] = make_nv("content-type", req->resp_type);
	if (!no_body) {
		snprintf(clen, sizeof(clen), "%zu", req->resp_len);
		nv[n++] = make_nv("content-length", clen);
	}
	nv[n++] = make_nv("x-request-id", req->id);
	for (size_t i = 0; i < req->n_resp_headers; i++) {
		struct pr_kv *kv = &req->resp_headers[i];

		lower(kv->name); /* HTTP/2 field names are lower case */
		if (!skip_header(req, kv->name))
			nv[n++] = make_nv(kv->name, kv->value);
	}
	if (req->resp_len && !no_body && strcmp(req->method, "HEAD") != 0) {
		body.source.ptr = st;
		body.read_callback = body_read_cb;
		prd = &body;
	}
	rv = nghttp2_submit_response(h->ngh, st->id, nv, n, prd);
	if (rv) {
		pr_log(PR_LOG_WARN, req->id, "cannot answer stream %d: %s",
		       (int)st->id, nghttp2_strerror(rv));
		reset(st, NGHTTP2_INTERNAL_ERROR);
	}
	pr_conn_kick(h->c);
}

static const struct pr_request_ops h2_request_ops = {
    .respond = h2_respond,
};

/* --- the protocol table ----------------------------------------------- */

static int h2_init(struct pr_conn *c)
{
	const struct pr_config *cfg = c->server->cfg;
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[3];
	long window = cfg->max_body_bytes;
	struct h2 *h;
	int rv = PR_ERR_NOMEM;

	h = calloc(1, sizeof(*h));
	if (!h)
		return PR_ERR_NOMEM;
	h->c = c;
	h->rst_tokens = RST_BURST;
	h->rst_last = ev_now(c->server->loop);
	if (nghttp2_session_callbacks_new(&cbs) || nghttp2_option_new(&opt))
		goto out;
	nghttp2_session_callbacks_set_on_begin_headers_callback(
	    cbs, on_begin_headers_cb);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
	    cbs, on_data_chunk_recv_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
							     on_frame_recv_cb);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs,
							     on_frame_send_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(
	    cbs, on_stream_close_cb);
	/* Our HPACK encoder keeps 4 KiB whatever table the peer offers. */
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	if (nghttp2_session_server_new2(&h->ngh, cbs, h, opt))
		goto out;

	/* A window past max_body_bytes buys nothing; keep at least the
	 * protocol default so small limits do not slow uploads. */
	if (window < NGHTTP2_INITIAL_WINDOW_SIZE)
		window = NGHTTP2_INITIAL_WINDOW_SIZE;
	if (window > MAX_WINDOW)
		window = MAX_WINDOW;
	iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
	iv[0].value = (uint32_t)cfg->max_streams;
	iv[1].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
	iv[1].value = (uint32_t)cfg->max_header_bytes;
	iv[2].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
	iv[2].value = (uint32_t)window;
	if (nghttp2_submit_settings(h->ngh, NGHTTP2_FLAG_NONE, iv,
				    PR_ARRAY_SIZE(iv)) ||
	    nghttp2_session_set_local_window_size(h->ngh, NGHTTP2_FLAG_NONE, 0,
						  (int32_t)window))
		goto out;
	c->session = h;
	rv = PR_OK;
out:
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rv) {
		nghttp2_session_del(h->ngh);
		free(h);
	}
	return rv;
}

static void h2_free(struct pr_conn *c)
{
	struct h2 *h = sess(c);

	if (!h)
		return;
	h->freeing = 1;
	nghttp2_session_del(h->ngh); /* runs no callbacks */
	h->ngh = NULL;
	while (h->streams)
		stream_release(h->streams);
	free(h);
	c->session = NULL;
}

/* A connection error: queue GOAWAY, put it in c->out, close after it. */
static void fail_session(struct h2 *h, int err)
{
	uint32_t code = NGHTTP2_PROTOCOL_ERROR;

	if (h->calm_code)
		code = h->calm_code;
	else if (err == NGHTTP2_ERR_NOMEM ||
		 err == NGHTTP2_ERR_CALLBACK_FAILURE)
		code = NGHTTP2_INTERNAL_ERROR;
	pr_log(PR_LOG_INFO, h->c->id, "%s: HTTP/2 connection error: %s",
	       h->c->peer, nghttp2_strerror(err));
	h->dead = 1;
	nghttp2_session_terminate_session(h->ngh, code);
	h2_flush(h->c);
	pr_conn_close_after_write(h->c);
}

static ssize_t h2_recv(struct pr_conn *c, const uint8_t *data, size_t len)
{
	struct h2 *h = sess(c);
	ssize_t n;

	if (h->dead)
		return (ssize_t)len; /* closing; nghttp2 cannot read on */
	h->depth++;
	n = nghttp2_session_mem_recv(h->ngh, data, len);
	h->depth--;
	if (n < 0) {
		fail_session(h, (int)n);
		return n == NGHTTP2_ERR_NOMEM ? PR_ERR_NOMEM : PR_ERR_PROTO;
	}
	/* Answers given inside the callbacks leave now; this also shows
	 * whether nghttp2 itself tore the connection down. */
	h2_flush(c);
	if (h->conn_error)
		return PR_ERR_PROTO;
	return n;
}

static int h2_flush(struct pr_conn *c)
{
	struct h2 *h = sess(c);
	int rv = PR_OK;

	if (!h || h->depth || h->freeing)
		return PR_OK;
	h->depth++;
	/* One frame at a time: DATA frames are at most 16 KiB, well inside
	 * the half of output_buffer_bytes above the high-water mark. */
	while (pr_conn_out_room(c) > 0) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(h->ngh, &data);

		if (n < 0) {
			pr_log(PR_LOG_WARN, c->id, "%s: HTTP/2 send: %s",
			       c->peer, nghttp2_strerror((int)n));
			rv = PR_ERR_PROTO;
			break;
		}
		if (n == 0)
			break;
		rv = pr_conn_write(c, data, (size_t)n);
		if (rv) {
			pr_log(PR_LOG_WARN, c->id, "%s: output buffer full",
			       c->peer);
			break;
		}
	}
	h->depth--;
	if (rv) {
		pr_conn_close_after_write(c);
		return rv;
	}
	if (!nghttp2_session_want_read(h->ngh) &&
	    !nghttp2_session_want_write(h->ngh))
		pr_conn_close_after_write(c);
	else
		update_timer(h);
	return PR_OK;
}

/*
 * Graceful shutdown (RFC 9113 6.8): GOAWAY(2^31-1) tells the peer to stop
 * opening streams, the PING's ack proves it has seen that, and then the
 * final GOAWAY names the last stream we serve. Streams up to it finish.
 */
static void h2_shutdown(struct pr_conn *c)
{
	struct h2 *h = sess(c);

	if (h->shut != SHUT_NONE)
		return;
	if (nghttp2_submit_shutdown_notice(h->ngh) == 0 &&
	    nghttp2_submit_ping(h->ngh, NGHTTP2_FLAG_NONE, NULL) == 0)
		h->shut = SHUT_NOTICE;
	else
		final_goaway(h);
	pr_conn_set_timer(c, PR_TIMER_DRAIN);
	pr_conn_kick(c);
}

static int h2_busy(struct pr_conn *c)
{
	struct h2 *h = sess(c);

	return h->n_streams > 0 || h->shut == SHUT_NOTICE ||
	       nghttp2_session_want_write(h->ngh) || pr_buf_avail(&c->out) > 0;
}

/* The body timer: every stream still being received gets a 408. */
static void expire_requests(struct h2 *h)
{
	h->depth++; /* no stream may be freed under the loop */
	for (struct h2_stream *st = h->streams; st; st = st->next) {
		if (st->remote_done)
			continue;
		if (!st->rejected) {
			reject(st, 408, "request_timeout",
			       "the request was not received in time");
		} else if (st->rst_after && st->answer_out) {
			/* Answered early and the rest never came: stop it. */
			st->rst_after = 0;
			nghttp2_submit_rst_stream(h->ngh, NGHTTP2_FLAG_NONE,
						  st->id, NGHTTP2_NO_ERROR);
		}
	}
	h->depth--;
}

static void h2_timeout(struct pr_conn *c)
{
	struct h2 *h = sess(c);

	switch (c->timer_kind) {
	case PR_TIMER_BODY:
		pr_log(PR_LOG_INFO, c->id, "%s: request body timed out",
		       c->peer);
		expire_requests(h);
		break;
	case PR_TIMER_DRAIN:
		if (h->shut != SHUT_FINAL) {
			final_goaway(h);
			pr_conn_set_timer(c, PR_TIMER_DRAIN);
			break;
		}
		/* The streams in flight had their time. */
		/* fall through */
	default:
		pr_log(PR_LOG_DEBUG, c->id, "%s: HTTP/2 connection %s, closing",
		       c->peer, h->n_streams ? "stalled" : "idle");
		nghttp2_session_terminate_session(h->ngh, NGHTTP2_NO_ERROR);
		pr_conn_close_after_write(c);
		/* A peer that never takes the GOAWAY is dropped at the next
		 * expiry (the conn frees a closing connection then). */
		pr_conn_set_timer(c, PR_TIMER_IDLE);
		break;
	}
	pr_conn_kick(c);
}

const struct pr_proto pr_http2_proto = {
    .name = "h2",
    .init = h2_init,
    .free = h2_free,
    .recv = h2_recv,
    .flush = h2_flush,
    .shutdown = h2_shutdown,
    .busy = h2_busy,
    .timeout = h2_timeout,
};

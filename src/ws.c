/*
 * ws.c - WebSocket sessions (RFC 6455) framed by wslay. pr_ws_accept()
 * checks the handshake of an HTTP/1.1 request, answers 101 and leaves a
 * session in c->next_proto, which the HTTP/1.1 session installs once the
 * request is finished; from then on this file is the connection's
 * struct pr_proto. The conn's output buffer plays the socket for wslay:
 * wslay's send callback writes into it while it has room, and its recv
 * callback serves the bytes the conn hands to recv().
 *
 * Bounds: a message from the client is at most ws_max_message (wslay
 * closes 1009); what we queue for the client is at most ws_max_queued
 * (pr_ws_send_text refuses and the session closes 1008); input is only
 * taken while the conn's output has room, so pongs cannot pile up.
 *
 * Callbacks into the handler never nest: none is made from inside an
 * API call of this file (pr_ws_accept, pr_ws_send_text, pr_ws_close) or
 * from inside another callback, and on_close is the last one. Where the
 * end is noticed inside such a call, on_close waits for the next I/O
 * event, timer or the connection's end.
 */
#include "autoconf.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "config.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "pushrelay.h"
#include "server.h"
#include "ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* How long a close handshake may take before the TCP connection goes. */
#define CLOSE_WAIT_SECONDS 5.0

enum ws_timer { TIMER_PING, TIMER_CLOSE };

struct pr_ws {
	struct pr_conn *c;
	wslay_event_context_ptr ctx;
	struct pr_ws_handler h;
	void *arg;
	char label[120]; /* "<conn id> <peer>" for pr_ws_id() */

	/* Limits, from the config when the session was accepted. */
	size_t max_queued;
	double ping_interval;
	double idle_timeout;

	/* The input wslay's recv callback serves during ws_recv(). */
	const uint8_t *in;
	size_t in_len, in_off;

	enum ws_timer timer;
	double armed; /* seconds the timer was last armed for */
	double idle;  /* seconds counted without a frame from the peer */
	int rx;	      /* a frame started since the last timer tick */

	int depth;	/* inside an API call or a handler callback */
	int in_recv;	/* inside wslay_event_recv() */
	int in_flush;	/* inside ws_flush() */
	int stalled;	/* input waits in c->in until output has room */
	int above_half; /* queued went past max_queued / 2: on_drain owed */
	int closing;	/* a close frame is queued, sent or received */
	int ended;	/* the TCP connection closes after writing */
	int fired;	/* on_close was called */
};

static const struct pr_proto ws_proto;

static struct pr_ws *sess(struct pr_conn *c)
{
	return c->session;
}

/* ---- helpers ---------------------------------------------------------- */

/* Does the comma-separated header value v list token tok? */
static int has_token(const char *v, const char *tok)
{
	size_t n = strlen(tok);

	while (v && *v) {
		const char *end;
		size_t len;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		end = v;
		while (*end && *end != ',')
			end++;
		len = (size_t)(end - v);
		while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (len == n && strncasecmp(v, tok, n) == 0)
			return 1;
		v = end;
	}
	return 0;
}

/* v without surrounding blanks, in *len bytes (0 for NULL). */
static const char *trim(const char *v, size_t *len)
{
	size_t n;

	if (!v) {
		*len = 0;
		return "";
	}
	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	*len = n;
	return v;
}

static int is_b64(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/* Sec-WebSocket-Key: base64 of 16 bytes, i.e. 22 digits and "==". */
static int key_ok(const char *v)
{
	size_t n;
	const char *k = trim(v, &n);

	if (n != 24 || k[22] != '=' || k[23] != '=')
		return 0;
	for (size_t i = 0; i < 22; i++)
		if (!is_b64((unsigned char)k[i]))
			return 0;
	return 1;
}

static int version_ok(const char *v)
{
	size_t n;
	const char *s = trim(v, &n);

	return n == 2 && memcmp(s, "13", 2) == 0;
}

/* Sec-WebSocket-Accept: base64(SHA-1(key GUID)), 28 chars + NUL. */
static int accept_value(const char *key, char out[32])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char buf[24 + sizeof(WS_GUID)];
	size_t n;
	const char *k = trim(key, &n);

	memcpy(buf, k, n); /* n == 24: key_ok() said so */
	memcpy(buf + n, WS_GUID, sizeof(WS_GUID) - 1);
	if (!EVP_Digest(buf, n + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(),
			NULL) ||
	    mdlen != 20)
		return PR_ERR_TLS;
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	return PR_OK;
}

/*
 * Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing past
 * U+10FFFF. wslay checks text frames too; this is our own guarantee that
 * on_text only ever sees valid text, whatever wslay version is linked.
 */
static int utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t b = s[i];
		uint32_t cp, min;
		size_t more;

		if (b < 0x80) {
			i++;
			continue;
		}
		if ((b & 0xe0) == 0xc0)
			more = 1;
		else if ((b & 0xf0) == 0xe0)
			more = 2;
		else if ((b & 0xf8) == 0xf0)
			more = 3;
		else
			return 0;
		cp = b & (0x7fu >> (more + 1));
		min = more == 1 ? 0x80 : more == 2 ? 0x800 : 0x10000;
		if (n - i - 1 < more)
			return 0;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += more + 1;
	}
	return 1;
}

/* A code we may send (RFC 6455 7.4); others become 1000. */
static uint16_t sendable_code(uint16_t code)
{
	if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
	    (code >= 3000 && code <= 4999))
		return code;
	return WSLAY_CODE_NORMAL_CLOSURE;
}

/* ---- session state ---------------------------------------------------- */

static void arm(struct pr_ws *ws, enum ws_timer t, double after)
{
	ws->timer = t;
	ws->armed = after;
	pr_conn_set_session_timer(ws->c, after);
}

/* Queue a close frame. hard: stop reading and close the TCP connection as
 * soon as the frame is out; otherwise wait for the peer's close. Either
 * way the close handshake gets CLOSE_WAIT_SECONDS. */
static void start_close(struct pr_ws *ws, uint16_t code, const char *reason,
			int hard)
{
	size_t rlen;

	if (!reason)
		reason = "";
	rlen = strlen(reason);

	if (rlen > 123) {
		rlen = 123; /* a control frame's payload is at most 125 */
		while (rlen && ((unsigned char)reason[rlen] & 0xc0) == 0x80)
			rlen--; /* do not cut a UTF-8 sequence */
	}
	/* NO_MORE_MSG: a close is already queued; that one stands. */
	wslay_event_queue_close(ws->ctx, sendable_code(code),
				(const uint8_t *)reason, rlen);
	if (hard)
		wslay_event_shutdown_read(ws->ctx);
	if (!ws->closing) {
		pr_log(PR_LOG_DEBUG, ws->c->id, "%s: WebSocket closing (%u %s)",
		       ws->c->peer, (unsigned)code, reason);
		ws->closing = 1;
		arm(ws, TIMER_CLOSE, CLOSE_WAIT_SECONDS);
	}
}

/* The session is over: close the TCP connection once out is written. */
static void finish(struct pr_ws *ws)
{
	if (ws->ended)
		return;
	ws->ended = 1;
	ws->closing = 1;
	pr_conn_close_after_write(ws->c);
}

/* After our close went out: over once the peer's close came (or reading
 * stopped for an error). */
static void check_end(struct pr_ws *ws)
{
	if (!ws->ended && wslay_event_get_close_sent(ws->ctx) &&
	    !wslay_event_get_read_enabled(ws->ctx))
		finish(ws);
}

static void fire_close(struct pr_ws *ws)
{
	ws->fired = 1;
	pr_log(PR_LOG_DEBUG, ws->c->id,
	       "%s: WebSocket closed (sent %u, received %u)", ws->c->peer,
	       (unsigned)wslay_event_get_status_code_sent(ws->ctx),
	       (unsigned)wslay_event_get_status_code_received(ws->ctx));
	if (ws->h.on_close) {
		ws->depth++;
		ws->h.on_close(ws, ws->arg);
		ws->depth--;
	}
}

/* on_close, once the session ended and no call of ours is on the stack. */
static void maybe_fire(struct pr_ws *ws)
{
	if (ws->ended && !ws->fired && !ws->depth && !ws->in_recv &&
	    !ws->in_flush)
		fire_close(ws);
}

/* Ask the conn to flush, unless wslay is on the stack (its caller
 * flushes when it returns). */
static void kick(struct pr_ws *ws)
{
	if (!ws->in_recv && !ws->in_flush)
		pr_conn_kick(ws->c);
}

/* ---- wslay callbacks -------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
		       int flags, void *user)
{
	struct pr_ws *ws = user;
	size_t n = ws->in_len - ws->in_off;

	if (n == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n > len)
		n = len;
	memcpy(buf, ws->in + ws->in_off, n);
	ws->in_off += n;
	return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
		       size_t len, int flags, void *user)
{
	struct pr_ws *ws = user;
	size_t room = pr_conn_out_room(ws->c);

	if (room == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > room)
		len = room;
	if (pr_conn_write(ws->c, data, len)) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void frame_start_cb(wslay_event_context_ptr ctx,
			   const struct wslay_event_on_frame_recv_start_arg *a,
			   void *user)
{
	struct pr_ws *ws = user;

	ws->rx = 1;
	/* Refuse binary before wslay buffers it: we speak JSON text. */
	if (a->opcode == WSLAY_BINARY_FRAME)
		start_close(ws, WSLAY_CODE_UNSUPPORTED_DATA,
			    "binary messages are not supported", 1);
}

static void msg_cb(wslay_event_context_ptr ctx,
		   const struct wslay_event_on_msg_recv_arg *a, void *user)
{
	struct pr_ws *ws = user;

	if (a->opcode != WSLAY_TEXT_FRAME)
		return; /* wslay answers pings and closes; binary is refused */
	if (!utf8_ok(a->msg, a->msg_length)) {
		start_close(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA,
			    "invalid UTF-8", 1);
		return;
	}
	if (ws->closing || ws->fired || !ws->h.on_text)
		return;
	ws->depth++;
	ws->h.on_text(ws, a->msg ? (const char *)a->msg : "", a->msg_length,
		      ws->arg);
	ws->depth--;
}

/* ---- struct pr_proto -------------------------------------------------- */

static int ws_init(struct pr_conn *c)
{
	/* A session only ever starts from pr_ws_accept(). */
	return PR_ERR_INVAL;
}

static void ws_destroy(struct pr_ws *ws)
{
	wslay_event_context_free(ws->ctx);
	free(ws);
}

static void ws_free(struct pr_conn *c)
{
	struct pr_ws *ws = sess(c);

	if (!ws)
		return;
	ws->ended = 1;
	if (!ws->fired)
		fire_close(ws);
	ws_destroy(ws);
	c->session = NULL;
}

static ssize_t ws_recv(struct pr_conn *c, const uint8_t *data, size_t len)
{
	struct pr_ws *ws = sess(c);
	int rv;

	if (ws->ended || !wslay_event_get_read_enabled(ws->ctx))
		return (ssize_t)len; /* closing: discard */
	if (ws->depth || pr_conn_out_room(c) == 0) {
		/* Output is backed up (pongs, echoes): read on later. */
		ws->stalled = 1;
		return 0;
	}
	ws->in = data;
	ws->in_len = len;
	ws->in_off = 0;
	ws->in_recv = 1;
	rv = wslay_event_recv(ws->ctx);
	ws->in_recv = 0;
	ws->in = NULL;
	if (rv == WSLAY_ERR_NOMEM)
		return PR_ERR_NOMEM;
	if (rv) {
		/* A framing error wslay could not answer with a code. */
		start_close(ws, WSLAY_CODE_PROTOCOL_ERROR, "protocol error", 1);
	}
	if (!wslay_event_get_read_enabled(ws->ctx) && !ws->closing) {
		/* wslay queued a close (peer's close, 1002, 1007, 1009). */
		ws->closing = 1;
		arm(ws, TIMER_CLOSE, CLOSE_WAIT_SECONDS);
	}
	check_end(ws);
	maybe_fire(ws);
	/* wslay took everything up to a WOULDBLOCK; after a close what is
	 * left is discarded. */
	return (ssize_t)len;
}

static int ws_flush(struct pr_conn *c)
{
	struct pr_ws *ws = sess(c);

	if (ws->in_flush || ws->in_recv)
		return PR_OK;
	ws->in_flush = 1;
	for (;;) {
		if (pr_conn_out_room(c) > 0 &&
		    wslay_event_want_write(ws->ctx) &&
		    wslay_event_send(ws->ctx) != 0) {
			pr_log(PR_LOG_DEBUG, c->id,
			       "%s: WebSocket write failed", c->peer);
			finish(ws);
			break;
		}
		if (!ws->above_half || ws->depth ||
		    pr_ws_queued(ws) >= ws->max_queued / 2)
			break;
		ws->above_half = 0;
		if (ws->closing || ws->fired || !ws->h.on_drain)
			break;
		ws->depth++;
		ws->h.on_drain(ws, ws->arg);
		ws->depth--;
		/* and send what on_drain queued */
	}
	ws->in_flush = 0;
	check_end(ws);
	if (ws->stalled && !ws->depth && !ws->ended &&
	    pr_conn_out_room(c) > 0) {
		ws->stalled = 0;
		pr_conn_resume(c); /* may flush again (test mode) */
	}
	maybe_fire(ws);
	return PR_OK;
}

static void ws_shutdown(struct pr_conn *c)
{
	struct pr_ws *ws = sess(c);

	if (!ws->closing)
		start_close(ws, WSLAY_CODE_GOING_AWAY, "going away", 0);
	pr_conn_kick(c);
}

static int ws_busy(struct pr_conn *c)
{
	struct pr_ws *ws = sess(c);

	return !ws->ended || pr_buf_avail(&c->out) > 0;
}

/* Every ping_interval: a ping when the last interval brought no frame;
 * after idle_timeout of that, close. */
static void tick(struct pr_ws *ws)
{
	static const struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
	double next = ws->ping_interval;

	if (ws->rx) {
		ws->rx = 0;
		ws->idle = 0;
	} else {
		ws->idle += ws->armed;
	}
	if (ws->idle >= ws->idle_timeout) {
		pr_log(PR_LOG_DEBUG, ws->c->id,
		       "%s: WebSocket silent for %.0fs, closing", ws->c->peer,
		       ws->idle);
		start_close(ws, WSLAY_CODE_GOING_AWAY, "idle timeout", 1);
		return;
	}
	if (ws->idle > 0) {
		wslay_event_queue_msg(ws->ctx, &ping);
		if (ws->idle_timeout - ws->idle < next)
			next = ws->idle_timeout - ws->idle;
	}
	arm(ws, TIMER_PING, next);
}

static void ws_timeout(struct pr_conn *c)
{
	struct pr_ws *ws = sess(c);

	if (ws->ended) {
		pr_conn_close_after_write(c);
		return;
	}
	if (ws->timer == TIMER_CLOSE) {
		pr_log(PR_LOG_DEBUG, c->id,
		       "%s: WebSocket close handshake timed out", c->peer);
		finish(ws);
	} else {
		tick(ws);
	}
	pr_conn_kick(c);
	maybe_fire(ws);
}

static const struct pr_proto ws_proto = {
    .name = "websocket",
    .init = ws_init,
    .free = ws_free,
    .recv = ws_recv,
    .flush = ws_flush,
    .shutdown = ws_shutdown,
    .busy = ws_busy,
    .timeout = ws_timeout,
};

/* ---- API -------------------------------------------------------------- */

int pr_ws_is_upgrade(const struct pr_request *req)
{
	return req->proto == PR_PROTO_HTTP1 &&
	       strcmp(req->method, "GET") == 0 &&
	       has_token(pr_request_header(req, "upgrade"), "websocket") &&
	       has_token(pr_request_header(req, "connection"), "upgrade") &&
	       key_ok(pr_request_header(req, "sec-websocket-key")) &&
	       version_ok(pr_request_header(req, "sec-websocket-version"));
}

/* Answer req with the handshake's fault; 0 when it has none. */
static int refuse(struct pr_request *req)
{
	const char *what = NULL;

	if (req->proto != PR_PROTO_HTTP1) {
		pr_respond_error(req, 400, "bad_handshake", NULL,
				 "WebSocket over HTTP/2 (RFC 8441) is not "
				 "supported; connect with HTTP/1.1");
		return -1;
	}
	if (strcmp(req->method, "GET") != 0)
		what = "a WebSocket handshake is a GET";
	else if (!has_token(pr_request_header(req, "upgrade"), "websocket"))
		what = "Upgrade: websocket is missing";
	else if (!has_token(pr_request_header(req, "connection"), "upgrade"))
		what = "Connection: Upgrade is missing";
	if (!what &&
	    !version_ok(pr_request_header(req, "sec-websocket-version"))) {
		pr_response_header(req, "Sec-WebSocket-Version", "13");
		pr_respond_error(req, 426, "upgrade_required", NULL,
				 "only WebSocket version 13 is supported");
		return -1;
	}
	if (!what && !key_ok(pr_request_header(req, "sec-websocket-key")))
		what = "Sec-WebSocket-Key must be 16 bytes in base64";
	if (!what && (req->conn->flags & PR_CONN_SHUTDOWN)) {
		pr_respond_error(req, 503, "shutting_down", NULL,
				 "the server is shutting down");
		return -1;
	}
	if (what) {
		pr_respond_error(req, 400, "bad_handshake", NULL, "%s", what);
		return -1;
	}
	return 0;
}

static struct pr_ws *ws_new(struct pr_conn *c, const struct pr_ws_handler *h,
			    void *arg)
{
	static const struct wslay_event_callbacks cbs = {
	    .recv_callback = recv_cb,
	    .send_callback = send_cb,
	    .on_frame_recv_start_callback = frame_start_cb,
	    .on_msg_recv_callback = msg_cb,
	};
	const struct pr_config *cfg = c->server->cfg;
	struct pr_ws *ws = calloc(1, sizeof(*ws));

	if (!ws)
		return NULL;
	if (wslay_event_context_server_init(&ws->ctx, &cbs, ws)) {
		free(ws);
		return NULL;
	}
	wslay_event_config_set_max_recv_msg_length(
	    ws->ctx, (uint64_t)cfg->ws_max_message);
	ws->c = c;
	if (h)
		ws->h = *h;
	ws->arg = arg;
	snprintf(ws->label, sizeof(ws->label), "%s %s", c->id, c->peer);
	ws->max_queued = (size_t)cfg->ws_max_queued;
	ws->ping_interval = (double)cfg->ws_ping_interval;
	ws->idle_timeout = (double)cfg->ws_idle_timeout;
	/* The first flush hands over any input that followed the request. */
	ws->stalled = 1;
	return ws;
}

struct pr_ws *pr_ws_accept(struct pr_request *req,
			   const struct pr_ws_handler *h, void *arg)
{
	struct pr_conn *c = req->conn;
	struct pr_ws *ws;
	char accept[32];

	if (req->responded || refuse(req))
		return NULL;
	if (c->next_proto) {
		pr_respond_error(req, 500, "internal", NULL,
				 "the connection is already switching");
		return NULL;
	}
	ws = ws_new(c, h, arg);
	if (!ws ||
	    accept_value(pr_request_header(req, "sec-websocket-key"), accept) ||
	    pr_response_header(req, "Upgrade", "websocket") ||
	    pr_response_header(req, "Connection", "Upgrade") ||
	    pr_response_header(req, "Sec-WebSocket-Accept", accept)) {
		if (ws)
			ws_destroy(ws);
		pr_respond_error(req, 500, "internal", NULL,
				 "could not start the WebSocket session");
		return NULL;
	}
	c->next_proto = &ws_proto;
	c->next_session = ws;
	ws->depth++; /* no handler callbacks before we return */
	pr_respond(req, 101, NULL, NULL, 0);
	ws->depth--;
	if (c->next_session == ws && (c->flags & PR_CONN_CLOSING)) {
		/* The 101 did not fit; HTTP/1.1 answered 500 instead. */
		c->next_proto = NULL;
		c->next_session = NULL;
		ws_destroy(ws);
		return NULL;
	}
	pr_log(PR_LOG_DEBUG, c->id, "%s: WebSocket open", c->peer);
	arm(ws, TIMER_PING, ws->ping_interval);
	return ws;
}

int pr_ws_send_text(struct pr_ws *ws, const char *msg, size_t len)
{
	struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)msg,
				    len};
	size_t queued;
	int rv;

	if (ws->closing || ws->fired)
		return PR_ERR_CLOSED;
	queued = pr_ws_queued(ws);
	if (queued >= ws->max_queued || len > ws->max_queued - queued) {
		pr_log(PR_LOG_DEBUG, ws->c->id,
		       "%s: WebSocket peer %zu bytes behind, closing",
		       ws->c->peer, queued);
		ws->depth++;
		start_close(ws, WSLAY_CODE_POLICY_VIOLATION, "too slow", 1);
		kick(ws);
		ws->depth--;
		return PR_ERR_LIMIT;
	}
	rv = wslay_event_queue_msg(ws->ctx, &m);
	if (rv == WSLAY_ERR_NOMEM)
		return PR_ERR_NOMEM;
	if (rv)
		return PR_ERR_CLOSED;
	if (queued + len > ws->max_queued / 2)
		ws->above_half = 1;
	ws->depth++;
	kick(ws);
	ws->depth--;
	return PR_OK;
}

size_t pr_ws_queued(const struct pr_ws *ws)
{
	return wslay_event_get_queued_msg_length(ws->ctx) +
	       pr_buf_avail(&ws->c->out);
}

void pr_ws_close(struct pr_ws *ws, uint16_t code, const char *reason)
{
	if (ws->closing || ws->fired)
		return;
	ws->depth++;
	start_close(ws, code, reason, 0);
	kick(ws);
	ws->depth--;
}

const char *pr_ws_id(const struct pr_ws *ws)
{
	return ws->label;
}

/*
 * http1.c - the HTTP/1.1 session, on http-parser. One request is handled
 * at a time: while a handler has not answered, the parser is paused and
 * pipelined bytes wait in the connection's input stash, so answers leave
 * in request order and memory stays bounded. Chunked bodies are decoded
 * by http-parser; Expect: 100-continue is answered before the body.
 *
 * Limits (from the config): request-target and header bytes (414/431),
 * header count (431), body bytes (413), header and body read timeouts
 * (408). Each of these answers once, then closes the connection.
 *
 * Upgrade: only "Upgrade: websocket" is honoured. http-parser then stops
 * at the end of the request; if the handler accepts (pr_ws_accept sets
 * c->next_proto and answers 101), this session hands the connection over
 * and leaves the bytes that followed the request to the new session.
 */
#include "autoconf.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "pushrelay.h"
#include "server.h"

struct h1 {
	http_parser parser;
	struct pr_conn *c;
	struct pr_request *req; /* the request being read or answered */
	struct pr_buf url;
	struct pr_buf field;
	struct pr_buf value;
	int in_value;	/* the last header callback was a value */
	int in_message; /* bytes of a request have arrived */
	int waiting;	/* dispatched, the answer is not out yet */
	int stalled;	/* paused because output is backed up */
	int dead;	/* answered an error; discard input, close */
	int keepalive;
	int http10;	 /* HTTP/1.0 request: say keep-alive explicitly */
	int head;	 /* HEAD: no body in the answer */
	int in_trailers; /* header callbacks now carry chunked trailers */
	int upgraded;	 /* answered 101: hand over to c->next_proto */
	size_t trailer_bytes;
};

static const struct pr_request_ops h1_request_ops;

static struct h1 *sess(struct pr_conn *c)
{
	return c->session;
}

/* RFC 9110 Date, rebuilt at most once a second. */
static const char *http_date(struct pr_server *s)
{
	static char buf[40];
	static time_t last = -1;
	time_t now = (time_t)ev_now(s->loop);
	struct tm tm;

	if (now != last) {
		gmtime_r(&now, &tm);
		strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		last = now;
	}
	return buf;
}

/*
 * Serialise an answer. When the connection must close (error, HTTP/1.0,
 * shutdown) it says "Connection: close" and the caller closes.
 */
static int write_response(struct h1 *h, int status, const char *ctype,
			  const char *id, const struct pr_kv *hdrs, size_t nh,
			  const char *body, size_t len, int close)
{
	struct pr_conn *c = h->c;
	char head[1024];
	size_t n;
	int w, rv;

	w = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nDate: %s\r\n",
		     status, pr_http_reason(status), http_date(c->server));
	if (w < 0 || (size_t)w >= sizeof(head))
		return PR_ERR_LIMIT;
	n = (size_t)w;
	if (status >= 200) { /* a 1xx (101 Switching Protocols) has none */
		w = snprintf(head + n, sizeof(head) - n,
			     "Content-Length: %zu\r\n", len);
		if (w < 0 || (size_t)w >= sizeof(head) - n)
			return PR_ERR_LIMIT;
		n += (size_t)w;
	}
	if (ctype) {
		w = snprintf(head + n, sizeof(head) - n, "Content-Type: %s\r\n",
			     ctype);
		if (w < 0 || (size_t)w >= sizeof(head) - n)
			return PR_ERR_LIMIT;
		n += (size_t)w;
	}
	if (id) {
		w = snprintf(head + n, sizeof(head) - n, "X-Request-Id: %s\r\n",
			     id);
		if (w < 0 || (size_t)w >= sizeof(head) - n)
			return PR_ERR_LIMIT;
		n += (size_t)w;
	}
	for (size_t i = 0; i < nh; i++) {
		w = snprintf(head + n, sizeof(head) - n, "%s: %s\r\n",
			     hdrs[i].name, hdrs[i].value);
		if (w < 0 || (size_t)w >= sizeof(head) - n)
			return PR_ERR_LIMIT;
		n += (size_t)w;
	}
	w = snprintf(head + n, sizeof(head) - n, "%s\r\n",
		     close	 ? "Connection: close\r\n"
		     : h->http10 ? "Connection: keep-alive\r\n"
				 : "");
	if (w < 0 || (size_t)w >= sizeof(head) - n)
		return PR_ERR_LIMIT;
	n += (size_t)w;
	/* An answer must fit whole: never a head without its body. Sessions
	 * stop producing at half the buffer, so half is always free. */
	if (n + (h->head ? 0 : len) > c->out.max / 2)
		return PR_ERR_LIMIT;
	rv = pr_conn_write(c, head, n);
	if (rv == PR_OK && len && !h->head)
		rv = pr_conn_write(c, body, len);
	return rv;
}

/* Answer without a request object (parse errors, limits, timeouts). */
static void fail(struct h1 *h, int status, const char *code, const char *msg)
{
	char body[256];
	size_t len;

	if (h->dead)
		return;
	if (h->req) {
		/* Count it on the request so metrics and logs see it. */
		h->req->close_after = 1;
		h->dead = 1;
		pr_respond_error(h->req, status, code, NULL, "%s", msg);
		return;
	}
	h->dead = 1;
	h->head = 0; /* no request of ours: the answer has a body */
	len = pr_http_error_body(body, sizeof(body), code, msg);
	write_response(h, status, "application/json", NULL, NULL, 0, body, len,
		       1);
	pr_conn_close_after_write(h->c);
}

static void free_request(struct h1 *h)
{
	if (!h->req)
		return;
	pr_request_cleanup(h->req);
	free(h->req);
	h->req = NULL;
}

static void h1_respond(struct pr_request *req)
{
	struct h1 *h = req->session;
	/* 101 from pr_ws_accept: the connection stays, as another protocol. */
	int upgrade = req->status == 101 && h->c->next_proto;
	int close = !upgrade && (req->close_after || !h->keepalive ||
				 (h->c->flags & PR_CONN_SHUTDOWN));
	int rv;

	rv = write_response(h, req->status, req->resp_type, req->id,
			    req->resp_headers, req->n_resp_headers,
			    req->resp_body, req->resp_len, close);
	if (rv) {
		char body[200];
		size_t blen = pr_http_error_body(
		    body, sizeof(body), "internal",
		    "the answer is larger than output_buffer_bytes allows");

		pr_log(PR_LOG_ERROR, req->id,
		       "answer of %zu bytes does not fit half of "
		       "output_buffer_bytes; sent 500 instead",
		       req->resp_len);
		close = 1;
		upgrade = 0;
		write_response(h, 500, "application/json", req->id, NULL, 0,
			       body, blen, 1);
	}
	h->upgraded = upgrade;
	if (close) {
		h->dead = 1;
		pr_conn_close_after_write(h->c);
	}
	if (req->in_handler)
		return; /* on_message_complete finishes the job */
	/* A deferred answer: release the request and read on. */
	free_request(h);
	h->waiting = 0;
	if (upgrade) {
		struct pr_conn *c = h->c;

		pr_conn_switch_proto(c); /* frees h */
		pr_conn_kick(c);	 /* the new session takes c->in */
		return;
	}
	if (!h->dead) {
		pr_conn_set_timer(h->c, PR_TIMER_IDLE);
		pr_conn_resume(h->c);
	} else {
		pr_conn_kick(h->c);
	}
}

static const struct pr_request_ops h1_request_ops = {
    .respond = h1_respond,
};

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

static int new_request(struct h1 *h)
{
	h->req = calloc(1, sizeof(*h->req));
	if (!h->req)
		return PR_ERR_NOMEM;
	pr_request_init(h->req, h->c, PR_PROTO_HTTP1, &h1_request_ops, h);
	return PR_OK;
}

static int on_message_begin(http_parser *p)
{
	struct h1 *h = p->data;

	h->in_message = 1;
	h->in_value = 0;
	h->in_trailers = 0;
	h->trailer_bytes = 0;
	h->head = 0;
	h->keepalive = 1;
	h->http10 = 0;
	pr_buf_reset(&h->url);
	pr_buf_reset(&h->field);
	pr_buf_reset(&h->value);
	pr_conn_set_timer(h->c, PR_TIMER_HEADER);
	if (new_request(h)) {
		fail(h, 500, "internal", "out of memory");
		return -1;
	}
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct h1 *h = p->data;

	if (pr_buf_append(&h->url, at, len)) {
		fail(h, 414, "uri_too_long",
		     "the request-target exceeds max_header_bytes");
		return -1;
	}
	return 0;
}

/* Store the header that the field/value buffers hold. */
static int flush_header(struct h1 *h)
{
	int rv;

	if (!h->in_value)
		return 0;
	if (h->in_trailers) {
		/* Chunked trailers never become request headers (no smuggled
		 * Authorization); they only count against the limit. */
		h->trailer_bytes +=
		    pr_buf_avail(&h->field) + pr_buf_avail(&h->value) + 4;
		pr_buf_reset(&h->field);
		pr_buf_reset(&h->value);
		h->in_value = 0;
		if (h->trailer_bytes >
		    (size_t)h->c->server->cfg->max_header_bytes) {
			fail(h, 431, "headers_too_large",
			     "chunked trailers exceed max_header_bytes");
			return -1;
		}
		return 0;
	}
	rv = pr_request_add_header(
	    h->req, pr_buf_peek(&h->field), pr_buf_avail(&h->field),
	    pr_buf_peek(&h->value), pr_buf_avail(&h->value));
	pr_buf_reset(&h->field);
	pr_buf_reset(&h->value);
	h->in_value = 0;
	if (rv == PR_ERR_LIMIT) {
		fail(h, 431, "headers_too_large",
		     "request headers exceed max_header_bytes or max_headers");
		return -1;
	}
	if (rv) {
		fail(h, 400, "bad_request", "malformed header");
		return -1;
	}
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct h1 *h = p->data;

	if (flush_header(h))
		return -1;
	if (pr_buf_append(&h->field, at, len)) {
		fail(h, 431, "headers_too_large",
		     "a header field exceeds max_header_bytes");
		return -1;
	}
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct h1 *h = p->data;

	h->in_value = 1;
	if (pr_buf_append(&h->value, at, len)) {
		fail(h, 431, "headers_too_large",
		     "a header value exceeds max_header_bytes");
		return -1;
	}
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct h1 *h = p->data;
	struct pr_request *req = h->req;
	const char *m = http_method_str((enum http_method)p->method);
	const char *expect;
	int rv;

	if (flush_header(h))
		return -1;
	rv = pr_request_set_method(req, m, strlen(m));
	if (rv == PR_OK)
		rv = pr_request_set_target(req, pr_buf_peek(&h->url),
					   pr_buf_avail(&h->url));
	if (rv == PR_ERR_LIMIT) {
		fail(h, 431, "headers_too_large",
		     "request head exceeds max_header_bytes");
		return -1;
	}
	if (rv) {
		fail(h, 400, "bad_request", "malformed request-target");
		return -1;
	}
	pr_request_take_id(req);
	h->keepalive = http_should_keep_alive(p);
	h->http10 = p->http_major == 1 && p->http_minor == 0;
	h->head = p->method == HTTP_HEAD;
	h->in_trailers = 1;
	/* Only WebSocket may follow (if the handler accepts it); any other
	 * offer (curl offers h2c) is plain HTTP/1.1, body and all. */
	if (p->upgrade &&
	    !has_token(pr_request_header(req, "upgrade"), "websocket"))
		p->upgrade = 0;
	if ((p->flags & F_CONTENTLENGTH) &&
	    p->content_length > (uint64_t)h->c->server->cfg->max_body_bytes) {
		fail(h, 413, "body_too_large",
		     "the request body exceeds max_body_bytes");
		return -1;
	}
	expect = pr_request_header(req, "expect");
	if (expect) {
		if (strcasecmp(expect, "100-continue") != 0) {
			fail(h, 417, "expectation_failed",
			     "only Expect: 100-continue is supported");
			return -1;
		}
		if (p->http_minor >= 1 &&
		    ((p->flags & F_CHUNKED) ||
		     ((p->flags & F_CONTENTLENGTH) && p->content_length > 0))) {
			static const char cont[] =
			    "HTTP/1.1 100 Continue\r\n\r\n";

			pr_conn_write(h->c, cont, sizeof(cont) - 1);
		}
	}
	pr_conn_set_timer(h->c, PR_TIMER_BODY);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct h1 *h = p->data;

	if (pr_buf_append(&h->req->body, at, len)) {
		fail(h, 413, "body_too_large",
		     "the request body exceeds max_body_bytes");
		return -1;
	}
	pr_conn_set_timer(h->c, PR_TIMER_BODY);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct h1 *h = p->data;
	struct pr_request *req = h->req;

	h->in_message = 0;
	h->waiting = 1;
	pr_conn_set_timer(h->c, PR_TIMER_NONE);
	req->in_handler = 1;
	pr_server_dispatch(h->c->server, req, h->c->listen_flags);
	req->in_handler = 0;
	if (!req->responded) {
		/* Deferred: hold further input until the answer leaves. */
		http_parser_pause(p, 1);
		return 0;
	}
	free_request(h);
	h->waiting = 0;
	if (h->dead || h->upgraded) {
		/* h1_recv closes, or hands the rest to the new protocol. */
		http_parser_pause(p, 1);
		return 0;
	}
	pr_conn_set_timer(h->c, PR_TIMER_IDLE);
	if (pr_conn_out_room(h->c) == 0) {
		h->stalled = 1;
		http_parser_pause(p, 1);
	}
	return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static int h1_init(struct pr_conn *c)
{
	struct h1 *h = calloc(1, sizeof(*h));
	size_t max = (size_t)c->server->cfg->max_header_bytes;

	if (!h)
		return PR_ERR_NOMEM;
	http_parser_init(&h->parser, HTTP_REQUEST);
	h->parser.data = h;
	h->c = c;
	h->keepalive = 1;
	pr_buf_init(&h->url, max);
	pr_buf_init(&h->field, max);
	pr_buf_init(&h->value, max);
	c->session = h;
	return PR_OK;
}

static void h1_free(struct pr_conn *c)
{
	struct h1 *h = sess(c);

	if (!h)
		return;
	if (h->req && h->waiting)
		pr_request_abort(h->req);
	free_request(h);
	pr_buf_cleanup(&h->url);
	pr_buf_cleanup(&h->field);
	pr_buf_cleanup(&h->value);
	free(h);
	c->session = NULL;
}

static ssize_t h1_recv(struct pr_conn *c, const uint8_t *data, size_t len)
{
	struct h1 *h = sess(c);
	size_t done = 0;

	if (h->dead)
		return (ssize_t)len; /* closing: discard */
	while (done < len) {
		size_t n;
		enum http_errno err;

		if (h->waiting ||
		    ((c->flags & PR_CONN_SHUTDOWN) && !h->in_message))
			break;
		if (pr_conn_out_room(c) == 0) {
			h->stalled = 1;
			break;
		}
		n = http_parser_execute(&h->parser, &settings,
					(const char *)data + done, len - done);
		done += n;
		err = HTTP_PARSER_ERRNO(&h->parser);
		if (err == HPE_PAUSED) {
			http_parser_pause(&h->parser, 0);
			if (h->dead)
				return (ssize_t)len;
			if (h->upgraded) {
				/* What follows the request head is the new
				 * protocol's: the conn stashes it for the new
				 * session. h is freed here. */
				pr_conn_switch_proto(c);
				return (ssize_t)done;
			}
			continue;
		}
		if (h->dead)
			return (ssize_t)len;
		if (err != HPE_OK) {
			if (err == HPE_HEADER_OVERFLOW)
				fail(h, 431, "headers_too_large",
				     "request head too large");
			else
				fail(h, 400, "bad_request",
				     http_errno_description(err));
			return (ssize_t)len;
		}
		if (n == 0)
			break;
	}
	return (ssize_t)done;
}

static int h1_flush(struct pr_conn *c)
{
	struct h1 *h = sess(c);

	if (h->stalled && pr_conn_out_room(c) > 0) {
		h->stalled = 0;
		pr_conn_resume(c);
	}
	return PR_OK;
}

static void h1_shutdown(struct pr_conn *c)
{
	struct h1 *h = sess(c);

	/* Idle or between requests: close now. Otherwise the answer in
	 * progress carries "Connection: close". */
	if (!h->in_message && !h->waiting)
		pr_conn_close_after_write(c);
}

static int h1_busy(struct pr_conn *c)
{
	struct h1 *h = sess(c);

	return h->in_message || h->waiting || pr_buf_avail(&c->out) > 0;
}

static void h1_timeout(struct pr_conn *c)
{
	struct h1 *h = sess(c);

	switch (c->timer_kind) {
	case PR_TIMER_HEADER:
	case PR_TIMER_BODY:
		if (h->in_message) {
			pr_log(PR_LOG_INFO, c->id,
			       "%s: request not received in time, closing",
			       c->peer);
			if (h->req && h->req->method[0] == '\0') {
				/* Headers incomplete: no request to log. */
				free_request(h);
			}
			fail(h, 408, "request_timeout",
			     "the request was not received in time");
			pr_conn_close_after_write(c);
			return;
		}
		pr_conn_close_after_write(c);
		return;
	default: pr_conn_close_after_write(c); return;
	}
}

const struct pr_proto pr_http1_proto = {
    .name = "http/1.1",
    .init = h1_init,
    .free = h1_free,
    .recv = h1_recv,
    .flush = h1_flush,
    .shutdown = h1_shutdown,
    .busy = h1_busy,
    .timeout = h1_timeout,
};

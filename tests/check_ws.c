/*
 * check_ws.c - WebSocket sessions fed from memory: the upgrade from an
 * HTTP/1.1 connection (also with frames in the same bytes as the request
 * and with a deferred accept), echo, fragments, every close code the
 * session sends, ping/pong and the idle timer, the close handshake both
 * ways, the slow-reader bound and on_drain. Client frames are built and
 * masked by hand; server frames are parsed from conn->out. No sockets.
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "harness.h"
#include "http.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"
#include "ws.h"

#define KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static struct pr_server *srv;
static struct pr_conn *conn;
static struct pr_ws *ws;	/* the session the route accepted */
static struct pr_request *held; /* a deferred upgrade request */
static int n_text, n_close, n_drain, echo_rv;
static char last_text[70000];
static size_t last_len;

/* Everything the server wrote, and how far the frames were parsed. */
static unsigned char got[1 << 20];
static size_t got_len, got_pos;

struct frame {
	int fin, opcode;
	size_t len;
	const unsigned char *data;
};

static void on_text(struct pr_ws *w, const char *msg, size_t len, void *arg)
{
	n_text++;
	ck_assert_uint_lt(len, sizeof(last_text));
	memcpy(last_text, msg, len);
	last_text[len] = '\0';
	last_len = len;
	echo_rv = pr_ws_send_text(w, msg, len);
}

static void on_drain(struct pr_ws *w, void *arg)
{
	n_drain++;
}

static void on_close(struct pr_ws *w, void *arg)
{
	n_close++;
	ck_assert_ptr_eq(w, ws);
	ws = NULL;
}

static const struct pr_ws_handler handler = {
    .on_text = on_text,
    .on_drain = on_drain,
    .on_close = on_close,
};

/* GET /ws: a stream when asked for one, a plain answer otherwise. */
static void ws_route(struct pr_request *req, void *arg)
{
	if (!pr_ws_is_upgrade(req)) {
		pr_respond(req, 200, "text/plain", "plain", 5);
		return;
	}
	ws = pr_ws_accept(req, &handler, NULL);
}

/* GET /wsx: always tries, so pr_ws_accept answers the faults. */
static void ws_strict(struct pr_request *req, void *arg)
{
	ws = pr_ws_accept(req, &handler, NULL);
}

static void on_abort(struct pr_request *req, void *arg)
{
	held = NULL;
}

/* GET /wslater: accepts later, as after an asynchronous check. */
static void ws_later(struct pr_request *req, void *arg)
{
	held = req;
	pr_request_defer(req, on_abort, NULL);
}

static void make(struct pr_config *cfg)
{
	if (!cfg)
		cfg = pr_config_new();
	ck_assert_ptr_nonnull(cfg);
	srv = th_mem_server(cfg);
	ck_assert_ptr_nonnull(srv);
	pr_router_add(srv->router, "GET", "/ws", ws_route, NULL,
		      PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "GET", "/wsx", ws_strict, NULL,
		      PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "GET", "/wslater", ws_later, NULL,
		      PR_ROUTE_PUBLIC);
	conn = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, &pr_http1_proto);
	ck_assert_ptr_nonnull(conn);
	ws = NULL;
	held = NULL;
	n_text = n_close = n_drain = 0;
	echo_rv = 0;
	last_len = 0;
	got_len = got_pos = 0;
}

static void setup(void)
{
	make(NULL);
}

static void teardown(void)
{
	if (conn)
		pr_conn_free(conn);
	pr_server_free(srv);
	conn = NULL;
	srv = NULL;
}

/* Restart with a config the test changed. */
static struct pr_config *fresh_config(void)
{
	struct pr_config *cfg = pr_config_new();

	teardown();
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

static void feed(const void *p, size_t n)
{
	ck_assert_int_eq(pr_conn_feed(conn, p, n), 0);
}

static void feeds(const char *s)
{
	feed(s, strlen(s));
}

/* Move conn->out to got. */
static void collect(void)
{
	size_t n = pr_buf_avail(&conn->out);

	ck_assert_uint_le(got_len + n, sizeof(got));
	memcpy(got + got_len, pr_buf_peek(&conn->out), n);
	got_len += n;
	pr_buf_consume(&conn->out, n);
}

/* A client frame: masked (unless told not to), into out; its length. */
static size_t build(unsigned char *out, int fin, int opcode, const void *data,
		    size_t len, int masked)
{
	static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
	const unsigned char *p = data;
	size_t n = 0;

	out[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
	if (len < 126) {
		out[n++] = (unsigned char)((masked ? 0x80 : 0) | len);
	} else if (len < 65536) {
		out[n++] = (unsigned char)((masked ? 0x80 : 0) | 126);
		out[n++] = (unsigned char)(len >> 8);
		out[n++] = (unsigned char)len;
	} else {
		out[n++] = (unsigned char)((masked ? 0x80 : 0) | 127);
		for (int i = 7; i >= 0; i--)
			out[n++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	if (masked) {
		memcpy(out + n, key, 4);
		n += 4;
	}
	for (size_t i = 0; i < len; i++)
		out[n + i] = masked ? p[i] ^ key[i % 4] : p[i];
	return n + len;
}

static void send_frame(int fin, int opcode, const void *data, size_t len)
{
	static unsigned char buf[80000];

	ck_assert_uint_lt(len + 14, sizeof(buf));
	feed(buf, build(buf, fin, opcode, data, len, 1));
}

static void send_text(const char *s)
{
	send_frame(1, 0x1, s, strlen(s));
}

static void send_close(uint16_t code, const char *reason)
{
	unsigned char p[125];
	size_t n = strlen(reason);

	p[0] = (unsigned char)(code >> 8);
	p[1] = (unsigned char)code;
	memcpy(p + 2, reason, n);
	send_frame(1, 0x8, p, n + 2);
}

/* The next complete server frame, or 0 when there is none yet. */
static int next_frame(struct frame *f)
{
	const unsigned char *p;
	size_t avail, hl = 2, len;

	collect();
	p = got + got_pos;
	avail = got_len - got_pos;
	if (avail < 2)
		return 0;
	ck_assert_msg(!(p[1] & 0x80), "server frames are not masked");
	len = p[1] & 0x7f;
	if (len == 126) {
		if (avail < 4)
			return 0;
		len = ((size_t)p[2] << 8) | p[3];
		hl = 4;
	} else if (len == 127) {
		if (avail < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | p[2 + i];
		hl = 10;
	}
	if (avail < hl + len)
		return 0;
	f->fin = !!(p[0] & 0x80);
	ck_assert_int_eq(p[0] & 0x70, 0); /* no RSV bits */
	f->opcode = p[0] & 0x0f;
	f->len = len;
	f->data = p + hl;
	got_pos += hl + len;
	return 1;
}

static void expect_frame(int opcode, const char *data)
{
	struct frame f;

	ck_assert_msg(next_frame(&f), "no frame (opcode %d expected)", opcode);
	ck_assert_int_eq(f.opcode, opcode);
	ck_assert_int_eq(f.fin, 1);
	if (data) {
		ck_assert_uint_eq(f.len, strlen(data));
		ck_assert(memcmp(f.data, data, f.len) == 0);
	}
}

/* The next frame is a close with this code. */
static void expect_close(uint16_t code)
{
	struct frame f;

	ck_assert_msg(next_frame(&f), "no close frame (%u expected)", code);
	ck_assert_int_eq(f.opcode, 0x8);
	ck_assert_uint_ge(f.len, 2);
	ck_assert_uint_eq(((unsigned)f.data[0] << 8) | f.data[1], code);
}

static void expect_nothing(void)
{
	struct frame f;

	ck_assert_msg(!next_frame(&f), "unexpected frame, opcode %d", f.opcode);
}

static const char *handshake(const char *path, const char *extra)
{
	static char req[1024];

	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		 "Connection: keep-alive, Upgrade\r\n"
		 "Sec-WebSocket-Key: " KEY "\r\n%s\r\n",
		 path, extra ? extra : "Sec-WebSocket-Version: 13\r\n");
	return req;
}

/* The next response head in got (skipping any body before it), as a
 * string (static); got_pos moves past it. */
static const char *take_head(void)
{
	static char head[2048];
	const unsigned char *start;
	const char *end;
	size_t n;

	collect();
	start = memmem(got + got_pos, got_len - got_pos, "HTTP/1.1 ", 9);
	ck_assert_msg(start, "no response");
	got_pos = (size_t)(start - got);
	end = memmem(got + got_pos, got_len - got_pos, "\r\n\r\n", 4);
	ck_assert_msg(end, "no response head");
	n = (size_t)(end + 4 - (const char *)(got + got_pos));
	ck_assert_uint_lt(n, sizeof(head));
	memcpy(head, got + got_pos, n);
	head[n] = '\0';
	got_pos += n;
	return head;
}

static void open_ws(void)
{
	const char *head;

	feeds(handshake("/ws", NULL));
	head = take_head();
	ck_assert_msg(
	    strncmp(head, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0,
	    "%s", head);
	ck_assert_ptr_nonnull(ws);
	ck_assert_str_eq(conn->proto->name, "websocket");
}

START_TEST(test_handshake)
{
	const char *head;

	feeds(handshake("/ws", NULL));
	head = take_head();
	ck_assert_msg(
	    strncmp(head, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0,
	    "%s", head);
	ck_assert_ptr_nonnull(strstr(head, "\r\nUpgrade: websocket\r\n"));
	ck_assert_ptr_nonnull(strstr(head, "\r\nConnection: Upgrade\r\n"));
	ck_assert_ptr_nonnull(
	    strstr(head, "\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"));
	ck_assert_ptr_null(strstr(head, "Content-Length"));
	ck_assert_ptr_null(strstr(head, "Sec-WebSocket-Extensions"));
	ck_assert_ptr_null(strstr(head, "Sec-WebSocket-Protocol"));
	ck_assert_ptr_nonnull(ws);
	ck_assert_str_eq(conn->proto->name, "websocket");
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
	ck_assert_ptr_nonnull(strstr(pr_ws_id(ws), conn->id));
	expect_nothing();
	ck_assert_int_eq(n_close, 0);
}
END_TEST

START_TEST(test_frame_with_handshake)
{
	unsigned char buf[2048];
	const char *req = handshake("/ws", NULL);
	size_t n = strlen(req);

	memcpy(buf, req, n);
	n += build(buf + n, 1, 0x1, "early", 5, 1);
	n += build(buf + n, 1, 0x1, "bird", 4, 1);
	feed(buf, n);
	take_head();
	expect_frame(0x1, "early");
	expect_frame(0x1, "bird");
	ck_assert_int_eq(n_text, 2);
}
END_TEST

START_TEST(test_echo)
{
	unsigned char buf[256];
	size_t n;
	static char big[60000];

	open_ws();
	send_text("hello");
	expect_frame(0x1, "hello");
	ck_assert_int_eq(echo_rv, 0);

	/* One byte at a time. */
	n = build(buf, 1, 0x1, "{\"a\":1}", 7, 1);
	for (size_t i = 0; i < n; i++)
		feed(buf + i, 1);
	expect_frame(0x1, "{\"a\":1}");

	/* 16-bit length, and UTF-8 text. */
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15);
	send_text(big);
	expect_frame(0x1, big);

	/* Empty message. */
	send_text("");
	expect_frame(0x1, "");
	ck_assert_int_eq(n_text, 4);
}
END_TEST

START_TEST(test_fragments)
{
	open_ws();
	send_frame(0, 0x1, "ab", 2);
	send_frame(0, 0x0, "c\xc3", 2); /* a UTF-8 sequence split ... */
	send_frame(1, 0x9, "mid", 3);	/* a ping between fragments */
	send_frame(1, 0x0,
		   "\xa9"
		   "def",
		   4); /* ... across fragments */
	expect_frame(0xa, "mid");
	expect_frame(0x1, "abc\xc3\xa9"
			  "def");
	ck_assert_int_eq(n_text, 1);
	ck_assert_str_eq(last_text, "abc\xc3\xa9"
				    "def");
}
END_TEST

START_TEST(test_unmasked)
{
	unsigned char buf[64];

	open_ws();
	feed(buf, build(buf, 1, 0x1, "hi", 2, 0));
	expect_close(1002);
	ck_assert_int_eq(n_text, 0);
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
	ck_assert_ptr_null(ws);
}
END_TEST

START_TEST(test_reserved_opcode)
{
	open_ws();
	send_frame(1, 0x3, "??", 2);
	expect_close(1002);
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
}
END_TEST

START_TEST(test_too_big)
{
	struct pr_config *cfg = fresh_config();
	char msg[300];

	cfg->ws_max_message = 128;
	make(cfg);
	open_ws();
	memset(msg, 'a', 128);
	msg[128] = '\0';
	send_text(msg); /* exactly the limit: fine */
	expect_frame(0x1, msg);
	send_frame(0, 0x1, msg, 100);
	send_frame(1, 0x0, msg, 29); /* 129 in all */
	expect_close(1009);
	ck_assert_int_eq(n_text, 1);
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
}
END_TEST

START_TEST(test_too_big_one_frame)
{
	struct pr_config *cfg = fresh_config();
	static char msg[70000];

	cfg->ws_max_message = 1024;
	make(cfg);
	open_ws();
	memset(msg, 'a', sizeof(msg) - 1);
	send_text(msg);
	expect_close(1009);
	ck_assert_int_eq(n_text, 0);
	ck_assert(conn->flags & PR_CONN_CLOSING);
}
END_TEST

START_TEST(test_bad_utf8)
{
	open_ws();
	send_text("ok \xc3\x28");
	expect_close(1007);
	ck_assert_int_eq(n_text, 0);
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
}
END_TEST

START_TEST(test_surrogate)
{
	open_ws();
	send_text("\xed\xa0\x80"); /* U+D800 */
	expect_close(1007);
	ck_assert_int_eq(n_text, 0);
}
END_TEST

START_TEST(test_binary)
{
	open_ws();
	send_frame(1, 0x2, "\x00\x01", 2);
	expect_close(1003);
	ck_assert_int_eq(n_text, 0);
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
	/* Input after the close is discarded. */
	send_text("late");
	expect_nothing();
	ck_assert_int_eq(n_text, 0);
}
END_TEST

START_TEST(test_ping_pong)
{
	open_ws();
	send_frame(1, 0x9, "are you there", 13);
	expect_frame(0xa, "are you there");
	send_frame(1, 0x9, "", 0);
	expect_frame(0xa, "");
	send_frame(1, 0xa, "unsolicited", 11); /* ignored */
	expect_nothing();
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
}
END_TEST

START_TEST(test_client_close)
{
	open_ws();
	send_text("before");
	expect_frame(0x1, "before");
	send_close(1000, "bye");
	expect_close(1000);
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
	ck_assert_ptr_null(ws);
	send_text("after");
	expect_nothing();
	ck_assert_int_eq(n_text, 1);
	/* The conn goes; on_close is not called again. */
	pr_conn_free(conn);
	conn = NULL;
	ck_assert_int_eq(n_close, 1);
}
END_TEST

START_TEST(test_server_close)
{
	struct pr_ws *w;

	open_ws();
	w = ws;
	pr_ws_close(w, 4000, "done here");
	expect_close(4000);
	/* Waiting for the peer's close: still open, no on_close yet. */
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
	ck_assert_int_eq(n_close, 0);
	ck_assert_int_eq(pr_ws_send_text(w, "x", 1), PR_ERR_CLOSED);
	pr_ws_close(w, 1000, "again"); /* ignored */
	send_text("in flight");	       /* dropped: we are closing */
	expect_nothing();
	ck_assert_int_eq(n_text, 0);
	send_close(4000, "");
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
	expect_nothing(); /* no second close frame */
}
END_TEST

START_TEST(test_server_close_timeout)
{
	open_ws();
	pr_ws_close(ws, 1000, NULL);
	expect_close(1000);
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
	ck_assert_int_eq(conn->timer_kind, PR_TIMER_SESSION);
	ck_assert(conn->timer.repeat > 0 && conn->timer.repeat <= 10);
	conn->proto->timeout(conn); /* the peer never answered */
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
}
END_TEST

START_TEST(test_shutdown)
{
	open_ws();
	pr_conn_shutdown(conn);
	expect_close(1001);
	ck_assert(conn->proto->busy(conn));
	ck_assert_int_eq(n_close, 0);
	send_close(1001, "");
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
}
END_TEST

START_TEST(test_freed_while_open)
{
	open_ws();
	pr_conn_free(conn);
	conn = NULL;
	ck_assert_int_eq(n_close, 1);
}
END_TEST

START_TEST(test_bad_handshake)
{
	const char *head;

	/* No key. */
	feeds("GET /wsx HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n");
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 400 ", 13) == 0, "%s", head);
	ck_assert_ptr_null(ws);
	ck_assert_str_eq(conn->proto->name, "http/1.1");

	/* A key that is not 16 bytes. */
	feeds("GET /wsx HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	      "Connection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\n"
	      "Sec-WebSocket-Version: 13\r\n\r\n");
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 400 ", 13) == 0, "%s", head);

	/* Version 8. */
	feeds(handshake("/wsx", "Sec-WebSocket-Version: 8\r\n"));
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 426 ", 13) == 0, "%s", head);
	ck_assert_ptr_nonnull(
	    strstr(head, "\r\nSec-WebSocket-Version: 13\r\n"));
	ck_assert_ptr_null(ws);

	/* No Connection: Upgrade. */
	feeds("GET /wsx HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	      "Sec-WebSocket-Key: " KEY "\r\n"
	      "Sec-WebSocket-Version: 13\r\n\r\n");
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 400 ", 13) == 0, "%s", head);

	/* Still HTTP/1.1 and usable. */
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
	feeds("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 200 ", 13) == 0, "%s", head);
	ck_assert_int_eq(n_close, 0);
}
END_TEST

START_TEST(test_not_upgrade)
{
	const char *head;

	feeds("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 200 ", 13) == 0, "%s", head);
	ck_assert(memcmp(got + got_pos, "plain", 5) == 0);
	/* An Upgrade for something else (h2c) is plain HTTP/1.1 too. */
	feeds("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
	      "Connection: Upgrade, HTTP2-Settings\r\n"
	      "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
	      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 200 ", 13) == 0, "%s", head);
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 200 ", 13) == 0, "%s", head);
	ck_assert_str_eq(conn->proto->name, "http/1.1");
	ck_assert_ptr_null(ws);
}
END_TEST

/* Upgrade: websocket answered without the switch (the handler declined):
 * the connection goes on as HTTP/1.1. */
START_TEST(test_upgrade_declined)
{
	const char *head;

	feeds(handshake("/wsx", "Sec-WebSocket-Version: 7\r\n"));
	feeds("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 426 ", 13) == 0, "%s", head);
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 200 ", 13) == 0, "%s", head);
}
END_TEST

START_TEST(test_deferred_accept)
{
	unsigned char buf[2048];
	const char *req = handshake("/wslater", NULL);
	const char *head;
	size_t n = strlen(req);

	memcpy(buf, req, n);
	n += build(buf + n, 1, 0x1, "queued", 6, 1);
	feed(buf, n);
	ck_assert_ptr_nonnull(held);
	ck_assert_uint_eq(pr_buf_avail(&conn->out), 0);
	ws = pr_ws_accept(held, &handler, NULL);
	held = NULL;
	ck_assert_ptr_nonnull(ws);
	ck_assert_str_eq(conn->proto->name, "websocket");
	ck_assert_int_eq(n_text, 0); /* not from inside pr_ws_accept */
	ck_assert_int_eq(pr_ws_send_text(ws, "welcome", 7), 0);
	head = take_head();
	ck_assert_msg(strncmp(head, "HTTP/1.1 101 ", 13) == 0, "%s", head);
	conn->proto->flush(conn); /* the loop's next turn */
	expect_frame(0x1, "welcome");
	expect_frame(0x1, "queued");
	send_text("more");
	expect_frame(0x1, "more");
}
END_TEST

static struct pr_request *answered;

static void record(struct pr_request *req)
{
	answered = req;
}

START_TEST(test_http2_refused)
{
	static const struct pr_request_ops ops = {.respond = record};
	struct pr_conn *c2 = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, NULL);
	struct pr_request req;

	ck_assert_ptr_nonnull(c2);
	pr_request_init(&req, c2, PR_PROTO_HTTP2, &ops, NULL);
	ck_assert_int_eq(pr_request_set_method(&req, "GET", 3), 0);
	ck_assert_int_eq(pr_request_set_target(&req, "/ws", 3), 0);
	pr_request_add_header(&req, "upgrade", 7, "websocket", 9);
	pr_request_add_header(&req, "connection", 10, "upgrade", 7);
	pr_request_add_header(&req, "sec-websocket-key", 17, KEY, 24);
	pr_request_add_header(&req, "sec-websocket-version", 21, "13", 2);
	ck_assert(!pr_ws_is_upgrade(&req));
	answered = NULL;
	ck_assert_ptr_null(pr_ws_accept(&req, &handler, NULL));
	ck_assert_ptr_eq(answered, &req);
	ck_assert_int_eq(req.status, 400);
	ck_assert_ptr_nonnull(
	    memmem(req.resp_body, req.resp_len, "RFC 8441", 8));
	ck_assert_ptr_null(c2->next_proto);
	pr_request_cleanup(&req);
	pr_conn_free(c2);
	ck_assert_int_eq(n_close, 0);
}
END_TEST

START_TEST(test_is_upgrade)
{
	static const struct pr_request_ops ops = {.respond = record};
	struct pr_conn *c2 = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, NULL);
	struct pr_request req;

	pr_request_init(&req, c2, PR_PROTO_HTTP1, &ops, NULL);
	pr_request_set_method(&req, "GET", 3);
	pr_request_add_header(&req, "upgrade", 7, "WebSocket", 9);
	pr_request_add_header(&req, "connection", 10, "keep-alive,upgrade", 18);
	pr_request_add_header(&req, "sec-websocket-version", 21, " 13 ", 4);
	ck_assert(!pr_ws_is_upgrade(&req)); /* no key yet */
	pr_request_add_header(&req, "sec-websocket-key", 17, KEY, 24);
	ck_assert(pr_ws_is_upgrade(&req));
	memcpy(req.method, "POST", 5);
	ck_assert(!pr_ws_is_upgrade(&req));
	pr_request_cleanup(&req);
	pr_conn_free(c2);
}
END_TEST

START_TEST(test_idle_ping)
{
	struct pr_config *cfg = fresh_config();

	cfg->ws_ping_interval = 30;
	cfg->ws_idle_timeout = 60;
	make(cfg);
	open_ws();
	ck_assert_int_eq(conn->timer_kind, PR_TIMER_SESSION);
	ck_assert(conn->timer.repeat == 30.0);

	/* Silent for an interval: ping. */
	conn->proto->timeout(conn);
	expect_frame(0x9, NULL);
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
	/* The peer answers: no ping for the next interval. */
	send_frame(1, 0xa, "", 0);
	conn->proto->timeout(conn);
	expect_nothing();
	/* Silent again: ping; then silent past ws_idle_timeout: closed. */
	conn->proto->timeout(conn);
	expect_frame(0x9, NULL);
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
	ck_assert_int_eq(n_close, 0);
	conn->proto->timeout(conn);
	expect_close(1001);
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
}
END_TEST

START_TEST(test_idle_text_counts)
{
	struct pr_config *cfg = fresh_config();

	cfg->ws_ping_interval = 10;
	cfg->ws_idle_timeout = 25;
	make(cfg);
	open_ws();
	for (int i = 0; i < 5; i++) {
		send_text("tick");
		expect_frame(0x1, "tick");
		conn->proto->timeout(conn);
		expect_nothing();
	}
	conn->proto->timeout(conn); /* 10 s silent */
	expect_frame(0x9, NULL);
	conn->proto->timeout(conn); /* 20 s silent: the last 5 s next */
	expect_frame(0x9, NULL);
	ck_assert(conn->timer.repeat == 5.0);
	conn->proto->timeout(conn);
	expect_close(1001);
	ck_assert(conn->flags & PR_CONN_CLOSING);
}
END_TEST

START_TEST(test_slow_reader)
{
	struct pr_config *cfg = fresh_config();
	char msg[1000];
	struct pr_ws *w;
	int rv = 0, sent = 0;
	struct frame f;

	cfg->ws_max_queued = 4096;
	make(cfg);
	open_ws();
	w = ws;
	memset(msg, 'm', sizeof(msg));
	/* The peer reads nothing: conn->out grows. */
	for (int i = 0; i < 10 && rv == 0; i++) {
		rv = pr_ws_send_text(w, msg, sizeof(msg));
		if (rv == 0)
			sent++;
	}
	ck_assert_int_eq(rv, PR_ERR_LIMIT);
	ck_assert_int_ge(sent, 3);
	ck_assert_int_le(sent, 4);
	ck_assert_uint_le(pr_ws_queued(w), 4096);
	ck_assert_int_eq(pr_ws_send_text(w, "x", 1), PR_ERR_CLOSED);
	/* The peer catches up: the data, then close 1008. */
	conn->proto->flush(conn);
	for (int i = 0; i < sent; i++) {
		ck_assert(next_frame(&f));
		ck_assert_int_eq(f.opcode, 0x1);
		ck_assert_uint_eq(f.len, sizeof(msg));
	}
	expect_close(1008);
	ck_assert(conn->flags & PR_CONN_CLOSING);
	ck_assert_int_eq(n_close, 1);
	ck_assert_int_eq(n_drain, 0);
}
END_TEST

START_TEST(test_drain)
{
	struct pr_config *cfg = fresh_config();
	char msg[1000];
	struct frame f;

	cfg->ws_max_queued = 4096;
	make(cfg);
	open_ws();
	memset(msg, 'd', sizeof(msg));
	ck_assert_int_eq(pr_ws_send_text(ws, msg, sizeof(msg)), 0);
	conn->proto->flush(conn);
	ck_assert_int_eq(n_drain, 0); /* never above half */
	collect();
	ck_assert_int_eq(pr_ws_send_text(ws, msg, sizeof(msg)), 0);
	ck_assert_int_eq(pr_ws_send_text(ws, msg, sizeof(msg)), 0);
	ck_assert_int_eq(pr_ws_send_text(ws, msg, sizeof(msg)), 0);
	ck_assert_uint_gt(pr_ws_queued(ws), 2048);
	conn->proto->flush(conn);
	ck_assert_int_eq(n_drain, 0); /* still above half */
	collect();		      /* the peer reads */
	ck_assert_uint_eq(pr_ws_queued(ws), 0);
	conn->proto->flush(conn);
	ck_assert_int_eq(n_drain, 1);
	conn->proto->flush(conn);
	ck_assert_int_eq(n_drain, 1); /* once per crossing */
	for (int i = 0; i < 4; i++) {
		ck_assert(next_frame(&f));
		ck_assert_uint_eq(f.len, sizeof(msg));
	}
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
}
END_TEST

/* A client that sends pings and never reads cannot grow our memory:
 * input stops while the output is backed up. */
START_TEST(test_ping_flood_paused)
{
	struct pr_config *cfg = fresh_config();
	static unsigned char buf[100 * 140];
	char payload[125];
	size_t n, before;
	int round;

	cfg->output_buffer_bytes = 64 * 1024;
	make(cfg);
	open_ws();
	memset(payload, 'p', sizeof(payload));
	/* Feed as the socket would: until the conn stops taking input. */
	for (round = 0; round < 40 && !pr_buf_avail(&conn->in); round++) {
		n = 0;
		for (int i = 0; i < 100; i++)
			n +=
			    build(buf + n, 1, 0x9, payload, sizeof(payload), 1);
		ck_assert_int_eq(pr_conn_feed(conn, buf, n), 0);
	}
	ck_assert_int_lt(round, 40);
	ck_assert_uint_gt(pr_buf_avail(&conn->in), 0);
	/* Output stops at the high-water mark, half the buffer. */
	ck_assert_uint_le(pr_buf_avail(&conn->out), 32 * 1024);
	ck_assert_uint_le(pr_ws_queued(ws), 32 * 1024 + 100 * 130);
	before = pr_buf_avail(&conn->in);
	collect();
	conn->proto->flush(conn);
	ck_assert_uint_lt(pr_buf_avail(&conn->in), before);
}
END_TEST

static Suite *ws_suite(void)
{
	Suite *s = suite_create("ws");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_handshake);
	tcase_add_test(tc, test_frame_with_handshake);
	tcase_add_test(tc, test_echo);
	tcase_add_test(tc, test_fragments);
	tcase_add_test(tc, test_unmasked);
	tcase_add_test(tc, test_reserved_opcode);
	tcase_add_test(tc, test_too_big);
	tcase_add_test(tc, test_too_big_one_frame);
	tcase_add_test(tc, test_bad_utf8);
	tcase_add_test(tc, test_surrogate);
	tcase_add_test(tc, test_binary);
	tcase_add_test(tc, test_ping_pong);
	tcase_add_test(tc, test_client_close);
	tcase_add_test(tc, test_server_close);
	tcase_add_test(tc, test_server_close_timeout);
	tcase_add_test(tc, test_shutdown);
	tcase_add_test(tc, test_freed_while_open);
	tcase_add_test(tc, test_bad_handshake);
	tcase_add_test(tc, test_not_upgrade);
	tcase_add_test(tc, test_upgrade_declined);
	tcase_add_test(tc, test_deferred_accept);
	tcase_add_test(tc, test_http2_refused);
	tcase_add_test(tc, test_is_upgrade);
	tcase_add_test(tc, test_idle_ping);
	tcase_add_test(tc, test_idle_text_counts);
	tcase_add_test(tc, test_slow_reader);
	tcase_add_test(tc, test_drain);
	tcase_add_test(tc, test_ping_flood_paused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ws_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

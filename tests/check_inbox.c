/*
 * check_inbox.c - offline delivery end to end through pushrelayd: client
 * tokens (forgeries refused), the inbox in order with no gaps across
 * reconnects, acknowledgements (idempotent, never past what was
 * delivered), two devices of one user, long-poll wake-up, 1,000
 * concurrent long polls, and the WebSocket stream (backlog, live
 * messages, acks over the socket).
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SECRET "test-secret-0123456789abcdefghijklmnop"

static struct th_daemon d;
static char key[128];

/* ---- tokens ------------------------------------------------------------ */

static void client_token(char *out, size_t outlen, const char *user,
			 const char *device, long exp_in)
{
	th_client_token(out, outlen, SECRET, user, device, exp_in);
}

static void token(char *out, size_t outlen, const char *header,
		  const char *claims, const char *secret)
{
	th_jwt_hs256(out, outlen, header, claims, secret);
}

/* ---- helpers ----------------------------------------------------------- */

static void make_key(void)
{
	ck_assert_int_eq(th_make_key(&d, "t", "ingest", key, sizeof(key)), 0);
}

static void start(const char *extra)
{
	char conf[1024];

	snprintf(conf, sizeof(conf),
		 "[app \"chat\"]\nclient_token_secret = " SECRET "\n%s",
		 extra ? extra : "");
	ck_assert_msg(th_daemon_start(&d, NULL, conf) == 0,
		      "pushrelayd did not start; see %s", d.log);
	make_key();
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
}

static long call(const char *method, const char *path, const char *bearer,
		 const char *body, json_t **out)
{
	char auth[4200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
	ck_assert_int_eq(th_request(&d, TH_H1, method, path, body,
				    bearer ? hdrs : hdrs + 1, &r),
			 0);
	st = r.status;
	if (out)
		*out = json_loadb(r.body, r.len, 0, NULL);
	th_resp_free(&r);
	return st;
}

static void device(const char *id, const char *user)
{
	char path[128], body[256];

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	snprintf(body, sizeof(body),
		 "{\"user\":\"%s\",\"platform\":\"fcm\",\"token\":\"t-%s\"}",
		 user, id);
	ck_assert_int_eq(call("PUT", path, key, body, NULL), 201);
}

static void event(const char *id, const char *user)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"user\":\"%s\",\"payload\":{\"text\":\"%s\"},"
		 "\"push\":{\"mode\":\"none\"}}",
		 id, user, id);
	ck_assert_int_eq(call("POST", "/v1/events", key, body, NULL), 202);
}

static json_t *inbox(const char *tok, const char *query, long *status)
{
	char path[256];
	json_t *doc = NULL;

	snprintf(path, sizeof(path), "/v1/inbox%s", query);
	*status = call("GET", path, tok, NULL, &doc);
	return doc;
}

static json_int_t seq_at(json_t *doc, size_t i)
{
	return json_integer_value(json_object_get(
	    json_array_get(json_object_get(doc, "messages"), i), "seq"));
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_token_forgery_refused)
{
	char tok[2048], claims[512];
	long st;
	json_t *doc;

	start(NULL);
	device("phone-1", "alice");
	snprintf(claims, sizeof(claims),
		 "{\"sub\":\"alice\",\"device\":\"phone-1\",\"exp\":%ld}",
		 (long)time(NULL) + 600);
	/* A good one works. */
	client_token(tok, sizeof(tok), "alice", "phone-1", 600);
	doc = inbox(tok, "", &st);
	ck_assert_int_eq(st, 200);
	json_decref(doc);
	/* Bad signature. */
	token(tok, sizeof(tok), "{\"alg\":\"HS256\"}", claims,
	      "another-secret-0123456789abcdefghij");
	json_decref(inbox(tok, "", &st));
	ck_assert_int_eq(st, 401);
	/* alg none, with and without a signature. */
	token(tok, sizeof(tok), "{\"alg\":\"none\"}", claims, "");
	json_decref(inbox(tok, "", &st));
	ck_assert_int_eq(st, 401);
	token(tok, sizeof(tok), "{\"alg\":\"none\"}", claims, SECRET);
	json_decref(inbox(tok, "", &st));
	ck_assert_int_eq(st, 401);
	/* RS256 / HS512 header over an HS256 MAC: the alg is pinned. */
	token(tok, sizeof(tok), "{\"alg\":\"RS256\"}", claims, SECRET);
	json_decref(inbox(tok, "", &st));
	ck_assert_int_eq(st, 401);
	token(tok, sizeof(tok), "{\"alg\":\"HS512\"}", claims, SECRET);
	json_decref(inbox(tok, "", &st));
	ck_assert_int_eq(st, 401);
	/* Expired (beyond the leeway), no exp, not yet valid. */
	client_token(tok, sizeof(tok), "alice", "phone-1", -120);
	doc = inbox(tok, "", &st);
	ck_assert_int_eq(st, 401);
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(
		       json_object_get(doc, "error"), "message")),
		   "expired"));
	json_decref(doc);
	token(tok, sizeof(tok), "{\"alg\":\"HS256\"}",
	      "{\"sub\":\"alice\",\"device\":\"phone-1\"}", SECRET);
	json_decref(inbox(tok, "", &st));
	ck_assert_int_eq(st, 401);
	snprintf(claims, sizeof(claims),
		 "{\"sub\":\"alice\",\"device\":\"phone-1\",\"exp\":%ld,"
		 "\"nbf\":%ld}",
		 (long)time(NULL) + 600, (long)time(NULL) + 300);
	token(tok, sizeof(tok), "{\"alg\":\"HS256\"}", claims, SECRET);
	json_decref(inbox(tok, "", &st));
	ck_assert_int_eq(st, 401);
	/* Another user's device: as if it did not exist. */
	client_token(tok, sizeof(tok), "mallory", "phone-1", 600);
	json_decref(inbox(tok, "", &st));
	ck_assert_int_eq(st, 404);
	/* An API key is not a client token. */
	json_decref(inbox(key, "", &st));
	ck_assert_int_eq(st, 401);
	/* Registering another user's device with a client token: 403. */
	client_token(tok, sizeof(tok), "mallory", "phone-9", 600);
	ck_assert_int_eq(call("PUT", "/v1/devices/phone-9", tok,
			      "{\"user\":\"alice\",\"platform\":\"fcm\","
			      "\"token\":\"x\"}",
			      NULL),
			 403);
	ck_assert_int_eq(call("PUT", "/v1/devices/phone-9", tok,
			      "{\"user\":\"mallory\",\"platform\":\"fcm\","
			      "\"token\":\"x\"}",
			      NULL),
			 201);
}
END_TEST

START_TEST(test_order_no_gaps_ack)
{
	char tok[2048], id[16];
	long st;
	json_t *doc;

	start(NULL);
	device("phone-1", "alice");
	for (int i = 1; i <= 5; i++) {
		snprintf(id, sizeof(id), "m-%d", i);
		event(id, "alice");
	}
	client_token(tok, sizeof(tok), "alice", "phone-1", 600);
	doc = inbox(tok, "?limit=2", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "messages")), 2);
	ck_assert_int_eq(seq_at(doc, 0), 1);
	ck_assert_int_eq(seq_at(doc, 1), 2);
	ck_assert(json_is_true(json_object_get(doc, "more")));
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "next")), 2);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(
		    json_array_get(json_object_get(doc, "messages"), 0),
		    "payload"),
		"text")),
	    "m-1");
	json_decref(doc);
	/* The next page. */
	doc = inbox(tok, "?after=2&limit=2", &st);
	ck_assert_int_eq(seq_at(doc, 0), 3);
	json_decref(doc);
	/* Acknowledge 2, reconnect from scratch: 3, 4, 5 with no gap;
	 * nothing unacknowledged was skipped by reading ahead. */
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", tok, "{\"up_to\":2}", NULL), 200);
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", tok, "{\"up_to\":2}", NULL), 200);
	doc = inbox(tok, "?after=0", &st);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "messages")), 3);
	ck_assert_int_eq(seq_at(doc, 0), 3);
	ck_assert_int_eq(seq_at(doc, 2), 5);
	ck_assert(json_is_false(json_object_get(doc, "more")));
	json_decref(doc);
	/* Past what was delivered: 400. */
	doc = NULL;
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", tok, "{\"up_to\":99}", &doc), 400);
	json_decref(doc);
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", tok, "{\"upto\":1}", NULL), 400);
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", tok, "{\"up_to\":5}", NULL), 200);
	doc = inbox(tok, "", &st);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "messages")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "next")), 5);
	json_decref(doc);
}
END_TEST

START_TEST(test_two_devices_each_get_all)
{
	char t1[2048], t2[2048];
	long st;
	json_t *a, *b;

	start(NULL);
	device("phone-1", "alice");
	device("tablet-1", "alice");
	event("x-1", "alice");
	event("x-2", "alice");
	client_token(t1, sizeof(t1), "alice", "phone-1", 600);
	client_token(t2, sizeof(t2), "alice", "tablet-1", 600);
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", t1, "{\"up_to\":2}", NULL), 200);
	a = inbox(t1, "", &st);
	b = inbox(t2, "", &st);
	/* phone-1 acknowledged; tablet-1 still has both. */
	ck_assert_int_eq(json_array_size(json_object_get(a, "messages")), 0);
	ck_assert_int_eq(json_array_size(json_object_get(b, "messages")), 2);
	json_decref(a);
	json_decref(b);
}
END_TEST

struct poller {
	const char *tok;
	long status;
	double took;
	int messages;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *poll_main(void *arg)
{
	struct poller *p = arg;
	double t0 = mono();
	json_t *doc = inbox(p->tok, "?wait=10", &p->status);

	p->took = mono() - t0;
	p->messages = (int)json_array_size(json_object_get(doc, "messages"));
	json_decref(doc);
	return NULL;
}

START_TEST(test_long_poll_wakes_on_commit)
{
	char tok[2048];
	struct poller p = {0};
	pthread_t th;
	long st;
	json_t *doc;

	start(NULL);
	device("phone-1", "alice");
	client_token(tok, sizeof(tok), "alice", "phone-1", 600);
	p.tok = tok;
	pthread_create(&th, NULL, poll_main, &p);
	usleep(500000);
	event("w-1", "alice");
	pthread_join(th, NULL);
	ck_assert_int_eq(p.status, 200);
	ck_assert_int_eq(p.messages, 1);
	ck_assert_msg(p.took < 3.0, "the poll took %.2fs", p.took);
	/* With nothing coming, it answers empty after wait. */
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", tok, "{\"up_to\":1}", NULL), 200);
	doc = inbox(tok, "?wait=1", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "messages")), 0);
	json_decref(doc);
}
END_TEST

/* 1,000 long polls held at once on one daemon, all answered by one
 * batch of events. Raw sockets: one connection each. */
START_TEST(test_thousand_long_polls)
{
	enum { N = 1000 };
	static int fds[N];
	struct rlimit rl = {4096, 4096};
	char req[4096], tok[2048], buf[4096], body[16384];
	int answered = 0, eof;

	setrlimit(RLIMIT_NOFILE, &rl);
	start(NULL);
	for (int i = 0; i < N; i++) {
		char id[32], user[32];

		snprintf(id, sizeof(id), "dev-%d", i);
		snprintf(user, sizeof(user), "user-%d", i);
		device(id, user);
	}
	for (int i = 0; i < N; i++) {
		char id[32], user[32];
		int n;

		snprintf(id, sizeof(id), "dev-%d", i);
		snprintf(user, sizeof(user), "user-%d", i);
		client_token(tok, sizeof(tok), user, id, 600);
		n = snprintf(req, sizeof(req),
			     "GET /v1/inbox?wait=30 HTTP/1.1\r\nHost: t\r\n"
			     "Authorization: Bearer %s\r\n\r\n",
			     tok);
		fds[i] = th_connect(d.port);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_int_eq(th_send(fds[i], req, (size_t)n), 0);
	}
	sleep(1);
	/* Nobody has been answered yet: they are all waiting. */
	for (int i = 0; i < N; i += 97) {
		struct pollfd p = {fds[i], POLLIN, 0};

		ck_assert_int_eq(poll(&p, 1, 0), 0);
	}
	/* One batch per 100 users wakes them all. */
	for (int b = 0; b < N / 100; b++) {
		size_t o = 0;

		o += (size_t)snprintf(body + o, sizeof(body) - o,
				      "{\"events\":[");
		for (int k = 0; k < 100; k++)
			o += (size_t)snprintf(body + o, sizeof(body) - o,
					      "%s{\"id\":\"e%d\",\"user\":"
					      "\"user-%d\"}",
					      k ? "," : "", b * 100 + k,
					      b * 100 + k);
		snprintf(body + o, sizeof(body) - o, "]}");
		ck_assert_int_eq(call("POST", "/v1/events", key, body, NULL),
				 202);
	}
	for (int i = 0; i < N; i++) {
		size_t n =
		    th_recv_until(fds[i], buf, sizeof(buf), "\"more\"", 10.0);

		if (n && strncmp(buf, "HTTP/1.1 200", 12) == 0 &&
		    strstr(buf, "\"seq\":1"))
			answered++;
		close(fds[i]);
	}
	(void)eof;
	ck_assert_int_eq(answered, N);
}
END_TEST

/* ---- WebSocket client, just enough for the test ------------------------ */

static int ws_send(int fd, const char *text)
{
	unsigned char frame[1024], mask[4] = {0x12, 0x34, 0x56, 0x78};
	size_t n = strlen(text), o = 0;

	frame[o++] = 0x81;
	frame[o++] = (unsigned char)(0x80 | n); /* n < 126 here */
	memcpy(frame + o, mask, 4);
	o += 4;
	for (size_t i = 0; i < n; i++)
		frame[o++] = (unsigned char)text[i] ^ mask[i % 4];
	return th_send(fd, frame, o);
}

/* Read an HTTP head byte by byte, so no WebSocket frame after it is
 * swallowed. */
static void read_head(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	while (n + 1 < cap && !strstr(buf, "\r\n\r\n")) {
		if (recv(fd, buf + n, 1, 0) != 1)
			break;
		buf[++n] = '\0';
	}
}

/* Read one server text frame into out; returns its length or -1. */
static int ws_recv(int fd, char *out, size_t cap, double timeout)
{
	unsigned char h[10];
	size_t len;
	struct pollfd p = {fd, POLLIN, 0};

	if (poll(&p, 1, (int)(timeout * 1000)) <= 0)
		return -1;
	if (recv(fd, h, 2, MSG_WAITALL) != 2)
		return -1;
	len = h[1] & 127;
	if (len == 126) {
		if (recv(fd, h + 2, 2, MSG_WAITALL) != 2)
			return -1;
		len = (size_t)h[2] << 8 | h[3];
	}
	if (len >= cap)
		return -1;
	if (len && recv(fd, out, len, MSG_WAITALL) != (ssize_t)len)
		return -1;
	out[len] = '\0';
	return (int)len;
}

START_TEST(test_websocket_stream)
{
	char tok[2048], req[4096], buf[4096];
	int fd, n;
	json_t *doc;

	start(NULL);
	device("phone-1", "alice");
	event("s-1", "alice");
	event("s-2", "alice");
	client_token(tok, sizeof(tok), "alice", "phone-1", 600);
	fd = th_connect(d.port);
	n = snprintf(req, sizeof(req),
		     "GET /v1/stream?after=0 HTTP/1.1\r\nHost: t\r\n"
		     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		     "Sec-WebSocket-Version: 13\r\n"
		     "Authorization: Bearer %s\r\n\r\n",
		     tok);
	th_send(fd, req, (size_t)n);
	read_head(fd, buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
	/* The backlog, in order. */
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	doc = json_loads(buf, 0, NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "seq")), 1);
	json_decref(doc);
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	ck_assert_ptr_nonnull(strstr(buf, "\"seq\":2"));
	/* Live: a new event arrives as a frame. */
	event("s-3", "alice");
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	ck_assert_ptr_nonnull(strstr(buf, "\"seq\":3"));
	ck_assert_ptr_nonnull(strstr(buf, "s-3"));
	/* Acks over the socket. */
	ck_assert_int_eq(ws_send(fd, "{\"ack\":3}"), 0);
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	ck_assert_str_eq(buf, "{\"acked\":3}");
	ck_assert_int_eq(ws_send(fd, "{\"ack\":9}"), 0);
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	ck_assert_ptr_nonnull(strstr(buf, "invalid_ack"));
	close(fd);
	/* Acknowledged on the stream = gone from the inbox. */
	{
		long st;

		doc = inbox(tok, "", &st);
		ck_assert_int_eq(
		    json_array_size(json_object_get(doc, "messages")), 0);
		json_decref(doc);
	}
	/* Without a token: no upgrade. */
	fd = th_connect(d.port);
	n = snprintf(req, sizeof(req),
		     "GET /v1/stream HTTP/1.1\r\nHost: t\r\n"
		     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		     "Sec-WebSocket-Version: 13\r\n\r\n");
	th_send(fd, req, (size_t)n);
	th_recv_until(fd, buf, sizeof(buf), "\r\n\r\n", 5);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 401", 12) == 0, "%s", buf);
	close(fd);
}
END_TEST

/* Regression: a backlog far larger than ws_max_queued is delivered in
 * full to a reader that keeps reading, not cut off as "too slow". */
START_TEST(test_stream_big_backlog)
{
	char tok[2048], req[4096], buf[8192], body[6000];
	int fd, n, got = 0;

	start("[inbox]\nws_max_queued = 16k\n");
	device("phone-1", "alice");
	for (int i = 1; i <= 60; i++) {
		int o = snprintf(body, sizeof(body),
				 "{\"id\":\"big-%d\",\"user\":\"alice\","
				 "\"payload\":\"",
				 i);

		memset(body + o, 'p', 3000);
		snprintf(body + o + 3000, sizeof(body) - (size_t)o - 3000,
			 "\",\"push\":{\"mode\":\"none\"}}");
		ck_assert_int_eq(call("POST", "/v1/events", key, body, NULL),
				 202);
	}
	client_token(tok, sizeof(tok), "alice", "phone-1", 600);
	fd = th_connect(d.port);
	n = snprintf(req, sizeof(req),
		     "GET /v1/stream HTTP/1.1\r\nHost: t\r\n"
		     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		     "Sec-WebSocket-Version: 13\r\n"
		     "Authorization: Bearer %s\r\n\r\n",
		     tok);
	th_send(fd, req, (size_t)n);
	read_head(fd, buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "%s", buf);
	while (got < 60 && ws_recv(fd, buf, sizeof(buf), 5) > 0) {
		char want[32];

		snprintf(want, sizeof(want), "\"seq\":%d,", got + 1);
		ck_assert_msg(strstr(buf, want) != NULL, "frame %d: %.60s",
			      got + 1, buf);
		got++;
	}
	close(fd);
	ck_assert_int_eq(got, 60);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("inbox");
	TCase *tc = tcase_create("e2e");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_token_forgery_refused);
	tcase_add_test(tc, test_order_no_gaps_ack);
	tcase_add_test(tc, test_two_devices_each_get_all);
	tcase_add_test(tc, test_long_poll_wakes_on_commit);
	tcase_add_test(tc, test_thousand_long_polls);
	tcase_add_test(tc, test_websocket_stream);
	tcase_add_test(tc, test_stream_big_backlog);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

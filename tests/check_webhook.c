/*
 * check_webhook.c - delivery receipts end to end: pushrelayd posts them
 * to a small HTTP/1.1 receiver that runs in a thread of this test (a
 * loopback socket, scripted answers, every request recorded). Covered:
 * the four receipt types from their emit points (pushed and
 * token_invalid through the mock FCM; fetched and acknowledged through
 * the inbox long poll, its ack and the WebSocket stream), the signature
 * (HMAC-SHA256 over "t." + body, checked here with OpenSSL), a 503
 * retried after its Retry-After with the same body, a 400 dropped and
 * not retried, the counters in /metrics, and a clean shutdown with
 * receipts still held.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SECRET	    "test-secret-0123456789abcdefghijklmnop"
#define HOOK_SECRET "hook-secret-0123456789"
#define FCM_OK	    "fcm-token-0001:APA91bExample"
#define FCM_DEAD    "fcm-token-dead:APA91bExample"

/* ---- the receiver -------------------------------------------------------- */

#define MAX_REQS  64
#define MAX_CONNS 8
#define CONN_BUF  (4 << 20)

struct rec {
	char *head; /* request line and headers */
	char *body;
	size_t body_len;
	int status; /* what it was answered */
	double at;  /* when it arrived */
};

struct conn {
	int fd;
	char *buf;
	size_t len;
};

static struct {
	int lfd, port;
	pthread_t th;
	int running;
	volatile sig_atomic_t stop;
	pthread_mutex_t mu;
	int script[8]; /* answers to the first requests; then 200 */
	size_t n_script;
	struct rec reqs[MAX_REQS];
	size_t n;
	struct conn conns[MAX_CONNS];
} rx = {.mu = PTHREAD_MUTEX_INITIALIZER};

static double now_s(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
	c->len = 0;
}

/* Content-Length of a header block, or 0. */
static size_t content_length(const char *head)
{
	const char *p = head;

	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, "content-length:", 15) == 0)
			return (size_t)strtoul(p + 15, NULL, 10);
	}
	return 0;
}

/* Every complete request in c's buffer: record it, answer it. */
static int conn_serve(struct conn *c)
{
	char *end, resp[256];
	size_t hlen, blen, n;
	int status;

	for (;;) {
		c->buf[c->len] = '\0';
		end = strstr(c->buf, "\r\n\r\n");
		if (!end)
			return 0;
		hlen = (size_t)(end - c->buf) + 4;
		c->buf[hlen - 2] = '\0';
		blen = content_length(c->buf);
		c->buf[hlen - 2] = '\r';
		if (c->len < hlen + blen)
			return 0;
		pthread_mutex_lock(&rx.mu);
		n = rx.n;
		status = n < rx.n_script ? rx.script[n] : 200;
		if (n < MAX_REQS) {
			rx.reqs[n].head = strndup(c->buf, hlen);
			rx.reqs[n].body = malloc(blen + 1);
			memcpy(rx.reqs[n].body, c->buf + hlen, blen);
			rx.reqs[n].body[blen] = '\0';
			rx.reqs[n].body_len = blen;
			rx.reqs[n].status = status;
			rx.reqs[n].at = now_s();
			rx.n++;
		}
		pthread_mutex_unlock(&rx.mu);
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 %d Scripted\r\nContent-Length: 0\r\n%s\r\n",
			 status, status == 503 ? "Retry-After: 1\r\n" : "");
		if (write(c->fd, resp, strlen(resp)) < 0)
			return -1;
		memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
		c->len -= hlen + blen;
	}
}

static void *rx_main(void *arg)
{
	struct pollfd pf[MAX_CONNS + 1];

	(void)arg;
	while (!rx.stop) {
		pf[0].fd = rx.lfd;
		pf[0].events = POLLIN;
		for (size_t i = 0; i < MAX_CONNS; i++) {
			pf[i + 1].fd = rx.conns[i].fd;
			pf[i + 1].events = POLLIN;
		}
		if (poll(pf, MAX_CONNS + 1, 50) <= 0)
			continue;
		if (pf[0].revents & POLLIN) {
			int fd = accept(rx.lfd, NULL, NULL);

			for (size_t i = 0; fd >= 0 && i < MAX_CONNS; i++) {
				if (rx.conns[i].fd < 0) {
					rx.conns[i].fd = fd;
					rx.conns[i].buf = malloc(CONN_BUF + 1);
					fd = -1;
				}
			}
			if (fd >= 0)
				close(fd);
		}
		for (size_t i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &rx.conns[i];
			ssize_t r;

			if (c->fd < 0 ||
			    !(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(c->fd, c->buf + c->len, CONN_BUF - c->len);
			if (r > 0)
				c->len += (size_t)r;
			if (r <= 0 || c->len >= CONN_BUF || conn_serve(c) < 0)
				conn_close(c);
		}
	}
	return NULL;
}

/* Listen on an ephemeral loopback port; answers follow script (n). */
static void rx_start(const int *script, size_t n)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int one = 1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rx.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(rx.lfd, 0);
	setsockopt(rx.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ck_assert_int_eq(bind(rx.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(rx.lfd, 16), 0);
	ck_assert_int_eq(getsockname(rx.lfd, (struct sockaddr *)&a, &len), 0);
	rx.port = ntohs(a.sin_port);
	for (size_t i = 0; i < MAX_CONNS; i++)
		rx.conns[i].fd = -1;
	ck_assert_uint_le(n, sizeof(rx.script) / sizeof(rx.script[0]));
	memcpy(rx.script, script, n * sizeof(*script));
	rx.n_script = n;
	rx.stop = 0;
	ck_assert_int_eq(pthread_create(&rx.th, NULL, rx_main, NULL), 0);
	rx.running = 1;
}

static void rx_stop(void)
{
	if (!rx.running)
		return;
	rx.stop = 1;
	pthread_join(rx.th, NULL);
	rx.running = 0;
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (rx.conns[i].fd >= 0)
			conn_close(&rx.conns[i]);
	close(rx.lfd);
	for (size_t i = 0; i < rx.n; i++) {
		free(rx.reqs[i].head);
		free(rx.reqs[i].body);
	}
	rx.n = 0;
}

static size_t rx_count(void)
{
	size_t n;

	pthread_mutex_lock(&rx.mu);
	n = rx.n;
	pthread_mutex_unlock(&rx.mu);
	return n;
}

/* Wait (at most timeout s) until the receiver has n requests. */
static size_t rx_wait(size_t n, double timeout)
{
	double end = now_s() + timeout;

	while (rx_count() < n && now_s() < end)
		usleep(20000);
	return rx_count();
}

/* A header's value in a recorded head (copied into out), or NULL. */
static const char *head_value(const char *head, const char *name, char *out,
			      size_t outlen)
{
	size_t k = strlen(name);
	const char *p = head, *e;

	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, name, k) != 0 || p[k] != ':')
			continue;
		p += k + 1;
		while (*p == ' ')
			p++;
		e = strstr(p, "\r\n");
		if (!e || (size_t)(e - p) >= outlen)
			return NULL;
		memcpy(out, p, (size_t)(e - p));
		out[e - p] = '\0';
		return out;
	}
	return NULL;
}

/*
 * The request is a signed HTTP/1.1 POST of JSON: check the signature as
 * a receiver would, and the envelope. Returns its receipts (new ref).
 */
static json_t *check_request(const struct rec *r)
{
	char sig[256], ctype[128], msg[80], hex[65];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char *data;
	long t = 0;
	size_t plen;
	json_t *doc, *list;

	ck_assert_msg(strncmp(r->head, "POST /hook HTTP/1.1\r\n", 21) == 0,
		      "%s", r->head);
	ck_assert_ptr_nonnull(
	    head_value(r->head, "content-type", ctype, sizeof(ctype)));
	ck_assert_str_eq(ctype, "application/json");
	ck_assert_ptr_nonnull(
	    head_value(r->head, "x-pushrelay-signature", sig, sizeof(sig)));
	ck_assert_int_eq(sscanf(sig, "t=%ld,v1=%64s", &t, hex), 2);
	ck_assert_msg(labs((long)time(NULL) - t) < 60, "t=%ld is stale", t);
	/* HMAC-SHA256(secret, "<t>." + body) */
	plen = (size_t)snprintf(msg, sizeof(msg), "%ld.", t);
	data = malloc(plen + r->body_len);
	memcpy(data, msg, plen);
	memcpy(data + plen, r->body, r->body_len);
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), HOOK_SECRET,
				   (int)strlen(HOOK_SECRET), data,
				   plen + r->body_len, md, &mdlen));
	free(data);
	ck_assert_uint_eq(mdlen, 32);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(msg + 2 * i, 3, "%02x", md[i]);
	ck_assert_msg(CRYPTO_memcmp(msg, hex, 64) == 0 && strlen(hex) == 64,
		      "bad signature %s", sig);
	/* Never the secret itself. */
	ck_assert_ptr_null(strstr(r->head, HOOK_SECRET));
	ck_assert_ptr_null(strstr(r->body, HOOK_SECRET));

	doc = json_loadb(r->body, r->body_len, 0, NULL);
	ck_assert_msg(doc != NULL, "not JSON: %s", r->body);
	list = json_object_get(doc, "receipts");
	ck_assert(json_is_array(list));
	ck_assert_uint_ge(json_array_size(list), 1);
	json_incref(list);
	json_decref(doc);
	return list;
}

static const char *sget(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "";
}

/* Every receipt of every request so far, checked, in order. */
static json_t *all_receipts(void)
{
	json_t *all = json_array(), *list, *r;
	size_t n = rx_count(), i;

	for (size_t k = 0; k < n; k++) {
		if (rx.reqs[k].status < 200 || rx.reqs[k].status > 299)
			continue;
		list = check_request(&rx.reqs[k]);
		json_array_foreach(list, i, r)
		{
			ck_assert_str_eq(sget(r, "app"), "chat");
			ck_assert_str_eq(sget(r, "user"), "alice");
			ck_assert_uint_eq(strlen(sget(r, "id")), 20);
			ck_assert_uint_eq(strlen(sget(r, "at")), 24);
			ck_assert_int_eq(sget(r, "at")[23], 'Z');
			json_array_append(all, r);
		}
		json_decref(list);
	}
	return all;
}

/* The first delivered receipt of type for device, or NULL (borrowed from
 * all). */
static json_t *find(json_t *all, const char *type, const char *device)
{
	size_t i;
	json_t *r;

	json_array_foreach(all, i, r)
	{
		if (strcmp(sget(r, "type"), type) == 0 &&
		    strcmp(sget(r, "device"), device) == 0)
			return r;
	}
	return NULL;
}

/* Wait until a delivered receipt of type for device is there. */
static json_t *wait_receipt(json_t **all, const char *type, const char *device,
			    double timeout)
{
	double end = now_s() + timeout;
	json_t *r;

	for (;;) {
		*all = all_receipts();
		r = find(*all, type, device);
		if (r || now_s() > end)
			return r;
		json_decref(*all);
		usleep(50000);
	}
}

/* ---- the daemon ------------------------------------------------------- */

static struct th_daemon d;
static struct th_mock m;
static char mockdir[256];
static char key[128];

static void make_key(void)
{
	ck_assert_int_eq(th_make_key(&d, "t", "ingest", key, sizeof(key)), 0);
}

/* The receiver with script, then the daemon (with the mock when asked). */
static void start(const int *script, size_t n, int with_mock)
{
	char app[4096], extra[8192];

	rx_start(script, n);
	if (with_mock) {
		ck_assert_int_eq(th_tmpdir(mockdir, sizeof(mockdir)), 0);
		ck_assert_msg(th_mock_start(&m, mockdir) == 0,
			      "pr-mock did not start");
		th_mock_app_conf(&m, app, sizeof(app));
	} else {
		snprintf(app, sizeof(app), "[app \"chat\"]\n");
	}
	snprintf(extra, sizeof(extra),
		 "[webhook]\n"
		 "flush_interval = 1\n"
		 "backoff_base = 1\n"
		 "backoff_max = 2\n"
		 "%s"
		 "client_token_secret = " SECRET "\n"
		 "webhook_url = http://127.0.0.1:%d/hook\n"
		 "webhook_secret = " HOOK_SECRET "\n",
		 app, rx.port);
	ck_assert_msg(th_daemon_start(&d, NULL, extra) == 0,
		      "pushrelayd did not start; see %s", d.log);
	make_key();
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
	th_mock_cleanup(&m, mockdir);
	rx_stop();
}

static long call(const char *method, const char *path, const char *bearer,
		 const char *body, json_t **out)
{
	char auth[4200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		 bearer ? bearer : key);
	ck_assert_int_eq(th_request(&d, TH_H1, method, path, body, hdrs, &r),
			 0);
	st = r.status;
	if (out)
		*out = json_loadb(r.body, r.len, 0, NULL);
	th_resp_free(&r);
	return st;
}

static void device(const char *id, const char *token)
{
	char path[128], body[256];

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	snprintf(body, sizeof(body),
		 "{\"user\":\"alice\",\"platform\":\"fcm\",\"token\":\"%s\"}",
		 token);
	ck_assert_int_eq(call("PUT", path, NULL, body, NULL), 201);
}

static void event(const char *id, const char *mode)
{
	char body[256];

	snprintf(
	    body, sizeof(body),
	    "{\"id\":\"%s\",\"user\":\"alice\",\"payload\":{\"t\":1},"
	    "\"push\":{\"mode\":\"%s\",\"title\":\"Bob\",\"body\":\"hi\"}}",
	    id, mode);
	ck_assert_int_eq(call("POST", "/v1/events", NULL, body, NULL), 202);
}

/* Fetch phone-1's inbox (one message expected), then ack it. */
static void fetch_one(void)
{
	char tok[2048];
	json_t *doc;

	th_client_token(tok, sizeof(tok), SECRET, "alice", "phone-1", 300);
	ck_assert_int_eq(call("GET", "/v1/inbox?after=0", tok, NULL, &doc),
			 200);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "messages")), 1);
	json_decref(doc);
}

static void ack_one(void)
{
	char tok[2048];

	th_client_token(tok, sizeof(tok), SECRET, "alice", "phone-1", 300);
	ck_assert_int_eq(
	    call("POST", "/v1/inbox/ack", tok, "{\"up_to\":1}", NULL), 200);
}

/* The value of one /metrics line starting with `series `, or -1. */
static long metric(const char *series)
{
	struct th_resp r;
	char want[256];
	const char *p;
	long v = -1;

	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	snprintf(want, sizeof(want), "\n%s ", series);
	p = strstr(r.body, want);
	if (p)
		v = strtol(p + strlen(want), NULL, 10);
	th_resp_free(&r);
	return v;
}

/* ---- a WebSocket client, just enough for the stream ---------------------- */

static int ws_send(int fd, const char *text)
{
	unsigned char frame[256], mask[4] = {0x12, 0x34, 0x56, 0x78};
	size_t n = strlen(text), o = 0;

	ck_assert_uint_lt(n, 126);
	frame[o++] = 0x81;
	frame[o++] = (unsigned char)(0x80 | n);
	memcpy(frame + o, mask, 4);
	o += 4;
	for (size_t i = 0; i < n; i++)
		frame[o++] = (unsigned char)text[i] ^ mask[i % 4];
	return th_send(fd, frame, o);
}

/* One server text frame (< 64 KiB) into out; its length or -1. */
static int ws_recv(int fd, char *out, size_t cap, double timeout)
{
	unsigned char h[4];
	size_t len;
	struct pollfd p = {fd, POLLIN, 0};

	if (poll(&p, 1, (int)(timeout * 1000)) <= 0 ||
	    recv(fd, h, 2, MSG_WAITALL) != 2)
		return -1;
	len = h[1] & 127;
	if (len == 126) {
		if (recv(fd, h + 2, 2, MSG_WAITALL) != 2)
			return -1;
		len = (size_t)h[2] << 8 | h[3];
	}
	if (len >= cap ||
	    (len && recv(fd, out, len, MSG_WAITALL) != (ssize_t)len))
		return -1;
	out[len] = '\0';
	return (int)len;
}

/* Open phone-1's stream from the start; the 101 head is read byte by
 * byte so no frame after it is swallowed. */
static int ws_open(void)
{
	char tok[2048], req[4096], head[4096];
	size_t n = 0;
	int fd, len;

	th_client_token(tok, sizeof(tok), SECRET, "alice", "phone-1", 300);
	fd = th_connect(d.port);
	ck_assert_int_ge(fd, 0);
	len = snprintf(req, sizeof(req),
		       "GET /v1/stream?after=0 HTTP/1.1\r\nHost: t\r\n"
		       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		       "Sec-WebSocket-Version: 13\r\n"
		       "Authorization: Bearer %s\r\n\r\n",
		       tok);
	ck_assert_int_eq(th_send(fd, req, (size_t)len), 0);
	head[0] = '\0';
	while (n + 1 < sizeof(head) && !strstr(head, "\r\n\r\n") &&
	       recv(fd, head + n, 1, 0) == 1)
		head[++n] = '\0';
	ck_assert_msg(strncmp(head, "HTTP/1.1 101", 12) == 0, "%s", head);
	return fd;
}

/* ---- tests ------------------------------------------------------------- */

/* All four types, from their emit points, signed and well formed. */
START_TEST(test_receipts_of_every_type)
{
	static const int ok[] = {200};
	json_t *all, *r;

	start(ok, 1, 1);
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"" FCM_DEAD "\","
					    "\"status\":404,\"reason\":"
					    "\"UNREGISTERED\"}"),
			 0);
	device("phone-1", FCM_OK);
	device("phone-2", FCM_DEAD);
	event("e-1", "alert");

	r = wait_receipt(&all, "pushed", "phone-1", 10);
	ck_assert_msg(r != NULL, "no pushed receipt; see %s", d.log);
	ck_assert_str_eq(sget(r, "message_id"), "e-1");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "seq")), 1);
	ck_assert_msg(*sget(r, "provider_id"), "no provider_id");
	json_decref(all);
	r = wait_receipt(&all, "token_invalid", "phone-2", 10);
	ck_assert_msg(r != NULL, "no token_invalid receipt; see %s", d.log);
	ck_assert_str_eq(sget(r, "message_id"), "e-1");
	ck_assert_msg(*sget(r, "reason"), "no reason");
	ck_assert_ptr_null(find(all, "pushed", "phone-2"));
	json_decref(all);

	fetch_one();
	ack_one();
	r = wait_receipt(&all, "acknowledged", "phone-1", 10);
	ck_assert_msg(r != NULL, "no acknowledged receipt; see %s", d.log);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "up_to")), 1);
	r = find(all, "fetched", "phone-1");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "up_to")), 1);
	ck_assert_uint_eq(json_array_size(json_object_get(r, "message_ids")),
			  1);
	ck_assert_str_eq(json_string_value(json_array_get(
			     json_object_get(r, "message_ids"), 0)),
			 "e-1");
	ck_assert_uint_eq(json_array_size(all), 4);
	json_decref(all);

	ck_assert_int_eq(
	    metric("pushrelay_webhook_delivered_total{app=\"chat\"}"), 4);
	ck_assert_int_eq(metric("pushrelay_webhook_pending"), 0);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
}
END_TEST

/* The stream's emit points: the backlog and a live message are fetched
 * receipts (each message once), an ack on the socket is acknowledged. */
START_TEST(test_stream_receipts)
{
	static const int ok[] = {200};
	char buf[4096];
	json_t *all, *r, *ids;
	size_t i, k, seen = 0;
	int fd;

	start(ok, 1, 0);
	device("phone-1", FCM_OK);
	event("e-1", "none");
	event("e-2", "none");
	fd = ws_open();
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	ck_assert_ptr_nonnull(strstr(buf, "\"seq\":2"));
	event("e-3", "none");
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	ck_assert_ptr_nonnull(strstr(buf, "\"seq\":3"));
	ck_assert_int_eq(ws_send(fd, "{\"ack\":3}"), 0);
	ck_assert_int_gt(ws_recv(fd, buf, sizeof(buf), 5), 0);
	ck_assert_str_eq(buf, "{\"acked\":3}");

	r = wait_receipt(&all, "acknowledged", "phone-1", 10);
	ck_assert_msg(r != NULL, "no acknowledged receipt; see %s", d.log);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "up_to")), 3);
	/* e-1, e-2, e-3 reported fetched once each, in order. */
	json_array_foreach(all, i, r)
	{
		if (strcmp(sget(r, "type"), "fetched") != 0)
			continue;
		ids = json_object_get(r, "message_ids");
		for (k = 0; k < json_array_size(ids); k++) {
			snprintf(buf, sizeof(buf), "e-%zu", ++seen);
			ck_assert_str_eq(
			    json_string_value(json_array_get(ids, k)), buf);
		}
		ck_assert_int_eq(
		    json_integer_value(json_object_get(r, "up_to")),
		    (json_int_t)seen);
	}
	ck_assert_uint_eq(seen, 3);
	json_decref(all);
	close(fd);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
}
END_TEST

/* A 503 is retried after its Retry-After, with the same body, signed
 * again; the receipt arrives. */
START_TEST(test_503_retried)
{
	static const int script[] = {503, 200};
	json_t *all, *a, *b;

	start(script, 2, 0);
	device("phone-1", FCM_OK);
	event("e-1", "none");
	fetch_one();
	ck_assert_uint_eq(rx_wait(2, 10), 2);
	ck_assert_int_eq(rx.reqs[0].status, 503);
	ck_assert_int_eq(rx.reqs[1].status, 200);
	ck_assert_str_eq(rx.reqs[0].body, rx.reqs[1].body);
	ck_assert_msg(rx.reqs[1].at - rx.reqs[0].at >= 0.9,
		      "retried after %.3fs, before Retry-After",
		      rx.reqs[1].at - rx.reqs[0].at);
	a = check_request(&rx.reqs[0]);
	b = check_request(&rx.reqs[1]);
	json_decref(a);
	json_decref(b);
	all = all_receipts();
	ck_assert_uint_eq(json_array_size(all), 1);
	ck_assert_ptr_nonnull(find(all, "fetched", "phone-1"));
	json_decref(all);
	ck_assert_int_eq(
	    metric("pushrelay_webhook_retries_total{app=\"chat\"}"), 1);
	ck_assert_int_eq(
	    metric("pushrelay_webhook_delivered_total{app=\"chat\"}"), 1);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
}
END_TEST

/* A 400 drops the batch: never sent again; later receipts still go. */
START_TEST(test_400_not_retried)
{
	static const int script[] = {400};
	json_t *all;

	start(script, 1, 0);
	device("phone-1", FCM_OK);
	event("e-1", "none");
	fetch_one();
	ck_assert_uint_eq(rx_wait(1, 10), 1);
	ck_assert_int_eq(rx.reqs[0].status, 400);
	/* A retry would come within backoff_base (1 s). */
	usleep(2500000);
	ck_assert_uint_eq(rx_count(), 1);
	ck_assert_int_eq(metric("pushrelay_webhook_dropped_total{app=\"chat\","
				"reason=\"refused\"}"),
			 1);
	ack_one();
	ck_assert_uint_eq(rx_wait(2, 10), 2);
	all = all_receipts();
	ck_assert_uint_eq(json_array_size(all), 1);
	ck_assert_ptr_nonnull(find(all, "acknowledged", "phone-1"));
	json_decref(all);
	ck_assert_int_eq(
	    metric("pushrelay_webhook_retries_total{app=\"chat\"}"), 0);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
}
END_TEST

/* Receipts still held (collecting, and a POST waiting to be retried) are
 * dropped at shutdown, cleanly. */
START_TEST(test_shutdown_with_receipts_held)
{
	static const int script[] = {503, 503, 503, 503, 503, 503};

	start(script, 6, 0);
	device("phone-1", FCM_OK);
	event("e-1", "none");
	fetch_one();
	ck_assert_uint_ge(rx_wait(1, 10), 1);
	ack_one(); /* collecting: waits behind the failing batch */
	ck_assert_int_ge(metric("pushrelay_webhook_pending"), 1);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
}
END_TEST

static Suite *webhook_suite(void)
{
	Suite *s = suite_create("webhook");
	TCase *tc = tcase_create("receipts");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_receipts_of_every_type);
	tcase_add_test(tc, test_stream_receipts);
	tcase_add_test(tc, test_503_retried);
	tcase_add_test(tc, test_400_not_retried);
	tcase_add_test(tc, test_shutdown_with_receipts_held);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(webhook_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

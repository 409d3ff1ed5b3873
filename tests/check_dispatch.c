/*
 * check_dispatch.c - pushes end to end: pushrelayd against the mock
 * APNs/FCM server (tests/mock/pr-mock) on loopback. Every response class
 * of PROTOCOLS.md: success (headers and payload as Apple and Google
 * document them), dead tokens (device unregistered, invalid-token feed,
 * no retry), retries with backoff and Retry-After, credential errors
 * (the provider pauses itself), OAuth token reuse, coalescing, and a
 * restart while a push is in flight (sent again with the same apns-id).
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define APNS_TOKEN                                                             \
	"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define FCM_TOKEN "fcm-token-0001:APA91bExample"

static struct th_daemon d;
static struct th_mock m;
static char mockdir[256];
static char key[128];

static void make_key(void)
{
	ck_assert_int_eq(th_make_key(&d, "t", "ingest", key, sizeof(key)), 0);
}

/* Start the mock and a daemon pointed at it; extra goes into [push]. */
static void start(const char *push_extra, const char *app_extra)
{
	char app[4096], extra[8192];

	ck_assert_int_eq(th_tmpdir(mockdir, sizeof(mockdir)), 0);
	ck_assert_msg(th_mock_start(&m, mockdir) == 0, "pr-mock did not start");
	th_mock_app_conf(&m, app, sizeof(app));
	snprintf(extra, sizeof(extra),
		 "[push]\nbackoff_base = 1\nbackoff_max = 4\n%s\n%s%s\n",
		 push_extra ? push_extra : "", app, app_extra ? app_extra : "");
	ck_assert_msg(th_daemon_start(&d, NULL, extra) == 0,
		      "pushrelayd did not start; see %s", d.log);
	make_key();
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
	th_mock_cleanup(&m, mockdir);
}

static long call(const char *method, const char *path, const char *body,
		 json_t **out)
{
	char auth[200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	ck_assert_int_eq(th_request(&d, TH_H1, method, path, body, hdrs, &r),
			 0);
	st = r.status;
	if (out)
		*out = json_loadb(r.body, r.len, 0, NULL);
	th_resp_free(&r);
	return st;
}

static void device(const char *id, const char *platform, const char *token)
{
	char path[128], body[512];

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	snprintf(body, sizeof(body),
		 "{\"user\":\"alice\",\"platform\":\"%s\",\"token\":\"%s\"}",
		 platform, token);
	ck_assert_int_eq(call("PUT", path, body, NULL), 201);
}

static void event(const char *id, const char *title)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"user\":\"alice\",\"payload\":{\"x\":1},"
		 "\"push\":{\"mode\":\"alert\",\"title\":\"%s\",\"body\":"
		 "\"hello\",\"badge\":\"unread\",\"collapse_id\":\"c-9\","
		 "\"ttl\":3600}}",
		 id, title);
	ck_assert_int_eq(call("POST", "/v1/events", body, NULL), 202);
}

/* The n-th (0-based) recorded request of a kind, with a reference. */
static json_t *nth(const char *kind, int n)
{
	json_t *doc = th_mock_requests(&m, 0), *reqs, *r, *hit = NULL;
	size_t i;
	int k = 0;

	reqs = json_object_get(doc, "requests");
	json_array_foreach(reqs, i, r)
	{
		const char *kd = json_string_value(json_object_get(r, "kind"));

		if (kd && strcmp(kd, kind) == 0 && k++ == n) {
			hit = json_incref(r);
			break;
		}
	}
	json_decref(doc);
	return hit;
}

static const char *hdr(json_t *r, const char *name)
{
	return json_string_value(
	    json_object_get(json_object_get(r, "headers"), name));
}

static const char *metric_line(const char *body, const char *prefix)
{
	const char *p = strstr(body, prefix);

	return p ? p + strlen(prefix) : NULL;
}

START_TEST(test_apns_success_headers_and_payload)
{
	json_t *r, *payload, *aps;
	long expiration;
	time_t now = time(NULL);
	struct th_resp mr;

	start(NULL, NULL);
	device("phone-1", "apns", APNS_TOKEN);
	event("m-1", "Bob");
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 10), 1);
	r = nth("apns", 0);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "status")), 200);
	ck_assert_str_eq(hdr(r, "apns-push-type"), "alert");
	ck_assert_str_eq(hdr(r, "apns-topic"), "com.example.chat");
	ck_assert_str_eq(hdr(r, "apns-priority"), "10");
	ck_assert_str_eq(hdr(r, "apns-collapse-id"), "c-9");
	ck_assert_int_eq(strlen(hdr(r, "apns-id")), 36);
	ck_assert_int_eq(strncmp(hdr(r, "authorization"), "bearer ", 7), 0);
	/* Absolute expiry: now + ttl, not the ttl. */
	expiration = atol(hdr(r, "apns-expiration"));
	ck_assert_int_ge(expiration, now + 3600 - 5);
	ck_assert_int_le(expiration, now + 3600 + 60);
	payload =
	    json_loads(json_string_value(json_object_get(r, "body")), 0, NULL);
	ck_assert_ptr_nonnull(payload);
	aps = json_object_get(payload, "aps");
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(aps, "alert"), "title")),
			 "Bob");
	ck_assert_int_eq(json_integer_value(json_object_get(aps, "badge")), 1);
	ck_assert_str_eq(
	    json_string_value(json_object_get(payload, "message_id")), "m-1");
	ck_assert_int_eq(json_integer_value(json_object_get(payload, "seq")),
			 1);
	json_decref(payload);
	json_decref(r);
	/* Counted in the metrics. */
	usleep(300000);
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &mr), 0);
	ck_assert_ptr_nonnull(metric_line(
	    mr.body, "pushrelay_pushes_total{provider=\"apns\",app=\"chat\","
		     "outcome=\"sent\"} 1\n"));
	th_resp_free(&mr);
}
END_TEST

START_TEST(test_fcm_success_and_token_reuse)
{
	json_t *r, *msg;

	start(NULL, NULL);
	device("pixel-1", "fcm", FCM_TOKEN);
	event("f-1", "Bob");
	ck_assert_int_eq(th_mock_wait(&m, "fcm", 1, 10), 1);
	event("f-2", "Carol");
	ck_assert_int_eq(th_mock_wait(&m, "fcm", 2, 10), 2);
	/* One OAuth exchange served both sends. */
	ck_assert_int_eq(th_mock_wait(&m, "oauth", 1, 1), 1);
	r = nth("fcm", 1);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "status")), 200);
	ck_assert_int_eq(strncmp(hdr(r, "authorization"), "Bearer ", 7), 0);
	msg =
	    json_loads(json_string_value(json_object_get(r, "body")), 0, NULL);
	ck_assert_ptr_nonnull(msg);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(msg, "message"), "data"),
		"message_id")),
	    "f-2");
	json_decref(msg);
	json_decref(r);
}
END_TEST

static void expect_invalid(const char *platform, const char *token,
			   const char *rule)
{
	json_t *doc, *t;
	int i;

	ck_assert_int_eq(th_mock_script(&m, rule), 0);
	device("dev-x", platform, token);
	event("dead-1", "x");
	ck_assert_int_eq(th_mock_wait(&m, platform, 1, 10), 1);
	/* The feed shows it; the device lost its token; no retry. */
	for (i = 0; i < 50; i++) {
		ck_assert_int_eq(
		    call("GET", "/v1/invalid-tokens?after=0", NULL, &doc), 200);
		t = json_array_get(json_object_get(doc, "tokens"), 0);
		if (t)
			break;
		json_decref(doc);
		usleep(100000);
	}
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(json_string_value(json_object_get(t, "token")), token);
	ck_assert_str_eq(json_string_value(json_object_get(t, "device_id")),
			 "dev-x");
	json_decref(doc);
	ck_assert_int_eq(call("GET", "/v1/users/alice/devices", NULL, &doc),
			 200);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(doc, "devices"), 0), "push")),
	    "invalid");
	json_decref(doc);
	event("dead-2", "y");
	sleep(2);
	ck_assert_int_eq(th_mock_wait(&m, platform, 2, 0.2), 1);
}

START_TEST(test_apns_410_unregistered)
{
	start(NULL, NULL);
	expect_invalid("apns", APNS_TOKEN,
		       "{\"token\":\"" APNS_TOKEN "\",\"status\":410,"
		       "\"reason\":\"Unregistered\"}");
}
END_TEST

START_TEST(test_apns_400_bad_device_token)
{
	start(NULL, NULL);
	expect_invalid("apns", APNS_TOKEN,
		       "{\"token\":\"" APNS_TOKEN "\",\"status\":400,"
		       "\"reason\":\"BadDeviceToken\"}");
}
END_TEST

START_TEST(test_fcm_404_unregistered)
{
	start(NULL, NULL);
	expect_invalid("fcm", FCM_TOKEN,
		       "{\"token\":\"" FCM_TOKEN "\",\"status\":404,"
		       "\"reason\":\"UNREGISTERED\"}");
}
END_TEST

START_TEST(test_5xx_retried_with_backoff_then_sent)
{
	json_t *a, *b, *c;

	start(NULL, NULL);
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"" APNS_TOKEN "\","
					    "\"status\":503,\"reason\":"
					    "\"ServiceUnavailable\","
					    "\"times\":2}"),
			 0);
	device("phone-1", "apns", APNS_TOKEN);
	event("r-1", "x");
	ck_assert_int_eq(th_mock_wait(&m, "apns", 3, 15), 3);
	a = nth("apns", 0);
	b = nth("apns", 1);
	c = nth("apns", 2);
	ck_assert_int_eq(json_integer_value(json_object_get(c, "status")), 200);
	/* Backoff: the second try came at least half of backoff_base later,
	 * and every try carries the same apns-id. */
	ck_assert_int_ge(json_integer_value(json_object_get(b, "at")) -
			     json_integer_value(json_object_get(a, "at")),
			 500);
	ck_assert_str_eq(hdr(a, "apns-id"), hdr(c, "apns-id"));
	json_decref(a);
	json_decref(b);
	json_decref(c);
}
END_TEST

START_TEST(test_429_retry_after_honoured)
{
	json_t *a, *b;

	start(NULL, NULL);
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"" APNS_TOKEN "\","
					    "\"status\":429,\"reason\":"
					    "\"TooManyRequests\","
					    "\"retry_after\":3,\"times\":1}"),
			 0);
	device("phone-1", "apns", APNS_TOKEN);
	event("ra-1", "x");
	ck_assert_int_eq(th_mock_wait(&m, "apns", 2, 15), 2);
	a = nth("apns", 0);
	b = nth("apns", 1);
	ck_assert_int_ge(json_integer_value(json_object_get(b, "at")) -
			     json_integer_value(json_object_get(a, "at")),
			 2900);
	json_decref(a);
	json_decref(b);
}
END_TEST

START_TEST(test_credential_error_pauses_provider)
{
	struct th_resp r;

	start(NULL, NULL);
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"" APNS_TOKEN "\","
					    "\"status\":403,\"reason\":"
					    "\"InvalidProviderToken\"}"),
			 0);
	device("phone-1", "apns", APNS_TOKEN);
	device("pixel-1", "fcm", FCM_TOKEN);
	event("p-1", "x");
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 10), 1);
	usleep(500000);
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &r), 0);
	ck_assert_ptr_nonnull(
	    metric_line(r.body, "pushrelay_provider_paused{provider=\"apns\","
				"app=\"chat\"} 1\n"));
	ck_assert_ptr_nonnull(
	    metric_line(r.body, "pushrelay_provider_paused{provider=\"fcm\","
				"app=\"chat\"} 0\n"));
	th_resp_free(&r);
	/* No burning through the queue: more events, no more APNs sends. */
	event("p-2", "y");
	event("p-3", "z");
	sleep(2);
	ck_assert_int_eq(th_mock_wait(&m, "apns", 2, 0.2), 1);
	/* The log says why. */
	{
		char *log = th_read_file(d.log);

		ck_assert_ptr_nonnull(strstr(log, "provider chat/apns paused"));
		ck_assert_ptr_nonnull(strstr(log, "InvalidProviderToken"));
		free(log);
	}
}
END_TEST

START_TEST(test_restart_in_flight_same_apns_id)
{
	json_t *a, *b;

	start(NULL, NULL);
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"" APNS_TOKEN "\","
					    "\"delay_ms\":5000,\"times\":1}"),
			 0);
	device("phone-1", "apns", APNS_TOKEN);
	event("k-1", "x");
	/* The mock records a request when it answers (or the stream dies):
	 * give the push time to reach it, held for 5 s. */
	usleep(1500000);
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 0.1), 0);
	/* The push is in flight (the mock holds it): crash. */
	kill(d.pid, SIGKILL);
	waitpid(d.pid, NULL, 0);
	d.pid = 0;
	ck_assert_int_eq(th_daemon_restart(&d), 0);
	ck_assert_int_ge(th_mock_wait(&m, "apns", 2, 15), 2);
	a = nth("apns", 0);
	b = nth("apns", 1);
	ck_assert_str_eq(hdr(a, "apns-id"), hdr(b, "apns-id"));
	json_decref(a);
	json_decref(b);
}
END_TEST

START_TEST(test_coalescing_with_push_delay)
{
	json_t *r, *payload;

	start(NULL, "push_delay = 2\n");
	device("phone-1", "apns", APNS_TOKEN);
	event("c-1", "first");
	event("c-2", "second");
	event("c-3", "third");
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 10), 1);
	sleep(1);
	/* One push, carrying the newest message and the unread count. */
	ck_assert_int_eq(th_mock_wait(&m, "apns", 2, 0.2), 1);
	r = nth("apns", 0);
	payload =
	    json_loads(json_string_value(json_object_get(r, "body")), 0, NULL);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(payload, "aps"), "alert"),
		"title")),
	    "third");
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(payload, "aps"), "badge")),
			 3);
	json_decref(payload);
	json_decref(r);
}
END_TEST

START_TEST(test_goaway_is_retried_on_a_new_connection)
{
	json_t *a, *b;

	start(NULL, NULL);
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"" APNS_TOKEN "\","
					    "\"action\":\"goaway\","
					    "\"times\":1}"),
			 0);
	device("phone-1", "apns", APNS_TOKEN);
	event("g-1", "x");
	ck_assert_int_ge(th_mock_wait(&m, "apns", 2, 15), 2);
	a = nth("apns", 0);
	b = nth("apns", 1);
	/* The second try went out on another connection, with the same
	 * apns-id, and succeeded. */
	ck_assert_int_ne(json_integer_value(json_object_get(a, "conn")),
			 json_integer_value(json_object_get(b, "conn")));
	ck_assert_str_eq(hdr(a, "apns-id"), hdr(b, "apns-id"));
	ck_assert_int_eq(json_integer_value(json_object_get(b, "status")), 200);
	json_decref(a);
	json_decref(b);
}
END_TEST

/* A slow provider: in-flight pushes stay at max_in_flight, the rest wait
 * in the store, and all of them go out once it is fast again. */
START_TEST(test_slow_provider_bounded_in_flight)
{
	char body[256], *p;
	struct th_resp r;
	long in_flight = -1;
	int i;

	start("max_in_flight = 8\n", NULL);
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"*\","
					    "\"delay_ms\":1500}"),
			 0);
	for (i = 0; i < 40; i++) {
		char id[32], tok[80];

		snprintf(id, sizeof(id), "slow-%d", i);
		snprintf(tok, sizeof(tok), "%064x", i + 1);
		{
			char path[64], dev[256];

			snprintf(path, sizeof(path), "/v1/devices/d%d", i);
			snprintf(dev, sizeof(dev),
				 "{\"user\":\"u%d\",\"platform\":\"apns\","
				 "\"token\":\"%s\"}",
				 i, tok);
			ck_assert_int_eq(call("PUT", path, dev, NULL), 201);
		}
		snprintf(body, sizeof(body),
			 "{\"id\":\"%s\",\"user\":\"u%d\",\"push\":"
			 "{\"mode\":\"alert\",\"body\":\"x\"}}",
			 id, i);
		ck_assert_int_eq(call("POST", "/v1/events", body, NULL), 202);
	}
	usleep(700000);
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &r), 0);
	p = strstr(r.body, "\npushrelay_pushes_in_flight ");
	ck_assert_ptr_nonnull(p);
	in_flight = atol(p + strlen("\npushrelay_pushes_in_flight "));
	th_resp_free(&r);
	ck_assert_int_le(in_flight, 8);
	ck_assert_int_gt(in_flight, 0);
	/* The provider is fast again: everything drains. */
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"*\","
					    "\"status\":200}"),
			 0);
	ck_assert_int_ge(th_mock_wait(&m, "apns", 40, 30), 40);
}
END_TEST

static int ctl(const char *args, char *out, size_t outlen)
{
	char cmd[1024];
	FILE *fp;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s -c %s %s 2>&1", getenv("PUSHRELAYCTL"),
		 d.conf, args);
	fp = popen(cmd, "r");
	ck_assert_ptr_nonnull(fp);
	n = fread(out, 1, outlen - 1, fp);
	out[n] = '\0';
	st = pclose(fp);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_admin_pause_and_resume)
{
	char out[4096];

	start(NULL, NULL);
	device("phone-1", "apns", APNS_TOKEN);
	ck_assert_int_eq(ctl("providers pause apns", out, sizeof(out)), 0);
	event("ap-1", "x");
	sleep(2);
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 0.1), 0);
	ck_assert_int_eq(ctl("--json providers list", out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "\"paused\":true") != NULL, "%s", out);
	ck_assert_int_eq(ctl("providers resume apns", out, sizeof(out)), 0);
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 10), 1);
	ck_assert_int_eq(ctl("providers pause webpush", out, sizeof(out)), 1);
	ck_assert_ptr_nonnull(strstr(out, "404"));
}
END_TEST

#define SECRET "dispatch-test-secret-0123456789abcdef"

/* Deliver, or push: an ack before push_delay runs out cancels the push. */
START_TEST(test_ack_cancels_pending_push)
{
	char tok[2048], auth[2200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;

	start(NULL, "push_delay = 3\nclient_token_secret = " SECRET "\n");
	device("phone-1", "apns", APNS_TOKEN);
	event("d-1", "x");
	th_client_token(tok, sizeof(tok), SECRET, "alice", "phone-1", 600);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	ck_assert_int_eq(th_request(&d, TH_H1, "POST", "/v1/inbox/ack",
				    "{\"up_to\":1}", hdrs, &r),
			 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"cancelled\":1"));
	th_resp_free(&r);
	sleep(4);
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 0.2), 0);
	/* A message not acknowledged in time is pushed. */
	event("d-2", "y");
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 10), 1);
}
END_TEST

/* An app holding a stream with push=off gets no pushes meanwhile. */
START_TEST(test_stream_push_off)
{
	char tok[2048], req[4096], buf[4096];
	size_t n;
	int fd;

	start(NULL, "client_token_secret = " SECRET "\n");
	device("phone-1", "apns", APNS_TOKEN);
	th_client_token(tok, sizeof(tok), SECRET, "alice", "phone-1", 600);
	fd = th_connect(d.port);
	n = (size_t)snprintf(req, sizeof(req),
			     "GET /v1/stream?push=off HTTP/1.1\r\nHost: t\r\n"
			     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			     "Sec-WebSocket-Version: 13\r\n"
			     "Authorization: Bearer %s\r\n\r\n",
			     tok);
	th_send(fd, req, n);
	th_recv_until(fd, buf, sizeof(buf), "\r\n\r\n", 5);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "%s", buf);
	event("q-1", "x");
	/* The message came down the stream; no push left. */
	th_recv_until(fd, buf, sizeof(buf), "q-1", 5);
	ck_assert_ptr_nonnull(strstr(buf, "q-1"));
	sleep(2);
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 0.2), 0);
	close(fd);
	/* Disconnected: pushes flow again. */
	usleep(300000);
	event("q-2", "y");
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 10), 1);
}
END_TEST

/* Regression: stopping while FCM pushes wait for an OAuth token that is
 * slow to come must not touch the store after it closed. */
START_TEST(test_stop_while_waiting_for_token)
{
	int st;

	start(NULL, NULL);
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"*\",\"kind\":"
					    "\"oauth\",\"delay_ms\":20000}"),
			 0);
	for (int i = 0; i < 20; i++) {
		char id[32], tok[64];

		snprintf(id, sizeof(id), "px-%d", i);
		snprintf(tok, sizeof(tok), "fcm-token-%d", i);
		device(id, "fcm", tok);
	}
	event("t-1", "x");
	usleep(800000);
	st = th_daemon_stop(&d, SIGTERM, 15);
	ck_assert_int_eq(st, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dispatch");
	TCase *tc = tcase_create("e2e");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_apns_success_headers_and_payload);
	tcase_add_test(tc, test_fcm_success_and_token_reuse);
	tcase_add_test(tc, test_apns_410_unregistered);
	tcase_add_test(tc, test_apns_400_bad_device_token);
	tcase_add_test(tc, test_fcm_404_unregistered);
	tcase_add_test(tc, test_5xx_retried_with_backoff_then_sent);
	tcase_add_test(tc, test_429_retry_after_honoured);
	tcase_add_test(tc, test_credential_error_pauses_provider);
	tcase_add_test(tc, test_restart_in_flight_same_apns_id);
	tcase_add_test(tc, test_coalescing_with_push_delay);
	tcase_add_test(tc, test_goaway_is_retried_on_a_new_connection);
	tcase_add_test(tc, test_slow_provider_bounded_in_flight);
	tcase_add_test(tc, test_admin_pause_and_resume);
	tcase_add_test(tc, test_ack_cancels_pending_push);
	tcase_add_test(tc, test_stream_push_off);
	tcase_add_test(tc, test_stop_while_waiting_for_token);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

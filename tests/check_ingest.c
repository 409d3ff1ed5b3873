/*
 * check_ingest.c - the ingest, device and key APIs end to end through a
 * running pushrelayd: keys made with pushrelayctl, 401/403, device
 * upserts and token moves, idempotency, batch atomicity, a validation
 * matrix, the queue bound (429) and a full disk (503, then recovery).
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct th_daemon d;
static char ingest_key[128], admin_key[128];

static int run_cmd(const char *cmd, char *out, size_t outlen)
{
	FILE *fp = popen(cmd, "r");
	size_t n;
	int st;

	ck_assert_ptr_nonnull(fp);
	n = fread(out, 1, outlen - 1, fp);
	out[n] = '\0';
	st = pclose(fp);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Make a key through the CLI and the admin socket; return it. */
static void make_key(const char *name, const char *scope, char *out,
		     size_t outlen)
{
	char cmd[1024], text[4096];
	json_t *doc;

	snprintf(cmd, sizeof(cmd), "%s -c %s --json keys create %s --scope %s",
		 getenv("PUSHRELAYCTL"), d.conf, name, scope);
	ck_assert_int_eq(run_cmd(cmd, text, sizeof(text)), 0);
	doc = json_loads(text, 0, NULL);
	ck_assert_msg(doc != NULL, "%s", text);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "scope")),
			 scope);
	snprintf(out, outlen, "%s",
		 json_string_value(json_object_get(doc, "key")));
	ck_assert_int_eq(strncmp(out, "prk_", 4), 0);
	json_decref(doc);
}

static void start(const char *extra_server, const char *extra)
{
	ck_assert_msg(th_daemon_start(&d, extra_server, extra) == 0,
		      "pushrelayd did not start; see %s", d.log);
	make_key("chat", "ingest", ingest_key, sizeof(ingest_key));
	make_key("ops", "admin", admin_key, sizeof(admin_key));
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
}

/* A request with a key; returns the parsed JSON answer (or NULL). */
static json_t *req(enum th_mode mode, const char *method, const char *path,
		   const char *key, const char *body, long *status)
{
	char auth[200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	json_t *doc;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		 key ? key : "");
	ck_assert_int_eq(
	    th_request(&d, mode, method, path, body, key ? hdrs : hdrs + 1, &r),
	    0);
	*status = r.status;
	doc = json_loadb(r.body, r.len, 0, NULL);
	th_resp_free(&r);
	return doc;
}

static const char *err_code(json_t *doc)
{
	return json_string_value(
	    json_object_get(json_object_get(doc, "error"), "code"));
}

static const char *err_field(json_t *doc)
{
	return json_string_value(
	    json_object_get(json_object_get(doc, "error"), "field"));
}

static void put_device(const char *id, const char *user, const char *token,
		       long want)
{
	char path[128], body[512];
	long st;
	json_t *doc;

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	snprintf(body, sizeof(body),
		 "{\"user\":\"%s\",\"platform\":\"apns\",\"token\":\"%s\"}",
		 user, token);
	doc = req(TH_H1, "PUT", path, ingest_key, body, &st);
	ck_assert_msg(st == want, "PUT %s: %ld", id, st);
	json_decref(doc);
}

START_TEST(test_auth)
{
	long st;
	json_t *doc;
	const char *ev = "{\"id\":\"a1\",\"user\":\"alice\"}";

	start(NULL, NULL);
	doc = req(TH_H1, "POST", "/v1/events", NULL, ev, &st);
	ck_assert_int_eq(st, 401);
	ck_assert_str_eq(err_code(doc), "unauthorized");
	json_decref(doc);
	doc = req(TH_H1, "POST", "/v1/events", "prk_not-a-real-key", ev, &st);
	ck_assert_int_eq(st, 401);
	json_decref(doc);
	doc = req(TH_H2C, "POST", "/v1/events", admin_key, ev, &st);
	ck_assert_int_eq(st, 403);
	ck_assert_str_eq(err_code(doc), "forbidden");
	json_decref(doc);
	doc = req(TH_H1, "GET", "/v1/admin/keys", ingest_key, NULL, &st);
	ck_assert_int_eq(st, 403);
	json_decref(doc);
	doc = req(TH_H1, "GET", "/v1/admin/keys", NULL, NULL, &st);
	ck_assert_int_eq(st, 401);
	json_decref(doc);
	doc = req(TH_H1, "GET", "/v1/admin/keys", admin_key, NULL, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "keys")), 2);
	/* Only prefixes are listed, never keys or hashes. */
	{
		char *text = json_dumps(doc, 0);

		ck_assert_ptr_null(strstr(text, ingest_key + 12));
		free(text);
	}
	json_decref(doc);
	doc = req(TH_H1, "POST", "/v1/events", ingest_key, ev, &st);
	ck_assert_int_eq(st, 202);
	json_decref(doc);
}
END_TEST

START_TEST(test_keys_cli_list_and_revoke)
{
	char cmd[1024], out[8192];
	long st;
	json_t *doc;

	start(NULL, NULL);
	snprintf(cmd, sizeof(cmd), "%s -c %s keys list", getenv("PUSHRELAYCTL"),
		 d.conf);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "NAME") && strstr(out, "chat") &&
			  strstr(out, "ops") && strstr(out, "ingest"),
		      "%s", out);
	ck_assert_ptr_null(strstr(out, ingest_key + 12));
	snprintf(cmd, sizeof(cmd), "%s -c %s keys revoke chat",
		 getenv("PUSHRELAYCTL"), d.conf);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
	doc = req(TH_H1, "POST", "/v1/events", ingest_key,
		  "{\"id\":\"r1\",\"user\":\"bob\"}", &st);
	ck_assert_int_eq(st, 401);
	json_decref(doc);
	/* Unknown key: a clear error and exit 1. */
	snprintf(cmd, sizeof(cmd), "%s -c %s keys revoke nosuch 2>&1",
		 getenv("PUSHRELAYCTL"), d.conf);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 1);
	ck_assert_ptr_nonnull(strstr(out, "404"));
	/* The revocation survives a restart. */
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
}
END_TEST

START_TEST(test_idempotency_and_fanout)
{
	long st;
	json_t *doc, *r;

	start(NULL, NULL);
	put_device("phone-1", "alice", "aa01", 201);
	put_device("tablet-1", "alice", "aa02", 201);
	put_device("phone-1", "alice", "aa01", 200);
	doc = req(TH_H2C, "POST", "/v1/events", ingest_key,
		  "{\"id\":\"m-1\",\"user\":\"alice\",\"payload\":{\"t\":1},"
		  "\"push\":{\"mode\":\"alert\",\"title\":\"Bob\","
		  "\"body\":\"hi\"}}",
		  &st);
	ck_assert_int_eq(st, 202);
	r = json_array_get(json_object_get(doc, "results"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(r, "status")),
			 "queued");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "devices")), 2);
	json_decref(doc);
	doc = req(TH_H1, "POST", "/v1/events", ingest_key,
		  "{\"id\":\"m-1\",\"user\":\"alice\"}", &st);
	ck_assert_int_eq(st, 202);
	r = json_array_get(json_object_get(doc, "results"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(r, "status")),
			 "duplicate");
	json_decref(doc);
	/* Only the listed device. */
	doc = req(TH_H1, "POST", "/v1/events", ingest_key,
		  "{\"id\":\"m-2\",\"user\":\"alice\",\"devices\":"
		  "[\"tablet-1\"]}",
		  &st);
	ck_assert_int_eq(st, 202);
	r = json_array_get(json_object_get(doc, "results"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "devices")), 1);
	json_decref(doc);
	/* A user with no device: kept, zero devices now. */
	doc = req(TH_H1, "POST", "/v1/events", ingest_key,
		  "{\"id\":\"m-3\",\"user\":\"nobody\"}", &st);
	ck_assert_int_eq(st, 202);
	r = json_array_get(json_object_get(doc, "results"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "devices")), 0);
	json_decref(doc);
}
END_TEST

START_TEST(test_batch_atomic)
{
	long st;
	json_t *doc, *res;
	size_t i;
	json_t *r;

	start(NULL, NULL);
	doc = req(TH_H1, "POST", "/v1/events", ingest_key,
		  "{\"events\":[{\"id\":\"b1\",\"user\":\"u\"},"
		  "{\"id\":\"b2\",\"user\":\"u\"},"
		  "{\"id\":\"b3\",\"user\":\"u\",\"push\":{\"ttl\":-5}}]}",
		  &st);
	ck_assert_int_eq(st, 400);
	ck_assert_str_eq(err_code(doc), "invalid_event");
	ck_assert_str_eq(err_field(doc), "push.ttl");
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(doc, "error"), "index")),
			 2);
	json_decref(doc);
	/* Nothing of the failed batch was stored: all three are new. */
	doc = req(TH_H2C, "POST", "/v1/events", ingest_key,
		  "{\"events\":[{\"id\":\"b1\",\"user\":\"u\"},"
		  "{\"id\":\"b2\",\"user\":\"u\"},"
		  "{\"id\":\"b3\",\"user\":\"u\"}]}",
		  &st);
	ck_assert_int_eq(st, 202);
	res = json_object_get(doc, "results");
	ck_assert_int_eq(json_array_size(res), 3);
	json_array_foreach(res, i, r) ck_assert_str_eq(
	    json_string_value(json_object_get(r, "status")), "queued");
	json_decref(doc);
}
END_TEST

/* body, status, error code, field (NULL: none expected) */
static const struct {
	const char *body;
	long status;
	const char *code;
	const char *field;
} matrix[] = {
    {"[1,2]", 400, "invalid_json", NULL},
    {"{\"id\":", 400, "invalid_json", NULL},
    {"{\"user\":\"a\"}", 400, "invalid_event", "id"},
    {"{\"id\":\"\",\"user\":\"a\"}", 400, "invalid_event", "id"},
    {"{\"id\":7,\"user\":\"a\"}", 400, "invalid_event", "id"},
    {"{\"id\":\"x\"}", 400, "invalid_event", "user"},
    {"{\"id\":\"x\",\"user\":\"a\\u0001b\"}", 400, "invalid_event", "user"},
    {"{\"id\":\"x\",\"user\":\"a\\u0000b\"}", 400, "invalid_json", NULL},
    {"{\"id\":\"x\",\"user\":\"a\",\"extra\":1}", 400, "invalid_event",
     "extra"},
    {"{\"id\":\"x\",\"user\":\"a\",\"app\":\"nope\"}", 400, "invalid_event",
     "app"},
    {"{\"id\":\"x\",\"user\":\"a\",\"devices\":[]}", 400, "invalid_event",
     "devices"},
    {"{\"id\":\"x\",\"user\":\"a\",\"devices\":[\"ok\",3]}", 400,
     "invalid_event", "devices[1]"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":[]}", 400, "invalid_event", "push"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"mode\":\"loud\"}}", 400,
     "invalid_event", "push.mode"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"mode\":\"alert\"}}", 400,
     "invalid_event", "push.body"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"ttl\":1e300}}", 400,
     "invalid_event", "push.ttl"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"ttl\":99999999999}}", 400,
     "invalid_event", "push.ttl"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"ttl\":"
     "999999999999999999999999}}",
     400, "invalid_json", NULL},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"badge\":-1}}", 400,
     "invalid_event", "push.badge"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"collapse_id\":"
     "\"0123456789012345678901234567890123456789012345678901234567890123"
     "4\"}}",
     400, "invalid_event", "push.collapse_id"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"priority\":\"max\"}}", 400,
     "invalid_event", "push.priority"},
    {"{\"id\":\"x\",\"user\":\"a\",\"push\":{\"title\":5}}", 400,
     "invalid_event", "push.title"},
    {"{\"events\":[]}", 400, "invalid_event", "events"},
    {"{\"events\":{}}", 400, "invalid_event", "events"},
    {"{\"id\":\"\xff\",\"user\":\"a\"}", 400, "invalid_json", NULL},
    {"{\"id\":\"x\",\"id\":\"y\",\"user\":\"a\"}", 400, "invalid_json", NULL},
    {"{\"id\":\"héllo-✓\",\"user\":\"ünïcode\",\"push\":{\"mode\":"
     "\"alert\",\"body\":\"日本語 ✓\"}}",
     202, NULL, NULL},
};

START_TEST(test_validation_matrix)
{
	char deep[600], big[20000];
	long st;
	json_t *doc;

	start(NULL, "[ingest]\nmax_payload_bytes = 1k\n");
	for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
		doc = req(TH_H1, "POST", "/v1/events", ingest_key,
			  matrix[i].body, &st);
		ck_assert_msg(st == matrix[i].status, "case %zu: %ld", i, st);
		if (matrix[i].code) {
			ck_assert_msg(doc != NULL, "case %zu: no JSON", i);
			ck_assert_str_eq(err_code(doc), matrix[i].code);
			if (matrix[i].field)
				ck_assert_msg(err_field(doc) &&
						  strcmp(err_field(doc),
							 matrix[i].field) == 0,
					      "case %zu: field %s", i,
					      err_field(doc));
		}
		json_decref(doc);
	}
	/* Deep nesting. */
	snprintf(deep, sizeof(deep),
		 "{\"id\":\"d\",\"user\":\"a\",\"payload\":");
	for (int i = 0; i < 100; i++)
		strncat(deep, "[", sizeof(deep) - strlen(deep) - 1);
	for (int i = 0; i < 100; i++)
		strncat(deep, "]", sizeof(deep) - strlen(deep) - 1);
	strncat(deep, "}", sizeof(deep) - strlen(deep) - 1);
	doc = req(TH_H1, "POST", "/v1/events", ingest_key, deep, &st);
	ck_assert_int_eq(st, 400);
	ck_assert_str_eq(err_code(doc), "invalid_json");
	json_decref(doc);
	/* A payload over max_payload_bytes: 413 naming the field. */
	snprintf(big, sizeof(big),
		 "{\"id\":\"p\",\"user\":\"a\",\"payload\":\"");
	memset(big + strlen(big), 'x', 2000);
	big[strlen(big) + 0] = '\0';
	strncat(big, "\"}", sizeof(big) - strlen(big) - 1);
	doc = req(TH_H1, "POST", "/v1/events", ingest_key, big, &st);
	ck_assert_int_eq(st, 413);
	ck_assert_str_eq(err_field(doc), "payload");
	json_decref(doc);
	/* Not JSON at all. */
	{
		char auth[200];
		const char *hdrs[] = {auth, "Content-Type: text/plain", NULL};
		struct th_resp r;

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
			 ingest_key);
		th_request(&d, TH_H1, "POST", "/v1/events", "hello", hdrs, &r);
		ck_assert_int_eq(r.status, 415);
		th_resp_free(&r);
	}
}
END_TEST

START_TEST(test_device_move_and_list)
{
	long st;
	json_t *doc, *list;

	start(NULL, NULL);
	put_device("phone-1", "alice", "abcd", 201);
	/* The same token registered by another device and user moves. */
	doc = req(TH_H1, "PUT", "/v1/devices/phone-2", ingest_key,
		  "{\"user\":\"bob\",\"platform\":\"apns\",\"token\":\"abcd\","
		  "\"environment\":\"sandbox\"}",
		  &st);
	ck_assert_int_eq(st, 201);
	ck_assert_str_eq(
	    json_string_value(json_object_get(doc, "moved_from_device")),
	    "phone-1");
	ck_assert_str_eq(
	    json_string_value(json_object_get(doc, "moved_from_user")),
	    "alice");
	json_decref(doc);
	doc = req(TH_H1, "GET", "/v1/users/bob/devices", ingest_key, NULL, &st);
	ck_assert_int_eq(st, 200);
	list = json_object_get(doc, "devices");
	ck_assert_int_eq(json_array_size(list), 1);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(list, 0), "environment")),
			 "sandbox");
	json_decref(doc);
	/* Bad device input. */
	doc = req(TH_H1, "PUT", "/v1/devices/x", ingest_key,
		  "{\"user\":\"bob\",\"platform\":\"apns\",\"token\":\"xyz\"}",
		  &st);
	ck_assert_int_eq(st, 400);
	ck_assert_str_eq(err_field(doc), "token");
	json_decref(doc);
	doc = req(TH_H1, "PUT", "/v1/devices/x", ingest_key,
		  "{\"user\":\"bob\",\"platform\":\"webos\",\"token\":\"ab\"}",
		  &st);
	ck_assert_int_eq(st, 400);
	ck_assert_str_eq(err_field(doc), "platform");
	json_decref(doc);
	doc =
	    req(TH_H1, "DELETE", "/v1/devices/phone-2", ingest_key, NULL, &st);
	ck_assert_int_eq(st, 200);
	json_decref(doc);
	doc =
	    req(TH_H1, "DELETE", "/v1/devices/phone-2", ingest_key, NULL, &st);
	ck_assert_int_eq(st, 404);
	json_decref(doc);
	doc = req(TH_H1, "GET", "/v1/invalid-tokens?after=0", ingest_key, NULL,
		  &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(json_array_size(json_object_get(doc, "tokens")), 0);
	json_decref(doc);
	doc = req(TH_H1, "GET", "/v1/invalid-tokens?after=-1", ingest_key, NULL,
		  &st);
	ck_assert_int_eq(st, 400);
	json_decref(doc);
}
END_TEST

START_TEST(test_queue_bound_429)
{
	long st;
	json_t *doc;
	char body[128];
	int got429 = 0;

	start(NULL, "[storage]\nmax_messages = 5\n");
	for (int i = 0; i < 10 && !got429; i++) {
		snprintf(body, sizeof(body), "{\"id\":\"q%d\",\"user\":\"u\"}",
			 i);
		doc = req(TH_H1, "POST", "/v1/events", ingest_key, body, &st);
		if (st == 429) {
			ck_assert_int_eq(i, 5);
			ck_assert_str_eq(err_code(doc), "queue_full");
			got429 = 1;
		} else {
			ck_assert_int_eq(st, 202);
		}
		json_decref(doc);
	}
	ck_assert(got429);
}
END_TEST

START_TEST(test_disk_full_503_and_recovery)
{
	char body[8192], *conf, *p;
	long st = 0;
	json_t *doc;
	int i, full = -1;

	start(NULL, "[storage]\nmax_size = 128k\n");
	for (i = 0; i < 400; i++) {
		int n = snprintf(
		    body, sizeof(body),
		    "{\"id\":\"f%d\",\"user\":\"u\",\"payload\":\"", i);

		memset(body + n, 'z', 4000);
		snprintf(body + n + 4000, sizeof(body) - (size_t)n - 4000,
			 "\"}");
		doc = req(TH_H1, "POST", "/v1/events", ingest_key, body, &st);
		if (st == 503) {
			ck_assert_str_eq(err_code(doc), "storage_unavailable");
			json_decref(doc);
			full = i;
			break;
		}
		ck_assert_int_eq(st, 202);
		json_decref(doc);
	}
	ck_assert_msg(full > 0, "the database never filled (last %ld)", st);
	doc = req(TH_H1, "GET", "/readyz", NULL, NULL, &st);
	ck_assert_int_eq(st, 503);
	json_decref(doc);
	/* Space returns: lift the limit and reload. */
	conf = th_read_file(d.conf);
	p = strstr(conf, "max_size = 128k");
	ck_assert_ptr_nonnull(p);
	memcpy(p, "max_size = 0   ", 15);
	th_write_file(d.conf, conf);
	free(conf);
	kill(d.pid, SIGHUP);
	usleep(500000);
	doc = req(TH_H1, "POST", "/v1/events", ingest_key, body, &st);
	ck_assert_int_eq(st, 202);
	json_decref(doc);
	doc = req(TH_H1, "GET", "/readyz", NULL, NULL, &st);
	ck_assert_int_eq(st, 200);
	json_decref(doc);
}
END_TEST

/* Regression: max_api_keys is enforced where keys are committed, and a
 * restart with the keys that exist works. */
START_TEST(test_max_api_keys)
{
	char cmd[1024], out[4096];

	start(NULL, "[admin]\nmax_api_keys = 2\n");
	snprintf(cmd, sizeof(cmd), "%s -c %s keys create third 2>&1",
		 getenv("PUSHRELAYCTL"), d.conf);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "at most 2 live API keys") != NULL, "%s",
		      out);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	ck_assert_int_eq(th_daemon_restart(&d), 0);
}
END_TEST

/* Regression: a request on a TCP admin listener still needs an admin key
 * after the listeners closed for a drain. */
START_TEST(test_admin_tcp_during_drain)
{
	char extra[256], buf[4096];
	int port = th_free_port(0), fd, eof;

	snprintf(extra, sizeof(extra), "listen = 127.0.0.1:%d\n", port);
	/* The [admin] section of the harness gets a second, TCP listener. */
	start(NULL, NULL);
	th_daemon_stop(&d, SIGTERM, 10);
	{
		char *conf = th_read_file(d.conf),
		     *p = strstr(conf, "[admin]\n");
		char fixed[8192];

		ck_assert_ptr_nonnull(p);
		p += strlen("[admin]\n");
		snprintf(fixed, sizeof(fixed), "%.*s%s%s", (int)(p - conf),
			 conf, extra, p);
		th_write_file(d.conf, fixed);
		free(conf);
	}
	ck_assert_int_eq(th_daemon_restart(&d), 0);
	fd = th_connect(port);
	ck_assert_int_ge(fd, 0);
	th_send(fd, "GET /v1/admin/keys HTTP/1.1\r\nHost: a\r\n", 38);
	usleep(200000);
	kill(d.pid, SIGTERM);
	usleep(300000);
	th_send(fd, "\r\n", 2);
	th_recv_all(fd, buf, sizeof(buf), 5.0, &eof);
	close(fd);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 401", 12) == 0, "%s", buf);
	ck_assert_int_eq(th_daemon_stop(&d, 0, 10), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ingest");
	TCase *tc = tcase_create("api");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_keys_cli_list_and_revoke);
	tcase_add_test(tc, test_idempotency_and_fanout);
	tcase_add_test(tc, test_batch_atomic);
	tcase_add_test(tc, test_validation_matrix);
	tcase_add_test(tc, test_device_move_and_list);
	tcase_add_test(tc, test_queue_bound_429);
	tcase_add_test(tc, test_disk_full_503_and_recovery);
	tcase_add_test(tc, test_max_api_keys);
	tcase_add_test(tc, test_admin_tcp_during_drain);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

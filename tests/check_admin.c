/*
 * check_admin.c - the admin queue API end to end: pushrelayd against the
 * mock APNs server. Stats, message listing (paging, filters), message
 * detail with every push attempt, retrying one push and every dead one,
 * purging, who may call (admin keys and the admin socket; never ingest
 * keys or client tokens), a user's devices (listed and deleted), and each
 * pushrelayctl command in table and --json form with its exit code.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define APNS_TOKEN                                                             \
	"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define SECRET "admin-test-secret-0123456789abcdef"

static struct th_daemon d;
static struct th_mock m;
static char mockdir[256];
static char key[128];  /* ingest */
static char akey[128]; /* admin */

static void start(void)
{
	char app[4096], extra[8192];

	ck_assert_int_eq(th_tmpdir(mockdir, sizeof(mockdir)), 0);
	ck_assert_msg(th_mock_start(&m, mockdir) == 0, "pr-mock did not start");
	th_mock_app_conf(&m, app, sizeof(app));
	snprintf(extra, sizeof(extra),
		 "[push]\nbackoff_base = 1\nbackoff_max = 4\nmax_attempts = 1\n"
		 "%sclient_token_secret = " SECRET "\n",
		 app);
	ck_assert_msg(th_daemon_start(&d, NULL, extra) == 0,
		      "pushrelayd did not start; see %s", d.log);
	ck_assert_int_eq(th_make_key(&d, "t", "ingest", key, sizeof(key)), 0);
	ck_assert_int_eq(th_make_key(&d, "a", "admin", akey, sizeof(akey)), 0);
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
	th_mock_cleanup(&m, mockdir);
}

static long call_as(const char *bearer, const char *method, const char *path,
		    const char *body, json_t **out)
{
	char auth[2200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
	ck_assert_int_eq(th_request(&d, TH_H1, method, path, body, hdrs, &r),
			 0);
	st = r.status;
	if (out)
		*out = json_loadb(r.body, r.len, 0, NULL);
	th_resp_free(&r);
	return st;
}

static long call(const char *method, const char *path, const char *body,
		 json_t **out)
{
	return call_as(key, method, path, body, out);
}

static long admin(const char *method, const char *path, json_t **out)
{
	return call_as(akey, method, path, method[0] == 'P' ? "{}" : NULL, out);
}

static void device(const char *id, const char *user)
{
	char path[128], body[512];

	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	snprintf(body, sizeof(body),
		 "{\"user\":\"%s\",\"platform\":\"apns\",\"token\":\"%s\"}",
		 user, APNS_TOKEN);
	ck_assert_int_eq(call("PUT", path, body, NULL), 201);
}

static void event(const char *id, const char *user)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"user\":\"%s\",\"payload\":{\"x\":1},"
		 "\"push\":{\"mode\":\"alert\",\"title\":\"t\",\"body\":"
		 "\"hello\"}}",
		 id, user);
	ck_assert_int_eq(call("POST", "/v1/events", body, NULL), 202);
}

/* The first push job of a message (a new reference). */
static json_t *push_of(const char *id)
{
	char path[128];
	json_t *doc, *p;

	snprintf(path, sizeof(path), "/v1/admin/messages/%s", id);
	ck_assert_int_eq(admin("GET", path, &doc), 200);
	p = json_incref(json_array_get(json_object_get(doc, "pushes"), 0));
	json_decref(doc);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* Wait until the message's push is in state; its job id. */
static long long wait_state(const char *id, const char *state)
{
	json_t *p = NULL;
	long long job = 0;

	for (int i = 0; i < 100; i++) {
		p = push_of(id);
		if (strcmp(json_string_value(json_object_get(p, "state")),
			   state) == 0)
			break;
		json_decref(p);
		p = NULL;
		usleep(100000);
	}
	ck_assert_msg(p != NULL, "%s never reached %s", id, state);
	job = json_integer_value(json_object_get(p, "job_id"));
	json_decref(p);
	return job;
}

/* Run pushrelayctl over the admin socket; its exit code, output in out. */
static int ctl(char *out, size_t outlen, const char *args)
{
	char cmd[1024];
	FILE *fp;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s -c %s %s", getenv("PUSHRELAYCTL"),
		 d.conf, args);
	fp = popen(cmd, "r");
	ck_assert_ptr_nonnull(fp);
	n = fread(out, 1, outlen - 1, fp);
	out[n] = '\0';
	st = pclose(fp);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *ctl_json(const char *args)
{
	static char out[65536];
	json_t *doc;

	ck_assert_int_eq(ctl(out, sizeof(out), args), 0);
	doc = json_loads(out, 0, NULL);
	ck_assert_msg(doc != NULL, "not JSON: %s", out);
	return doc;
}

START_TEST(test_admin_queue)
{
	json_t *doc, *p, *h, *list;
	char tok[2048], path[256], *out;
	long long job;

	start();
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"" APNS_TOKEN "\","
					    "\"status\":503,\"reason\":"
					    "\"ServiceUnavailable\","
					    "\"times\":1}"),
			 0);
	device("phone-1", "alice");
	event("m-1", "alice");
	ck_assert_int_eq(th_mock_wait(&m, "apns", 1, 10), 1);
	job = wait_state("m-1", "dead"); /* max_attempts = 1 */

	/* Who may ask: admin keys, never ingest keys or client tokens. */
	ck_assert_int_eq(call("GET", "/v1/admin/stats", NULL, NULL), 403);
	ck_assert_int_eq(call("GET", "/v1/admin/messages", NULL, NULL), 403);
	snprintf(path, sizeof(path), "/v1/admin/pushes/%lld/retry", job);
	ck_assert_int_eq(call("POST", path, "{}", NULL), 403);
	ck_assert_int_eq(call("DELETE", "/v1/admin/messages/m-1", NULL, NULL),
			 403);
	th_client_token(tok, sizeof(tok), SECRET, "alice", "phone-1", 600);
	ck_assert_int_ge(call_as(tok, "GET", "/v1/admin/stats", NULL, NULL),
			 401);
	ck_assert_int_le(call_as(tok, "GET", "/v1/admin/stats", NULL, NULL),
			 403);
	ck_assert_int_ge(
	    call_as(tok, "GET", "/v1/admin/messages/m-1", NULL, NULL), 401);
	ck_assert_int_le(
	    call_as(tok, "GET", "/v1/admin/messages/m-1", NULL, NULL), 403);

	/* Stats. */
	ck_assert_int_eq(admin("GET", "/v1/admin/stats", &doc), 200);
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(doc, "queue"), "dead")),
			 1);
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(doc, "queue"), "pending")),
			 0);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "messages")),
			 1);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "devices")),
			 1);
	ck_assert(json_is_integer(json_object_get(doc, "oldest_pending_age")));
	ck_assert(json_is_object(json_object_get(doc, "providers")));
	json_decref(doc);

	/* Detail: the attempt with its status, reason and latency. */
	p = push_of("m-1");
	h = json_array_get(json_object_get(p, "history"), 0);
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(json_integer_value(json_object_get(h, "status")), 503);
	ck_assert_str_eq(json_string_value(json_object_get(h, "provider")),
			 "apns");
	ck_assert(json_is_integer(json_object_get(h, "latency_ms")));
	ck_assert_int_eq(
	    strlen(json_string_value(json_object_get(h, "apns_id"))), 36);
	ck_assert_int_eq(json_integer_value(json_object_get(p, "attempts")), 1);
	json_decref(p);
	ck_assert_int_eq(admin("GET", "/v1/admin/messages/nope", NULL), 404);

	/* Retry the dead push: it goes out again and is sent. */
	ck_assert_int_eq(admin("POST", path, &doc), 200);
	json_decref(doc);
	ck_assert_int_eq(th_mock_wait(&m, "apns", 2, 10), 2);
	wait_state("m-1", "sent");
	ck_assert_int_eq(admin("POST", path, NULL), 400); /* sent already */
	ck_assert_int_eq(admin("POST", "/v1/admin/pushes/99999/retry", NULL),
			 404);
	ck_assert_int_eq(admin("POST", "/v1/admin/pushes/x/retry", NULL), 400);
	ck_assert_int_eq(
	    admin("POST", "/v1/admin/pushes/retry?state=dead", &doc), 200);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "retried")),
			 0);
	json_decref(doc);
	ck_assert_int_eq(admin("POST", "/v1/admin/pushes/retry", NULL), 400);

	/* Listing: newest first, paged, filtered; bad parameters named. */
	device("pad-1", "bob");
	event("m-2", "alice");
	event("m-3", "bob");
	ck_assert_int_eq(admin("GET", "/v1/admin/messages?limit=2", &doc), 200);
	list = json_object_get(doc, "messages");
	ck_assert_uint_eq(json_array_size(list), 2);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(list, 0), "id")),
	    "m-3");
	ck_assert(json_is_integer(json_object_get(doc, "next")));
	snprintf(path, sizeof(path), "/v1/admin/messages?limit=2&before=%lld",
		 (long long)json_integer_value(json_object_get(doc, "next")));
	json_decref(doc);
	ck_assert_int_eq(admin("GET", path, &doc), 200);
	list = json_object_get(doc, "messages");
	ck_assert_uint_eq(json_array_size(list), 1);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(list, 0), "id")),
	    "m-1");
	ck_assert(json_is_null(json_object_get(doc, "next")));
	json_decref(doc);
	ck_assert_int_eq(admin("GET", "/v1/admin/messages?user=bob", &doc),
			 200);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "messages")), 1);
	json_decref(doc);
	ck_assert_int_eq(admin("GET", "/v1/admin/messages?provider=fcm", &doc),
			 200);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "messages")), 0);
	json_decref(doc);
	ck_assert_int_eq(admin("GET", "/v1/admin/messages?state=bogus", &doc),
			 400);
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(
		       json_object_get(doc, "error"), "message")),
		   "state"));
	json_decref(doc);
	ck_assert_int_eq(admin("GET", "/v1/admin/messages?limit=0", NULL), 400);
	ck_assert_int_eq(admin("GET", "/v1/admin/messages?before=x", NULL),
			 400);
	ck_assert_int_eq(admin("GET", "/v1/admin/messages?provider=x", NULL),
			 400);

	/* pushrelayctl over the admin socket: tables and --json. */
	out = malloc(65536);
	ck_assert_int_eq(ctl(out, 65536, "status"), 0);
	ck_assert_ptr_nonnull(strstr(out, "queue:"));
	ck_assert_ptr_nonnull(strstr(out, "PROVIDER"));
	doc = ctl_json("status --json");
	ck_assert(json_is_object(json_object_get(doc, "queue")));
	json_decref(doc);
	doc = ctl_json("--json status");
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "messages")),
			 3);
	json_decref(doc);
	ck_assert_int_eq(ctl(out, 65536, "queue list --limit 1"), 0);
	ck_assert_ptr_nonnull(strstr(out, "PUSH STATE"));
	ck_assert_ptr_nonnull(strstr(out, "m-3"));
	ck_assert_ptr_nonnull(strstr(out, "more: --before"));
	doc = ctl_json("--json queue list --user alice");
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "messages")), 2);
	json_decref(doc);
	ck_assert_int_eq(ctl(out, 65536, "queue show m-1"), 0);
	ck_assert_ptr_nonnull(strstr(out, "attempts:"));
	ck_assert_ptr_nonnull(strstr(out, "503"));
	doc = ctl_json("queue show m-1 --json");
	ck_assert_uint_eq(
	    json_array_size(json_object_get(
		json_array_get(json_object_get(doc, "pushes"), 0), "history")),
	    2);
	json_decref(doc);
	ck_assert_int_eq(ctl(out, 65536, "queue show nope 2>/dev/null"), 1);
	ck_assert_int_eq(ctl(out, 65536, "queue retry 99999 2>/dev/null"), 1);
	ck_assert_int_eq(ctl(out, 65536, "queue retry --dead"), 0);
	ck_assert_ptr_nonnull(strstr(out, "retried"));
	doc = ctl_json("--json queue retry --dead --limit 5");
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "retried")),
			 0);
	json_decref(doc);
	ck_assert_int_eq(ctl(out, 65536, "queue bogus 2>/dev/null"), 2);
	ck_assert_int_eq(ctl(out, 65536, "queue list --nope 2>/dev/null"), 2);

	/* Purge: gone from the listing and the detail. */
	ck_assert_int_eq(admin("DELETE", "/v1/admin/messages/m-1", &doc), 200);
	json_decref(doc);
	ck_assert_int_eq(admin("GET", "/v1/admin/messages/m-1", NULL), 404);
	ck_assert_int_eq(admin("DELETE", "/v1/admin/messages/m-1", NULL), 404);
	ck_assert_int_eq(ctl(out, 65536, "queue purge m-2"), 0);
	doc = ctl_json("--json queue purge m-3");
	ck_assert(json_is_true(json_object_get(doc, "purged")));
	json_decref(doc);
	ck_assert_int_eq(ctl(out, 65536, "queue purge m-3 2>/dev/null"), 1);
	ck_assert_int_eq(admin("GET", "/v1/admin/stats", &doc), 200);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "messages")),
			 0);
	json_decref(doc);
	free(out);
}
END_TEST

/* Devices: listed and deleted through the admin API and pushrelayctl. */
START_TEST(test_admin_devices)
{
	json_t *doc, *list, *dv;
	char *out;

	start();
	device("phone-1", "alice");

	/* Who may ask, and what is required. */
	ck_assert_int_eq(
	    call("GET", "/v1/admin/devices?user=alice", NULL, NULL), 403);
	ck_assert_int_eq(
	    call("DELETE", "/v1/admin/devices/phone-1", NULL, NULL), 403);
	ck_assert_int_eq(admin("GET", "/v1/admin/devices", &doc), 400);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(doc, "error"), "field")),
			 "user");
	json_decref(doc);
	ck_assert_int_eq(
	    admin("GET", "/v1/admin/devices?user=alice&app=nope", NULL), 400);
	ck_assert_int_eq(
	    admin("GET", "/v1/admin/devices?user=alice&app=chat", &doc), 200);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "devices")), 1);
	json_decref(doc);

	/* pushrelayctl: table and --json. */
	out = malloc(65536);
	ck_assert_int_eq(ctl(out, 65536, "devices list --user alice"), 0);
	ck_assert_ptr_nonnull(strstr(out, "DEVICE ID"));
	ck_assert_ptr_nonnull(strstr(out, "LAST SEEN AT"));
	ck_assert_ptr_nonnull(strstr(out, "phone-1"));
	ck_assert_ptr_nonnull(strstr(out, "apns"));
	doc = ctl_json("--json devices list --user alice --app chat");
	list = json_object_get(doc, "devices");
	ck_assert_uint_eq(json_array_size(list), 1);
	dv = json_array_get(list, 0);
	ck_assert_str_eq(json_string_value(json_object_get(dv, "device_id")),
			 "phone-1");
	ck_assert_str_eq(json_string_value(json_object_get(dv, "user")),
			 "alice");
	ck_assert_str_eq(json_string_value(json_object_get(dv, "push")), "ok");
	json_decref(doc);

	/* Delete, then it is gone. */
	doc = ctl_json("--json devices delete phone-1");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "device_id")),
			 "phone-1");
	ck_assert(json_is_true(json_object_get(doc, "deleted")));
	json_decref(doc);
	ck_assert_int_eq(ctl(out, 65536, "devices list --user alice"), 0);
	ck_assert_ptr_nonnull(strstr(out, "(none)"));
	doc = ctl_json("devices list --user alice --json");
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "devices")), 0);
	json_decref(doc);
	ck_assert_int_eq(ctl(out, 65536, "devices delete phone-1 2>&1"), 1);
	ck_assert_ptr_nonnull(strstr(out, "404"));
	ck_assert_int_eq(admin("DELETE", "/v1/admin/devices/phone-1", NULL),
			 404);

	/* Usage errors. */
	ck_assert_int_eq(ctl(out, 65536, "devices list 2>/dev/null"), 2);
	ck_assert_int_eq(ctl(out, 65536, "devices delete 2>/dev/null"), 2);
	ck_assert_int_eq(ctl(out, 65536, "devices bogus 2>/dev/null"), 2);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("admin");
	TCase *tc = tcase_create("e2e");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_admin_queue);
	tcase_add_test(tc, test_admin_devices);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

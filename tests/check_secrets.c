/*
 * check_secrets.c - no secret reaches a log line. The daemon runs at
 * debug level with the access log on while every kind of secret passes
 * through it: API keys, a client token (also as ?access_token=), the app's
 * client_token_secret, the APNs .p8 key and the JWTs made from it, the FCM
 * service-account key and the OAuth access token the mock issues. Then
 * the whole daemon log is searched for each of them. API keys are kept
 * as SHA-256 digests only.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "harness.h"

#define SECRET "secrets-test-client-secret-0123456789abcdef"
#define APNS_TOKEN                                                             \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static struct th_daemon d;
static struct th_mock m;
static char mockdir[256];

static void teardown(void)
{
	th_daemon_cleanup(&d);
	th_mock_cleanup(&m, mockdir);
}

static long call(const char *method, const char *path, const char *bearer,
		 const char *body)
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
	th_resp_free(&r);
	return st;
}

/* Fail if any 24-byte window of secret appears in log. */
static void assert_absent(const char *log, const char *what, const char *secret)
{
	size_t n = strlen(secret), w = n < 24 ? n : 24;
	char probe[32];

	for (size_t i = 0; i + w <= n; i += w) {
		memcpy(probe, secret + i, w);
		probe[w] = '\0';
		ck_assert_msg(strstr(log, probe) == NULL,
			      "%s leaked into the log (\"%s...\")", what,
			      probe);
	}
}

/* The base64 body lines of a PEM file (the key material). */
static void assert_pem_absent(const char *log, const char *what,
			      const char *path)
{
	char *pem = th_read_file(path), *line, *save = NULL;

	ck_assert_ptr_nonnull(pem);
	for (line = strtok_r(pem, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "-----", 5) != 0 && strlen(line) >= 24)
			assert_absent(log, what, line);
	free(pem);
}

START_TEST(test_no_secret_in_logs)
{
	char app[4096], extra[8192], ingest[128], admin[128], tok[2048];
	char path[2300], *log;
	json_t *reqs, *r;
	size_t i;
	int jwts = 0, oauth = 0;

	ck_assert_int_eq(th_tmpdir(mockdir, sizeof(mockdir)), 0);
	ck_assert_int_eq(th_mock_start(&m, mockdir), 0);
	th_mock_app_conf(&m, app, sizeof(app));
	snprintf(extra, sizeof(extra),
		 "[log]\naccess = yes\n%s"
		 "client_token_secret = " SECRET "\n",
		 app);
	ck_assert_int_eq(th_daemon_start(&d, NULL, extra), 0);
	/* Debug level, through a reload (the harness writes level = info). */
	{
		char *conf = th_read_file(d.conf),
		     *p = strstr(conf, "level = info");

		ck_assert_ptr_nonnull(p);
		memcpy(p, "level =debug", 12);
		th_write_file(d.conf, conf);
		free(conf);
		kill(d.pid, SIGHUP);
		usleep(300000);
	}
	ck_assert_int_eq(
	    th_make_key(&d, "ing", "ingest", ingest, sizeof(ingest)), 0);
	ck_assert_int_eq(th_make_key(&d, "adm", "admin", admin, sizeof(admin)),
			 0);
	/* Every path a secret takes: keys (good and bad), pushes to APNs
	 * (JWT) and FCM (OAuth), client tokens in a header and a query. */
	ck_assert_int_eq(call("PUT", "/v1/devices/ios-1", ingest,
			      "{\"user\":\"alice\",\"platform\":\"apns\","
			      "\"token\":\"" APNS_TOKEN "\"}"),
			 201);
	ck_assert_int_eq(call("PUT", "/v1/devices/droid-1", ingest,
			      "{\"user\":\"alice\",\"platform\":\"fcm\","
			      "\"token\":\"fcm-secret-test-token\"}"),
			 201);
	ck_assert_int_eq(call("POST", "/v1/events", ingest,
			      "{\"id\":\"s-1\",\"user\":\"alice\",\"push\":"
			      "{\"mode\":\"alert\",\"body\":\"x\"}}"),
			 202);
	ck_assert_int_eq(call("POST", "/v1/events", admin,
			      "{\"id\":\"s-2\",\"user\":\"alice\"}"),
			 403);
	ck_assert_int_eq(call("GET", "/v1/admin/stats", ingest, NULL), 403);
	ck_assert_int_ge(th_mock_wait(&m, "apns", 1, 10), 1);
	ck_assert_int_ge(th_mock_wait(&m, "fcm", 1, 10), 1);
	th_client_token(tok, sizeof(tok), SECRET, "alice", "ios-1", 600);
	ck_assert_int_eq(call("GET", "/v1/inbox", tok, NULL), 200);
	snprintf(path, sizeof(path), "/v1/inbox?access_token=%s", tok);
	ck_assert_int_eq(call("GET", path, NULL, NULL), 401);
	th_client_token(tok, sizeof(tok), "a-wrong-secret-0123456789abcdef0123",
			"alice", "ios-1", 600);
	ck_assert_int_eq(call("GET", "/v1/inbox", tok, NULL), 401);
	usleep(300000);

	log = th_read_file(d.log);
	ck_assert_ptr_nonnull(log);
	/* The log did record these requests (debug level, access log). */
	ck_assert_ptr_nonnull(strstr(log, "POST /v1/events 202"));
	assert_absent(log, "the ingest key", ingest);
	assert_absent(log, "the admin key", admin);
	assert_absent(log, "a client token", tok);
	assert_absent(log, "client_token_secret", SECRET);
	assert_pem_absent(log, "the APNs .p8 key", m.p8);
	{
		char *sa = th_read_file(m.sa);
		json_t *doc = json_loads(sa, 0, NULL);
		const char *pk =
		    json_string_value(json_object_get(doc, "private_key"));
		char tmp[300];
		FILE *fp;

		ck_assert_ptr_nonnull(pk);
		snprintf(tmp, sizeof(tmp), "%s/sa-key.pem", mockdir);
		fp = fopen(tmp, "w");
		fputs(pk, fp);
		fclose(fp);
		assert_pem_absent(log, "the FCM service-account key", tmp);
		json_decref(doc);
		free(sa);
	}
	/* The JWTs and access tokens the mock saw must not be in the log. */
	reqs = th_mock_requests(&m, 0);
	json_array_foreach(json_object_get(reqs, "requests"), i, r)
	{
		const char *a = json_string_value(json_object_get(
		    json_object_get(r, "headers"), "authorization"));

		if (!a || strlen(a) < 30)
			continue;
		assert_absent(log, "a provider credential", a + 7);
		if (strncmp(a, "bearer ey", 9) == 0)
			jwts++;
		else
			oauth++;
	}
	json_decref(reqs);
	ck_assert_int_ge(jwts, 1);
	ck_assert_int_ge(oauth, 1);
	/* Device tokens appear at most truncated. */
	ck_assert_ptr_null(strstr(log, APNS_TOKEN));
	free(log);
}
END_TEST

/* Does the file at path contain needle anywhere (binary-safe)? */
static int file_contains(const char *path, const char *needle)
{
	size_t n = strlen(needle), len = 0, cap = 0;
	char *data = NULL, chunk[65536];
	int found = 0;
	size_t got;
	FILE *fp = fopen(path, "rb");

	if (!fp)
		return 0;
	while ((got = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
		if (len + got > cap) {
			cap = (len + got) * 2;
			data = realloc(data, cap);
			ck_assert_ptr_nonnull(data);
		}
		memcpy(data + len, chunk, got);
		len += got;
	}
	fclose(fp);
	for (size_t i = 0; !found && len >= n && i <= len - n; i++)
		found = memcmp(data + i, needle, n) == 0;
	free(data);
	return found;
}

/* API keys are stored as SHA-256 digests: the database holds the digest
 * and a short display prefix, and no byte sequence of the key itself, in
 * the main file or the WAL. */
START_TEST(test_api_keys_stored_hashed)
{
	char key[128], db[400], wal[420];
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	sqlite3 *conn;
	sqlite3_stmt *st;
	int rows = 0;

	ck_assert_int_eq(th_daemon_start(&d, NULL, NULL), 0);
	ck_assert_int_eq(th_make_key(&d, "hashed", "ingest", key, sizeof(key)),
			 0);
	ck_assert_int_eq(call("GET", "/v1/users/nobody/devices", key, NULL),
			 200);
	snprintf(db, sizeof(db), "%s/pushrelay.db", d.dir);
	snprintf(wal, sizeof(wal), "%s-wal", db);
	/* While it runs (the key may sit in the WAL) and after a stop. */
	ck_assert_msg(!file_contains(db, key), "key text in the database");
	ck_assert_msg(!file_contains(wal, key), "key text in the WAL");
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	ck_assert_msg(!file_contains(db, key), "key text in the database");
	ck_assert_msg(!file_contains(wal, key), "key text in the WAL");

	ck_assert(
	    EVP_Digest(key, strlen(key), digest, &dlen, EVP_sha256(), NULL));
	ck_assert_int_eq(sqlite3_open_v2(db, &conn, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(conn,
					    "SELECT hash, prefix FROM api_keys "
					    "WHERE name = 'hashed'",
					    -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *prefix = (const char *)sqlite3_column_text(st, 1);

		rows++;
		ck_assert_int_eq(sqlite3_column_bytes(st, 0), (int)dlen);
		ck_assert(memcmp(sqlite3_column_blob(st, 0), digest, dlen) ==
			  0);
		/* The prefix identifies the key to a human, no more. */
		ck_assert_ptr_nonnull(prefix);
		ck_assert_int_le(strlen(prefix), 12);
		ck_assert(strncmp(key, prefix, strlen(prefix)) == 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(conn);
	ck_assert_int_eq(rows, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("secrets");
	TCase *tc = tcase_create("logs");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_no_secret_in_logs);
	tcase_add_test(tc, test_api_keys_stored_hashed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_durability.c - "an event answered 202 is never lost". Clients
 * post events concurrently while the daemon is killed with SIGKILL, over
 * several cycles. After each restart every event that got a 202 is in
 * the database exactly once, each of the user's devices has exactly one
 * delivery of it, and every device's sequence numbers run 1..n without a
 * gap. Bounded: a few thousand events and a few seconds per cycle.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define CLIENTS	   4
#define CYCLES	   3
#define MAX_EVENTS 6000 /* over all cycles */

static struct th_daemon d;
static char key[128];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *acked[MAX_EVENTS]; /* ids answered 202 */
static size_t n_acked;
static volatile int stop;

struct client {
	int no;
	int cycle;
	int sent;
};

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
	struct th_resp *r = arg;
	char *q = realloc(r->body, r->len + size * n + 1);

	if (!q)
		return 0;
	memcpy(q + r->len, p, size * n);
	r->len += size * n;
	q[r->len] = '\0';
	r->body = q;
	return size * n;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char url[128], auth[200], body[256], id[64];
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/events", d.port);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	while (!stop) {
		struct th_resp r = {0};
		long status = 0;

		snprintf(id, sizeof(id), "c%d-k%d-%d", c->no, c->cycle,
			 c->sent++);
		snprintf(body, sizeof(body),
			 "{\"id\":\"%s\",\"user\":\"dur\",\"payload\":"
			 "{\"n\":%d}}",
			 id, c->sent);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
		if (curl_easy_perform(h) == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		else
			stop = 1; /* the daemon died */
		if (status == 202 && r.body && strstr(r.body, "\"queued\"")) {
			pthread_mutex_lock(&lock);
			if (n_acked < MAX_EVENTS)
				acked[n_acked++] = strdup(id);
			else
				stop = 1;
			pthread_mutex_unlock(&lock);
		}
		free(r.body);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return NULL;
}

static void make_key(void)
{
	ck_assert_int_eq(th_make_key(&d, "dur", "ingest", key, sizeof(key)), 0);
}

static void put_device(const char *id, const char *token)
{
	char auth[200], body[200], path[64];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(path, sizeof(path), "/v1/devices/%s", id);
	snprintf(body, sizeof(body),
		 "{\"user\":\"dur\",\"platform\":\"fcm\",\"token\":\"%s\"}",
		 token);
	ck_assert_int_eq(th_request(&d, TH_H1, "PUT", path, body, hdrs, &r), 0);
	ck_assert_int_eq(r.status, 201);
	th_resp_free(&r);
}

/* Every acked event exactly once, with one delivery per device, and
 * gapless per-device sequences. Reads the database of the stopped
 * daemon. */
static void verify_db(void)
{
	char path[400];
	sqlite3 *db;
	sqlite3_stmt *st;
	int rv;

	snprintf(path, sizeof(path), "%s/pushrelay.db", d.dir);
	ck_assert_int_eq(
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	rv = sqlite3_prepare_v2(db,
				"SELECT count(*), "
				"(SELECT count(*) FROM deliveries dl "
				" WHERE dl.message_id = m.id) "
				"FROM messages m WHERE m.ext_id = ?",
				-1, &st, NULL);
	ck_assert_int_eq(rv, SQLITE_OK);
	for (size_t i = 0; i < n_acked; i++) {
		sqlite3_bind_text(st, 1, acked[i], -1, SQLITE_STATIC);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		ck_assert_msg(sqlite3_column_int(st, 0) == 1,
			      "event %s stored %d times", acked[i],
			      sqlite3_column_int(st, 0));
		ck_assert_msg(sqlite3_column_int(st, 1) == 2,
			      "event %s has %d deliveries", acked[i],
			      sqlite3_column_int(st, 1));
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	/* Sequences: per device, count == max(seq) and min(seq) == 1. */
	rv = sqlite3_prepare_v2(db,
				"SELECT device_id, count(*), min(seq), "
				"max(seq) FROM deliveries GROUP BY device_id",
				-1, &st, NULL);
	ck_assert_int_eq(rv, SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		ck_assert_int_eq(sqlite3_column_int(st, 2), 1);
		ck_assert_int_eq(sqlite3_column_int(st, 1),
				 sqlite3_column_int(st, 3));
	}
	sqlite3_finalize(st);
	rv = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
	ck_assert_int_eq(rv, SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

START_TEST(test_kill9_loses_nothing_acked)
{
	pthread_t th[CLIENTS];
	struct client cl[CLIENTS];
	size_t before;

	ck_assert_int_eq(th_daemon_start(&d, NULL, NULL), 0);
	make_key();
	put_device("dur-phone", "tok-phone");
	put_device("dur-tablet", "tok-tablet");
	for (int cycle = 0; cycle < CYCLES; cycle++) {
		struct timespec pause = {0, 300000000L + cycle * 150000000L};

		before = n_acked;
		stop = 0;
		for (int i = 0; i < CLIENTS; i++) {
			cl[i].no = i;
			cl[i].cycle = cycle;
			cl[i].sent = 0;
			pthread_create(&th[i], NULL, client_main, &cl[i]);
		}
		nanosleep(&pause, NULL);
		/* Kill while requests are in flight. */
		kill(d.pid, SIGKILL);
		waitpid(d.pid, NULL, 0);
		d.pid = 0;
		stop = 1;
		for (int i = 0; i < CLIENTS; i++)
			pthread_join(th[i], NULL);
		ck_assert_msg(n_acked > before, "cycle %d acked nothing",
			      cycle);
		verify_db();
		printf("cycle %d: killed with %zu events acked so far, all "
		       "present once\n",
		       cycle, n_acked);
		ck_assert_int_eq(th_daemon_restart(&d), 0);
	}
	/* The daemon agrees: every acked id is a duplicate now. */
	for (size_t i = 0; i < n_acked; i += 97) {
		char auth[200], body[200];
		const char *hdrs[] = {auth, "Content-Type: application/json",
				      NULL};
		struct th_resp r;

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		snprintf(body, sizeof(body), "{\"id\":\"%s\",\"user\":\"dur\"}",
			 acked[i]);
		th_request(&d, TH_H1, "POST", "/v1/events", body, hdrs, &r);
		ck_assert_int_eq(r.status, 202);
		ck_assert_ptr_nonnull(strstr(r.body, "\"duplicate\""));
		th_resp_free(&r);
	}
	for (size_t i = 0; i < n_acked; i++)
		free(acked[i]);
	th_daemon_cleanup(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("durability");
	TCase *tc = tcase_create("kill9");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_kill9_loses_nothing_acked);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

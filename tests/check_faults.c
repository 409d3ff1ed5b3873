/*
 * check_faults.c - provider faults, end to end: pushrelayd against the mock
 * APNs/FCM server (tests/mock/pr-mock) while the mock misbehaves. Each case
 * warms up (two rounds of pushes, so connections, caches and the heap are
 * in their steady state), injects one fault for a bounded window while a
 * round of pushes is due, lifts it, pushes once more, and then asserts:
 *
 *   - the queue drains: every push job in the store ends 'sent';
 *   - nothing is lost or doubled: the mock answered 200 exactly once per
 *     job (APNs by apns-id, FCM by token + data.message_id), and the store
 *     recorded exactly one 200 attempt per job;
 *   - attempts stay bounded: no push was tried more often than
 *     dispatch.c's backoff allows (attempt_bound(), from the store's
 *     attempt history), the requests and connections the mock saw in the
 *     window are within that bound too, and the daemon's CPU time in the
 *     window is far from a busy loop;
 *   - memory stays flat: RSS after the fault is within RSS_SLACK_KB of the
 *     RSS after the warm-up, and under ASan the daemon exits leak-free.
 *
 * The faults: 5xx storms, 429 with Retry-After, GOAWAY mid-stream,
 * RST_STREAM, TLS handshake failures, connection refused (the mock stopped
 * and started again on the same port) and a 30-second stall of some tokens
 * with a short [push] request_timeout while the others keep flowing.
 * Rules carry for_ms, so the mock lifts each fault itself on time.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* Users per round; each has an APNs and an FCM device: two jobs an event. */
#define USERS 8
/* [push] backoff for every case: attempt_bound() is computed from these. */
#define BACKOFF_BASE 1
#define BACKOFF_MAX  2
/* Length of a fault, seconds (the stall has its own). */
#define FAULT_SECONDS 5
#define STALL_SECONDS 30
/* Measured under ASan: waiting on its timers through these faults the
 * daemon used 0.1 to 2.6% of a core; with a claim loop that never rests
 * (claim_done kicking itself) 75%. */
#define CPU_MAX_PERCENT 10.0
/* RSS growth allowed from the warm-up to after the fault. */
#define RSS_SLACK_KB (4 * 1024)
/* libcurl (7.88, lib/transfer.c CONN_MAX_RETRIES) sends a request refused
 * by GOAWAY or REFUSED_STREAM, or cut off on a reused connection before
 * any answer, again on a fresh connection up to 5 times before it reports
 * a failure: one attempt of ours can reach the mock up to 6 times. */
#define CURL_RESENDS 6

static struct th_daemon d;
static struct th_mock m;
static char mockdir[256];
static char key[128];
/* Every request the mock recorded in this case, across mock restarts. */
static json_t *seen;
static long seen_next; /* the current mock's last record in `seen` */
static int expected_jobs;

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	for (double left = t - mono(); left > 0; left = t - mono())
		usleep(left > 0.2 ? 200000 : (useconds_t)(left * 1e6) + 1);
}

/* ---- the daemon and the mock -------------------------------------------- */

/*
 * ASan keeps freed memory in a quarantine of up to 256 MiB before reusing
 * it, so under ASan the daemon's RSS would measure how much it allocated,
 * not how much it holds. Cap the quarantine at 1 MiB for the daemons
 * started here (no effect without ASan): use-after-free right after a free
 * is still caught, and the RSS is off by at most that much. Measured on the
 * TLS case: +1.2 MiB without a quarantine, +2.2 MiB with 1 MiB, +3.2 MiB
 * with 4 MiB; repeating the fault five times in one daemon added 0.4 MiB
 * more (the database growing), so the first step is a one-off.
 */
static void cap_asan_quarantine(void)
{
	const char *o = getenv("ASAN_OPTIONS");
	char buf[2048];

	if (o && strstr(o, "quarantine_size_mb"))
		return;
	snprintf(buf, sizeof(buf), "%s%squarantine_size_mb=1", o ? o : "",
		 o && *o ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
}

static void make_key(void)
{
	ck_assert_int_eq(th_make_key(&d, "t", "ingest", key, sizeof(key)), 0);
}

static void start(const char *push_extra)
{
	char app[4096], extra[8192];

	seen = json_array();
	seen_next = 0;
	expected_jobs = 0;
	ck_assert_int_eq(th_tmpdir(mockdir, sizeof(mockdir)), 0);
	ck_assert_msg(th_mock_start(&m, mockdir) == 0, "pr-mock did not start");
	th_mock_app_conf(&m, app, sizeof(app));
	cap_asan_quarantine();
	/* No push goes dead however often it is tried: too many tries show
	 * up as such (attempt_bound()), not as a push missing. */
	snprintf(extra, sizeof(extra),
		 "[push]\nbackoff_base = %d\nbackoff_max = %d\n"
		 "max_attempts = 1000\n%s\n%s\n",
		 BACKOFF_BASE, BACKOFF_MAX, push_extra ? push_extra : "", app);
	ck_assert_msg(th_daemon_start(&d, NULL, extra) == 0,
		      "pushrelayd did not start; see %s", d.log);
	make_key();
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
	th_mock_cleanup(&m, mockdir);
	json_decref(seen);
	seen = NULL;
}

static long call(const char *method, const char *path, const char *body)
{
	char auth[200];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	ck_assert_int_eq(th_request(&d, TH_H1, method, path, body, hdrs, &r),
			 0);
	st = r.status;
	th_resp_free(&r);
	return st;
}

static void apns_token(char *out, size_t len, int round, int i)
{
	snprintf(out, len, "%064x", round * 1000 + i + 1);
}

static void fcm_token(char *out, size_t len, int round, int i)
{
	snprintf(out, len, "fcm-%d-%d:APA91bFaults", round, i);
}

/* Users u<round>-0..n-1, each with an APNs and an FCM device. */
static void register_round(int round, int n)
{
	char path[64], body[512], tok[128];

	for (int i = 0; i < n; i++) {
		apns_token(tok, sizeof(tok), round, i);
		snprintf(path, sizeof(path), "/v1/devices/a%d-%d", round, i);
		snprintf(body, sizeof(body),
			 "{\"user\":\"u%d-%d\",\"platform\":\"apns\","
			 "\"token\":\"%s\"}",
			 round, i, tok);
		ck_assert_int_eq(call("PUT", path, body), 201);
		fcm_token(tok, sizeof(tok), round, i);
		snprintf(path, sizeof(path), "/v1/devices/f%d-%d", round, i);
		snprintf(body, sizeof(body),
			 "{\"user\":\"u%d-%d\",\"platform\":\"fcm\","
			 "\"token\":\"%s\"}",
			 round, i, tok);
		ck_assert_int_eq(call("PUT", path, body), 201);
	}
}

/* One event for each of users first..n-1 of a round: two jobs each. */
static void post_round(const char *tag, int round, int first, int n)
{
	char body[512];

	for (int i = first; i < n; i++) {
		snprintf(body, sizeof(body),
			 "{\"id\":\"%s-%d-%d\",\"user\":\"u%d-%d\","
			 "\"payload\":{\"x\":1},\"push\":{\"mode\":\"alert\","
			 "\"title\":\"t\",\"body\":\"hello\"}}",
			 tag, round, i, round, i);
		ck_assert_int_eq(call("POST", "/v1/events", body), 202);
		expected_jobs += 2;
	}
}

static size_t sink_cb(char *p, size_t size, size_t n, void *arg)
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

/* GET /mock/requests?after=N as JSON; fails the test with the reason. */
static json_t *mock_requests(long after)
{
	char url[256], err[CURL_ERROR_SIZE] = "";
	struct th_resp r = {0};
	CURL *h = curl_easy_init();
	CURLcode rc;
	json_t *doc;

	ck_assert_ptr_nonnull(h);
	snprintf(url, sizeof(url),
		 "https://127.0.0.1:%d/mock/requests?after=%ld&limit=10000",
		 m.port, after);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_CAINFO, m.cert);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
	curl_easy_cleanup(h);
	doc = rc == CURLE_OK && r.status == 200
		  ? json_loadb(r.body ? r.body : "", r.len, 0, NULL)
		  : NULL;
	if (!doc) {
		char *log = th_read_file(m.log);

		ck_abort_msg("GET /mock/requests: %s %s, status %ld, %zu "
			     "bytes; the mock is %s; its log: %s",
			     curl_easy_strerror(rc), err, r.status, r.len,
			     th_alive(m.pid) ? "running" : "gone",
			     log ? log : "-");
		free(log);
	}
	free(r.body);
	return doc;
}

/* Append what the mock recorded since the last call to `seen`; returns
 * the mock's newest record number. */
static long collect(void)
{
	json_t *doc = mock_requests(seen_next), *r;
	size_t i;

	json_array_foreach(json_object_get(doc, "requests"), i, r)
	    json_array_append(seen, r);
	seen_next = (long)json_integer_value(json_object_get(doc, "next"));
	json_decref(doc);
	return seen_next;
}

static long long mock_stat(const char *name)
{
	json_t *doc = th_mock_stats(&m);
	long long v;

	ck_assert_ptr_nonnull(doc);
	v = json_integer_value(json_object_get(doc, name));
	json_decref(doc);
	return v;
}

/* ---- measurements --------------------------------------------------- */

/* utime + stime of a process (all threads), in seconds. */
static double cpu_seconds(pid_t pid)
{
	char path[64], *text, *p;
	unsigned long long ut = 0, st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	text = th_read_file(path);
	ck_assert_ptr_nonnull(text);
	/* Fields 14 and 15, counted after the ")" that ends field 2. */
	p = strrchr(text, ')');
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
				"%llu %llu",
				&ut, &st),
			 2);
	free(text);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Open file descriptors of a process. */
static int fd_count(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *dp;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dp = opendir(path);
	ck_assert_ptr_nonnull(dp);
	for (e = readdir(dp); e; e = readdir(dp))
		n += e->d_name[0] != '.';
	closedir(dp);
	return n;
}

/* A gauge from the daemon's /metrics ("name value" line), -1 if absent. */
static long long metric(const char *name)
{
	struct th_resp r;
	char needle[256];
	const char *p;
	long long v = -1;

	snprintf(needle, sizeof(needle), "\n%s ", name);
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &r), 0);
	p = strstr(r.body, needle);
	if (p)
		v = strtoll(p + strlen(needle), NULL, 10);
	th_resp_free(&r);
	return v;
}

/*
 * The most attempts one push can make in a window of w seconds when every
 * attempt fails, each answer coming `latency` whole seconds or more after
 * its request. dispatch.c's backoff() makes attempt k+1 due
 * ceil(delay) (+ 1 with a Retry-After) seconds after attempt k's answer,
 * counted in whole seconds of the clock, where delay is
 * min(base * 2^(k-1), max) jittered down to half at worst, or the
 * Retry-After when longer; claims compare whole seconds. So attempt k+1 is
 * claimed at a clock second at least latency + that gap after attempt k's,
 * and a window of w seconds spans ceil(w) + 1 clock seconds.
 */
static int attempt_bound(double w, long retry_after, long latency)
{
	long span = (long)ceil(w), secs = 0;
	int n = 0;

	for (int k = 1; secs <= span; k++) {
		double delay = BACKOFF_BASE * pow(2.0, k - 1);
		long gap;

		if (delay > BACKOFF_MAX)
			delay = BACKOFF_MAX;
		gap = (long)ceil(delay / 2);
		if (retry_after > 0 && retry_after + 1 > gap)
			gap = retry_after + 1;
		n++;
		secs += latency + gap;
	}
	return n;
}

/* A fault window: from before the fault to after it was lifted. */
struct window {
	double t0, t1;
	double cpu0, cpu1;
	long n0, n1; /* mock record numbers (this mock's) */
};

static void window_open(struct window *w)
{
	w->n0 = collect();
	w->cpu0 = cpu_seconds(d.pid);
	w->t0 = mono();
}

static void window_close(struct window *w, int collect_records)
{
	w->t1 = mono();
	w->cpu1 = cpu_seconds(d.pid);
	w->n1 = collect_records ? collect() : w->n0;
}

static double window_cpu_percent(const struct window *w)
{
	return 100.0 * (w->cpu1 - w->cpu0) / (w->t1 - w->t0);
}

/* Requests of a kind ("apns", "fcm", "oauth") recorded in the window. */
static int window_requests(const struct window *w, const char *kind)
{
	json_t *r;
	size_t i;
	int n = 0;

	json_array_foreach(seen, i, r)
	{
		long no = (long)json_integer_value(json_object_get(r, "n"));
		const char *k = json_string_value(json_object_get(r, "kind"));

		if (no > w->n0 && no <= w->n1 && k && strcmp(k, kind) == 0)
			n++;
	}
	return n;
}

/* ---- the store ------------------------------------------------------ */

static sqlite3 *db_open(void)
{
	char path[512];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/pushrelay.db", d.dir);
	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int db_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int v = -1;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* Wait until the store holds the expected_jobs jobs and at most `left` of
 * them are not 'sent' yet; returns the seconds it took. */
static double wait_sent(int left, double timeout)
{
	double start = mono(), end = start + timeout;
	int total = 0, sent = 0;

	for (;;) {
		sqlite3 *db = db_open();

		total = db_int(db, "SELECT count(*) FROM push_jobs");
		sent = db_int(db, "SELECT count(*) FROM push_jobs"
				  " WHERE state = 'sent'");
		sqlite3_close(db);
		if (total == expected_jobs && total - sent <= left)
			return mono() - start;
		if (mono() > end)
			break;
		usleep(100000);
	}
	ck_abort_msg("after %.0f s: %d jobs (want %d), %d sent; see %s",
		     timeout, total, expected_jobs, sent, d.log);
	return -1;
}

static const char *hdr(json_t *r, const char *name)
{
	return json_string_value(
	    json_object_get(json_object_get(r, "headers"), name));
}

/* The FCM record's message.token and message.data.message_id. */
static int fcm_is(json_t *r, const char *token, const char *msg_id)
{
	json_t *body =
	    json_loads(json_string_value(json_object_get(r, "body")), 0, NULL);
	json_t *msg = json_object_get(body, "message");
	const char *t = json_string_value(json_object_get(msg, "token"));
	const char *id = json_string_value(
	    json_object_get(json_object_get(msg, "data"), "message_id"));
	int yes = t && id && strcmp(t, token) == 0 && strcmp(id, msg_id) == 0;

	json_decref(body);
	return yes;
}

static int is_200_send(json_t *r, const char *kind)
{
	const char *k = json_string_value(json_object_get(r, "kind"));

	return k && strcmp(k, kind) == 0 &&
	       json_integer_value(json_object_get(r, "status")) == 200;
}

/*
 * Every job is 'sent', the store recorded one 200 for it, and the mock
 * answered 200 exactly once for it; the mock answered no other 200.
 */
static void check_exactly_once(void)
{
	sqlite3 *db = db_open();
	sqlite3_stmt *s = NULL;
	int jobs = 0, apns200 = 0, fcm200 = 0;
	json_t *r;
	size_t i;

	collect();
	ck_assert_int_eq(
	    sqlite3_prepare_v2(
		db,
		"SELECT p.id, p.state, p.apns_id, v.platform, v.token,"
		" m.ext_id, (SELECT count(*) FROM push_attempts a"
		" WHERE a.job_id = p.id AND a.status = 200)"
		" FROM push_jobs p JOIN devices v ON v.id = p.device_id"
		" LEFT JOIN messages m ON m.id = p.message_id ORDER BY p.id",
		-1, &s, NULL),
	    SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(s, 0);
		const char *state = (const char *)sqlite3_column_text(s, 1);
		const char *apns_id = (const char *)sqlite3_column_text(s, 2);
		const char *platform = (const char *)sqlite3_column_text(s, 3);
		const char *token = (const char *)sqlite3_column_text(s, 4);
		const char *ext = (const char *)sqlite3_column_text(s, 5);
		int oks = 0;

		jobs++;
		ck_assert_msg(state && strcmp(state, "sent") == 0,
			      "job %lld is %s", id, state ? state : "?");
		ck_assert_msg(sqlite3_column_int(s, 6) == 1,
			      "job %lld: %d attempts recorded as sent", id,
			      sqlite3_column_int(s, 6));
		ck_assert_ptr_nonnull(platform);
		ck_assert_ptr_nonnull(token);
		ck_assert_ptr_nonnull(ext);
		json_array_foreach(seen, i, r)
		{
			if (strcmp(platform, "apns") == 0 &&
			    is_200_send(r, "apns")) {
				const char *rid = hdr(r, "apns-id");
				const char *rt = json_string_value(
				    json_object_get(r, "token"));

				if (apns_id && rid &&
				    strcasecmp(rid, apns_id) == 0) {
					ck_assert_str_eq(rt, token);
					oks++;
				}
			} else if (strcmp(platform, "fcm") == 0 &&
				   is_200_send(r, "fcm") &&
				   fcm_is(r, token, ext)) {
				oks++;
			}
		}
		ck_assert_msg(oks == 1, "job %lld (%s %s): sent %d times", id,
			      platform, ext, oks);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	ck_assert_int_eq(jobs, expected_jobs);
	json_array_foreach(seen, i, r)
	{
		apns200 += is_200_send(r, "apns");
		fcm200 += is_200_send(r, "fcm");
	}
	ck_assert_int_eq(apns200 + fcm200, expected_jobs);
	ck_assert_int_eq(apns200, fcm200);
}

/* ---- the shape of every case ------------------------------------------- */

struct report {
	const char *name;
	struct window w;
	/* Requests the mock saw in the window, and the most backoff allows
	 * (-1: the mock was down); OAuth requests. */
	int pushes, push_bound, oauth;
	int conns; /* connections the daemon opened to the mock, -1 unknown */
	/* Attempts the store recorded for the fault round's pushes from the
	 * fault's start until they were all sent: the most for one push,
	 * the total, and the most one push may make in that time. */
	int att_max, att_total, att_bound;
	long latency; /* whole seconds each failed attempt took at least */
	long retry_after;
	long rss0, rss1;
	int fds0, fds1;
	double drained; /* mono() when the fault round was all sent */
};

/* Attempts recorded for the pushes of messages whose id is LIKE pattern:
 * the most for one push and the total. */
static void store_attempts(const char *like, int *max, int *total)
{
	sqlite3 *db = db_open();
	sqlite3_stmt *s = NULL;

	*max = *total = 0;
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db,
			       "SELECT count(*) FROM push_attempts a"
			       " JOIN push_jobs p ON p.id = a.job_id"
			       " JOIN messages m ON m.id = p.message_id"
			       " WHERE m.ext_id LIKE ?1 GROUP BY a.job_id",
			       -1, &s, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(s, 1, like, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		int n = sqlite3_column_int(s, 0);

		*total += n;
		if (n > *max)
			*max = n;
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* No descriptor left behind: at most the pool of connections it may keep
 * (APNs and FCM, [push] connections = 2 each) more than after the
 * warm-up. */
#define FD_SLACK 4

/* Two rounds of pushes: connections, tokens, caches and the heap settle;
 * then the RSS and descriptors to compare with. Registers the devices of
 * rounds 0..3. */
static void warm_up(struct report *rep)
{
	for (int round = 0; round < 4; round++)
		register_round(round, USERS);
	post_round("warm", 0, 0, USERS);
	wait_sent(0, 20);
	post_round("warm", 1, 0, USERS);
	wait_sent(0, 20);
	usleep(500000);
	rep->rss0 = th_rss_kb(d.pid);
	rep->fds0 = fd_count(d.pid);
}

/* After the fault: everything drains, a new round flows, then the checks
 * that hold for every case. */
static void finish_case(struct report *rep, double drain_timeout)
{
	double cpu = window_cpu_percent(&rep->w), span;
	int st;

	wait_sent(0, drain_timeout);
	rep->drained = mono();
	span = rep->drained - rep->w.t0;
	store_attempts("fault-%", &rep->att_max, &rep->att_total);
	rep->att_bound = attempt_bound(span, rep->retry_after, rep->latency);
	post_round("after", 0, 0, USERS);
	wait_sent(0, 20);
	usleep(500000);
	rep->rss1 = th_rss_kb(d.pid);
	rep->fds1 = fd_count(d.pid);
	fprintf(stderr,
		"faults: %s: window %.1f s: %d push requests at the mock "
		"(bound %d), %d connections, %d oauth, cpu %.1f%%; drained "
		"%.1f s after the fault began: attempts %d in all, at most %d "
		"for one push (bound %d); rss %ld -> %ld KiB (%+ld), fds %d "
		"-> %d\n",
		rep->name, rep->w.t1 - rep->w.t0, rep->pushes, rep->push_bound,
		rep->conns, rep->oauth, cpu, span, rep->att_total, rep->att_max,
		rep->att_bound, rep->rss0, rep->rss1, rep->rss1 - rep->rss0,
		rep->fds0, rep->fds1);
	check_exactly_once();
	ck_assert_msg(rep->att_max <= rep->att_bound,
		      "a push was tried %d times in %.1f s, more than the %d "
		      "the backoff allows",
		      rep->att_max, span, rep->att_bound);
	ck_assert_msg(rep->push_bound < 0 || rep->pushes <= rep->push_bound,
		      "%d push requests in %.1f s, more than the %d the "
		      "backoff allows",
		      rep->pushes, rep->w.t1 - rep->w.t0, rep->push_bound);
	/* Each connection carried at least one request, or failed its
	 * handshake for one. */
	ck_assert_msg(rep->push_bound < 0 || rep->conns <= rep->push_bound,
		      "%d connections in %.1f s", rep->conns,
		      rep->w.t1 - rep->w.t0);
	ck_assert_msg(cpu < CPU_MAX_PERCENT, "%.1f%% CPU during the fault",
		      cpu);
	ck_assert_msg(rep->rss1 - rep->rss0 < RSS_SLACK_KB,
		      "RSS grew from %ld to %ld KiB", rep->rss0, rep->rss1);
	ck_assert_msg(rep->fds1 - rep->fds0 <= FD_SLACK,
		      "open descriptors went from %d to %d", rep->fds0,
		      rep->fds1);
	/* The dispatcher's count of pushes in flight came back to zero. */
	ck_assert_int_eq(metric("pushrelay_pushes_in_flight"), 0);
	/* A clean exit; under ASan, without leaks. */
	st = th_daemon_stop(&d, SIGTERM, 20);
	ck_assert_msg(st == 0, "pushrelayd exited %d; see %s", st, d.log);
}

/* The common case: a fault given as mock rules (each with for_ms), the
 * fault round's events posted while it lasts. curl_resends: how many
 * requests one attempt may make (see CURL_RESENDS). */
static void run_rule_fault(struct report *rep, const char *const *rules,
			   int curl_resends)
{
	long long conns0;
	double lifted;
	size_t n = 0;

	warm_up(rep);
	conns0 = mock_stat("connections");
	window_open(&rep->w);
	for (; rules[n]; n++)
		ck_assert_int_eq(th_mock_script(&m, rules[n]), 0);
	/* The last rule (for_ms from when the mock took it) is gone by: */
	lifted = mono() + FAULT_SECONDS + 0.3;
	post_round("fault", 2, 0, USERS);
	sleep_until(lifted);
	window_close(&rep->w, 1);
	/* Less the test's own: this GET, two collects and the rules. */
	rep->conns = (int)(mock_stat("connections") - conns0 - 3 - (long)n);
	rep->pushes =
	    window_requests(&rep->w, "apns") + window_requests(&rep->w, "fcm");
	rep->oauth = window_requests(&rep->w, "oauth");
	rep->push_bound = 2 * USERS *
			  attempt_bound(rep->w.t1 - rep->w.t0, rep->retry_after,
					rep->latency) *
			  curl_resends;
}

#define STR_(s)	  #s
#define STR(s)	  STR_(s)
#define FOR_MS(s) STR(s) "000"

/* ---- the cases ----------------------------------------------------------- */

START_TEST(test_5xx_storm)
{
	static const char *const rules[] = {
	    "{\"token\":\"*\",\"kind\":\"apns\",\"status\":503,"
	    "\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    "{\"token\":\"*\",\"kind\":\"fcm\",\"status\":500,"
	    "\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    NULL};
	struct report rep = {.name = "5xx storm"};

	start(NULL);
	run_rule_fault(&rep, rules, 1);
	/* The storm was answered: every push of the round saw a 5xx. */
	ck_assert_int_ge(rep.pushes, 2 * USERS);
	finish_case(&rep, 20);
}
END_TEST

START_TEST(test_429_retry_after)
{
	static const char *const rules[] = {
	    "{\"token\":\"*\",\"status\":429,\"retry_after\":3,"
	    "\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    NULL};
	struct report rep = {.name = "429 + Retry-After", .retry_after = 3};
	json_t *r, *q;
	size_t i, k;

	start(NULL);
	run_rule_fault(&rep, rules, 1);
	ck_assert_int_ge(rep.pushes, 2 * USERS);
	finish_case(&rep, 20);
	/* Each push waited out the Retry-After between its tries. */
	json_array_foreach(seen, i, r)
	{
		const char *tok =
		    json_string_value(json_object_get(r, "token"));
		long long at = json_integer_value(json_object_get(r, "at"));

		if (json_integer_value(json_object_get(r, "status")) != 429)
			continue;
		json_array_foreach(seen, k, q)
		{
			const char *t2 =
			    json_string_value(json_object_get(q, "token"));
			long long at2 =
			    json_integer_value(json_object_get(q, "at"));

			if (k <= i || !tok || !t2 || strcmp(tok, t2) != 0)
				continue;
			ck_assert_msg(at2 - at >= 2900,
				      "%s tried again %lld ms after a 429 "
				      "with Retry-After: 3",
				      tok, at2 - at);
			break;
		}
	}
}
END_TEST

START_TEST(test_goaway_mid_stream)
{
	/* Every push is held 300 ms, so many are in flight on a connection
	 * when the GOAWAY comes: APNs pushes are refused (GOAWAY's last
	 * stream below them), FCM ones are covered by it and answered 200,
	 * refusing the later streams of their connection. */
	static const char *const rules[] = {
	    "{\"token\":\"*\",\"kind\":\"apns\",\"action\":\"goaway\","
	    "\"delay_ms\":300,\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    "{\"token\":\"*\",\"kind\":\"fcm\",\"action\":\"goaway\","
	    "\"status\":200,\"delay_ms\":300,"
	    "\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    NULL};
	struct report rep = {.name = "GOAWAY mid-stream"};

	start(NULL);
	run_rule_fault(&rep, rules, CURL_RESENDS);
	ck_assert_int_ge(rep.pushes, 2 * USERS);
	finish_case(&rep, 20);
}
END_TEST

START_TEST(test_rst_stream)
{
	/* APNs streams are reset with INTERNAL_ERROR (a failure for the
	 * dispatcher to retry), FCM ones with REFUSED_STREAM (which libcurl
	 * first sends again itself). */
	static const char *const rules[] = {
	    "{\"token\":\"*\",\"kind\":\"apns\",\"action\":\"rst\","
	    "\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    "{\"token\":\"*\",\"kind\":\"fcm\",\"action\":\"rst\","
	    "\"error_code\":7,\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    NULL};
	struct report rep = {.name = "RST_STREAM"};

	start(NULL);
	run_rule_fault(&rep, rules, CURL_RESENDS);
	ck_assert_int_ge(rep.pushes, 2 * USERS);
	finish_case(&rep, 20);
}
END_TEST

START_TEST(test_tls_handshake_failures)
{
	/* The drop rule cuts the connections the warm-up left open; every
	 * new one fails its handshake until the fault ends. The TLS rule
	 * goes last: the control API is refused with it. */
	static const char *const rules[] = {
	    "{\"token\":\"*\",\"action\":\"drop\","
	    "\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    "{\"token\":\"*\",\"kind\":\"tls\",\"action\":\"fail\","
	    "\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    NULL};
	struct report rep = {.name = "TLS handshake failures"};
	long long tls0, tls;
	int bound;

	start(NULL);
	tls0 = mock_stat("tls_failed");
	run_rule_fault(&rep, rules, CURL_RESENDS);
	tls = mock_stat("tls_failed") - tls0;
	/* A refused handshake is a connection attempt, made by a push
	 * attempt (libcurl does not try a failed handshake again). */
	bound = 2 * USERS * attempt_bound(rep.w.t1 - rep.w.t0, 0, 0);
	fprintf(stderr, "faults: %lld TLS handshakes refused (bound %d)\n", tls,
		bound);
	ck_assert_int_ge(tls, 1);
	ck_assert_int_le(tls, bound);
	finish_case(&rep, 20);
}
END_TEST

START_TEST(test_connection_refused)
{
	struct report rep = {.name = "connection refused", .conns = -1};

	start(NULL);
	warm_up(&rep);
	window_open(&rep.w);
	/* Half the round is in flight (held by the mock) when it goes away,
	 * the other half is posted while nothing listens. */
	ck_assert_int_eq(th_mock_script(&m, "{\"token\":\"*\","
					    "\"delay_ms\":10000}"),
			 0);
	post_round("fault", 2, 0, USERS / 2);
	for (int i = 0; i < 100 && mock_stat("delayed") < USERS; i++)
		usleep(50000);
	ck_assert_int_eq(mock_stat("delayed"), USERS);
	th_mock_stop(&m);
	post_round("fault", 2, USERS / 2, USERS);
	sleep_until(rep.w.t0 + FAULT_SECONDS);
	/* Up again on the same port: a new process, new records. */
	ck_assert_int_eq(th_mock_restart(&m), 0);
	seen_next = 0;
	window_close(&rep.w, 0);
	rep.push_bound = -1; /* nobody listened: the store counts below */
	finish_case(&rep, 20);
	/* Each push was tried (and refused) while the mock was down. */
	ck_assert_int_ge(rep.att_total, 2 * 2 * USERS);
}
END_TEST

/*
 * The OAuth token endpoint down while FCM needs a new access token: FCM
 * pushes are answered 401 for 1.5 s (the token was revoked), so the dispatcher
 * fetches another, and /token answers 503 for the whole fault. FCM pushes
 * wait, the token requests back off (dispatch.c's cool_down(): 2 s,
 * doubling), APNs is not held up, and once /token answers again the FCM
 * pushes go out once each.
 */
START_TEST(test_oauth_outage)
{
	static const char *const rules[] = {
	    "{\"token\":\"*\",\"kind\":\"oauth\",\"status\":503,"
	    "\"for_ms\":" FOR_MS(FAULT_SECONDS) "}",
	    /* Google's answer to a refused access token carries no
	     * FcmError code; UNSPECIFIED_ERROR is the mock's closest. */
	    "{\"token\":\"*\",\"kind\":\"fcm\",\"status\":401,"
	    "\"reason\":\"UNSPECIFIED_ERROR\",\"for_ms\":1500}",
	    NULL};
	struct report rep = {.name = "OAuth outage"};
	int oauth_bound, apns_sent;

	start(NULL);
	run_rule_fault(&rep, rules, 1);
	/* Token requests: one per cool-down step of 2, 4, 8... s over the
	 * window, and never more than one in flight. */
	oauth_bound = 1;
	for (double t = 0, step = 2; t <= rep.w.t1 - rep.w.t0;
	     t += step, step *= 2)
		oauth_bound++;
	/* The outage was met: a token request got its 503 (the retries
	 * after the 401s may come late on a loaded machine, so count up to
	 * the drain). */
	wait_sent(0, 20);
	collect();
	{
		json_t *r;
		size_t i;
		int refused = 0;

		json_array_foreach(seen, i, r)
		{
			const char *k =
			    json_string_value(json_object_get(r, "kind"));

			if ((long)json_integer_value(json_object_get(r, "n")) >
				rep.w.n0 &&
			    k && strcmp(k, "oauth") == 0 &&
			    json_integer_value(json_object_get(r, "status")) ==
				503)
				refused++;
		}
		ck_assert_msg(refused >= 1, "no token request met the outage");
	}
	ck_assert_msg(rep.oauth <= oauth_bound,
		      "%d token requests in %.1f s, more than the %d the "
		      "cool-down allows",
		      rep.oauth, rep.w.t1 - rep.w.t0, oauth_bound);
	{
		sqlite3 *db = db_open();

		/* APNs went on while FCM waited for its token. */
		apns_sent = db_int(db, "SELECT count(*) FROM push_jobs p"
				       " JOIN messages m ON m.id = p.message_id"
				       " JOIN devices v ON v.id = p.device_id"
				       " WHERE m.ext_id LIKE 'fault-%'"
				       " AND v.platform = 'apns'"
				       " AND p.state = 'sent'");
		sqlite3_close(db);
	}
	ck_assert_int_eq(apns_sent, USERS);
	finish_case(&rep, 20);
}
END_TEST

/*
 * A 30-second stall of two users' tokens (one APNs, one FCM device each)
 * with request_timeout = 3: those pushes time out and are tried again,
 * while the other users' pushes keep flowing; once the stall ends the
 * stalled ones go out.
 */
#define STALLED		2
#define REQUEST_TIMEOUT 3

START_TEST(test_stall_30s)
{
	struct report rep = {
	    .name = "30 s stall", .latency = REQUEST_TIMEOUT, .conns = -1};
	char rule[512], tok[128];
	int stalled_reqs = 0;
	long long stall_end_ms;
	json_t *r;
	size_t i;

	start("request_timeout = " STR(REQUEST_TIMEOUT) "\n");
	warm_up(&rep);
	window_open(&rep.w);
	for (int u = 0; u < STALLED; u++) {
		apns_token(tok, sizeof(tok), 2, u);
		snprintf(rule, sizeof(rule),
			 "{\"token\":\"%s\",\"delay_ms\":30000,"
			 "\"for_ms\":%d}",
			 tok, STALL_SECONDS * 1000);
		ck_assert_int_eq(th_mock_script(&m, rule), 0);
		fcm_token(tok, sizeof(tok), 2, u);
		snprintf(rule, sizeof(rule),
			 "{\"token\":\"%s\",\"delay_ms\":30000,"
			 "\"for_ms\":%d}",
			 tok, STALL_SECONDS * 1000);
		ck_assert_int_eq(th_mock_script(&m, rule), 0);
	}
	post_round("fault", 2, 0, USERS);
	/* The others flow meanwhile: all but the stalled jobs go out. */
	wait_sent(2 * STALLED, 10);
	sleep_until(rep.w.t0 + STALL_SECONDS / 2);
	post_round("during", 3, 0, USERS);
	wait_sent(2 * STALLED, 10);
	{
		sqlite3 *db = db_open();

		ck_assert_int_eq(db_int(db, "SELECT count(*) FROM push_jobs"
					    " WHERE state = 'sent'"),
				 expected_jobs - 2 * STALLED);
		sqlite3_close(db);
	}
	/* Requests made from here on may meet the rules' end (for_ms counts
	 * from when the mock took them) and be answered 200: fine. */
	sleep_until(rep.w.t0 + STALL_SECONDS - 1);
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		stall_end_ms =
		    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	sleep_until(rep.w.t0 + STALL_SECONDS + 0.3);
	window_close(&rep.w, 1);
	/* The stalled tokens' requests, each given up after the timeout. */
	json_array_foreach(seen, i, r)
	{
		long no = (long)json_integer_value(json_object_get(r, "n"));
		const char *t = json_string_value(json_object_get(r, "token"));

		if (no <= rep.w.n0 || no > rep.w.n1 || !t)
			continue;
		for (int u = 0; u < STALLED; u++) {
			char a[128], f[128];

			apns_token(a, sizeof(a), 2, u);
			fcm_token(f, sizeof(f), 2, u);
			if (strcmp(t, a) == 0 || strcmp(t, f) == 0) {
				stalled_reqs++;
				if (json_integer_value(json_object_get(
					r, "at")) < stall_end_ms)
					ck_assert_int_ne(
					    json_integer_value(
						json_object_get(r, "status")),
					    200);
			}
		}
	}
	rep.pushes = stalled_reqs;
	rep.oauth = window_requests(&rep.w, "oauth");
	rep.push_bound = 2 * STALLED *
			 attempt_bound(rep.w.t1 - rep.w.t0, 0, REQUEST_TIMEOUT);
	ck_assert_int_ge(rep.pushes, 2 * STALLED);
	finish_case(&rep, 20);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

int main(void)
{
	Suite *s = suite_create("faults");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* One case each, so that CK_RUN_CASE picks a fault. */
	add(s, "5xx", test_5xx_storm);
	add(s, "429", test_429_retry_after);
	add(s, "goaway", test_goaway_mid_stream);
	add(s, "rst", test_rst_stream);
	add(s, "tls", test_tls_handshake_failures);
	add(s, "oauth", test_oauth_outage);
	add(s, "refused", test_connection_refused);
	add(s, "stall", test_stall_30s);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

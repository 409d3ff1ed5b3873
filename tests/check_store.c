/*
 * check_store.c - the durable queue: group commit through a real ev loop,
 * ingest and fan-out, devices, keys, retention, and the promise that a job
 * answered rv == 0 is stored while a failed one left nothing behind. Each
 * test works on a fresh SQLite file in a temporary directory and reads it
 * back through a second, read-only connection.
 */
#include "autoconf.h"

#include <check.h>
#include <ev.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "provider.h"
#include "pushrelay.h"
#include "store.h"

static char dir[256];
static char dbpath[320];
static struct ev_loop *loop;
static struct pr_config *cfg;
static int64_t now;

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/check_store.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/pushrelay.db", dir);
	loop = ev_loop_new(EVFLAG_AUTO);
	ck_assert_ptr_nonnull(loop);
	cfg = pr_config_new();
	ck_assert_ptr_nonnull(cfg);
	free(cfg->storage_path);
	cfg->storage_path = strdup(dbpath);
	cfg->storage_synchronous = 2;
	cfg->storage_busy_timeout = 5000;
	cfg->storage_commit_batch = 1024;
	cfg->storage_max_pending_jobs = 65536;
	cfg->storage_max_messages = 10000000;
	cfg->storage_max_size = 0;
	cfg->storage_sweep_batch = 5000;
	cfg->storage_history = 86400;
	cfg->push_max_attempts = 12;
	cfg->push_max_age = 86400;
	cfg->push_coalesce_window = 0;
	cfg->push_min_interval = 0;
	cfg->push_claim_batch = 256;
	now = (int64_t)time(NULL);
}

static void teardown(void)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	char path[400];

	pr_config_free(cfg);
	ev_loop_destroy(loop);
	for (size_t i = 0; i < PR_ARRAY_SIZE(sfx); i++) {
		snprintf(path, sizeof(path), "%s%s", dbpath, sfx[i]);
		unlink(path);
	}
	rmdir(dir);
}

static struct pr_store *open_store(void)
{
	char err[256] = "";
	struct pr_store *st = pr_store_new(loop, cfg, err, sizeof(err));

	ck_assert_msg(st != NULL, "pr_store_new: %s", err);
	return st;
}

/* ---- driving jobs ---------------------------------------------------------
 */

static void count_done(struct pr_store_job *job, void *arg)
{
	(void)job;
	(*(int *)arg)++;
}

/* Submit and run the loop until done() ran; returns job->rv. */
static int run_job(struct pr_store *st, struct pr_store_job *job)
{
	int done = 0;

	job->done = count_done;
	job->arg = &done;
	ck_assert_int_eq(pr_store_submit(st, job), PR_OK);
	while (!done)
		ev_run(loop, EVRUN_ONCE);
	return job->rv;
}

static int ingest(struct pr_store *st, struct pr_event *ev, size_t n, char *err,
		  size_t errlen)
{
	struct pr_store_job job = {.op = PR_STORE_INGEST};
	int rv;

	job.events = ev;
	job.n_events = n;
	job.now = now;
	rv = run_job(st, &job);
	if (err)
		snprintf(err, errlen, "%s", job.err);
	ck_assert_ptr_null(job.result);
	return rv;
}

static struct pr_event event(const char *id, const char *user)
{
	struct pr_event ev = {0};

	ev.id = id;
	ev.app = "default";
	ev.user = user;
	ev.payload = "{\"text\":\"hi\"}";
	ev.push = "{\"mode\":\"alert\"}";
	ev.push_mode = PR_PUSH_ALERT;
	ev.created_at = now;
	ev.expires_at = now + 3600;
	ev.push_delay = 5;
	return ev;
}

static int ingest1(struct pr_store *st, const char *id, const char *user,
		   enum pr_event_status *status, int *targets)
{
	struct pr_event ev = event(id, user);
	int rv = ingest(st, &ev, 1, NULL, 0);

	if (status)
		*status = ev.status;
	if (targets)
		*targets = ev.n_targets;
	return rv;
}

/* PUT a device; returns the result (caller decrefs) or NULL on error. */
static json_t *put_device_on(struct pr_store *st, const char *device,
			     const char *user, const char *token,
			     const char *platform)
{
	struct pr_store_job job = {.op = PR_STORE_DEVICE_PUT};

	job.device.app = "default";
	job.device.device_id = device;
	job.device.user = user;
	job.device.platform = platform;
	job.device.token = token;
	job.device.environment = "production";
	job.device.now = now;
	ck_assert_msg(run_job(st, &job) == PR_OK, "device put: %s", job.err);
	ck_assert_ptr_nonnull(job.result);
	return job.result;
}

static json_t *put_device(struct pr_store *st, const char *device,
			  const char *user, const char *token)
{
	return put_device_on(st, device, user, token, "apns");
}

static json_t *simple(struct pr_store *st, enum pr_store_op op, int *rv)
{
	struct pr_store_job job = {.op = op};

	job.now = now;
	*rv = run_job(st, &job);
	return job.result;
}

static json_t *count(struct pr_store *st)
{
	int rv;
	json_t *c = simple(st, PR_STORE_COUNT, &rv);

	ck_assert_int_eq(rv, PR_OK);
	ck_assert_ptr_nonnull(c);
	return c;
}

static long long count_of(struct pr_store *st, const char *what)
{
	json_t *c = count(st);
	long long n = json_integer_value(json_object_get(c, what));

	json_decref(c);
	return n;
}

static long long pushes_in(struct pr_store *st, const char *state)
{
	json_t *c = count(st);
	long long n = json_integer_value(
	    json_object_get(json_object_get(c, "push_jobs"), state));

	json_decref(c);
	return n;
}

/* ---- reading the file directly --------------------------------------------
 */

/* One integer from a read-only second connection; -1 when no row. */
static long long q1(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long q1(const char *fmt, ...)
{
	char sql[1024];
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	long long v = -1;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	rc = sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL);
	ck_assert_int_eq(rc, SQLITE_OK);
	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_type(s, 0) == SQLITE_NULL
			? -2
			: sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* One text value from a read-only second connection, into out ("" when
 * no row, "NULL" for NULL). */
static void qs(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void qs(char *out, size_t outlen, const char *fmt, ...)
{
	char sql[1024];
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	rc = sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL);
	ck_assert_int_eq(rc, SQLITE_OK);
	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(s, 0);

		snprintf(out, outlen, "%s", v ? (const char *)v : "NULL");
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* Write through a second connection (the store must be closed). */
static void exec_sql(const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc;

	rc = sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL);
	ck_assert_int_eq(rc, SQLITE_OK);
	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
	sqlite3_close(db);
}

/* The device's inbox as "ext:seq,ext:seq" in seq order. */
static void inbox(const char *device, char *out, size_t outlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	size_t len = 0;

	out[0] = '\0';
	ck_assert_int_eq(
	    sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db,
			       "SELECT m.ext_id, d.seq FROM deliveries d"
			       " JOIN devices v ON v.id = d.device_id"
			       " JOIN messages m ON m.id = d.message_id"
			       " WHERE v.device_id = ?1 ORDER BY d.seq",
			       -1, &s, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(s, 1, device, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW && len < outlen)
		len += (size_t)snprintf(out + len, outlen - len, "%s%s:%lld",
					len ? "," : "",
					(const char *)sqlite3_column_text(s, 0),
					sqlite3_column_int64(s, 1));
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* ---- tests ----------------------------------------------------------------
 */

START_TEST(test_schema_created)
{
	struct pr_store *st = open_store();
	struct stat sb;

	pr_store_free(st);
	ck_assert_int_eq(q1("PRAGMA user_version"), 3);
	ck_assert_int_eq(q1("SELECT count(*) FROM pragma_table_info('devices')"
			    " WHERE name = 'last_push_at'"),
			 1);
	ck_assert_int_eq(q1("SELECT count(*) FROM sqlite_schema WHERE "
			    "type = 'table' AND name IN ('apps', 'api_keys', "
			    "'devices', 'messages', 'deliveries', "
			    "'push_jobs', 'push_attempts', "
			    "'invalid_tokens')"),
			 8);
	ck_assert_int_eq(stat(dbpath, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0077, 0);
	/* WAL is the file's own mode: another connection sees it. */
	{
		sqlite3 *db;
		sqlite3_stmt *s;

		ck_assert_int_eq(
		    sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL),
		    SQLITE_OK);
		sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
		ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
		ck_assert_str_eq((const char *)sqlite3_column_text(s, 0),
				 "wal");
		sqlite3_finalize(s);
		sqlite3_close(db);
	}
}
END_TEST

START_TEST(test_open_errors)
{
	char err[256] = "";
	char path[400];

	/* A missing directory is named, not created. */
	snprintf(path, sizeof(path), "%s/nope/pushrelay.db", dir);
	free(cfg->storage_path);
	cfg->storage_path = strdup(path);
	ck_assert_ptr_null(pr_store_new(loop, cfg, err, sizeof(err)));
	ck_assert_msg(strstr(err, "does not exist") != NULL, "%s", err);

	/* A schema from a newer pushrelayd is refused. */
	free(cfg->storage_path);
	cfg->storage_path = strdup(dbpath);
	pr_store_free(open_store());
	exec_sql("PRAGMA user_version = 99");
	err[0] = '\0';
	ck_assert_ptr_null(pr_store_new(loop, cfg, err, sizeof(err)));
	ck_assert_msg(strstr(err, "schema version 99") != NULL, "%s", err);
}
END_TEST

START_TEST(test_ingest_queued_and_duplicate)
{
	struct pr_store *st = open_store();
	enum pr_event_status status;
	int targets;
	json_t *r;

	r = put_device(st, "phone", "alice", "tok-1");
	ck_assert(json_is_true(json_object_get(r, "created")));
	json_decref(r);

	ck_assert_int_eq(ingest1(st, "m-1", "alice", &status, &targets), 0);
	ck_assert_int_eq(status, PR_EVENT_QUEUED);
	ck_assert_int_eq(targets, 1);
	ck_assert_int_eq(ingest1(st, "m-1", "alice", &status, &targets), 0);
	ck_assert_int_eq(status, PR_EVENT_DUPLICATE);
	ck_assert_int_eq(targets, 0);

	/* A duplicate inside one batch is a duplicate, not an error. */
	{
		struct pr_event ev[2] = {event("m-2", "alice"),
					 event("m-2", "alice")};

		ck_assert_int_eq(ingest(st, ev, 2, NULL, 0), PR_OK);
		ck_assert_int_eq(ev[0].status, PR_EVENT_QUEUED);
		ck_assert_int_eq(ev[1].status, PR_EVENT_DUPLICATE);
	}
	ck_assert_int_eq(count_of(st, "messages"), 2);
	ck_assert_int_eq(count_of(st, "deliveries"), 2);
	ck_assert_int_eq(pr_store_health(st), 0);
	ck_assert_uint_ge(pr_store_stats(st)->commits, 1);
	pr_store_free(st);

	/* Payload and push hints are stored verbatim. */
	ck_assert_int_eq(q1("SELECT count(*) FROM messages WHERE ext_id = "
			    "'m-1' AND payload = '{\"text\":\"hi\"}' AND "
			    "push_mode = 2 AND targets IS NULL"),
			 1);
}
END_TEST

START_TEST(test_reopen_keeps_data)
{
	struct pr_store *st = open_store();
	enum pr_event_status status;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", &status, NULL), 0);
	pr_store_free(st);

	st = open_store();
	ck_assert_int_eq(count_of(st, "messages"), 1);
	ck_assert_int_eq(count_of(st, "devices"), 1);
	ck_assert_int_eq(ingest1(st, "m-1", "alice", &status, NULL), 0);
	ck_assert_int_eq(status, PR_EVENT_DUPLICATE);
	ck_assert_int_eq(ingest1(st, "m-2", "alice", &status, NULL), 0);
	ck_assert_int_eq(status, PR_EVENT_QUEUED);
	pr_store_free(st);
	ck_assert_int_eq(q1("SELECT next_seq FROM devices"), 3);
}
END_TEST

START_TEST(test_limit_is_all_or_nothing)
{
	struct pr_store *st;
	struct pr_event ev[3] = {event("b-1", "alice"), event("b-2", "alice"),
				 event("b-3", "alice")};
	char err[160];

	cfg->storage_max_messages = 4;
	st = open_store();
	json_decref(put_device(st, "phone", "alice", "tok-1"));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	ck_assert_int_eq(ingest1(st, "m-2", "alice", NULL, NULL), 0);

	ck_assert_int_eq(ingest(st, ev, 3, err, sizeof(err)), PR_ERR_LIMIT);
	ck_assert_msg(strstr(err, "limit") != NULL, "%s", err);
	ck_assert_int_eq(count_of(st, "messages"), 2);
	ck_assert_int_eq(count_of(st, "deliveries"), 2);
	/* A duplicate at the bound is still a duplicate. */
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	/* Two fit; the device's seqs show no gap where the batch failed. */
	ck_assert_int_eq(ingest(st, ev, 2, NULL, 0), PR_OK);
	ck_assert_int_eq(count_of(st, "messages"), 4);
	ck_assert_int_eq(ingest1(st, "m-5", "alice", NULL, NULL), PR_ERR_LIMIT);
	ck_assert_int_eq(pr_store_health(st), 0); /* a bound, not a failure */
	ck_assert_uint_eq(pr_store_stats(st)->commit_errors, 0);
	/* A reload raises the bound in place. */
	cfg->storage_max_messages = 5;
	ck_assert_int_eq(ingest1(st, "m-5", "alice", NULL, NULL), PR_OK);
	pr_store_free(st);
	{
		char box[256];

		inbox("phone", box, sizeof(box));
		ck_assert_str_eq(box, "m-1:1,m-2:2,b-1:3,b-2:4,m-5:5");
	}
}
END_TEST

/* A job that fails after it wrote, between two good ones in the same
 * transaction: the good ones are kept, nothing of the bad one is. */
START_TEST(test_failed_job_inside_a_batch)
{
	struct pr_store *st;
	struct pr_store_job jobs[3];
	struct pr_event a = event("a", "alice"), c = event("c", "alice");
	struct pr_event b[3] = {event("b-1", "alice"), event("b-2", "alice"),
				event("b-3", "alice")};
	char box[256];
	int done = 0;

	cfg->storage_max_messages = 4;
	st = open_store();
	json_decref(put_device(st, "phone", "alice", "tok-1"));
	ck_assert_int_eq(ingest1(st, "first", "alice", NULL, NULL), 0);
	memset(jobs, 0, sizeof(jobs));
	jobs[0].events = &a;
	jobs[0].n_events = 1;
	jobs[1].events = b;
	jobs[1].n_events = 3;
	jobs[2].events = &c;
	jobs[2].n_events = 1;
	for (int i = 0; i < 3; i++) {
		jobs[i].op = PR_STORE_INGEST;
		jobs[i].done = count_done;
		jobs[i].arg = &done;
		ck_assert_int_eq(pr_store_submit(st, &jobs[i]), PR_OK);
	}
	while (done < 3)
		ev_run(loop, EVRUN_ONCE);
	ck_assert_int_eq(jobs[0].rv, PR_OK);
	ck_assert_int_eq(jobs[1].rv, PR_ERR_LIMIT);
	ck_assert_int_eq(jobs[2].rv, PR_OK);
	ck_assert_int_eq(a.status, PR_EVENT_QUEUED);
	ck_assert_int_eq(c.status, PR_EVENT_QUEUED);
	ck_assert_int_eq(c.n_targets, 1);
	ck_assert_int_eq(count_of(st, "messages"), 3);
	/* Later jobs in the same state do the same. */
	ck_assert_int_eq(ingest(st, b, 2, NULL, 0), PR_ERR_LIMIT);
	ck_assert_int_eq(ingest1(st, "d", "alice", NULL, NULL), 0);
	pr_store_free(st);
	inbox("phone", box, sizeof(box));
	ck_assert_str_eq(box, "first:1,a:2,c:3,d:4");
}
END_TEST

START_TEST(test_fanout_seq_per_device)
{
	struct pr_store *st = open_store();
	char id[16], box[256];
	int targets;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	json_decref(put_device(st, "tablet", "alice", "tok-2"));
	json_decref(put_device(st, "other", "bob", "tok-3"));
	for (int i = 1; i <= 4; i++) {
		snprintf(id, sizeof(id), "m-%d", i);
		ck_assert_int_eq(ingest1(st, id, "alice", NULL, &targets), 0);
		ck_assert_int_eq(targets, 2);
	}
	pr_store_free(st);
	inbox("phone", box, sizeof(box));
	ck_assert_str_eq(box, "m-1:1,m-2:2,m-3:3,m-4:4");
	inbox("tablet", box, sizeof(box));
	ck_assert_str_eq(box, "m-1:1,m-2:2,m-3:3,m-4:4");
	inbox("other", box, sizeof(box));
	ck_assert_str_eq(box, "");
}
END_TEST

START_TEST(test_explicit_targets)
{
	struct pr_store *st = open_store();
	static const char *const to[] = {"tablet", "watch", "tablet"};
	struct pr_event ev = event("m-1", "alice");
	char box[256];
	json_t *r;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	json_decref(put_device(st, "tablet", "alice", "tok-2"));
	json_decref(put_device(st, "bobs", "bob", "tok-3"));
	ev.devices = to;
	ev.n_devices = 3;
	ck_assert_int_eq(ingest(st, &ev, 1, NULL, 0), PR_OK);
	ck_assert_int_eq(ev.n_targets, 1);
	/* Another user's device is no target even when named. */
	{
		static const char *const bobs[] = {"bobs"};
		struct pr_event e2 = event("m-2", "alice");

		e2.devices = bobs;
		e2.n_devices = 1;
		ck_assert_int_eq(ingest(st, &e2, 1, NULL, 0), PR_OK);
		ck_assert_int_eq(e2.n_targets, 0);
	}
	/* "watch" registers later and gets m-1; "phone" never does. */
	r = put_device(st, "watch", "alice", "tok-4");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "backlog")), 1);
	json_decref(r);
	pr_store_free(st);
	inbox("tablet", box, sizeof(box));
	ck_assert_str_eq(box, "m-1:1");
	inbox("watch", box, sizeof(box));
	ck_assert_str_eq(box, "m-1:1");
	inbox("phone", box, sizeof(box));
	ck_assert_str_eq(box, "");
	inbox("bobs", box, sizeof(box));
	ck_assert_str_eq(box, "");
	ck_assert_int_eq(q1("SELECT count(*) FROM messages WHERE ext_id = "
			    "'m-1' AND targets = '[\"tablet\",\"watch\","
			    "\"tablet\"]' AND pending_fanout = 1"),
			 1);
}
END_TEST

START_TEST(test_waiting_for_a_device)
{
	struct pr_store *st = open_store();
	struct pr_event ev[2] = {event("old", "carol"), event("new", "carol")};
	char box[256];
	json_t *r;

	ev[0].expires_at = now - 1; /* gone before the device comes */
	ck_assert_int_eq(ingest(st, ev, 2, NULL, 0), PR_OK);
	ck_assert_int_eq(ev[0].n_targets, 0);
	ck_assert_int_eq(ev[1].n_targets, 0);
	ck_assert_int_eq(count_of(st, "pending_fanout"), 2);

	r = put_device(st, "phone", "carol", "tok-1");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "backlog")), 1);
	json_decref(r);
	/* Registering again does not deliver it twice. */
	r = put_device(st, "phone", "carol", "tok-1");
	ck_assert(json_is_false(json_object_get(r, "created")));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "backlog")), 0);
	json_decref(r);
	/* The next message continues the sequence. */
	ck_assert_int_eq(ingest1(st, "later", "carol", NULL, NULL), 0);
	pr_store_free(st);
	inbox("phone", box, sizeof(box));
	ck_assert_str_eq(box, "new:1,later:2");
}
END_TEST

START_TEST(test_push_coalescing)
{
	struct pr_store *st = open_store();
	struct pr_event quiet = event("q-1", "alice");

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	json_decref(put_device(st, "notoken", "alice", NULL));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	ck_assert_int_eq(ingest1(st, "m-2", "alice", NULL, NULL), 0);
	ck_assert_int_eq(ingest1(st, "m-3", "alice", NULL, NULL), 0);
	quiet.push_mode = PR_PUSH_NONE;
	quiet.push = NULL;
	ck_assert_int_eq(ingest(st, &quiet, 1, NULL, 0), PR_OK);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	ck_assert_int_eq(count_of(st, "deliveries"), 8);
	pr_store_free(st);
	ck_assert_int_eq(q1("SELECT count(*) FROM push_jobs p JOIN messages m"
			    " ON m.id = p.message_id WHERE m.ext_id = 'm-3'"
			    " AND p.state = 'pending' AND"
			    " p.next_attempt_at = %lld",
			    (long long)now + 5),
			 1);
}
END_TEST

START_TEST(test_token_moves)
{
	struct pr_store *st = open_store();
	json_t *r;

	json_decref(put_device(st, "d1", "alice", "tok-shared"));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);

	/* The token shows up on bob's device: it moves there. */
	r = put_device(st, "d2", "bob", "tok-shared");
	ck_assert_str_eq(json_string_value(json_object_get(r, "device_id")),
			 "d2");
	ck_assert_str_eq(
	    json_string_value(json_object_get(r, "moved_from_device")), "d1");
	ck_assert_str_eq(
	    json_string_value(json_object_get(r, "moved_from_user")), "alice");
	json_decref(r);
	/* alice's waiting push must not reach bob's phone. */
	ck_assert_int_eq(pushes_in(st, "pending"), 0);
	ck_assert_int_eq(pushes_in(st, "cancelled"), 1);

	/* A device changing user: reported, its inbox dropped. */
	ck_assert_int_eq(ingest1(st, "m-2", "bob", NULL, NULL), 0);
	r = put_device(st, "d2", "carol", "tok-shared");
	ck_assert(json_is_false(json_object_get(r, "created")));
	ck_assert_str_eq(
	    json_string_value(json_object_get(r, "moved_from_user")), "bob");
	ck_assert(json_is_null(json_object_get(r, "moved_from_device")));
	json_decref(r);

	/* Unchanged registration: nothing moved. */
	r = put_device(st, "d2", "carol", "tok-shared");
	ck_assert(json_is_null(json_object_get(r, "moved_from_user")));
	ck_assert(json_is_null(json_object_get(r, "moved_from_device")));
	json_decref(r);
	pr_store_free(st);

	ck_assert_int_eq(q1("SELECT token FROM devices WHERE device_id = "
			    "'d1'"),
			 -2); /* NULL */
	ck_assert_int_eq(q1("SELECT count(*) FROM deliveries d JOIN devices v"
			    " ON v.id = d.device_id WHERE v.device_id = 'd1'"),
			 1); /* d1 keeps its inbox */
	ck_assert_int_eq(q1("SELECT count(*) FROM deliveries d JOIN devices v"
			    " ON v.id = d.device_id WHERE v.device_id = 'd2'"),
			 0);
	ck_assert_int_eq(q1("SELECT count(*) FROM devices WHERE user_id = "
			    "'carol' AND token = 'tok-shared'"),
			 1);
}
END_TEST

START_TEST(test_device_list_and_delete)
{
	struct pr_store *st = open_store();
	struct pr_store_job job = {.op = PR_STORE_DEVICE_LIST};
	json_t *d;
	char stamp[32];
	time_t t = (time_t)now;
	struct tm tm;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	json_decref(put_device(st, "tablet", "alice", "tok-2"));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);

	job.app = "default";
	job.user = "alice";
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	ck_assert_uint_eq(json_array_size(job.result), 2);
	d = json_array_get(job.result, 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "device_id")),
			 "phone");
	ck_assert_str_eq(json_string_value(json_object_get(d, "user")),
			 "alice");
	ck_assert_str_eq(json_string_value(json_object_get(d, "platform")),
			 "apns");
	ck_assert_str_eq(json_string_value(json_object_get(d, "token")),
			 "tok-1");
	ck_assert_str_eq(json_string_value(json_object_get(d, "push")), "ok");
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	ck_assert_str_eq(json_string_value(json_object_get(d, "created_at")),
			 stamp);
	json_decref(job.result);

	job = (struct pr_store_job){.op = PR_STORE_DEVICE_DELETE};
	job.app = "default";
	job.device_id = "phone";
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	ck_assert_int_eq(count_of(st, "devices"), 1);
	ck_assert_int_eq(count_of(st, "deliveries"), 1);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	ck_assert_int_eq(run_job(st, &job), PR_ERR_NOTFOUND);
	job.app = "no-such-app";
	ck_assert_int_eq(run_job(st, &job), PR_ERR_NOTFOUND);

	job = (struct pr_store_job){.op = PR_STORE_DEVICE_LIST};
	job.app = "default";
	job.user = "nobody";
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	ck_assert_uint_eq(json_array_size(job.result), 0);
	json_decref(job.result);
	pr_store_free(st);
}
END_TEST

START_TEST(test_group_commit)
{
	enum { N = 200 };
	struct pr_store *st = open_store();
	struct pr_store_job *jobs = calloc(N, sizeof(*jobs));
	struct pr_event *ev = calloc(N, sizeof(*ev));
	char(*ids)[16] = calloc(N, sizeof(*ids));
	const struct pr_store_stats *stats;
	int done = 0;
	uint64_t before;

	ck_assert_ptr_nonnull(jobs);
	ck_assert_ptr_nonnull(ev);
	ck_assert_ptr_nonnull(ids);
	json_decref(put_device(st, "phone", "alice", "tok-1"));
	stats = pr_store_stats(st);
	before = stats->commits;
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "g-%d", i);
		ev[i] = event(ids[i], "alice");
		jobs[i].op = PR_STORE_INGEST;
		jobs[i].events = &ev[i];
		jobs[i].n_events = 1;
		jobs[i].done = count_done;
		jobs[i].arg = &done;
		ck_assert_int_eq(pr_store_submit(st, &jobs[i]), PR_OK);
	}
	ck_assert_uint_eq(pr_store_pending(st), N);
	while (done < N)
		ev_run(loop, EVRUN_ONCE);
	ck_assert_uint_eq(pr_store_pending(st), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(jobs[i].rv, PR_OK);
	/* One transaction takes what waits: a few commits, not 200. */
	ck_assert_msg(stats->commits - before <= 3, "%llu commits",
		      (unsigned long long)(stats->commits - before));
	ck_assert_uint_ge(stats->jobs, N);
	ck_assert_uint_eq(stats->commit_latency_buckets[11], stats->jobs);
	pr_store_free(st);
	/* Committed in submit order: seq follows the ids. */
	ck_assert_int_eq(q1("SELECT count(*) FROM deliveries d JOIN messages"
			    " m ON m.id = d.message_id WHERE m.ext_id <> "
			    "'g-' || (d.seq - 1)"),
			 0);
	free(jobs);
	free(ev);
	free(ids);
}
END_TEST

START_TEST(test_busy_when_queue_full)
{
	struct pr_store *st;
	struct pr_store_job jobs[5];
	int done = 0;

	cfg->storage_max_pending_jobs = 4;
	st = open_store();
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 5; i++) {
		jobs[i].op = PR_STORE_COUNT;
		jobs[i].done = count_done;
		jobs[i].arg = &done;
	}
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pr_store_submit(st, &jobs[i]), PR_OK);
	ck_assert_int_eq(pr_store_submit(st, &jobs[4]), PR_ERR_BUSY);
	while (done < 4)
		ev_run(loop, EVRUN_ONCE);
	ck_assert_int_eq(pr_store_submit(st, &jobs[4]), PR_OK);
	while (done < 5)
		ev_run(loop, EVRUN_ONCE);
	for (int i = 0; i < 5; i++)
		json_decref(jobs[i].result);
	pr_store_free(st);
}
END_TEST

static char *big_payload(size_t n)
{
	char *p = malloc(n + 1);

	ck_assert_ptr_nonnull(p);
	p[0] = '"';
	for (size_t i = 1; i + 1 < n; i++)
		p[i] = (char)('a' + (i * 7) % 26);
	p[n - 1] = '"';
	p[n] = '\0';
	return p;
}

START_TEST(test_disk_full)
{
	struct pr_store *st;
	char *payload = big_payload(16 * 1024);
	char id[32], err[160] = "";
	int rv = 0, stored = 0;

	cfg->storage_max_size = 512 * 1024;
	st = open_store();
	json_decref(put_device(st, "phone", "alice", "tok-1"));
	for (int i = 0; i < 200; i++) {
		struct pr_event ev;

		snprintf(id, sizeof(id), "big-%d", i);
		ev = event(id, "alice");
		ev.payload = payload;
		rv = ingest(st, &ev, 1, err, sizeof(err));
		if (rv)
			break;
		stored++;
	}
	ck_assert_int_eq(rv, PR_ERR_STORE);
	ck_assert_msg(strstr(err, "full") != NULL, "%s", err);
	ck_assert_int_gt(stored, 5);
	ck_assert_int_eq(pr_store_health(st), PR_ERR_STORE);
	ck_assert_int_eq(count_of(st, "messages"), stored);

	/* A job whose second event does not fit leaves nothing. */
	{
		struct pr_event ev[2] = {event("small", "alice"),
					 event("huge", "alice")};

		ev[1].payload = payload;
		ck_assert_int_eq(ingest(st, ev, 2, err, sizeof(err)),
				 PR_ERR_STORE);
	}
	ck_assert_int_eq(count_of(st, "messages"), stored);

	/* Jobs sharing the failing transaction: rv == 0 exactly for what
	 * is stored, whether the database undid one statement or all. */
	{
		static const char *const names[3] = {"fit-1", "nofit", "fit-2"};
		struct pr_store_job jobs[3];
		struct pr_event ev[3];
		int done = 0;

		memset(jobs, 0, sizeof(jobs));
		for (int i = 0; i < 3; i++) {
			ev[i] = event(names[i], "alice");
			ev[i].payload = i == 1 ? payload : "1";
			jobs[i].op = PR_STORE_INGEST;
			jobs[i].events = &ev[i];
			jobs[i].n_events = 1;
			jobs[i].done = count_done;
			jobs[i].arg = &done;
			ck_assert_int_eq(pr_store_submit(st, &jobs[i]), 0);
		}
		while (done < 3)
			ev_run(loop, EVRUN_ONCE);
		ck_assert_int_eq(jobs[1].rv, PR_ERR_STORE);
		for (int i = 0; i < 3; i++) {
			long long n = q1("SELECT count(*) FROM messages WHERE "
					 "ext_id = '%s'",
					 names[i]);

			ck_assert_int_eq(n, jobs[i].rv == 0);
			if (jobs[i].rv == 0)
				stored++;
		}
	}

	/* More room (a reload changes the live config): the same events
	 * are new, not duplicates. */
	cfg->storage_max_size = 8 * 1024 * 1024;
	{
		struct pr_event ev[2] = {event("small", "alice"),
					 event("huge", "alice")};

		ev[1].payload = payload;
		ck_assert_int_eq(ingest(st, ev, 2, NULL, 0), PR_OK);
		ck_assert_int_eq(ev[0].status, PR_EVENT_QUEUED);
		ck_assert_int_eq(ev[1].status, PR_EVENT_QUEUED);
	}
	snprintf(id, sizeof(id), "big-%d", stored);
	{
		enum pr_event_status status;

		ck_assert_int_eq(ingest1(st, id, "alice", &status, NULL), 0);
		ck_assert_int_eq(status, PR_EVENT_QUEUED);
	}
	ck_assert_int_eq(pr_store_health(st), 0);
	pr_store_free(st);
	/* No gap: the failed jobs took no seq. */
	ck_assert_int_eq(q1("SELECT max(seq) FROM deliveries"), stored + 3);
	ck_assert_int_eq(q1("SELECT count(*) FROM deliveries"), stored + 3);
	free(payload);
}
END_TEST

START_TEST(test_sweep)
{
	struct pr_store *st = open_store();
	struct pr_store_job job = {.op = PR_STORE_SWEEP};
	struct pr_event ev[3] = {event("expired", "alice"),
				 event("live", "alice"), event("done", "bob")};
	int rv;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	json_decref(put_device(st, "bobs", "bob", "tok-2"));
	ev[0].expires_at = now - 10;
	ev[2].created_at = now - 2 * 86400;
	ck_assert_int_eq(ingest(st, ev, 3, NULL, 0), PR_OK);
	ck_assert_int_eq(count_of(st, "messages"), 3);
	/* bob's device goes: "done" is left with no inbox and no push. */
	job.op = PR_STORE_DEVICE_DELETE;
	job.app = "default";
	job.device_id = "bobs";
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	pr_store_free(st);
	exec_sql("INSERT INTO push_jobs(device_id, message_id, state, "
		 "next_attempt_at, created_at, updated_at) SELECT id, NULL, "
		 "'sent', 0, 0, 0 FROM devices WHERE device_id = 'phone';"
		 "INSERT INTO invalid_tokens(app_id, device_id, user_id, "
		 "platform, token, reason, at) SELECT id, 'x', 'y', 'apns', "
		 "'t', 'Unregistered', 0 FROM apps;");

	st = open_store();
	job = (struct pr_store_job){.op = PR_STORE_SWEEP};
	job.now = now;
	job.limit = 100;
	rv = run_job(st, &job);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(job.result, "expired_messages")),
	    1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(job.result, "expired_pushes")),
	    0); /* coalesced onto "live" */
	ck_assert_int_eq(
	    json_integer_value(json_object_get(job.result, "push_jobs")), 1);
	ck_assert_int_eq(json_integer_value(
			     json_object_get(job.result, "finished_messages")),
			 1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(job.result, "invalid_tokens")),
	    1);
	ck_assert(json_is_false(json_object_get(job.result, "more")));
	json_decref(job.result);
	ck_assert_int_eq(count_of(st, "messages"), 1);
	ck_assert_int_eq(count_of(st, "deliveries"), 1);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	/* The in-memory message count followed the deletions. */
	cfg->storage_max_messages = 2;
	pr_store_free(st);
	st = open_store();
	ck_assert_int_eq(ingest1(st, "again", "alice", NULL, NULL), 0);
	ck_assert_int_eq(ingest1(st, "over", "alice", NULL, NULL),
			 PR_ERR_LIMIT);
	pr_store_free(st);
	ck_assert_int_eq(q1("SELECT count(*) FROM messages WHERE ext_id = "
			    "'live'"),
			 1);
}
END_TEST

START_TEST(test_sweep_expires_waiting_push)
{
	struct pr_store *st = open_store();
	struct pr_store_job job = {.op = PR_STORE_SWEEP};
	struct pr_event ev = event("soon", "alice");

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	ev.expires_at = now + 60;
	ck_assert_int_eq(ingest(st, &ev, 1, NULL, 0), PR_OK);
	job.now = now + 61;
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(job.result, "expired_pushes")),
	    1);
	json_decref(job.result);
	ck_assert_int_eq(pushes_in(st, "expired"), 1);
	ck_assert_int_eq(count_of(st, "messages"), 0);
	ck_assert_int_eq(count_of(st, "deliveries"), 0);
	pr_store_free(st);
}
END_TEST

START_TEST(test_invalid_tokens_listing)
{
	struct pr_store *st = open_store();
	struct pr_store_job job = {.op = PR_STORE_INVALID_TOKENS};
	json_t *t;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	pr_store_free(st);
	for (int i = 0; i < 3; i++)
		exec_sql("INSERT INTO invalid_tokens(app_id, device_id, "
			 "user_id, platform, token, reason, at) SELECT id, "
			 "'phone', 'alice', 'apns', 'tok-old', "
			 "'BadDeviceToken', strftime('%s', 'now') FROM apps");
	st = open_store();
	job.app = "default";
	job.limit = 2;
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	t = json_object_get(job.result, "tokens");
	ck_assert_uint_eq(json_array_size(t), 2);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(t, 0), "reason")),
	    "BadDeviceToken");
	job.after = json_integer_value(json_object_get(job.result, "next"));
	ck_assert_int_eq(job.after, json_integer_value(json_object_get(
					json_array_get(t, 1), "cursor")));
	json_decref(job.result);
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	ck_assert_uint_eq(
	    json_array_size(json_object_get(job.result, "tokens")), 1);
	json_decref(job.result);
	job.app = "unknown";
	job.after = 0;
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	ck_assert_uint_eq(
	    json_array_size(json_object_get(job.result, "tokens")), 0);
	json_decref(job.result);
	pr_store_free(st);
}
END_TEST

static int create_key(struct pr_store *st, const char *name, const char *scope,
		      unsigned char fill, int64_t *id, char *err)
{
	struct pr_store_job job = {.op = PR_STORE_KEY_CREATE};
	int rv;

	job.key.name = name;
	job.key.scope = scope;
	memset(job.key.hash, fill, sizeof(job.key.hash));
	job.key.prefix = "prk_abcd";
	job.key.now = now;
	rv = run_job(st, &job);
	if (id)
		*id = job.key.id;
	if (err)
		snprintf(err, 160, "%s", job.err);
	json_decref(job.result);
	return rv;
}

START_TEST(test_keys)
{
	struct pr_store *st = open_store();
	struct pr_store_job job;
	int64_t id1, id2;
	char err[160], *text;
	int rv;
	json_t *r;

	ck_assert_int_eq(create_key(st, "chat", "ingest", 0xab, &id1, NULL), 0);
	ck_assert_int_eq(create_key(st, "ops", "admin", 0x5c, &id2, NULL), 0);
	ck_assert_int_gt(id1, 0);
	ck_assert_int_ne(id1, id2);
	ck_assert_int_eq(create_key(st, "chat", "admin", 0x11, NULL, err),
			 PR_ERR_INVAL);
	ck_assert_str_eq(err, "a key named chat exists");
	ck_assert_int_eq(create_key(st, "bad", "root", 0x12, NULL, err),
			 PR_ERR_INVAL);

	r = simple(st, PR_STORE_KEY_LIST, &rv);
	ck_assert_int_eq(rv, 0);
	ck_assert_uint_eq(json_array_size(r), 2);
	text = json_dumps(r, JSON_COMPACT);
	ck_assert_ptr_null(strstr(text, "hash"));
	ck_assert_ptr_null(strstr(text, "abababab"));
	ck_assert_ptr_nonnull(strstr(text, "\"prefix\":\"prk_abcd\""));
	ck_assert_ptr_nonnull(strstr(text, "\"last_used_at\":null"));
	free(text);
	json_decref(r);

	r = simple(st, PR_STORE_KEY_LOAD, &rv);
	ck_assert_int_eq(rv, 0);
	ck_assert_uint_eq(json_array_size(r), 2);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(r, 0), "hash")),
	    "abababababababababababababababababababababababababababababababab");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(r, 1), "scope")),
	    "admin");
	json_decref(r);

	job = (struct pr_store_job){.op = PR_STORE_KEY_REVOKE};
	job.key.name = "chat";
	job.key.now = now;
	ck_assert_int_eq(run_job(st, &job), 0);
	ck_assert_int_eq(job.key.id, id1);
	ck_assert_int_eq(json_integer_value(json_object_get(job.result, "id")),
			 id1);
	json_decref(job.result);
	job = (struct pr_store_job){.op = PR_STORE_KEY_REVOKE};
	job.key.id = 999;
	ck_assert_int_eq(run_job(st, &job), PR_ERR_NOTFOUND);
	job = (struct pr_store_job){.op = PR_STORE_KEY_REVOKE};
	job.key.name = "nope";
	ck_assert_int_eq(run_job(st, &job), PR_ERR_NOTFOUND);

	r = simple(st, PR_STORE_KEY_LOAD, &rv);
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(json_array_get(r, 0), "id")),
	    id2);
	json_decref(r);

	{
		int64_t ids[1] = {id2}, times[1] = {1234};

		job = (struct pr_store_job){.op = PR_STORE_KEY_TOUCH};
		job.touch_ids = ids;
		job.touch_times = times;
		job.n_touch = 1;
		ck_assert_int_eq(run_job(st, &job), 0);
	}
	r = simple(st, PR_STORE_KEY_LIST, &rv);
	ck_assert(
	    json_is_true(json_object_get(json_array_get(r, 0), "revoked")));
	ck_assert(
	    json_is_false(json_object_get(json_array_get(r, 1), "revoked")));
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 1),
							   "last_used_at")),
			 "1970-01-01T00:20:34Z");
	json_decref(r);
	pr_store_free(st);
}
END_TEST

START_TEST(test_checkpoint)
{
	struct pr_store *st = open_store();
	json_t *r;
	int rv;

	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	r = simple(st, PR_STORE_CHECKPOINT, &rv);
	ck_assert_int_eq(rv, 0);
	ck_assert_ptr_nonnull(r);
	ck_assert(json_is_false(json_object_get(r, "busy")));
	json_decref(r);
	pr_store_free(st);
}
END_TEST

START_TEST(test_free_runs_pending_done)
{
	enum { N = 50 };
	struct pr_store *st = open_store();
	struct pr_store_job jobs[N];
	struct pr_event ev[N];
	char ids[N][16];
	int done = 0;

	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "f-%d", i);
		ev[i] = event(ids[i], "alice");
		jobs[i].op = PR_STORE_INGEST;
		jobs[i].events = &ev[i];
		jobs[i].n_events = 1;
		jobs[i].done = count_done;
		jobs[i].arg = &done;
		ck_assert_int_eq(pr_store_submit(st, &jobs[i]), PR_OK);
	}
	pr_store_free(st); /* no loop iteration in between */
	ck_assert_int_eq(done, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(jobs[i].rv, PR_OK);
	ck_assert_int_eq(q1("SELECT count(*) FROM messages"), N);
}
END_TEST

/* ---- pushes ----------------------------------------------------------------
 */

static json_t *claim_at(struct pr_store *st, int64_t t, long limit,
			const char *const *skip, size_t n_skip)
{
	struct pr_store_job job = {.op = PR_STORE_PUSH_CLAIM};

	job.now = t;
	job.limit = limit;
	job.skip = skip;
	job.n_skip = n_skip;
	ck_assert_msg(run_job(st, &job) == PR_OK, "claim: %s", job.err);
	ck_assert(json_is_array(job.result));
	return job.result;
}

static json_t *claim(struct pr_store *st, int64_t t, long limit)
{
	return claim_at(st, t, limit, NULL, 0);
}

/* Claim and expect exactly one push; returns its job id. */
static int64_t claim_one(struct pr_store *st, int64_t t, char *apns_id)
{
	json_t *r = claim(st, t, 100), *p;
	int64_t id;

	ck_assert_uint_eq(json_array_size(r), 1);
	p = json_array_get(r, 0);
	id = json_integer_value(json_object_get(p, "job_id"));
	if (apns_id)
		snprintf(apns_id, 64, "%s",
			 json_string_value(json_object_get(p, "apns_id")));
	json_decref(r);
	return id;
}

static json_t *report(struct pr_store *st, const struct pr_push_result *res,
		      size_t n, int64_t t, int *rv)
{
	struct pr_store_job job = {.op = PR_STORE_PUSH_RESULT};

	job.results = res;
	job.n_results = n;
	job.now = t;
	*rv = run_job(st, &job);
	return job.result;
}

static long long counted(json_t *r, const char *what)
{
	json_t *v = json_object_get(r, what);

	ck_assert_msg(json_is_integer(v), "no %s", what);
	return json_integer_value(v);
}

static struct pr_push_result outcome(int64_t job, int o, long status,
				     const char *reason, const char *token)
{
	struct pr_push_result r = {0};

	r.job_id = job;
	r.outcome = o;
	r.provider = "apns";
	r.token = token;
	r.status = status;
	r.reason = reason;
	r.apns_id = "00000000-0000-4000-8000-000000000000";
	r.latency_ms = 42;
	return r;
}

static json_t *ack(struct pr_store *st, const char *app, const char *device,
		   int64_t up_to, int *rv, char *err)
{
	struct pr_store_job job = {.op = PR_STORE_ACK};

	job.app = app;
	job.device_id = device;
	job.after = up_to;
	job.now = now;
	*rv = run_job(st, &job);
	if (err)
		snprintf(err, 160, "%s", job.err);
	return job.result;
}

static void job_state(int64_t id, char *out, size_t outlen)
{
	qs(out, outlen, "SELECT state FROM push_jobs WHERE id = %lld",
	   (long long)id);
}

static int is_uuid4(const char *u)
{
	if (!u || strlen(u) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (u[i] != '-')
				return 0;
		} else if (!strchr("0123456789abcdef", u[i])) {
			return 0;
		}
	}
	return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

static void ingest_delayed(struct pr_store *st, const char *id,
			   const char *user, long delay)
{
	struct pr_event ev = event(id, user);

	ev.push_delay = delay;
	ck_assert_int_eq(ingest(st, &ev, 1, NULL, 0), PR_OK);
	ck_assert_int_eq(ev.status, PR_EVENT_QUEUED);
}

START_TEST(test_migrate_v1)
{
	struct pr_store *st = open_store();

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	pr_store_free(st);
	/* Back to what schema version 1 had. */
	exec_sql("ALTER TABLE devices DROP COLUMN last_push_at;"
		 "PRAGMA user_version = 1;");
	ck_assert_int_eq(q1("SELECT count(*) FROM pragma_table_info('devices')"
			    " WHERE name = 'last_push_at'"),
			 0);
	st = open_store();
	ck_assert_int_eq(count_of(st, "messages"), 1);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	pr_store_free(st);
	ck_assert_int_eq(q1("PRAGMA user_version"), 3);
	ck_assert_int_eq(q1("SELECT count(*) FROM devices WHERE device_id ="
			    " 'phone' AND last_push_at IS NULL"),
			 1);
}
END_TEST

START_TEST(test_push_claim)
{
	struct pr_store *st = open_store();
	json_t *r, *p;
	char s1[64];

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	json_decref(put_device(st, "tablet", "bob", "tok-2"));
	json_decref(put_device_on(st, "pixel", "carol", "fcm-3", "fcm"));
	ingest_delayed(st, "m-a", "alice", 30);
	ingest_delayed(st, "m-b", "bob", 10);
	ingest_delayed(st, "m-c", "carol", 20);
	ingest_delayed(st, "m-a2", "alice", 0); /* coalesced: due at +30 */

	/* Nothing is due yet. */
	r = claim(st, now + 9, 100);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);

	/* Due order, and the limit. */
	r = claim(st, now + 100, 2);
	ck_assert_uint_eq(json_array_size(r), 2);
	p = json_array_get(r, 0);
	ck_assert_str_eq(json_string_value(json_object_get(p, "device_id")),
			 "tablet");
	ck_assert_str_eq(json_string_value(json_object_get(p, "app")),
			 "default");
	ck_assert_str_eq(json_string_value(json_object_get(p, "platform")),
			 "apns");
	ck_assert_str_eq(json_string_value(json_object_get(p, "token")),
			 "tok-2");
	ck_assert_str_eq(json_string_value(json_object_get(p, "environment")),
			 "production");
	ck_assert_str_eq(json_string_value(json_object_get(p, "user")), "bob");
	ck_assert_str_eq(json_string_value(json_object_get(p, "message_id")),
			 "m-b");
	ck_assert_int_eq(json_integer_value(json_object_get(p, "seq")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(p, "mode")),
			 PR_PUSH_ALERT);
	ck_assert_str_eq(json_string_value(json_object_get(p, "push")),
			 "{\"mode\":\"alert\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(p, "unread")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(p, "expires_at")),
			 now + 3600);
	ck_assert_int_eq(json_integer_value(json_object_get(p, "attempt")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(p, "created_at")),
			 now);
	ck_assert(json_integer_value(json_object_get(p, "job_id")) > 0);
	snprintf(s1, sizeof(s1), "%s",
		 json_string_value(json_object_get(p, "apns_id")));
	ck_assert_msg(is_uuid4(s1), "%s", s1);
	p = json_array_get(r, 1);
	ck_assert_str_eq(json_string_value(json_object_get(p, "device_id")),
			 "pixel");
	ck_assert_str_eq(json_string_value(json_object_get(p, "platform")),
			 "fcm");
	ck_assert_str_ne(json_string_value(json_object_get(p, "apns_id")), s1);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "in_flight"), 2);

	/* The coalesced job announces the newest message and counts the
	 * device's queued deliveries. */
	r = claim(st, now + 100, 100);
	ck_assert_uint_eq(json_array_size(r), 1);
	p = json_array_get(r, 0);
	ck_assert_str_eq(json_string_value(json_object_get(p, "message_id")),
			 "m-a2");
	ck_assert_int_eq(json_integer_value(json_object_get(p, "seq")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(p, "unread")), 2);
	json_decref(r);
	r = claim(st, now + 100, 100);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "in_flight"), 3);
	ck_assert_int_eq(pushes_in(st, "pending"), 0);
	pr_store_free(st);
	ck_assert_int_eq(q1("SELECT count(*) FROM push_jobs WHERE state ="
			    " 'in_flight' AND attempts = 1 AND updated_at ="
			    " %lld AND apns_id IS NOT NULL",
			    (long long)now + 100),
			 3);
}
END_TEST

START_TEST(test_push_claim_skip)
{
	struct pr_store *st = open_store();
	static const char *const paused[] = {"default/fcm", "other/apns"};
	json_t *r;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	json_decref(put_device_on(st, "pixel", "alice", "fcm-1", "fcm"));
	json_decref(put_device(st, "gone", "alice", "tok-gone"));
	ingest_delayed(st, "m-1", "alice", 0);
	/* A device that lost its token keeps its waiting push, unclaimed. */
	json_decref(put_device(st, "gone", "alice", NULL));

	r = claim_at(st, now, 100, paused, 2);
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 0),
							   "device_id")),
			 "phone");
	json_decref(r);
	r = claim(st, now, 100);
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 0),
							   "device_id")),
			 "pixel");
	json_decref(r);
	r = claim(st, now + 1000, 100);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "pending"), 1); /* "gone"'s */
	pr_store_free(st);
}
END_TEST

START_TEST(test_push_claim_ends_jobs)
{
	struct pr_store *st = open_store();
	struct pr_event ev = event("short", "alice");
	json_t *r;
	char text[64];

	json_decref(put_device(st, "a", "alice", "tok-a"));
	json_decref(put_device(st, "b", "bob", "tok-b"));
	json_decref(put_device(st, "c", "carol", "tok-c"));
	json_decref(put_device(st, "d", "dave", "tok-d"));
	json_decref(put_device(st, "e", "erin", "tok-e"));
	ev.expires_at = now + 50;
	ck_assert_int_eq(ingest(st, &ev, 1, NULL, 0), PR_OK);
	ingest_delayed(st, "gone", "bob", 0);
	ingest_delayed(st, "tired", "carol", 0);
	ingest_delayed(st, "old", "dave", 0);
	ingest_delayed(st, "fine", "erin", 0);
	pr_store_free(st);
	exec_sql("PRAGMA foreign_keys = ON;"
		 "DELETE FROM messages WHERE ext_id = 'gone';"
		 "UPDATE push_jobs SET attempts = 12 WHERE message_id ="
		 " (SELECT id FROM messages WHERE ext_id = 'tired');");
	{
		char sql[256];

		snprintf(sql, sizeof(sql),
			 "UPDATE push_jobs SET created_at = %lld WHERE "
			 "message_id = (SELECT id FROM messages WHERE ext_id ="
			 " 'old')",
			 (long long)(now + 60 - 86400));
		exec_sql(sql);
	}
	st = open_store();
	/* The jobs ended on the way take no room: "fine" comes after three
	 * of them in due order and still fills a claim of one. */
	r = claim(st, now + 60, 1);
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 0),
							   "message_id")),
			 "fine");
	json_decref(r);
	r = claim(st, now + 60, 100);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "expired"), 2);
	ck_assert_int_eq(pushes_in(st, "dead"), 2);
	ck_assert_int_eq(pushes_in(st, "in_flight"), 1);
	pr_store_free(st);
	qs(text, sizeof(text),
	   "SELECT p.last_reason FROM push_jobs p JOIN devices v ON v.id ="
	   " p.device_id WHERE v.device_id = 'c'");
	ck_assert_str_eq(text, "max attempts");
	qs(text, sizeof(text),
	   "SELECT p.last_reason FROM push_jobs p JOIN devices v ON v.id ="
	   " p.device_id WHERE v.device_id = 'd'");
	ck_assert_str_eq(text, "max age");
	qs(text, sizeof(text),
	   "SELECT p.state FROM push_jobs p JOIN devices v ON v.id ="
	   " p.device_id WHERE v.device_id = 'a'");
	ck_assert_str_eq(text, "expired");
	ck_assert_int_eq(q1("SELECT attempts FROM push_jobs p JOIN devices v"
			    " ON v.id = p.device_id WHERE v.device_id = 'c'"),
			 12);
}
END_TEST

START_TEST(test_push_recover)
{
	struct pr_store *st = open_store();
	char first[64], again[64], other[64];
	int64_t id, id2;
	json_t *r;
	int rv;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	json_decref(put_device(st, "tablet", "bob", "tok-2"));
	ingest_delayed(st, "m-1", "alice", 0);
	id = claim_one(st, now, first);
	ck_assert_msg(is_uuid4(first), "%s", first);
	ck_assert_int_eq(pushes_in(st, "in_flight"), 1);
	/* The daemon dies with the push in flight. */
	pr_store_free(st);

	st = open_store();
	r = simple(st, PR_STORE_PUSH_RECOVER, &rv);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "recovered"), 1);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "in_flight"), 0);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	r = simple(st, PR_STORE_PUSH_RECOVER, &rv);
	ck_assert_int_eq(counted(r, "recovered"), 0);
	json_decref(r);
	/* Sent again with the same apns-id; the attempt counts on. */
	r = claim(st, now + 1, 100);
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(json_array_get(r, 0), "job_id")),
	    id);
	ck_assert_int_eq(json_integer_value(
			     json_object_get(json_array_get(r, 0), "attempt")),
			 2);
	snprintf(again, sizeof(again), "%s",
		 json_string_value(
		     json_object_get(json_array_get(r, 0), "apns_id")));
	json_decref(r);
	ck_assert_str_eq(again, first);
	/* Another job has an apns-id of its own. */
	ingest_delayed(st, "m-2", "bob", 0);
	id2 = claim_one(st, now + 1, other);
	ck_assert_int_ne(id2, id);
	ck_assert_str_ne(other, first);
	ck_assert_msg(is_uuid4(other), "%s", other);
	pr_store_free(st);
	qs(again, sizeof(again),
	   "SELECT apns_id FROM push_jobs WHERE id = %lld", (long long)id);
	ck_assert_str_eq(again, first);
}
END_TEST

START_TEST(test_push_results)
{
	static const char *const devs[] = {"d0", "d1", "d2", "d3", "d4", "d5"};
	static const char *const users[] = {"u0", "u1", "u2", "u3", "u4", "u5"};
	struct pr_store *st = open_store();
	struct pr_push_result res[8];
	int64_t id[6];
	char text[128];
	json_t *r;
	int rv;

	for (int i = 0; i < 6; i++) {
		char tok[16], mid[16];

		snprintf(tok, sizeof(tok), "tok-%d", i);
		snprintf(mid, sizeof(mid), "m-%d", i);
		json_decref(put_device(st, devs[i], users[i], tok));
		ingest_delayed(st, mid, users[i], i);
		id[i] = claim_one(st, now + 10, NULL);
	}
	res[0] = outcome(id[0], PR_OUTCOME_SENT, 200, "", "tok-0");
	res[0].provider_id = "apns-0";
	res[1] =
	    outcome(id[1], PR_OUTCOME_RETRY, 429, "TooManyRequests", "tok-1");
	res[1].retry_at = now + 70;
	res[2] =
	    outcome(id[2], PR_OUTCOME_RETRY, 0, "connection reset", "tok-2");
	res[2].retry_at = now - 5; /* in the past: due now */
	res[3] = outcome(id[3], PR_OUTCOME_REAUTH, 403, "ExpiredProviderToken",
			 "tok-3");
	res[3].retry_at = now + 20;
	res[4] = outcome(id[4], PR_OUTCOME_REJECTED, 413, "PayloadTooLarge",
			 "tok-4");
	res[5] = outcome(id[5], PR_OUTCOME_AUTH, 403, "InvalidProviderToken",
			 "tok-5");
	res[6] = outcome(999999, PR_OUTCOME_SENT, 200, "", "tok-x"); /* gone */
	r = report(st, res, 7, now + 10, &rv);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "sent"), 1);
	ck_assert_int_eq(counted(r, "retry"), 3);
	ck_assert_int_eq(counted(r, "dead"), 0);
	ck_assert_int_eq(counted(r, "invalid"), 0);
	ck_assert_int_eq(counted(r, "rejected"), 1);
	ck_assert_int_eq(counted(r, "requeued"), 1);
	json_decref(r);

	/* An outcome nobody knows: refused before anything is written. */
	res[7] = outcome(id[0], 77, 200, "", "tok-0");
	r = report(st, &res[7], 1, now + 10, &rv);
	ck_assert_int_eq(rv, PR_ERR_INVAL);
	ck_assert_ptr_null(r);

	/* AUTH: pending again, the attempt uncounted, due as it was (now +
	 * 5); the retry whose retry_at had passed is due when it failed. */
	r = claim(st, now + 10, 100);
	ck_assert_uint_eq(json_array_size(r), 2);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(json_array_get(r, 0), "job_id")),
	    id[5]);
	ck_assert_int_eq(json_integer_value(
			     json_object_get(json_array_get(r, 0), "attempt")),
			 1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(json_array_get(r, 1), "job_id")),
	    id[2]);
	ck_assert_int_eq(json_integer_value(
			     json_object_get(json_array_get(r, 1), "attempt")),
			 2);
	json_decref(r);

	/* A result for a job no longer in flight: recorded, state kept. */
	r = report(st, &res[4], 1, now + 11, &rv);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "rejected"), 0);
	json_decref(r);
	pr_store_free(st);

	job_state(id[0], text, sizeof(text));
	ck_assert_str_eq(text, "sent");
	qs(text, sizeof(text),
	   "SELECT provider_id FROM push_jobs WHERE id = "
	   "%lld",
	   (long long)id[0]);
	ck_assert_str_eq(text, "apns-0");
	ck_assert_int_eq(q1("SELECT last_status FROM push_jobs WHERE id = %lld",
			    (long long)id[0]),
			 200);
	ck_assert_int_eq(q1("SELECT last_push_at FROM devices WHERE device_id"
			    " = 'd0'"),
			 now + 10);
	ck_assert_int_eq(q1("SELECT count(*) FROM devices WHERE last_push_at"
			    " IS NULL"),
			 5);
	job_state(id[1], text, sizeof(text));
	ck_assert_str_eq(text, "retry");
	ck_assert_int_eq(q1("SELECT next_attempt_at FROM push_jobs WHERE id ="
			    " %lld",
			    (long long)id[1]),
			 now + 70);
	qs(text, sizeof(text),
	   "SELECT last_reason FROM push_jobs WHERE id = "
	   "%lld",
	   (long long)id[1]);
	ck_assert_str_eq(text, "TooManyRequests");
	job_state(id[3], text, sizeof(text));
	ck_assert_str_eq(text, "retry");
	ck_assert_int_eq(q1("SELECT next_attempt_at FROM push_jobs WHERE id ="
			    " %lld",
			    (long long)id[3]),
			 now + 20);
	job_state(id[4], text, sizeof(text));
	ck_assert_str_eq(text, "dead");
	qs(text, sizeof(text),
	   "SELECT last_reason FROM push_jobs WHERE id = "
	   "%lld",
	   (long long)id[4]);
	ck_assert_str_eq(text, "PayloadTooLarge");
	ck_assert_int_eq(q1("SELECT attempts FROM push_jobs WHERE id = %lld",
			    (long long)id[5]),
			 1); /* back to 0 by AUTH, then claimed again */
	/* Every attempt with a job is on record; none for the unknown job. */
	ck_assert_int_eq(q1("SELECT count(*) FROM push_attempts"), 7);
	ck_assert_int_eq(q1("SELECT count(*) FROM push_attempts WHERE job_id ="
			    " %lld AND provider = 'apns' AND status = 413 AND"
			    " reason = 'PayloadTooLarge' AND latency_ms = 42"
			    " AND apns_id = '00000000-0000-4000-8000-"
			    "000000000000' AND at = %lld",
			    (long long)id[4], (long long)now + 10),
			 1);
}
END_TEST

START_TEST(test_push_results_exhausted)
{
	struct pr_store *st;
	struct pr_push_result res[2];
	int64_t a, b;
	char text[128];
	json_t *r;
	int rv;

	cfg->push_max_attempts = 2;
	st = open_store();
	json_decref(put_device(st, "a", "alice", "tok-a"));
	json_decref(put_device(st, "b", "bob", "tok-b"));
	ingest_delayed(st, "m-a", "alice", 0);
	a = claim_one(st, now, NULL);
	ingest_delayed(st, "m-b", "bob", 0);
	b = claim_one(st, now, NULL);
	res[0] = outcome(a, PR_OUTCOME_RETRY, 429, "TooManyRequests", "tok-a");
	res[0].retry_at = now + 1;
	r = report(st, res, 1, now, &rv);
	ck_assert_int_eq(counted(r, "retry"), 1);
	json_decref(r);
	ck_assert_int_eq(claim_one(st, now + 1, NULL), a); /* attempt 2 */
	r = report(st, res, 1, now + 1, &rv);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "dead"), 1);
	ck_assert_int_eq(counted(r, "retry"), 0);
	json_decref(r);

	/* Age: a reload shortens max_age while b is in flight. */
	cfg->push_max_age = 100;
	res[1] =
	    outcome(b, PR_OUTCOME_REAUTH, 503, "ServiceUnavailable", "tok-b");
	r = report(st, &res[1], 1, now + 200, &rv);
	ck_assert_int_eq(counted(r, "dead"), 1);
	json_decref(r);
	pr_store_free(st);
	job_state(a, text, sizeof(text));
	ck_assert_str_eq(text, "dead");
	qs(text, sizeof(text),
	   "SELECT last_reason FROM push_jobs WHERE id = "
	   "%lld",
	   (long long)a);
	ck_assert_str_eq(text, "429 TooManyRequests; max attempts");
	qs(text, sizeof(text),
	   "SELECT last_reason FROM push_jobs WHERE id = "
	   "%lld",
	   (long long)b);
	ck_assert_str_eq(text, "503 ServiceUnavailable; max age");
}
END_TEST

static json_t *invalid_list(struct pr_store *st)
{
	struct pr_store_job job = {.op = PR_STORE_INVALID_TOKENS};

	job.app = "default";
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	return job.result;
}

START_TEST(test_push_invalid_token)
{
	struct pr_store *st = open_store();
	struct pr_push_result res[4];
	int64_t a, a2, b, c, d;
	char text[64];
	json_t *r, *t;
	int rv;

	json_decref(put_device(st, "a", "alice", "tok-a"));
	json_decref(put_device(st, "b", "bob", "tok-b1"));
	json_decref(put_device(st, "c", "carol", "tok-c"));
	json_decref(put_device(st, "d", "dave", "tok-d"));
	ingest_delayed(st, "m-a", "alice", 0);
	a = claim_one(st, now, NULL);
	/* A newer message while the push is in flight: a job of its own. */
	ingest_delayed(st, "m-a2", "alice", 0);
	ingest_delayed(st, "m-b", "bob", 0);
	ingest_delayed(st, "m-c", "carol", 0);
	ingest_delayed(st, "m-d", "dave", 0);
	r = claim(st, now, 100);
	ck_assert_uint_eq(json_array_size(r), 4);
	a2 =
	    json_integer_value(json_object_get(json_array_get(r, 0), "job_id"));
	b = json_integer_value(json_object_get(json_array_get(r, 1), "job_id"));
	c = json_integer_value(json_object_get(json_array_get(r, 2), "job_id"));
	d = json_integer_value(json_object_get(json_array_get(r, 3), "job_id"));
	json_decref(r);
	/* a2 is not sent yet: back to pending through AUTH. */
	res[0] =
	    outcome(a2, PR_OUTCOME_AUTH, 403, "InvalidProviderToken", "tok-a");
	r = report(st, res, 1, now, &rv);
	json_decref(r);

	/* b registers a new token meanwhile; c registers again (same token)
	 * after APNs found it invalid; d registered before that. */
	now += 10;
	json_decref(put_device(st, "b", "bob", "tok-b2"));
	json_decref(put_device(st, "c", "carol", "tok-c"));
	res[0] =
	    outcome(a, PR_OUTCOME_INVALID_TOKEN, 410, "Unregistered", "tok-a");
	res[1] =
	    outcome(b, PR_OUTCOME_INVALID_TOKEN, 410, "Unregistered", "tok-b1");
	res[2] =
	    outcome(c, PR_OUTCOME_INVALID_TOKEN, 410, "Unregistered", "tok-c");
	res[2].invalid_since = (now - 5) * 1000;
	res[3] = outcome(d, PR_OUTCOME_INVALID_TOKEN, 400, "BadDeviceToken",
			 "tok-d");
	res[3].invalid_since = (now - 5) * 1000; /* d last seen at now - 10 */
	r = report(st, res, 4, now, &rv);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "invalid"), 4);
	json_decref(r);

	r = invalid_list(st);
	t = json_object_get(r, "tokens");
	ck_assert_uint_eq(json_array_size(t), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(t, 0),
							   "device_id")),
			 "a");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(t, 0), "user")),
	    "alice");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(t, 0), "token")),
	    "tok-a");
	ck_assert_str_eq(json_string_value(
			     json_object_get(json_array_get(t, 0), "platform")),
			 "apns");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(t, 0), "reason")),
	    "Unregistered");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(t, 1), "token")),
	    "tok-d");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(t, 1), "reason")),
	    "BadDeviceToken");
	json_decref(r);
	/* Nothing is left to claim: a's other push ended with its token. */
	r = claim(st, now + 100, 100);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);
	pr_store_free(st);

	for (int64_t *j = (int64_t[]){a, a2, b, c, d, 0}; *j; j++) {
		job_state(*j, text, sizeof(text));
		ck_assert_msg(strcmp(text, "invalid_token") == 0, "%lld: %s",
			      (long long)*j, text);
	}
	ck_assert_int_eq(q1("SELECT count(*) FROM devices WHERE token IS NULL"
			    " AND push_state = 'invalid'"),
			 2); /* a, d */
	qs(text, sizeof(text),
	   "SELECT token FROM devices WHERE device_id ="
	   " 'b' AND push_state = 'ok'");
	ck_assert_str_eq(text, "tok-b2");
	qs(text, sizeof(text),
	   "SELECT token FROM devices WHERE device_id ="
	   " 'c' AND push_state = 'ok'");
	ck_assert_str_eq(text, "tok-c");
	ck_assert_int_eq(q1("SELECT count(*) FROM push_attempts WHERE status ="
			    " 410"),
			 3);
}
END_TEST

START_TEST(test_ack)
{
	struct pr_store *st = open_store();
	char err[160], box[256], text[64];
	int64_t flying;
	json_t *r;
	int rv;

	json_decref(put_device(st, "phone", "alice", "tok-1"));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	ck_assert_int_eq(ingest1(st, "m-2", "alice", NULL, NULL), 0);
	ck_assert_int_eq(ingest1(st, "m-3", "alice", NULL, NULL), 0);
	ck_assert_int_eq(pushes_in(st, "pending"), 1); /* on m-3 */

	/* Up to 2: the push still has m-3 to announce. */
	r = ack(st, "default", "phone", 2, &rv, NULL);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "acked"), 2);
	ck_assert_int_eq(counted(r, "cancelled"), 0);
	ck_assert_int_eq(counted(r, "remaining"), 1);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	/* Again, or older: a no-op success. */
	for (int64_t up = 2; up >= 0; up -= 2) {
		r = ack(st, "default", "phone", up, &rv, NULL);
		ck_assert_int_eq(rv, PR_OK);
		ck_assert_int_eq(counted(r, "acked"), 2);
		ck_assert_int_eq(counted(r, "cancelled"), 0);
		ck_assert_int_eq(counted(r, "remaining"), 1);
		json_decref(r);
	}
	/* Past what was delivered. */
	r = ack(st, "default", "phone", 4, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_INVAL);
	ck_assert_ptr_null(r);
	ck_assert_str_eq(err, "seq 4 was never delivered");
	r = ack(st, "default", "phone", -1, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_INVAL);
	/* Unknown device or app. */
	r = ack(st, "default", "nope", 1, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_NOTFOUND);
	ck_assert_str_eq(err, "no such device");
	r = ack(st, "nope", "phone", 1, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_NOTFOUND);
	/* Everything read: the push has nothing left to say. */
	r = ack(st, "default", "phone", 3, &rv, NULL);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "acked"), 3);
	ck_assert_int_eq(counted(r, "cancelled"), 1);
	ck_assert_int_eq(counted(r, "remaining"), 0);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "pending"), 0);
	ck_assert_int_eq(pushes_in(st, "cancelled"), 1);

	/* A push in flight is not taken back. */
	ck_assert_int_eq(ingest1(st, "m-4", "alice", NULL, NULL), 0);
	flying = claim_one(st, now + 5, NULL);
	ck_assert_int_eq(ingest1(st, "m-5", "alice", NULL, NULL), 0);
	r = ack(st, "default", "phone", 4, &rv, NULL);
	ck_assert_int_eq(counted(r, "cancelled"), 0); /* m-5's push waits */
	ck_assert_int_eq(counted(r, "remaining"), 1);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	r = ack(st, "default", "phone", 5, &rv, NULL);
	ck_assert_int_eq(counted(r, "cancelled"), 1);
	json_decref(r);
	pr_store_free(st);
	job_state(flying, text, sizeof(text));
	ck_assert_str_eq(text, "in_flight");
	inbox("phone", box, sizeof(box));
	ck_assert_str_eq(box, "");
	ck_assert_int_eq(q1("SELECT acked_seq FROM devices"), 5);
	ck_assert_int_eq(q1("SELECT next_seq FROM devices"), 6);
}
END_TEST

START_TEST(test_push_interval)
{
	struct pr_store *st;
	struct pr_push_result res;
	int64_t first, t0 = now;
	json_t *r;
	int rv;

	cfg->push_min_interval = 60;
	st = open_store();
	json_decref(put_device(st, "phone", "alice", "tok-1"));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	first = claim_one(st, t0 + 5, NULL);
	/* A message while the push is in flight: a new job, due after the
	 * push delay (nothing went out yet). */
	ck_assert_int_eq(ingest1(st, "m-2", "alice", NULL, NULL), 0);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	ck_assert_int_eq(pushes_in(st, "in_flight"), 1);
	res = outcome(first, PR_OUTCOME_SENT, 200, "", "tok-1");
	r = report(st, &res, 1, t0 + 10, &rv);
	ck_assert_int_eq(counted(r, "sent"), 1);
	json_decref(r);
	r = ack(st, "default", "phone", 2, &rv, NULL);
	ck_assert_int_eq(counted(r, "cancelled"), 1);
	json_decref(r);

	/* The next push waits for min_interval after the last one. */
	now = t0 + 20;
	ck_assert_int_eq(ingest1(st, "m-3", "alice", NULL, NULL), 0);
	/* coalesced into it */
	ck_assert_int_eq(ingest1(st, "m-4", "alice", NULL, NULL), 0);
	r = claim(st, t0 + 69, 100);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);
	r = claim(st, t0 + 70, 100);
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 0),
							   "message_id")),
			 "m-4");
	res = outcome(
	    json_integer_value(json_object_get(json_array_get(r, 0), "job_id")),
	    PR_OUTCOME_SENT, 200, "", "tok-1");
	json_decref(r);
	r = report(st, &res, 1, t0 + 70, &rv);
	json_decref(r);

	/* A longer coalesce window wins; a long push delay wins over both. */
	cfg->push_coalesce_window = 300;
	now = t0 + 80;
	ck_assert_int_eq(ingest1(st, "m-5", "alice", NULL, NULL), 0);
	r = ack(st, "default", "phone", 5, &rv, NULL);
	json_decref(r);
	{
		struct pr_event ev = event("m-6", "alice");

		ev.push_delay = 1000;
		ck_assert_int_eq(ingest(st, &ev, 1, NULL, 0), PR_OK);
	}
	pr_store_free(st);
	ck_assert_int_eq(q1("SELECT next_attempt_at FROM push_jobs p JOIN"
			    " messages m ON m.id = p.message_id WHERE"
			    " m.ext_id = 'm-5'"),
			 t0 + 70 + 300);
	ck_assert_int_eq(q1("SELECT next_attempt_at FROM push_jobs p JOIN"
			    " messages m ON m.id = p.message_id WHERE"
			    " m.ext_id = 'm-6'"),
			 t0 + 80 + 1000);
	ck_assert_int_eq(q1("SELECT last_push_at FROM devices"), t0 + 70);
}
END_TEST

START_TEST(test_sweep_push_states)
{
	struct pr_store *st = open_store();
	struct pr_store_job job = {.op = PR_STORE_SWEEP};
	struct pr_push_result res;
	int64_t flying, dead;
	json_t *r;
	char text[64];
	int rv;

	json_decref(put_device(st, "a", "alice", "tok-a"));
	json_decref(put_device(st, "b", "bob", "tok-b"));
	ingest_delayed(st, "m-a", "alice", 0);
	ingest_delayed(st, "m-b", "bob", 0);
	r = claim(st, now, 1);
	ck_assert_uint_eq(json_array_size(r), 1);
	flying =
	    json_integer_value(json_object_get(json_array_get(r, 0), "job_id"));
	json_decref(r);
	dead = claim_one(st, now, NULL);
	res = outcome(dead, PR_OUTCOME_INVALID_TOKEN, 410, "Unregistered",
		      "tok-b");
	r = report(st, &res, 1, now, &rv);
	json_decref(r);
	/* Long after: the messages expired, history is over. */
	job.now = now + 3 * 86400;
	job.limit = 100;
	ck_assert_int_eq(run_job(st, &job), PR_OK);
	ck_assert_int_eq(counted(job.result, "expired_pushes"), 0);
	ck_assert_int_eq(counted(job.result, "push_jobs"), 1);
	json_decref(job.result);
	ck_assert_int_eq(pushes_in(st, "in_flight"), 1);
	ck_assert_int_eq(pushes_in(st, "invalid_token"), 0);
	ck_assert_int_eq(count_of(st, "messages"), 0);
	/* Its answer still lands. */
	res = outcome(flying, PR_OUTCOME_SENT, 200, "", "tok-a");
	r = report(st, &res, 1, now + 3 * 86400, &rv);
	ck_assert_int_eq(counted(r, "sent"), 1);
	json_decref(r);
	pr_store_free(st);
	job_state(flying, text, sizeof(text));
	ck_assert_str_eq(text, "sent");
}
END_TEST

/* ---- the inbox -------------------------------------------------------------
 */

static json_t *fetch_at(struct pr_store *st, const char *app,
			const char *device, const char *user, int64_t after,
			long limit, int64_t t, int *rv, char *err)
{
	struct pr_store_job job = {.op = PR_STORE_INBOX_FETCH};

	job.app = app;
	job.device_id = device;
	job.user = user;
	job.after = after;
	job.limit = limit;
	job.now = t;
	*rv = run_job(st, &job);
	if (err)
		snprintf(err, 160, "%s", job.err);
	if (*rv)
		ck_assert_ptr_null(job.result);
	return job.result;
}

static json_t *fetch(struct pr_store *st, const char *device, const char *user,
		     int64_t after, long limit)
{
	char err[160];
	int rv;
	json_t *r =
	    fetch_at(st, "default", device, user, after, limit, now, &rv, err);

	ck_assert_msg(rv == PR_OK, "fetch: %s", err);
	ck_assert(json_is_object(r));
	return r;
}

/* The page's seqs as "1,2,3", and its next / more / acked / last / push. */
static void page(json_t *r, char *out, size_t outlen)
{
	json_t *m, *v;
	size_t i, len = 0;

	out[0] = '\0';
	json_array_foreach(json_object_get(r, "messages"), i, m) len +=
	    (size_t)snprintf(
		out + len, outlen - len, "%s%lld", i ? "," : "",
		(long long)json_integer_value(json_object_get(m, "seq")));
	v = json_object_get(r, "more");
	ck_assert(json_is_boolean(v));
	snprintf(out + len, outlen - len,
		 " next=%lld more=%d acked=%lld last=%lld push=%s",
		 (long long)json_integer_value(json_object_get(r, "next")),
		 json_is_true(v),
		 (long long)json_integer_value(json_object_get(r, "acked")),
		 (long long)json_integer_value(json_object_get(r, "last")),
		 json_string_value(json_object_get(r, "push")));
}

static void expect_page(struct pr_store *st, const char *device,
			const char *user, int64_t after, long limit,
			const char *want)
{
	char got[512];
	json_t *r = fetch(st, device, user, after, limit);

	page(r, got, sizeof(got));
	json_decref(r);
	ck_assert_msg(strcmp(got, want) == 0, "after %lld limit %ld: %s",
		      (long long)after, limit, got);
}

static void ingest_payload(struct pr_store *st, const char *id,
			   const char *user, const char *payload,
			   int64_t expires_at)
{
	struct pr_event ev = event(id, user);

	ev.payload = payload;
	ev.expires_at = expires_at;
	ck_assert_int_eq(ingest(st, &ev, 1, NULL, 0), PR_OK);
	ck_assert_int_eq(ev.status, PR_EVENT_QUEUED);
}

START_TEST(test_inbox_fetch)
{
	struct pr_store *st = open_store();
	char err[160], when[32];
	struct tm tm;
	time_t t = (time_t)now;
	json_t *r, *msgs, *m, *p;
	int rv;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_decref(put_device(st, "phone", "alice", "tok-a"));
	json_decref(put_device(st, "bphone", "bob", "tok-b"));
	ingest_payload(st, "m-1", "alice", "{\"text\":\"one\",\"n\":[1,2]}",
		       now + 3600);
	ingest_payload(st, "m-2", "alice", "\"just a string\"", now + 3600);
	ingest_payload(st, "m-3", "alice", "null", now + 3600);
	ingest_payload(st, "m-4", "alice", NULL, now + 3600);
	ingest_payload(st, "m-5", "alice", "{\"text\":\"five\"}", now + 3600);

	/* Everything, in order, each payload as the JSON it was. */
	r = fetch(st, "phone", "alice", 0, 10);
	msgs = json_object_get(r, "messages");
	ck_assert_uint_eq(json_array_size(msgs), 5);
	for (size_t i = 0; i < 5; i++) {
		char id[16];

		m = json_array_get(msgs, i);
		snprintf(id, sizeof(id), "m-%zu", i + 1);
		ck_assert_int_eq(json_integer_value(json_object_get(m, "seq")),
				 (json_int_t)i + 1);
		ck_assert_str_eq(json_string_value(json_object_get(m, "id")),
				 id);
		ck_assert_str_eq(
		    json_string_value(json_object_get(m, "created_at")), when);
		ck_assert_uint_eq(json_object_size(m), 4);
	}
	p = json_object_get(json_array_get(msgs, 0), "payload");
	ck_assert(json_is_object(p));
	ck_assert_str_eq(json_string_value(json_object_get(p, "text")), "one");
	ck_assert_uint_eq(json_array_size(json_object_get(p, "n")), 2);
	p = json_object_get(json_array_get(msgs, 1), "payload");
	ck_assert(json_is_string(p));
	ck_assert_str_eq(json_string_value(p), "just a string");
	p = json_object_get(json_array_get(msgs, 2), "payload");
	ck_assert(p && json_is_null(p));
	p = json_object_get(json_array_get(msgs, 3), "payload");
	ck_assert(p && json_is_null(p)); /* none given */
	ck_assert_int_eq(json_integer_value(json_object_get(r, "next")), 5);
	ck_assert(json_is_false(json_object_get(r, "more")));
	ck_assert_str_eq(json_string_value(json_object_get(r, "push")), "ok");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "acked")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "last")), 5);
	json_decref(r);

	/* Pages: after = next each time; more until the last one. */
	expect_page(st, "phone", "alice", 0, 2,
		    "1,2 next=2 more=1 acked=0 last=5 push=ok");
	expect_page(st, "phone", "alice", 2, 2,
		    "3,4 next=4 more=1 acked=0 last=5 push=ok");
	expect_page(st, "phone", "alice", 4, 2,
		    "5 next=5 more=0 acked=0 last=5 push=ok");
	expect_page(st, "phone", "alice", 3, 2,
		    "4,5 next=5 more=0 acked=0 last=5 push=ok");
	expect_page(st, "phone", "alice", 5, 2,
		    " next=5 more=0 acked=0 last=5 push=ok");
	expect_page(st, "phone", "alice", 9, 1000,
		    " next=9 more=0 acked=0 last=5 push=ok");
	expect_page(st, "phone", "alice", 4, 1,
		    "5 next=5 more=0 acked=0 last=5 push=ok");
	/* A device with nothing queued. */
	expect_page(st, "bphone", "bob", 0, 10,
		    " next=0 more=0 acked=0 last=0 push=ok");

	/* Another user's device, an unknown device or app: the same answer. */
	r = fetch_at(st, "default", "phone", "bob", 0, 10, now, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_NOTFOUND);
	ck_assert_str_eq(err, "no such device");
	r = fetch_at(st, "default", "nope", "alice", 0, 10, now, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_NOTFOUND);
	ck_assert_str_eq(err, "no such device");
	r = fetch_at(st, "nope", "phone", "alice", 0, 10, now, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_NOTFOUND);
	ck_assert_str_eq(err, "no such device");
	/* Bad inputs. */
	r = fetch_at(st, "default", "phone", "alice", -1, 10, now, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_INVAL);
	r = fetch_at(st, "default", "phone", "alice", 0, 0, now, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_INVAL);
	r = fetch_at(st, "default", "phone", "alice", 0, 1001, now, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_INVAL);
	r = fetch_at(st, "default", "phone", NULL, 0, 10, now, &rv, err);
	ck_assert_int_eq(rv, PR_ERR_INVAL);
	(void)r;

	/* ACK as someone else: no such device, nothing moves. */
	{
		struct pr_store_job job = {.op = PR_STORE_ACK};

		job.app = "default";
		job.device_id = "phone";
		job.user = "bob";
		job.after = 2;
		job.now = now;
		ck_assert_int_eq(run_job(st, &job), PR_ERR_NOTFOUND);
		ck_assert_str_eq(job.err, "no such device");
		ck_assert_ptr_null(job.result);
		expect_page(st, "phone", "alice", 0, 1,
			    "1 next=1 more=1 acked=0 last=5 push=ok");
		/* As the owner. */
		job.user = "alice";
		job.rv = 0;
		job.err[0] = '\0';
		ck_assert_int_eq(run_job(st, &job), PR_OK);
		ck_assert_int_eq(counted(job.result, "acked"), 2);
		json_decref(job.result);
	}
	/* The acknowledged are gone; the cursor is the later of after and
	 * acked. */
	expect_page(st, "phone", "alice", 0, 10,
		    "3,4,5 next=5 more=0 acked=2 last=5 push=ok");
	expect_page(st, "phone", "alice", 0, 1,
		    "3 next=3 more=1 acked=2 last=5 push=ok");
	expect_page(st, "phone", "alice", 1, 10,
		    "3,4,5 next=5 more=0 acked=2 last=5 push=ok");
	expect_page(st, "phone", "alice", 3, 10,
		    "4,5 next=5 more=0 acked=2 last=5 push=ok");
	r = ack(st, "default", "phone", 5, &rv, NULL); /* no user: any */
	ck_assert_int_eq(rv, PR_OK);
	json_decref(r);
	expect_page(st, "phone", "alice", 0, 10,
		    " next=5 more=0 acked=5 last=5 push=ok");

	/* Expired messages are not served, and count for no "more". */
	ingest_payload(st, "m-6", "alice", "6", now + 10);
	ingest_payload(st, "m-7", "alice", "7", now + 3600);
	ingest_payload(st, "m-8", "alice", "8", now + 10);
	expect_page(st, "phone", "alice", 0, 10,
		    "6,7,8 next=8 more=0 acked=5 last=8 push=ok");
	r = fetch_at(st, "default", "phone", "alice", 0, 10, now + 10, &rv,
		     NULL);
	ck_assert_int_eq(rv, PR_OK);
	page(r, err, sizeof(err));
	ck_assert_str_eq(err, "7 next=7 more=0 acked=5 last=8 push=ok");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(
		json_array_get(json_object_get(r, "messages"), 0), "payload")),
	    7);
	json_decref(r);
	r = fetch_at(st, "default", "phone", "alice", 5, 1, now + 10, &rv,
		     NULL);
	page(r, err, sizeof(err));
	ck_assert_str_eq(err, "7 next=7 more=0 acked=5 last=8 push=ok");
	json_decref(r);
	r = fetch_at(st, "default", "phone", "alice", 7, 1, now + 10, &rv,
		     NULL);
	page(r, err, sizeof(err));
	ck_assert_str_eq(err, " next=7 more=0 acked=5 last=8 push=ok");
	json_decref(r);

	/* The token goes dead: the app must register again. */
	{
		struct pr_push_result res;
		int64_t id = claim_one(st, now + 5, NULL);

		res = outcome(id, PR_OUTCOME_INVALID_TOKEN, 410, "Unregistered",
			      "tok-a");
		r = report(st, &res, 1, now + 5, &rv);
		ck_assert_int_eq(counted(r, "invalid"), 1);
		json_decref(r);
	}
	expect_page(st, "phone", "alice", 5, 10,
		    "6,7,8 next=8 more=0 acked=5 last=8 push=invalid");
	expect_page(st, "bphone", "bob", 0, 10,
		    " next=0 more=0 acked=0 last=0 push=ok");
	json_decref(put_device(st, "phone", "alice", "tok-a2"));
	expect_page(st, "phone", "alice", 5, 10,
		    "6,7,8 next=8 more=0 acked=5 last=8 push=ok");
	pr_store_free(st);
	ck_assert_int_eq(q1("SELECT count(*) FROM deliveries"), 3);
}
END_TEST

/* A fetch writes nothing: a batch of fetches commits no change. */
START_TEST(test_inbox_fetch_read_only)
{
	struct pr_store *st = open_store();
	int64_t before;
	int rv;
	json_t *r;

	json_decref(put_device(st, "phone", "alice", "tok-a"));
	ck_assert_int_eq(ingest1(st, "m-1", "alice", NULL, NULL), 0);
	pr_store_free(st);
	before = q1("SELECT last_seen_at FROM devices");
	exec_sql("PRAGMA wal_checkpoint(TRUNCATE)");
	st = open_store();
	now += 100;
	r = fetch_at(st, "default", "phone", "alice", 0, 10, now, &rv, NULL);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_uint_eq(json_array_size(json_object_get(r, "messages")), 1);
	json_decref(r);
	pr_store_free(st);
	ck_assert_int_eq(q1("SELECT last_seen_at FROM devices"), before);
	ck_assert_int_eq(q1("SELECT acked_seq FROM devices"), 0);
	ck_assert_int_eq(q1("SELECT count(*) FROM deliveries"), 1);
}
END_TEST

/* Delivered on the stream: the push in flight is cancelled, no attempt. */
START_TEST(test_push_cancelled)
{
	struct pr_store *st = open_store();
	struct pr_push_result res[2];
	char text[64];
	int64_t id, waiting;
	json_t *r;
	int rv;

	json_decref(put_device(st, "a", "alice", "tok-a"));
	json_decref(put_device(st, "b", "bob", "tok-b"));
	ingest_delayed(st, "m-a", "alice", 0);
	ingest_delayed(st, "m-b", "bob", 100);
	id = claim_one(st, now, NULL);
	waiting = q1("SELECT p.id FROM push_jobs p JOIN devices v ON"
		     " v.id = p.device_id WHERE v.device_id = 'b'");
	res[0] = outcome(id, PR_OUTCOME_CANCELLED, 0, "delivered on the stream",
			 "tok-a");
	res[0].apns_id = NULL;
	res[0].latency_ms = 0;
	/* One for a job not in flight (not claimed): nothing to do. */
	res[1] = outcome(waiting, PR_OUTCOME_CANCELLED, 0, "", "tok-b");
	r = report(st, res, 2, now + 1, &rv);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "cancelled"), 1);
	ck_assert_int_eq(counted(r, "sent"), 0);
	ck_assert_int_eq(counted(r, "requeued"), 0);
	json_decref(r);
	/* Seen twice: the job keeps its state. */
	r = report(st, res, 1, now + 2, &rv);
	ck_assert_int_eq(rv, PR_OK);
	ck_assert_int_eq(counted(r, "cancelled"), 0);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "cancelled"), 1);
	ck_assert_int_eq(pushes_in(st, "pending"), 1);
	r = claim(st, now + 10, 100);
	ck_assert_uint_eq(json_array_size(r), 0); /* b's waits 100 s */
	json_decref(r);
	pr_store_free(st);

	job_state(id, text, sizeof(text));
	ck_assert_str_eq(text, "cancelled");
	qs(text, sizeof(text),
	   "SELECT last_reason FROM push_jobs WHERE id = %lld", (long long)id);
	ck_assert_str_eq(text, "delivered on the stream");
	ck_assert_int_eq(q1("SELECT updated_at FROM push_jobs WHERE id = %lld",
			    (long long)id),
			 now + 1);
	ck_assert_int_eq(
	    q1("SELECT attempts FROM push_jobs WHERE id = %lld", (long long)id),
	    0);
	ck_assert_int_eq(q1("SELECT last_status FROM push_jobs WHERE id = %lld",
			    (long long)id),
			 -2); /* NULL: nothing was sent */
	job_state(waiting, text, sizeof(text));
	ck_assert_str_eq(text, "pending");
	ck_assert_int_eq(q1("SELECT count(*) FROM push_attempts"), 0);
	ck_assert_int_eq(q1("SELECT last_push_at IS NULL FROM devices WHERE"
			    " device_id = 'a'"),
			 1);
}
END_TEST

static json_t *admin_job(struct pr_store *st, struct pr_store_job *job,
			 int want)
{
	int rv;

	job->now = job->now ? job->now : now;
	rv = run_job(st, job);
	ck_assert_msg(rv == want, "op %d: rv %d (%s)", (int)job->op, rv,
		      job->err);
	return job->result;
}

START_TEST(test_admin_ops)
{
	struct pr_store *st;
	struct pr_store_job job;
	struct pr_push_result res;
	json_t *r, *m, *p;
	int64_t a;
	const char *cur;
	char id[16];

	cfg->push_max_attempts = 1;
	st = open_store();
	json_decref(put_device(st, "a", "alice", "tok-a"));
	json_decref(put_device_on(st, "b", "bob", "tok-b", "fcm"));
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "m-%d", i);
		ingest_delayed(st, id, i % 2 ? "bob" : "alice", 0);
	}
	/* One alice push goes out and dies (max_attempts 1). */
	job = (struct pr_store_job){.op = PR_STORE_STATS};
	job.now = now + 10;
	r = admin_job(st, &job, PR_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(r, "queue"), "pending")),
			 2); /* coalesced: one per device */
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "oldest_pending_age")), 10);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "messages")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "devices")), 2);
	json_decref(r);
	r = claim(st, now, 100);
	ck_assert_uint_eq(json_array_size(r), 2);
	a = 0;
	for (size_t i = 0; i < 2; i++) {
		p = json_array_get(r, i);
		if (strcmp(json_string_value(json_object_get(p, "platform")),
			   "apns") == 0)
			a = json_integer_value(json_object_get(p, "job_id"));
	}
	json_decref(r);
	ck_assert_int_gt(a, 0);
	res = outcome(a, PR_OUTCOME_RETRY, 503, "ServiceUnavailable", "tok-a");
	res.retry_at = now + 1;
	{
		int rv;
		json_decref(report(st, &res, 1, now, &rv));
		ck_assert_int_eq(rv, PR_OK);
	}
	ck_assert_int_eq(pushes_in(st, "dead"), 1);

	/* Listing: newest first, paged by cursor, filtered. */
	job = (struct pr_store_job){.op = PR_STORE_MSG_LIST};
	job.limit = 2;
	r = admin_job(st, &job, PR_OK);
	m = json_object_get(r, "messages");
	ck_assert_uint_eq(json_array_size(m), 2);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(m, 0), "id")),
	    "m-4");
	ck_assert(json_is_integer(json_object_get(r, "next")));
	job = (struct pr_store_job){.op = PR_STORE_MSG_LIST};
	job.limit = 10;
	job.after = json_integer_value(json_object_get(r, "next"));
	json_decref(r);
	r = admin_job(st, &job, PR_OK);
	m = json_object_get(r, "messages");
	ck_assert_uint_eq(json_array_size(m), 3);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(m, 0), "id")),
	    "m-2");
	ck_assert(json_is_null(json_object_get(r, "next")));
	json_decref(r);
	job = (struct pr_store_job){.op = PR_STORE_MSG_LIST};
	job.user = "bob";
	r = admin_job(st, &job, PR_OK);
	ck_assert_uint_eq(json_array_size(json_object_get(r, "messages")), 2);
	json_decref(r);
	job = (struct pr_store_job){.op = PR_STORE_MSG_LIST};
	job.state = "dead";
	r = admin_job(st, &job, PR_OK);
	m = json_object_get(r, "messages");
	ck_assert_uint_eq(json_array_size(m), 1);
	cur = json_string_value(json_object_get(json_array_get(m, 0), "id"));
	ck_assert_str_eq(cur, "m-4");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(m, 0),
							   "push_state")),
			 "dead");
	json_decref(r);
	job = (struct pr_store_job){.op = PR_STORE_MSG_LIST};
	job.platform = "fcm";
	r = admin_job(st, &job, PR_OK);
	ck_assert_uint_eq(json_array_size(json_object_get(r, "messages")), 1);
	json_decref(r);
	job = (struct pr_store_job){.op = PR_STORE_MSG_LIST};
	job.since = now + 1;
	r = admin_job(st, &job, PR_OK);
	ck_assert_uint_eq(json_array_size(json_object_get(r, "messages")), 0);
	json_decref(r);

	/* Show: deliveries, the push job and its attempt. */
	job = (struct pr_store_job){.op = PR_STORE_MSG_SHOW};
	job.item_ext = "m-4";
	r = admin_job(st, &job, PR_OK);
	ck_assert_str_eq(json_string_value(json_object_get(r, "user")),
			 "alice");
	ck_assert_uint_eq(json_array_size(json_object_get(r, "deliveries")), 1);
	p = json_array_get(json_object_get(r, "pushes"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(p, "job_id")), a);
	ck_assert_str_eq(json_string_value(json_object_get(p, "state")),
			 "dead");
	m = json_array_get(json_object_get(p, "history"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(m, "status")), 503);
	ck_assert_int_eq(json_integer_value(json_object_get(m, "latency_ms")),
			 42);
	ck_assert_str_eq(json_string_value(json_object_get(m, "provider")),
			 "apns");
	json_decref(r);
	job = (struct pr_store_job){.op = PR_STORE_MSG_SHOW};
	job.item_ext = "nope";
	admin_job(st, &job, PR_ERR_NOTFOUND);

	/* Retry one; a pending job cannot be retried; retry all dead. */
	job = (struct pr_store_job){.op = PR_STORE_PUSH_RETRY};
	job.item_id = a;
	json_decref(admin_job(st, &job, PR_OK));
	ck_assert_int_eq(pushes_in(st, "dead"), 0);
	ck_assert_int_eq(
	    q1("SELECT attempts FROM push_jobs WHERE id = %lld", (long long)a),
	    0);
	job = (struct pr_store_job){.op = PR_STORE_PUSH_RETRY};
	job.item_id = a;
	admin_job(st, &job, PR_ERR_INVAL);
	job = (struct pr_store_job){.op = PR_STORE_PUSH_RETRY};
	job.item_id = 99999;
	admin_job(st, &job, PR_ERR_NOTFOUND);
	exec_sql("UPDATE push_jobs SET state = 'dead'");
	job = (struct pr_store_job){.op = PR_STORE_RETRY_DEAD};
	job.limit = 1;
	r = admin_job(st, &job, PR_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "retried")), 1);
	json_decref(r);
	job = (struct pr_store_job){.op = PR_STORE_RETRY_DEAD};
	r = admin_job(st, &job, PR_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "retried")), 1);
	json_decref(r);
	ck_assert_int_eq(pushes_in(st, "pending"), 2);

	/* Purge: the message, its deliveries and its pushes. */
	job = (struct pr_store_job){.op = PR_STORE_MSG_PURGE};
	job.item_ext = "m-4";
	json_decref(admin_job(st, &job, PR_OK));
	job = (struct pr_store_job){.op = PR_STORE_MSG_PURGE};
	job.item_ext = "m-4";
	admin_job(st, &job, PR_ERR_NOTFOUND);
	ck_assert_int_eq(count_of(st, "messages"), 4);
	pr_store_free(st);
	ck_assert_int_eq(q1("SELECT count(*) FROM deliveries d JOIN messages m"
			    " ON m.id = d.message_id WHERE m.ext_id = 'm-4'"),
			 0);
	ck_assert_int_eq(
	    q1("SELECT count(*) FROM push_jobs WHERE id = %lld", (long long)a),
	    0);
	/* The user listing walks its index. */
	ck_assert_int_eq(q1("SELECT count(*) FROM sqlite_master WHERE name ="
			    " 'messages_user'"),
			 1);
}
END_TEST

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How fast a reconnecting device pages through a deep inbox (printed, not
 * asserted: machines differ). */
START_TEST(test_inbox_fetch_rate)
{
	enum { N = 10000, BATCH = 1000, PAGE = 500 };
	static char ids[N][16];
	static struct pr_event evs[BATCH];
	struct pr_store *st = open_store();
	int64_t after = 0, expect = 1;
	long pages = 0, msgs = 0;
	double t0, dt;
	json_t *r, *m;
	size_t i;
	int more = 1, in_order = 1;

	json_decref(put_device(st, "phone", "alice", "tok-a"));
	for (int b = 0; b < N / BATCH; b++) {
		for (int k = 0; k < BATCH; k++) {
			snprintf(ids[b * BATCH + k], sizeof(ids[0]), "m-%d",
				 b * BATCH + k);
			evs[k] = event(ids[b * BATCH + k], "alice");
			evs[k].payload =
			    "{\"text\":\"a message of some length, as chat"
			    " messages go\",\"conv\":\"conv-9\",\"from\":"
			    "\"bob\"}";
		}
		ck_assert_int_eq(ingest(st, evs, BATCH, NULL, 0), PR_OK);
	}
	t0 = mono();
	while (more) {
		r = fetch(st, "phone", "alice", after, PAGE);
		/* (No ck_assert in the timed loop: each one is a write to
		 * the runner.) */
		json_array_foreach(json_object_get(r, "messages"), i, m)
		{
			if (json_integer_value(json_object_get(m, "seq")) !=
			    expect)
				in_order = 0;
			expect++;
			msgs++;
		}
		after = json_integer_value(json_object_get(r, "next"));
		more = json_is_true(json_object_get(r, "more"));
		json_decref(r);
		pages++;
	}
	dt = mono() - t0;
	ck_assert(in_order);
	ck_assert_int_eq(msgs, N);
	ck_assert_int_eq(pages, N / PAGE);
	printf("inbox fetch: %d deliveries in %ld pages of %d: %.3f s,"
	       " %.0f pages/s, %.0f messages/s\n",
	       N, pages, PAGE, dt, (double)pages / dt, (double)msgs / dt);
	fflush(stdout);
	pr_store_free(st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_schema_created);
	tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_ingest_queued_and_duplicate);
	tcase_add_test(tc, test_reopen_keeps_data);
	tcase_add_test(tc, test_limit_is_all_or_nothing);
	tcase_add_test(tc, test_failed_job_inside_a_batch);
	tcase_add_test(tc, test_fanout_seq_per_device);
	tcase_add_test(tc, test_explicit_targets);
	tcase_add_test(tc, test_waiting_for_a_device);
	tcase_add_test(tc, test_push_coalescing);
	tcase_add_test(tc, test_token_moves);
	tcase_add_test(tc, test_device_list_and_delete);
	tcase_add_test(tc, test_group_commit);
	tcase_add_test(tc, test_busy_when_queue_full);
	tcase_add_test(tc, test_disk_full);
	tcase_add_test(tc, test_sweep);
	tcase_add_test(tc, test_sweep_expires_waiting_push);
	tcase_add_test(tc, test_invalid_tokens_listing);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_checkpoint);
	tcase_add_test(tc, test_free_runs_pending_done);
	tcase_add_test(tc, test_migrate_v1);
	tcase_add_test(tc, test_push_claim);
	tcase_add_test(tc, test_push_claim_skip);
	tcase_add_test(tc, test_push_claim_ends_jobs);
	tcase_add_test(tc, test_push_recover);
	tcase_add_test(tc, test_push_results);
	tcase_add_test(tc, test_push_results_exhausted);
	tcase_add_test(tc, test_push_invalid_token);
	tcase_add_test(tc, test_ack);
	tcase_add_test(tc, test_push_interval);
	tcase_add_test(tc, test_sweep_push_states);
	tcase_add_test(tc, test_inbox_fetch);
	tcase_add_test(tc, test_inbox_fetch_read_only);
	tcase_add_test(tc, test_push_cancelled);
	tcase_add_test(tc, test_inbox_fetch_rate);
	tcase_add_test(tc, test_admin_ops);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

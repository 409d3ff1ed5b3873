/*
 * check_storage_faults.c - the daemon against a failing disk. Writes that
 * fail while it runs (read-only file system, I/O errors, a full disk, a
 * failing fsync; made by the tests/faultfs.so shim, since the tests run
 * as root where chmod does not stop a write) answer 503 with a JSON error
 * and Retry-After, /readyz says 503, and once the fault lifts the daemon
 * is ready again by itself. A read-only or damaged database at start-up
 * stops the daemon at once with one line naming the file, and leaves the
 * file as it was. A damaged or cut WAL at start-up keeps every
 * transaction before the damage, and the log says what was dropped; a
 * crash (kill -9, in the middle of writing a commit) loses nothing
 * acknowledged and is not reported as damage. Every event answered 202 is
 * counted in the database afterwards. Last, the pieces under it: SQLite's
 * log and its rate limit, and the log sink under a reopen.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "log.h"
#include "store.h"

#define MAX_IDS 16384

static struct th_daemon d, d2;
static char key[128];
static char ctl[400], dbpath[400], walpath[400];
/* Events answered 202, and events refused with 503. */
static char *acked[MAX_IDS], *refused[MAX_IDS];
static size_t n_acked, n_refused;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
	if (d2.dir[0])
		th_daemon_cleanup(&d2);
	memset(&d2, 0, sizeof(d2));
	for (size_t i = 0; i < n_acked; i++)
		free(acked[i]);
	for (size_t i = 0; i < n_refused; i++)
		free(refused[i]);
	n_acked = n_refused = 0;
}

/* Start on a fresh directory, make an ingest key, stop. */
static void prepare(const char *extra)
{
	ck_assert_msg(th_daemon_start(&d, NULL, extra) == 0,
		      "pushrelayd did not start; see %s", d.log);
	ck_assert_int_eq(th_make_key(&d, "chat", "ingest", key, sizeof(key)),
			 0);
	snprintf(ctl, sizeof(ctl), "%s/faultfs.ctl", d.dir);
	snprintf(dbpath, sizeof(dbpath), "%s/pushrelay.db", d.dir);
	snprintf(walpath, sizeof(walpath), "%s/pushrelay.db-wal", d.dir);
}

/* Start the daemon (again) with the fault shim preloaded. */
static int spawn_faulty(int wait)
{
	static char e_pre[600], e_path[600], e_ctl[600], e_asan[1200];
	const char *shim = getenv("PR_FAULTFS");
	const char *asan = getenv("ASAN_OPTIONS");
	const char *env[] = {e_pre, e_path, e_ctl, e_asan, NULL};

	ck_assert_msg(shim && *shim, "PR_FAULTFS (tests/faultfs.so) not set");
	snprintf(e_pre, sizeof(e_pre), "LD_PRELOAD=%s", shim);
	snprintf(e_path, sizeof(e_path), "FAULTFS_PATH=%s", dbpath);
	snprintf(e_ctl, sizeof(e_ctl), "FAULTFS_CONTROL=%s", ctl);
	/* The shim is loaded before the ASan runtime. */
	snprintf(e_asan, sizeof(e_asan),
		 "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
		 asan && *asan ? ":" : "");
	return th_daemon_spawn(&d, env, NULL, wait);
}

static void fault(const char *mode)
{
	if (mode)
		ck_assert_int_eq(th_write_file(ctl, mode), 0);
	else
		unlink(ctl);
}

/* POST one event; returns the status. With hdrs, the response headers
 * are copied there (malloc'd). */
static long post(const char *id, json_t **doc, char **hdrs)
{
	char auth[200], body[256];
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"user\":\"u\",\"payload\":{\"n\":\"%s\"}}",
		 id, id);
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "POST", "/v1/events", body, h, &r), 0);
	st = r.status;
	if (doc)
		*doc = json_loadb(r.body, r.len, 0, NULL);
	if (hdrs) {
		*hdrs = r.headers;
		r.headers = NULL;
	}
	th_resp_free(&r);
	return st;
}

/* Post id and remember the verdict: 202 (queued) or 503. */
static long post_note(const char *id)
{
	json_t *doc = NULL;
	long st = post(id, &doc, NULL);

	if (st == 202) {
		ck_assert_msg(n_acked < MAX_IDS, "too many events");
		acked[n_acked++] = strdup(id);
	} else if (st == 503) {
		ck_assert_msg(n_refused < MAX_IDS, "too many events");
		refused[n_refused++] = strdup(id);
	}
	json_decref(doc);
	return st;
}

static long get_status(const char *path)
{
	struct th_resp r;
	long st;

	ck_assert_int_eq(th_request(&d, TH_H1, "GET", path, NULL, NULL, &r), 0);
	st = r.status;
	th_resp_free(&r);
	return st;
}

/* Poll path until it answers want, up to timeout s; the last status. */
static long wait_status(const char *path, long want, double timeout)
{
	double end = now() + timeout;
	long st;

	while ((st = get_status(path)) != want && now() < end)
		usleep(50000);
	return st;
}

static int db_count(sqlite3 *db, const char *sql, const char *arg)
{
	sqlite3_stmt *s;
	int n = -1;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (arg)
		sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n;
}

static void integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *s;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
}

/* The daemon is stopped: every acked event is stored exactly once, no
 * refused event is stored (the 503 said "nothing was stored"), at most
 * `unanswered` other events are (ones whose answer a kill cut off), the
 * database is intact. */
static void verify_db_but(int unanswered)
{
	static const char q[] =
	    "SELECT count(*) FROM messages WHERE ext_id = ?";
	sqlite3 *db;
	int n;

	ck_assert_int_eq(
	    sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL),
	    SQLITE_OK);
	for (size_t i = 0; i < n_acked; i++)
		ck_assert_msg(db_count(db, q, acked[i]) == 1,
			      "event %s answered 202 is stored %d times",
			      acked[i], db_count(db, q, acked[i]));
	for (size_t i = 0; i < n_refused; i++)
		ck_assert_msg(db_count(db, q, refused[i]) == 0,
			      "event %s answered 503 was stored", refused[i]);
	n = db_count(db, "SELECT count(*) FROM messages", NULL);
	ck_assert_msg(n >= (int)n_acked && n <= (int)n_acked + unanswered,
		      "%d events stored, %zu answered 202, %d unanswered", n,
		      n_acked, unanswered);
	integrity_ok(db);
	sqlite3_close(db);
}

static void verify_db(void)
{
	verify_db_but(0);
}

static char *log_text(void)
{
	char *text = th_read_file(d.log);

	ck_assert_ptr_nonnull(text);
	return text;
}

/* The log lines at level ("error", "warn", "info"; NULL: any) that
 * contain needle (NULL: any). */
static int log_lines(const char *text, const char *level, const char *needle)
{
	const char *p = text;
	char pat[16] = "";
	int n = 0;

	/* log.c writes "<time>Z <level padded to 5> <message>". */
	if (level)
		snprintf(pat, sizeof(pat), "Z %-5s ", level);
	while (*p) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char line[4096];

		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		if ((!level || strstr(line, pat)) &&
		    (!needle || strstr(line, needle)))
			n++;
		p += len + (end ? 1 : 0);
	}
	return n;
}

/* ---- faults while the daemon runs ---------------------------------- */

static const struct runtime_case {
	const char *mode; /* the control file's words */
	const char *why;  /* what the 503 and the log say */
} runtime_cases[] = {
    {"erofs", "disk I/O error (Read-only file system)"},
    {"eio", "disk I/O error (Input/output error)"},
    {"enospc", "database or disk is full"},
    {"eio sync", "disk I/O error (Input/output error)"},
};

START_TEST(test_runtime_fault)
{
	const struct runtime_case *c = &runtime_cases[_i];
	char id[64], *hdrs = NULL, *text;
	json_t *doc = NULL;
	const char *msg;
	long st;
	int i;

	/* A sweep every second (a transaction that commits without writing,
	 * as the dispatcher's claims do on a relay with apps) and a WAL
	 * checkpoint every second, which the fault hits too. */
	prepare("[storage]\nsweep_interval = 1\ncheckpoint_interval = 1\n");
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	ck_assert_int_eq(spawn_faulty(1), 0);
	for (i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "before-%d", i);
		ck_assert_int_eq(post_note(id), 202);
	}
	ck_assert_int_eq(get_status("/readyz"), 200);

	fault(c->mode);
	st = post("during-0", &doc, &hdrs);
	ck_assert_msg(st == 503, "%s: POST answered %ld", c->mode, st);
	refused[n_refused++] = strdup("during-0");
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(doc, "error"), "code")),
			 "storage_unavailable");
	msg = json_string_value(
	    json_object_get(json_object_get(doc, "error"), "message"));
	ck_assert_msg(msg && strstr(msg, c->why), "%s: message %s", c->mode,
		      msg ? msg : "(none)");
	ck_assert_msg(strstr(hdrs, "Retry-After:") != NULL, "%s", hdrs);
	json_decref(doc);
	free(hdrs);
	/* Not ready while the fault lasts, whatever else the store does in
	 * between. */
	for (i = 1; i < 12; i++) {
		usleep(200000);
		ck_assert_int_eq(get_status("/readyz"), 503);
		snprintf(id, sizeof(id), "during-%d", i);
		ck_assert_int_eq(post_note(id), 503);
	}
	ck_assert_int_eq(get_status("/healthz"), 200);

	/* The fault lifts: ready again without a request or a restart. */
	fault(NULL);
	ck_assert_int_eq(wait_status("/readyz", 200, 10.0), 200);
	for (i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "after-%d", i);
		ck_assert_int_eq(post_note(id), 202);
	}
	/* Again, to see that recovery left nothing behind. */
	fault(c->mode);
	ck_assert_int_eq(post_note("again-0"), 503);
	fault(NULL);
	ck_assert_int_eq(wait_status("/readyz", 200, 10.0), 200);
	ck_assert_int_eq(post_note("again-1"), 202);

	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	text = log_text();
	ck_assert_msg(log_lines(text, "error", c->why) >= 2,
		      "%s: no error line with the cause in the log:\n%s",
		      c->mode, text);
	ck_assert_msg(log_lines(text, "info", "commit again") >= 1,
		      "%s: the recovery is not in the log:\n%s", c->mode, text);
	free(text);
	verify_db();
}
END_TEST

static void copy_out(const char *from, const char *to)
{
	char *buf = malloc(1 << 20);
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(in >= 0, "cannot read %s", from);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(out, 0);
	while ((n = read(in, buf, 1 << 20)) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	close(out);
	free(buf);
}

/* Can this system give us a user and mount namespace? */
static int have_namespaces(void)
{
	return system("unshare -rm sh -c 'mount -t tmpfs -o size=64k tmpfs "
		      "/mnt' >/dev/null 2>&1") == 0;
}

/*
 * A real full disk: the daemon's database on a small tmpfs of its own
 * (a user and mount namespace), filled up from outside through
 * /proc/PID/root, then emptied.
 */
START_TEST(test_real_enospc)
{
	static const char script[] =
	    "mount -t tmpfs -o size=2m tmpfs \"$0/fs\" && "
	    "cp \"$0/pushrelay.db\" \"$0/fs/\" && exec \"$@\"";
	char dir[300], filler[600], id[64], *conf, *p, fixed[8192];
	const char *wrap[] = {"unshare", "-rm", "sh", "-c", script, dir, NULL};
	static char buf[65536];
	json_t *doc = NULL;
	const char *msg;
	int fd, i;

	if (!have_namespaces()) {
		printf("no user+mount namespaces here: the real ENOSPC case "
		       "is not run\n");
		return;
	}
	prepare(NULL);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	snprintf(dir, sizeof(dir), "%.256s", d.dir);
	snprintf(fixed, sizeof(fixed), "%s/fs", dir);
	ck_assert_int_eq(mkdir(fixed, 0700), 0);
	conf = th_read_file(d.conf);
	p = strstr(conf, dbpath);
	ck_assert_ptr_nonnull(p);
	snprintf(fixed, sizeof(fixed), "%.*s%s/fs/pushrelay.db%s",
		 (int)(p - conf), conf, dir, p + strlen(dbpath));
	free(conf);
	ck_assert_int_eq(th_write_file(d.conf, fixed), 0);
	ck_assert_int_eq(th_daemon_spawn(&d, NULL, wrap, 1), 0);
	/* The daemon's files, as seen from here. */
	snprintf(dbpath, sizeof(dbpath), "/proc/%d/root%s/fs/pushrelay.db",
		 (int)d.pid, dir);
	snprintf(filler, sizeof(filler), "/proc/%d/root%s/fs/filler",
		 (int)d.pid, dir);
	for (i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "before-%d", i);
		ck_assert_int_eq(post_note(id), 202);
	}

	fd = open(filler, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	memset(buf, 'f', sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	ck_assert_int_eq(post("full-0", &doc, NULL), 503);
	refused[n_refused++] = strdup("full-0");
	msg = json_string_value(
	    json_object_get(json_object_get(doc, "error"), "message"));
	ck_assert_msg(msg && strstr(msg, "database or disk is full"), "%s",
		      msg ? msg : "(none)");
	json_decref(doc);
	for (i = 1; i < 4; i++) {
		usleep(200000);
		ck_assert_int_eq(get_status("/readyz"), 503);
		snprintf(id, sizeof(id), "full-%d", i);
		ck_assert_int_eq(post_note(id), 503);
	}

	ck_assert_int_eq(unlink(filler), 0);
	ck_assert_int_eq(wait_status("/readyz", 200, 10.0), 200);
	for (i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "after-%d", i);
		ck_assert_int_eq(post_note(id), 202);
	}
	/* The database dies with the namespace, and SQLite resolves
	 * /proc/PID/root to our own root: copy its files out, with the
	 * daemon stopped for a moment, and check the copy. */
	kill(d.pid, SIGSTOP);
	snprintf(fixed, sizeof(fixed), "%s/copy.db", dir);
	copy_out(dbpath, fixed);
	snprintf(filler, sizeof(filler), "%s-wal", dbpath);
	snprintf(fixed, sizeof(fixed), "%s/copy.db-wal", dir);
	copy_out(filler, fixed);
	kill(d.pid, SIGCONT);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	snprintf(dbpath, sizeof(dbpath), "%s/copy.db", dir);
	verify_db();
}
END_TEST

/* ---- start-up ------------------------------------------------------- */

/* A whole file, for before/after comparisons. */
struct blob {
	unsigned char *p;
	size_t len;
};

static struct blob slurp(const char *path)
{
	struct blob b = {NULL, 0};
	struct stat sb;
	FILE *fp = fopen(path, "rb");

	ck_assert_msg(fp != NULL, "cannot read %s", path);
	ck_assert_int_eq(fstat(fileno(fp), &sb), 0);
	b.len = (size_t)sb.st_size;
	b.p = malloc(b.len + 1);
	ck_assert_ptr_nonnull(b.p);
	ck_assert_uint_eq(fread(b.p, 1, b.len, fp), b.len);
	fclose(fp);
	return b;
}

static void same_file(const char *path, struct blob *before)
{
	struct blob now = slurp(path);

	ck_assert_msg(
	    now.len == before->len && memcmp(now.p, before->p, now.len) == 0,
	    "%s was modified (%zu -> %zu bytes)", path, before->len, now.len);
	free(now.p);
	free(before->p);
	before->p = NULL;
}

/* Overwrite len bytes at off with a pattern. */
static void scribble(const char *path, long off, size_t len, int byte)
{
	unsigned char buf[65536];
	int fd = open(path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_le(len, sizeof(buf));
	memset(buf, byte, len);
	ck_assert_int_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static size_t log_size(void)
{
	struct stat sb;

	return stat(d.log, &sb) == 0 ? (size_t)sb.st_size : 0;
}

/*
 * Start a daemon that must refuse to: it exits non-zero within a few
 * seconds, with exactly one error line, which names the database and
 * holds `cause`. The database file is as it was before.
 */
static void refuses_to_start(int faulty, const char *const *wrap,
			     const char *cause)
{
	struct blob before = slurp(dbpath);
	size_t from = log_size();
	double t0 = now();
	char *text;
	int st;

	if (faulty)
		ck_assert_int_eq(spawn_faulty(0), 0);
	else
		ck_assert_int_eq(th_daemon_spawn(&d, NULL, wrap, 0), 0);
	st = th_daemon_stop(&d, 0, 10.0);
	ck_assert_msg(st > 0 && st < 128, "exit status %d", st);
	ck_assert_msg(now() - t0 < 5.0, "took %.1f s to give up", now() - t0);
	text = log_text();
	ck_assert_msg(log_lines(text + from, "error", NULL) == 1 &&
			  log_lines(text + from, "warn", NULL) == 0,
		      "want one error line and no warning:\n%s", text + from);
	ck_assert_msg(log_lines(text + from, "error", dbpath) == 1,
		      "the error does not name %s:\n%s", dbpath, text + from);
	ck_assert_msg(log_lines(text + from, "error", cause) == 1,
		      "the error does not say '%s':\n%s", cause, text + from);
	free(text);
	same_file(dbpath, &before);
}

/* Post n events "<prefix>-<i>" (each answered 202), payload bytes each. */
static void post_many(const char *prefix, int n, size_t payload)
{
	char auth[200], id[64], *body = malloc(payload + 256);
	const char *h[] = {auth, "Content-Type: application/json", NULL};

	ck_assert_ptr_nonnull(body);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	for (int i = 0; i < n; i++) {
		struct th_resp r;
		int len;

		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		len = snprintf(body, payload + 256,
			       "{\"id\":\"%s\",\"user\":\"u\",\"payload\":{"
			       "\"pad\":\"",
			       id);
		memset(body + len, 'p', payload);
		snprintf(body + len + payload, 256, "\"}}");
		ck_assert_int_eq(
		    th_request(&d, TH_H1, "POST", "/v1/events", body, h, &r),
		    0);
		ck_assert_msg(r.status == 202, "%s: %ld", id, r.status);
		th_resp_free(&r);
		acked[n_acked++] = strdup(id);
	}
	free(body);
}

/* Restart normally and check that the acked events are all there. */
static void starts_and_has_everything(void)
{
	ck_assert_int_eq(th_daemon_restart(&d), 0);
	ck_assert_int_eq(get_status("/readyz"), 200);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	verify_db();
}

/* Read-only at start-up, as the shim makes it: opening the database for
 * writing fails with EROFS. */
START_TEST(test_readonly_at_startup)
{
	prepare(NULL);
	post_many("ro", 10, 10);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	fault("erofs open");
	refuses_to_start(1, NULL, "Read-only file system");
	fault(NULL);
	starts_and_has_everything();
}
END_TEST

/* The same on a real read-only mount (a bind mount in a user and mount
 * namespace), where the system has one. */
START_TEST(test_readonly_mount_at_startup)
{
	static const char script[] =
	    "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" "
	    "&& exec \"$@\"";
	char rodir[300], *conf, *p, fixed[8192], old[400];
	const char *wrap[] = {"unshare", "-rm", "sh", "-c",
			      script,	 rodir, NULL};

	if (!have_namespaces()) {
		printf("no user+mount namespaces here: the read-only mount "
		       "case is not run\n");
		return;
	}
	prepare(NULL);
	post_many("mnt", 5, 10);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	/* Move the database to a directory of its own, mounted read-only
	 * in the daemon's namespace (its log and sockets stay writable). */
	snprintf(rodir, sizeof(rodir), "%.256s/ro", d.dir);
	ck_assert_int_eq(mkdir(rodir, 0700), 0);
	snprintf(old, sizeof(old), "%s", dbpath);
	snprintf(dbpath, sizeof(dbpath), "%s/pushrelay.db", rodir);
	ck_assert_int_eq(rename(old, dbpath), 0);
	conf = th_read_file(d.conf);
	p = strstr(conf, old);
	ck_assert_ptr_nonnull(p);
	snprintf(fixed, sizeof(fixed), "%.*s%s%s", (int)(p - conf), conf,
		 dbpath, p + strlen(old));
	free(conf);
	ck_assert_int_eq(th_write_file(d.conf, fixed), 0);
	refuses_to_start(0, wrap, "Read-only file system");
	starts_and_has_everything();
}
END_TEST

/* The first bytes of the file are garbage: not a database any more. */
START_TEST(test_damaged_header_at_startup)
{
	prepare(NULL);
	post_many("hdr", 10, 10);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	scribble(dbpath, 0, 100, 0x5a);
	refuses_to_start(0, NULL, "not a database");
}
END_TEST

/* A leaf page of the messages table in the middle of the file (dbstat
 * says which; the middle page when it is not built in). */
static long middle_page(long *page_size)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long pages = 0, page = 0;
	int n = 0, i = 0;

	ck_assert_int_eq(
	    sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	*page_size = db_count(db, "PRAGMA page_size", NULL);
	pages = db_count(db, "PRAGMA page_count", NULL);
	if (sqlite3_prepare_v2(db,
			       "SELECT pageno FROM dbstat WHERE name = "
			       "'messages' AND pagetype = 'leaf' "
			       "ORDER BY pageno",
			       -1, &s, NULL) == SQLITE_OK) {
		while (sqlite3_step(s) == SQLITE_ROW)
			n++;
		sqlite3_reset(s);
		while (sqlite3_step(s) == SQLITE_ROW)
			if (i++ == n / 2)
				page = sqlite3_column_int(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return page > 1 ? page : pages / 2;
}

/* A damaged page in the middle of a populated database: the start-up
 * quick_check finds it. */
START_TEST(test_damaged_page_at_startup)
{
	long page, size;
	char *text;

	prepare(NULL);
	post_many("page", 150, 1000);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	page = middle_page(&size);
	ck_assert_int_gt(page, 2);
	scribble(dbpath, (page - 1) * size + 8, (size_t)size - 16, 0xa5);
	refuses_to_start(0, NULL, "quick_check");
	text = log_text();
	ck_assert_int_eq(log_lines(text, "error", "damaged"), 1);
	free(text);
}
END_TEST

/* ---- a damaged WAL at start-up -------------------------------------- */

/* Replace the first `from` in the config file conf with `to`. */
static void conf_replace(const char *conf, const char *from, const char *to)
{
	char *text = th_read_file(conf), *p, fixed[8192];

	ck_assert_ptr_nonnull(text);
	p = strstr(text, from);
	ck_assert_msg(p != NULL, "no '%s' in %s", from, conf);
	snprintf(fixed, sizeof(fixed), "%.*s%s%s", (int)(p - text), text, to,
		 p + strlen(from));
	free(text);
	ck_assert_int_eq(th_write_file(conf, fixed), 0);
}

enum wal_damage { WAL_FLIP, WAL_CUT, WAL_HEADER, WAL_CUT_NO_SHM };

static const char *const wal_damage_names[] = {"flip", "cut", "header",
					       "cut, no -shm"};

/* How many copies of a damaged WAL are kept beside wal. */
static int wal_copies(const char *wal)
{
	char pat[600];
	glob_t g;
	int n = 0;

	snprintf(pat, sizeof(pat), "%s.damaged-*", wal);
	if (glob(pat, 0, NULL, &g) == 0)
		for (size_t i = 0; i < g.gl_pathc; i++)
			n += strstr(g.gl_pathv[i], ".tmp") == NULL;
	globfree(&g);
	return n;
}

/* mxFrame of the first wal-index header in db's -shm file: the frames
 * the writer knew committed (the premise of a case), or -1. */
static long shm_mx(const char *db)
{
	char path[600];
	unsigned char h[48];
	uint32_t mx;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s-shm", db);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = pread(fd, h, sizeof(h), 0);
	close(fd);
	if (n != (ssize_t)sizeof(h))
		return -1;
	memcpy(&mx, h + 16, 4);
	return (long)mx;
}

#define PAGE  4096L
#define FRAME (24 + PAGE)

/* Whole frames in a WAL of size bytes. */
static long wal_frames(off_t size)
{
	return size > 32 ? (long)((size - 32) / FRAME) : 0;
}

/*
 * Events "a-*" are checkpointed into the database (a clean stop), events
 * "b-*" are only in the WAL when the daemon is killed; then the WAL is
 * damaged: bytes flipped in its last frame (the last commit), cut inside
 * its last frame, or its header overwritten. The -shm file the killed
 * daemon left records every frame as committed, so the first two lose
 * acknowledged transactions: the daemon starts, keeps every transaction
 * before the damage, warns once naming what was lost and keeps one copy
 * of the WAL; the database passes integrity_check. The same cut without
 * the -shm (as after a system crash, or a copied database) is not called
 * a loss: nothing says the cut frame had committed, so the log says at
 * info what SQLite discards, and no copy is made. A damaged header is an
 * error either way.
 */
START_TEST(test_damaged_wal_at_startup)
{
	enum wal_damage how = (enum wal_damage)_i;
	const size_t n_a = 10, n_b = 12;
	size_t lost_from, from;
	struct stat sb;
	char *text, shm[420];
	long page = PAGE, frame = FRAME;

	prepare(NULL);
	post_many("a", (int)n_a, 10);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	ck_assert_msg(stat(walpath, &sb) != 0 || sb.st_size == 0,
		      "the WAL is still there after a clean stop");
	ck_assert_int_eq(th_daemon_restart(&d), 0);
	/* One transaction per event (each is answered before the next is
	 * sent), and nothing else writes meanwhile. */
	post_many("b", (int)n_b, 10);
	kill(d.pid, SIGKILL);
	ck_assert_int_eq(th_daemon_stop(&d, 0, 5), 128 + SIGKILL);
	ck_assert_int_eq(stat(walpath, &sb), 0);
	ck_assert_msg(sb.st_size > 32 + (off_t)n_b * frame,
		      "the WAL holds %lld bytes", (long long)sb.st_size);
	ck_assert_int_eq((sb.st_size - 32) % frame, 0);
	/* Every frame was committed, and the -shm says so. */
	ck_assert_int_eq(shm_mx(dbpath), wal_frames(sb.st_size));
	switch (how) {
	case WAL_FLIP:
		/* Page bytes of the last frame: its checksum fails. */
		scribble(walpath, (long)sb.st_size - page / 2, 64, 0xff);
		lost_from = n_a + n_b - 1;
		break;
	case WAL_CUT:
	case WAL_CUT_NO_SHM:
		ck_assert_int_eq(truncate(walpath, sb.st_size - page / 2), 0);
		lost_from = n_a + n_b - 1;
		if (how == WAL_CUT_NO_SHM) {
			snprintf(shm, sizeof(shm), "%s-shm", dbpath);
			ck_assert_int_eq(unlink(shm), 0);
		}
		break;
	default:
		scribble(walpath, 0, 32, 0x33);
		lost_from = n_a;
		break;
	}

	from = log_size();
	ck_assert_int_eq(th_daemon_restart(&d), 0);
	ck_assert_int_eq(get_status("/readyz"), 200);
	text = log_text();
	if (how == WAL_HEADER) {
		ck_assert_msg(log_lines(text + from, "error",
					"WAL header is damaged") == 1,
			      "%s", text + from);
	} else if (how == WAL_CUT_NO_SHM) {
		ck_assert_msg(log_lines(text + from, "warn", NULL) == 0 &&
				  log_lines(text + from, "error", NULL) == 0,
			      "a cut WAL without a -shm is not a loss:\n%s",
			      text + from);
		ck_assert_msg(log_lines(text + from, "info",
					"no valid -shm index says") == 1,
			      "%s", text + from);
	} else {
		ck_assert_msg(log_lines(text + from, "warn",
					"WAL is damaged or cut short") == 1,
			      "%s", text + from);
		ck_assert_msg(log_lines(text + from, "warn",
					"1 committed transaction is lost") == 1,
			      "%s", text + from);
		ck_assert_msg(log_lines(text + from, "info", "recovered") == 1,
			      "SQLite's recovery is not in the log:\n%s",
			      text + from);
	}
	if (how == WAL_CUT_NO_SHM) {
		ck_assert_int_eq(wal_copies(walpath), 0);
	} else {
		ck_assert_msg(
		    log_lines(text + from, NULL, "a copy is kept in") == 1,
		    "%s", text + from);
		ck_assert_int_eq(wal_copies(walpath), 1);
	}
	free(text);

	/* The daemon takes the lost events again as new ones. */
	for (size_t i = lost_from; i < n_a + n_b; i++) {
		json_t *doc = NULL;

		ck_assert_int_eq(post(acked[i], &doc, NULL), 202);
		ck_assert_str_eq(
		    json_string_value(json_object_get(
			json_array_get(json_object_get(doc, "results"), 0),
			"status")),
		    "queued");
		json_decref(doc);
	}
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	printf("WAL %s: kept %zu of %zu events, re-sent the rest\n",
	       wal_damage_names[how], lost_from, n_a + n_b);
	verify_db();
}
END_TEST

/* POST an event the daemon may die answering: the status, or 0. */
static long post_try(const char *id)
{
	char auth[200], body[256];
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st = 0;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(body, sizeof(body),
		 "{\"id\":\"%s\",\"user\":\"u\",\"payload\":{\"n\":\"%s\"}}",
		 id, id);
	if (th_request(&d, TH_H1, "POST", "/v1/events", body, h, &r) == 0)
		st = r.status;
	th_resp_free(&r);
	return st;
}

/* After a crash: the daemon starts with no warning, no error and no copy
 * of the WAL, and the log says at info what SQLite discarded. */
static void restarts_quietly(const char *what, int discarded)
{
	size_t from = log_size();
	char *text;

	ck_assert_int_eq(th_daemon_restart(&d), 0);
	ck_assert_int_eq(get_status("/readyz"), 200);
	text = log_text();
	ck_assert_msg(log_lines(text + from, "warn", NULL) == 0 &&
			  log_lines(text + from, "error", NULL) == 0,
		      "%s: a crash is reported as a problem:\n%s", what,
		      text + from);
	if (discarded)
		ck_assert_msg(log_lines(text + from, "info",
					"shows none of it had committed") == 1,
			      "%s: what SQLite discards is not in the "
			      "log:\n%s",
			      what, text + from);
	free(text);
	ck_assert_msg(wal_copies(walpath) == 0, "%s: a copy of the WAL", what);
}

/*
 * Killed between the two writes of a commit frame (faultfs "kill
 * commit"): the frame's header is written, its page is not, and the -shm
 * still ends at the commit before. Appending, that leaves the WAL cut
 * inside its last frame; in a WAL that SQLite started over in place (after
 * an automatic checkpoint), a commit frame whose checksum fails, followed
 * by the older WAL's frames. Neither lost anything acknowledged, and
 * neither is reported as damage.
 */
START_TEST(test_killed_mid_commit)
{
	int reuse = _i;
	char id[64];
	struct stat sb;
	long st, frames, mx;
	int i;

	prepare(NULL);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	ck_assert_int_eq(spawn_faulty(1), 0);
	post_many("a", 10, 10);
	fault(reuse ? "kill commit reuse" : "kill commit");
	/* In place: SQLite starts the WAL over after its automatic
	 * checkpoint at 1000 frames. */
	for (i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "k-%d", i);
		st = post_try(id);
		if (st != 202)
			break;
		ck_assert_msg(n_acked < MAX_IDS, "too many events");
		acked[n_acked++] = strdup(id);
	}
	ck_assert_msg(i < 3000, "the daemon was not killed");
	ck_assert_int_eq(th_daemon_stop(&d, 0, 5), 128 + SIGKILL);
	fault(NULL);

	ck_assert_int_eq(stat(walpath, &sb), 0);
	frames = wal_frames(sb.st_size);
	mx = shm_mx(dbpath);
	if (reuse) {
		/* The commit frame's header is in place, its page is an
		 * older frame's, and older frames follow. */
		ck_assert_int_eq((sb.st_size - 32) % FRAME, 0);
		ck_assert_msg(frames > mx + 1, "%ld frames, mxFrame %ld",
			      frames, mx);
	} else {
		/* The file ends 24 bytes into the commit frame, which the
		 * -shm never recorded. */
		ck_assert_int_eq((sb.st_size - 32) % FRAME, 24);
		ck_assert_msg(mx >= 0 && mx < frames + 1,
			      "%ld frames, mxFrame %ld", frames, mx);
	}
	restarts_quietly(
	    reuse ? "killed mid-commit, WAL reused" : "killed mid-commit", 1);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	printf("killed mid-commit%s after %zu events: nothing lost, "
	       "nothing reported\n",
	       reuse ? " (WAL started over)" : "", n_acked);
	verify_db();
}
END_TEST

/* A child that posts events as fast as they are answered and writes the
 * id of each one answered 202 to fd, until a request fails. */
static void poster(int fd, int round)
{
	char id[64];

	for (int i = 0;; i++) {
		snprintf(id, sizeof(id), "load%d-%d", round, i);
		if (post_try(id) != 202)
			_exit(0);
		dprintf(fd, "%s\n", id);
	}
}

/* kill -9 at a random moment under load, three times: each restart is
 * quiet, and every event answered 202 is there. */
START_TEST(test_killed_under_load)
{
	char path[400], *text, *line, *save = NULL;
	int fd, st;
	pid_t pids[2];

	prepare(NULL);
	snprintf(path, sizeof(path), "%s/acked.txt", d.dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	ck_assert_int_ge(fd, 0);
	srand((unsigned)time(NULL));
	for (int round = 0; round < 3; round++) {
		for (int k = 0; k < 2; k++) {
			pids[k] = fork();
			ck_assert_int_ge(pids[k], 0);
			if (pids[k] == 0)
				poster(fd, round * 2 + k);
		}
		usleep(200000 + (useconds_t)(rand() % 400000));
		kill(d.pid, SIGKILL);
		ck_assert_int_eq(th_daemon_stop(&d, 0, 5), 128 + SIGKILL);
		for (int k = 0; k < 2; k++)
			ck_assert_int_eq(waitpid(pids[k], &st, 0), pids[k]);
		restarts_quietly("killed under load", 0);
	}
	close(fd);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	text = th_read_file(path);
	ck_assert_ptr_nonnull(text);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		ck_assert_msg(n_acked < MAX_IDS, "too many events");
		acked[n_acked++] = strdup(line);
	}
	free(text);
	printf("killed under load 3 times: %zu events answered 202, all "
	       "kept\n",
	       n_acked);
	/* Each kill may cut off the answer to a poster's last event. */
	verify_db_but(3 * 2);
}
END_TEST

/*
 * A start refused after the WAL was found damaged leaves the WAL as it
 * was (the database is not touched), so the next start finds the same
 * damage: it says so again but keeps no second copy (a service manager
 * restarting a refused daemon must not fill the disk).
 */
START_TEST(test_refused_starts_keep_one_copy)
{
	long page, size;
	size_t from;
	char *text;
	int st;

	prepare(NULL);
	post_many("page", 150, 1000);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	page = middle_page(&size);
	ck_assert_int_gt(page, 2);
	ck_assert_int_eq(th_daemon_restart(&d), 0);
	post_many("b", 5, 10);
	kill(d.pid, SIGKILL);
	ck_assert_int_eq(th_daemon_stop(&d, 0, 5), 128 + SIGKILL);
	/* A garbage WAL header, and a damaged page that refuses the start. */
	scribble(walpath, 0, 32, 0x33);
	scribble(dbpath, (page - 1) * size + 8, (size_t)size - 16, 0xa5);

	for (int attempt = 0; attempt < 2; attempt++) {
		from = log_size();
		ck_assert_int_eq(th_daemon_spawn(&d, NULL, NULL, 0), 0);
		st = th_daemon_stop(&d, 0, 10.0);
		ck_assert_msg(st == 1, "exit status %d", st);
		text = log_text();
		ck_assert_msg(log_lines(text + from, "error",
					"WAL header is damaged") == 1,
			      "%s", text + from);
		ck_assert_msg(log_lines(text + from, "error",
					attempt ? "a copy was kept at an "
						  "earlier start in"
						: "a copy is kept in") == 1,
			      "start %d:\n%s", attempt + 1, text + from);
		ck_assert_msg(log_lines(text + from, "error", "quick_check") ==
				  1,
			      "%s", text + from);
		free(text);
		ck_assert_int_eq(wal_copies(walpath), 1);
	}
}
END_TEST

/*
 * The configured path is a symbolic link to the database in another
 * directory: SQLite keeps the -wal and -shm beside the target, and that
 * is where the WAL is checked and its copy kept.
 */
START_TEST(test_wal_behind_symlink)
{
	char data[300], target[400], wal[420], link_wal[420], *text;
	struct stat sb;
	size_t from;

	prepare(NULL);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	snprintf(data, sizeof(data), "%.256s/data", d.dir);
	ck_assert_int_eq(mkdir(data, 0700), 0);
	snprintf(target, sizeof(target), "%s/pushrelay.db", data);
	ck_assert_int_eq(rename(dbpath, target), 0);
	ck_assert_int_eq(symlink("data/pushrelay.db", dbpath), 0);
	ck_assert_int_eq(th_daemon_restart(&d), 0);
	post_many("b", 6, 10);
	kill(d.pid, SIGKILL);
	ck_assert_int_eq(th_daemon_stop(&d, 0, 5), 128 + SIGKILL);
	snprintf(wal, sizeof(wal), "%s-wal", target);
	snprintf(link_wal, sizeof(link_wal), "%s-wal", dbpath);
	ck_assert_int_eq(stat(wal, &sb), 0);
	ck_assert_int_ne(stat(link_wal, &sb), 0);
	/* Damage the last commit, which the -shm records. */
	ck_assert_int_eq(stat(wal, &sb), 0);
	scribble(wal, (long)sb.st_size - PAGE / 2, 64, 0xff);

	from = log_size();
	ck_assert_int_eq(th_daemon_restart(&d), 0);
	text = log_text();
	ck_assert_msg(
	    log_lines(text + from, "warn", "WAL is damaged or cut short") == 1,
	    "%s", text + from);
	free(text);
	ck_assert_int_eq(wal_copies(wal), 1);
	ck_assert_int_eq(wal_copies(link_wal), 0);
	ck_assert_int_eq(post(acked[n_acked - 1], NULL, NULL), 202);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	verify_db();
}
END_TEST

/*
 * A second daemon started on a database that a running one writes does
 * not read the live WAL (it could take frames being written for damage,
 * and copy them): the first one holds SQLite's lock on the -shm file, and
 * the check is skipped, at debug level.
 */
START_TEST(test_wal_in_use_not_checked)
{
	char own[400], needle[64], *text;

	prepare(NULL);
	post_many("a", 5, 10);
	/* The second daemon: its own ports and log, this database. */
	ck_assert_int_eq(th_daemon_start(&d2, NULL, NULL), 0);
	ck_assert_int_eq(th_daemon_stop(&d2, SIGTERM, 10), 0);
	snprintf(own, sizeof(own), "%s/pushrelay.db", d2.dir);
	conf_replace(d2.conf, own, dbpath);
	conf_replace(d2.conf, "level = info", "level = debug");
	ck_assert_int_eq(th_daemon_restart(&d2), 0);
	ck_assert_int_eq(th_daemon_stop(&d2, SIGTERM, 10), 0);

	text = th_read_file(d2.log);
	ck_assert_ptr_nonnull(text);
	snprintf(needle, sizeof(needle), "process %d has the database open",
		 (int)d.pid);
	ck_assert_msg(log_lines(text, "debug", needle) == 1, "%s", text);
	free(text);
	ck_assert_int_eq(wal_copies(walpath), 0);
	post_many("c", 5, 10);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	verify_db();
}
END_TEST

/* ---- the probe and [storage] max_size -------------------------------- */

/* Post an event with a payload of n bytes; the status. */
static long post_big(const char *id, size_t n)
{
	char auth[200], *body = malloc(n + 256);
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	struct th_resp r;
	long st;
	int len;

	ck_assert_ptr_nonnull(body);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	len = snprintf(body, n + 256,
		       "{\"id\":\"%s\",\"user\":\"u\",\"payload\":{\"pad\":\"",
		       id);
	memset(body + len, 'p', n);
	snprintf(body + len + n, 256, "\"}}");
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "POST", "/v1/events", body, h, &r), 0);
	st = r.status;
	th_resp_free(&r);
	free(body);
	if (st == 202)
		acked[n_acked++] = strdup(id);
	else if (st == 503)
		refused[n_refused++] = strdup(id);
	return st;
}

/*
 * A database at [storage] max_size (max_page_count is the pages it has,
 * none free): an event that needs a new page is refused (full), one that
 * fits in the pages there are is stored, and /readyz follows the writes:
 * a transaction that wrote rows makes storage healthy without a probe,
 * and after a failure that was not "full" (an I/O error) the probe tries
 * a write instead of calling the database full.
 */
START_TEST(test_probe_at_max_size)
{
	prepare("[storage]\nmax_size = 0\n");
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	/* Less than the database has: max_page_count stays at its pages. */
	conf_replace(d.conf, "max_size = 0", "max_size = 4k");
	ck_assert_int_eq(spawn_faulty(1), 0);
	ck_assert_int_eq(get_status("/readyz"), 200);

	/* Full: needs pages the limit does not allow. */
	ck_assert_int_eq(post_big("big-0", 6000), 503);
	ck_assert_int_eq(get_status("/readyz"), 503);
	usleep(1500000); /* a probe or two: still full */
	ck_assert_int_eq(get_status("/readyz"), 503);
	/* A small one fits: stored, and ready again at once. */
	ck_assert_int_eq(post_note("small-0"), 202);
	ck_assert_int_eq(get_status("/readyz"), 200);

	/* An I/O error, gone again: the probe writes, and succeeds. */
	fault("eio write");
	ck_assert_int_eq(post_note("eio-0"), 503);
	ck_assert_int_eq(get_status("/readyz"), 503);
	fault(NULL);
	ck_assert_int_eq(wait_status("/readyz", 200, 10.0), 200);
	ck_assert_int_eq(post_note("small-1"), 202);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	verify_db();
}
END_TEST

/* ---- SQLite's log, the log sink ---------------------------------------- */

static char unit_dir[300];

static void unit_teardown(void)
{
	char cmd[400];

	if (unit_dir[0] && !getenv("TH_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", unit_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", unit_dir);
	}
	unit_dir[0] = '\0';
}

static struct pr_config *unit_config(void)
{
	struct pr_config *cfg = pr_config_new();
	char path[400];

	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(th_tmpdir(unit_dir, sizeof(unit_dir)), 0);
	snprintf(path, sizeof(path), "%s/pushrelay.db", unit_dir);
	free(cfg->storage_path);
	cfg->storage_path = strdup(path);
	cfg->storage_synchronous = 2;
	cfg->storage_busy_timeout = 5000;
	cfg->storage_commit_batch = 1024;
	cfg->storage_max_pending_jobs = 65536;
	cfg->storage_max_messages = 10000000;
	cfg->storage_sweep_batch = 5000;
	cfg->storage_history = 86400;
	cfg->push_claim_batch = 256;
	return cfg;
}

/*
 * SQLite's log goes to ours through a rate limit with a budget per kind:
 * a flood of I/O errors (the write probe meets one every second while a
 * disk fails) does not crowd out a corruption report, and what was held
 * back is reported when the store closes, at the level of the worst line
 * held back. The callback leaves errno as SQLite set it, even when
 * writing the line fails (SQLite's unix VFS reads errno after logging).
 */
START_TEST(test_sqlite_log)
{
	struct pr_config *cfg = unit_config();
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char err[512] = "", logpath[400], *text;
	struct pr_store *st;
	int e;

	ck_assert_int_eq(pr_log_open("/dev/full"), 0);
	pr_log_set_level(PR_LOG_INFO);
	/* The store installs its log callback before SQLite's first use in
	 * the process (when tests do not fork, SQLite has been used). */
	ck_assert_int_eq(sqlite3_shutdown(), SQLITE_OK);
	st = pr_store_new(loop, cfg, err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);

	/* The line cannot be written (ENOSPC): errno is still SQLite's. */
	errno = EIO;
	sqlite3_log(SQLITE_WARNING, "a warning that cannot be written");
	e = errno;
	ck_assert_msg(e == EIO, "errno %d (%s) after logging", e, strerror(e));

	snprintf(logpath, sizeof(logpath), "%s/log", unit_dir);
	ck_assert_int_eq(pr_log_open(logpath), 0);
	for (int i = 0; i < 40; i++) {
		errno = EIO;
		sqlite3_log(SQLITE_IOERR_FSYNC, "os_unix.c:1: (5) fsync(%d)",
			    i);
		ck_assert_int_eq(errno, EIO);
	}
	sqlite3_log(SQLITE_CORRUPT, "database corruption at line 42");
	pr_store_free(st);
	text = th_read_file(logpath);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(log_lines(text, "error", "fsync(") == 10, "%s", text);
	ck_assert_msg(log_lines(text, "error", "database corruption") == 1,
		      "the corruption report was crowded out:\n%s", text);
	ck_assert_msg(log_lines(text, "error",
				"30 more messages were not "
				"logged") == 1,
		      "what was held back is not reported at error:\n%s", text);
	free(text);
	ck_assert_int_eq(pr_log_open("stderr"), 0);
	ev_loop_destroy(loop);
	pr_config_free(cfg);
}
END_TEST

#define LOG_LINES 50000

static _Atomic int writer_done;

static void *log_writer(void *arg)
{
	(void)arg;
	for (int i = 0; i < LOG_LINES; i++)
		pr_log(PR_LOG_INFO, NULL, "line %d", i);
	atomic_store(&writer_done, 1);
	return NULL;
}

/*
 * The log is reopened (a reload, logrotate) while another thread logs
 * (the store thread does): every line lands whole in one of the files,
 * none in a closed descriptor or on stderr.
 */
START_TEST(test_log_reopen_while_logging)
{
	char a[400], b[400], *ta, *tb;
	pthread_t t;
	int n, reopens = 0;

	ck_assert_int_eq(th_tmpdir(unit_dir, sizeof(unit_dir)), 0);
	snprintf(a, sizeof(a), "%s/a.log", unit_dir);
	snprintf(b, sizeof(b), "%s/b.log", unit_dir);
	pr_log_set_level(PR_LOG_INFO);
	ck_assert_int_eq(pr_log_open(a), 0);
	atomic_store(&writer_done, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, log_writer, NULL), 0);
	while (!atomic_load(&writer_done)) {
		ck_assert_int_eq(pr_log_open(reopens % 2 ? a : b), 0);
		if (reopens % 5 == 0)
			ck_assert_int_eq(pr_log_reopen(), 0);
		reopens++;
	}
	pthread_join(t, NULL);
	ta = th_read_file(a);
	tb = th_read_file(b);
	ck_assert_ptr_nonnull(ta);
	ck_assert_ptr_nonnull(tb);
	n = log_lines(ta, "info", "line ") + log_lines(tb, "info", "line ");
	ck_assert_msg(n == LOG_LINES,
		      "%d of %d lines in the files (%d reopens)", n, LOG_LINES,
		      reopens);
	free(ta);
	free(tb);
	ck_assert_int_eq(pr_log_open("stderr"), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storage_faults");
	TCase *tc = tcase_create("storage_faults");
	TCase *unit = tcase_create("log");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(
	    tc, test_runtime_fault, 0,
	    (int)(sizeof(runtime_cases) / sizeof(runtime_cases[0])));
	tcase_add_test(tc, test_real_enospc);
	tcase_add_test(tc, test_readonly_at_startup);
	tcase_add_test(tc, test_readonly_mount_at_startup);
	tcase_add_test(tc, test_damaged_header_at_startup);
	tcase_add_test(tc, test_damaged_page_at_startup);
	tcase_add_loop_test(tc, test_damaged_wal_at_startup, WAL_FLIP,
			    WAL_CUT_NO_SHM + 1);
	tcase_add_loop_test(tc, test_killed_mid_commit, 0, 2);
	tcase_add_test(tc, test_killed_under_load);
	tcase_add_test(tc, test_refused_starts_keep_one_copy);
	tcase_add_test(tc, test_wal_behind_symlink);
	tcase_add_test(tc, test_wal_in_use_not_checked);
	tcase_add_test(tc, test_probe_at_max_size);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(unit, NULL, unit_teardown);
	tcase_set_timeout(unit, 60);
	tcase_add_test(unit, test_sqlite_log);
	tcase_add_test(unit, test_log_reopen_while_logging);
	suite_add_tcase(s, unit);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

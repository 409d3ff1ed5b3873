/*
 * check_storage_faults.c - the daemon against a failing disk. Writes that
 * fail while it runs (read-only file system, I/O errors, a full disk, a
 * failing fsync; made by the tests/faultfs.so shim, since the tests run
 * as root where chmod does not stop a write) answer 503 with a JSON error
 * and Retry-After, /readyz says 503, and once the fault lifts the daemon
 * is ready again by itself. A read-only or damaged database at start-up
 * stops the daemon at once with one line naming the file, and leaves the
 * file as it was. A damaged or cut WAL at start-up keeps every
 * transaction before the damage, and the log says what was dropped.
 * Every event answered 202 is counted in the database afterwards.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_IDS 512

static struct th_daemon d;
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
 * refused event is stored (the 503 said "nothing was stored"), the
 * database is intact. */
static void verify_db(void)
{
	static const char q[] =
	    "SELECT count(*) FROM messages WHERE ext_id = ?";
	sqlite3 *db;

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
	ck_assert_int_eq(db_count(db, "SELECT count(*) FROM messages", NULL),
			 (int)n_acked);
	integrity_ok(db);
	sqlite3_close(db);
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

enum wal_damage { WAL_FLIP, WAL_CUT, WAL_HEADER };

static const char *const wal_damage_names[] = {"flip", "cut", "header"};

/* Is a copy of the damaged WAL beside the database? */
static int wal_copy_kept(void)
{
	char cmd[600], out[256] = "";
	FILE *fp;

	snprintf(cmd, sizeof(cmd), "ls %s.damaged-* 2>/dev/null", walpath);
	fp = popen(cmd, "r");
	ck_assert_ptr_nonnull(fp);
	if (!fgets(out, sizeof(out), fp))
		out[0] = '\0';
	pclose(fp);
	return out[0] != '\0';
}

/*
 * Events "a-*" are checkpointed into the database (a clean stop), events
 * "b-*" are only in the WAL when the daemon is killed; then the WAL is
 * damaged: bytes flipped in its last frame (the last commit), cut inside
 * its last frame, or its header overwritten. The daemon starts, keeps
 * every transaction before the damage, says in the log what was dropped
 * and keeps a copy of the WAL; the database passes integrity_check.
 */
START_TEST(test_damaged_wal_at_startup)
{
	enum wal_damage how = (enum wal_damage)_i;
	const size_t n_a = 10, n_b = 12;
	size_t lost_from, from;
	struct stat sb;
	char *text;
	long page = 4096, frame;

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
	frame = 24 + page;
	ck_assert_msg(sb.st_size > 32 + (off_t)n_b * frame,
		      "the WAL holds %lld bytes", (long long)sb.st_size);
	ck_assert_int_eq((sb.st_size - 32) % frame, 0);
	switch (how) {
	case WAL_FLIP:
		/* Page bytes of the last frame: its checksum fails. */
		scribble(walpath, (long)sb.st_size - page / 2, 64, 0xff);
		lost_from = n_a + n_b - 1;
		break;
	case WAL_CUT:
		ck_assert_int_eq(truncate(walpath, sb.st_size - page / 2), 0);
		lost_from = n_a + n_b - 1;
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
	} else {
		ck_assert_msg(log_lines(text + from, "warn",
					"WAL is damaged or cut short") == 1,
			      "%s", text + from);
		ck_assert_msg(log_lines(text + from, "info", "recovered") == 1,
			      "SQLite's recovery is not in the log:\n%s",
			      text + from);
	}
	ck_assert_msg(log_lines(text + from, NULL, "a copy is kept in") == 1,
		      "%s", text + from);
	free(text);
	ck_assert_msg(wal_copy_kept(), "no copy of the damaged WAL");

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

int main(void)
{
	Suite *s = suite_create("storage_faults");
	TCase *tc = tcase_create("storage_faults");
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
			    WAL_HEADER + 1);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * store-bench.c - the raw SQLite batched-insert rate: the bound a durable
 * ingest cannot beat on this machine.
 *
 * It creates a fresh database in a temporary directory, opened as
 * pushrelayd's store opens it (no memory statistics, no connection mutex)
 * and with the same PRAGMAs (WAL, synchronous FULL or NORMAL, foreign
 * keys, temp_store, cache_size, journal_size_limit: see sq_open() and
 * configure() in src/store_sqlite.c), the relay's tables (copied from migration
 * 1 there: keep them in step), and inserts N message rows with the relay's own
 * INSERT statement, B rows per BEGIN IMMEDIATE ... COMMIT (one WAL fsync
 * per transaction with synchronous=FULL). No HTTP, no JSON, no savepoints,
 * no thread hand-off: only the statement and the commit.
 *
 * With -f each row also does what the relay does per event for a user
 * with one device (look up the user's devices, take the device's next
 * seq, add the delivery row, take over the device's waiting push or add
 * one: fan_out() in src/store_sqlite.c), so the gap between -f and the
 * plain run is the cost of the fan-out, and the gap between -f and the
 * daemon is everything above SQLite. The statements are copies of the
 * relay's at the time of writing; when the store changes its SQL, change
 * them here too.
 *
 * Prints rows/s and the p50/p99/max time of one transaction. The
 * temporary directory is removed unless -k.
 *
 *   cc -O2 -Wall -Wextra -o store-bench store-bench.c -lsqlite3
 *   store-bench -s full -n 1000000 -b 1000 [-f] [-T 60] [-d DIR]
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SECONDS 3600

static const char schema[] =
    "CREATE TABLE apps ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " created_at INTEGER NOT NULL);"

    "CREATE TABLE devices ("
    " id INTEGER PRIMARY KEY,"
    " app_id INTEGER NOT NULL REFERENCES apps(id),"
    " device_id TEXT NOT NULL,"
    " user_id TEXT NOT NULL,"
    " platform TEXT NOT NULL,"
    " token TEXT,"
    " environment TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " last_seen_at INTEGER NOT NULL,"
    " next_seq INTEGER NOT NULL DEFAULT 1,"
    " acked_seq INTEGER NOT NULL DEFAULT 0,"
    " push_state TEXT NOT NULL DEFAULT 'ok'"
    "  CHECK (push_state IN ('ok', 'invalid')),"
    " UNIQUE (app_id, device_id),"
    " UNIQUE (app_id, platform, token));"
    "CREATE INDEX devices_user ON devices(app_id, user_id);"

    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY,"
    " app_id INTEGER NOT NULL REFERENCES apps(id),"
    " ext_id TEXT NOT NULL,"
    " user_id TEXT NOT NULL,"
    " payload TEXT,"
    " push TEXT,"
    " push_mode INTEGER NOT NULL DEFAULT 0,"
    " targets TEXT,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " pending_fanout INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (app_id, ext_id));"
    "CREATE INDEX messages_expiry ON messages(expires_at);"
    "CREATE INDEX messages_fanout ON messages(app_id, user_id)"
    " WHERE pending_fanout = 1;"

    "CREATE TABLE deliveries ("
    " device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " message_id INTEGER NOT NULL"
    "  REFERENCES messages(id) ON DELETE CASCADE,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (device_id, seq)) WITHOUT ROWID;"
    "CREATE INDEX deliveries_message ON deliveries(message_id);"

    "CREATE TABLE push_jobs ("
    " id INTEGER PRIMARY KEY,"
    " device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
    " message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight',"
    "  'sent', 'retry', 'dead', 'cancelled', 'expired',"
    "  'invalid_token')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at INTEGER NOT NULL,"
    " last_status INTEGER,"
    " last_reason TEXT,"
    " apns_id TEXT,"
    " provider_id TEXT,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE INDEX push_jobs_due ON push_jobs(state, next_attempt_at);"
    "CREATE INDEX push_jobs_device ON push_jobs(device_id, state);"
    "CREATE INDEX push_jobs_message ON push_jobs(message_id);"

    "INSERT INTO apps(id, name, created_at) VALUES (1, 'default', 0);"
    "INSERT INTO devices(app_id, device_id, user_id, platform, token,"
    " environment, created_at, last_seen_at)"
    " VALUES (1, 'bench-1', 'u', 'fcm', 't1', 'production', 0, 0);";

/* The relay's statements (stmt_sql[] in src/store_sqlite.c). */
enum {
	S_BEGIN,
	S_COMMIT,
	S_MSG,
	S_DEVS,
	S_SEQ,
	S_DELIVERY,
	S_COALESCE,
	S_PUSH,
	N_S
};
static const char *const sql[N_S] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_MSG] = "INSERT INTO messages(app_id, ext_id, user_id, payload,"
	      " push, push_mode, targets, created_at, expires_at)"
	      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
	      " ON CONFLICT (app_id, ext_id) DO NOTHING",
    [S_DEVS] = "SELECT id, next_seq,"
	       " token IS NOT NULL AND push_state = 'ok'"
	       " FROM devices WHERE app_id = ?1 AND user_id = ?2",
    [S_SEQ] = "UPDATE devices SET next_seq = ?2 WHERE id = ?1",
    [S_DELIVERY] = "INSERT INTO deliveries(device_id, seq, message_id,"
		   " created_at) VALUES (?1, ?2, ?3, ?4)",
    [S_COALESCE] = "UPDATE push_jobs SET message_id = ?1,"
		   " updated_at = ?2 WHERE device_id = ?3"
		   " AND state IN ('pending', 'retry')",
    [S_PUSH] = "INSERT INTO push_jobs(device_id, message_id, state,"
	       " next_attempt_at, created_at, updated_at)"
	       " VALUES (?1, ?2, 'pending', ?3, ?4, ?4)",
};

static sqlite3 *db;
static sqlite3_stmt *st[N_S];
/* The temporary directory and database, removed on the way out (even
 * through die()) unless -k. Empty until created. */
static char dir[4096], path[4200];
static int keep;

/* The database and the files SQLite keeps beside it, then the directory. */
static void rm_dir(void)
{
	static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
	char p[4300];

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, ext[i]);
		unlink(p);
	}
	if (rmdir(dir))
		fprintf(stderr, "store-bench: rmdir %s: %s\n", dir,
			strerror(errno));
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("store-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (db)
		fprintf(stderr, " (%s)", sqlite3_errmsg(db));
	fputc('\n', stderr);
	if (db) {
		for (int i = 0; i < N_S; i++)
			sqlite3_finalize(st[i]);
		sqlite3_close(db);
	}
	if (path[0] && !keep)
		rm_dir();
	exit(2);
}

static long num(const char *s, const char *what, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die("%s must be an integer %ld..%ld, not \"%s\"", what, lo, hi,
		    s);
	return v;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Run a statement that returns no row we need; die on failure. */
static void run(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		die("%s", sqlite3_sql(s));
	sqlite3_reset(s);
}

/* One event of the relay for a user with one device: seq, delivery, push. */
static void fan_out(int64_t msg, int64_t now)
{
	int64_t dev, seq;
	int pushable;

	sqlite3_bind_int64(st[S_DEVS], 1, 1);
	sqlite3_bind_text(st[S_DEVS], 2, "u", 1, SQLITE_STATIC);
	if (sqlite3_step(st[S_DEVS]) != SQLITE_ROW)
		die("no device row");
	dev = sqlite3_column_int64(st[S_DEVS], 0);
	seq = sqlite3_column_int64(st[S_DEVS], 1);
	pushable = sqlite3_column_int(st[S_DEVS], 2);
	while (sqlite3_step(st[S_DEVS]) == SQLITE_ROW)
		;
	sqlite3_reset(st[S_DEVS]);

	sqlite3_bind_int64(st[S_SEQ], 1, dev);
	sqlite3_bind_int64(st[S_SEQ], 2, seq + 1);
	run(st[S_SEQ]);

	sqlite3_bind_int64(st[S_DELIVERY], 1, dev);
	sqlite3_bind_int64(st[S_DELIVERY], 2, seq);
	sqlite3_bind_int64(st[S_DELIVERY], 3, msg);
	sqlite3_bind_int64(st[S_DELIVERY], 4, now);
	run(st[S_DELIVERY]);
	if (!pushable)
		return;
	sqlite3_bind_int64(st[S_COALESCE], 1, msg);
	sqlite3_bind_int64(st[S_COALESCE], 2, now);
	sqlite3_bind_int64(st[S_COALESCE], 3, dev);
	run(st[S_COALESCE]);
	if (sqlite3_changes(db) > 0)
		return;
	sqlite3_bind_int64(st[S_PUSH], 1, dev);
	sqlite3_bind_int64(st[S_PUSH], 2, msg);
	sqlite3_bind_int64(st[S_PUSH], 3, now);
	sqlite3_bind_int64(st[S_PUSH], 4, now);
	run(st[S_PUSH]);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *v, long n, double p)
{
	long k = (long)(p * (double)n + 0.999999) - 1;

	if (n == 0)
		return 0;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return (double)v[k] / 1e6;
}

static void usage(void)
{
	fputs("usage: store-bench [-s full|normal] [-n ROWS] [-b ROWS_PER_TXN]"
	      " [-f] [-T SECONDS]\n"
	      "                   [-d PARENT_DIR] [-k]\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *sync = "FULL", *parent = NULL;
	long n = 1000000, batch = 1000, seconds = 60, txns, done = 0, k = 0;
	int fanout = 0, opt;
	char id[48];
	uint64_t *lat, t0, t1, start, deadline;
	int64_t now = (int64_t)time(NULL), msg;
	double secs;

	while ((opt = getopt(argc, argv, "s:n:b:fT:d:kh")) != -1) {
		switch (opt) {
		case 's':
			if (strcmp(optarg, "full") == 0)
				sync = "FULL";
			else if (strcmp(optarg, "normal") == 0)
				sync = "NORMAL";
			else
				die("-s is full or normal");
			break;
		case 'n': n = num(optarg, "-n", 1, 1000000000); break;
		case 'b': batch = num(optarg, "-b", 1, 10000000); break;
		case 'f': fanout = 1; break;
		case 'T': seconds = num(optarg, "-T", 1, MAX_SECONDS); break;
		case 'd': parent = optarg; break;
		case 'k': keep = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (!parent)
		parent = getenv("TMPDIR");
	if (!parent || !*parent)
		parent = "/tmp";
	snprintf(dir, sizeof(dir), "%s/store-bench.XXXXXX", parent);
	if (!mkdtemp(dir)) {
		int e = errno;

		dir[0] = 0;
		die("mkdtemp in %s: %s", parent, strerror(e));
	}
	snprintf(path, sizeof(path), "%s/bench.db", dir);

	/* As the relay's store opens it (sq_open() in src/store_sqlite.c): no
	 * global memory statistics, no connection mutex (one thread). */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	if (sqlite3_open_v2(path, &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		die("open %s", path);
	sqlite3_extended_result_codes(db, 1);
	{
		char pragmas[256];

		snprintf(pragmas, sizeof(pragmas),
			 "PRAGMA journal_mode = WAL;"
			 "PRAGMA synchronous = %s;"
			 "PRAGMA foreign_keys = ON;"
			 "PRAGMA temp_store = MEMORY;"
			 "PRAGMA cache_size = -16384;"
			 "PRAGMA journal_size_limit = 67108864;",
			 sync);
		if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
			die("pragmas");
	}
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		die("schema");
	for (int i = 0; i < N_S; i++)
		if (sqlite3_prepare_v3(db, sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &st[i],
				       NULL) != SQLITE_OK)
			die("prepare %s", sql[i]);

	txns = (n + batch - 1) / batch;
	lat = calloc((size_t)txns, sizeof(*lat));
	if (!lat)
		die("out of memory");
	/* Bound parameters that do not change: the relay's values for an
	 * event with no payload and no push hints (wakeup). */
	sqlite3_bind_int64(st[S_MSG], 1, 1);
	sqlite3_bind_text(st[S_MSG], 3, "u", 1, SQLITE_STATIC);
	sqlite3_bind_null(st[S_MSG], 4);
	sqlite3_bind_null(st[S_MSG], 5);
	sqlite3_bind_int64(st[S_MSG], 6, 1);
	sqlite3_bind_null(st[S_MSG], 7);
	sqlite3_bind_int64(st[S_MSG], 8, now);
	sqlite3_bind_int64(st[S_MSG], 9, now + 28 * 86400);

	start = now_ns();
	deadline = start + (uint64_t)seconds * 1000000000u;
	while (done < n && now_ns() < deadline) {
		long rows = n - done < batch ? n - done : batch;

		t0 = now_ns();
		run(st[S_BEGIN]);
		for (long r = 0; r < rows; r++) {
			int len = snprintf(id, sizeof(id), "s-%ld", done + r);

			sqlite3_bind_text(st[S_MSG], 2, id, len,
					  SQLITE_TRANSIENT);
			run(st[S_MSG]);
			if (sqlite3_changes(db) != 1)
				die("row %s was not inserted", id);
			msg = sqlite3_last_insert_rowid(db);
			if (fanout)
				fan_out(msg, now);
		}
		run(st[S_COMMIT]);
		t1 = now_ns();
		lat[k++] = t1 - t0;
		done += rows;
	}
	secs = (double)(now_ns() - start) / 1e9;

	qsort(lat, (size_t)k, sizeof(*lat), cmp_u64);
	printf("store-bench: SQLite %s, synchronous=%s, WAL, %s\n",
	       sqlite3_libversion(), sync,
	       fanout ? "message + one-device fan-out per row"
		      : "message row only");
	printf("rows %ld of %ld in %ld transactions of <= %ld rows\n", done, n,
	       k, batch);
	printf("elapsed %.3f s\n", secs);
	printf("rows/s %.1f\n", secs > 0 ? (double)done / secs : 0);
	printf("txn_ms p50 %.3f p99 %.3f max %.3f\n", pct_ms(lat, k, 0.50),
	       pct_ms(lat, k, 0.99), k ? (double)lat[k - 1] / 1e6 : 0);

	for (int i = 0; i < N_S; i++)
		sqlite3_finalize(st[i]);
	sqlite3_close(db);
	db = NULL;
	free(lat);
	if (keep)
		printf("database kept in %s\n", dir);
	else
		rm_dir();
	return done > 0 ? 0 : 1;
}

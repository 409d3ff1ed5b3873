/*
 * store_sqlite.c - the embedded storage backend: one SQLite database in WAL
 * mode, used by the store thread alone. It owns the schema and its
 * migrations (PRAGMA user_version), every prepared statement (prepared
 * once at open, reset and reused), a name -> id cache of apps and an
 * in-memory count of stored messages for the [storage] max_messages bound.
 * store.c decides when transactions begin and end; this file carries out
 * the domain operations of store.h inside them. Payloads, device tokens
 * and key hashes never reach a log line or an error reason.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "provider.h"
#include "store.h"
#include "store_wal.h"

/* A user's devices reached by one all-devices event. Explicit targets are
 * bounded by [ingest] max_devices; this bounds the rest until devices per
 * user have a directive of their own. */
#define MAX_FANOUT 10000
/* Rows one listing returns at most. */
#define MAX_LIST 1000
/* invalid_tokens rows are kept this long for GET /v1/invalid-tokens. */
#define INVALID_TOKEN_DAYS 30
/* A sweep slice when neither the job nor [storage] sweep_batch says. */
#define DEFAULT_SWEEP_BATCH 5000
/* Cached app ids; more apps still work, uncached. */
#define MAX_CACHED_APPS 256
/* Checkpoint jobs answered by one transaction's checkpoint. */
#define MAX_CKPT_JOBS 16
/* Pushes one claim hands out: when neither the job nor [push]
 * claim_batch says, and at most. */
#define DEFAULT_CLAIM_BATCH 256
#define MAX_CLAIM	    10000

/* ---- schema -------------------------------------------------------------- */

/*
 * migrations[i] takes user_version i to i + 1. Append, never edit: a
 * database at version N runs steps N.. in one transaction at open.
 *
 * Times are unix seconds. A message lives once per (app, ext_id), the
 * idempotency key; each device's inbox is its rows in deliveries, with
 * its own gap-free seq taken from devices.next_seq. pending_fanout marks
 * a message that waits for devices yet to register (until it expires).
 */
static const char *const migrations[] = {
    /* 1: the initial schema */
    "CREATE TABLE apps ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " created_at INTEGER NOT NULL);"

    "CREATE TABLE api_keys ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " scope TEXT NOT NULL CHECK (scope IN ('ingest', 'admin')),"
    " hash BLOB NOT NULL UNIQUE,"
    " prefix TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " last_used_at INTEGER,"
    " revoked_at INTEGER);"

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
    " targets TEXT," /* JSON array of device ids; NULL = all */
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
    /* ON DELETE SET NULL and the sweep look jobs up by message. */
    "CREATE INDEX push_jobs_message ON push_jobs(message_id);"

    "CREATE TABLE push_attempts ("
    " id INTEGER PRIMARY KEY,"
    " job_id INTEGER NOT NULL REFERENCES push_jobs(id) ON DELETE CASCADE,"
    " at INTEGER NOT NULL,"
    " provider TEXT,"
    " status INTEGER,"
    " reason TEXT,"
    " latency_ms INTEGER,"
    " apns_id TEXT);"
    "CREATE INDEX push_attempts_job ON push_attempts(job_id);"

    "CREATE TABLE invalid_tokens ("
    " id INTEGER PRIMARY KEY,"
    " app_id INTEGER NOT NULL REFERENCES apps(id),"
    " device_id TEXT,"
    " user_id TEXT,"
    " platform TEXT,"
    " token TEXT,"
    " reason TEXT,"
    " at INTEGER NOT NULL);"
    "CREATE INDEX invalid_tokens_app ON invalid_tokens(app_id, id);",

    /* 2: pushes leave. devices.last_push_at is when a push to the device
     * last went out (NULL: never), for [push] coalesce_window and
     * min_interval. (Claiming walks push_jobs_due once per waiting
     * state: no index more for ingest to write.) */
    "ALTER TABLE devices ADD COLUMN last_push_at INTEGER;",

    /* 3: admin listings: a user's messages newest first. */
    "CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id, id);",
};

#define SCHEMA_VERSION ((int)PR_ARRAY_SIZE(migrations))

/* ---- prepared statements ------------------------------------------------- */

enum stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_APP_GET,
	S_APP_ADD,
	S_MSG_ADD,
	S_MSG_HOLD,
	S_MSG_KNOWN,
	S_DEVS_USER,
	S_DEVS_ONE,
	S_SEQ_SET,
	S_DELIVERY_ADD,
	S_PUSH_COALESCE,
	S_PUSH_ADD,
	S_DEV_GET,
	S_DEV_HOLDER,
	S_DEV_UNTOKEN,
	S_PUSH_CANCEL,
	S_INBOX_DROP,
	S_DEV_ADD,
	S_DEV_SET,
	S_BACKLOG,
	S_SEQ_ADD,
	S_DEV_DEL,
	S_DEV_LIST,
	S_INVALID_LIST,
	S_KEY_NAMED,
	S_KEY_HASHED,
	S_KEY_LIVE,
	S_KEY_ADD,
	S_KEY_LIST,
	S_KEY_REVOKE_ID,
	S_KEY_REVOKE_NAME,
	S_KEY_LOAD,
	S_KEY_TOUCH,
	S_SWEEP_EXPIRE_JOBS,
	S_SWEEP_EXPIRED,
	S_SWEEP_JOBS,
	S_SWEEP_DONE,
	S_SWEEP_INVALID,
	S_COUNT,
	S_COUNT_JOBS,
	S_RECOVER,
	S_CLAIM_SCAN,
	S_CLAIM_TAKE,
	S_JOB_END,
	S_JOB_GET,
	S_JOB_SET,
	S_ATTEMPT_ADD,
	S_DEV_PUSHED,
	S_DEV_TOKEN,
	S_DEV_INVALIDATE,
	S_INVALID_ADD,
	S_PUSH_INVALIDATE,
	S_ACK_DEV,
	S_ACK_SET,
	S_ACK_DROP,
	S_ACK_CANCEL,
	S_QUEUED,
	S_INBOX_PAGE,
	S_JOB_CANCEL,
	S_STATS_OLDEST,
	S_MSG_LIST_ALL,
	S_MSG_LIST_USER,
	S_MSG_FIND,
	S_MSG_DELIVERIES,
	S_MSG_PUSHES,
	S_JOB_ATTEMPTS,
	S_RETRY_GET,
	S_RETRY_SET,
	S_RETRY_DEAD,
	S_PURGE_JOBS,
	S_PURGE_MSG,
	N_STMT
};

/* One state's due jobs for S_CLAIM_SCAN, in index order (INDEXED BY: a
 * plan that sorts cannot be chosen; CROSS JOIN keeps push_jobs the outer
 * loop). The unread count for badges is next_seq - 1 - acked_seq: what
 * was delivered and not acknowledged (including messages expired but not
 * yet swept), in O(1) — counting the inbox rows made every claim cost as
 * much as the device's inbox is long. */
#define CLAIM_ARM(state)                                                       \
	"SELECT p.id, p.next_attempt_at, p.attempts, p.created_at,"            \
	" p.apns_id, a.name, v.platform, v.token, v.environment,"              \
	" v.device_id, v.user_id, m.id, m.ext_id, m.push_mode, m.push,"        \
	" m.expires_at,"                                                       \
	" coalesce((SELECT d.seq FROM deliveries d"                            \
	"  WHERE d.message_id = p.message_id"                                  \
	"  AND d.device_id = p.device_id), 0),"                                \
	" v.next_seq - 1 - v.acked_seq"                                        \
	" FROM push_jobs p INDEXED BY push_jobs_due"                           \
	" CROSS JOIN devices v ON v.id = p.device_id"                          \
	" JOIN apps a ON a.id = v.app_id"                                      \
	" LEFT JOIN messages m ON m.id = p.message_id"                         \
	" WHERE p.state = '" state "' AND p.next_attempt_at <= ?1"             \
	" AND v.token IS NOT NULL AND v.push_state = 'ok'"                     \
	" AND (?3 IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(?3) s"        \
	"  WHERE s.value = a.name || '/' || v.platform))"
#define CLAIM_SCAN                                                             \
	CLAIM_ARM("pending")                                                   \
	" UNION ALL " CLAIM_ARM("retry") " ORDER BY 2, 1 LIMIT ?2"

#define MSG_LIST(idx, user)                                                    \
	"SELECT m.id, m.ext_id, a.name, m.user_id, m.created_at,"              \
	" m.expires_at,"                                                       \
	" (SELECT count(*) FROM deliveries d WHERE d.message_id = m.id),"      \
	" (SELECT state FROM push_jobs p WHERE p.message_id = m.id"            \
	"  ORDER BY p.id DESC LIMIT 1),"                                       \
	" (SELECT coalesce(sum(attempts), 0) FROM push_jobs p"                 \
	"  WHERE p.message_id = m.id)"                                         \
	" FROM messages m " idx " CROSS JOIN apps a ON a.id = m.app_id"        \
	" WHERE m.id < ?1 " user " AND (?5 IS NULL OR m.created_at >= ?5)"     \
	" AND (?6 IS NULL OR m.created_at < ?6)"                               \
	" AND ((?3 IS NULL AND ?4 IS NULL) OR EXISTS (SELECT 1"                \
	"  FROM push_jobs p JOIN devices v ON v.id = p.device_id"              \
	"  WHERE p.message_id = m.id AND (?3 IS NULL OR p.state = ?3)"         \
	"  AND (?4 IS NULL OR v.platform = ?4)))"                              \
	" ORDER BY m.id DESC LIMIT ?7"
#define MSG_LIST_ALL  MSG_LIST("", "")
#define MSG_LIST_USER MSG_LIST("INDEXED BY messages_user", "AND m.user_id = ?2")

static const char *const stmt_sql[N_STMT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT job",
    [S_RELEASE] = "RELEASE job",
    [S_ROLLBACK_TO] = "ROLLBACK TO job",

    [S_APP_GET] = "SELECT id FROM apps WHERE name = ?1",
    [S_APP_ADD] = "INSERT INTO apps(name, created_at) VALUES (?1, ?2)"
		  " RETURNING id",

    /* No change: (app, ext_id) is stored already, a duplicate. (No
     * RETURNING on the hot path: it costs a temporary table a row.) */
    [S_MSG_ADD] = "INSERT INTO messages(app_id, ext_id, user_id, payload,"
		  " push, push_mode, targets, created_at, expires_at)"
		  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
		  " ON CONFLICT (app_id, ext_id) DO NOTHING",
    [S_MSG_HOLD] = "UPDATE messages SET pending_fanout = 1 WHERE id = ?1",
    [S_MSG_KNOWN] = "SELECT 1 FROM messages WHERE app_id = ?1"
		    " AND ext_id = ?2",
    [S_DEVS_USER] = "SELECT id, next_seq,"
		    " token IS NOT NULL AND push_state = 'ok', last_push_at"
		    " FROM devices WHERE app_id = ?1 AND user_id = ?2",
    [S_DEVS_ONE] = "SELECT id, next_seq,"
		   " token IS NOT NULL AND push_state = 'ok', last_push_at"
		   " FROM devices WHERE app_id = ?1 AND device_id = ?2"
		   " AND user_id = ?3",
    [S_SEQ_SET] = "UPDATE devices SET next_seq = ?2 WHERE id = ?1",
    [S_DELIVERY_ADD] = "INSERT INTO deliveries(device_id, seq, message_id,"
		       " created_at) VALUES (?1, ?2, ?3, ?4)",
    /* One waiting push per device: a newer message takes it over. */
    [S_PUSH_COALESCE] = "UPDATE push_jobs SET message_id = ?1,"
			" updated_at = ?2 WHERE device_id = ?3"
			" AND state IN ('pending', 'retry')",
    [S_PUSH_ADD] = "INSERT INTO push_jobs(device_id, message_id, state,"
		   " next_attempt_at, created_at, updated_at)"
		   " VALUES (?1, ?2, 'pending', ?3, ?4, ?4)",

    [S_DEV_GET] = "SELECT id, user_id, next_seq FROM devices"
		  " WHERE app_id = ?1 AND device_id = ?2",
    [S_DEV_HOLDER] = "SELECT id, device_id, user_id FROM devices"
		     " WHERE app_id = ?1 AND platform = ?2 AND token = ?3"
		     " AND device_id <> ?4",
    [S_DEV_UNTOKEN] = "UPDATE devices SET token = NULL WHERE id = ?1",
    [S_PUSH_CANCEL] = "UPDATE push_jobs SET state = 'cancelled',"
		      " updated_at = ?2, last_reason = ?3"
		      " WHERE device_id = ?1"
		      " AND state IN ('pending', 'retry')",
    [S_INBOX_DROP] = "DELETE FROM deliveries WHERE device_id = ?1",
    [S_DEV_ADD] = "INSERT INTO devices(app_id, device_id, user_id,"
		  " platform, token, environment, created_at,"
		  " last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)"
		  " RETURNING id, next_seq",
    [S_DEV_SET] = "UPDATE devices SET user_id = ?2, platform = ?3,"
		  " token = ?4, environment = ?5, last_seen_at = ?6,"
		  " push_state = 'ok' WHERE id = ?1",
    /* The waiting messages a newly reachable device gets, in order. */
    [S_BACKLOG] = "INSERT INTO deliveries(device_id, seq, message_id,"
		  " created_at)"
		  " SELECT ?1, ?2 + row_number() OVER (ORDER BY m.id) - 1,"
		  " m.id, ?3 FROM messages m"
		  " WHERE m.app_id = ?4 AND m.user_id = ?5"
		  " AND m.pending_fanout = 1 AND m.expires_at > ?3"
		  " AND (m.targets IS NULL OR EXISTS (SELECT 1 FROM"
		  " json_each(m.targets) AS t WHERE t.value = ?6))"
		  " AND NOT EXISTS (SELECT 1 FROM deliveries d"
		  " WHERE d.message_id = m.id AND d.device_id = ?1)"
		  " ORDER BY m.id",
    [S_SEQ_ADD] = "UPDATE devices SET next_seq = next_seq + ?2"
		  " WHERE id = ?1",
    [S_DEV_DEL] = "DELETE FROM devices WHERE app_id = ?1"
		  " AND device_id = ?2",
    [S_DEV_LIST] = "SELECT device_id, user_id, platform, token,"
		   " environment, created_at, last_seen_at, push_state"
		   " FROM devices WHERE app_id = ?1 AND user_id = ?2"
		   " ORDER BY device_id LIMIT ?3",
    [S_INVALID_LIST] = "SELECT id, device_id, user_id, platform, token,"
		       " reason, at FROM invalid_tokens"
		       " WHERE app_id = ?1 AND id > ?2 ORDER BY id"
		       " LIMIT ?3",

    [S_KEY_NAMED] = "SELECT id FROM api_keys WHERE name = ?1",
    [S_KEY_HASHED] = "SELECT id FROM api_keys WHERE hash = ?1",
    [S_KEY_LIVE] = "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
    [S_KEY_ADD] = "INSERT INTO api_keys(name, scope, hash, prefix,"
		  " created_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
    [S_KEY_LIST] = "SELECT id, name, scope, prefix, created_at,"
		   " last_used_at, revoked_at FROM api_keys ORDER BY id"
		   " LIMIT ?1",
    [S_KEY_REVOKE_ID] = "UPDATE api_keys SET revoked_at ="
			" coalesce(revoked_at, ?2) WHERE id = ?1"
			" RETURNING id",
    [S_KEY_REVOKE_NAME] = "UPDATE api_keys SET revoked_at ="
			  " coalesce(revoked_at, ?2) WHERE name = ?1"
			  " RETURNING id",
    [S_KEY_LOAD] = "SELECT id, scope, hash FROM api_keys"
		   " WHERE revoked_at IS NULL ORDER BY id",
    [S_KEY_TOUCH] = "UPDATE api_keys SET last_used_at ="
		    " max(coalesce(last_used_at, 0), ?2) WHERE id = ?1",

    /* Each sweep statement deletes at most ?2 rows (a bounded slice). */
    [S_SWEEP_EXPIRE_JOBS] = "UPDATE push_jobs SET state = 'expired',"
			    " updated_at = ?1"
			    " WHERE state IN ('pending', 'retry')"
			    " AND message_id IN (SELECT id FROM messages"
			    " WHERE expires_at <= ?1"
			    " ORDER BY expires_at, id LIMIT ?2)",
    [S_SWEEP_EXPIRED] = "DELETE FROM messages WHERE id IN (SELECT id"
			" FROM messages WHERE expires_at <= ?1"
			" ORDER BY expires_at, id LIMIT ?2)",
    [S_SWEEP_JOBS] = "DELETE FROM push_jobs WHERE id IN (SELECT id"
		     " FROM push_jobs WHERE state IN ('sent', 'dead',"
		     " 'cancelled', 'expired', 'invalid_token')"
		     " AND updated_at < ?1 LIMIT ?2)",
    [S_SWEEP_DONE] = "DELETE FROM messages WHERE id IN (SELECT m.id"
		     " FROM messages m WHERE m.created_at < ?1"
		     " AND m.pending_fanout = 0"
		     " AND NOT EXISTS (SELECT 1 FROM deliveries d"
		     " WHERE d.message_id = m.id)"
		     " AND NOT EXISTS (SELECT 1 FROM push_jobs p"
		     " WHERE p.message_id = m.id"
		     " AND p.state IN ('pending', 'retry', 'in_flight'))"
		     " ORDER BY m.id LIMIT ?2)",
    [S_SWEEP_INVALID] = "DELETE FROM invalid_tokens WHERE id IN (SELECT"
			" id FROM invalid_tokens WHERE at < ?1"
			" ORDER BY id LIMIT ?2)",

    [S_COUNT] = "SELECT (SELECT count(*) FROM messages),"
		" (SELECT count(*) FROM deliveries),"
		" (SELECT count(*) FROM devices),"
		" (SELECT count(*) FROM messages WHERE pending_fanout = 1)",
    [S_COUNT_JOBS] = "SELECT state, count(*) FROM push_jobs"
		     " GROUP BY state",

    /* ---- pushes ---- */
    [S_RECOVER] = "UPDATE push_jobs SET state = 'pending', updated_at = ?1"
		  " WHERE state = 'in_flight'",
    /*
     * The due jobs in due order: two walks of push_jobs_due (pending,
     * retry), each in (next_attempt_at, id) order, merged (MERGE UNION
     * ALL: no sort of every due job, and LIMIT stops both walks). Only
     * jobs of a device that can take a push, of an app/platform not
     * paused (?3: a JSON array of "app/platform", or NULL). The message
     * may be gone (LEFT JOIN).
     */
    [S_CLAIM_SCAN] = CLAIM_SCAN,
    [S_CLAIM_TAKE] = "UPDATE push_jobs SET state = 'in_flight',"
		     " attempts = attempts + 1, apns_id = ?2,"
		     " updated_at = ?3 WHERE id = ?1",
    [S_JOB_END] = "UPDATE push_jobs SET state = ?2, last_reason = ?3,"
		  " updated_at = ?4 WHERE id = ?1",
    [S_JOB_GET] = "SELECT state, attempts, created_at, device_id"
		  " FROM push_jobs WHERE id = ?1",
    /* ?3 adds to attempts; NULL ?4 / ?7 keep next_attempt_at and
     * provider_id. */
    [S_JOB_SET] = "UPDATE push_jobs SET state = ?2,"
		  " attempts = max(attempts + ?3, 0),"
		  " next_attempt_at = coalesce(?4, next_attempt_at),"
		  " last_status = ?5, last_reason = ?6,"
		  " provider_id = coalesce(?7, provider_id), updated_at = ?8"
		  " WHERE id = ?1",
    [S_ATTEMPT_ADD] = "INSERT INTO push_attempts(job_id, at, provider,"
		      " status, reason, latency_ms, apns_id)"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_DEV_PUSHED] = "UPDATE devices SET last_push_at ="
		     " max(coalesce(last_push_at, ?2), ?2) WHERE id = ?1",
    [S_DEV_TOKEN] = "SELECT token, last_seen_at FROM devices"
		    " WHERE id = ?1",
    [S_DEV_INVALIDATE] = "UPDATE devices SET token = NULL,"
			 " push_state = 'invalid' WHERE id = ?1",
    [S_INVALID_ADD] = "INSERT INTO invalid_tokens(app_id, device_id,"
		      " user_id, platform, token, reason, at)"
		      " SELECT app_id, device_id, user_id, platform, token,"
		      " ?2, ?3 FROM devices WHERE id = ?1",
    [S_PUSH_INVALIDATE] = "UPDATE push_jobs SET state = 'invalid_token',"
			  " updated_at = ?2, last_reason = ?3"
			  " WHERE device_id = ?1"
			  " AND state IN ('pending', 'retry')",
    /* ACK and INBOX_FETCH: the device, its user and its cursor. */
    [S_ACK_DEV] = "SELECT id, next_seq, acked_seq, user_id, push_state"
		  " FROM devices WHERE app_id = ?1 AND device_id = ?2",
    [S_ACK_SET] = "UPDATE devices SET acked_seq = ?2 WHERE id = ?1",
    [S_ACK_DROP] = "DELETE FROM deliveries WHERE device_id = ?1"
		   " AND seq <= ?2",
    /* After S_ACK_DROP: a waiting push whose message the device has no
     * delivery of left (acknowledged) has nothing to announce. */
    [S_ACK_CANCEL] = "UPDATE push_jobs SET state = 'cancelled',"
		     " updated_at = ?2, last_reason = 'acknowledged'"
		     " WHERE device_id = ?1"
		     " AND state IN ('pending', 'retry')"
		     " AND NOT EXISTS (SELECT 1 FROM deliveries d"
		     " WHERE d.device_id = ?1"
		     " AND d.message_id = push_jobs.message_id)",
    [S_QUEUED] = "SELECT count(*) FROM deliveries WHERE device_id = ?1",
    /* One inbox page (?4 = limit + 1, to tell "more"): a range of the
     * deliveries primary key, each message by its rowid (CROSS JOIN keeps
     * deliveries the outer loop: no sort, LIMIT stops the walk). Expired
     * messages are skipped until the sweep takes them. */
    [S_INBOX_PAGE] = "SELECT d.seq, m.ext_id, m.payload, m.created_at"
		     " FROM deliveries d CROSS JOIN messages m"
		     " ON m.id = d.message_id"
		     " WHERE d.device_id = ?1 AND d.seq > ?2"
		     " AND m.expires_at > ?3 ORDER BY d.seq LIMIT ?4",
    /* Nothing went out (delivered on the stream): the claim's attempt
     * does not count. */
    [S_JOB_CANCEL] = "UPDATE push_jobs SET state = 'cancelled',"
		     " attempts = max(attempts - 1, 0), last_reason = ?2,"
		     " updated_at = ?3 WHERE id = ?1",

    /* ---- admin ---- */
    [S_STATS_OLDEST] = "SELECT min(created_at) FROM push_jobs"
		       " WHERE state IN ('pending', 'retry')",
    /*
     * One page of messages, newest first, below the cursor ?1: a walk of
     * the messages rowid (or of messages_user for one user) backwards;
     * the other filters are tested row by row and LIMIT stops the walk.
     * ?2 user, ?3 push state, ?4 platform, ?5/?6 created_at range, ?7
     * limit + 1.
     */
    [S_MSG_LIST_ALL] = MSG_LIST_ALL,
    [S_MSG_LIST_USER] = MSG_LIST_USER,
    /* A message by ext id: each app's (app_id, ext_id) unique index. */
    [S_MSG_FIND] = "SELECT m.id, m.ext_id, a.name, m.user_id, m.payload,"
		   " m.push, m.created_at, m.expires_at, m.app_id"
		   " FROM apps a CROSS JOIN messages m"
		   " ON m.app_id = a.id AND m.ext_id = ?1"
		   " WHERE ?2 IS NULL OR a.name = ?2 LIMIT 2",
    [S_MSG_DELIVERIES] =
	"SELECT v.device_id, v.user_id, v.platform, d.seq,"
	" d.seq <= v.acked_seq"
	" FROM deliveries d JOIN devices v ON v.id = d.device_id"
	" WHERE d.message_id = ?1 ORDER BY v.device_id",
    [S_MSG_PUSHES] = "SELECT p.id, v.device_id, v.platform, p.state,"
		     " p.attempts, p.next_attempt_at, p.last_status,"
		     " p.last_reason, p.apns_id, p.provider_id, p.created_at,"
		     " p.updated_at"
		     " FROM push_jobs p JOIN devices v ON v.id = p.device_id"
		     " WHERE p.message_id = ?1 ORDER BY p.id",
    [S_JOB_ATTEMPTS] = "SELECT at, provider, status, reason, latency_ms,"
		       " apns_id FROM push_attempts WHERE job_id = ?1"
		       " ORDER BY id",
    [S_RETRY_GET] = "SELECT p.state, v.token FROM push_jobs p"
		    " JOIN devices v ON v.id = p.device_id WHERE p.id = ?1",
    [S_RETRY_SET] =
	"UPDATE push_jobs SET state = 'pending', attempts = 0,"
	" next_attempt_at = ?2, last_reason = 'retried by an admin',"
	" updated_at = ?2 WHERE id = ?1",
    [S_RETRY_DEAD] =
	"UPDATE push_jobs SET state = 'pending', attempts = 0,"
	" next_attempt_at = ?1, last_reason = 'retried by an admin',"
	" updated_at = ?1 WHERE id IN (SELECT id FROM push_jobs"
	" WHERE state = 'dead' ORDER BY next_attempt_at LIMIT ?2)",
    [S_PURGE_JOBS] = "DELETE FROM push_jobs WHERE message_id = ?1",
    [S_PURGE_MSG] = "DELETE FROM messages WHERE id = ?1",
};

static const char *const push_states[] = {
    "pending", "in_flight", "sent",    "retry",
    "dead",    "cancelled", "expired", "invalid_token",
};

/* ---- the backend object -------------------------------------------------- */

struct app_ent {
	char *name;
	int64_t id;
	int fresh; /* added in the open transaction: dropped on rollback */
};

/* A device an event reaches: its row, the seq it takes, push or not,
 * when a push last went out to it (-1: never). */
struct target {
	int64_t id;
	int64_t seq;
	int64_t last_push_at;
	int pushable;
};

struct sq {
	sqlite3 *db;
	sqlite3_stmt *st[N_STMT];
	int bind_rc; /* first failed bind since the last step */

	struct app_ent apps[MAX_CACHED_APPS];
	size_t n_apps;

	/* Messages stored: committed / at BEGIN / at the job's savepoint. */
	int64_t n_messages, n_messages_tx, n_messages_sp;
	/* Lazy savepoints (see sq_savepoint): rows changed at the job's
	 * start; real_sp when this batch runs real SAVEPOINTs instead. */
	int64_t changes_sp;
	int real_sp;
	/* A kept job changed rows in this transaction / the transaction
	 * that committed last had (see sq_probe). */
	int tx_wrote, commit_wrote;
	/* The primary result code of the last storage failure. */
	int last_fail;
	/* The config store.c keeps for us: its reloadable [storage] and
	 * [push] numbers change between batches, on this thread. */
	const struct pr_config *cfg;
	long max_size; /* the max_size max_page_count follows */
	int64_t page_size;
	int64_t default_pages; /* max_page_count when max_size is 0 */
	int busy_timeout;

	struct target *targets; /* fan-out scratch, reused */
	size_t cap_targets;

	struct pr_store_job *ckpt[MAX_CKPT_JOBS]; /* answered after COMMIT */
	size_t n_ckpt;

	char errbuf[160];
};

/* ---- helpers ------------------------------------------------------------- */

/* The enum pr_error for a SQLite result that is neither ROW nor DONE. */
static int rc_error(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM: return PR_ERR_NOMEM;
	case SQLITE_CONSTRAINT: return PR_ERR_INVAL;
	default: return PR_ERR_STORE;
	}
}

/* Why a call failed, while SQLite's message (and errno) is fresh.
 * Storage failures get SQLite's generic text ("database or disk is
 * full"), I/O errors with the system's reason; the others its message,
 * which names no values. */
static void describe(sqlite3 *db, int rc, char *buf, size_t len)
{
	int sys = errno;
	const char *why;

	switch (rc & 0xff) {
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		/* "disk I/O error" alone does not tell a read-only file
		 * system from a failing disk: add the system's errno. SQLite
		 * 3.40 records it (sqlite3_system_errno) on few paths, so
		 * callers clear errno before the call that failed, and
		 * what the failed system call left in it is used. */
		if (sqlite3_system_errno(db) > 0)
			sys = sqlite3_system_errno(db);
		if (sys > 0) {
			snprintf(buf, len, "%s (%s)", sqlite3_errstr(rc),
				 strerror(sys));
			return;
		}
		why = sqlite3_errstr(rc);
		break;
	case SQLITE_NOMEM:
	case SQLITE_FULL:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_READONLY:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
	case SQLITE_TOOBIG:
	case SQLITE_RANGE: why = sqlite3_errstr(rc); break;
	default: why = sqlite3_errmsg(db); break;
	}
	snprintf(buf, len, "%s", why);
}

static void db_error(struct sq *q, int rc)
{
	if (rc_error(rc) == PR_ERR_STORE)
		q->last_fail = rc & 0xff;
	describe(q->db, rc, q->errbuf, sizeof(q->errbuf));
}

static sqlite3_stmt *stmt(struct sq *q, enum stmt id)
{
	q->bind_rc = SQLITE_OK;
	return q->st[id];
}

static void bind_rc(struct sq *q, int rc)
{
	if (rc != SQLITE_OK && q->bind_rc == SQLITE_OK)
		q->bind_rc = rc;
}

/* Text parameters stay the caller's: they outlive the step. */
static void bt(struct sq *q, sqlite3_stmt *s, int i, const char *v)
{
	bind_rc(q, v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC)
		     : sqlite3_bind_null(s, i));
}

static void bi(struct sq *q, sqlite3_stmt *s, int i, int64_t v)
{
	bind_rc(q, sqlite3_bind_int64(s, i, v));
}

/* One step: SQLITE_ROW, SQLITE_DONE, or an error (reason in errbuf). */
static int step(struct sq *q, sqlite3_stmt *s)
{
	int rc;

	if (q->bind_rc != SQLITE_OK) {
		rc = q->bind_rc;
		q->bind_rc = SQLITE_OK;
		db_error(q, rc);
		return rc;
	}
	errno = 0;
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		db_error(q, rc);
	return rc;
}

static void finish(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* The error for a step result that is neither ROW nor DONE (the reason
 * is in errbuf already, or pr_strerror() serves). */
static int step_fail(struct sq *q, int rc)
{
	(void)q;
	return rc_error(rc);
}

/* Run a statement that returns no rows worth reading. */
static int run(struct sq *q, sqlite3_stmt *s)
{
	int rc = step(q, s);

	finish(s);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return PR_OK;
	return step_fail(q, rc);
}

/* Run a prepared statement that takes one or two integers. */
static int run_i(struct sq *q, enum stmt id, int64_t a)
{
	sqlite3_stmt *s = stmt(q, id);

	bi(q, s, 1, a);
	return run(q, s);
}

static int run_ii(struct sq *q, enum stmt id, int64_t a, int64_t b)
{
	sqlite3_stmt *s = stmt(q, id);

	bi(q, s, 1, a);
	bi(q, s, 2, b);
	return run(q, s);
}

static int64_t now_or(int64_t t)
{
	return t > 0 ? t : (int64_t)time(NULL);
}

static json_t *rfc3339(sqlite3_stmt *s, int col)
{
	char buf[32];
	struct tm tm;
	time_t t;

	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return json_null();
	t = (time_t)sqlite3_column_int64(s, col);
	if (!gmtime_r(&t, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return json_null();
	return json_string(buf);
}

static json_t *col_str(sqlite3_stmt *s, int col)
{
	const unsigned char *v = sqlite3_column_text(s, col);

	return v ? json_string((const char *)v) : json_null();
}

static char *col_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *v = sqlite3_column_text(s, col);

	return v ? strdup((const char *)v) : NULL;
}

/* Is the text column equal to v? (NULL is equal to nothing.) */
static int same_text(sqlite3_stmt *s, int col, const char *v)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return t && v && strcmp((const char *)t, v) == 0;
}

static long clamp_limit(long limit, long def, long max)
{
	if (limit <= 0)
		return def;
	return limit > max ? max : limit;
}

static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const unsigned char *v = sqlite3_column_text(s, 0);

			snprintf(out, outlen, "%s", v ? (const char *)v : "");
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			out[0] = '\0';
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	return rc;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	char text[32];
	int rc = pragma_text(db, sql, text, sizeof(text));

	if (rc == SQLITE_OK)
		*out = strtoll(text, NULL, 10);
	return rc;
}

static int64_t max_messages(const struct sq *q)
{
	long m = q->cfg->storage_max_messages;

	return m > 0 ? (int64_t)m : INT64_MAX;
}

/* Follow [storage] max_size (it may change on reload): SQLite answers
 * SQLITE_FULL past max_page_count. It is never set below the pages the
 * database has. */
static int apply_max_size(struct sq *q)
{
	long want = q->cfg->storage_max_size;
	int64_t pages;
	char sql[64], text[32];
	int rc;

	if (want == q->max_size)
		return PR_OK;
	pages = want > 0 ? want / q->page_size : q->default_pages;
	if (pages < 1)
		pages = 1;
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
		 (long long)pages);
	errno = 0;
	rc = pragma_text(q->db, sql, text, sizeof(text));
	if (rc != SQLITE_OK) {
		db_error(q, rc);
		return PR_ERR_STORE;
	}
	q->max_size = want;
	return PR_OK;
}

static int exists(struct sq *q, sqlite3_stmt *s, int *found)
{
	int rc = step(q, s);

	finish(s);
	*found = rc == SQLITE_ROW;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? PR_OK : step_fail(q, rc);
}

/* ---- apps ---------------------------------------------------------------- */

/* The app's row id: cached, looked up, or (create) added. PR_ERR_NOTFOUND
 * when absent and not to be created. */
static int app_id(struct sq *q, const char *name, int create, int64_t *out)
{
	sqlite3_stmt *s;
	size_t i;
	int rc;

	if (!name || !*name) {
		snprintf(q->errbuf, sizeof(q->errbuf), "no app named");
		return PR_ERR_INVAL;
	}
	for (i = 0; i < q->n_apps; i++) {
		if (strcmp(q->apps[i].name, name) == 0) {
			*out = q->apps[i].id;
			return PR_OK;
		}
	}
	s = stmt(q, S_APP_GET);
	bt(q, s, 1, name);
	rc = step(q, s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	finish(s);
	if (rc == SQLITE_DONE) {
		if (!create) {
			snprintf(q->errbuf, sizeof(q->errbuf), "no such app");
			return PR_ERR_NOTFOUND;
		}
		s = stmt(q, S_APP_ADD);
		bt(q, s, 1, name);
		bi(q, s, 2, (int64_t)time(NULL));
		rc = step(q, s);
		if (rc == SQLITE_ROW)
			*out = sqlite3_column_int64(s, 0);
		finish(s);
	}
	if (rc != SQLITE_ROW)
		return step_fail(q, rc);
	if (q->n_apps < MAX_CACHED_APPS) {
		q->apps[q->n_apps].name = strdup(name);
		if (q->apps[q->n_apps].name) {
			q->apps[q->n_apps].id = *out;
			/* Every job runs in a transaction: until COMMIT the
			 * row may still vanish. */
			q->apps[q->n_apps].fresh = 1;
			q->n_apps++;
		}
	}
	return PR_OK;
}

static void apps_settle(struct sq *q, int keep)
{
	size_t i, j = 0;

	for (i = 0; i < q->n_apps; i++) {
		if (q->apps[i].fresh && !keep) {
			free(q->apps[i].name);
			continue;
		}
		q->apps[i].fresh = 0;
		q->apps[j++] = q->apps[i];
	}
	q->n_apps = j;
}

/* ---- ingest -------------------------------------------------------------- */

static int targets_add(struct sq *q, size_t n, sqlite3_stmt *s, size_t *count)
{
	struct target *t;
	size_t cap;
	int rc;

	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		if (n + *count >= q->cap_targets) {
			if (q->cap_targets >= MAX_FANOUT) {
				finish(s);
				snprintf(q->errbuf, sizeof(q->errbuf),
					 "more than %d devices for one user",
					 MAX_FANOUT);
				return PR_ERR_LIMIT;
			}
			cap = q->cap_targets ? q->cap_targets * 2 : 16;
			if (cap > MAX_FANOUT)
				cap = MAX_FANOUT;
			t = realloc(q->targets, cap * sizeof(*t));
			if (!t) {
				finish(s);
				snprintf(q->errbuf, sizeof(q->errbuf),
					 "out of memory");
				return PR_ERR_NOMEM;
			}
			q->targets = t;
			q->cap_targets = cap;
		}
		t = &q->targets[n + *count];
		t->id = sqlite3_column_int64(s, 0);
		t->seq = sqlite3_column_int64(s, 1);
		t->pushable = sqlite3_column_int(s, 2);
		t->last_push_at = sqlite3_column_type(s, 3) == SQLITE_NULL
				      ? -1
				      : sqlite3_column_int64(s, 3);
		(*count)++;
	}
	finish(s);
	return rc == SQLITE_DONE ? PR_OK : step_fail(q, rc);
}

/* Is devices[i] named earlier in the list? */
static int listed_before(const struct pr_event *ev, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (strcmp(ev->devices[k], ev->devices[i]) == 0)
			return 1;
	return 0;
}

/* The gap [push] keeps after a push went out to a device: a new push
 * waits out coalesce_window (newer messages join it) and min_interval. */
static int64_t push_gap(const struct sq *q)
{
	long w = q->cfg->push_coalesce_window, m = q->cfg->push_min_interval;
	long gap = w > m ? w : m;

	return gap > 0 ? (int64_t)gap : 0;
}

/* Give every target device of a new message its seq (and push). Sets
 * *hold when some device the event names has not registered yet. A
 * device's waiting push (pending or retry) takes the newest message; a
 * new push waits push_delay, and push_gap() after the device's last. */
static int fan_out(struct sq *q, int64_t app, const struct pr_event *ev,
		   int64_t msg, int64_t now, size_t *n, int *hold)
{
	sqlite3_stmt *s;
	size_t i, got;
	int64_t due;
	int rv, pushing = ev->push_mode != PR_PUSH_NONE;

	*n = 0;
	*hold = 0;
	if (!ev->devices) {
		s = stmt(q, S_DEVS_USER);
		bi(q, s, 1, app);
		bt(q, s, 2, ev->user);
		rv = targets_add(q, 0, s, n);
		if (rv)
			return rv;
		*hold = *n == 0;
	} else {
		for (i = 0; i < ev->n_devices; i++) {
			if (listed_before(ev, i))
				continue;
			s = stmt(q, S_DEVS_ONE);
			bi(q, s, 1, app);
			bt(q, s, 2, ev->devices[i]);
			bt(q, s, 3, ev->user);
			got = 0;
			rv = targets_add(q, *n, s, &got);
			if (rv)
				return rv;
			if (!got)
				*hold = 1;
			*n += got;
		}
	}
	for (i = 0; i < *n; i++) {
		const struct target *t = &q->targets[i];

		rv = run_ii(q, S_SEQ_SET, t->id, t->seq + 1);
		if (rv)
			return rv;
		s = stmt(q, S_DELIVERY_ADD);
		bi(q, s, 1, t->id);
		bi(q, s, 2, t->seq);
		bi(q, s, 3, msg);
		bi(q, s, 4, now);
		rv = run(q, s);
		if (rv)
			return rv;
		if (!pushing || !t->pushable)
			continue;
		s = stmt(q, S_PUSH_COALESCE);
		bi(q, s, 1, msg);
		bi(q, s, 2, now);
		bi(q, s, 3, t->id);
		rv = run(q, s);
		if (rv)
			return rv;
		if (sqlite3_changes(q->db) > 0)
			continue;
		due = now + (ev->push_delay > 0 ? ev->push_delay : 0);
		if (t->last_push_at >= 0 && t->last_push_at + push_gap(q) > due)
			due = t->last_push_at + push_gap(q);
		s = stmt(q, S_PUSH_ADD);
		bi(q, s, 1, t->id);
		bi(q, s, 2, msg);
		bi(q, s, 3, due);
		bi(q, s, 4, now);
		rv = run(q, s);
		if (rv)
			return rv;
	}
	return PR_OK;
}

static char *targets_json(const struct pr_event *ev)
{
	json_t *a = json_array();
	char *text = NULL;
	size_t i;

	if (!a)
		return NULL;
	for (i = 0; i < ev->n_devices; i++)
		if (json_array_append_new(a, json_string(ev->devices[i])))
			goto out;
	text = json_dumps(a, JSON_COMPACT);
out:
	json_decref(a);
	return text;
}

static int ingest_one(struct sq *q, struct pr_store_job *job,
		      struct pr_event *ev, int64_t now)
{
	sqlite3_stmt *s;
	char *targets = NULL;
	int64_t app, msg;
	size_t n;
	int rc, rv, hold, known;

	ev->status = PR_EVENT_QUEUED;
	ev->n_targets = 0;
	if (!ev->id || !ev->user) {
		snprintf(q->errbuf, sizeof(q->errbuf),
			 "an event without id or user");
		return PR_ERR_INVAL;
	}
	rv = app_id(q, ev->app, 1, &app);
	if (rv)
		return rv;
	if (q->n_messages >= max_messages(q)) {
		/* At the bound a repeat is still a duplicate; anything new
		 * is refused before it writes a row. */
		s = stmt(q, S_MSG_KNOWN);
		bi(q, s, 1, app);
		bt(q, s, 2, ev->id);
		rv = exists(q, s, &known);
		if (rv)
			return rv;
		if (known) {
			ev->status = PR_EVENT_DUPLICATE;
			return PR_OK;
		}
		snprintf(job->err, sizeof(job->err),
			 "the relay holds %lld messages, its limit",
			 (long long)max_messages(q));
		return PR_ERR_LIMIT;
	}
	if (ev->devices) {
		targets = targets_json(ev);
		if (!targets) {
			snprintf(q->errbuf, sizeof(q->errbuf),
				 "device ids are not valid UTF-8");
			return PR_ERR_INVAL;
		}
	}
	s = stmt(q, S_MSG_ADD);
	bi(q, s, 1, app);
	bt(q, s, 2, ev->id);
	bt(q, s, 3, ev->user);
	bt(q, s, 4, ev->payload);
	bt(q, s, 5, ev->push);
	bi(q, s, 6, ev->push_mode);
	bt(q, s, 7, targets);
	bi(q, s, 8, ev->created_at > 0 ? ev->created_at : now);
	bi(q, s, 9, ev->expires_at);
	rc = step(q, s);
	finish(s);
	free(targets);
	if (rc != SQLITE_DONE)
		return step_fail(q, rc);
	if (sqlite3_changes(q->db) == 0) {
		ev->status = PR_EVENT_DUPLICATE;
		return PR_OK;
	}
	msg = sqlite3_last_insert_rowid(q->db);
	q->n_messages++;
	rv = fan_out(q, app, ev, msg, now, &n, &hold);
	if (rv)
		return rv;
	ev->n_targets = (int)n;
	if (hold) {
		rv = run_i(q, S_MSG_HOLD, msg);
	}
	return rv;
}

/* All events of a job or none: the job's savepoint undoes a failure. */
static int op_ingest(struct sq *q, struct pr_store_job *job)
{
	int64_t now = now_or(job->now);
	int rv;

	for (size_t i = 0; i < job->n_events; i++) {
		rv = ingest_one(q, job, &job->events[i], now);
		if (rv)
			return rv;
	}
	return PR_OK;
}

/* ---- devices ------------------------------------------------------------- */

/* Stop the device's waiting pushes (its token or its user changed). */
static int cancel_pushes(struct sq *q, int64_t dev, int64_t now,
			 const char *why)
{
	sqlite3_stmt *s = stmt(q, S_PUSH_CANCEL);

	bi(q, s, 1, dev);
	bi(q, s, 2, now);
	bt(q, s, 3, why);
	return run(q, s);
}

struct put_state {
	int64_t row;	  /* devices.id of this device, 0 when new */
	int64_t next_seq; /* its next seq after the upsert */
	char *old_user;	  /* its user before, when it existed */
	int64_t holder;	  /* another row that held the token, or 0 */
	char *holder_device;
	char *holder_user;
};

static int put_lookup(struct sq *q, int64_t app, const struct pr_device *d,
		      struct put_state *ps)
{
	sqlite3_stmt *s = stmt(q, S_DEV_GET);
	int rc;

	bi(q, s, 1, app);
	bt(q, s, 2, d->device_id);
	rc = step(q, s);
	if (rc == SQLITE_ROW) {
		ps->row = sqlite3_column_int64(s, 0);
		ps->old_user = col_dup(s, 1);
		ps->next_seq = sqlite3_column_int64(s, 2);
	}
	finish(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return step_fail(q, rc);
	if (rc == SQLITE_ROW && !ps->old_user)
		return PR_ERR_NOMEM;
	if (!d->token)
		return PR_OK;
	s = stmt(q, S_DEV_HOLDER);
	bi(q, s, 1, app);
	bt(q, s, 2, d->platform);
	bt(q, s, 3, d->token);
	bt(q, s, 4, d->device_id);
	rc = step(q, s);
	if (rc == SQLITE_ROW) {
		ps->holder = sqlite3_column_int64(s, 0);
		ps->holder_device = col_dup(s, 1);
		ps->holder_user = col_dup(s, 2);
	}
	finish(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return step_fail(q, rc);
	if (rc == SQLITE_ROW && (!ps->holder_device || !ps->holder_user))
		return PR_ERR_NOMEM;
	return PR_OK;
}

/*
 * Upsert by (app, device_id). A token held by another row moves here (that
 * row keeps its inbox, loses the token and its waiting pushes). A device
 * that changes user loses its inbox: the old user's messages are not the
 * new user's to read. A device new to its user gets the user's waiting
 * messages (pending_fanout) in order; no push is queued for those, since
 * the device is talking to us right now.
 */
static int op_device_put(struct sq *q, struct pr_store_job *job)
{
	const struct pr_device *d = &job->device;
	struct put_state ps = {0};
	const char *moved_user = NULL;
	sqlite3_stmt *s;
	int64_t app, now = now_or(d->now), backlog = 0;
	int rc, rv, created = 0, user_changed = 0;

	if (!d->device_id || !d->user || !d->platform || !d->environment) {
		snprintf(q->errbuf, sizeof(q->errbuf),
			 "a device needs device_id, user, platform and "
			 "environment");
		return PR_ERR_INVAL;
	}
	rv = app_id(q, d->app, 1, &app);
	if (rv)
		goto out;
	rv = put_lookup(q, app, d, &ps);
	if (rv)
		goto out;
	if (ps.holder) {
		rv = run_i(q, S_DEV_UNTOKEN, ps.holder);
		if (!rv)
			rv = cancel_pushes(q, ps.holder, now, "token moved");
		if (rv)
			goto out;
	}
	if (ps.row) {
		user_changed = strcmp(ps.old_user, d->user) != 0;
		if (user_changed) {
			rv = run_i(q, S_INBOX_DROP, ps.row);
			if (!rv)
				rv = cancel_pushes(q, ps.row, now,
						   "device moved");
			if (rv)
				goto out;
		}
		s = stmt(q, S_DEV_SET);
		bi(q, s, 1, ps.row);
		bt(q, s, 2, d->user);
		bt(q, s, 3, d->platform);
		bt(q, s, 4, d->token);
		bt(q, s, 5, d->environment);
		bi(q, s, 6, now);
		rv = run(q, s);
		if (rv)
			goto out;
	} else {
		s = stmt(q, S_DEV_ADD);
		bi(q, s, 1, app);
		bt(q, s, 2, d->device_id);
		bt(q, s, 3, d->user);
		bt(q, s, 4, d->platform);
		bt(q, s, 5, d->token);
		bt(q, s, 6, d->environment);
		bi(q, s, 7, now);
		rc = step(q, s);
		if (rc == SQLITE_ROW) {
			ps.row = sqlite3_column_int64(s, 0);
			ps.next_seq = sqlite3_column_int64(s, 1);
		}
		finish(s);
		if (rc != SQLITE_ROW) {
			rv = step_fail(q, rc);
			goto out;
		}
		created = 1;
	}
	if (created || user_changed) {
		s = stmt(q, S_BACKLOG);
		bi(q, s, 1, ps.row);
		bi(q, s, 2, ps.next_seq);
		bi(q, s, 3, now);
		bi(q, s, 4, app);
		bt(q, s, 5, d->user);
		bt(q, s, 6, d->device_id);
		rv = run(q, s);
		if (rv)
			goto out;
		backlog = sqlite3_changes(q->db);
		if (backlog > 0) {
			rv = run_ii(q, S_SEQ_ADD, ps.row, backlog);
			if (rv)
				goto out;
		}
	}
	if (user_changed)
		moved_user = ps.old_user;
	else if (ps.holder && strcmp(ps.holder_user, d->user) != 0)
		moved_user = ps.holder_user;
	job->result = json_pack(
	    "{s:s, s:s, s:b, s:o, s:o, s:I}", "device_id", d->device_id, "user",
	    d->user, "created", created, "moved_from_user",
	    moved_user ? json_string(moved_user) : json_null(),
	    "moved_from_device",
	    ps.holder_device ? json_string(ps.holder_device) : json_null(),
	    "backlog", (json_int_t)backlog);
	if (!job->result)
		rv = PR_ERR_NOMEM;
out:
	free(ps.old_user);
	free(ps.holder_device);
	free(ps.holder_user);
	return rv;
}

static int op_device_delete(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s;
	int64_t app;
	int rv;

	rv = app_id(q, job->app, 0, &app);
	if (rv == PR_ERR_NOTFOUND)
		goto notfound;
	if (rv)
		return rv;
	s = stmt(q, S_DEV_DEL);
	bi(q, s, 1, app);
	bt(q, s, 2, job->device_id);
	rv = run(q, s);
	if (rv)
		return rv;
	if (sqlite3_changes(q->db) > 0)
		return PR_OK;
notfound:
	snprintf(q->errbuf, sizeof(q->errbuf), "no such device");
	return PR_ERR_NOTFOUND;
}

static int op_device_list(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s;
	json_t *list, *o;
	int64_t app;
	int rc, rv;

	list = json_array();
	if (!list)
		return PR_ERR_NOMEM;
	job->result = list;
	rv = app_id(q, job->app, 0, &app);
	if (rv == PR_ERR_NOTFOUND)
		return PR_OK; /* an app nobody registered with: no devices */
	if (rv)
		return rv;
	s = stmt(q, S_DEV_LIST);
	bi(q, s, 1, app);
	bt(q, s, 2, job->user);
	bi(q, s, 3, clamp_limit(job->limit, MAX_LIST, MAX_LIST));
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		o = json_pack(
		    "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s}", "device_id",
		    col_str(s, 0), "user", col_str(s, 1), "platform",
		    col_str(s, 2), "token", col_str(s, 3), "environment",
		    col_str(s, 4), "created_at", rfc3339(s, 5), "last_seen_at",
		    rfc3339(s, 6), "push",
		    strcmp((const char *)sqlite3_column_text(s, 7), "ok") == 0
			? "ok"
			: "invalid");
		if (!o || json_array_append_new(list, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	finish(s);
	return rc == SQLITE_DONE ? PR_OK : step_fail(q, rc);
}

static int op_invalid_tokens(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s;
	json_t *list, *o;
	int64_t app, next = job->after > 0 ? job->after : 0;
	int rc, rv;

	list = json_array();
	if (!list)
		return PR_ERR_NOMEM;
	rv = app_id(q, job->app, 0, &app);
	if (rv == PR_ERR_NOTFOUND)
		goto done;
	if (rv) {
		json_decref(list);
		return rv;
	}
	s = stmt(q, S_INVALID_LIST);
	bi(q, s, 1, app);
	bi(q, s, 2, next);
	bi(q, s, 3, clamp_limit(job->limit, MAX_LIST, MAX_LIST));
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		next = sqlite3_column_int64(s, 0);
		o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "cursor",
			      (json_int_t)next, "device_id", col_str(s, 1),
			      "user", col_str(s, 2), "platform", col_str(s, 3),
			      "token", col_str(s, 4), "reason", col_str(s, 5),
			      "at", rfc3339(s, 6));
		if (!o || json_array_append_new(list, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	finish(s);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return step_fail(q, rc);
	}
done:
	job->result =
	    json_pack("{s:o, s:I}", "tokens", list, "next", (json_int_t)next);
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

/* ---- API keys ------------------------------------------------------------ */

static int op_key_create(struct sq *q, struct pr_store_job *job)
{
	struct pr_api_key *k = &job->key;
	sqlite3_stmt *s;
	int rc, rv, found;

	if (!k->name || !k->scope || !k->prefix) {
		snprintf(q->errbuf, sizeof(q->errbuf),
			 "a key needs a name, a scope and a prefix");
		return PR_ERR_INVAL;
	}
	s = stmt(q, S_KEY_NAMED);
	bt(q, s, 1, k->name);
	rv = exists(q, s, &found);
	if (rv)
		return rv;
	if (found) {
		snprintf(q->errbuf, sizeof(q->errbuf), "a key named %s exists",
			 k->name);
		return PR_ERR_INVAL;
	}
	s = stmt(q, S_KEY_HASHED);
	bind_rc(q, sqlite3_bind_blob(s, 1, k->hash, sizeof(k->hash),
				     SQLITE_STATIC));
	rv = exists(q, s, &found);
	if (rv)
		return rv;
	if (found) {
		snprintf(q->errbuf, sizeof(q->errbuf),
			 "this key exists already");
		return PR_ERR_INVAL;
	}
	/* [admin] max_api_keys holds here, in the transaction, so parallel
	 * creates cannot pass it together. */
	s = stmt(q, S_KEY_LIVE);
	rc = step(q, s);
	if (rc == SQLITE_ROW &&
	    sqlite3_column_int64(s, 0) >= q->cfg->max_api_keys) {
		finish(s);
		snprintf(q->errbuf, sizeof(q->errbuf),
			 "at most %ld live API keys; revoke one first",
			 q->cfg->max_api_keys);
		return PR_ERR_INVAL;
	}
	finish(s);
	if (rc != SQLITE_ROW)
		return step_fail(q, rc);
	s = stmt(q, S_KEY_ADD);
	bt(q, s, 1, k->name);
	bt(q, s, 2, k->scope);
	bind_rc(q, sqlite3_bind_blob(s, 3, k->hash, sizeof(k->hash),
				     SQLITE_STATIC));
	bt(q, s, 4, k->prefix);
	bi(q, s, 5, now_or(k->now));
	rc = step(q, s);
	if (rc == SQLITE_ROW)
		k->id = sqlite3_column_int64(s, 0);
	finish(s);
	if (rc != SQLITE_ROW)
		return step_fail(q, rc);
	job->result = json_pack("{s:I}", "id", (json_int_t)k->id);
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

static int op_key_list(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s;
	json_t *list, *o;
	int rc;

	list = json_array();
	if (!list)
		return PR_ERR_NOMEM;
	job->result = list;
	s = stmt(q, S_KEY_LIST);
	bi(q, s, 1, clamp_limit(job->limit, MAX_LIST, MAX_LIST));
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:b}", "id",
			      (json_int_t)sqlite3_column_int64(s, 0), "name",
			      col_str(s, 1), "scope", col_str(s, 2), "prefix",
			      col_str(s, 3), "created_at", rfc3339(s, 4),
			      "last_used_at", rfc3339(s, 5), "revoked",
			      sqlite3_column_type(s, 6) != SQLITE_NULL);
		if (!o || json_array_append_new(list, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	finish(s);
	return rc == SQLITE_DONE ? PR_OK : step_fail(q, rc);
}

static int op_key_revoke(struct sq *q, struct pr_store_job *job)
{
	struct pr_api_key *k = &job->key;
	sqlite3_stmt *s;
	int rc;

	if (k->id > 0) {
		s = stmt(q, S_KEY_REVOKE_ID);
		bi(q, s, 1, k->id);
	} else {
		s = stmt(q, S_KEY_REVOKE_NAME);
		bt(q, s, 1, k->name ? k->name : "");
	}
	bi(q, s, 2, now_or(k->now));
	rc = step(q, s);
	if (rc == SQLITE_ROW)
		k->id = sqlite3_column_int64(s, 0);
	finish(s);
	if (rc == SQLITE_DONE) {
		snprintf(q->errbuf, sizeof(q->errbuf), "no such key");
		return PR_ERR_NOTFOUND;
	}
	if (rc != SQLITE_ROW)
		return step_fail(q, rc);
	job->result = json_pack("{s:I}", "id", (json_int_t)k->id);
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

static int op_key_load(struct sq *q, struct pr_store_job *job)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *h;
	char text[2 * 32 + 1];
	sqlite3_stmt *s;
	json_t *list, *o;
	int rc, n;

	list = json_array();
	if (!list)
		return PR_ERR_NOMEM;
	job->result = list;
	s = stmt(q, S_KEY_LOAD);
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		h = sqlite3_column_blob(s, 2);
		n = sqlite3_column_bytes(s, 2);
		if (!h || n != 32)
			continue; /* not a SHA-256: never matches */
		for (int i = 0; i < n; i++) {
			text[2 * i] = hex[h[i] >> 4];
			text[2 * i + 1] = hex[h[i] & 15];
		}
		text[2 * n] = '\0';
		o = json_pack("{s:I, s:o, s:s}", "id",
			      (json_int_t)sqlite3_column_int64(s, 0), "scope",
			      col_str(s, 1), "hash", text);
		if (!o || json_array_append_new(list, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	finish(s);
	return rc == SQLITE_DONE ? PR_OK : step_fail(q, rc);
}

static int op_key_touch(struct sq *q, struct pr_store_job *job)
{
	int rv;

	for (size_t i = 0; i < job->n_touch; i++) {
		rv = run_ii(q, S_KEY_TOUCH, job->touch_ids[i],
			    job->touch_times ? job->touch_times[i] : now_or(0));
		if (rv)
			return rv;
	}
	return PR_OK;
}

/* ---- pushes -------------------------------------------------------------- */

/* Start-up: a push that was in flight when the daemon stopped goes out
 * again (at least once), with its attempts and its apns-id. */
static int op_push_recover(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s = stmt(q, S_RECOVER);
	int rv;

	bi(q, s, 1, now_or(job->now));
	rv = run(q, s);
	if (rv)
		return rv;
	job->result =
	    json_pack("{s:I}", "recovered", (json_int_t)sqlite3_changes(q->db));
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

/* A fresh random UUID (version 4) in canonical lowercase form. */
static void uuid4(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t k = 0;

	sqlite3_randomness((int)sizeof(b), b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = hex[b[i] >> 4];
		out[k++] = hex[b[i] & 15];
	}
	out[k] = '\0';
}

/* The skip list as a JSON array for S_CLAIM_SCAN, or NULL for none. */
static int skip_json(const struct pr_store_job *job, char **out)
{
	json_t *a;

	*out = NULL;
	if (!job->skip || !job->n_skip)
		return PR_OK;
	a = json_array();
	if (!a)
		return PR_ERR_NOMEM;
	for (size_t i = 0; i < job->n_skip; i++)
		if (job->skip[i] &&
		    json_array_append_new(a, json_string(job->skip[i]))) {
			json_decref(a);
			return PR_ERR_NOMEM;
		}
	*out = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return *out ? PR_OK : PR_ERR_NOMEM;
}

/* A job the claim looked at: handed out (end NULL) or ended. */
struct claimed {
	int64_t id;
	const char *end; /* "expired" | "dead" | NULL */
	const char *why;
	char apns_id[64];
};

/* The columns of S_CLAIM_SCAN. */
enum {
	C_ID,
	C_DUE,
	C_ATTEMPTS,
	C_CREATED,
	C_APNS_ID,
	C_APP,
	C_PLATFORM,
	C_TOKEN,
	C_ENV,
	C_DEVICE,
	C_USER,
	C_MSG,
	C_EXT_ID,
	C_MODE,
	C_PUSH,
	C_EXPIRES,
	C_SEQ,
	C_UNREAD,
};

/* Decide one due job; for one to hand out, its description. */
static int claim_row(struct sq *q, sqlite3_stmt *s, int64_t now,
		     struct claimed *c, json_t *list)
{
	long max_attempts = q->cfg->push_max_attempts;
	long max_age = q->cfg->push_max_age;
	int64_t attempts = sqlite3_column_int64(s, C_ATTEMPTS);
	int64_t created = sqlite3_column_int64(s, C_CREATED);
	const unsigned char *id = sqlite3_column_text(s, C_APNS_ID);
	json_t *o;

	c->id = sqlite3_column_int64(s, C_ID);
	c->end = NULL;
	c->why = NULL;
	if (sqlite3_column_type(s, C_MSG) == SQLITE_NULL) {
		c->end = "expired";
		c->why = "message gone";
		return PR_OK;
	}
	if (sqlite3_column_int64(s, C_EXPIRES) <= now) {
		c->end = "expired";
		c->why = "message expired";
		return PR_OK;
	}
	if (sqlite3_column_int64(s, C_SEQ) == 0) {
		/* The device has no delivery of it left: it acknowledged the
		 * message while this push was in flight (an ack cancels only
		 * waiting pushes), and the push came back after a crash or a
		 * retry. Nothing is left to announce. */
		c->end = "cancelled";
		c->why = "acknowledged";
		return PR_OK;
	}
	if (max_attempts > 0 && attempts >= max_attempts) {
		c->end = "dead";
		c->why = "max attempts";
		return PR_OK;
	}
	if (max_age > 0 && now - created >= max_age) {
		c->end = "dead";
		c->why = "max age";
		return PR_OK;
	}
	/* The apns-id is made once and kept: a resend after a crash or a
	 * retry carries the same one. */
	if (id && *id && strlen((const char *)id) < sizeof(c->apns_id))
		snprintf(c->apns_id, sizeof(c->apns_id), "%s", id);
	else
		uuid4(c->apns_id);
	o = json_pack(
	    "{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:i, s:o, s:I,"
	    " s:I, s:s, s:I, s:I}",
	    "job_id", (json_int_t)c->id, "app", col_str(s, C_APP), "platform",
	    col_str(s, C_PLATFORM), "token", col_str(s, C_TOKEN), "environment",
	    col_str(s, C_ENV), "device_id", col_str(s, C_DEVICE), "user",
	    col_str(s, C_USER), "message_id", col_str(s, C_EXT_ID), "seq",
	    (json_int_t)sqlite3_column_int64(s, C_SEQ), "mode",
	    sqlite3_column_int(s, C_MODE), "push", col_str(s, C_PUSH), "unread",
	    (json_int_t)sqlite3_column_int64(s, C_UNREAD), "expires_at",
	    (json_int_t)sqlite3_column_int64(s, C_EXPIRES), "apns_id",
	    c->apns_id, "attempt", (json_int_t)(attempts + 1), "created_at",
	    (json_int_t)created);
	if (!o || json_array_append_new(list, o))
		return PR_ERR_NOMEM;
	return PR_OK;
}

/* One walk of S_CLAIM_SCAN: up to want due jobs decided into c[], the
 * ones handed out described in list. */
static int claim_scan(struct sq *q, int64_t now, long want, const char *skip,
		      struct claimed *c, size_t *n, json_t *list)
{
	sqlite3_stmt *s = stmt(q, S_CLAIM_SCAN);
	int rc, rv = PR_OK;

	*n = 0;
	bi(q, s, 1, now);
	bi(q, s, 2, want);
	bt(q, s, 3, skip);
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		if (*n >= (size_t)want)
			continue; /* (LIMIT says it cannot happen) */
		rv = claim_row(q, s, now, &c[*n], list);
		if (rv)
			break;
		(*n)++;
	}
	finish(s);
	if (!rv && rc != SQLITE_DONE && rc != SQLITE_ROW)
		rv = step_fail(q, rc);
	return rv;
}

/*
 * Hand out up to limit due pushes (pending or retry, next_attempt_at <=
 * now, due order) of devices that can take one, skipping paused
 * app/platform pairs. A job whose message is gone or expired ends
 * 'expired', one out of attempts or age 'dead'; the rest go in flight
 * with one attempt more. Each walk reads its rows first and changes them
 * after (so it never meets a row it changed); when it ended some, another
 * walk fills the room they took, so fewer than limit handed out means no
 * more are due.
 */
static int op_push_claim(struct sq *q, struct pr_store_job *job)
{
	int64_t now = now_or(job->now);
	long def = q->cfg->push_claim_batch > 0 ? q->cfg->push_claim_batch
						: DEFAULT_CLAIM_BATCH;
	long limit = clamp_limit(job->limit, def > MAX_CLAIM ? MAX_CLAIM : def,
				 MAX_CLAIM);
	struct claimed *c = NULL;
	sqlite3_stmt *s;
	char *skip = NULL;
	size_t n, ended;
	int rv;

	job->result = json_array();
	if (!job->result)
		return PR_ERR_NOMEM;
	rv = skip_json(job, &skip);
	if (rv)
		return rv;
	c = malloc((size_t)limit * sizeof(*c));
	if (!c) {
		free(skip);
		return PR_ERR_NOMEM;
	}
	do {
		rv = claim_scan(q, now,
				limit - (long)json_array_size(job->result),
				skip, c, &n, job->result);
		ended = 0;
		for (size_t i = 0; i < n && !rv; i++) {
			if (c[i].end) {
				s = stmt(q, S_JOB_END);
				bi(q, s, 1, c[i].id);
				bt(q, s, 2, c[i].end);
				bt(q, s, 3, c[i].why);
				bi(q, s, 4, now);
				ended++;
			} else {
				s = stmt(q, S_CLAIM_TAKE);
				bi(q, s, 1, c[i].id);
				bt(q, s, 2, c[i].apns_id);
				bi(q, s, 3, now);
			}
			rv = run(q, s);
		}
	} while (!rv && ended && json_array_size(job->result) < (size_t)limit);
	free(skip);
	free(c);
	return rv;
}

/* Set a job's state after an attempt. NULL next keeps next_attempt_at. */
static int job_set(struct sq *q, int64_t id, const char *state, int delta,
		   const int64_t *next, const struct pr_push_result *r,
		   const char *why, int64_t now)
{
	sqlite3_stmt *s = stmt(q, S_JOB_SET);

	bi(q, s, 1, id);
	bt(q, s, 2, state);
	bi(q, s, 3, delta);
	if (next)
		bi(q, s, 4, *next);
	else
		bind_rc(q, sqlite3_bind_null(s, 4));
	bi(q, s, 5, r->status);
	bt(q, s, 6, why);
	bt(q, s, 7, r->outcome == PR_OUTCOME_SENT ? r->provider_id : NULL);
	bi(q, s, 8, now);
	return run(q, s);
}

/* "429 TooManyRequests; max attempts": what went wrong, and why that
 * ended the push. */
static void explain(char *buf, size_t len, const struct pr_push_result *r,
		    const char *end)
{
	const char *reason = r->reason ? r->reason : "";

	if (r->status > 0 && *reason)
		snprintf(buf, len, "%ld %s; %s", r->status, reason, end);
	else if (r->status > 0)
		snprintf(buf, len, "%ld; %s", r->status, end);
	else if (*reason)
		snprintf(buf, len, "%s; %s", reason, end);
	else
		snprintf(buf, len, "%s", end);
}

/*
 * The provider says the token is dead. Unless the device registered a
 * new token meanwhile, or (APNs 410 timestamp) registered again after the
 * token was found invalid, its token goes, the token is listed in
 * invalid_tokens and the device's waiting pushes end with it.
 */
static int drop_token(struct sq *q, int64_t dev, const struct pr_push_result *r,
		      int64_t now)
{
	sqlite3_stmt *s = stmt(q, S_DEV_TOKEN);
	const unsigned char *token;
	int rc, rv, same = 0;

	bi(q, s, 1, dev);
	rc = step(q, s);
	if (rc == SQLITE_ROW) {
		token = sqlite3_column_text(s, 0);
		same = token && r->token &&
		       strcmp((const char *)token, r->token) == 0;
		if (same && r->invalid_since > 0 &&
		    sqlite3_column_int64(s, 1) * 1000 > r->invalid_since)
			same = 0; /* registered again since */
	}
	finish(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return step_fail(q, rc);
	if (!same)
		return PR_OK;
	s = stmt(q, S_INVALID_ADD);
	bi(q, s, 1, dev);
	bt(q, s, 2, r->reason && *r->reason ? r->reason : "invalid token");
	bi(q, s, 3, now);
	rv = run(q, s);
	if (rv)
		return rv;
	rv = run_i(q, S_DEV_INVALIDATE, dev);
	if (rv)
		return rv;
	s = stmt(q, S_PUSH_INVALIDATE);
	bi(q, s, 1, dev);
	bi(q, s, 2, now);
	bt(q, s, 3, "invalid token");
	return run(q, s);
}

enum {
	R_SENT,
	R_RETRY,
	R_DEAD,
	R_INVALID,
	R_REJECTED,
	R_REQUEUED,
	R_CANCELLED,
	R_N
};

/* One attempt's outcome. A job that is gone (its device was deleted) has
 * nothing to record; one no longer in flight (cancelled meanwhile, or a
 * result seen twice) keeps its state, but the attempt is recorded and
 * what it says about the device holds. CANCELLED is no attempt: nothing
 * was sent (the message went down the device's stream), so no attempt
 * row, and the job in flight ends 'cancelled'. */
static int push_result_one(struct sq *q, const struct pr_push_result *r,
			   int64_t now, int64_t *counts)
{
	long max_attempts = q->cfg->push_max_attempts;
	long max_age = q->cfg->push_max_age;
	const char *reason = r->reason && *r->reason ? r->reason : NULL;
	sqlite3_stmt *s = stmt(q, S_JOB_GET);
	int64_t attempts = 0, created = 0, dev = 0, next;
	char why[256];
	int rc, rv, flying = 0;

	bi(q, s, 1, r->job_id);
	rc = step(q, s);
	if (rc == SQLITE_ROW) {
		flying = strcmp((const char *)sqlite3_column_text(s, 0),
				"in_flight") == 0;
		attempts = sqlite3_column_int64(s, 1);
		created = sqlite3_column_int64(s, 2);
		dev = sqlite3_column_int64(s, 3);
	}
	finish(s);
	if (rc == SQLITE_DONE)
		return PR_OK;
	if (rc != SQLITE_ROW)
		return step_fail(q, rc);

	if (r->outcome == PR_OUTCOME_CANCELLED) {
		if (!flying)
			return PR_OK;
		s = stmt(q, S_JOB_CANCEL);
		bi(q, s, 1, r->job_id);
		bt(q, s, 2, reason ? reason : "cancelled");
		bi(q, s, 3, now);
		rv = run(q, s);
		if (!rv)
			counts[R_CANCELLED]++;
		return rv;
	}

	/* A requeue that never reached the provider (paused, waiting for a
	 * credential, no room) is not an attempt: no history row. */
	if (r->outcome == PR_OUTCOME_AUTH && r->status == 0)
		goto outcome;
	s = stmt(q, S_ATTEMPT_ADD);
	bi(q, s, 1, r->job_id);
	bi(q, s, 2, now);
	bt(q, s, 3, r->provider);
	bi(q, s, 4, r->status);
	bt(q, s, 5, reason);
	bi(q, s, 6, r->latency_ms);
	bt(q, s, 7, r->apns_id);
	rv = run(q, s);
	if (rv)
		return rv;
outcome:
	switch (r->outcome) {
	case PR_OUTCOME_SENT:
		if (flying) {
			rv = job_set(q, r->job_id, "sent", 0, NULL, r, reason,
				     now);
			counts[R_SENT]++;
		}
		if (!rv) {
			/* It went out, whatever became of the job. */
			rv = run_ii(q, S_DEV_PUSHED, dev, now);
		}
		return rv;
	case PR_OUTCOME_RETRY:
	case PR_OUTCOME_REAUTH:
		if (!flying)
			return PR_OK;
		if ((max_attempts > 0 && attempts >= max_attempts) ||
		    (max_age > 0 && now - created >= max_age)) {
			explain(why, sizeof(why), r,
				max_attempts > 0 && attempts >= max_attempts
				    ? "max attempts"
				    : "max age");
			counts[R_DEAD]++;
			return job_set(q, r->job_id, "dead", 0, NULL, r, why,
				       now);
		}
		next = r->retry_at > now ? r->retry_at : now;
		counts[R_RETRY]++;
		return job_set(q, r->job_id, "retry", 0, &next, r, reason, now);
	case PR_OUTCOME_INVALID_TOKEN:
		if (flying) {
			rv = job_set(q, r->job_id, "invalid_token", 0, NULL, r,
				     reason, now);
			if (rv)
				return rv;
			counts[R_INVALID]++;
		}
		return drop_token(q, dev, r, now);
	case PR_OUTCOME_REJECTED:
		if (!flying)
			return PR_OK;
		counts[R_REJECTED]++;
		return job_set(q, r->job_id, "dead", 0, NULL, r,
			       reason ? reason : "rejected", now);
	case PR_OUTCOME_AUTH:
		/* The provider pauses (or the push could not leave yet); this
		 * attempt does not count. retry_at, when given, holds it back
		 * so a requeue cannot spin. */
		if (!flying)
			return PR_OK;
		counts[R_REQUEUED]++;
		next = r->retry_at;
		return job_set(q, r->job_id, "pending", -1,
			       r->retry_at > now ? &next : NULL, r, reason,
			       now);
	default: return PR_ERR_INVAL; /* op_push_result checked */
	}
}

static int op_push_result(struct sq *q, struct pr_store_job *job)
{
	static const char *const names[R_N] = {
	    "sent",	"retry",    "dead",	 "invalid",
	    "rejected", "requeued", "cancelled",
	};
	int64_t now = now_or(job->now), counts[R_N] = {0};
	json_t *o;
	int rv;

	if (job->n_results && !job->results) {
		snprintf(q->errbuf, sizeof(q->errbuf), "no results");
		return PR_ERR_INVAL;
	}
	/* Every check before the first write. */
	for (size_t i = 0; i < job->n_results; i++) {
		int outcome = job->results[i].outcome;

		if (outcome < PR_OUTCOME_SENT ||
		    outcome > PR_OUTCOME_CANCELLED) {
			snprintf(q->errbuf, sizeof(q->errbuf),
				 "unknown push outcome %d", outcome);
			return PR_ERR_INVAL;
		}
	}
	for (size_t i = 0; i < job->n_results; i++) {
		rv = push_result_one(q, &job->results[i], now, counts);
		if (rv)
			return rv;
	}
	o = json_object();
	if (!o)
		return PR_ERR_NOMEM;
	job->result = o;
	for (size_t i = 0; i < R_N; i++)
		if (json_object_set_new(o, names[i],
					json_integer((json_int_t)counts[i])))
			return PR_ERR_NOMEM;
	return PR_OK;
}

/* A device's inbox position, for ACK and INBOX_FETCH. */
struct inbox_dev {
	int64_t id, next_seq, acked;
	int invalid; /* its push token was found dead */
};

/*
 * Find (app, device_id); with user set it must be that user's device.
 * PR_ERR_NOTFOUND (with "no such device") for an unknown app or device
 * or another user's device alike, so nothing is revealed.
 */
static int find_inbox_dev(struct sq *q, const char *app_name,
			  const char *device_id, const char *user,
			  struct inbox_dev *d)
{
	int64_t app;
	sqlite3_stmt *s;
	int rc, rv, mine = 0;

	memset(d, 0, sizeof(*d));
	rv = app_id(q, app_name, 0, &app);
	if (rv == PR_ERR_NOTFOUND)
		goto notfound;
	if (rv)
		return rv;
	s = stmt(q, S_ACK_DEV);
	bi(q, s, 1, app);
	bt(q, s, 2, device_id);
	rc = step(q, s);
	if (rc == SQLITE_ROW) {
		d->id = sqlite3_column_int64(s, 0);
		d->next_seq = sqlite3_column_int64(s, 1);
		d->acked = sqlite3_column_int64(s, 2);
		mine = !user || same_text(s, 3, user);
		d->invalid = same_text(s, 4, "invalid");
	}
	finish(s);
	if (rc == SQLITE_DONE || (rc == SQLITE_ROW && !mine))
		goto notfound;
	if (rc != SQLITE_ROW)
		return step_fail(q, rc);
	return PR_OK;
notfound:
	snprintf(q->errbuf, sizeof(q->errbuf), "no such device");
	return PR_ERR_NOTFOUND;
}

/*
 * A device read its inbox up to seq up_to (job->after): acked_seq moves
 * there (never back: an older ack is a no-op), the deliveries up to it
 * go, and so does its waiting push once the message it would announce is
 * acknowledged (with coalescing: the newest). A seq never delivered is an
 * error. With job->user (a client token's sub) the device must be that
 * user's: another user's device is "no such device", as an unknown one.
 */
static int op_ack(struct sq *q, struct pr_store_job *job)
{
	int64_t dev, next_seq, acked, up = job->after;
	int64_t now = now_or(job->now), cancelled = 0, remaining = 0;
	struct inbox_dev d;
	sqlite3_stmt *s;
	int rc, rv;

	rv = find_inbox_dev(q, job->app, job->device_id, job->user, &d);
	if (rv)
		return rv;
	dev = d.id;
	next_seq = d.next_seq;
	acked = d.acked;
	if (up < 0 || up > next_seq - 1) {
		snprintf(q->errbuf, sizeof(q->errbuf),
			 "seq %lld was never delivered", (long long)up);
		return PR_ERR_INVAL;
	}
	if (up > acked) {
		rv = run_ii(q, S_ACK_SET, dev, up);
		if (rv)
			return rv;
		rv = run_ii(q, S_ACK_DROP, dev, up);
		if (rv)
			return rv;
		rv = run_ii(q, S_ACK_CANCEL, dev, now);
		if (rv)
			return rv;
		cancelled = sqlite3_changes(q->db);
		acked = up;
	}
	s = stmt(q, S_QUEUED);
	bi(q, s, 1, dev);
	rc = step(q, s);
	if (rc == SQLITE_ROW)
		remaining = sqlite3_column_int64(s, 0);
	finish(s);
	if (rc != SQLITE_ROW)
		return step_fail(q, rc);
	job->result = json_pack("{s:I, s:I, s:I}", "acked", (json_int_t)acked,
				"cancelled", (json_int_t)cancelled, "remaining",
				(json_int_t)remaining);
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

/* One inbox entry from an S_INBOX_PAGE row: {seq, id, payload,
 * created_at}, the payload as the JSON it was stored as. */
static int inbox_entry(struct sq *q, sqlite3_stmt *s, json_t *list)
{
	const char *text = (const char *)sqlite3_column_text(s, 2);
	int64_t seq = sqlite3_column_int64(s, 0);
	json_t *payload, *o;
	json_error_t jerr;

	if (text) {
		payload =
		    json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (!payload) {
			/* Ingest stored it from parsed JSON: a damaged
			 * database. (The payload stays out of the reason.) */
			snprintf(q->errbuf, sizeof(q->errbuf),
				 "the stored payload of seq %lld is not JSON",
				 (long long)seq);
			return PR_ERR_STORE;
		}
	} else {
		payload = json_null();
	}
	o = json_pack("{s:I, s:o, s:o, s:o}", "seq", (json_int_t)seq, "id",
		      col_str(s, 1), "payload", payload, "created_at",
		      rfc3339(s, 3));
	if (!o || json_array_append_new(list, o))
		return PR_ERR_NOMEM;
	return PR_OK;
}

/*
 * A device's inbox page: the deliveries after max(after, acked_seq) in
 * seq order, at most limit, their messages' ids, payloads and times.
 * Read-only. The device must be job->user's: another user's device is
 * "no such device", as an unknown one. next is where the page ends (the
 * cursor to ask after next time); more says a next page has messages.
 */
static int op_inbox_fetch(struct sq *q, struct pr_store_job *job)
{
	int64_t dev, next_seq, acked, from, next;
	int64_t now = now_or(job->now);
	long limit = job->limit, n = 0;
	struct inbox_dev d;
	json_t *msgs;
	sqlite3_stmt *s;
	int rc, rv = PR_OK, invalid;

	if (!job->user || !*job->user) {
		snprintf(q->errbuf, sizeof(q->errbuf), "no user named");
		return PR_ERR_INVAL;
	}
	if (job->after < 0) {
		snprintf(q->errbuf, sizeof(q->errbuf),
			 "after must not be negative");
		return PR_ERR_INVAL;
	}
	if (limit < 1 || limit > MAX_LIST) {
		snprintf(q->errbuf, sizeof(q->errbuf), "limit must be 1 to %d",
			 MAX_LIST);
		return PR_ERR_INVAL;
	}
	rv = find_inbox_dev(q, job->app, job->device_id, job->user, &d);
	if (rv)
		return rv;
	dev = d.id;
	next_seq = d.next_seq;
	acked = d.acked;
	invalid = d.invalid;

	from = job->after > acked ? job->after : acked;
	next = from;
	msgs = json_array();
	if (!msgs)
		return PR_ERR_NOMEM;
	s = stmt(q, S_INBOX_PAGE);
	bi(q, s, 1, dev);
	bi(q, s, 2, from);
	bi(q, s, 3, now);
	bi(q, s, 4, (int64_t)limit + 1);
	while ((rc = step(q, s)) == SQLITE_ROW && n < limit) {
		rv = inbox_entry(q, s, msgs);
		if (rv)
			break;
		next = sqlite3_column_int64(s, 0);
		n++;
	}
	finish(s);
	if (!rv && rc != SQLITE_ROW && rc != SQLITE_DONE)
		rv = step_fail(q, rc);
	if (rv) {
		json_decref(msgs);
		return rv;
	}
	/* The loop stopped on a row past the page: there is more. */
	job->result =
	    json_pack("{s:o, s:I, s:b, s:s, s:I, s:I}", "messages", msgs,
		      "next", (json_int_t)next, "more", rc == SQLITE_ROW,
		      "push", invalid ? "invalid" : "ok", "acked",
		      (json_int_t)acked, "last", (json_int_t)(next_seq - 1));
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

/* ---- maintenance --------------------------------------------------------- */

/* A bounded slice of retention work; "more" says another slice would
 * find rows. */
static int op_sweep(struct sq *q, struct pr_store_job *job)
{
	static const enum stmt steps[] = {
	    S_SWEEP_EXPIRE_JOBS, S_SWEEP_EXPIRED, S_SWEEP_JOBS,
	    S_SWEEP_DONE,	 S_SWEEP_INVALID,
	};
	static const char *const names[] = {
	    "expired_pushes",	 "expired_messages", "push_jobs",
	    "finished_messages", "invalid_tokens",
	};
	int64_t now = now_or(job->now), counts[PR_ARRAY_SIZE(steps)];
	long batch = q->cfg->storage_sweep_batch > 0
			 ? q->cfg->storage_sweep_batch
			 : DEFAULT_SWEEP_BATCH;
	int64_t limit = clamp_limit(job->limit, batch, LONG_MAX);
	int64_t history =
	    q->cfg->storage_history > 0 ? q->cfg->storage_history : 0;
	int64_t before;
	sqlite3_stmt *s;
	json_t *o;
	int rv, more = 0;

	for (size_t i = 0; i < PR_ARRAY_SIZE(steps); i++) {
		if (steps[i] == S_SWEEP_EXPIRE_JOBS ||
		    steps[i] == S_SWEEP_EXPIRED)
			before = now;
		else if (steps[i] == S_SWEEP_INVALID)
			before = now - (int64_t)INVALID_TOKEN_DAYS * 86400;
		else
			before = now - history;
		s = stmt(q, steps[i]);
		bi(q, s, 1, before);
		bi(q, s, 2, limit);
		rv = run(q, s);
		if (rv)
			return rv;
		counts[i] = sqlite3_changes(q->db);
		/* (Expiring pushes is bounded by the messages it looks at.) */
		if (counts[i] >= limit && steps[i] != S_SWEEP_EXPIRE_JOBS)
			more = 1;
		if (steps[i] == S_SWEEP_EXPIRED || steps[i] == S_SWEEP_DONE)
			q->n_messages -= counts[i];
	}
	o = json_object();
	if (!o)
		return PR_ERR_NOMEM;
	job->result = o;
	for (size_t i = 0; i < PR_ARRAY_SIZE(steps); i++)
		if (json_object_set_new(o, names[i],
					json_integer((json_int_t)counts[i])))
			return PR_ERR_NOMEM;
	if (json_object_set_new(o, "more", json_boolean(more)))
		return PR_ERR_NOMEM;
	return PR_OK;
}

/* A checkpoint cannot run inside the transaction: it runs after COMMIT
 * and answers every checkpoint job of that transaction. */
static int op_checkpoint(struct sq *q, struct pr_store_job *job)
{
	if (q->n_ckpt < MAX_CKPT_JOBS) {
		q->ckpt[q->n_ckpt++] = job;
		return PR_OK;
	}
	job->result = json_pack("{s:b}", "coalesced", 1);
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

static void checkpoint_now(struct sq *q)
{
	char why[160] = "";
	int log = -1, done = -1, rc;
	json_t *r;

	/* TRUNCATE would wait busy_timeout for readers; the store thread
	 * has commits to make, so a busy checkpoint is reported instead. */
	sqlite3_busy_timeout(q->db, 0);
	errno = 0;
	rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
				       &log, &done);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		describe(q->db, rc, why, sizeof(why));
	sqlite3_busy_timeout(q->db, q->busy_timeout);
	for (size_t i = 0; i < q->n_ckpt; i++) {
		if (rc == SQLITE_OK || rc == SQLITE_BUSY)
			r = json_pack("{s:b, s:i, s:i}", "busy",
				      rc == SQLITE_BUSY, "wal_frames", log,
				      "checkpointed", done);
		else
			r = json_pack("{s:b, s:s}", "busy", 0, "error", why);
		q->ckpt[i]->result = r;
	}
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		pr_warn("store: checkpoint: %s", why);
	q->n_ckpt = 0;
}

static int op_count(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s;
	json_t *o, *jobs;
	int rc;

	s = stmt(q, S_COUNT);
	rc = step(q, s);
	if (rc != SQLITE_ROW) {
		finish(s);
		return step_fail(q, rc);
	}
	o = json_pack("{s:I, s:I, s:I, s:I}", "messages",
		      (json_int_t)sqlite3_column_int64(s, 0), "deliveries",
		      (json_int_t)sqlite3_column_int64(s, 1), "devices",
		      (json_int_t)sqlite3_column_int64(s, 2), "pending_fanout",
		      (json_int_t)sqlite3_column_int64(s, 3));
	finish(s);
	jobs = json_object();
	if (!o || !jobs || json_object_set(o, "push_jobs", jobs)) {
		json_decref(o);
		json_decref(jobs);
		return PR_ERR_NOMEM;
	}
	json_decref(jobs); /* o holds it */
	job->result = o;
	for (size_t i = 0; i < PR_ARRAY_SIZE(push_states); i++)
		if (json_object_set_new(jobs, push_states[i], json_integer(0)))
			return PR_ERR_NOMEM;
	s = stmt(q, S_COUNT_JOBS);
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		if (json_object_set_new(
			jobs, (const char *)sqlite3_column_text(s, 0),
			json_integer(sqlite3_column_int64(s, 1)))) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	finish(s);
	return rc == SQLITE_DONE ? PR_OK : step_fail(q, rc);
}

/* ---- admin --------------------------------------------------------------- */

static json_t *col_int(sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return json_null();
	return json_integer(sqlite3_column_int64(s, col));
}

/* A stored JSON text as a value (a string when it does not parse). */
static json_t *col_json(sqlite3_stmt *s, int col)
{
	const char *v = (const char *)sqlite3_column_text(s, col);
	json_t *j;

	if (!v)
		return json_null();
	j = json_loads(v, JSON_DECODE_ANY, NULL);
	return j ? j : json_string(v);
}

static int op_stats(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s;
	json_t *counts, *queue, *o;
	int64_t oldest = 0, now = now_or(job->now);
	int rc, rv;

	rv = op_count(q, job);
	if (rv)
		return rv;
	counts = job->result;
	job->result = NULL;
	queue = json_object_get(counts, "push_jobs");
	s = stmt(q, S_STATS_OLDEST);
	rc = step(q, s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		oldest = sqlite3_column_int64(s, 0);
	finish(s);
	if (rc != SQLITE_ROW) {
		json_decref(counts);
		return step_fail(q, rc);
	}
	o = json_pack("{s:O, s:I, s:O, s:O}", "queue", queue,
		      "oldest_pending_age",
		      (json_int_t)(oldest && now > oldest ? now - oldest : 0),
		      "messages", json_object_get(counts, "messages"),
		      "devices", json_object_get(counts, "devices"));
	json_decref(counts);
	job->result = o;
	return o ? PR_OK : PR_ERR_NOMEM;
}

static int op_msg_list(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s;
	json_t *list, *o;
	long limit = clamp_limit(job->limit, 50, MAX_LIST), n = 0;
	int64_t last = 0;
	int rc;

	list = json_array();
	if (!list)
		return PR_ERR_NOMEM;
	s = stmt(q, job->user ? S_MSG_LIST_USER : S_MSG_LIST_ALL);
	bi(q, s, 1, job->after > 0 ? job->after : INT64_MAX);
	if (job->user)
		bt(q, s, 2, job->user);
	bt(q, s, 3, job->state);
	bt(q, s, 4, job->platform);
	if (job->since > 0)
		bi(q, s, 5, job->since);
	if (job->until > 0)
		bi(q, s, 6, job->until);
	bi(q, s, 7, limit + 1);
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		if (n == limit)
			break; /* one more: there is a next page */
		last = sqlite3_column_int64(s, 0);
		o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:I}", "id",
			      col_str(s, 1), "app", col_str(s, 2), "user",
			      col_str(s, 3), "created_at", rfc3339(s, 4),
			      "expires_at", rfc3339(s, 5), "devices",
			      (json_int_t)sqlite3_column_int64(s, 6),
			      "push_state", col_str(s, 7), "attempts",
			      (json_int_t)sqlite3_column_int64(s, 8));
		if (!o || json_array_append_new(list, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	finish(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		json_decref(list);
		return step_fail(q, rc);
	}
	job->result =
	    json_pack("{s:o, s:o}", "messages", list, "next",
		      rc == SQLITE_ROW ? json_integer(last) : json_null());
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

/* The message job->item_ext (of job->app when set): its row id and app
 * id. NOTFOUND, or INVAL when several apps hold that id. */
static int msg_find(struct sq *q, struct pr_store_job *job, int64_t *id,
		    json_t **row)
{
	sqlite3_stmt *s = stmt(q, S_MSG_FIND);
	int rc, n = 0;

	bt(q, s, 1, job->item_ext);
	bt(q, s, 2, job->app);
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		if (++n > 1)
			break;
		*id = sqlite3_column_int64(s, 0);
		if (row) {
			*row = json_pack(
			    "{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
			    col_str(s, 1), "app", col_str(s, 2), "user",
			    col_str(s, 3), "payload", col_json(s, 4), "push",
			    col_json(s, 5), "created_at", rfc3339(s, 6),
			    "expires_at", rfc3339(s, 7));
			if (!*row) {
				rc = SQLITE_NOMEM;
				break;
			}
		}
	}
	finish(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		if (row) {
			json_decref(*row);
			*row = NULL;
		}
		return step_fail(q, rc);
	}
	if (n > 1) {
		if (row) {
			json_decref(*row);
			*row = NULL;
		}
		snprintf(job->err, sizeof(job->err),
			 "several apps have message %.60s: name the app",
			 job->item_ext);
		return PR_ERR_INVAL;
	}
	if (n == 0) {
		snprintf(job->err, sizeof(job->err), "no message %.100s",
			 job->item_ext);
		return PR_ERR_NOTFOUND;
	}
	return PR_OK;
}

static int job_history(struct sq *q, int64_t job_id, json_t *hist)
{
	sqlite3_stmt *s = stmt(q, S_JOB_ATTEMPTS);
	json_t *o;
	int rc;

	bi(q, s, 1, job_id);
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "at",
			      rfc3339(s, 0), "provider", col_str(s, 1),
			      "status", col_int(s, 2), "reason", col_str(s, 3),
			      "latency_ms", col_int(s, 4), "apns_id",
			      col_str(s, 5));
		if (!o || json_array_append_new(hist, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	finish(s);
	return rc == SQLITE_DONE ? PR_OK : step_fail(q, rc);
}

static int op_msg_show(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s;
	json_t *msg = NULL, *dels, *pushes, *o, *hist;
	int64_t id = 0;
	int rc, rv;
	size_t i;

	rv = msg_find(q, job, &id, &msg);
	if (rv)
		return rv;
	job->result = msg;
	dels = json_array();
	pushes = json_array();
	if (json_object_set_new(msg, "deliveries", dels) ||
	    json_object_set_new(msg, "pushes", pushes))
		return PR_ERR_NOMEM;
	s = stmt(q, S_MSG_DELIVERIES);
	bi(q, s, 1, id);
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		o = json_pack("{s:o, s:o, s:o, s:I, s:b}", "device_id",
			      col_str(s, 0), "user", col_str(s, 1), "platform",
			      col_str(s, 2), "seq",
			      (json_int_t)sqlite3_column_int64(s, 3), "acked",
			      sqlite3_column_int(s, 4));
		if (!o || json_array_append_new(dels, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	finish(s);
	if (rc != SQLITE_DONE)
		return step_fail(q, rc);
	s = stmt(q, S_MSG_PUSHES);
	bi(q, s, 1, id);
	for (;;) {
		rc = step(q, s);
		if (rc != SQLITE_ROW)
			break;
		o = json_pack("{s:I, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o,"
			      " s:o, s:o, s:o}",
			      "job_id", (json_int_t)sqlite3_column_int64(s, 0),
			      "device_id", col_str(s, 1), "platform",
			      col_str(s, 2), "state", col_str(s, 3), "attempts",
			      (json_int_t)sqlite3_column_int64(s, 4),
			      "next_attempt_at", rfc3339(s, 5), "last_status",
			      col_int(s, 6), "last_reason", col_str(s, 7),
			      "apns_id", col_str(s, 8), "provider_id",
			      col_str(s, 9), "created_at", rfc3339(s, 10),
			      "updated_at", rfc3339(s, 11));
		if (!o || json_array_append_new(pushes, o)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	finish(s);
	if (rc != SQLITE_DONE)
		return step_fail(q, rc);
	json_array_foreach(pushes, i, o)
	{
		hist = json_array();
		if (!hist || json_object_set_new(o, "history", hist))
			return PR_ERR_NOMEM;
		rv = job_history(
		    q, json_integer_value(json_object_get(o, "job_id")), hist);
		if (rv)
			return rv;
	}
	return PR_OK;
}

static int op_push_retry(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s = stmt(q, S_RETRY_GET);
	char state[32] = "";
	int rc, has_token = 0, rv;

	bi(q, s, 1, job->item_id);
	rc = step(q, s);
	if (rc == SQLITE_ROW) {
		snprintf(state, sizeof(state), "%s",
			 (const char *)sqlite3_column_text(s, 0));
		has_token = sqlite3_column_type(s, 1) != SQLITE_NULL;
	}
	finish(s);
	if (rc == SQLITE_DONE) {
		snprintf(job->err, sizeof(job->err), "no push job %lld",
			 (long long)job->item_id);
		return PR_ERR_NOTFOUND;
	}
	if (rc != SQLITE_ROW)
		return step_fail(q, rc);
	if (strcmp(state, "dead") != 0 && strcmp(state, "retry") != 0 &&
	    strcmp(state, "cancelled") != 0 && strcmp(state, "expired") != 0 &&
	    strcmp(state, "invalid_token") != 0) {
		snprintf(job->err, sizeof(job->err),
			 "push job %lld is %s: only dead, retry, cancelled,"
			 " expired or invalid_token jobs can be retried",
			 (long long)job->item_id, state);
		return PR_ERR_INVAL;
	}
	if (!has_token) {
		snprintf(job->err, sizeof(job->err),
			 "push job %lld: the device has no valid token",
			 (long long)job->item_id);
		return PR_ERR_INVAL;
	}
	rv = run_ii(q, S_RETRY_SET, job->item_id, now_or(job->now));
	if (rv)
		return rv;
	job->result =
	    json_pack("{s:I, s:s, s:s}", "job_id", (json_int_t)job->item_id,
		      "from", state, "state", "pending");
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

static int op_retry_dead(struct sq *q, struct pr_store_job *job)
{
	sqlite3_stmt *s = stmt(q, S_RETRY_DEAD);
	int rv;

	bi(q, s, 1, now_or(job->now));
	bi(q, s, 2, clamp_limit(job->limit, MAX_LIST, MAX_LIST));
	rv = run(q, s);
	if (rv)
		return rv;
	job->result =
	    json_pack("{s:I}", "retried", (json_int_t)sqlite3_changes(q->db));
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

static int op_msg_purge(struct sq *q, struct pr_store_job *job)
{
	int64_t id = 0, jobs;
	int rv;

	rv = msg_find(q, job, &id, NULL);
	if (rv)
		return rv;
	rv = run_i(q, S_PURGE_JOBS, id);
	if (rv)
		return rv;
	jobs = sqlite3_changes(q->db);
	rv = run_i(q, S_PURGE_MSG, id);
	if (rv)
		return rv;
	q->n_messages--;
	job->result = json_pack("{s:s, s:b, s:I}", "id", job->item_ext,
				"purged", 1, "pushes", (json_int_t)jobs);
	return job->result ? PR_OK : PR_ERR_NOMEM;
}

/* ---- the backend table --------------------------------------------------- */

static void sq_exec(void *be, struct pr_store_job *job)
{
	struct sq *q = be;
	int rv;

	q->errbuf[0] = '\0';
	switch (job->op) {
	case PR_STORE_INGEST: rv = op_ingest(q, job); break;
	case PR_STORE_DEVICE_PUT: rv = op_device_put(q, job); break;
	case PR_STORE_DEVICE_DELETE: rv = op_device_delete(q, job); break;
	case PR_STORE_DEVICE_LIST: rv = op_device_list(q, job); break;
	case PR_STORE_INVALID_TOKENS: rv = op_invalid_tokens(q, job); break;
	case PR_STORE_KEY_CREATE: rv = op_key_create(q, job); break;
	case PR_STORE_KEY_LIST: rv = op_key_list(q, job); break;
	case PR_STORE_KEY_REVOKE: rv = op_key_revoke(q, job); break;
	case PR_STORE_KEY_LOAD: rv = op_key_load(q, job); break;
	case PR_STORE_KEY_TOUCH: rv = op_key_touch(q, job); break;
	case PR_STORE_SWEEP: rv = op_sweep(q, job); break;
	case PR_STORE_CHECKPOINT: rv = op_checkpoint(q, job); break;
	case PR_STORE_COUNT: rv = op_count(q, job); break;
	case PR_STORE_PUSH_RECOVER: rv = op_push_recover(q, job); break;
	case PR_STORE_PUSH_CLAIM: rv = op_push_claim(q, job); break;
	case PR_STORE_PUSH_RESULT: rv = op_push_result(q, job); break;
	case PR_STORE_ACK: rv = op_ack(q, job); break;
	case PR_STORE_INBOX_FETCH: rv = op_inbox_fetch(q, job); break;
	case PR_STORE_STATS: rv = op_stats(q, job); break;
	case PR_STORE_MSG_LIST: rv = op_msg_list(q, job); break;
	case PR_STORE_MSG_SHOW: rv = op_msg_show(q, job); break;
	case PR_STORE_PUSH_RETRY: rv = op_push_retry(q, job); break;
	case PR_STORE_RETRY_DEAD: rv = op_retry_dead(q, job); break;
	case PR_STORE_MSG_PURGE: rv = op_msg_purge(q, job); break;
	default:
		snprintf(q->errbuf, sizeof(q->errbuf), "unknown store op %d",
			 (int)job->op);
		rv = PR_ERR_INVAL;
		break;
	}
	job->rv = rv;
	if (rv && !job->err[0])
		snprintf(job->err, sizeof(job->err), "%s",
			 q->errbuf[0] ? q->errbuf : pr_strerror(rv));
	if (rv) {
		json_decref(job->result);
		job->result = NULL;
	}
}

static int sq_begin(void *be)
{
	struct sq *q = be;

	q->errbuf[0] = '\0';
	q->n_messages_tx = q->n_messages;
	q->n_ckpt = 0;
	q->tx_wrote = q->commit_wrote = 0;
	if (apply_max_size(q))
		return PR_ERR_STORE;
	return run(q, stmt(q, S_BEGIN)) ? PR_ERR_STORE : PR_OK;
}

/*
 * Savepoints are lazy: a SAVEPOINT makes SQLite copy every page a job
 * touches into a sub-journal, which costs a third of the ingest path, and
 * jobs rarely fail after writing (the checks come first). So a job's
 * savepoint only notes how many rows had changed. When a job fails having
 * changed none, there is nothing to undo; when it changed some,
 * rollback_to says it cannot undo them, store.c rolls the transaction
 * back and runs the batch again without that job, this time with real
 * SAVEPOINTs (until the next COMMIT).
 */
static int sq_savepoint(void *be)
{
	struct sq *q = be;

	q->n_messages_sp = q->n_messages;
	q->changes_sp = sqlite3_total_changes64(q->db);
	if (!q->real_sp)
		return PR_OK;
	return run(q, stmt(q, S_SAVEPOINT)) ? PR_ERR_STORE : PR_OK;
}

static int sq_release(void *be)
{
	struct sq *q = be;

	if (sqlite3_total_changes64(q->db) != q->changes_sp)
		q->tx_wrote = 1;
	if (!q->real_sp)
		return PR_OK;
	return run(q, stmt(q, S_RELEASE)) ? PR_ERR_STORE : PR_OK;
}

/* Undo the job, or say it cannot be undone alone: it changed rows without
 * a real savepoint, or the database dropped the whole transaction (a full
 * disk or an I/O error can). */
static int sq_rollback_to(void *be)
{
	struct sq *q = be;

	/* A checkpoint job never fails, so none is undone here. */
	q->n_messages = q->n_messages_sp;
	apps_settle(q, 0);
	if (sqlite3_get_autocommit(q->db)) {
		if (!q->errbuf[0])
			snprintf(q->errbuf, sizeof(q->errbuf),
				 "the transaction was aborted");
		return PR_ERR_STORE;
	}
	if (!q->real_sp) {
		if (sqlite3_total_changes64(q->db) == q->changes_sp)
			return PR_OK;
		q->real_sp = 1;
		return PR_ERR_STORE;
	}
	if (run(q, stmt(q, S_ROLLBACK_TO)) || run(q, stmt(q, S_RELEASE)))
		return PR_ERR_STORE;
	return PR_OK;
}

static int sq_commit(void *be)
{
	struct sq *q = be;

	if (run(q, stmt(q, S_COMMIT)))
		return PR_ERR_STORE;
	q->commit_wrote = q->tx_wrote;
	q->real_sp = 0;
	q->n_messages_tx = q->n_messages;
	apps_settle(q, 1);
	if (q->n_ckpt)
		checkpoint_now(q);
	return PR_OK;
}

static int sq_rollback(void *be)
{
	struct sq *q = be;
	char keep[sizeof(q->errbuf)];
	int rv = PR_OK;

	q->n_messages = q->n_messages_tx;
	q->n_ckpt = 0;
	apps_settle(q, 0);
	if (!sqlite3_get_autocommit(q->db)) {
		/* Keep the reason that made us roll back. */
		memcpy(keep, q->errbuf, sizeof(keep));
		rv = run(q, stmt(q, S_ROLLBACK)) ? PR_ERR_STORE : PR_OK;
		memcpy(q->errbuf, keep, sizeof(keep));
	}
	return rv;
}

/*
 * Does storage take writes? A transaction that just committed rows it
 * changed has answered already (while storage failed, a probe after every
 * such batch would only add a write, and could keep health bad while
 * writes succeed). Otherwise write something nobody reads: user_version
 * set to what it is, which still makes SQLite write (and sync) a frame.
 * It rewrites a page and adds none, so after SQLITE_FULL from a database
 * at [storage] max_size with no free page it would succeed while every
 * insert still fails: then the database is reported full without trying.
 * After any other failure the write is tried (a database at its size
 * limit still takes writes that fit in its pages).
 */
static int sq_probe(void *be)
{
	struct sq *q = be;
	int64_t pages = 0, max = 0, free_pages = 0;
	char sql[96];
	int rc;

	if (q->commit_wrote)
		return PR_OK;
	q->errbuf[0] = '\0';
	if (apply_max_size(q))
		return PR_ERR_STORE;
	if (q->max_size > 0 && q->last_fail == SQLITE_FULL &&
	    pragma_int(q->db, "PRAGMA page_count", &pages) == SQLITE_OK &&
	    pragma_int(q->db, "PRAGMA max_page_count", &max) == SQLITE_OK &&
	    pragma_int(q->db, "PRAGMA freelist_count", &free_pages) ==
		SQLITE_OK &&
	    pages >= max && free_pages == 0) {
		snprintf(q->errbuf, sizeof(q->errbuf),
			 "%s ([storage] max_size)",
			 sqlite3_errstr(SQLITE_FULL));
		return PR_ERR_STORE;
	}
	snprintf(sql, sizeof(sql),
		 "BEGIN IMMEDIATE; PRAGMA user_version = %d; COMMIT",
		 SCHEMA_VERSION);
	errno = 0;
	rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return PR_OK;
	db_error(q, rc);
	if (!sqlite3_get_autocommit(q->db))
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return PR_ERR_STORE;
}

static const char *sq_errmsg(void *be)
{
	const struct sq *q = be;

	return q->errbuf;
}

static void sqlite_log_flush(void);

static void sq_close(void *be)
{
	struct sq *q = be;

	if (!q)
		return;
	for (size_t i = 0; i < N_STMT; i++)
		sqlite3_finalize(q->st[i]);
	if (q->db && sqlite3_close(q->db) != SQLITE_OK)
		pr_warn("store: close: %s", sqlite3_errmsg(q->db));
	sqlite_log_flush();
	for (size_t i = 0; i < q->n_apps; i++)
		free(q->apps[i].name);
	free(q->targets);
	free(q);
}

/* ---- open ---------------------------------------------------------------- */

/*
 * The file SQLite will use. SQLite follows symbolic links and keeps -wal
 * and -shm beside the target, so the checks below, the WAL scan
 * (store_wal.c) and the open use the resolved path (log lines name the
 * configured one). A file that does not exist yet resolves through its
 * directory; when that fails too, path stays as it is and prepare_file()
 * says why.
 */
static void resolve_path(const char *path, char *out, size_t outlen)
{
	char buf[PATH_MAX], dir[PATH_MAX];
	const char *slash = strrchr(path, '/'), *base = path;

	snprintf(out, outlen, "%s", path);
	if (realpath(path, buf)) {
		snprintf(out, outlen, "%s", buf);
		return;
	}
	if (slash) {
		size_t n = slash == path ? 1 : (size_t)(slash - path);

		if (n >= sizeof(dir))
			return;
		memcpy(dir, path, n);
		dir[n] = '\0';
		base = slash + 1;
	} else {
		snprintf(dir, sizeof(dir), ".");
	}
	if (!*base || !realpath(dir, buf))
		return;
	if (snprintf(out, outlen, "%s/%s", strcmp(buf, "/") == 0 ? "" : buf,
		     base) >= (int)outlen)
		snprintf(out, outlen, "%s", path);
}

/* The directory must exist; the database file is created 0600 by us (not
 * 0644 by SQLite), and its -wal and -shm files take its mode. name is the
 * configured path (for messages), path the resolved one. */
static int prepare_file(const char *name, const char *path, char *err,
			size_t errlen)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat sb;
	int fd;

	if (slash) {
		size_t n = slash == path ? 1 : (size_t)(slash - path);

		if (n >= sizeof(dir)) {
			snprintf(err, errlen, "[storage] path is too long");
			return PR_ERR_CONFIG;
		}
		memcpy(dir, path, n);
		dir[n] = '\0';
	} else {
		snprintf(dir, sizeof(dir), ".");
	}
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen,
			 "[storage] path %s: directory %s does not exist", name,
			 dir);
		return PR_ERR_IO;
	}
	/* SQLite would open a file it cannot write read-only, and fail
	 * later with a vaguer reason; and it keeps -wal and -shm beside
	 * the file. Say now, with the system's reason (a read-only mount,
	 * permissions). */
	if (access(dir, W_OK) != 0) {
		snprintf(err, errlen,
			 "[storage] path %s: directory %s is not writable: %s",
			 name, dir, strerror(errno));
		return PR_ERR_IO;
	}
	if (stat(path, &sb) == 0) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen,
				 "[storage] path %s: cannot open for writing: "
				 "%s",
				 name, strerror(errno));
			return PR_ERR_IO;
		}
		close(fd);
		if (sb.st_mode & 0077)
			pr_warn("store: %s is readable by other users (mode "
				"%03o); chmod 600 it",
				name, (unsigned)(sb.st_mode & 0777));
		return PR_OK;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "[storage] path %s: %s", name,
			 strerror(errno));
		return PR_ERR_IO;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno != EEXIST) {
		snprintf(err, errlen, "[storage] path %s: cannot create: %s",
			 name, strerror(errno));
		return PR_ERR_IO;
	}
	if (fd >= 0)
		close(fd);
	return PR_OK;
}

static int migrate(struct sq *q, char *err, size_t errlen)
{
	char sql[64];
	char *msg = NULL;
	int64_t version = 0;
	int rc;

	rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = pragma_int(q->db, "PRAGMA user_version", &version);
	if (rc != SQLITE_OK)
		goto fail;
	if (version > SCHEMA_VERSION) {
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		snprintf(err, errlen,
			 "the database has schema version %lld; this "
			 "pushrelayd knows up to %d",
			 (long long)version, SCHEMA_VERSION);
		return PR_ERR_STORE;
	}
	for (int64_t v = version; v < SCHEMA_VERSION; v++) {
		rc = sqlite3_exec(q->db, migrations[v], NULL, NULL, &msg);
		if (rc != SQLITE_OK)
			goto fail;
	}
	if (version < SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
			 SCHEMA_VERSION);
		rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
		if (rc != SQLITE_OK)
			goto fail;
		pr_info("store: schema version %lld -> %d", (long long)version,
			SCHEMA_VERSION);
	}
	rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return PR_OK;
fail:
	snprintf(err, errlen, "schema: %s", msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	if (!sqlite3_get_autocommit(q->db))
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return PR_ERR_STORE;
}

/*
 * [storage] startup_check: PRAGMA quick_check (every page read, the
 * b-trees' structure) or integrity_check (indexes against rows too)
 * before anything is written. A damaged database is not opened: writing
 * to it could spread the damage, and answering from it could lose events
 * without a word.
 */
static int startup_check(struct sq *q, int level, char *err, size_t errlen)
{
	const char *sql =
	    level == 2 ? "PRAGMA integrity_check(1)" : "PRAGMA quick_check(1)";
	const char *name = level == 2 ? "integrity_check" : "quick_check";
	sqlite3_stmt *s = NULL;
	char found[256] = "";
	struct timespec ts;
	double t0, t;
	int rc;

	if (level <= 0)
		return PR_OK;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	rc = sqlite3_prepare_v2(q->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(s, 0);

		/* Its first finding, on one line. */
		snprintf(found, sizeof(found), "%s", v ? v : "");
		for (char *c = found; *c; c++)
			if (*c == '\n')
				*c = ' ';
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		snprintf(found, sizeof(found), "ok");
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		int prim = rc & 0xff;

		snprintf(found, sizeof(found), "%s", sqlite3_errmsg(q->db));
		sqlite3_finalize(s);
		if (prim != SQLITE_CORRUPT && prim != SQLITE_NOTADB) {
			snprintf(err, errlen, "%s: %s", name, found);
			return PR_ERR_STORE;
		}
	} else {
		sqlite3_finalize(s);
	}
	if (strcmp(found, "ok") != 0) {
		snprintf(err, errlen,
			 "the database is damaged (%s: %s); it was not "
			 "opened: restore a backup, or salvage it with "
			 "sqlite3's .recover",
			 name, found);
		return PR_ERR_STORE;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - t0;
	pr_log(t >= 1.0 ? PR_LOG_INFO : PR_LOG_DEBUG, NULL,
	       "store: %s of the database: ok in %.2f s", name, t);
	return PR_OK;
}

static int configure(struct sq *q, const struct pr_config *cfg, char *err,
		     size_t errlen)
{
	char text[32], sql[96];
	int rc;

	sqlite3_extended_result_codes(q->db, 1);
	rc = sqlite3_busy_timeout(q->db, q->busy_timeout);
	if (rc != SQLITE_OK)
		goto fail;
	if (startup_check(q, cfg->storage_startup_check, err, errlen))
		return PR_ERR_STORE;
	rc =
	    pragma_text(q->db, "PRAGMA journal_mode = WAL", text, sizeof(text));
	if (rc != SQLITE_OK)
		goto fail;
	if (strcmp(text, "wal") != 0) {
		snprintf(err, errlen,
			 "the database cannot use WAL (journal_mode is %s)",
			 text);
		return PR_ERR_STORE;
	}
	snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s",
		 cfg->storage_synchronous == 1 ? "NORMAL" : "FULL");
	rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->db,
				  "PRAGMA foreign_keys = ON;"
				  "PRAGMA temp_store = MEMORY;"
				  "PRAGMA cache_size = -16384;"
				  "PRAGMA journal_size_limit = 67108864;",
				  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = pragma_int(q->db, "PRAGMA page_size", &q->page_size);
	if (rc == SQLITE_OK)
		rc = pragma_int(q->db, "PRAGMA max_page_count",
				&q->default_pages);
	if (rc != SQLITE_OK)
		goto fail;
	if (q->page_size <= 0)
		q->page_size = 4096;
	q->max_size = 0;
	if (apply_max_size(q)) {
		snprintf(err, errlen, "%s", q->errbuf);
		return PR_ERR_STORE;
	}
	return PR_OK;
fail:
	snprintf(err, errlen, "%s", sqlite3_errmsg(q->db));
	return PR_ERR_STORE;
}

/*
 * SQLite's own error log (SQLITE_CONFIG_LOG): WAL recovery, I/O errors
 * with the system call and errno, corruption reports. It runs on the
 * thread that called SQLite (the store thread; the loop thread while the
 * store opens), so everything here is thread-safe: pr_log_write() is one
 * write(2) per line, the rate limit takes a mutex. While this thread
 * opens the database, errors go to debug: the open fails with one line
 * of its own that names the file and the cause.
 */
#define SQLITE_LOG_WINDOW 60.0 /* seconds */
#define SQLITE_LOG_LINES  10   /* lines of a kind per window, then a count */

/* Each kind of line has its own budget: I/O errors the write probe meets
 * every second must not crowd out a corruption report, nor warnings an
 * error. */
enum { LOG_IOERR, LOG_FULL, LOG_CORRUPT, LOG_ERROR, LOG_WARN, LOG_INFO, N_LOG };

static _Thread_local int sqlite_opening;
static pthread_mutex_t sqlite_log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	double start;		 /* of the window */
	unsigned long n[N_LOG];	 /* lines logged in it, by kind */
	unsigned long dropped;	 /* lines held back, not yet reported */
	enum pr_log_level worst; /* the most severe of them */
} sqlite_log;			 /* guarded by sqlite_log_mu */

static enum pr_log_level sqlite_log_level(int code)
{
	switch (code & 0xff) {
	case SQLITE_NOTICE: return PR_LOG_INFO;
	case SQLITE_WARNING:
		return code == SQLITE_WARNING_AUTOINDEX ? PR_LOG_DEBUG
							: PR_LOG_WARN;
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PROTOCOL:
		return sqlite_opening ? PR_LOG_DEBUG : PR_LOG_ERROR;
	case SQLITE_ERROR:
	case SQLITE_MISUSE: return sqlite_opening ? PR_LOG_DEBUG : PR_LOG_WARN;
	default: return PR_LOG_DEBUG; /* constraint, busy, schema: handled */
	}
}

static int sqlite_log_kind(int code, enum pr_log_level level)
{
	if (level == PR_LOG_WARN)
		return LOG_WARN;
	if (level != PR_LOG_ERROR)
		return LOG_INFO;
	switch (code & 0xff) {
	case SQLITE_IOERR: return LOG_IOERR;
	case SQLITE_FULL: return LOG_FULL;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return LOG_CORRUPT;
	default: return LOG_ERROR;
	}
}

/* Take the count of lines held back (under the mutex). */
static unsigned long take_dropped(enum pr_log_level *worst)
{
	unsigned long n = sqlite_log.dropped;

	*worst = sqlite_log.worst;
	sqlite_log.dropped = 0;
	return n;
}

static void say_dropped(unsigned long n, enum pr_log_level worst)
{
	if (n)
		pr_log(worst, NULL,
		       "sqlite: %lu more message%s %s not logged (at most "
		       "%d of a kind every %.0f s)",
		       n, n == 1 ? "" : "s", n == 1 ? "was" : "were",
		       SQLITE_LOG_LINES, SQLITE_LOG_WINDOW);
}

/* Report the lines held back so far (any thread). */
static void sqlite_log_flush(void)
{
	enum pr_log_level worst;
	unsigned long n;

	pthread_mutex_lock(&sqlite_log_mu);
	n = take_dropped(&worst);
	pthread_mutex_unlock(&sqlite_log_mu);
	say_dropped(n, worst);
}

static void sqlite_log_line(int code, const char *msg, enum pr_log_level level)
{
	enum pr_log_level worst = PR_LOG_DEBUG;
	unsigned long dropped = 0;
	struct timespec ts;
	double t;
	int say = 1, kind;

	if (level != PR_LOG_DEBUG) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		kind = sqlite_log_kind(code, level);
		pthread_mutex_lock(&sqlite_log_mu);
		if (t - sqlite_log.start >= SQLITE_LOG_WINDOW) {
			dropped = take_dropped(&worst);
			sqlite_log.start = t;
			memset(sqlite_log.n, 0, sizeof(sqlite_log.n));
		}
		say = sqlite_log.n[kind] < SQLITE_LOG_LINES;
		if (say) {
			sqlite_log.n[kind]++;
		} else {
			if (!sqlite_log.dropped || level < sqlite_log.worst)
				sqlite_log.worst = level;
			sqlite_log.dropped++;
		}
		pthread_mutex_unlock(&sqlite_log_mu);
	}
	say_dropped(dropped, worst);
	if (say)
		pr_log(level, NULL, "sqlite: %s [%d]", msg ? msg : "", code);
}

/*
 * SQLite's own error log (SQLITE_CONFIG_LOG): WAL recovery, I/O errors
 * with the system call and errno, corruption reports. It runs on the
 * thread that called SQLite (the store thread; the loop thread while the
 * store opens), so everything here is thread-safe: pr_log_write() is one
 * write(2) per line, the rate limit takes a mutex. While this thread
 * opens the database, errors go to debug: the open fails with one line
 * of its own that names the file and the cause. SQLite's unix VFS logs an
 * I/O error before it reads errno for the error it returns, so errno is
 * left as it was.
 */
static void sqlite_log_cb(void *arg, int code, const char *msg)
{
	int saved = errno;
	/* A failed statement is the store's to report (with the errno and
	 * rate-limited); SQLite's line about it adds only the SQL. */
	enum pr_log_level level =
	    msg && strncmp(msg, "statement aborts at ", 20) == 0
		? PR_LOG_DEBUG
		: sqlite_log_level(code);

	(void)arg;
	if (pr_log_enabled(level))
		sqlite_log_line(code, msg, level);
	errno = saved;
}

static void sq_flush_log(void *be)
{
	(void)be;
	sqlite_log_flush();
}

/* Before SQLite's first use in the process: no global memory statistics,
 * whose mutex every allocation would take (a tenth of the ingest path),
 * and SQLite's error log into ours. When something initialised SQLite
 * first this fails harmlessly. */
static void sqlite_config_once(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	sqlite3_config(SQLITE_CONFIG_LOG, sqlite_log_cb, NULL);
}

static int sq_open(void **out, const struct pr_config *cfg, char *err,
		   size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	const char *path = cfg->storage_path;
	char real[PATH_MAX];
	struct sq *q;
	int64_t count = 0;
	int rc, rv;

	*out = NULL;
	if (!path || !*path) {
		snprintf(err, errlen, "[storage] path is not set");
		return PR_ERR_CONFIG;
	}
	pthread_once(&once, sqlite_config_once);
	if (!sqlite3_threadsafe()) {
		snprintf(err, errlen, "SQLite was built without threads");
		return PR_ERR_STORE;
	}
	resolve_path(path, real, sizeof(real));
	rv = prepare_file(path, real, err, errlen);
	if (rv)
		return rv;
	q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return PR_ERR_NOMEM;
	}
	sqlite_opening = 1;
	pr_store_wal_check(path, real);
	q->cfg = cfg;
	q->busy_timeout =
	    cfg->storage_busy_timeout > 0 && cfg->storage_busy_timeout < INT_MAX
		? (int)cfg->storage_busy_timeout
		: 5000;

	/* One thread at a time uses the connection: no SQLite mutex. */
	rc = sqlite3_open_v2(real, &q->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
			 q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
		rv = PR_ERR_STORE;
		goto fail;
	}
	/* SQLite falls back to read-only when it cannot write the file. */
	if (sqlite3_db_readonly(q->db, "main") == 1) {
		snprintf(err, errlen, "the database is read-only");
		rv = PR_ERR_STORE;
		goto fail_path;
	}
	rv = configure(q, cfg, err, errlen);
	if (!rv)
		rv = migrate(q, err, errlen);
	if (rv)
		goto fail_path;
	for (size_t i = 0; i < N_STMT; i++) {
		rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &q->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "statement %zu: %s", i,
				 sqlite3_errmsg(q->db));
			rv = PR_ERR_STORE;
			goto fail_path;
		}
	}
	rc = pragma_int(q->db, "SELECT count(*) FROM messages", &count);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(q->db));
		rv = PR_ERR_STORE;
		goto fail_path;
	}
	q->n_messages = q->n_messages_tx = q->n_messages_sp = count;
	sqlite_opening = 0;
	*out = q;
	return PR_OK;

fail_path:
	/* Name the file: "database is locked" alone does not say which. */
	{
		char why[1024];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "%s: %s", path, why);
	}
fail:
	/* A database we refuse is left as it was: closing the last
	 * connection would checkpoint the WAL into it. */
	if (q->db)
		sqlite3_db_config(q->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
				  (int *)NULL);
	sq_close(q);
	sqlite_opening = 0;
	return rv;
}

const struct pr_store_backend pr_store_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_to = sq_rollback_to,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .exec = sq_exec,
    .probe = sq_probe,
    .errmsg = sq_errmsg,
    .flush_log = sq_flush_log,
};

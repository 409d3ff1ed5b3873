/*
 * store.h - the durable queue behind one narrow interface.
 *
 * Callers on the event loop fill a pr_store_job and submit it; a store
 * thread takes every job waiting (up to [storage] commit_batch), runs them
 * in ONE transaction (group commit: one fsync for many requests, each job
 * inside its own savepoint so one bad job does not spoil the others),
 * commits, and hands the jobs back to the loop through ev_async, where
 * each job's done() runs. A job's outputs are only meaningful after its
 * done() and only when job->rv == 0; rv == 0 for a write job means the
 * transaction holding it has COMMITTED (with synchronous=FULL: it is on
 * disk).
 *
 * Nothing above this header knows which database is underneath. The
 * operations are domain-level (ingest events, register a device, ...)
 * and a backend implements them through struct pr_store_backend; SQLite
 * (store_sqlite.c) is the embedded default, and a PostgreSQL backend can
 * implement the same table.
 *
 * Threading: the backend runs only on the store thread. Job inputs must
 * not be touched by the loop between submit and done(); outputs are
 * written by the store thread and read by the loop after done().
 */
#ifndef PR_STORE_H
#define PR_STORE_H

#include <ev.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pushrelay.h"

struct pr_config;
struct pr_store;
struct pr_store_job;

enum pr_push_mode {
	PR_PUSH_NONE = 0,
	PR_PUSH_WAKEUP = 1,
	PR_PUSH_ALERT = 2,
};

enum pr_event_status {
	PR_EVENT_QUEUED = 0,
	PR_EVENT_DUPLICATE = 1,
};

/* One validated event of an ingest request. Strings are owned by the
 * caller (the ingest handler) and outlive the job. */
struct pr_event {
	const char *id;	 /* chat server's id: idempotency key per app */
	const char *app; /* resolved app name */
	const char *user;
	const char *const *devices; /* explicit targets, or NULL for all */
	size_t n_devices;
	const char *payload; /* compact JSON text, or NULL */
	const char *push;    /* compact JSON text of the push hints, or NULL */
	enum pr_push_mode push_mode;
	int64_t created_at; /* unix seconds */
	int64_t expires_at; /* unix seconds */
	long push_delay;    /* seconds before the push may leave */

	/* Outputs. */
	enum pr_event_status status;
	int n_targets; /* devices the message was queued for */
};

enum pr_store_op {
	PR_STORE_INGEST = 1, /* in: events; out: per-event status */
	PR_STORE_DEVICE_PUT, /* in: device; out: result {created,moved_from} */
	PR_STORE_DEVICE_DELETE,	 /* in: app, device_id; rv NOTFOUND if absent */
	PR_STORE_DEVICE_LIST,	 /* in: app, user; out: result [devices] */
	PR_STORE_INVALID_TOKENS, /* in: app, after, limit; out: result */
	PR_STORE_KEY_CREATE,	 /* in: key; out: key.id */
	PR_STORE_KEY_LIST,	 /* out: result [keys] (never the hash) */
	PR_STORE_KEY_REVOKE,	 /* in: key.id or key.name; rv NOTFOUND */
	PR_STORE_KEY_LOAD,   /* out: result [{id,scope,hash(hex)}] live keys */
	PR_STORE_KEY_TOUCH,  /* in: touch ids/times: last_used_at */
	PR_STORE_SWEEP,	     /* in: now, limit; out: result {counts} */
	PR_STORE_CHECKPOINT, /* WAL checkpoint */
	PR_STORE_COUNT,	     /* out: result {messages, deliveries, ...} */
	PR_STORE_PUSH_RECOVER, /* start-up: in_flight -> pending; {recovered} */
	PR_STORE_PUSH_CLAIM,   /* in: now, limit, skip; out: result [pushes] */
	PR_STORE_PUSH_RESULT,  /* in: results, now; out: result {counts} */
	PR_STORE_ACK,	       /* in: app, device_id, after (= up_to), now,
				  user (when set, the device must be his) */
	PR_STORE_INBOX_FETCH,  /* in: app, device_id, user, after, limit;
				  out: result {messages, next, more, push} */
	PR_STORE_STATS,	       /* out: result {queue, oldest_pending_age,
				  messages, devices} */
	PR_STORE_MSG_LIST,     /* in: user, state, platform, since, until,
				  after (= before cursor), limit;
				  out: result {messages, next} */
	PR_STORE_MSG_SHOW,     /* in: item_ext (ext id), app (optional);
				  out: result; rv NOTFOUND */
	PR_STORE_PUSH_RETRY,   /* in: item_id (job id), now; rv NOTFOUND /
				  INVAL when not retryable */
	PR_STORE_RETRY_DEAD,   /* in: now, limit; out: result {retried} */
	PR_STORE_MSG_PURGE,    /* in: item_ext, app (optional); rv NOTFOUND */
};

/*
 * The outcome of one push attempt, for PR_STORE_PUSH_RESULT. Strings are
 * owned by the submitter. outcome is an enum pr_outcome (provider.h).
 */
struct pr_push_result {
	int64_t job_id;
	int outcome;
	const char *provider;	 /* "apns" | "fcm" */
	const char *token;	 /* the token the push went to */
	long status;		 /* HTTP status, 0 for a transport failure */
	const char *reason;	 /* provider reason or transport error, or "" */
	const char *provider_id; /* on success, or NULL */
	const char *apns_id;
	long latency_ms;
	int64_t retry_at;      /* RETRY/REAUTH: earliest next attempt */
	int64_t invalid_since; /* APNs 410 timestamp (ms), 0 when absent */
};

struct pr_device {
	const char *app;
	const char *device_id;
	const char *user;
	const char *platform; /* "apns" | "fcm" */
	const char *token;
	const char *environment; /* "production" | "sandbox" */
	int64_t now;
};

struct pr_api_key {
	int64_t id; /* out for CREATE; in for REVOKE (0: by name) */
	const char *name;
	const char *scope; /* "ingest" | "admin" */
	unsigned char
	    hash[32];	    /* SHA-256 of the key; the key is never stored */
	const char *prefix; /* first characters of the key, for display */
	int64_t now;
};

struct pr_store_job {
	enum pr_store_op op;
	/* Runs on the loop thread when the job is finished. */
	void (*done)(struct pr_store_job *job, void *arg);
	void *arg;

	/* Inputs (by op). */
	struct pr_event *events;
	size_t n_events;
	struct pr_device device;
	struct pr_api_key key;
	const char *app;
	const char *user;
	const char *device_id;
	int64_t after;
	long limit;
	int64_t now;
	const int64_t *touch_ids;
	const int64_t *touch_times;
	size_t n_touch;
	const char *const *skip; /* CLAIM: "app/platform" pairs paused */
	size_t n_skip;
	const struct pr_push_result *results;
	size_t n_results;

	/* Outputs. */
	int rv;		     /* 0, or a negative enum pr_error */
	char err[160];	     /* a reason when rv != 0 (no secrets) */
	json_t *result;	     /* owned by the job's submitter after done() */
	double queued_at;    /* ev_time() at submit, for commit latency */
	double committed_at; /* ev_time() when its transaction committed */

	struct pr_store_job *next; /* private to the store */

	/* Admin inputs (STATS .. MSG_PURGE). */
	int64_t item_id;      /* PUSH_RETRY: the push job */
	const char *item_ext; /* MSG_SHOW / MSG_PURGE: the message's ext id */
	const char *state;    /* MSG_LIST: push state filter, or NULL */
	const char *platform; /* MSG_LIST: provider filter, or NULL */
	int64_t since, until; /* MSG_LIST: created_at range, 0 = open */
};

/* A storage backend. Every function runs on the store thread. */
struct pr_store_backend {
	const char *name;
	/* Open (and create or migrate) the database. 0 or an error with a
	 * reason in err. cfg stays valid until close; its reloadable
	 * [storage] numbers may change between transactions (store.c
	 * copies a reload in on the store thread). */
	int (*open)(void **be, const struct pr_config *cfg, char *err,
		    size_t errlen);
	void (*close)(void *be);
	/* Group commit: begin, one savepoint per job, commit. */
	int (*begin)(void *be);
	int (*savepoint)(void *be);
	int (*release)(void *be);     /* keep the job's work */
	int (*rollback_to)(void *be); /* undo the job's work */
	int (*commit)(void *be);
	int (*rollback)(void *be);
	/* Carry out one job (inside the savepoint). Sets job->rv / err /
	 * result. */
	void (*exec)(void *be, struct pr_store_job *job);
	/* A small write transaction that changes nothing anyone reads, to
	 * learn whether storage that failed takes writes again (a batch that
	 * only read commits even on a read-only disk). 0 when it committed,
	 * or at once, writing nothing, when the transaction just committed
	 * had changed rows (that commit wrote); otherwise an error, with
	 * the reason in errmsg. */
	int (*probe)(void *be);
	/* Why the last begin/savepoint/release/rollback_to/commit/probe
	 * failed: a backend-owned string, valid until the next call, never
	 * holding secrets or payloads. May be NULL (pr_strerror() is used
	 * then). */
	const char *(*errmsg)(void *be);
	/* Optional: log how many lines the backend's own log held back (a
	 * rate limit), at the level of the worst of them. The store thread
	 * calls it when health changes and while failures are logged;
	 * close() flushes too. */
	void (*flush_log)(void *be);
};

extern const struct pr_store_backend pr_store_sqlite;

/*
 * Open the store named by the config and start its thread. The backend is
 * opened (and migrated) before this returns, so a database that cannot be
 * used stops the daemon at start-up with a reason in err.
 */
struct pr_store *pr_store_new(struct ev_loop *loop, const struct pr_config *cfg,
			      char *err, size_t errlen);
/* Finish every submitted job (their done() runs), stop the thread, close. */
void pr_store_free(struct pr_store *st);

/*
 * Hand a job to the store thread. Returns 0, or PR_ERR_BUSY when
 * [storage] max_pending_jobs are already waiting (the caller answers 503
 * with Retry-After; done() will not run).
 */
int pr_store_submit(struct pr_store *st, struct pr_store_job *job);

/* Jobs submitted and not yet done. */
size_t pr_store_pending(const struct pr_store *st);
/* 0 while storage takes writes; PR_ERR_STORE from a failed transaction
 * until a transaction that writes commits again (for /readyz). While it
 * fails, the store thread tries a small write every second, so health
 * comes back without traffic once the fault is gone. */
int pr_store_health(const struct pr_store *st);

/* Counters for /metrics (loop thread). */
struct pr_store_stats {
	uint64_t commits;	/* transactions committed */
	uint64_t commit_errors; /* transactions that failed */
	uint64_t jobs;		/* jobs finished */
	double commit_seconds;	/* sum of submit-to-commit latency */
	uint64_t commit_latency_buckets[12];
};
const struct pr_store_stats *pr_store_stats(const struct pr_store *st);
extern const double pr_store_latency_bounds[12];

#endif

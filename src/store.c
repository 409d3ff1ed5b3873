/*
 * store.c - the store's front half: a bounded queue of jobs from the event
 * loop to one store thread, group commit, and the way back through
 * ev_async. The loop submits; the store thread takes every job waiting (up
 * to commit_batch), runs them in one transaction with a savepoint each,
 * commits, and queues them as finished; the loop's async callback runs
 * their done() in submit order and keeps the statistics. Which database is
 * underneath is the backend's business (store_sqlite.c): this file only
 * sequences begin / savepoint / exec / release / commit, so the loop never
 * waits for an fsync and nothing answered as stored was left out of a
 * committed transaction.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "store.h"

/* Upper bounds (seconds) of the submit-to-commit latency histogram;
 * cumulative like Prometheus buckets, +Inf is stats.jobs. */
const double pr_store_latency_bounds[12] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
};

#define DEFAULT_COMMIT_BATCH 1024
#define DEFAULT_MAX_PENDING  65536

/* The [storage] and [push] settings a reload may change that the backend
 * reads. */
struct limits {
	long max_messages;
	long max_size;
	long history;
	long sweep_batch;
	long push_max_attempts;
	long push_max_age;
	long push_coalesce_window;
	long push_min_interval;
	long push_claim_batch;
};

struct pr_store {
	struct ev_loop *loop;
	ev_async done_w;	     /* store thread -> loop: jobs finished */
	const struct pr_config *cfg; /* the live config (loop thread) */
	const struct pr_store_backend *ops;
	void *be;
	size_t batch_max;
	unsigned char *skip; /* store thread: batch_max flags, job failed */
	/* Store thread: the config the backend was opened with (a shallow
	 * copy; after open only its reloadable numbers are read, and they
	 * change between batches only). */
	struct pr_config snap;

	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;

	/* Guarded by mu. */
	struct pr_store_job *q_head, *q_tail; /* waiting for the thread */
	struct pr_store_job *d_head, *d_tail; /* finished, for the loop */
	uint64_t d_commits;		      /* since the loop last looked */
	uint64_t d_commit_errors;
	int d_health;
	int stopping;
	struct limits want; /* the live values, copied in at every submit */

	/* Loop thread only. */
	int closed;
	size_t pending; /* submitted, done() not yet run */
	int health;
	struct pr_store_stats stats;
};

/* ---- store thread -------------------------------------------------------- */

static const char *be_reason(const struct pr_store *st, int rv)
{
	const char *why = st->ops->errmsg ? st->ops->errmsg(st->be) : NULL;

	return why && *why ? why : pr_strerror(rv);
}

static void job_fail(struct pr_store_job *job, int rv, const char *why)
{
	job->rv = rv;
	snprintf(job->err, sizeof(job->err), "%s", why);
	json_decref(job->result);
	job->result = NULL;
}

/* Fail every job of the batch still in play with the same reason. */
static void fail_rest(struct pr_store *st, struct pr_store_job *first,
		      const char *why)
{
	size_t i = 0;

	for (struct pr_store_job *j = first; j; j = j->next, i++)
		if (!st->skip[i])
			job_fail(j, PR_ERR_STORE, why);
}

/*
 * Run the jobs of one batch [first, NULL) in one transaction, each inside
 * the backend's savepoint. A failed job is undone with rollback_to; when
 * the backend cannot undo it alone (SQLite's lazy savepoints: the job had
 * already changed rows, or the database itself dropped the transaction on
 * a full disk or an I/O error), the whole transaction is rolled back and
 * run again without that job, which keeps its error. The jobs before it
 * run again, so a backend's exec must depend only on the job's inputs and
 * the database. Every retry drops one job, so this ends. Returns the
 * batch's health: 0, or PR_ERR_STORE when storage failed some job.
 */
static int run_batch(struct pr_store *st, struct pr_store_job *first,
		     uint64_t *commits, uint64_t *errors)
{
	const struct pr_store_backend *ops = st->ops;
	struct pr_store_job *j;
	size_t i, broken;
	int rv;

	memset(st->skip, 0, st->batch_max);
	for (;;) {
		rv = ops->begin(st->be);
		if (rv) {
			fail_rest(st, first, be_reason(st, rv));
			(*errors)++;
			return PR_ERR_STORE;
		}
		broken = SIZE_MAX;
		for (j = first, i = 0; j && broken == SIZE_MAX;
		     j = j->next, i++) {
			if (st->skip[i])
				continue;
			j->rv = 0;
			j->err[0] = '\0';
			json_decref(j->result);
			j->result = NULL;
			if (ops->savepoint(st->be)) {
				job_fail(j, PR_ERR_STORE,
					 be_reason(st, PR_ERR_STORE));
				broken = i;
				continue;
			}
			ops->exec(st->be, j);
			if (j->rv) {
				json_decref(j->result);
				j->result = NULL;
				if (ops->rollback_to(st->be))
					broken = i;
			} else if (ops->release(st->be)) {
				job_fail(j, PR_ERR_STORE,
					 be_reason(st, PR_ERR_STORE));
				broken = i;
			}
		}
		if (broken == SIZE_MAX)
			break;
		st->skip[broken] = 1;
		ops->rollback(st->be);
	}
	rv = ops->commit(st->be);
	if (rv) {
		fail_rest(st, first, be_reason(st, rv));
		ops->rollback(st->be);
		(*errors)++;
		return PR_ERR_STORE;
	}
	(*commits)++;
	for (j = first; j; j = j->next)
		if (j->rv == PR_ERR_STORE || j->rv == PR_ERR_NOMEM)
			return PR_ERR_STORE;
	return PR_OK;
}

/* Storage failures are logged when they start, then at most every
 * LOG_EVERY seconds (with the number of failed transactions and probes
 * since the last line), not once per job or batch; one line says when
 * writes commit again. While storage fails, a write is tried every
 * PROBE_EVERY seconds when no job comes, so health returns by itself.
 * Store thread only. */
#define LOG_EVERY   10.0
#define PROBE_EVERY 1.0

struct fail_log {
	double since;	     /* when storage began to fail; 0 while it works */
	double last;	     /* when a failure was last logged */
	unsigned long n;     /* failed transactions since then */
	unsigned long p;     /* failed probes since then */
	unsigned long total; /* failed transactions since `since` */
	unsigned long total_p; /* failed probes since `since` */
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The reason a batch failed: its first job with a storage error. */
static const char *batch_reason(const struct pr_store_job *batch, int health)
{
	for (const struct pr_store_job *j = batch; j; j = j->next)
		if ((j->rv == PR_ERR_STORE || j->rv == PR_ERR_NOMEM) &&
		    j->err[0])
			return j->err;
	return pr_strerror(health);
}

static void flush_backend_log(const struct pr_store *st)
{
	if (st->ops->flush_log)
		st->ops->flush_log(st->be);
}

/* Note a transaction's (probed = 0) or a probe's (probed = 1) outcome. */
static void note_health(const struct pr_store *st, struct fail_log *fl,
			int health, const char *why, int probed, double t)
{
	if (!health) {
		if (fl->since > 0) {
			flush_backend_log(st);
			pr_info("store: transactions commit again, after %lu "
				"failed transaction%s and %lu failed write "
				"probe%s in %.1f s",
				fl->total, fl->total == 1 ? "" : "s",
				fl->total_p, fl->total_p == 1 ? "" : "s",
				t - fl->since);
		}
		fl->since = 0;
		return;
	}
	if (fl->since == 0) {
		fl->since = t;
		fl->n = fl->p = fl->total = fl->total_p = 0;
	}
	if (probed) {
		fl->p++;
		fl->total_p++;
	} else {
		fl->n++;
		fl->total++;
	}
	if (fl->total + fl->total_p > 1 && t - fl->last < LOG_EVERY)
		return;
	flush_backend_log(st);
	if (fl->total + fl->total_p == 1)
		pr_err("store: a transaction failed: %s; requests that write "
		       "are answered 503 until storage recovers",
		       why);
	else
		pr_err("store: still failing, %lu more failed transaction%s "
		       "and %lu failed write probe%s in %.0f s: %s",
		       fl->n, fl->n == 1 ? "" : "s", fl->p,
		       fl->p == 1 ? "" : "s", t - fl->last, why);
	fl->last = t;
	fl->n = fl->p = 0;
}

/*
 * A batch committed while storage was failing: it may only have read
 * (which works on a read-only disk), so ask the backend whether writes
 * commit (a batch that wrote rows says so itself) before calling storage
 * healthy again.
 */
static int probe(struct pr_store *st, const char **why)
{
	int rv;

	if (!st->ops->probe)
		return PR_OK;
	rv = st->ops->probe(st->be);
	if (rv)
		*why = be_reason(st, rv);
	return rv ? PR_ERR_STORE : PR_OK;
}

static void *store_thread(void *arg)
{
	struct pr_store *st = arg;
	struct pr_store_job *batch, *last, *j;
	uint64_t commits, errors;
	size_t n;
	struct fail_log fl = {0};
	const char *why;
	struct timespec until;
	int health, probed;
	double t;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->q_head && !st->stopping) {
			if (!fl.since) {
				pthread_cond_wait(&st->cv, &st->mu);
				continue;
			}
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += (time_t)PROBE_EVERY;
			if (pthread_cond_timedwait(&st->cv, &st->mu, &until) !=
				ETIMEDOUT ||
			    st->q_head || st->stopping)
				continue;
			/* Idle while failing: try a write. */
			pthread_mutex_unlock(&st->mu);
			why = NULL;
			health = probe(st, &why);
			note_health(st, &fl, health, why, 1, mono_now());
			pthread_mutex_lock(&st->mu);
			if (!health) {
				st->d_health = health;
				ev_async_send(st->loop, &st->done_w);
			}
		}
		if (!st->q_head)
			break; /* stopping, and every job has run */
		/* A reload's new bounds reach the backend between batches. */
		st->snap.storage_max_messages = st->want.max_messages;
		st->snap.storage_max_size = st->want.max_size;
		st->snap.storage_history = st->want.history;
		st->snap.storage_sweep_batch = st->want.sweep_batch;
		st->snap.push_max_attempts = st->want.push_max_attempts;
		st->snap.push_max_age = st->want.push_max_age;
		st->snap.push_coalesce_window = st->want.push_coalesce_window;
		st->snap.push_min_interval = st->want.push_min_interval;
		st->snap.push_claim_batch = st->want.push_claim_batch;
		batch = st->q_head;
		last = batch;
		for (n = 1; n < st->batch_max && last->next; n++)
			last = last->next;
		st->q_head = last->next;
		if (!st->q_head)
			st->q_tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&st->mu);

		commits = errors = 0;
		health = run_batch(st, batch, &commits, &errors);
		t = ev_time();
		for (j = batch; j; j = j->next)
			j->committed_at = t;
		why = batch_reason(batch, health);
		probed = !health && fl.since;
		if (probed)
			health = probe(st, &why);
		note_health(st, &fl, health, why, probed, mono_now());

		pthread_mutex_lock(&st->mu);
		if (st->d_tail)
			st->d_tail->next = batch;
		else
			st->d_head = batch;
		st->d_tail = last;
		st->d_commits += commits;
		st->d_commit_errors += errors;
		st->d_health = health;
		pthread_mutex_unlock(&st->mu);
		ev_async_send(st->loop, &st->done_w);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* ---- loop thread --------------------------------------------------------- */

static void observe(struct pr_store *st, const struct pr_store_job *job)
{
	double s = job->committed_at - job->queued_at;

	if (s < 0)
		s = 0;
	st->stats.jobs++;
	st->stats.commit_seconds += s;
	for (size_t i = 0; i < PR_ARRAY_SIZE(pr_store_latency_bounds); i++)
		if (s <= pr_store_latency_bounds[i])
			st->stats.commit_latency_buckets[i]++;
}

/* Take what the thread finished (briefly under the lock), then run the
 * done() callbacks without it: a callback may submit again. */
static void finish_jobs(struct pr_store *st)
{
	struct pr_store_job *list, *next;

	pthread_mutex_lock(&st->mu);
	list = st->d_head;
	st->d_head = st->d_tail = NULL;
	st->stats.commits += st->d_commits;
	st->stats.commit_errors += st->d_commit_errors;
	st->d_commits = st->d_commit_errors = 0;
	st->health = st->d_health;
	pthread_mutex_unlock(&st->mu);

	for (; list; list = next) {
		next = list->next;
		list->next = NULL;
		st->pending--;
		observe(st, list);
		if (list->done)
			list->done(list, list->arg);
	}
}

static void store_done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	finish_jobs(w->data);
}

static void read_limits(const struct pr_config *cfg, struct limits *l)
{
	l->max_messages = cfg->storage_max_messages;
	l->max_size = cfg->storage_max_size;
	l->history = cfg->storage_history;
	l->sweep_batch = cfg->storage_sweep_batch;
	l->push_max_attempts = cfg->push_max_attempts;
	l->push_max_age = cfg->push_max_age;
	l->push_coalesce_window = cfg->push_coalesce_window;
	l->push_min_interval = cfg->push_min_interval;
	l->push_claim_batch = cfg->push_claim_batch;
}

/*
 * cfg must outlive the store: its reloadable [storage] settings
 * (max_pending_jobs, max_messages, max_size, history, sweep_batch) and
 * [push] settings (max_attempts, max_age, coalesce_window, min_interval,
 * claim_batch) are read again at every submit, so a reload that changes them in
 * place (pr_config_apply_reload) takes effect from the next batch.
 */
struct pr_store *pr_store_new(struct ev_loop *loop, const struct pr_config *cfg,
			      char *err, size_t errlen)
{
	struct pr_store *st;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rv;

	st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->loop = loop;
	st->ops = &pr_store_sqlite;
	st->batch_max = cfg->storage_commit_batch > 0
			    ? (size_t)cfg->storage_commit_batch
			    : DEFAULT_COMMIT_BATCH;
	st->cfg = cfg;
	st->snap = *cfg;
	read_limits(cfg, &st->want);
	st->skip = malloc(st->batch_max);
	if (!st->skip) {
		snprintf(err, errlen, "out of memory");
		free(st);
		return NULL;
	}
	rv = st->ops->open(&st->be, &st->snap, err, errlen);
	if (rv) {
		free(st->skip);
		free(st);
		return NULL;
	}
	pthread_mutex_init(&st->mu, NULL);
	/* The thread's timed waits (probes while storage fails) use the
	 * monotonic clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cv, &ca);
	pthread_condattr_destroy(&ca);
	ev_async_init(&st->done_w, store_done_cb);
	st->done_w.data = st;
	ev_async_start(loop, &st->done_w);

	/* Signals belong to the loop thread: the store thread blocks all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rv = pthread_create(&st->thread, NULL, store_thread, st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv) {
		snprintf(err, errlen, "cannot start the store thread: %s",
			 strerror(rv));
		pr_store_free(st);
		return NULL;
	}
	st->thread_started = 1;
	return st;
}

void pr_store_free(struct pr_store *st)
{
	if (!st)
		return;
	st->closed = 1;
	if (st->thread_started) {
		pthread_mutex_lock(&st->mu);
		st->stopping = 1;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->thread, NULL);
	}
	/* The thread ran every queued job; their done() runs here. */
	finish_jobs(st);
	ev_async_stop(st->loop, &st->done_w);
	st->ops->close(st->be);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st->skip);
	free(st);
}

/*
 * Besides PR_ERR_BUSY, a submit while pr_store_free() is running (from a
 * done() callback) is refused with PR_ERR_CLOSED; done() does not run.
 */
int pr_store_submit(struct pr_store *st, struct pr_store_job *job)
{
	size_t max;

	if (st->closed)
		return PR_ERR_CLOSED;
	max = st->cfg->storage_max_pending_jobs > 0
		  ? (size_t)st->cfg->storage_max_pending_jobs
		  : DEFAULT_MAX_PENDING;
	if (st->pending >= max)
		return PR_ERR_BUSY;
	job->rv = 0;
	job->err[0] = '\0';
	job->result = NULL;
	job->next = NULL;
	job->queued_at = ev_time();
	job->committed_at = 0;
	st->pending++;
	pthread_mutex_lock(&st->mu);
	read_limits(st->cfg, &st->want);
	if (st->q_tail)
		st->q_tail->next = job;
	else
		st->q_head = job;
	st->q_tail = job;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	return PR_OK;
}

size_t pr_store_pending(const struct pr_store *st)
{
	return st->pending;
}

int pr_store_health(const struct pr_store *st)
{
	return st->health;
}

const struct pr_store_stats *pr_store_stats(const struct pr_store *st)
{
	return &st->stats;
}

/*
 * dispatch.c - the push dispatcher.
 *
 * The flow, all on the event loop:
 *
 *   kick / tick --> PUSH_CLAIM (store thread marks due jobs in_flight)
 *        |                      bounded by [push] max_in_flight
 *        v
 *   claim_done: per push, its provider instance (app x platform)
 *        |-- paused or credential missing -> requeue without counting
 *        |-- needs_auth (FCM OAuth) -> wait on the instance; one token
 *        |                              request in flight, sends wait
 *        v
 *   send: provider->build -> pr_h2client_submit (HTTP/2, multiplexed)
 *        v
 *   sent_done: provider->classify -> outcome -> results batch
 *        |-- AUTH pauses the instance (log, /readyz, metrics)
 *        |-- RETRY gets exponential backoff with jitter, honouring
 *        |   Retry-After; the store turns it into dead past the limits
 *        v
 *   PUSH_RESULT (one store job per batch) -> more room -> claim again
 *
 * Memory is bounded by max_in_flight: the rest waits in the store. A job
 * is in_flight in the store from its claim until its result commits, so
 * a crash in between leaves it in_flight, and the next start sends it
 * again (PUSH_RECOVER) with the same apns-id: at least once.
 */
#include "autoconf.h"

#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dispatch.h"
#include "h2client.h"
#include "log.h"
#include "provider.h"
#include "pushrelay.h"
#include "server.h"
#include "store.h"
#include "webhook.h"

#define TICK_SECONDS	  1.0	/* look for retries coming due */
#define KICK_DELAY	  0.005 /* seconds: new work is claimed this soon */
#define RESULT_BATCH	  512
#define MAX_INSTANCES	  256
#define LAT_BUCKETS	  12
#define AUTH_COOLDOWN_MIN 2
#define AUTH_COOLDOWN_MAX 300

static const double lat_bounds[LAT_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};

struct flight;

struct counters {
	unsigned long long sent, failed, retrying, invalid, rejected, auth;
};

/* One provider for one app. */
struct inst {
	const struct pr_provider_ops *ops;
	void *p;
	const struct pr_app_config *app;
	char key[96]; /* "app/platform" */
	const char *platform;
	int paused;
	char pause_reason[160];
	/* FCM: the credential request; pushes waiting for it. */
	int auth_busy;
	time_t cooldown_until; /* token endpoint unreachable: wait */
	long cooldown;	       /* seconds, doubling to AUTH_COOLDOWN_MAX */
	struct pr_h2req auth_req;
	struct pr_http_request auth_http;
	struct flight *waiting;
	struct counters n;
	/* Its own connections: APNs binds a connection to the team and
	 * topics of its first push, and libcurl pools per multi handle. */
	struct pr_h2client *h2;
};

/* One push from claim to result. */
struct flight {
	struct pr_dispatch *d;
	struct inst *in;
	json_t *item; /* the claim's row: owns the strings in push */
	struct pr_push push;
	struct pr_http_request http;
	struct pr_h2req req;
	struct pr_push_result result;
	char reason[200];
	char provider_id[160];
	struct flight *next; /* waiting list or results batch */
};

struct batch {
	struct pr_store_job job;
	struct pr_dispatch *d;
	struct pr_push_result *results;
	struct flight **flights;
	size_t n;
};

#define QUIET_BUCKETS 1024

struct quiet {
	struct quiet *next;
	char *key; /* "app\x1fdevice" */
	int count;
};

struct pr_dispatch {
	struct pr_server *s;
	struct quiet *quiet[QUIET_BUCKETS];
	struct inst *insts[MAX_INSTANCES];
	size_t n_insts;
	int started;
	int stopping; /* no more claims; results are still written */
	int closing;  /* the store is going: results are dropped (the jobs
			 stay in flight and are sent again next start) */

	int claiming;	  /* a PUSH_CLAIM is in the store */
	int again;	  /* kick arrived while claiming */
	size_t in_flight; /* claimed and not yet written back */
	struct pr_store_job claim;
	const char *skip[MAX_INSTANCES];

	struct flight *pending; /* results waiting for a batch */
	size_t n_pending;
	int results_busy;

	ev_timer tick_w;
	ev_timer kick_w;
	ev_timer flush_w;

	unsigned long long lat[LAT_BUCKETS];
	unsigned long long lat_count;
	double lat_sum;
};

static void claim(struct pr_dispatch *d);
static void finish(struct flight *f, int outcome, long status,
		   const char *reason, int64_t retry_at);

/* ---- provider instances ------------------------------------------------ */

static struct inst *find_inst(struct pr_dispatch *d, const char *app,
			      const char *platform)
{
	for (size_t i = 0; i < d->n_insts; i++)
		if (strcmp(d->insts[i]->app->name, app) == 0 &&
		    strcmp(d->insts[i]->platform, platform) == 0)
			return d->insts[i];
	return NULL;
}

static int make_insts(struct pr_dispatch *d,
		      const struct pr_h2client_config *hc, char *err,
		      size_t errlen)
{
	const struct pr_config *cfg = d->s->cfg;
	struct pr_provider_env env = {
	    .jwt_refresh = cfg->push_jwt_refresh,
	    .oauth_margin = 300,
	};

	for (size_t a = 0; a < cfg->n_apps; a++) {
		for (size_t k = 0; pr_push_platforms[k]; k++) {
			const char *platform = pr_push_platforms[k];
			const struct pr_provider_ops *ops;
			struct inst *in;
			void *p;
			int rv =
			    pr_provider_create(platform, &cfg->apps[a], &env,
					       &ops, &p, err, errlen);

			if (rv == PR_ERR_NOTFOUND)
				continue;
			if (rv)
				return rv;
			in = calloc(1, sizeof(*in));
			if (!in || d->n_insts >= MAX_INSTANCES) {
				free(in);
				ops->destroy(p);
				snprintf(err, errlen, "too many providers");
				return PR_ERR_NOMEM;
			}
			in->ops = ops;
			in->p = p;
			in->h2 = pr_h2client_new(d->s->loop, hc);
			if (!in->h2) {
				ops->destroy(p);
				free(in);
				snprintf(err, errlen,
					 "cannot set up the HTTP/2 client");
				return PR_ERR_NOMEM;
			}
			in->app = &cfg->apps[a];
			in->platform = platform;
			snprintf(in->key, sizeof(in->key), "%s/%s",
				 cfg->apps[a].name, platform);
			d->insts[d->n_insts++] = in;
			pr_log(PR_LOG_INFO, NULL, "provider %s ready", in->key);
		}
	}
	return PR_OK;
}

/* ---- results -------------------------------------------------------- */

static void flight_free(struct flight *f)
{
	pr_http_request_cleanup(&f->http);
	pr_buf_cleanup(&f->req.body);
	json_decref(f->item);
	free(f);
}

static void results_done(struct pr_store_job *job, void *arg)
{
	struct batch *b = arg;
	struct pr_dispatch *d = b->d;

	if (job->rv && !d->closing) {
		/* Keep the outcomes and write them again shortly: the jobs
		 * stay in flight until they are recorded. */
		pr_log(PR_LOG_ERROR, NULL,
		       "could not record %zu push result(s): %s; retrying",
		       b->n, job->err);
		for (size_t i = b->n; i > 0; i--) {
			b->flights[i - 1]->next = d->pending;
			d->pending = b->flights[i - 1];
		}
		d->n_pending += b->n;
		d->flush_w.repeat = 1.0;
		ev_timer_again(d->s->loop, &d->flush_w);
	} else {
		for (size_t i = 0; i < b->n; i++)
			flight_free(b->flights[i]);
		d->in_flight -= b->n;
	}
	json_decref(job->result);
	free(b->results);
	free(b->flights);
	free(b);
	d->results_busy--;
	if (d->n_pending && !d->closing && !ev_is_active(&d->flush_w))
		ev_timer_start(d->s->loop, &d->flush_w);
	pr_dispatch_kick(d);
}

/* Write the waiting results in one store job (one at a time, unless
 * `all`: at shutdown every waiting result goes, in as many jobs). */
static void flush_batch(struct pr_dispatch *d, int all)
{
	struct batch *b;
	struct flight *f;
	size_t n = d->n_pending, i = 0;

	if ((d->results_busy && !all) || n == 0 || d->closing)
		return;
	if (n > RESULT_BATCH)
		n = RESULT_BATCH;
	b = calloc(1, sizeof(*b));
	if (b) {
		b->results = calloc(n, sizeof(*b->results));
		b->flights = calloc(n, sizeof(*b->flights));
	}
	if (!b || !b->results || !b->flights) {
		if (b) {
			free(b->results);
			free(b->flights);
		}
		free(b);
		ev_timer_start(d->s->loop, &d->flush_w); /* try again */
		return;
	}
	while (i < n && (f = d->pending)) {
		d->pending = f->next;
		b->flights[i] = f;
		b->results[i] = f->result;
		i++;
	}
	d->n_pending -= i;
	b->n = i;
	b->d = d;
	b->job.op = PR_STORE_PUSH_RESULT;
	b->job.results = b->results;
	b->job.n_results = i;
	b->job.now = (int64_t)time(NULL);
	b->job.done = results_done;
	b->job.arg = b;
	if (pr_store_submit(d->s->store, &b->job)) {
		/* The store is full: put them back and try shortly. */
		for (size_t k = i; k > 0; k--) {
			b->flights[k - 1]->next = d->pending;
			d->pending = b->flights[k - 1];
		}
		d->n_pending += i;
		free(b->results);
		free(b->flights);
		free(b);
		d->flush_w.repeat = 0.1;
		ev_timer_again(d->s->loop, &d->flush_w);
		return;
	}
	d->results_busy++;
}

static void flush_results(struct pr_dispatch *d)
{
	flush_batch(d, 0);
}

static void dispatch_flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pr_dispatch *d = w->data;

	ev_timer_stop(loop, w);
	flush_results(d);
}

/* Queue a push's outcome. Strings are copied into the flight. */
static void finish(struct flight *f, int outcome, long status,
		   const char *reason, int64_t retry_at)
{
	struct pr_dispatch *d = f->d;

	if (d->closing) {
		/* Left in flight in the store: sent again at the next start. */
		d->in_flight--;
		flight_free(f);
		return;
	}
	snprintf(f->reason, sizeof(f->reason), "%s", reason ? reason : "");
	f->result.job_id = f->push.job_id;
	f->result.outcome = outcome;
	f->result.provider = f->in ? f->in->platform : f->push.platform;
	f->result.token = f->push.token;
	f->result.status = status;
	f->result.reason = f->reason;
	f->result.apns_id = f->push.apns_id;
	f->result.retry_at = retry_at;
	f->next = d->pending;
	d->pending = f;
	d->n_pending++;
	if (d->n_pending >= RESULT_BATCH)
		flush_results(d);
	else if (!ev_is_active(&d->flush_w))
		ev_timer_start(d->s->loop, &d->flush_w);
}

/* Seconds to wait before attempt n+1: exponential, capped, jittered
 * (half to full), and never sooner than the provider asked. */
static int64_t backoff(const struct pr_config *cfg, int attempt,
		       long retry_after, time_t now)
{
	double delay = (double)cfg->push_backoff_base *
		       pow(2.0, attempt > 1 ? attempt - 1 : 0);
	unsigned int r = 0;

	if (delay > (double)cfg->push_backoff_max)
		delay = (double)cfg->push_backoff_max;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	delay = delay / 2 + (delay / 2) * ((double)r / 4294967295.0);
	if (retry_after > 0 && (double)retry_after > delay)
		delay = (double)retry_after;
	/* A provider's Retry-After is honoured, but not past the job's life:
	 * past max_age it would only go dead at its next claim anyway. */
	if (delay > (double)cfg->push_max_age)
		delay = (double)cfg->push_max_age;
	/* Due times are whole seconds and claims compare with the current
	 * second: one more second keeps a Retry-After from being cut short
	 * by up to a second. */
	return (int64_t)now + (int64_t)ceil(delay) + (retry_after > 0 ? 1 : 0);
}

/* ---- sending -------------------------------------------------------- */

static void send_push(struct flight *f);

static void pause_inst(struct inst *in, const char *why)
{
	if (in->paused)
		return;
	in->paused = 1;
	snprintf(in->pause_reason, sizeof(in->pause_reason), "%s", why);
	pr_log(PR_LOG_ERROR, NULL,
	       "provider %s paused: %s; pushes wait until it is resumed "
	       "(fix the credentials and restart, or pushrelayctl providers "
	       "resume)",
	       in->key, why);
}

static void observe_latency(struct pr_dispatch *d, double s)
{
	for (size_t i = 0; i < LAT_BUCKETS; i++)
		if (s <= lat_bounds[i])
			d->lat[i]++;
	d->lat_count++;
	d->lat_sum += s;
}

static void sent_done(struct pr_h2req *req, const struct pr_http_response *resp,
		      void *arg)
{
	struct flight *f = arg;
	struct pr_dispatch *d = f->d;
	struct inst *in = f->in;
	struct pr_push_verdict v;
	time_t now = time(NULL);
	char why[200];
	struct pr_http_response r = *resp;

	memset(&v, 0, sizeof(v));
	v.retry_after = -1;
	/* Which credential the request carried goes back with the answer. */
	r.credential = f->http.credential;
	in->ops->classify(in->p, &f->push, &r, now, &v);
	if (resp->status)
		observe_latency(d, resp->latency);
	f->result.latency_ms = (long)(resp->latency * 1000.0);
	f->result.invalid_since = v.invalid_since;
	if (v.provider_id[0]) {
		snprintf(f->provider_id, sizeof(f->provider_id), "%s",
			 v.provider_id);
		f->result.provider_id = f->provider_id;
	}
	snprintf(why, sizeof(why), "%s",
		 v.reason[0] ? v.reason
			     : (resp->status	  ? ""
				: resp->transport ? resp->transport
						  : "transport error"));
	switch (v.outcome) {
	case PR_OUTCOME_SENT:
		in->n.sent++;
		pr_webhook_pushed(d->s->webhook, f->item,
				  f->result.provider_id);
		finish(f, v.outcome, resp->status, why, 0);
		break;
	case PR_OUTCOME_INVALID_TOKEN: {
		char tok[16];

		in->n.invalid++;
		pr_log(PR_LOG_INFO, NULL,
		       "%s: token %s is dead (%ld %s); device unregistered",
		       in->key,
		       pr_log_redact_token(f->push.token, tok, sizeof(tok)),
		       resp->status, why);
		pr_webhook_token_invalid(d->s->webhook, f->item, why);
		finish(f, v.outcome, resp->status, why, 0);
		break;
	}
	case PR_OUTCOME_REJECTED:
		in->n.rejected++;
		pr_log(PR_LOG_WARN, NULL, "%s: push for %s rejected: %ld %s",
		       in->key, f->push.message_id, resp->status, why);
		finish(f, v.outcome, resp->status, why, 0);
		break;
	case PR_OUTCOME_AUTH:
		in->n.auth++;
		pause_inst(in, why[0] ? why : "credentials refused");
		finish(f, v.outcome, resp->status, why, 0);
		break;
	case PR_OUTCOME_REAUTH:
		/* The provider refreshes its credential; the retry backs off
		 * like any other so a stale clock cannot spin. */
		in->n.retrying++;
		finish(f, v.outcome, resp->status, why,
		       backoff(d->s->cfg, f->push.attempt, -1, now));
		break;
	case PR_OUTCOME_RETRY:
	default:
		in->n.retrying++;
		if (!resp->status)
			in->n.failed++;
		finish(f, PR_OUTCOME_RETRY, resp->status, why,
		       backoff(d->s->cfg, f->push.attempt, v.retry_after, now));
		break;
	}
	pr_dispatch_kick(d);
}

static void send_push(struct flight *f)
{
	struct inst *in = f->in;
	const char *cert = NULL, *key = NULL, *type = NULL, *pw = NULL;
	char err[200] = "";
	int rv;

	rv = in->ops->build(in->p, &f->push, time(NULL), &f->http, err,
			    sizeof(err));
	if (rv == PR_ERR_BUSY) {
		/* The credential went away meanwhile: back to pending. */
		finish(f, PR_OUTCOME_AUTH, 0, "waiting for a credential",
		       (int64_t)time(NULL) + 1);
		return;
	}
	if (rv) {
		in->n.rejected++;
		finish(f, PR_OUTCOME_REJECTED, 0,
		       err[0] ? err : "cannot build the request", 0);
		return;
	}
	if (in->ops->client_cert)
		in->ops->client_cert(in->p, &cert, &key, &type, &pw);
	f->req.http = &f->http;
	f->req.ca_file = in->ops->ca_file ? in->ops->ca_file(in->p) : NULL;
	f->req.cert_file = cert;
	f->req.key_file = key;
	f->req.cert_type = type;
	f->req.key_password = pw;
	f->req.done = sent_done;
	f->req.arg = f;
	rv = pr_h2client_submit(in->h2, &f->req);
	if (rv) {
		/* No room after all: back to pending shortly, not counted. */
		finish(f, PR_OUTCOME_AUTH, 0, "requeued",
		       (int64_t)time(NULL) + 1);
	}
}

/* ---- provider credentials (FCM OAuth) --------------------------------- */

/* Hold an instance's pushes back after a credential failure, doubling
 * the wait up to AUTH_COOLDOWN_MAX. */
static void cool_down(struct inst *in)
{
	in->cooldown = in->cooldown ? in->cooldown * 2 : AUTH_COOLDOWN_MIN;
	if (in->cooldown > AUTH_COOLDOWN_MAX)
		in->cooldown = AUTH_COOLDOWN_MAX;
	in->cooldown_until = time(NULL) + in->cooldown;
}

static void release_waiting(struct inst *in, int ok, const char *why)
{
	struct flight *f = in->waiting, *next;

	in->waiting = NULL;
	for (; f; f = next) {
		next = f->next;
		if (ok)
			send_push(f);
		else
			finish(f, PR_OUTCOME_AUTH, 0, why,
			       in->cooldown_until > time(NULL)
				   ? (int64_t)in->cooldown_until
				   : (int64_t)time(NULL) + 1);
	}
}

static void auth_done(struct pr_h2req *req, const struct pr_http_response *resp,
		      void *arg)
{
	struct inst *in = arg;
	char err[256] = "";
	int rv;

	in->auth_busy = 0;
	rv = in->ops->handle_auth(in->p, time(NULL), resp, err, sizeof(err));
	pr_http_request_cleanup(&in->auth_http);
	/* The answer held the access token. */
	if (in->auth_req.body.data)
		OPENSSL_cleanse(in->auth_req.body.data, in->auth_req.body.cap);
	pr_buf_cleanup(&in->auth_req.body);
	if (rv) {
		if (resp->status == 0 || resp->status >= 500 ||
		    resp->status == 429) {
			/* The token endpoint is down or busy: hold this
			 * provider's pushes back for a while, doubling. */
			cool_down(in);
			pr_log(PR_LOG_WARN, NULL,
			       "%s: token request failed (%ld %s); retrying "
			       "in %lds",
			       in->key, resp->status,
			       resp->status ? err
					    : (resp->transport ? resp->transport
							       : "error"),
			       in->cooldown);
			release_waiting(in, 0, "token endpoint unavailable");
			return;
		}
		/* The token endpoint refused our credentials. */
		release_waiting(in, 0, err);
		pause_inst(in, err);
		return;
	}
	pr_log(PR_LOG_DEBUG, NULL, "%s: access token refreshed", in->key);
	in->cooldown = 0;
	in->cooldown_until = 0;
	release_waiting(in, 1, NULL);
}

static void start_auth(struct pr_dispatch *d, struct inst *in)
{
	int rv;

	if (in->auth_busy)
		return;
	memset(&in->auth_http, 0, sizeof(in->auth_http));
	memset(&in->auth_req, 0, sizeof(in->auth_req));
	rv = in->ops->build_auth(in->p, time(NULL), &in->auth_http);
	if (rv == PR_OK) {
		in->auth_req.http = &in->auth_http;
		in->auth_req.ca_file =
		    in->ops->ca_file ? in->ops->ca_file(in->p) : NULL;
		in->auth_req.done = auth_done;
		in->auth_req.arg = in;
		rv = pr_h2client_submit(in->h2, &in->auth_req);
	}
	if (rv) {
		pr_http_request_cleanup(&in->auth_http);
		cool_down(in);
		release_waiting(in, 0, "cannot request a token");
		return;
	}
	in->auth_busy = 1;
}

/* ---- devices with pushes off while streaming -------------------------- */

static unsigned quiet_hash(const char *key)
{
	unsigned h = 2166136261u;

	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % QUIET_BUCKETS;
}

static struct quiet **quiet_find(struct pr_dispatch *d, const char *key)
{
	struct quiet **q = &d->quiet[quiet_hash(key)];

	while (*q && strcmp((*q)->key, key) != 0)
		q = &(*q)->next;
	return q;
}

void pr_dispatch_quiet(struct pr_dispatch *d, const char *app,
		       const char *device, int on)
{
	char key[2200];
	struct quiet **q, *e;

	if (!d || !app || !device)
		return;
	snprintf(key, sizeof(key), "%s\x1f%s", app, device);
	q = quiet_find(d, key);
	if (on) {
		if (*q) {
			(*q)->count++;
			return;
		}
		e = calloc(1, sizeof(*e));
		if (!e || !(e->key = strdup(key))) {
			free(e);
			return;
		}
		e->count = 1;
		*q = e;
		return;
	}
	if (*q && --(*q)->count <= 0) {
		e = *q;
		*q = e->next;
		free(e->key);
		free(e);
	}
}

static int is_quiet(struct pr_dispatch *d, const char *app, const char *device)
{
	char key[2200];

	if (!app || !device)
		return 0;
	snprintf(key, sizeof(key), "%s\x1f%s", app, device);
	return *quiet_find(d, key) != NULL;
}

/* ---- claiming ------------------------------------------------------- */

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void claim_done(struct pr_store_job *job, void *arg)
{
	struct pr_dispatch *d = arg;
	size_t i, n = json_array_size(job->result);
	json_t *item;
	time_t now = time(NULL);

	d->claiming = 0;
	if (job->rv || d->stopping) {
		/* Stopping: what was claimed stays in flight in the store and
		 * is sent again at the next start. */
		if (job->rv)
			pr_log(PR_LOG_WARN, NULL, "claiming pushes failed: %s",
			       job->err);
		json_decref(job->result);
		job->result = NULL;
		return;
	}
	d->in_flight += n;
	json_array_foreach(job->result, i, item)
	{
		struct flight *f = calloc(1, sizeof(*f));
		struct pr_push *p;

		if (!f) {
			/* Left in flight: recovered at the next start. */
			d->in_flight--;
			continue;
		}
		f->d = d;
		f->item = json_incref(item);
		p = &f->push;
		p->job_id = (int64_t)json_integer_value(
		    json_object_get(item, "job_id"));
		p->app = str(item, "app");
		p->platform = str(item, "platform");
		p->token = str(item, "token");
		p->environment = str(item, "environment");
		p->message_id = str(item, "message_id");
		p->seq =
		    (int64_t)json_integer_value(json_object_get(item, "seq"));
		p->mode =
		    (int)json_integer_value(json_object_get(item, "mode"));
		p->push_json = str(item, "push");
		p->unread =
		    (long)json_integer_value(json_object_get(item, "unread"));
		p->expires_at = (int64_t)json_integer_value(
		    json_object_get(item, "expires_at"));
		p->apns_id = str(item, "apns_id");
		p->attempt =
		    (int)json_integer_value(json_object_get(item, "attempt"));
		f->in = p->app && p->platform
			    ? find_inst(d, p->app, p->platform)
			    : NULL;
		if (!f->in) {
			finish(f, PR_OUTCOME_REJECTED, 0,
			       "no provider configured for this app and "
			       "platform",
			       0);
			continue;
		}
		if (f->in->paused) {
			finish(f, PR_OUTCOME_AUTH, 0, f->in->pause_reason,
			       (int64_t)now + 1);
			continue;
		}
		if (f->in->cooldown_until > now) {
			finish(f, PR_OUTCOME_AUTH, 0,
			       "waiting for the token endpoint",
			       (int64_t)f->in->cooldown_until);
			continue;
		}
		if (is_quiet(d, p->app, str(item, "device_id"))) {
			finish(f, PR_OUTCOME_CANCELLED, 0,
			       "delivered on the stream", 0);
			continue;
		}
		if (f->in->ops->needs_auth &&
		    f->in->ops->needs_auth(f->in->p, now)) {
			f->next = f->in->waiting;
			f->in->waiting = f;
			start_auth(d, f->in);
			continue;
		}
		send_push(f);
	}
	json_decref(job->result);
	job->result = NULL;
	if (d->again || (n > 0 && n == (size_t)job->limit)) {
		d->again = 0;
		pr_dispatch_kick(d);
	}
}

static void claim(struct pr_dispatch *d)
{
	const struct pr_config *cfg = d->s->cfg;
	size_t room, n_skip = 0;

	if (!d->started || d->stopping || !d->s->store)
		return;
	if (d->claiming) {
		d->again = 1;
		return;
	}
	room = (size_t)cfg->push_max_in_flight > d->in_flight
		   ? (size_t)cfg->push_max_in_flight - d->in_flight
		   : 0;
	if (room > (size_t)cfg->push_claim_batch)
		room = (size_t)cfg->push_claim_batch;
	if (room == 0)
		return;
	for (size_t i = 0; i < d->n_insts; i++)
		if (d->insts[i]->paused ||
		    d->insts[i]->cooldown_until > time(NULL))
			d->skip[n_skip++] = d->insts[i]->key;
	memset(&d->claim, 0, sizeof(d->claim));
	d->claim.op = PR_STORE_PUSH_CLAIM;
	d->claim.now = (int64_t)time(NULL);
	d->claim.limit = (long)room;
	d->claim.skip = d->skip;
	d->claim.n_skip = n_skip;
	d->claim.done = claim_done;
	d->claim.arg = d;
	if (pr_store_submit(d->s->store, &d->claim) == PR_OK)
		d->claiming = 1;
}

static void dispatch_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pr_dispatch *d = w->data;

	ev_timer_stop(loop, w);
	claim(d);
}

static void dispatch_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	claim(w->data);
}

void pr_dispatch_kick(struct pr_dispatch *d)
{
	if (!d || !d->started || d->stopping)
		return;
	if (!ev_is_active(&d->kick_w))
		ev_timer_start(d->s->loop, &d->kick_w);
}

/* ---- lifecycle ------------------------------------------------------ */

struct pr_dispatch *pr_dispatch_new(struct pr_server *s, char *err,
				    size_t errlen)
{
	const struct pr_config *cfg = s->cfg;
	struct pr_h2client_config hc = {
	    /* The dispatcher's own bound ([push] max_in_flight, which a
	     * reload may raise) is what limits memory; the client's is
	     * the directive's ceiling so it never refuses first. */
	    .max_in_flight = 100000 + 1,
	    .connections = cfg->push_connections,
	    .max_streams = cfg->push_max_streams,
	    .connect_timeout = cfg->push_connect_timeout,
	    .request_timeout = cfg->push_request_timeout,
	    .ping_interval = cfg->push_ping_interval,
	    .max_response = 64 * 1024,
	};
	struct pr_dispatch *d = calloc(1, sizeof(*d));

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->s = s;
	if (make_insts(d, &hc, err, errlen)) {
		pr_dispatch_free(d);
		return NULL;
	}
	ev_init(&d->tick_w, dispatch_tick_cb);
	d->tick_w.repeat = TICK_SECONDS;
	/* Kicks within a few milliseconds share one claim: under heavy ingest
	 * a claim per commit would take the store thread from the ingest. */
	ev_timer_init(&d->kick_w, dispatch_kick_cb, KICK_DELAY, 0.0);
	ev_timer_init(&d->flush_w, dispatch_flush_cb, 0.0, 0.0);
	d->tick_w.data = d->kick_w.data = d->flush_w.data = d;
	return d;
}

static void recover_done(struct pr_store_job *job, void *arg)
{
	struct pr_dispatch *d = arg;
	json_int_t n =
	    json_integer_value(json_object_get(job->result, "recovered"));

	if (job->rv)
		pr_log(PR_LOG_ERROR, NULL, "recovering pushes failed: %s",
		       job->err);
	else if (n > 0)
		pr_log(PR_LOG_INFO, NULL,
		       "%lld push(es) were in flight at the last stop; "
		       "sending them again",
		       (long long)n);
	json_decref(job->result);
	free(job);
	d->started = 1;
	ev_timer_again(d->s->loop, &d->tick_w);
	pr_dispatch_kick(d);
}

void pr_dispatch_start(struct pr_dispatch *d)
{
	struct pr_store_job *job = calloc(1, sizeof(*job));

	if (!job)
		return;
	job->op = PR_STORE_PUSH_RECOVER;
	job->now = (int64_t)time(NULL);
	job->done = recover_done;
	job->arg = d;
	if (pr_store_submit(d->s->store, job)) {
		free(job);
		pr_log(PR_LOG_ERROR, NULL, "cannot start the dispatcher");
	}
}

void pr_dispatch_stop(struct pr_dispatch *d)
{
	if (!d || d->stopping)
		return;
	/* No more claims; pushes in flight finish and their results are
	 * written while the loop still runs (the drain). */
	d->stopping = 1;
	ev_timer_stop(d->s->loop, &d->tick_w);
	ev_timer_stop(d->s->loop, &d->kick_w);
}

void pr_dispatch_flush(struct pr_dispatch *d)
{
	if (!d)
		return;
	ev_timer_stop(d->s->loop, &d->flush_w);
	flush_batch(d, 1);
}

void pr_dispatch_free(struct pr_dispatch *d)
{
	struct flight *f, *next;

	if (!d)
		return;
	d->stopping = 1;
	d->closing = 1;
	if (d->s->loop) {
		ev_timer_stop(d->s->loop, &d->tick_w);
		ev_timer_stop(d->s->loop, &d->kick_w);
		ev_timer_stop(d->s->loop, &d->flush_w);
	}
	/* In-flight requests end here (done() sees stopping); their jobs
	 * stay in_flight in the store and are recovered at the next start. */
	for (size_t i = 0; i < d->n_insts; i++)
		pr_h2client_free(d->insts[i]->h2);
	for (f = d->pending; f; f = next) {
		next = f->next;
		flight_free(f);
	}
	for (size_t b = 0; b < QUIET_BUCKETS; b++) {
		struct quiet *q, *qn;

		for (q = d->quiet[b]; q; q = qn) {
			qn = q->next;
			free(q->key);
			free(q);
		}
	}
	for (size_t i = 0; i < d->n_insts; i++) {
		struct inst *in = d->insts[i];

		for (f = in->waiting; f; f = next) {
			next = f->next;
			flight_free(f);
		}
		pr_http_request_cleanup(&in->auth_http);
		in->ops->destroy(in->p);
		free(in);
	}
	free(d);
}

/* ---- control and metrics -------------------------------------------- */

static int match(const struct inst *in, const char *provider, const char *app)
{
	return (!provider || strcmp(in->platform, provider) == 0) &&
	       (!app || strcmp(in->app->name, app) == 0);
}

int pr_dispatch_pause(struct pr_dispatch *d, const char *provider,
		      const char *app, const char *why)
{
	int n = 0;

	for (size_t i = 0; d && i < d->n_insts; i++) {
		if (!match(d->insts[i], provider, app) || d->insts[i]->paused)
			continue;
		pause_inst(d->insts[i], why);
		n++;
	}
	return n;
}

int pr_dispatch_resume(struct pr_dispatch *d, const char *provider,
		       const char *app)
{
	int n = 0;

	for (size_t i = 0; d && i < d->n_insts; i++) {
		if (!match(d->insts[i], provider, app) || !d->insts[i]->paused)
			continue;
		d->insts[i]->paused = 0;
		d->insts[i]->pause_reason[0] = '\0';
		pr_log(PR_LOG_INFO, NULL, "provider %s resumed",
		       d->insts[i]->key);
		n++;
	}
	if (n)
		pr_dispatch_kick(d);
	return n;
}

int pr_dispatch_all_paused(const struct pr_dispatch *d)
{
	if (!d || d->n_insts == 0)
		return 0;
	for (size_t i = 0; i < d->n_insts; i++)
		if (!d->insts[i]->paused)
			return 0;
	return 1;
}

size_t pr_dispatch_in_flight(const struct pr_dispatch *d)
{
	return d ? d->in_flight : 0;
}

int pr_dispatch_render_metrics(const struct pr_dispatch *d, struct pr_buf *out)
{
	static const char *const names[] = {"sent",	     "retry",
					    "invalid_token", "rejected",
					    "auth",	     "transport_error"};
	int rv = 0;

	rv |= pr_buf_appends(out,
			     "# HELP pushrelay_pushes_total Push attempts by "
			     "provider and outcome.\n"
			     "# TYPE pushrelay_pushes_total counter\n");
	for (size_t i = 0; i < d->n_insts; i++) {
		const struct inst *in = d->insts[i];
		unsigned long long v[] = {in->n.sent,	 in->n.retrying,
					  in->n.invalid, in->n.rejected,
					  in->n.auth,	 in->n.failed};

		for (size_t k = 0; k < PR_ARRAY_SIZE(names); k++)
			rv |= pr_buf_printf(
			    out,
			    "pushrelay_pushes_total{provider=\"%s\","
			    "app=\"%s\",outcome=\"%s\"} %llu\n",
			    in->platform, in->app->name, names[k], v[k]);
	}
	rv |= pr_buf_appends(out, "# HELP pushrelay_provider_paused 1 while "
				  "a provider is paused.\n"
				  "# TYPE pushrelay_provider_paused gauge\n");
	for (size_t i = 0; i < d->n_insts; i++)
		rv |=
		    pr_buf_printf(out,
				  "pushrelay_provider_paused{provider=\"%s\","
				  "app=\"%s\"} %d\n",
				  d->insts[i]->platform, d->insts[i]->app->name,
				  d->insts[i]->paused);
	rv |= pr_buf_printf(out,
			    "# HELP pushrelay_pushes_in_flight Pushes claimed "
			    "and not yet recorded.\n"
			    "# TYPE pushrelay_pushes_in_flight gauge\n"
			    "pushrelay_pushes_in_flight %zu\n"
			    "# HELP pushrelay_push_latency_seconds Provider "
			    "response time.\n"
			    "# TYPE pushrelay_push_latency_seconds histogram\n",
			    d->in_flight);
	for (size_t i = 0; i < LAT_BUCKETS; i++)
		rv |= pr_buf_printf(out,
				    "pushrelay_push_latency_seconds_bucket{le="
				    "\"%g\"} %llu\n",
				    lat_bounds[i], d->lat[i]);
	rv |= pr_buf_printf(
	    out,
	    "pushrelay_push_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "pushrelay_push_latency_seconds_sum %.6f\n"
	    "pushrelay_push_latency_seconds_count %llu\n",
	    d->lat_count, d->lat_sum, d->lat_count);
	return rv ? PR_ERR_LIMIT : PR_OK;
}

void *pr_dispatch_stats_json(const struct pr_dispatch *d)
{
	json_t *o = json_object();

	for (size_t i = 0; d && i < d->n_insts; i++) {
		const struct inst *in = d->insts[i];
		json_t *p = json_object_get(o, in->platform);

		if (!p) {
			p = json_pack("{s:I, s:I, s:I, s:I, s:b}", "sent",
				      (json_int_t)0, "failed", (json_int_t)0,
				      "retrying", (json_int_t)0, "invalid",
				      (json_int_t)0, "paused", 0);
			json_object_set_new(o, in->platform, p);
		}
		json_object_set_new(
		    p, "sent",
		    json_integer(
			json_integer_value(json_object_get(p, "sent")) +
			(json_int_t)in->n.sent));
		json_object_set_new(
		    p, "failed",
		    json_integer(
			json_integer_value(json_object_get(p, "failed")) +
			(json_int_t)(in->n.rejected + in->n.failed)));
		json_object_set_new(
		    p, "retrying",
		    json_integer(
			json_integer_value(json_object_get(p, "retrying")) +
			(json_int_t)in->n.retrying));
		json_object_set_new(
		    p, "invalid",
		    json_integer(
			json_integer_value(json_object_get(p, "invalid")) +
			(json_int_t)in->n.invalid));
		if (in->paused)
			json_object_set_new(p, "paused", json_true());
	}
	return o;
}

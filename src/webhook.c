/*
 * webhook.c - delivery receipts to the chat server (webhook.h has the
 * wire format). This file owns, per app with a webhook_url, a `struct
 * hook`: the receipts being collected into the next batch (already
 * serialised, comma-separated, in one bounded buffer), the queue of sealed
 * batches waiting to be sent or retried, and the counters; and one
 * pr_h2client, its own, for every POST. That is the same libev-driven
 * libcurl multi-socket machinery the pushes use, in a separate instance
 * so chat servers' connections (HTTP/1.1 mostly) never share a pool or
 * the max_in_flight budget with APNs and FCM.
 *
 * The flow, all on the event loop:
 *
 *   pr_webhook_emit -> the app's collecting buffer
 *        | full (max_batch, or BATCH_BYTES) or flush_interval old
 *        v
 *   seal -> a batch (body fixed from here on) at the queue's tail
 *        v
 *   pump: up to PARALLEL POSTs per app, one while it is failing, none
 *        | before retry_at; each attempt signed afresh
 *        v
 *   batch_done: 2xx delivered; 429, 5xx, no answer -> the queue's head
 *        again and the app waits (backoff with jitter, Retry-After up to
 *        backoff_max); another status -> dropped with a warning;
 *        max_attempts reached -> dropped
 *
 * One timer (timer_w) wakes for the earliest of: a collecting batch's
 * flush_interval, an app's retry_at. Memory is bounded by max_pending
 * receipts over every app; a receipt naming k messages (fetched) counts
 * k, so the bound holds for bytes too. Past it new receipts are dropped
 * and counted: receipts are notifications, not data the relay promised
 * to keep. Nothing here logs a secret, a signature or the URL (a query
 * string may hold a credential); lines name the app.
 */
#include "autoconf.h"

#include <ev.h>
#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "h2client.h"
#include "log.h"
#include "provider.h"
#include "pushrelay.h"
#include "server.h"
#include "version.h"
#include "webhook.h"

#define PARALLEL	   4 /* POSTs in flight per app while it answers */
#define BATCH_BYTES	   (1024 * 1024) /* receipts' bytes in one POST body */
#define ENVELOPE	   "{\"receipts\":[" /* ... "]}" */
#define MAX_RESPONSE	   4096 /* bytes of an answer kept (none used) */
#define IDLE_SECONDS	   60	/* idle connections retired after this */
#define OVERFLOW_LOG_EVERY 60.0 /* seconds between "full" warnings */

/* A sealed batch: from seal to delivered or dropped. */
struct batch {
	struct hook *h;
	struct batch *next;	     /* in its hook's queue */
	size_t n;		     /* receipts */
	size_t weight;		     /* what they count against max_pending */
	int attempt;		     /* POSTs started so far */
	struct pr_http_request http; /* url and body ours; headers per try */
	struct pr_h2req req;
};

struct hook_counters {
	unsigned long long delivered, retries;
	unsigned long long overflow, refused, attempts, shutdown; /* dropped */
};

/* One app's webhook. */
struct hook {
	struct pr_webhook *w;
	char *app, *url, *secret;
	struct pr_buf cur; /* collecting: JSON objects joined by ',' */
	size_t cur_n, cur_weight;
	double cur_since;	   /* ev_now of cur's first receipt */
	struct batch *head, *tail; /* sealed, not in flight, oldest first */
	size_t n_flight;
	double retry_at; /* ev_now before which nothing is sent */
	int failing;	 /* the last POST failed: one at a time */
	double overflow_logged;
	struct hook_counters n;
};

struct pr_webhook {
	struct pr_server *s;
	struct pr_h2client *h2; /* NULL when no app has a webhook */
	struct hook *hooks;
	size_t n_hooks;
	size_t pending; /* weight of every receipt held, all apps */
	ev_timer timer_w;
	uint32_t salt; /* receipt ids never repeat across restarts */
	unsigned long long next_id;
	int closing;
};

static void arm(struct pr_webhook *w);

/* ---- small helpers ---------------------------------------------------- */

static struct hook *hook_of(const struct pr_webhook *w, const char *app)
{
	if (!w || !app)
		return NULL;
	for (size_t i = 0; i < w->n_hooks; i++)
		if (strcmp(w->hooks[i].app, app) == 0)
			return &w->hooks[i];
	return NULL;
}

int pr_webhook_wanted(const struct pr_webhook *w, const char *app)
{
	return hook_of(w, app) != NULL;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Set o[k] to the string v, or leave it out when v is NULL. */
static void set_str(json_t *o, const char *k, const char *v)
{
	if (o && v)
		json_object_set_new(o, k, json_string(v));
}

/* "2025-06-01T12:00:00.123Z" */
static void now_rfc3339(char *out, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (!strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm))
		sec[0] = '\0';
	snprintf(out, len, "%s.%03ldZ", sec, ts.tv_nsec / 1000000L);
}

/* Free a request's headers (one carries the signature), keep the rest. */
static void clear_headers(struct pr_http_request *r)
{
	for (size_t i = 0; i < r->n_headers && i < PR_HTTP_MAX_HEADERS; i++) {
		OPENSSL_cleanse(r->headers[i], strlen(r->headers[i]));
		free(r->headers[i]);
		r->headers[i] = NULL;
	}
	r->n_headers = 0;
}

static void batch_free(struct batch *b)
{
	b->h->w->pending -= b->weight;
	clear_headers(&b->http);
	pr_http_request_cleanup(&b->http);
	free(b);
}

/* Give a batch up, counting its receipts under *why. */
static void batch_drop(struct batch *b, unsigned long long *why)
{
	*why += b->n;
	batch_free(b);
}

/* Forget what is being collected (counted under *why). */
static void cur_drop(struct hook *h, unsigned long long *why)
{
	*why += h->cur_n;
	h->w->pending -= h->cur_weight;
	h->cur_n = h->cur_weight = 0;
	pr_buf_cleanup(&h->cur);
	pr_buf_init(&h->cur, BATCH_BYTES);
}

/* Seconds before attempt n+1: exponential from backoff_base, capped at
 * backoff_max, jittered (half to full); a Retry-After is honoured up to
 * backoff_max. */
static double backoff(const struct pr_config *cfg, int attempt,
		      long retry_after)
{
	double max = (double)cfg->webhook_backoff_max;
	double delay = (double)cfg->webhook_backoff_base *
		       pow(2.0, attempt > 1 ? attempt - 1 : 0);
	unsigned int r = 0;

	if (delay > max)
		delay = max;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned int)rand();
	delay = delay / 2 + (delay / 2) * ((double)r / 4294967295.0);
	if (retry_after > 0 && (double)retry_after > delay)
		delay = (double)retry_after > max ? max : (double)retry_after;
	return delay;
}

/* ---- sending ------------------------------------------------------------ */

/* hex of HMAC-SHA256(secret, "<t>." body) into hex (65 bytes). */
static int sign(const struct hook *h, const struct batch *b, long t,
		char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char prefix[32];
	size_t plen, n;
	unsigned char *msg;
	int rv = PR_OK;

	plen = (size_t)snprintf(prefix, sizeof(prefix), "%ld.", t);
	n = plen + b->http.body_len;
	msg = malloc(n);
	if (!msg)
		return PR_ERR_NOMEM;
	memcpy(msg, prefix, plen);
	memcpy(msg + plen, b->http.body, b->http.body_len);
	if (!HMAC(EVP_sha256(), h->secret, (int)strlen(h->secret), msg, n, md,
		  &mdlen) ||
	    mdlen != 32)
		rv = PR_ERR_NOMEM;
	for (unsigned int i = 0; rv == PR_OK && i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	OPENSSL_cleanse(md, sizeof(md));
	free(msg);
	return rv;
}

static void batch_done(struct pr_h2req *req,
		       const struct pr_http_response *resp, void *arg);

/* Start one attempt at b: 0, or an error with b untouched but for its
 * headers. */
static int batch_send(struct batch *b)
{
	struct hook *h = b->h;
	const struct pr_config *cfg = h->w->s->cfg;
	long t = (long)time(NULL);
	char sig[65];
	int rv;

	clear_headers(&b->http);
	rv = sign(h, b, t, sig);
	if (rv == PR_OK)
		rv = pr_http_request_header(&b->http,
					    "Content-Type: application/json");
	if (rv == PR_OK)
		rv = pr_http_request_header(
		    &b->http, "User-Agent: pushrelay/%s", pr_version());
	if (rv == PR_OK)
		rv = pr_http_request_header(
		    &b->http, "X-Pushrelay-Signature: t=%ld,v1=%s", t, sig);
	OPENSSL_cleanse(sig, sizeof(sig));
	if (rv)
		return rv;
	memset(&b->req, 0, sizeof(b->req));
	b->req.http = &b->http;
	b->req.http1 = 1;
	b->req.timeout = cfg->webhook_timeout;
	b->req.done = batch_done;
	b->req.arg = b;
	rv = pr_h2client_submit(h->w->h2, &b->req);
	if (rv)
		return rv;
	b->attempt++;
	h->n_flight++;
	return PR_OK;
}

/* Send what may go now. */
static void pump(struct hook *h)
{
	double now = ev_now(h->w->s->loop);
	struct batch *b;
	int rv;

	if (h->w->closing)
		return;
	while (h->head && h->n_flight < (h->failing ? 1u : PARALLEL) &&
	       now >= h->retry_at) {
		b = h->head;
		h->head = b->next;
		if (!h->head)
			h->tail = NULL;
		b->next = NULL;
		rv = batch_send(b);
		if (rv == PR_OK)
			continue;
		if (rv == PR_ERR_INVAL) {
			pr_log(PR_LOG_ERROR, NULL,
			       "app %s: webhook request refused by the HTTP "
			       "client; %zu receipt(s) dropped",
			       h->app, b->n);
			batch_drop(b, &h->n.refused);
			continue;
		}
		/* Busy or out of memory: back to the front, try in a while. */
		b->next = h->head;
		h->head = b;
		if (!h->tail)
			h->tail = b;
		h->retry_at = now + 1.0;
		break;
	}
}

/* Turn what is being collected into a batch at the queue's tail. */
static void seal(struct hook *h)
{
	struct batch *b;
	size_t len, elen = strlen(ENVELOPE);
	char *body;

	if (!h->cur_n)
		return;
	b = calloc(1, sizeof(*b));
	len = elen + pr_buf_avail(&h->cur) + 2;
	body = b ? malloc(len + 1) : NULL;
	if (b)
		b->http.url = strdup(h->url);
	if (!b || !body || !b->http.url) {
		if (b)
			free(b->http.url);
		free(b);
		free(body);
		cur_drop(h, &h->n.overflow);
		return;
	}
	memcpy(body, ENVELOPE, elen);
	memcpy(body + elen, pr_buf_peek(&h->cur), pr_buf_avail(&h->cur));
	memcpy(body + len - 2, "]}", 3);
	b->h = h;
	b->n = h->cur_n;
	b->weight = h->cur_weight;
	b->http.method = "POST";
	b->http.body = body;
	b->http.body_len = len;
	h->cur_n = h->cur_weight = 0;
	pr_buf_cleanup(&h->cur);
	pr_buf_init(&h->cur, BATCH_BYTES);
	if (h->tail)
		h->tail->next = b;
	else
		h->head = b;
	h->tail = b;
}

static void batch_done(struct pr_h2req *req,
		       const struct pr_http_response *resp, void *arg)
{
	struct batch *b = arg;
	struct hook *h = b->h;
	struct pr_webhook *w = h->w;
	const struct pr_config *cfg = w->s->cfg;
	long st = resp->status;
	double now, delay;
	char why[160];

	(void)req;
	h->n_flight--;
	clear_headers(&b->http);
	if (w->closing) {
		batch_drop(b, &h->n.shutdown);
		return;
	}
	now = ev_now(w->s->loop);
	if (st)
		snprintf(why, sizeof(why), "HTTP %ld", st);
	else
		snprintf(why, sizeof(why), "%s",
			 resp->transport ? resp->transport : "no answer");
	if (st >= 200 && st < 300) {
		if (h->failing)
			pr_log(PR_LOG_INFO, NULL,
			       "app %s: webhook answers again", h->app);
		h->failing = 0;
		h->n.delivered += b->n;
		batch_free(b);
	} else if (st && st != 429 && st < 500) {
		pr_log(PR_LOG_WARN, NULL,
		       "app %s: webhook refused %zu receipt(s) (%s); dropped",
		       h->app, b->n, why);
		batch_drop(b, &h->n.refused);
	} else if (b->attempt >= cfg->webhook_max_attempts) {
		pr_log(PR_LOG_WARN, NULL,
		       "app %s: %zu receipt(s) dropped after %d attempts "
		       "(last: %s)",
		       h->app, b->n, b->attempt, why);
		batch_drop(b, &h->n.attempts);
	} else {
		delay = backoff(cfg, b->attempt, resp->retry_after);
		if (now + delay > h->retry_at)
			h->retry_at = now + delay;
		pr_log(h->failing ? PR_LOG_DEBUG : PR_LOG_WARN, NULL,
		       "app %s: webhook failed (%s); retrying in %.0fs", h->app,
		       why, h->retry_at - now);
		h->failing = 1;
		h->n.retries++;
		b->next = h->head;
		h->head = b;
		if (!h->tail)
			h->tail = b;
	}
	pump(h);
	arm(w);
}

/* ---- the timer ---------------------------------------------------------- */

/* Wake for the earliest flush or retry due. */
static void arm(struct pr_webhook *w)
{
	struct ev_loop *loop = w->s->loop;
	double now = ev_now(loop), next = HUGE_VAL;

	for (size_t i = 0; i < w->n_hooks; i++) {
		const struct hook *h = &w->hooks[i];

		if (h->cur_n &&
		    h->cur_since + (double)w->s->cfg->webhook_flush_interval <
			next)
			next = h->cur_since +
			       (double)w->s->cfg->webhook_flush_interval;
		if (h->head && h->n_flight < (h->failing ? 1u : PARALLEL) &&
		    h->retry_at < next)
			next = h->retry_at;
	}
	ev_timer_stop(loop, &w->timer_w);
	if (w->closing || next == HUGE_VAL)
		return;
	/* Not 0: a deadline met to the microsecond must not spin. */
	ev_timer_set(&w->timer_w, next - now > 0.001 ? next - now : 0.001, 0.0);
	ev_timer_start(loop, &w->timer_w);
}

static void webhook_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pr_webhook *w = t->data;
	double now = ev_now(loop);

	(void)revents;
	for (size_t i = 0; i < w->n_hooks; i++) {
		struct hook *h = &w->hooks[i];

		if (h->cur_n &&
		    now + 0.002 >=
			h->cur_since +
			    (double)w->s->cfg->webhook_flush_interval)
			seal(h);
		pump(h);
	}
	arm(w);
}

/* ---- receipts ----------------------------------------------------------- */

static void overflow(struct hook *h, size_t weight)
{
	struct pr_webhook *w = h->w;
	double now = ev_now(w->s->loop);

	h->n.overflow++;
	if (now - h->overflow_logged < OVERFLOW_LOG_EVERY &&
	    h->overflow_logged > 0)
		return;
	h->overflow_logged = now;
	pr_log(PR_LOG_WARN, NULL,
	       "app %s: receipt dropped: %zu held, [webhook] max_pending is "
	       "%ld (the receipt counts %zu); more are dropped silently for "
	       "a minute",
	       h->app, w->pending, w->s->cfg->webhook_max_pending, weight);
}

void pr_webhook_emit(struct pr_webhook *w, const char *app, const char *type,
		     const char *user, const char *device, json_t *detail)
{
	struct hook *h = hook_of(w, app);
	const struct pr_config *cfg;
	size_t weight = 1, len;
	char at[40], id[40];
	json_t *r = NULL;
	char *text = NULL;

	if (!h || !type || w->closing)
		goto out;
	cfg = w->s->cfg;
	if (json_array_size(json_object_get(detail, "message_ids")) > 1)
		weight =
		    json_array_size(json_object_get(detail, "message_ids"));
	if (w->pending + weight > (size_t)cfg->webhook_max_pending) {
		overflow(h, weight);
		goto out;
	}
	now_rfc3339(at, sizeof(at));
	snprintf(id, sizeof(id), "%08x%012llx", w->salt, ++w->next_id);
	r = json_object();
	set_str(r, "type", type);
	set_str(r, "id", id);
	set_str(r, "app", h->app);
	set_str(r, "user", user);
	set_str(r, "device", device);
	set_str(r, "at", at);
	/* The detail cannot overwrite the fields above. */
	if (detail && r)
		json_object_update_missing(r, detail);
	text = r ? json_dumps(r, JSON_COMPACT) : NULL;
	if (!text) {
		h->n.overflow++;
		goto out;
	}
	len = strlen(text);
	/* Room for it in this batch, or it starts the next. */
	if (h->cur_n && pr_buf_avail(&h->cur) + 1 + len > BATCH_BYTES)
		seal(h);
	/* One append each, so a failure leaves the batch as it was. */
	if (h->cur_n ? pr_buf_printf(&h->cur, ",%s", text)
		     : pr_buf_append(&h->cur, text, len)) {
		h->n.overflow++;
		goto out;
	}
	h->cur_n++;
	h->cur_weight += weight;
	w->pending += weight;
	if (h->cur_n == 1)
		h->cur_since = ev_now(w->s->loop);
	if (h->cur_weight >= (size_t)cfg->webhook_max_batch)
		seal(h);
	pump(h);
	arm(w);
out:
	free(text);
	json_decref(r);
	json_decref(detail);
}

void pr_webhook_pushed(struct pr_webhook *w, const json_t *item,
		       const char *provider_id)
{
	const char *app = str(item, "app");
	json_t *d;

	if (!pr_webhook_wanted(w, app))
		return;
	d = json_object();
	set_str(d, "message_id", str(item, "message_id"));
	if (d)
		json_object_set_new(d, "seq",
				    json_integer(json_integer_value(
					json_object_get(item, "seq"))));
	if (provider_id && *provider_id)
		set_str(d, "provider_id", provider_id);
	pr_webhook_emit(w, app, "pushed", str(item, "user"),
			str(item, "device_id"), d);
}

void pr_webhook_token_invalid(struct pr_webhook *w, const json_t *item,
			      const char *reason)
{
	const char *app = str(item, "app");
	json_t *d;

	if (!pr_webhook_wanted(w, app))
		return;
	d = json_object();
	set_str(d, "message_id", str(item, "message_id"));
	set_str(d, "reason", reason && *reason ? reason : "invalid token");
	pr_webhook_emit(w, app, "token_invalid", str(item, "user"),
			str(item, "device_id"), d);
}

void pr_webhook_fetched(struct pr_webhook *w, const char *app, const char *user,
			const char *device, const json_t *messages,
			int64_t after, int64_t up_to)
{
	json_int_t top = 0, seq;
	json_t *ids, *d, *m;
	size_t i;

	if (!pr_webhook_wanted(w, app) || !json_array_size(messages))
		return;
	ids = json_array();
	json_array_foreach(messages, i, m)
	{
		seq = json_integer_value(json_object_get(m, "seq"));
		if (seq <= after || seq > up_to || !str(m, "id"))
			continue;
		json_array_append_new(ids, json_string(str(m, "id")));
		if (seq > top)
			top = seq;
	}
	if (!json_array_size(ids)) {
		json_decref(ids);
		return;
	}
	d = json_object();
	if (d) {
		json_object_set_new(d, "message_ids", ids);
		json_object_set_new(d, "up_to", json_integer(top));
	} else {
		json_decref(ids);
	}
	pr_webhook_emit(w, app, "fetched", user, device, d);
}

void pr_webhook_acknowledged(struct pr_webhook *w, const char *app,
			     const char *user, const char *device,
			     const json_t *result)
{
	json_t *v = json_object_get(result, "acked");

	if (!pr_webhook_wanted(w, app) || !json_is_integer(v))
		return;
	pr_webhook_emit(w, app, "acknowledged", user, device,
			json_pack("{s:I}", "up_to", json_integer_value(v)));
}

/* ---- lifecycle ---------------------------------------------------------- */

static int hook_init(struct pr_webhook *w, struct hook *h,
		     const struct pr_app_config *app)
{
	h->w = w;
	pr_buf_init(&h->cur, BATCH_BYTES);
	h->app = strdup(app->name);
	h->url = strdup(app->webhook_url);
	h->secret = strdup(app->webhook_secret);
	return h->app && h->url && h->secret ? PR_OK : PR_ERR_NOMEM;
}

static void hook_cleanup(struct hook *h)
{
	struct batch *b;

	while (h->head) {
		b = h->head;
		h->head = b->next;
		batch_drop(b, &h->n.shutdown);
	}
	h->tail = NULL;
	if (h->cur_n)
		cur_drop(h, &h->n.shutdown);
	pr_buf_cleanup(&h->cur);
	if (h->n.shutdown)
		pr_log(PR_LOG_INFO, NULL,
		       "app %s: %llu receipt(s) not delivered at shutdown",
		       h->app, h->n.shutdown);
	if (h->secret)
		OPENSSL_cleanse(h->secret, strlen(h->secret));
	free(h->secret);
	free(h->url);
	free(h->app);
}

struct pr_webhook *pr_webhook_new(struct pr_server *s)
{
	const struct pr_config *cfg = s->cfg;
	struct pr_webhook *w = calloc(1, sizeof(*w));
	size_t n = 0;

	if (!w)
		return NULL;
	w->s = s;
	ev_init(&w->timer_w, webhook_timer_cb);
	w->timer_w.data = w;
	if (RAND_bytes((unsigned char *)&w->salt, sizeof(w->salt)) != 1)
		w->salt = (uint32_t)time(NULL);
	for (size_t i = 0; i < cfg->n_apps; i++)
		if (cfg->apps[i].webhook_url && cfg->apps[i].webhook_url[0])
			n++;
	if (!n)
		return w;
	w->hooks = calloc(n, sizeof(*w->hooks));
	if (!w->hooks)
		goto fail;
	for (size_t i = 0; i < cfg->n_apps; i++) {
		const struct pr_app_config *app = &cfg->apps[i];

		if (!app->webhook_url || !app->webhook_url[0])
			continue;
		/* Counted first, so cleanup frees a half-made hook too. */
		if (hook_init(w, &w->hooks[w->n_hooks++], app))
			goto fail;
		pr_log(PR_LOG_INFO, NULL,
		       "app %s: delivery receipts go to its webhook_url",
		       app->name);
	}
	{
		struct pr_h2client_config hc = {
		    .max_in_flight = (long)(n * PARALLEL),
		    .connections = PARALLEL,
		    .max_streams = 100,
		    .connect_timeout = cfg->webhook_timeout,
		    .request_timeout = cfg->webhook_timeout,
		    .ping_interval = IDLE_SECONDS,
		    .max_response = MAX_RESPONSE,
		};

		w->h2 = pr_h2client_new(s->loop, &hc);
	}
	if (!w->h2)
		goto fail;
	return w;
fail:
	pr_webhook_free(w);
	return NULL;
}

void pr_webhook_free(struct pr_webhook *w)
{
	if (!w)
		return;
	w->closing = 1;
	ev_timer_stop(w->s->loop, &w->timer_w);
	/* Each POST in flight completes with "shutting down": dropped. */
	pr_h2client_free(w->h2);
	for (size_t i = 0; i < w->n_hooks; i++)
		hook_cleanup(&w->hooks[i]);
	free(w->hooks);
	free(w);
}

/* ---- metrics ------------------------------------------------------------ */

int pr_webhook_render_metrics(const struct pr_webhook *w, struct pr_buf *out)
{
	int rv = 0;

	if (!w)
		return PR_OK;
	rv |= pr_buf_appends(out, "# HELP pushrelay_webhook_delivered_total "
				  "Receipts a chat server's webhook "
				  "accepted.\n"
				  "# TYPE pushrelay_webhook_delivered_total "
				  "counter\n");
	for (size_t i = 0; i < w->n_hooks; i++)
		rv |= pr_buf_printf(
		    out,
		    "pushrelay_webhook_delivered_total{app=\"%s\"} "
		    "%llu\n",
		    w->hooks[i].app, w->hooks[i].n.delivered);
	rv |= pr_buf_appends(
	    out, "# HELP pushrelay_webhook_dropped_total Receipts given "
		 "up on: overflow (max_pending), refused (4xx), attempts "
		 "(max_attempts).\n"
		 "# TYPE pushrelay_webhook_dropped_total counter\n");
	for (size_t i = 0; i < w->n_hooks; i++) {
		const struct hook *h = &w->hooks[i];
		const char *names[] = {"overflow", "refused", "attempts"};
		unsigned long long v[] = {h->n.overflow, h->n.refused,
					  h->n.attempts};

		for (size_t k = 0; k < PR_ARRAY_SIZE(names); k++)
			rv |= pr_buf_printf(
			    out,
			    "pushrelay_webhook_dropped_total{app=\"%s\","
			    "reason=\"%s\"} %llu\n",
			    h->app, names[k], v[k]);
	}
	rv |= pr_buf_appends(out, "# HELP pushrelay_webhook_retries_total "
				  "Webhook POSTs that failed and wait to be "
				  "retried.\n"
				  "# TYPE pushrelay_webhook_retries_total "
				  "counter\n");
	for (size_t i = 0; i < w->n_hooks; i++)
		rv |=
		    pr_buf_printf(out,
				  "pushrelay_webhook_retries_total{app=\"%s\"} "
				  "%llu\n",
				  w->hooks[i].app, w->hooks[i].n.retries);
	rv |= pr_buf_printf(out,
			    "# HELP pushrelay_webhook_pending Receipts held: "
			    "collecting, queued or in flight.\n"
			    "# TYPE pushrelay_webhook_pending gauge\n"
			    "pushrelay_webhook_pending %zu\n",
			    w->pending);
	return rv ? PR_ERR_LIMIT : PR_OK;
}

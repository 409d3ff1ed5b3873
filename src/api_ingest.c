/*
 * api_ingest.c - POST /v1/events, one event or {"events":[...]}.
 *
 * Every event of a request is validated before anything is stored: one
 * bad event answers 400 naming the field and the batch index, and the
 * batch stores nothing. A valid batch becomes ONE store job, so it
 * commits (or fails) as a whole; the answer, 202 with a result per
 * event, is sent from the job's completion, after the commit. The
 * request is deferred meanwhile; if the client goes away, the commit
 * still happens and nothing is answered.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "api_ingest.h"
#include "auth.h"
#include "config.h"
#include "dispatch.h"
#include "http.h"
#include "inbox.h"
#include "log.h"
#include "metrics.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"
#include "store.h"

#define MAX_PUSH_TEXT 1024 /* title, body */
#define MAX_PUSH_WORD 256  /* sound, thread_id, category */
#define MAX_COLLAPSE  64   /* apns-collapse-id limit */

struct ingest {
	struct pr_server *server;
	struct pr_request *req; /* NULL once the client went away */
	struct pr_store_job job;
	json_t *doc; /* keeps the strings events point into */
	struct pr_event *events;
	char **texts;	      /* payload and push JSON, two per event */
	const char **targets; /* device ids, all events back to back */
	size_t n;
};

static void ingest_free(struct ingest *in)
{
	if (!in)
		return;
	for (size_t i = 0; in->texts && i < 2 * in->n; i++)
		free(in->texts[i]);
	free(in->texts);
	free(in->targets);
	free(in->events);
	json_decref(in->doc);
	free(in);
}

/* A failed check: the field and the reason, before answering. */
struct bad {
	int status; /* 400, or 413 for a payload over its limit */
	char field[64];
	char msg[160];
};

static int fail(struct bad *b, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct bad *b, const char *field, const char *fmt, ...)
{
	va_list ap;

	b->status = 400;
	snprintf(b->field, sizeof(b->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(b->msg, sizeof(b->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static int check_push(json_t *push, const struct pr_app_config *app,
		      struct pr_event *ev, long *ttl, struct bad *b)
{
	static const char *const words[] = {"sound", "thread_id", "category"};
	static const char *const texts[] = {"title", "body"};
	const char *k, *mode;
	json_t *v;

	json_object_foreach(push, k, v)
	{
		if (strcmp(k, "mode") && strcmp(k, "title") &&
		    strcmp(k, "body") && strcmp(k, "sound") &&
		    strcmp(k, "badge") && strcmp(k, "collapse_id") &&
		    strcmp(k, "priority") && strcmp(k, "ttl") &&
		    strcmp(k, "thread_id") && strcmp(k, "category")) {
			char f[64];

			snprintf(f, sizeof(f), "push.%.40s", k);
			return fail(b, f, "unknown field");
		}
	}
	v = json_object_get(push, "mode");
	if (v) {
		mode = json_string_value(v);
		if (!mode)
			return fail(b, "push.mode", "must be a string");
		if (strcmp(mode, "alert") == 0)
			ev->push_mode = PR_PUSH_ALERT;
		else if (strcmp(mode, "wakeup") == 0)
			ev->push_mode = PR_PUSH_WAKEUP;
		else if (strcmp(mode, "none") == 0)
			ev->push_mode = PR_PUSH_NONE;
		else
			return fail(b, "push.mode",
				    "must be alert, wakeup or none");
	}
	for (size_t i = 0; i < PR_ARRAY_SIZE(texts); i++) {
		char f[32];

		v = json_object_get(push, texts[i]);
		snprintf(f, sizeof(f), "push.%s", texts[i]);
		if (v && (!json_is_string(v) ||
			  json_string_length(v) > MAX_PUSH_TEXT))
			return fail(b, f,
				    "must be a string of at most %d bytes",
				    MAX_PUSH_TEXT);
	}
	for (size_t i = 0; i < PR_ARRAY_SIZE(words); i++) {
		char f[32];

		v = json_object_get(push, words[i]);
		snprintf(f, sizeof(f), "push.%s", words[i]);
		if (v && !pr_api_text(v, MAX_PUSH_WORD))
			return fail(b, f,
				    "must be a string of 1..%d bytes without "
				    "control characters",
				    MAX_PUSH_WORD);
	}
	v = json_object_get(push, "collapse_id");
	if (v && !pr_api_text(v, MAX_COLLAPSE))
		return fail(b, "push.collapse_id",
			    "must be a string of 1..%d bytes", MAX_COLLAPSE);
	v = json_object_get(push, "badge");
	if (v &&
	    !(json_is_string(v) &&
	      strcmp(json_string_value(v), "unread") == 0) &&
	    !(json_is_integer(v) && json_integer_value(v) >= 0 &&
	      json_integer_value(v) <= 999999))
		return fail(b, "push.badge",
			    "must be \"unread\" or an integer 0..999999");
	v = json_object_get(push, "priority");
	if (v && !(json_is_string(v) &&
		   (strcmp(json_string_value(v), "high") == 0 ||
		    strcmp(json_string_value(v), "normal") == 0)))
		return fail(b, "push.priority", "must be high or normal");
	v = json_object_get(push, "ttl");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > app->max_ttl)
			return fail(b, "push.ttl",
				    "must be an integer number of seconds "
				    "1..%ld",
				    app->max_ttl);
		*ttl = (long)json_integer_value(v);
	}
	if (ev->push_mode == PR_PUSH_ALERT && !json_object_get(push, "title") &&
	    !json_object_get(push, "body"))
		return fail(b, "push.body", "an alert needs a title or a body");
	return 0;
}

/* Validate one event object and fill ev. Strings stay owned by doc. */
static int check_event(struct pr_server *s, json_t *e, struct pr_event *ev,
		       char **texts, const char **targets, struct bad *b)
{
	const struct pr_config *cfg = s->cfg;
	size_t max_id = (size_t)cfg->ingest_max_id_bytes;
	const struct pr_app_config *app;
	json_t *v, *push, *payload;
	const char *k;
	long ttl;

	if (!json_is_object(e))
		return fail(b, "", "an event must be a JSON object");
	json_object_foreach(e, k, v)
	{
		if (strcmp(k, "id") && strcmp(k, "user") &&
		    strcmp(k, "devices") && strcmp(k, "app") &&
		    strcmp(k, "payload") && strcmp(k, "push")) {
			char f[64];

			snprintf(f, sizeof(f), "%.60s", k);
			return fail(b, f, "unknown field");
		}
	}
	ev->id = pr_api_text(json_object_get(e, "id"), max_id);
	if (!ev->id)
		return fail(b, "id",
			    "required: a string of 1..%zu bytes without "
			    "control characters",
			    max_id);
	ev->user = pr_api_text(json_object_get(e, "user"), max_id);
	if (!ev->user)
		return fail(b, "user",
			    "required: a string of 1..%zu bytes without "
			    "control characters",
			    max_id);
	v = json_object_get(e, "app");
	if (v) {
		ev->app = pr_api_text(v, 64);
		app = ev->app ? pr_config_app(cfg, ev->app) : NULL;
		if (!app)
			return fail(b, "app", "no such app");
	} else if (cfg->n_apps == 1) {
		app = &cfg->apps[0];
		ev->app = app->name;
	} else {
		return fail(b, "app",
			    "required: more than one app is configured");
	}
	v = json_object_get(e, "devices");
	if (v) {
		size_t i, n = json_array_size(v);
		json_t *d;

		if (!json_is_array(v) || n == 0 ||
		    n > (size_t)cfg->ingest_max_devices)
			return fail(b, "devices",
				    "must be an array of 1..%ld device ids",
				    cfg->ingest_max_devices);
		json_array_foreach(v, i, d)
		{
			targets[i] = pr_api_text(d, max_id);
			if (!targets[i]) {
				char f[32];

				snprintf(f, sizeof(f), "devices[%zu]", i);
				return fail(b, f,
					    "must be a string of 1..%zu bytes",
					    max_id);
			}
		}
		ev->devices = targets;
		ev->n_devices = n;
	}
	payload = json_object_get(e, "payload");
	if (payload) {
		texts[0] = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!texts[0])
			return fail(b, "payload", "cannot be encoded");
		if (strlen(texts[0]) > (size_t)cfg->ingest_max_payload_bytes) {
			fail(b, "payload",
			     "larger than %ld bytes (max_payload_bytes)",
			     cfg->ingest_max_payload_bytes);
			b->status = 413;
			return -1;
		}
		ev->payload = texts[0];
	}
	ev->push_mode = app->push_mode;
	ttl = app->default_ttl;
	push = json_object_get(e, "push");
	if (push) {
		if (!json_is_object(push))
			return fail(b, "push", "must be an object");
		if (check_push(push, app, ev, &ttl, b))
			return -1;
		texts[1] = json_dumps(push, JSON_COMPACT);
		if (!texts[1])
			return fail(b, "push", "cannot be encoded");
		ev->push = texts[1];
	}
	ev->created_at = (int64_t)time(NULL);
	ev->expires_at = ev->created_at + ttl;
	ev->push_delay = app->push_delay;
	return 0;
}

static void ingest_abort(struct pr_request *req, void *arg)
{
	struct ingest *in = arg;

	/* The store still owns the job; done() frees it. */
	in->req = NULL;
}

static void ingest_done(struct pr_store_job *job, void *arg)
{
	struct ingest *in = arg;
	struct pr_request *req = in->req;
	json_t *results;

	if (!req)
		goto out;
	if (job->rv) {
		pr_api_store_error(req, job->rv, job->err);
		goto out;
	}
	results = json_array();
	for (size_t i = 0; i < in->n; i++) {
		const struct pr_event *ev = &in->events[i];

		json_array_append_new(
		    results,
		    json_pack("{s:s, s:s, s:i}", "id", ev->id, "status",
			      ev->status == PR_EVENT_DUPLICATE ? "duplicate"
							       : "queued",
			      "devices", ev->n_targets));
	}
	pr_respond_json(req, 202, json_pack("{s:o}", "results", results));
out:
	if (job->rv == 0) {
		uint64_t dup = 0;

		for (size_t i = 0; i < in->n; i++)
			dup += in->events[i].status == PR_EVENT_DUPLICATE;
		pr_metrics_events(in->server->metrics, in->n - dup, dup);
		pr_dispatch_kick(in->server->dispatch);
		/* Long polls and streams of these users may answer now. */
		for (size_t i = 0; i < in->n; i++)
			if (in->events[i].status == PR_EVENT_QUEUED &&
			    in->events[i].n_targets > 0)
				pr_inbox_wake(in->server->inbox,
					      in->events[i].app,
					      in->events[i].user);
	}
	ingest_free(in);
}

static void post_events(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	const struct pr_config *cfg = s->cfg;
	struct ingest *in = NULL;
	json_t *doc, *list;
	struct bad b;
	size_t n, ndev = 0, i;
	int batch, rv;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_INGEST))
		return;
	doc = pr_api_body(req);
	if (!doc)
		return;
	list = json_object_get(doc, "events");
	batch = list != NULL;
	if (batch) {
		if (json_object_size(doc) != 1) {
			json_decref(doc);
			pr_respond_error(req, 400, "invalid_event", NULL,
					 "a batch has only the \"events\" "
					 "field");
			return;
		}
		n = json_array_size(list);
		if (!json_is_array(list) || n == 0 ||
		    n > (size_t)cfg->ingest_max_events) {
			json_decref(doc);
			pr_respond_error(req, 400, "invalid_event", "events",
					 "must be an array of 1..%ld events",
					 cfg->ingest_max_events);
			return;
		}
	} else {
		n = 1;
	}
	for (i = 0; i < n; i++) {
		json_t *d = json_object_get(
		    batch ? json_array_get(list, i) : doc, "devices");

		ndev += json_is_array(d) ? json_array_size(d) : 0;
	}
	in = calloc(1, sizeof(*in));
	if (in) {
		in->n = n;
		in->doc = doc;
		in->events = calloc(n, sizeof(*in->events));
		in->texts = calloc(2 * n, sizeof(*in->texts));
		in->targets = calloc(ndev ? ndev : 1, sizeof(*in->targets));
	}
	if (!in || !in->events || !in->texts || !in->targets) {
		if (!in)
			json_decref(doc);
		ingest_free(in);
		pr_respond_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	ndev = 0;
	for (i = 0; i < n; i++) {
		json_t *e = batch ? json_array_get(list, i) : doc;
		struct pr_event *ev = &in->events[i];

		if (check_event(s, e, ev, &in->texts[2 * i], in->targets + ndev,
				&b)) {
			const char *field = b.field[0] ? b.field : "event";

			pr_respond_error_at(req, b.status,
					    b.status == 413
						? "payload_too_large"
						: "invalid_event",
					    field, batch ? (long)i : -1,
					    "%s: %s", field, b.msg);
			ingest_free(in);
			return;
		}
		ndev += ev->n_devices;
	}
	in->req = req;
	in->server = s;
	in->job.op = PR_STORE_INGEST;
	in->job.events = in->events;
	in->job.n_events = n;
	in->job.done = ingest_done;
	in->job.arg = in;
	rv = pr_store_submit(s->store, &in->job);
	if (rv) {
		pr_api_store_error(req, rv, NULL);
		ingest_free(in);
		return;
	}
	pr_request_defer(req, ingest_abort, in);
}

int pr_api_ingest_register(struct pr_server *s)
{
	return pr_router_add(s->router, "POST", "/v1/events", post_events, s,
			     PR_ROUTE_PUBLIC);
}

/*
 * inbox.c - the inbox long poll, acknowledgements and the WebSocket
 * stream.
 *
 * Reads go through the store (PR_STORE_INBOX_FETCH) like everything else,
 * so the loop never touches SQLite. A long poll whose first fetch finds
 * nothing is parked in a table keyed by (app, user) with a timer of its
 * `wait`; an ingest that commits messages for that user wakes it, it
 * fetches again, and answers as soon as something is there. A stream is
 * parked the same way for as long as it is open, and each wake sends the
 * new messages down it. Nothing here moves a device's cursor: only an
 * acknowledgement does (PR_STORE_ACK), so a client can never skip what
 * it has not acknowledged.
 */
#include "autoconf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "client_auth.h"
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
#include "webhook.h"
#include "ws.h"

#define BUCKETS 4096

enum { KIND_POLL = 1, KIND_STREAM = 2 };

struct member {
	struct member *prev, *next; /* in its bucket */
	int kind;
	int linked;
	unsigned hash;
	char *app, *user, *device;
	void (*wake)(struct member *m);
};

struct pr_inbox {
	struct pr_server *s;
	struct member *buckets[BUCKETS];
	size_t n;
};

/* ---- the waiter table ------------------------------------------------- */

static unsigned hash_key(const char *app, const char *user)
{
	unsigned h = 2166136261u; /* FNV-1a */

	for (const char *p = app; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ 0x1f) * 16777619u;
	for (const char *p = user; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h;
}

static void link_member(struct pr_inbox *ib, struct member *m)
{
	struct member **b;

	if (m->linked)
		return;
	m->hash = hash_key(m->app, m->user);
	b = &ib->buckets[m->hash % BUCKETS];
	m->prev = NULL;
	m->next = *b;
	if (*b)
		(*b)->prev = m;
	*b = m;
	m->linked = 1;
	ib->n++;
}

static void unlink_member(struct pr_inbox *ib, struct member *m)
{
	if (!m->linked)
		return;
	if (m->prev)
		m->prev->next = m->next;
	else
		ib->buckets[m->hash % BUCKETS] = m->next;
	if (m->next)
		m->next->prev = m->prev;
	m->prev = m->next = NULL;
	m->linked = 0;
	ib->n--;
}

static int member_init(struct member *m, const struct pr_client *cl)
{
	m->app = strdup(cl->app->name);
	m->user = strdup(cl->user);
	m->device = strdup(cl->device);
	return m->app && m->user && m->device ? PR_OK : PR_ERR_NOMEM;
}

static void member_cleanup(struct member *m)
{
	free(m->app);
	free(m->user);
	free(m->device);
}

void pr_inbox_wake(struct pr_inbox *ib, const char *app, const char *user)
{
	unsigned h;
	struct member *m, *next;

	if (!ib || !app || !user)
		return;
	h = hash_key(app, user);
	for (m = ib->buckets[h % BUCKETS]; m; m = next) {
		next = m->next; /* wake may unlink m (never others) */
		if (m->hash == h && strcmp(m->app, app) == 0 &&
		    strcmp(m->user, user) == 0)
			m->wake(m);
	}
}

size_t pr_inbox_waiting(const struct pr_inbox *ib)
{
	return ib ? ib->n : 0;
}

/* ---- long poll -------------------------------------------------------- */

struct poll {
	struct member m;
	struct pr_inbox *ib;
	struct pr_request *req; /* NULL once the client went away */
	int64_t after;
	long limit;
	long wait;
	int fetching;
	int again;   /* woken while a fetch was in the store */
	int expired; /* the wait is over: answer whatever comes */
	ev_timer timer;
	struct pr_store_job job;
};

static void poll_fetch(struct poll *p);

static void poll_free(struct poll *p)
{
	unlink_member(p->ib, &p->m);
	ev_timer_stop(p->ib->s->loop, &p->timer);
	json_decref(p->job.result);
	member_cleanup(&p->m);
	free(p);
}

static void poll_answer(struct poll *p, json_t *result)
{
	json_t *doc = json_pack("{s:O, s:O, s:O, s:O}", "messages",
				json_object_get(result, "messages"), "next",
				json_object_get(result, "next"), "more",
				json_object_get(result, "more"), "push",
				json_object_get(result, "push"));

	pr_webhook_fetched(p->ib->s->webhook, p->m.app, p->m.user, p->m.device,
			   json_object_get(result, "messages"), 0, INT64_MAX);
	pr_metrics_inbox_fetched(
	    p->ib->s->metrics,
	    json_array_size(json_object_get(result, "messages")));
	pr_respond_json(p->req, 200, doc);
	p->req = NULL;
}

static void poll_done(struct pr_store_job *job, void *arg)
{
	struct poll *p = arg;
	json_t *r = job->result;

	p->fetching = 0;
	if (!p->req) {
		poll_free(p);
		return;
	}
	if (job->rv) {
		pr_api_store_error(p->req, job->rv,
				   job->rv == PR_ERR_NOTFOUND
				       ? "no such device for this user"
				       : job->err);
		p->req = NULL;
		poll_free(p);
		return;
	}
	if (json_array_size(json_object_get(r, "messages")) > 0 ||
	    p->wait == 0 || p->expired) {
		poll_answer(p, r);
		poll_free(p);
		return;
	}
	json_decref(job->result);
	job->result = NULL;
	/* Nothing yet: park until a wake or the wait runs out. */
	if (!p->m.linked) {
		if (p->ib->n >= (size_t)p->ib->s->cfg->inbox_max_waiters) {
			pr_response_header(p->req, "Retry-After", "5");
			pr_respond_error(p->req, 503, "overloaded", NULL,
					 "too many clients waiting; retry "
					 "later");
			p->req = NULL;
			poll_free(p);
			return;
		}
		link_member(p->ib, &p->m);
		p->timer.repeat = (double)p->wait;
		ev_timer_again(p->ib->s->loop, &p->timer);
	}
	if (p->again) {
		p->again = 0;
		poll_fetch(p);
	}
}

static void poll_fetch(struct poll *p)
{
	int rv;

	memset(&p->job, 0, sizeof(p->job));
	p->job.op = PR_STORE_INBOX_FETCH;
	p->job.app = p->m.app;
	p->job.user = p->m.user;
	p->job.device_id = p->m.device;
	p->job.after = p->after;
	p->job.limit = p->limit;
	p->job.now = (int64_t)time(NULL);
	p->job.done = poll_done;
	p->job.arg = p;
	rv = pr_store_submit(p->ib->s->store, &p->job);
	if (rv) {
		if (p->req) {
			pr_api_store_error(p->req, rv, NULL);
			p->req = NULL;
		}
		poll_free(p);
		return;
	}
	p->fetching = 1;
}

static void poll_wake(struct member *m)
{
	struct poll *p = (struct poll *)m;

	if (p->fetching)
		p->again = 1;
	else
		poll_fetch(p);
}

static void poll_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct poll *p = w->data;

	ev_timer_stop(loop, w);
	p->expired = 1;
	if (!p->fetching)
		poll_fetch(p); /* answers whatever it finds, even nothing */
}

static void poll_abort(struct pr_request *req, void *arg)
{
	struct poll *p = arg;

	p->req = NULL;
	unlink_member(p->ib, &p->m);
	ev_timer_stop(p->ib->s->loop, &p->timer);
	if (!p->fetching)
		poll_free(p);
}

/* An optional integer query parameter in lo..hi. 1 = ok (or absent). */
static int query_num(struct pr_request *req, const char *key, long long lo,
		     long long hi, long long *out)
{
	char v[32], *end;
	long long n;
	int len = pr_request_query(req, key, v, sizeof(v));

	if (len == -1)
		return 1;
	n = len > 0 ? strtoll(v, &end, 10) : 0;
	if (len <= 0 || *end || n < lo || n > hi) {
		pr_respond_error(req, 400, "invalid_request", key,
				 "%s: an integer %lld..%lld", key, lo, hi);
		return 0;
	}
	*out = n;
	return 1;
}

static void get_inbox(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	const struct pr_config *cfg = s->cfg;
	long long after = 0, limit = 100, wait = 0;
	struct pr_client cl;
	struct poll *p;

	if (!pr_client_auth(s, req, 0, &cl))
		return;
	if (limit > cfg->inbox_max_limit)
		limit = cfg->inbox_max_limit;
	if (!query_num(req, "after", 0, INT64_MAX, &after) ||
	    !query_num(req, "limit", 1, cfg->inbox_max_limit, &limit) ||
	    !query_num(req, "wait", 0, 86400, &wait))
		return;
	if (wait > cfg->inbox_max_wait)
		wait = cfg->inbox_max_wait;
	p = calloc(1, sizeof(*p));
	if (!p || member_init(&p->m, &cl)) {
		if (p)
			member_cleanup(&p->m);
		free(p);
		pr_respond_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	p->ib = s->inbox;
	p->req = req;
	p->after = after;
	p->limit = (long)limit;
	p->wait = (long)wait;
	p->m.kind = KIND_POLL;
	p->m.wake = poll_wake;
	ev_init(&p->timer, poll_timer_cb);
	p->timer.data = p;
	pr_request_defer(req, poll_abort, p);
	poll_fetch(p);
}

/* ---- acknowledgements ------------------------------------------------- */

static void ack_finish(struct pr_api_call *call)
{
	json_t *r = call->job.result;

	pr_webhook_acknowledged(call->server->webhook, call->job.app,
				call->job.user, call->job.device_id, r);
	pr_metrics_inbox_acked(call->server->metrics);
	pr_respond_json(call->req, 200, r ? json_incref(r) : json_object());
}

static void post_ack(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;
	struct pr_client cl;
	json_t *doc, *v;

	if (!pr_client_auth(s, req, 0, &cl))
		return;
	doc = pr_api_body(req);
	if (!doc)
		return;
	v = json_object_get(doc, "up_to");
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_object_size(doc) != 1) {
		json_decref(doc);
		pr_respond_error(req, 400, "invalid_request", "up_to",
				 "up_to: required, a sequence number >= 0 "
				 "(and no other field)");
		return;
	}
	call = pr_api_call_new(s, req, PR_STORE_ACK, 200);
	if (!call) {
		json_decref(doc);
		return;
	}
	call->finish = ack_finish;
	call->job.app = pr_api_call_keep(call, cl.app->name);
	call->job.user = pr_api_call_keep(call, cl.user);
	call->job.device_id = pr_api_call_keep(call, cl.device);
	call->job.after = (int64_t)json_integer_value(v);
	json_decref(doc);
	pr_api_call_submit(call);
}

/* ---- the WebSocket stream --------------------------------------------- */

struct stream {
	struct member m;
	struct pr_inbox *ib;
	struct pr_ws *ws; /* NULL once closed */
	int64_t sent;	  /* highest seq sent down the stream */
	int fetching, again, slow, push_off;
	int acking;	     /* an ACK job is in the store */
	int64_t ack_pending; /* the highest ack waiting for its turn */
	struct pr_store_job job;
	struct pr_store_job ack;
};

static void stream_fetch(struct stream *st);

static void stream_maybe_free(struct stream *st)
{
	if (st->ws || st->fetching || st->acking)
		return;
	json_decref(st->job.result);
	json_decref(st->ack.result);
	member_cleanup(&st->m);
	free(st);
}

/* Send one JSON message. Returns 0 (sent, go on), 1 (sent, and the
 * queue for this reader is now past half of ws_max_queued: stop until
 * on_drain), PR_ERR_BUSY (not sent: the queue was already past half),
 * or another error when the session is going away. Crossing half with
 * a message of our own is what arms on_drain. */
static int stream_send(struct stream *st, json_t *msg, int force)
{
	size_t half = (size_t)st->ib->s->cfg->ws_max_queued / 2;
	char *text;
	int rv;

	if (!force && pr_ws_queued(st->ws) > half)
		return PR_ERR_BUSY;
	text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return PR_ERR_NOMEM;
	rv = pr_ws_send_text(st->ws, text, strlen(text));
	if (rv == PR_ERR_LIMIT)
		pr_log(PR_LOG_INFO, pr_ws_id(st->ws),
		       "stream of %s/%s too slow; closing", st->m.user,
		       st->m.device);
	free(text);
	if (rv == PR_OK && pr_ws_queued(st->ws) > half)
		return 1;
	return rv;
}

static void stream_fetched(struct pr_store_job *job, void *arg)
{
	struct stream *st = arg;
	json_t *msgs, *msg;
	size_t i, n;
	int more, first = 1;

	st->fetching = 0;
	if (!st->ws) {
		stream_maybe_free(st);
		return;
	}
	if (job->rv) {
		pr_ws_close(st->ws, job->rv == PR_ERR_NOTFOUND ? 1008 : 1011,
			    job->rv == PR_ERR_NOTFOUND ? "no such device"
						       : "storage unavailable");
		return;
	}
	msgs = json_object_get(job->result, "messages");
	n = json_array_size(msgs);
	more = json_is_true(json_object_get(job->result, "more"));
	json_array_foreach(msgs, i, msg)
	{
		json_int_t seq =
		    json_integer_value(json_object_get(msg, "seq"));
		int rv;

		if (seq <= st->sent)
			continue;
		/* Queue at most about half of ws_max_queued: the rest of a
		 * large backlog waits for the reader (on_drain) instead of
		 * tripping the slow-reader close. */
		rv = stream_send(st, msg, first);
		first = 0;
		if (rv == PR_ERR_BUSY) {
			st->slow = 1;
			more = 1;
			break;
		}
		if (rv < 0)
			break; /* closing */
		st->sent = seq;
		pr_metrics_inbox_fetched(st->ib->s->metrics, 1);
		if (rv == 1) {
			st->slow = 1;
			more = 1;
			break;
		}
	}
	pr_webhook_fetched(st->ib->s->webhook, st->m.app, st->m.user,
			   st->m.device, msgs, job->after, st->sent);
	json_decref(job->result);
	job->result = NULL;
	if (!st->ws)
		return;
	/* More waiting (a backlog page, or a wake meanwhile): go on unless
	 * the reader is behind (then on_drain goes on). */
	if (more || n == (size_t)st->job.limit)
		st->again = 1;
	if (st->slow)
		return;
	if (st->again) {
		st->again = 0;
		stream_fetch(st);
	}
}

static void stream_fetch(struct stream *st)
{
	memset(&st->job, 0, sizeof(st->job));
	st->job.op = PR_STORE_INBOX_FETCH;
	st->job.app = st->m.app;
	st->job.user = st->m.user;
	st->job.device_id = st->m.device;
	st->job.after = st->sent;
	st->job.limit = st->ib->s->cfg->inbox_max_limit;
	st->job.now = (int64_t)time(NULL);
	st->job.done = stream_fetched;
	st->job.arg = st;
	if (pr_store_submit(st->ib->s->store, &st->job) == PR_OK)
		st->fetching = 1;
	else
		st->again = 1; /* the next wake tries again */
}

static void stream_wake(struct member *m)
{
	struct stream *st = (struct stream *)m;

	if (!st->ws)
		return;
	if (st->fetching || st->slow)
		st->again = 1;
	else
		stream_fetch(st);
}

static void stream_ack(struct stream *st, int64_t up_to);

static void stream_acked(struct pr_store_job *job, void *arg)
{
	struct stream *st = arg;
	json_t *reply;

	st->acking = 0;
	if (job->rv == 0)
		pr_metrics_inbox_acked(st->ib->s->metrics);
	pr_webhook_acknowledged(st->ib->s->webhook, st->m.app, st->m.user,
				st->m.device, job->rv ? NULL : job->result);
	if (st->ws) {
		if (job->rv)
			reply = json_pack("{s:{s:s, s:s}}", "error", "code",
					  job->rv == PR_ERR_INVAL
					      ? "invalid_ack"
					      : "storage_unavailable",
					  "message", job->err);
		else
			reply =
			    json_pack("{s:O}", "acked",
				      json_object_get(job->result, "acked"));
		if (reply)
			stream_send(st, reply, 1);
		json_decref(reply);
	}
	json_decref(job->result);
	job->result = NULL;
	if (st->ws && st->ack_pending > 0) {
		int64_t next = st->ack_pending;

		st->ack_pending = 0;
		stream_ack(st, next);
		return;
	}
	stream_maybe_free(st);
}

/* One ack in the store at a time; later ones collapse to the highest. */
static void stream_ack(struct stream *st, int64_t up_to)
{
	if (st->acking) {
		if (up_to > st->ack_pending)
			st->ack_pending = up_to;
		return;
	}
	memset(&st->ack, 0, sizeof(st->ack));
	st->ack.op = PR_STORE_ACK;
	st->ack.app = st->m.app;
	st->ack.user = st->m.user;
	st->ack.device_id = st->m.device;
	st->ack.after = up_to;
	st->ack.now = (int64_t)time(NULL);
	st->ack.done = stream_acked;
	st->ack.arg = st;
	if (pr_store_submit(st->ib->s->store, &st->ack) == PR_OK)
		st->acking = 1;
}

static void stream_text(struct pr_ws *ws, const char *msg, size_t len,
			void *arg)
{
	struct stream *st = arg;
	json_t *doc = json_loadb(msg, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *v = json_object_get(doc, "ack");

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code",
				      "invalid_message", "message",
				      "send {\"ack\":SEQ}");

		if (e)
			stream_send(st, e, 1);
		json_decref(e);
	} else {
		stream_ack(st, (int64_t)json_integer_value(v));
	}
	json_decref(doc);
}

static void stream_drain(struct pr_ws *ws, void *arg)
{
	struct stream *st = arg;

	st->slow = 0;
	if (st->again && !st->fetching) {
		st->again = 0;
		stream_fetch(st);
	}
}

static void stream_closed(struct pr_ws *ws, void *arg)
{
	struct stream *st = arg;

	st->ws = NULL;
	unlink_member(st->ib, &st->m);
	if (st->push_off)
		pr_dispatch_quiet(st->ib->s->dispatch, st->m.app, st->m.device,
				  0);
	stream_maybe_free(st);
}

static const struct pr_ws_handler stream_handler = {
    .on_text = stream_text,
    .on_drain = stream_drain,
    .on_close = stream_closed,
};

static void get_stream(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	long long after = 0;
	struct pr_client cl;
	struct stream *st;
	char push[8];

	/* pr_ws_accept answers a bad handshake (400, 426) itself. */
	if (!pr_request_header(req, "upgrade")) {
		pr_response_header(req, "Upgrade", "websocket");
		pr_respond_error(req, 426, "upgrade_required", NULL,
				 "this endpoint speaks WebSocket only");
		return;
	}
	if (!pr_client_auth(s, req, 1, &cl) ||
	    !query_num(req, "after", 0, INT64_MAX, &after))
		return;
	if (s->inbox->n >= (size_t)s->cfg->inbox_max_waiters) {
		pr_response_header(req, "Retry-After", "5");
		pr_respond_error(req, 503, "overloaded", NULL,
				 "too many clients connected; retry later");
		return;
	}
	st = calloc(1, sizeof(*st));
	if (!st || member_init(&st->m, &cl)) {
		if (st)
			member_cleanup(&st->m);
		free(st);
		pr_respond_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	st->ib = s->inbox;
	st->sent = (int64_t)after;
	st->m.kind = KIND_STREAM;
	st->m.wake = stream_wake;
	st->push_off = pr_request_query(req, "push", push, sizeof(push)) > 0 &&
		       strcmp(push, "off") == 0;
	st->ws = pr_ws_accept(req, &stream_handler, st);
	if (!st->ws) {
		member_cleanup(&st->m);
		free(st);
		return;
	}
	link_member(st->ib, &st->m);
	if (st->push_off)
		pr_dispatch_quiet(s->dispatch, st->m.app, st->m.device, 1);
	stream_fetch(st);
}

/* ---- lifecycle -------------------------------------------------------- */

struct pr_inbox *pr_inbox_new(struct pr_server *s)
{
	struct pr_inbox *ib = calloc(1, sizeof(*ib));

	if (ib)
		ib->s = s;
	return ib;
}

void pr_inbox_free(struct pr_inbox *ib)
{
	if (!ib)
		return;
	/* Connections (and so polls and streams) are gone by now: their
	 * abort/close callbacks unlinked them. */
	free(ib);
}

int pr_inbox_register(struct pr_server *s)
{
	int rv = 0;

	rv |= pr_router_add(s->router, "GET", "/v1/inbox", get_inbox, s,
			    PR_ROUTE_PUBLIC);
	rv |= pr_router_add(s->router, "POST", "/v1/inbox/ack", post_ack, s,
			    PR_ROUTE_PUBLIC);
	rv |= pr_router_add(s->router, "GET", "/v1/stream", get_stream, s,
			    PR_ROUTE_PUBLIC);
	return rv ? PR_ERR_NOMEM : PR_OK;
}

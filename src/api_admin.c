/*
 * api_admin.c - GET/POST /v1/admin/keys and DELETE /v1/admin/keys/{key},
 * the provider switches, and the queue: GET /v1/admin/stats, GET
 * /v1/admin/messages[/{id}], DELETE /v1/admin/messages/{id}, POST
 * /v1/admin/pushes/{id}/retry and POST /v1/admin/pushes/retry?state=dead.
 * Served on the admin listener (a 0600 Unix socket needs no key) and to
 * admin-scope keys elsewhere. A new key is returned once, in the answer
 * to POST; only its SHA-256 is stored, and the in-memory key cache is
 * updated after the store has committed the change.
 */
#include "autoconf.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_admin.h"
#include "auth.h"
#include "config.h"
#include "dispatch.h"
#include "http.h"
#include "log.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"
#include "store.h"

#define MAX_KEY_NAME 64

struct new_key {
	char key[PR_KEY_LEN + 1];
	char prefix[PR_KEY_PREFIX_LEN + 1];
	enum pr_scope scope;
};

static void create_finish(struct pr_api_call *call)
{
	struct new_key *nk = call->data;
	struct pr_store_job *job = &call->job;
	char when[32];

	if (pr_auth_add(call->server->auth, job->key.id, nk->scope,
			job->key.hash) != PR_OK) {
		/* Committed but not usable until a restart reloads it. */
		pr_log(PR_LOG_ERROR, call->req->id,
		       "key %lld stored but not cached; restart to use it",
		       (long long)job->key.id);
	}
	pr_api_time(job->now, when);
	pr_respond_json(call->req, 201,
			json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "id",
				  (json_int_t)job->key.id, "name",
				  job->key.name, "scope",
				  pr_scope_name(nk->scope), "key", nk->key,
				  "prefix", nk->prefix, "created_at", when));
}

static void create_key(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;
	struct new_key *nk;
	const char *name, *scope_s;
	json_t *doc;
	int scope;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	doc = pr_api_body(req);
	if (!doc)
		return;
	name = pr_api_text(json_object_get(doc, "name"), MAX_KEY_NAME);
	scope_s = json_string_value(json_object_get(doc, "scope"));
	scope = scope_s ? pr_scope_parse(scope_s) : -1;
	if (!name) {
		pr_respond_error(req, 400, "invalid_request", "name",
				 "name: required, 1..%d bytes", MAX_KEY_NAME);
		goto out;
	}
	if (scope < 0) {
		pr_respond_error(req, 400, "invalid_request", "scope",
				 "scope: required, ingest or admin");
		goto out;
	}
	/* [admin] max_api_keys is enforced by the store, in the transaction
	 * that adds the key. */
	call = pr_api_call_new(s, req, PR_STORE_KEY_CREATE, 201);
	nk = call ? calloc(1, sizeof(*nk)) : NULL;
	if (!nk) {
		if (call) {
			pr_respond_error(req, 500, "internal", NULL,
					 "out of memory");
			pr_api_call_free(call);
		}
		goto out;
	}
	if (pr_auth_key_generate(nk->key, call->job.key.hash, nk->prefix)) {
		pr_respond_error(req, 500, "internal", NULL,
				 "no randomness available");
		free(nk);
		pr_api_call_free(call);
		goto out;
	}
	nk->scope = (enum pr_scope)scope;
	call->data = nk;
	call->finish = create_finish;
	call->hold = doc;
	call->job.key.name = name;
	call->job.key.scope = pr_scope_name(nk->scope);
	call->job.key.prefix = nk->prefix;
	call->job.key.now = call->job.now;
	/* The call frees `data` only through this hook. */
	call->own[call->n_own++] = (char *)nk;
	pr_api_call_submit(call);
	return;
out:
	json_decref(doc);
}

static void list_finish(struct pr_api_call *call)
{
	json_t *r = call->job.result;

	pr_respond_json(call->req, 200,
			json_pack("{s:O}", "keys", r ? r : json_array()));
}

static void list_keys(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	call = pr_api_call_new(s, req, PR_STORE_KEY_LIST, 200);
	if (!call)
		return;
	call->finish = list_finish;
	pr_api_call_submit(call);
}

static void revoke_finish(struct pr_api_call *call)
{
	json_t *r = call->job.result;
	json_int_t id = json_integer_value(json_object_get(r, "id"));

	if (id > 0)
		pr_auth_remove(call->server->auth, (int64_t)id);
	pr_respond_json(call->req, 200,
			json_pack("{s:I, s:b}", "id", id, "revoked", 1));
}

static void revoke_key(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;
	const char *which = req->params[0];
	char *end;
	long long id = strtoll(which, &end, 10);

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	call = pr_api_call_new(s, req, PR_STORE_KEY_REVOKE, 200);
	if (!call)
		return;
	call->finish = revoke_finish;
	if (*which && !*end && id > 0)
		call->job.key.id = (int64_t)id;
	else
		call->job.key.name = pr_api_call_keep(call, which);
	call->job.key.now = call->job.now;
	pr_api_call_submit(call);
}

/* POST /v1/admin/providers/{name}/pause and .../resume: for every app,
 * or one app with ?app=. */
static void provider_switch(struct pr_request *req, struct pr_server *s,
			    int pause)
{
	const char *name = req->params[0];
	char app[80];
	int has_app = pr_request_query(req, "app", app, sizeof(app)) > 0;
	int n;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	if (strcmp(name, "apns") != 0 && strcmp(name, "fcm") != 0) {
		pr_respond_error(req, 404, "not_found", "provider",
				 "no provider %.32s (apns or fcm)", name);
		return;
	}
	n = pause ? pr_dispatch_pause(s->dispatch, name, has_app ? app : NULL,
				      "paused by an admin")
		  : pr_dispatch_resume(s->dispatch, name, has_app ? app : NULL);
	pr_respond_json(req, 200,
			json_pack("{s:s, s:b, s:i}", "provider", name, "paused",
				  pause, "changed", n));
}

static void pause_provider(struct pr_request *req, void *arg)
{
	provider_switch(req, arg, 1);
}

static void resume_provider(struct pr_request *req, void *arg)
{
	provider_switch(req, arg, 0);
}

static void provider_stats(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	pr_respond_json(
	    req, 200,
	    json_pack("{s:o}", "providers",
		      (json_t *)pr_dispatch_stats_json(s->dispatch)));
}

/* ---- queue: stats, messages, retries, purge ------------------------------ */

static const char *const push_states[] = {
    "pending", "in_flight", "sent",    "retry",
    "dead",    "cancelled", "expired", "invalid_token",
};

static void stats_finish(struct pr_api_call *call)
{
	json_t *r = call->job.result;

	json_object_set_new(
	    r, "providers",
	    (json_t *)pr_dispatch_stats_json(call->server->dispatch));
	pr_respond_json(call->req, 200, json_incref(r));
}

static void admin_stats(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	call = pr_api_call_new(s, req, PR_STORE_STATS, 200);
	if (!call)
		return;
	call->finish = stats_finish;
	pr_api_call_submit(call);
}

/* A query parameter: 1 present (in out), 0 absent, -1 answered 400. */
static int query_text(struct pr_request *req, const char *key, char *out,
		      size_t outlen)
{
	int n = pr_request_query(req, key, out, outlen);

	if (n == -1)
		return 0;
	if (n <= 0) {
		pr_respond_error(req, 400, "invalid_request", key,
				 "%s: 1..%zu bytes", key, outlen - 1);
		return -1;
	}
	return 1;
}

/* An integer parameter in [min, max]: 1 present, 0 absent, -1 answered. */
static int query_int(struct pr_request *req, const char *key, long long min,
		     long long max, long long *out)
{
	char buf[32], *end;
	int rv = query_text(req, key, buf, sizeof(buf));
	long long v;

	if (rv <= 0)
		return rv;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end || end == buf || v < min || v > max) {
		pr_respond_error(req, 400, "invalid_request", key,
				 "%s: an integer %lld..%lld", key, min, max);
		return -1;
	}
	*out = v;
	return 1;
}

static int is_push_state(const char *v)
{
	for (size_t i = 0; i < PR_ARRAY_SIZE(push_states); i++)
		if (strcmp(v, push_states[i]) == 0)
			return 1;
	return 0;
}

static void list_messages(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;
	char user[129], state[32], provider[16];
	long long limit = 0, before = 0, before2 = 0, since = 0, until = 0;
	int has_user, has_state, has_provider;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	if ((has_user = query_text(req, "user", user, sizeof(user))) < 0 ||
	    (has_state = query_text(req, "state", state, sizeof(state))) < 0 ||
	    (has_provider =
		 query_text(req, "provider", provider, sizeof(provider))) < 0 ||
	    query_int(req, "limit", 1, 1000, &limit) < 0 ||
	    query_int(req, "before", 1, INT64_MAX, &before) < 0 ||
	    query_int(req, "after", 1, INT64_MAX, &before2) < 0 ||
	    query_int(req, "since", 0, INT64_MAX, &since) < 0 ||
	    query_int(req, "until", 0, INT64_MAX, &until) < 0)
		return;
	if (has_state && !is_push_state(state)) {
		pr_respond_error(req, 400, "invalid_request", "state",
				 "state: one of pending, in_flight, sent,"
				 " retry, dead, cancelled, expired,"
				 " invalid_token");
		return;
	}
	if (has_provider && strcmp(provider, "apns") != 0 &&
	    strcmp(provider, "fcm") != 0) {
		pr_respond_error(req, 400, "invalid_request", "provider",
				 "provider: apns or fcm");
		return;
	}
	call = pr_api_call_new(s, req, PR_STORE_MSG_LIST, 200);
	if (!call)
		return;
	if (has_user)
		call->job.user = pr_api_call_keep(call, user);
	if (has_state)
		call->job.state = pr_api_call_keep(call, state);
	if (has_provider)
		call->job.platform = pr_api_call_keep(call, provider);
	if ((has_user && !call->job.user) || (has_state && !call->job.state) ||
	    (has_provider && !call->job.platform)) {
		pr_respond_error(req, 500, "internal", NULL, "out of memory");
		pr_api_call_free(call);
		return;
	}
	call->job.limit = (long)limit;
	call->job.after = (int64_t)(before ? before : before2);
	call->job.since = (int64_t)since;
	call->job.until = (int64_t)until;
	pr_api_call_submit(call);
}

/* A message call: the {id} and an optional ?app=. */
static struct pr_api_call *message_call(struct pr_request *req,
					struct pr_server *s, int op)
{
	struct pr_api_call *call;
	char app[80];
	int has_app;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return NULL;
	if ((has_app = query_text(req, "app", app, sizeof(app))) < 0)
		return NULL;
	call = pr_api_call_new(s, req, op, 200);
	if (!call)
		return NULL;
	call->job.item_ext = pr_api_call_keep(call, req->params[0]);
	if (has_app)
		call->job.app = pr_api_call_keep(call, app);
	if (!call->job.item_ext || (has_app && !call->job.app)) {
		pr_respond_error(req, 500, "internal", NULL, "out of memory");
		pr_api_call_free(call);
		return NULL;
	}
	return call;
}

static void show_message(struct pr_request *req, void *arg)
{
	struct pr_api_call *call = message_call(req, arg, PR_STORE_MSG_SHOW);

	if (call)
		pr_api_call_submit(call);
}

static void purge_message(struct pr_request *req, void *arg)
{
	struct pr_api_call *call = message_call(req, arg, PR_STORE_MSG_PURGE);

	if (call)
		pr_api_call_submit(call);
}

static void retry_finish(struct pr_api_call *call)
{
	pr_dispatch_kick(call->server->dispatch);
	pr_respond_json(call->req, 200,
			call->job.result ? json_incref(call->job.result)
					 : json_object());
}

static void retry_push(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;
	const char *which = req->params[0];
	char *end;
	long long id;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	errno = 0;
	id = strtoll(which, &end, 10);
	if (errno || !*which || *end || id <= 0) {
		pr_respond_error(req, 400, "invalid_request", "id",
				 "id: a push job id (a positive integer)");
		return;
	}
	call = pr_api_call_new(s, req, PR_STORE_PUSH_RETRY, 200);
	if (!call)
		return;
	call->job.item_id = (int64_t)id;
	call->finish = retry_finish;
	pr_api_call_submit(call);
}

static void retry_pushes(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;
	char state[32];
	long long limit = 0;
	int has;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	if ((has = query_text(req, "state", state, sizeof(state))) < 0 ||
	    query_int(req, "limit", 1, 1000, &limit) < 0)
		return;
	if (!has || strcmp(state, "dead") != 0) {
		pr_respond_error(req, 400, "invalid_request", "state",
				 "state: required, dead");
		return;
	}
	call = pr_api_call_new(s, req, PR_STORE_RETRY_DEAD, 200);
	if (!call)
		return;
	call->job.limit = (long)limit;
	call->finish = retry_finish;
	pr_api_call_submit(call);
}

/* ---- devices ------------------------------------------------------------- */

/* The app named by ?app=, or the only one configured; NULL when the
 * request has been answered (400). */
static const char *device_app(struct pr_request *req, struct pr_server *s)
{
	const struct pr_app_config *app;
	char name[80];
	int has = query_text(req, "app", name, sizeof(name));

	if (has < 0)
		return NULL;
	app = pr_api_app(req, s, has ? name : NULL);
	return app ? app->name : NULL;
}

static void devices_finish(struct pr_api_call *call)
{
	json_t *r = call->job.result;

	pr_respond_json(call->req, 200,
			json_pack("{s:O}", "devices", r ? r : json_array()));
}

static void list_devices(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;
	const char *app;
	char user[1025];
	int has_user;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	if ((has_user = query_text(req, "user", user, sizeof(user))) < 0)
		return;
	if (!has_user) {
		pr_respond_error(req, 400, "invalid_request", "user",
				 "user: required");
		return;
	}
	app = device_app(req, s);
	if (!app)
		return;
	call = pr_api_call_new(s, req, PR_STORE_DEVICE_LIST, 200);
	if (!call)
		return;
	call->finish = devices_finish;
	call->job.app = app;
	call->job.user = pr_api_call_keep(call, user);
	if (!call->job.user) {
		pr_respond_error(req, 500, "internal", NULL, "out of memory");
		pr_api_call_free(call);
		return;
	}
	call->job.limit = 1000;
	pr_api_call_submit(call);
}

static void device_deleted(struct pr_api_call *call)
{
	pr_respond_json(call->req, 200,
			json_pack("{s:s, s:b}", "device_id",
				  call->job.device_id, "deleted", 1));
}

static void delete_device(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_api_call *call;
	const char *app;

	if (!pr_auth_require(s->auth, req, PR_SCOPE_ADMIN))
		return;
	app = device_app(req, s);
	if (!app)
		return;
	call = pr_api_call_new(s, req, PR_STORE_DEVICE_DELETE, 200);
	if (!call)
		return;
	call->finish = device_deleted;
	call->job.app = app;
	call->job.device_id = pr_api_call_keep(call, req->params[0]);
	if (!call->job.device_id) {
		pr_respond_error(req, 500, "internal", NULL, "out of memory");
		pr_api_call_free(call);
		return;
	}
	pr_api_call_submit(call);
}

int pr_api_admin_register(struct pr_server *s)
{
	const unsigned both = PR_ROUTE_PUBLIC | PR_ROUTE_ADMIN;
	int rv = 0;

	rv |= pr_router_add(s->router, "GET", "/v1/admin/keys", list_keys, s,
			    both);
	rv |= pr_router_add(s->router, "POST", "/v1/admin/keys", create_key, s,
			    both);
	rv |= pr_router_add(s->router, "DELETE", "/v1/admin/keys/{key}",
			    revoke_key, s, both);
	rv |= pr_router_add(s->router, "GET", "/v1/admin/providers",
			    provider_stats, s, both);
	rv |=
	    pr_router_add(s->router, "POST", "/v1/admin/providers/{name}/pause",
			  pause_provider, s, both);
	rv |= pr_router_add(s->router, "POST",
			    "/v1/admin/providers/{name}/resume",
			    resume_provider, s, both);
	rv |= pr_router_add(s->router, "GET", "/v1/admin/stats", admin_stats, s,
			    both);
	rv |= pr_router_add(s->router, "GET", "/v1/admin/messages",
			    list_messages, s, both);
	rv |= pr_router_add(s->router, "GET", "/v1/admin/messages/{id}",
			    show_message, s, both);
	rv |= pr_router_add(s->router, "DELETE", "/v1/admin/messages/{id}",
			    purge_message, s, both);
	rv |= pr_router_add(s->router, "POST", "/v1/admin/pushes/{id}/retry",
			    retry_push, s, both);
	rv |= pr_router_add(s->router, "POST", "/v1/admin/pushes/retry",
			    retry_pushes, s, both);
	rv |= pr_router_add(s->router, "GET", "/v1/admin/devices", list_devices,
			    s, both);
	rv |= pr_router_add(s->router, "DELETE", "/v1/admin/devices/{id}",
			    delete_device, s, both);
	return rv ? PR_ERR_NOMEM : PR_OK;
}

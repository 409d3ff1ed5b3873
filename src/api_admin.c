/*
 * api_admin.c - GET/POST /v1/admin/keys and DELETE /v1/admin/keys/{key}.
 * Served on the admin listener (a 0600 Unix socket needs no key) and to
 * admin-scope keys elsewhere. A new key is returned once, in the answer
 * to POST; only its SHA-256 is stored, and the in-memory key cache is
 * updated after the store has committed the change.
 */
#include "autoconf.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_admin.h"
#include "auth.h"
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
	n = pause ? pr_dispatch_pause(s->dispatch, name,
				      has_app ? app : NULL, "paused by an admin")
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
	pr_respond_json(req, 200,
			json_pack("{s:o}", "providers",
				  (json_t *)pr_dispatch_stats_json(s->dispatch)));
}

int pr_api_admin_register(struct pr_server *s)
{
	const unsigned both = PR_ROUTE_PUBLIC | PR_ROUTE_ADMIN;
	int rv = 0;

	rv |= pr_router_add(s->router, "GET", "/v1/admin/keys", list_keys, s,
			    both);
	rv |= pr_router_add(s->router, "POST", "/v1/admin/keys", create_key,
			    s, both);
	rv |= pr_router_add(s->router, "DELETE", "/v1/admin/keys/{key}",
			    revoke_key, s, both);
	rv |= pr_router_add(s->router, "GET", "/v1/admin/providers",
			    provider_stats, s, both);
	rv |= pr_router_add(s->router, "POST",
			    "/v1/admin/providers/{name}/pause", pause_provider,
			    s, both);
	rv |= pr_router_add(s->router, "POST",
			    "/v1/admin/providers/{name}/resume",
			    resume_provider, s, both);
	return rv ? PR_ERR_NOMEM : PR_OK;
}

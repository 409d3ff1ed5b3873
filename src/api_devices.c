/*
 * api_devices.c - PUT/DELETE /v1/devices/{id}, GET /v1/users/{user}/devices
 * and GET /v1/invalid-tokens?after=. Chat servers call these with an
 * ingest key. A token registered again under another device or user
 * moves there (the store clears it from its old owner).
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_devices.h"
#include "auth.h"
#include "client_auth.h"
#include "inbox.h"
#include "config.h"
#include "http.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"
#include "store.h"

#define MAX_TOKEN 4096

static int check_token(const char *platform, const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > MAX_TOKEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (strcmp(platform, "apns") == 0 ? !isxdigit(c)
						  : (c <= 0x20 || c >= 0x7f))
			return 0;
	}
	/* APNs tokens are hex bytes: an even number of digits. */
	return strcmp(platform, "apns") != 0 || n % 2 == 0;
}

static void put_finish(struct pr_api_call *call)
{
	json_t *r = call->job.result;
	int created = json_is_true(json_object_get(r, "created"));

	/* Messages kept for a user without devices just reached this one. */
	if (json_integer_value(json_object_get(r, "backlog")) > 0)
		pr_inbox_wake(call->server->inbox, call->job.device.app,
			      call->job.device.user);
	pr_respond_json(call->req, created ? 201 : 200,
			r ? json_incref(r) : json_object());
}

static void put_device(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	size_t max_id = (size_t)s->cfg->ingest_max_id_bytes;
	const struct pr_app_config *app;
	const char *user, *platform, *token, *env = "production", *k;
	struct pr_api_call *call;
	struct pr_client cl;
	int as_client = pr_client_auth_is_token(req);
	json_t *doc, *v;

	/* A chat server (ingest key) registers anyone; an app (client
	 * token) only its own user and device. */
	if (as_client ? !pr_client_auth(s, req, 0, &cl)
		      : !pr_auth_require(s->auth, req, PR_SCOPE_INGEST))
		return;
	if (as_client && strcmp(cl.device, req->params[0]) != 0) {
		pr_respond_error(req, 403, "forbidden", "device_id",
				 "a client token may register only its own "
				 "device");
		return;
	}
	if (strlen(req->params[0]) > max_id) {
		pr_respond_error(req, 400, "invalid_device", "device_id",
				 "device_id: at most %zu bytes", max_id);
		return;
	}
	doc = pr_api_body(req);
	if (!doc)
		return;
	json_object_foreach(doc, k, v)
	{
		if (strcmp(k, "user") && strcmp(k, "platform") &&
		    strcmp(k, "token") && strcmp(k, "environment") &&
		    strcmp(k, "app")) {
			pr_respond_error(req, 400, "invalid_device", k,
					 "%.64s: unknown field", k);
			goto out;
		}
	}
	user = pr_api_text(json_object_get(doc, "user"), max_id);
	if (!user) {
		pr_respond_error(req, 400, "invalid_device", "user",
				 "user: required, a string of 1..%zu bytes",
				 max_id);
		goto out;
	}
	platform = json_string_value(json_object_get(doc, "platform"));
	if (!platform ||
	    (strcmp(platform, "apns") != 0 && strcmp(platform, "fcm") != 0)) {
		pr_respond_error(req, 400, "invalid_device", "platform",
				 "platform: required, apns or fcm");
		goto out;
	}
	token = json_string_value(json_object_get(doc, "token"));
	if (!token || !check_token(platform, token)) {
		pr_respond_error(req, 400, "invalid_device", "token",
				 "token: required; %s",
				 strcmp(platform, "apns") == 0
				     ? "APNs tokens are hexadecimal"
				     : "FCM tokens are printable ASCII "
				       "without spaces");
		goto out;
	}
	v = json_object_get(doc, "environment");
	if (v) {
		env = json_string_value(v);
		if (!env || (strcmp(env, "production") != 0 &&
			     strcmp(env, "sandbox") != 0)) {
			pr_respond_error(req, 400, "invalid_device",
					 "environment",
					 "environment: production or sandbox");
			goto out;
		}
	}
	v = json_object_get(doc, "app");
	if (v && !json_is_string(v)) {
		pr_respond_error(req, 400, "invalid_device", "app",
				 "app: must be a string");
		goto out;
	}
	app = pr_api_app(req, s, json_string_value(v));
	if (!app)
		goto out;
	if (as_client && (strcmp(cl.user, user) != 0 || cl.app != app)) {
		pr_respond_error(req, 403, "forbidden", "user",
				 "a client token may register only its own "
				 "user, in its own app");
		goto out;
	}
	call = pr_api_call_new(s, req, PR_STORE_DEVICE_PUT, 200);
	if (!call)
		goto out;
	call->hold = doc; /* user, platform, token, env point into it */
	call->finish = put_finish;
	call->job.device.app = app->name;
	call->job.device.device_id = pr_api_call_keep(call, req->params[0]);
	call->job.device.user = user;
	call->job.device.platform = platform;
	call->job.device.token = token;
	call->job.device.environment = env;
	call->job.device.now = call->job.now;
	pr_api_call_submit(call);
	return;
out:
	json_decref(doc);
}

static void delete_finish(struct pr_api_call *call)
{
	pr_respond_json(call->req, 200,
			json_pack("{s:s, s:b}", "device_id",
				  call->job.device_id, "deleted", 1));
}

/*
 * The common start of the key-authenticated device endpoints: the ingest
 * key, the app (?app= or the only one), and a store call for op with
 * job.app set. NULL when the request has been answered already.
 */
static struct pr_api_call *begin(struct pr_request *req, struct pr_server *s,
				 int op)
{
	const struct pr_app_config *app;
	struct pr_api_call *call;
	char name[80];

	if (!pr_auth_require(s->auth, req, PR_SCOPE_INGEST))
		return NULL;
	app = pr_api_app(
	    req, s,
	    pr_request_query(req, "app", name, sizeof(name)) > 0 ? name : NULL);
	if (!app)
		return NULL;
	call = pr_api_call_new(s, req, op, 200);
	if (call)
		call->job.app = app->name;
	return call;
}

static void delete_device(struct pr_request *req, void *arg)
{
	struct pr_api_call *call = begin(req, arg, PR_STORE_DEVICE_DELETE);

	if (!call)
		return;
	call->finish = delete_finish;
	call->job.device_id = pr_api_call_keep(call, req->params[0]);
	pr_api_call_submit(call);
}

static void list_finish(struct pr_api_call *call)
{
	json_t *r = call->job.result;

	pr_respond_json(call->req, 200,
			json_pack("{s:O}", "devices", r ? r : json_array()));
}

static void list_devices(struct pr_request *req, void *arg)
{
	struct pr_api_call *call = begin(req, arg, PR_STORE_DEVICE_LIST);

	if (!call)
		return;
	call->finish = list_finish;
	call->job.user = pr_api_call_keep(call, req->params[0]);
	call->job.limit = 1000;
	pr_api_call_submit(call);
}

/* Parse an optional non-negative integer query parameter. */
static int query_long(struct pr_request *req, const char *key, long lo, long hi,
		      long *out)
{
	char v[32], *end;
	long n;
	int len = pr_request_query(req, key, v, sizeof(v));

	if (len == -1)
		return 0;
	if (len <= 0)
		goto bad;
	n = strtol(v, &end, 10);
	if (*end || n < lo || n > hi)
		goto bad;
	*out = n;
	return 0;
bad:
	pr_respond_error(req, 400, "invalid_request", key,
			 "%s: an integer %ld..%ld", key, lo, hi);
	return -1;
}

static void invalid_tokens(struct pr_request *req, void *arg)
{
	struct pr_api_call *call = begin(req, arg, PR_STORE_INVALID_TOKENS);
	long after = 0, limit = 100;

	if (!call)
		return;
	if (query_long(req, "after", 0, 0x7fffffffffffffffL, &after) ||
	    query_long(req, "limit", 1, 1000, &limit)) {
		pr_api_call_free(call);
		return;
	}
	call->job.after = after;
	call->job.limit = limit;
	pr_api_call_submit(call);
}

int pr_api_devices_register(struct pr_server *s)
{
	int rv = 0;

	rv |= pr_router_add(s->router, "PUT", "/v1/devices/{id}", put_device, s,
			    PR_ROUTE_PUBLIC);
	rv |= pr_router_add(s->router, "DELETE", "/v1/devices/{id}",
			    delete_device, s, PR_ROUTE_PUBLIC);
	rv |= pr_router_add(s->router, "GET", "/v1/users/{user}/devices",
			    list_devices, s, PR_ROUTE_PUBLIC);
	rv |= pr_router_add(s->router, "GET", "/v1/invalid-tokens",
			    invalid_tokens, s, PR_ROUTE_PUBLIC);
	return rv ? PR_ERR_NOMEM : PR_OK;
}

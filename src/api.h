/*
 * api.h - helpers every JSON endpoint shares: reading a JSON body,
 * checking strings from outside, and turning a store job's outcome into
 * the right status (202/200, 429, 503 with Retry-After).
 */
#ifndef PR_API_H
#define PR_API_H

#include <jansson.h>
#include <stddef.h>

#include "store.h"

struct pr_request;

/* Max nesting of any JSON document we accept from outside. */
#define PR_API_MAX_DEPTH 32

/*
 * Parse req's body as a JSON object. Answers 415 (a Content-Type that is
 * not JSON), 400 (malformed, not an object, nested deeper than
 * PR_API_MAX_DEPTH: then "field" names the top-level member, and "index"
 * the element when that member is an array of objects, as a batch's
 * "events" is) and returns NULL; or returns the document (the caller owns
 * it). Nesting is checked before parsing, so no input makes the parser
 * recurse deeper than PR_API_MAX_DEPTH containers (plus the scalar inside
 * the deepest one).
 */
json_t *pr_api_body(struct pr_request *req);

/* Is v a string of 1..max bytes with no control characters? Returns its
 * value, or NULL. */
const char *pr_api_text(json_t *v, size_t max);

/* Depth of a JSON value (a scalar is 1). Stops counting past limit. */
int pr_api_depth(json_t *v, int limit);

/*
 * Answer a failed store job: PR_ERR_LIMIT → 429 queue_full, PR_ERR_BUSY
 * → 503 overloaded, PR_ERR_NOTFOUND → 404, PR_ERR_INVAL → 400 with the
 * job's reason, anything else → 503 storage_unavailable. Every 429/503
 * carries Retry-After.
 */
void pr_api_store_error(struct pr_request *req, int rv, const char *reason);

struct pr_app_config;
struct pr_server;
/* The app a request names (a ?app= value or a body field, or NULL for
 * none): NULL means the only app configured. Answers 400 naming "app"
 * and returns NULL when there is no such app or several to choose from. */
const struct pr_app_config *pr_api_app(struct pr_request *req,
				       struct pr_server *s, const char *name);

/* Format unix seconds as RFC 3339 UTC ("2026-11-27T16:00:00Z"). */
void pr_api_time(long long t, char out[32]);

/*
 * One store round trip for a request: the handler makes a call, fills
 * call->job's inputs (strings it passes must be kept with
 * pr_api_call_keep, because the request may go away before the store is
 * done), and submits. On completion the request (if still there) gets
 * ok_status with the job's result (or {} when there is none), or the
 * store's error; `finish`, when set, answers instead.
 */
struct pr_api_call {
	struct pr_request *req; /* NULL once the client went away */
	struct pr_server *server;
	struct pr_store_job job;
	int ok_status;
	json_t *hold; /* a document job strings point into; released after */
	char *own[8];
	size_t n_own;
	void (*finish)(struct pr_api_call *call);
	void *data; /* for finish */
};

struct pr_api_call *pr_api_call_new(struct pr_server *s, struct pr_request *req,
				    int op, int ok_status);
/* A copy of s that lives as long as the call; NULL when out of room. */
const char *pr_api_call_keep(struct pr_api_call *call, const char *s);
/* Submit and defer req; on failure answer and free the call. */
void pr_api_call_submit(struct pr_api_call *call);
void pr_api_call_free(struct pr_api_call *call);
#endif

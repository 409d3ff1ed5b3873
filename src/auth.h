/*
 * auth.h - API keys for chat servers and admins. A key is shown once when
 * it is made; the store keeps only its SHA-256. The loop keeps the live
 * keys' digests in memory (sorted, looked up by digest and confirmed with
 * a constant-time compare), so checking a request costs one hash and no
 * store round trip. Scopes are separate: an ingest key is refused on
 * admin endpoints and an admin key on ingest endpoints.
 *
 * Admin endpoints are also open without a key on an admin Unix socket,
 * whose file mode (0600 by default) is the access control.
 */
#ifndef PR_AUTH_H
#define PR_AUTH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct pr_request;
struct pr_auth;

enum pr_scope {
	PR_SCOPE_INGEST = 1,
	PR_SCOPE_ADMIN = 2,
};

#define PR_KEY_LEN	  47 /* "prk_" + 43 base64url characters */
#define PR_KEY_PREFIX_LEN 12
#define PR_AUTH_HARD_MAX  1000000 /* keys the cache will ever hold */

struct pr_auth *pr_auth_new(size_t max_keys);
void pr_auth_free(struct pr_auth *a);

/* Replace the cache with the store's KEY_LOAD result
 * ([{"id","scope","hash"}]). 0 or PR_ERR_INVAL / PR_ERR_LIMIT. */
int pr_auth_load(struct pr_auth *a, json_t *keys);
/* Add or drop one live key (after the store committed the change). */
int pr_auth_add(struct pr_auth *a, int64_t id, enum pr_scope scope,
		const unsigned char hash[32]);
void pr_auth_remove(struct pr_auth *a, int64_t id);
size_t pr_auth_count(const struct pr_auth *a);

/* A fresh random key (NUL-terminated, PR_KEY_LEN chars), its digest and
 * its display prefix. 0 or PR_ERR_IO when no randomness is available. */
int pr_auth_key_generate(char key[PR_KEY_LEN + 1], unsigned char hash[32],
			 char prefix[PR_KEY_PREFIX_LEN + 1]);
void pr_auth_hash(const char *key, size_t len, unsigned char out[32]);
int pr_scope_parse(const char *s); /* -1 when unknown */
const char *pr_scope_name(enum pr_scope scope);

/*
 * Check that req may act with `scope`. Returns 1 when it may; otherwise
 * answers the request (401 without a usable key, 403 with a key of the
 * wrong scope) and returns 0.
 */
int pr_auth_require(struct pr_auth *a, struct pr_request *req,
		    enum pr_scope scope);

/*
 * Keys used since the last call: fills ids/times (up to max) with the
 * ids and last-use times to record, clears their dirty marks, returns
 * how many.
 */
size_t pr_auth_take_used(struct pr_auth *a, int64_t *ids, int64_t *times,
			 size_t max);

#endif

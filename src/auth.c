/*
 * auth.c - the API-key cache and the bearer check. See auth.h.
 */
#include "autoconf.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "auth.h"
#include "conn.h"
#include "http.h"
#include "listener.h"
#include "pushrelay.h"
#include "router.h"

struct key_entry {
	unsigned char hash[32];
	int64_t id;
	enum pr_scope scope;
	int64_t last_used;
	int dirty;
};

struct pr_auth {
	struct key_entry *keys; /* sorted by hash */
	size_t n, max;
};

struct pr_auth *pr_auth_new(size_t max_keys)
{
	struct pr_auth *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->max = max_keys ? max_keys : 1;
	a->keys = calloc(a->max, sizeof(*a->keys));
	if (!a->keys) {
		free(a);
		return NULL;
	}
	return a;
}

void pr_auth_free(struct pr_auth *a)
{
	if (!a)
		return;
	if (a->n)
		OPENSSL_cleanse(a->keys, a->n * sizeof(*a->keys));
	free(a->keys);
	free(a);
}

size_t pr_auth_count(const struct pr_auth *a)
{
	return a->n;
}

int pr_scope_parse(const char *s)
{
	if (strcmp(s, "ingest") == 0)
		return PR_SCOPE_INGEST;
	if (strcmp(s, "admin") == 0)
		return PR_SCOPE_ADMIN;
	return -1;
}

const char *pr_scope_name(enum pr_scope scope)
{
	return scope == PR_SCOPE_ADMIN ? "admin" : "ingest";
}

/* Index of the first entry whose hash is >= h. */
static size_t lower_bound(const struct pr_auth *a, const unsigned char *h)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(a->keys[mid].hash, h, 32) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int pr_auth_add(struct pr_auth *a, int64_t id, enum pr_scope scope,
		const unsigned char hash[32])
{
	size_t at;

	if (a->n >= a->max) {
		/* The store enforces [admin] max_api_keys when keys are made;
		 * the cache holds whatever the store has (a lowered limit
		 * must not stop the daemon from starting). */
		size_t cap = a->max * 2;
		struct key_entry *k;

		if (cap > PR_AUTH_HARD_MAX)
			return PR_ERR_LIMIT;
		k = realloc(a->keys, cap * sizeof(*k));
		if (!k)
			return PR_ERR_NOMEM;
		a->keys = k;
		a->max = cap;
	}
	at = lower_bound(a, hash);
	if (at < a->n && memcmp(a->keys[at].hash, hash, 32) == 0)
		return PR_OK;
	memmove(&a->keys[at + 1], &a->keys[at], (a->n - at) * sizeof(*a->keys));
	memset(&a->keys[at], 0, sizeof(a->keys[at]));
	memcpy(a->keys[at].hash, hash, 32);
	a->keys[at].id = id;
	a->keys[at].scope = scope;
	a->n++;
	return PR_OK;
}

void pr_auth_remove(struct pr_auth *a, int64_t id)
{
	for (size_t i = 0; i < a->n; i++) {
		if (a->keys[i].id != id)
			continue;
		memmove(&a->keys[i], &a->keys[i + 1],
			(a->n - i - 1) * sizeof(*a->keys));
		a->n--;
		OPENSSL_cleanse(&a->keys[a->n], sizeof(a->keys[a->n]));
		return;
	}
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;

		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return PR_ERR_INVAL;
		}
		out[i] = (unsigned char)v;
	}
	return s[2 * n] == '\0' ? PR_OK : PR_ERR_INVAL;
}

int pr_auth_load(struct pr_auth *a, json_t *keys)
{
	size_t i;
	json_t *k;

	if (a->n)
		OPENSSL_cleanse(a->keys, a->n * sizeof(*a->keys));
	a->n = 0;
	json_array_foreach(keys, i, k)
	{
		const char *hex = json_string_value(json_object_get(k, "hash"));
		const char *scope =
		    json_string_value(json_object_get(k, "scope"));
		unsigned char h[32];
		int sc, rv;

		sc = scope ? pr_scope_parse(scope) : -1;
		if (!hex || sc < 0 || strlen(hex) != 64 || unhex(hex, h, 32))
			return PR_ERR_INVAL;
		rv = pr_auth_add(
		    a, (int64_t)json_integer_value(json_object_get(k, "id")),
		    (enum pr_scope)sc, h);
		if (rv)
			return rv;
	}
	return PR_OK;
}

void pr_auth_hash(const char *key, size_t len, unsigned char out[32])
{
	SHA256((const unsigned char *)key, len, out);
}

int pr_auth_key_generate(char key[PR_KEY_LEN + 1], unsigned char hash[32],
			 char prefix[PR_KEY_PREFIX_LEN + 1])
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789-_";
	unsigned char raw[33];
	size_t o = 4;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return PR_ERR_IO;
	memcpy(key, "prk_", 4);
	/* 43 characters of base64url: 258 bits, the first 256 random. */
	for (size_t i = 0; i < 43; i++) {
		size_t bit = i * 6;
		unsigned v = ((unsigned)raw[bit / 8] << 8 |
			      (unsigned)raw[bit / 8 + 1]) >>
			     (10 - bit % 8);

		key[o++] = b64[v & 63];
	}
	key[o] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	pr_auth_hash(key, PR_KEY_LEN, hash);
	memcpy(prefix, key, PR_KEY_PREFIX_LEN);
	prefix[PR_KEY_PREFIX_LEN] = '\0';
	return PR_OK;
}

/* A request on an admin Unix socket: the socket's mode is the check.
 * (Decided when the connection was accepted: listeners are closed and
 * freed at the start of a drain, connections live on.) */
static int trusted_admin_socket(const struct pr_request *req)
{
	return (req->conn->listen_flags & PR_ROUTE_ADMIN) &&
	       req->conn->admin_socket;
}

/* The bearer credential of req, or NULL. */
static const char *bearer(const struct pr_request *req, size_t *len)
{
	const char *v = pr_request_header(req, "authorization");

	if (!v || strncasecmp(v, "Bearer ", 7) != 0)
		return NULL;
	v += 7;
	while (*v == ' ')
		v++;
	*len = strlen(v);
	while (*len && v[*len - 1] == ' ')
		(*len)--;
	return *len ? v : NULL;
}

int pr_auth_require(struct pr_auth *a, struct pr_request *req,
		    enum pr_scope scope)
{
	unsigned char h[32];
	struct key_entry *e;
	const char *key;
	size_t len, at;

	if (scope == PR_SCOPE_ADMIN && trusted_admin_socket(req))
		return 1;
	key = bearer(req, &len);
	if (!key) {
		pr_response_header(req, "WWW-Authenticate", "Bearer");
		pr_respond_error(req, 401, "unauthorized", NULL,
				 "an API key is required (Authorization: "
				 "Bearer <key>)");
		return 0;
	}
	/* Hash whatever was presented: the time taken does not depend on
	 * how much of it matches a real key. */
	pr_auth_hash(key, len, h);
	at = lower_bound(a, h);
	e = at < a->n ? &a->keys[at] : NULL;
	if (!e || CRYPTO_memcmp(e->hash, h, 32) != 0) {
		pr_response_header(req, "WWW-Authenticate",
				   "Bearer error=\"invalid_token\"");
		pr_respond_error(req, 401, "unauthorized", NULL,
				 "the API key is not valid");
		return 0;
	}
	if (e->scope != scope) {
		pr_respond_error(req, 403, "forbidden", NULL,
				 "this endpoint needs a key with scope %s",
				 pr_scope_name(scope));
		return 0;
	}
	e->last_used = (int64_t)time(NULL);
	e->dirty = 1;
	return 1;
}

size_t pr_auth_take_used(struct pr_auth *a, int64_t *ids, int64_t *times,
			 size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n && n < max; i++) {
		if (!a->keys[i].dirty)
			continue;
		ids[n] = a->keys[i].id;
		times[n] = a->keys[i].last_used;
		a->keys[i].dirty = 0;
		n++;
	}
	return n;
}

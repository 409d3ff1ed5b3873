/*
 * client_auth.c - HS256 client tokens. See client_auth.h.
 */
#include "autoconf.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_auth.h"
#include "config.h"
#include "http.h"
#include "pushrelay.h"
#include "server.h"

#define MAX_TOKEN 4096
#define MAX_PART  2048

/* base64url (no padding) decode; returns the length or -1. */
static long b64url(const char *s, size_t n, unsigned char *out, size_t cap)
{
	unsigned v = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i], x;

		if (c >= 'A' && c <= 'Z')
			x = c - 'A';
		else if (c >= 'a' && c <= 'z')
			x = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			x = c - '0' + 52;
		else if (c == '-')
			x = 62;
		else if (c == '_')
			x = 63;
		else
			return -1;
		v = (v << 6) | (unsigned)x;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(v >> bits);
			v &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero padding of a canonical encoding. */
	if (bits >= 6 || v != 0)
		return -1;
	return (long)o;
}

static json_t *part_json(const char *s, size_t n)
{
	unsigned char buf[MAX_PART];
	long len = b64url(s, n, buf, sizeof(buf));

	if (len <= 0)
		return NULL;
	return json_loadb((const char *)buf, (size_t)len,
			  JSON_REJECT_DUPLICATES, NULL);
}

static int fail(char *why, size_t whylen, const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return PR_ERR_INVAL;
}

static int id_ok(json_t *v, size_t max)
{
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;

	if (!s || n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int pr_client_token_verify(const struct pr_server *s, const char *token,
			   time_t now, struct pr_client *out, char *why,
			   size_t whylen)
{
	const struct pr_config *cfg = s->cfg;
	const struct pr_app_config *app = NULL;
	const char *d1, *d2, *alg, *name;
	unsigned char sig[64], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	json_t *hdr = NULL, *claims = NULL, *v;
	size_t len = strlen(token), max_id;
	long siglen, leeway = cfg->inbox_token_leeway;
	int rv = PR_ERR_INVAL;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > MAX_TOKEN)
		return fail(why, whylen, "malformed token");
	d1 = strchr(token, '.');
	d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return fail(why, whylen, "malformed token");
	hdr = part_json(token, (size_t)(d1 - token));
	claims = part_json(d1 + 1, (size_t)(d2 - d1 - 1));
	if (!json_is_object(hdr) || !json_is_object(claims)) {
		fail(why, whylen, "malformed token");
		goto out;
	}
	/* Pinned: exactly HS256. "none", RS256 (key confusion) and the rest
	 * are refused before any key is touched. */
	alg = json_string_value(json_object_get(hdr, "alg"));
	if (!alg || strcmp(alg, "HS256") != 0) {
		fail(why, whylen, "token algorithm must be HS256");
		goto out;
	}
	v = json_object_get(hdr, "typ");
	if ((v && (!json_is_string(v) ||
		   strcasecmp(json_string_value(v), "JWT") != 0)) ||
	    json_object_get(hdr, "crit")) {
		fail(why, whylen, "unsupported token header");
		goto out;
	}
	/* Which app's secret: the "app" claim, or the only app. */
	v = json_object_get(claims, "app");
	if (v) {
		name = json_string_value(v);
		app = name ? pr_config_app(cfg, name) : NULL;
	} else if (cfg->n_apps == 1) {
		app = &cfg->apps[0];
	}
	if (!app || !app->client_token_secret || !*app->client_token_secret) {
		fail(why, whylen,
		     v ? "unknown app or no client tokens for it"
		       : "token has no app claim");
		goto out;
	}
	siglen = b64url(d2 + 1, strlen(d2 + 1), sig, sizeof(sig));
	if (!HMAC(EVP_sha256(), app->client_token_secret,
		  (int)strlen(app->client_token_secret),
		  (const unsigned char *)token, (size_t)(d2 - token), mac,
		  &maclen) ||
	    siglen != (long)maclen || CRYPTO_memcmp(sig, mac, maclen) != 0) {
		fail(why, whylen, "bad token signature");
		goto out;
	}
	v = json_object_get(claims, "exp");
	if (!json_is_integer(v)) {
		fail(why, whylen, "token has no exp");
		goto out;
	}
	out->exp = (int64_t)json_integer_value(v);
	if ((int64_t)now > out->exp + leeway) {
		fail(why, whylen, "token expired");
		goto out;
	}
	v = json_object_get(claims, "nbf");
	if (v && (!json_is_integer(v) ||
		  (int64_t)now + leeway < (int64_t)json_integer_value(v))) {
		fail(why, whylen, "token not valid yet");
		goto out;
	}
	max_id = (size_t)cfg->ingest_max_id_bytes;
	if (max_id > PR_CLIENT_ID_MAX)
		max_id = PR_CLIENT_ID_MAX;
	if (!id_ok(json_object_get(claims, "sub"), max_id) ||
	    !id_ok(json_object_get(claims, "device"), max_id)) {
		fail(why, whylen, "token needs sub and device claims");
		goto out;
	}
	snprintf(out->user, sizeof(out->user), "%s",
		 json_string_value(json_object_get(claims, "sub")));
	snprintf(out->device, sizeof(out->device), "%s",
		 json_string_value(json_object_get(claims, "device")));
	out->app = app;
	rv = PR_OK;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	json_decref(hdr);
	json_decref(claims);
	return rv;
}

static const char *bearer(const struct pr_request *req)
{
	const char *v = pr_request_header(req, "authorization");

	if (!v || strncasecmp(v, "Bearer ", 7) != 0)
		return NULL;
	v += 7;
	while (*v == ' ')
		v++;
	return *v ? v : NULL;
}

int pr_client_auth_is_token(const struct pr_request *req)
{
	const char *b = bearer(req);

	return b && strncmp(b, "prk_", 4) != 0 && strchr(b, '.');
}

int pr_client_auth(struct pr_server *s, struct pr_request *req, int query_ok,
		   struct pr_client *out)
{
	char qtok[MAX_TOKEN + 1], why[128];
	const char *tok = bearer(req);
	int rv;

	if (!tok && query_ok &&
	    pr_request_query(req, "access_token", qtok, sizeof(qtok)) > 0)
		tok = qtok;
	if (!tok) {
		pr_response_header(req, "WWW-Authenticate", "Bearer");
		pr_respond_error(req, 401, "unauthorized", NULL,
				 "a client token is required "
				 "(Authorization: Bearer <JWT>)");
		return 0;
	}
	rv = pr_client_token_verify(s, tok, time(NULL), out, why, sizeof(why));
	OPENSSL_cleanse(qtok, sizeof(qtok));
	if (rv) {
		pr_response_header(req, "WWW-Authenticate",
				   "Bearer error=\"invalid_token\"");
		pr_respond_error(req, 401, "unauthorized", NULL, "%s", why);
		return 0;
	}
	return 1;
}

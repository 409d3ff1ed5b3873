/*
 * apns.c - the Apple Push Notification service provider (HTTP/2 API).
 *
 * One instance per app. It turns a push into POST /3/device/<token> with
 * the apns-* headers and a JSON payload of at most 4096 bytes, and reads
 * APNs' answer ({"reason": ...}, 410 with a millisecond "timestamp") into
 * a verdict (PROTOCOLS.md 1.2-1.6).
 *
 * Token auth: the instance holds the .p8 key and ONE provider JWT that
 * every connection and request of the app shares. Apple wants it
 * refreshed no more than once every 20 minutes and no less than once an
 * hour; we mint on first use, again when it is env->jwt_refresh seconds
 * old, and after a 403 ExpiredProviderToken at the next build - but never
 * within 20 minutes of the last mint, since changing it faster earns
 * 429 TooManyProviderTokenUpdates, after which we keep the token we have.
 *
 * Certificate auth: the instance only remembers the files; the
 * dispatcher hands them to libcurl through client_cert().
 *
 * Instances are used from the event loop thread only: no locking.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "apns_internal.h"
#include "config.h"
#include "jwt.h"
#include "provider.h"
#include "pushrelay.h"
#include "store.h"
#include "tls.h"

#define DEFAULT_URL	    "https://api.push.apple.com"
#define DEFAULT_SANDBOX_URL "https://api.sandbox.push.apple.com"

/* Apple: no more than one new token per 20 minutes, none older than 60. */
#define JWT_MIN_AGE 1200
#define JWT_MAX_AGE 3600

#define MAX_TOKEN_CHARS 512   /* Apple: don't assume a size; bound it */
#define MAX_COLLAPSE_ID 64    /* bytes, else 400 BadCollapseId */
#define MAX_ERROR_BODY	4096  /* APNs error bodies are tiny */
#define MAX_CERT_FILE	65536 /* client certificate / PKCS#12 file */

struct apns {
	char *app;
	char *topic;
	char *url;
	char *sandbox_url;
	char *ca_file;

	/* Token auth. */
	EVP_PKEY *key;
	char *key_id;
	char *team_id;
	long jwt_refresh;
	char *jwt;
	int64_t minted_at; /* iat of jwt */
	long mints;
	int refresh_wanted; /* ExpiredProviderToken seen for the current jwt */

	/* Certificate auth. */
	char *cert;
	char *cert_key;
	char *cert_password;
	const char *cert_type; /* "PEM" | "P12" */
};

static int is_set(const char *s)
{
	return s && *s;
}

/* Copy an optional config string: NULL when unset. */
static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!is_set(src))
		return PR_OK;
	*dst = strdup(src);
	return *dst ? PR_OK : PR_ERR_NOMEM;
}

static int dup_url(char **dst, const char *src, const char *def)
{
	size_t n;

	*dst = strdup(is_set(src) ? src : def);
	if (!*dst)
		return PR_ERR_NOMEM;
	n = strlen(*dst);
	while (n > 0 && (*dst)[n - 1] == '/')
		(*dst)[--n] = '\0';
	return PR_OK;
}

static int all_alnum(const char *s, size_t maxlen)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]))
			return 0;
	return n > 0 && n <= maxlen;
}

/* Header-safe: printable ASCII without spaces. */
static int header_token(const char *s, size_t maxlen)
{
	size_t n = 0;

	for (; s[n]; n++)
		if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return 0;
	return n > 0 && n <= maxlen;
}

static int ends_with_ci(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static void apns_destroy(void *inst)
{
	struct apns *a = inst;

	if (!a)
		return;
	free(a->app);
	free(a->topic);
	free(a->url);
	free(a->sandbox_url);
	free(a->ca_file);
	EVP_PKEY_free(a->key);
	free(a->key_id);
	free(a->team_id);
	pr_jwt_free_secret(a->jwt);
	free(a->cert);
	free(a->cert_key);
	pr_jwt_free_secret(a->cert_password);
	free(a);
}

/*
 * Certificate auth: check now what libcurl would only find out at the
 * first handshake. The certificate must parse (with its password for
 * PKCS#12) and the file holding the private key must be private.
 */
static int check_cert(struct apns *a, const char *app, char *err, size_t errlen)
{
	const char *keyfile = a->cert_key ? a->cert_key : a->cert;
	char inner[256];
	struct stat st;
	FILE *fp = NULL;
	int rv = PR_ERR_CONFIG;

	if (pr_tls_check_private_file(keyfile, inner, sizeof(inner))) {
		snprintf(err, errlen, "app \"%s\": apns client key: %s", app,
			 inner);
		return PR_ERR_CONFIG;
	}
	fp = fopen(a->cert, "rb");
	if (!fp || fstat(fileno(fp), &st) != 0) {
		snprintf(err, errlen, "app \"%s\": apns_cert_file %s: %s", app,
			 a->cert, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_CERT_FILE) {
		snprintf(err, errlen,
			 "app \"%s\": apns_cert_file %s: not a regular file "
			 "of at most %d bytes",
			 app, a->cert, MAX_CERT_FILE);
		goto out;
	}
	if (strcmp(a->cert_type, "P12") == 0) {
		PKCS12 *p12 = d2i_PKCS12_fp(fp, NULL);
		EVP_PKEY *pkey = NULL;
		X509 *x = NULL;
		int ok =
		    p12 &&
		    PKCS12_parse(p12, a->cert_password, &pkey, &x, NULL) == 1 &&
		    pkey && x;

		EVP_PKEY_free(pkey);
		X509_free(x);
		PKCS12_free(p12);
		if (!ok) {
			snprintf(err, errlen,
				 "app \"%s\": apns_cert_file %s: cannot read "
				 "the PKCS#12 certificate and key (wrong "
				 "apns_cert_password?)",
				 app, a->cert);
			goto out;
		}
	} else {
		X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);

		X509_free(x);
		if (!x) {
			snprintf(err, errlen,
				 "app \"%s\": apns_cert_file %s: no PEM "
				 "certificate in it",
				 app, a->cert);
			goto out;
		}
	}
	rv = PR_OK;
out:
	ERR_clear_error();
	if (fp)
		fclose(fp);
	return rv;
}

static int apns_create(void **inst, const struct pr_app_config *app,
		       const struct pr_provider_env *env, char *err,
		       size_t errlen)
{
	const char *name = app && app->name ? app->name : "?";
	struct apns *a = NULL;
	char inner[256];
	int token_auth, rv;

	*inst = NULL;
	if (!app ||
	    (!is_set(app->apns_key_file) && !is_set(app->apns_cert_file)))
		return PR_ERR_NOTFOUND;
	token_auth = is_set(app->apns_key_file);
	if (token_auth && is_set(app->apns_cert_file)) {
		snprintf(err, errlen,
			 "app \"%s\": set apns_key_file (token auth) or "
			 "apns_cert_file (certificate auth), not both",
			 name);
		return PR_ERR_CONFIG;
	}
	if (!is_set(app->apns_topic) || !header_token(app->apns_topic, 255)) {
		snprintf(err, errlen,
			 "app \"%s\": apns_topic (the app's bundle id) is "
			 "required",
			 name);
		return PR_ERR_CONFIG;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return PR_ERR_NOMEM;
	rv = PR_ERR_NOMEM;
	if (dup_opt(&a->app, name) || dup_opt(&a->topic, app->apns_topic) ||
	    dup_url(&a->url, app->apns_url, DEFAULT_URL) ||
	    dup_url(&a->sandbox_url, app->apns_sandbox_url,
		    DEFAULT_SANDBOX_URL) ||
	    dup_opt(&a->ca_file, app->ca_file))
		goto fail;

	if (token_auth) {
		rv = PR_ERR_CONFIG;
		if (!is_set(app->apns_key_id) ||
		    !all_alnum(app->apns_key_id, 32) ||
		    !is_set(app->apns_team_id) ||
		    !all_alnum(app->apns_team_id, 32)) {
			snprintf(err, errlen,
				 "app \"%s\": token auth needs apns_key_id "
				 "and apns_team_id (10 letters and digits "
				 "each)",
				 name);
			goto fail;
		}
		a->key = pr_jwt_key_load_file(app->apns_key_file, PR_JWT_ES256,
					      inner, sizeof(inner));
		if (!a->key) {
			snprintf(err, errlen, "app \"%s\": apns_key_file %s",
				 name, inner);
			goto fail;
		}
		rv = PR_ERR_NOMEM;
		if (dup_opt(&a->key_id, app->apns_key_id) ||
		    dup_opt(&a->team_id, app->apns_team_id))
			goto fail;
		a->jwt_refresh = env ? env->jwt_refresh : 3000;
		if (a->jwt_refresh < JWT_MIN_AGE)
			a->jwt_refresh = JWT_MIN_AGE;
		if (a->jwt_refresh > JWT_MAX_AGE)
			a->jwt_refresh = JWT_MAX_AGE;
	} else {
		rv = PR_ERR_NOMEM;
		if (dup_opt(&a->cert, app->apns_cert_file) ||
		    dup_opt(&a->cert_key, app->apns_cert_key_file) ||
		    dup_opt(&a->cert_password, app->apns_cert_password))
			goto fail;
		a->cert_type = ends_with_ci(a->cert, ".p12") ||
				       ends_with_ci(a->cert, ".pfx")
				   ? "P12"
				   : "PEM";
		rv = check_cert(a, name, err, errlen);
		if (rv)
			goto fail;
	}
	*inst = a;
	return PR_OK;
fail:
	if (rv == PR_ERR_NOMEM)
		snprintf(err, errlen, "app \"%s\": apns: out of memory", name);
	apns_destroy(a);
	return rv;
}

/* Sign a fresh provider JWT: {"alg":"ES256","kid":KEY} {"iss":TEAM,
 * "iat":now}. */
static int mint_jwt(struct apns *a, time_t now)
{
	json_t *h = json_pack("{s:s, s:s}", "alg", "ES256", "kid", a->key_id);
	json_t *c =
	    json_pack("{s:s, s:I}", "iss", a->team_id, "iat", (json_int_t)now);
	char *jwt = NULL;
	int rv = PR_ERR_NOMEM;

	if (h && c)
		rv = pr_jwt_sign(a->key, PR_JWT_ES256, h, c, &jwt);
	json_decref(h);
	json_decref(c);
	if (rv)
		return rv;
	pr_jwt_free_secret(a->jwt);
	a->jwt = jwt;
	a->minted_at = (int64_t)now;
	a->mints++;
	a->refresh_wanted = 0;
	return PR_OK;
}

/* The JWT to send now, minting one when the rules above say so. */
static int current_jwt(struct apns *a, time_t now)
{
	int64_t age;

	if (!a->jwt)
		return mint_jwt(a, now);
	/* The clock went backwards: count the token's age from now, so a
	 * step back never leaves us holding it for longer than the usual
	 * schedule (nor minting early). */
	if ((int64_t)now < a->minted_at)
		a->minted_at = (int64_t)now;
	age = (int64_t)now - a->minted_at;
	if (age >= a->jwt_refresh || (a->refresh_wanted && age >= JWT_MIN_AGE))
		return mint_jwt(a, now);
	return PR_OK;
}

long pr_apns_jwt_mints(void *inst)
{
	return inst ? ((struct apns *)inst)->mints : 0;
}

/* Put a string member of the event's push object into obj under key. */
static int copy_string(json_t *obj, const char *key, json_t *push,
		       const char *field)
{
	json_t *v = json_object_get(push, field);

	if (!json_is_string(v))
		return 0;
	return json_object_set(obj, key, v);
}

static json_t *build_payload(const struct pr_push *push, json_t *ev,
			     json_t **alert_out)
{
	json_t *root = json_object(), *aps = json_object(), *alert = NULL;
	int bad = !root || !aps;

	*alert_out = NULL;
	if (!bad && push->mode == PR_PUSH_ALERT) {
		json_t *badge = json_object_get(ev, "badge");

		alert = json_object();
		bad = !alert;
		bad = bad || copy_string(alert, "title", ev, "title");
		bad = bad || copy_string(alert, "body", ev, "body");
		bad = bad || json_object_set(aps, "alert", alert);
		bad = bad || copy_string(aps, "sound", ev, "sound");
		if (json_is_string(badge) &&
		    strcmp(json_string_value(badge), "unread") == 0)
			bad = bad ||
			      json_object_set_new(
				  aps, "badge",
				  json_integer(push->unread > 0 ? push->unread
								: 0));
		else if (json_is_integer(badge) &&
			 json_integer_value(badge) >= 0)
			bad = bad || json_object_set(aps, "badge", badge);
		bad = bad || copy_string(aps, "thread-id", ev, "thread_id");
		bad = bad || copy_string(aps, "category", ev, "category");
		/* Lets the app's notification service extension fetch the
		 * message from the inbox and rewrite the alert. */
		bad = bad || json_object_set_new(aps, "mutable-content",
						 json_integer(1));
	} else if (!bad) {
		bad = json_object_set_new(aps, "content-available",
					  json_integer(1));
	}
	bad = bad || json_object_set(root, "aps", aps);
	bad = bad || json_object_set_new(
			 root, "message_id",
			 json_string(push->message_id ? push->message_id : ""));
	bad = bad || json_object_set_new(root, "seq",
					 json_integer((json_int_t)push->seq));
	json_decref(aps);
	if (bad) {
		json_decref(alert);
		json_decref(root);
		return NULL;
	}
	*alert_out = alert; /* borrowed by the caller until root goes */
	json_decref(alert);
	return root;
}

/* 8-4-4-4-12 lowercase hex, as APNs wants apns-id. */
static int canonical_uuid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]) ||
			   isupper((unsigned char)s[i])) {
			return 0;
		}
	}
	return s[36] == '\0';
}

static int apns_build(void *inst, const struct pr_push *push, time_t now,
		      struct pr_http_request *out, char *err, size_t errlen)
{
	static const char *const shrink[] = {"body", "title"};
	struct apns *a = inst;
	json_t *ev = NULL, *root = NULL, *alert = NULL, *v;
	const char *base, *prio_s;
	int alert_mode = push->mode == PR_PUSH_ALERT, priority, rv;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (push->mode != PR_PUSH_ALERT && push->mode != PR_PUSH_WAKEUP) {
		snprintf(err, errlen, "push mode none sends no push");
		return PR_ERR_INVAL;
	}
	if (!push->token || !all_alnum(push->token, MAX_TOKEN_CHARS)) {
		snprintf(err, errlen, "device token is not a hex string");
		return PR_ERR_INVAL;
	}
	if (push->push_json) {
		ev = json_loads(push->push_json, 0, NULL);
		if (!json_is_object(ev)) {
			snprintf(err, errlen, "push object is not JSON");
			rv = PR_ERR_INVAL;
			goto fail;
		}
	}

	rv = PR_ERR_NOMEM;
	root = build_payload(push, ev, &alert);
	if (!root)
		goto fail;
	rv = pr_jwt_fit_json(root, alert, shrink, alert ? 2 : 0,
			     PR_APNS_MAX_PAYLOAD, &out->body, &len);
	if (rv == PR_ERR_LIMIT) {
		snprintf(err, errlen,
			 "payload exceeds %d bytes even without title and "
			 "body",
			 PR_APNS_MAX_PAYLOAD);
		goto fail;
	}
	if (rv)
		goto fail;
	out->body_len = len;
	out->method = "POST";

	base = push->environment && strcmp(push->environment, "sandbox") == 0
		   ? a->sandbox_url
		   : a->url;
	len = strlen(base) + strlen("/3/device/") + strlen(push->token) + 1;
	rv = PR_ERR_NOMEM;
	out->url = malloc(len);
	if (!out->url)
		goto fail;
	snprintf(out->url, len, "%s/3/device/%s", base, push->token);

	if (a->key) {
		rv = current_jwt(a, now);
		if (rv) {
			snprintf(err, errlen, "cannot sign the APNs JWT: %s",
				 pr_strerror(rv));
			goto fail;
		}
		rv = pr_http_request_header(out, "authorization: bearer %s",
					    a->jwt);
		if (rv)
			goto fail;
	}
	prio_s = json_string_value(json_object_get(ev, "priority"));
	/* Background pushes must be priority 5: 10 is an error. */
	priority =
	    alert_mode && !(prio_s && strcmp(prio_s, "normal") == 0) ? 10 : 5;
	rv = pr_http_request_header(out, "apns-push-type: %s",
				    alert_mode ? "alert" : "background");
	rv = rv ? rv : pr_http_request_header(out, "apns-topic: %s", a->topic);
	rv = rv ? rv
		: pr_http_request_header(out, "apns-priority: %d", priority);
	rv = rv ? rv
		: pr_http_request_header(out, "apns-expiration: %" PRId64,
					 push->expires_at > 0 ? push->expires_at
							      : 0);
	if (rv)
		goto fail;
	/* Checked at ingest too; a bad one here is dropped, not sent. */
	v = json_object_get(ev, "collapse_id");
	if (json_is_string(v) &&
	    header_token(json_string_value(v), MAX_COLLAPSE_ID)) {
		rv = pr_http_request_header(out, "apns-collapse-id: %s",
					    json_string_value(v));
		if (rv)
			goto fail;
	}
	if (push->apns_id && canonical_uuid(push->apns_id)) {
		rv = pr_http_request_header(out, "apns-id: %s", push->apns_id);
		if (rv)
			goto fail;
	}
	json_decref(root);
	json_decref(ev);
	return PR_OK;
fail:
	if (rv == PR_ERR_NOMEM)
		snprintf(err, errlen, "out of memory building the request");
	else if (rv == PR_ERR_LIMIT && out->body)
		snprintf(err, errlen, "too many request headers");
	json_decref(root);
	json_decref(ev);
	pr_http_request_cleanup(out);
	return rv;
}

struct reason_row {
	long status; /* 0 = any status */
	const char *reason;
	enum pr_outcome outcome;
};

/* PROTOCOLS.md 1.5 and 4.1. Rows are looked up by (status, reason);
 * anything not listed falls back to the status alone (see below). */
static const struct reason_row reasons[] = {
    {400, "BadDeviceToken", PR_OUTCOME_INVALID_TOKEN},
    {400, "DeviceTokenNotForTopic", PR_OUTCOME_INVALID_TOKEN},
    {400, "TopicDisallowed", PR_OUTCOME_AUTH},
    {400, "BadTopic", PR_OUTCOME_AUTH},
    {400, "IdleTimeout", PR_OUTCOME_RETRY},
    {403, "ExpiredProviderToken", PR_OUTCOME_REAUTH},
    /* The key does not match the one this connection first used: only
     * a new connection helps, so retry (the dispatcher should reopen
     * on this reason). */
    {403, "UnrelatedKeyIdInToken", PR_OUTCOME_RETRY},
    {429, "TooManyProviderTokenUpdates", PR_OUTCOME_RETRY},
    {429, "TooManyRequests", PR_OUTCOME_RETRY},
};

static enum pr_outcome by_status(long status)
{
	if (status == 410)
		return PR_OUTCOME_INVALID_TOKEN;
	/* BadCertificate, BadCertificateEnvironment, InvalidProviderToken,
	 * MissingProviderToken, BadEnvironmentKeyIdInToken, Forbidden and
	 * any 403 Apple may add: credentials or config, pause. */
	if (status == 403)
		return PR_OUTCOME_AUTH;
	if (status == 429 || status >= 500)
		return PR_OUTCOME_RETRY;
	/* Other 400s (BadCollapseId, BadExpirationDate, BadMessageId,
	 * BadPriority, DuplicateHeaders, InvalidPushType, MissingDeviceToken,
	 * MissingTopic, PayloadEmpty), 404 BadPath, 405, 413: this push
	 * cannot be sent as built. */
	return PR_OUTCOME_REJECTED;
}

static void apns_classify(void *inst, const struct pr_push *push,
			  const struct pr_http_response *resp, time_t now,
			  struct pr_push_verdict *v)
{
	struct apns *a = inst;
	const char *reason = NULL;
	json_t *body = NULL;

	memset(v, 0, sizeof(*v));
	v->retry_after = resp->retry_after >= 0 ? resp->retry_after : -1;
	if (resp->status == 0) {
		v->outcome = PR_OUTCOME_RETRY;
		pr_jwt_copy_printable(v->reason, sizeof(v->reason),
				      resp->transport ? resp->transport
						      : "transport");
		return;
	}
	if (resp->status == 200) {
		v->outcome = PR_OUTCOME_SENT;
		pr_jwt_copy_printable(v->provider_id, sizeof(v->provider_id),
				      resp->apns_id ? resp->apns_id
						    : push->apns_id);
		return;
	}
	/* The body is untrusted: parse only a small one. */
	if (resp->body && resp->body_len > 0 &&
	    resp->body_len <= MAX_ERROR_BODY)
		body = json_loadb(resp->body, resp->body_len, 0, NULL);
	reason = json_string_value(json_object_get(body, "reason"));
	if (reason)
		pr_jwt_copy_printable(v->reason, sizeof(v->reason), reason);
	else
		snprintf(v->reason, sizeof(v->reason), "http_%ld",
			 resp->status);

	v->outcome = by_status(resp->status);
	for (size_t i = 0; reason && i < PR_ARRAY_SIZE(reasons); i++) {
		if (reasons[i].status == resp->status &&
		    strcmp(reasons[i].reason, reason) == 0) {
			v->outcome = reasons[i].outcome;
			break;
		}
	}

	if (resp->status == 410) {
		json_t *ts = json_object_get(body, "timestamp");

		if (json_is_integer(ts) && json_integer_value(ts) > 0)
			v->invalid_since = (int64_t)json_integer_value(ts);
		else if (json_is_real(ts) && json_real_value(ts) > 0 &&
			 json_real_value(ts) < 9e15)
			v->invalid_since = (int64_t)json_real_value(ts);
	}

	if (v->outcome == PR_OUTCOME_REAUTH) {
		if (!a || !a->key) {
			/* Certificate auth has no token to refresh. */
			v->outcome = PR_OUTCOME_AUTH;
		} else if (a->jwt && (double)a->minted_at <=
					 (double)now - resp->latency) {
			/* Only when the request carried the token we hold
			 * now: a late answer to an older one says nothing
			 * about it. current_jwt() still waits for 20 min. */
			a->refresh_wanted = 1;
		}
	}
	if (reason && strcmp(reason, "TooManyProviderTokenUpdates") == 0 && a) {
		/* Apple saw our token change too fast: keep this one until
		 * the regular schedule replaces it. */
		a->refresh_wanted = 0;
	}
	json_decref(body);
}

static void apns_client_cert(void *inst, const char **cert, const char **key,
			     const char **type, const char **password)
{
	struct apns *a = inst;

	*cert = a ? a->cert : NULL;
	*key = a && a->cert ? a->cert_key : NULL;
	*type = a && a->cert ? a->cert_type : NULL;
	*password = a && a->cert ? a->cert_password : NULL;
}

static const char *apns_ca_file(void *inst)
{
	struct apns *a = inst;

	return a ? a->ca_file : NULL;
}

static int apns_needs_auth(void *inst, time_t now)
{
	(void)inst;
	(void)now;
	return 0; /* the JWT is minted inside build() */
}

const struct pr_provider_ops pr_apns_provider = {
    .name = "apns",
    .create = apns_create,
    .destroy = apns_destroy,
    .needs_auth = apns_needs_auth,
    .build_auth = NULL,
    .handle_auth = NULL,
    .build = apns_build,
    .classify = apns_classify,
    .client_cert = apns_client_cert,
    .ca_file = apns_ca_file,
};

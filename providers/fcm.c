/*
 * fcm.c - the Firebase Cloud Messaging HTTP v1 provider.
 *
 * One instance per app, built from the app's service-account JSON. It
 * holds ONE OAuth2 access token for every send of the project: the
 * dispatcher asks needs_auth() before building, and when it says so sends
 * the request build_auth() makes (an RS256-signed JWT assertion for the
 * token endpoint, PROTOCOLS.md 2.3) and hands the answer to
 * handle_auth(), one at a time. A push becomes
 * POST {fcm_url}/v1/projects/{project}/messages:send; the answer is read
 * by the FcmError errorCode, falling back to the HTTP status (2.4).
 *
 * Instances are used from the event loop thread only: no locking.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "config.h"
#include "jwt.h"
#include "provider.h"
#include "pushrelay.h"
#include "store.h"
#include "tls.h"

#define DEFAULT_URL "https://fcm.googleapis.com"
#define FCM_SCOPE   "https://www.googleapis.com/auth/firebase.messaging"
#define GRANT_PREFIX                                                           \
	"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"     \
	"&assertion="
#define FCM_ERROR_TYPE "type.googleapis.com/google.firebase.fcm.v1.FcmError"
#define BAD_REQ_TYPE   "type.googleapis.com/google.rpc.BadRequest"

#define MAX_PAYLOAD	 4096  /* bytes of JSON we send */
#define MAX_CREDENTIALS	 65536 /* service-account JSON file */
#define MAX_RESPONSE	 65536 /* response bodies we parse */
#define MAX_ACCESS_TOKEN 4096
#define MAX_TOKEN_CHARS	 4096	 /* FCM registration token */
#define MAX_TTL		 2419200 /* 4 weeks, FCM's maximum */
#define ASSERTION_LIFE	 3600	 /* Google's maximum */
#define DEFAULT_LIFETIME 3600	 /* when the token answer has no expires_in */
#define QUOTA_MIN_RETRY	 60	 /* Google: at least a minute on quota */

struct fcm {
	char *app;
	char *project_id;
	char *client_email;
	char *key_id; /* private_key_id, NULL when absent */
	char *token_url;
	char *send_url;
	char *ca_file;
	EVP_PKEY *key;
	long margin;

	char *access_token; /* NULL until handle_auth succeeds */
	uint64_t token_gen; /* counts the access tokens fetched */
	int64_t token_expires;
	long token_lifetime;
};

static int is_set(const char *s)
{
	return s && *s;
}

static void fcm_destroy(void *inst)
{
	struct fcm *f = inst;

	if (!f)
		return;
	free(f->app);
	free(f->project_id);
	free(f->client_email);
	free(f->key_id);
	free(f->token_url);
	free(f->send_url);
	free(f->ca_file);
	EVP_PKEY_free(f->key);
	pr_jwt_free_secret(f->access_token);
	free(f);
}

/* Read a private file of at most max bytes into a NUL-terminated heap
 * buffer; the caller wipes and frees it. */
static char *read_private(const char *path, size_t max, size_t *len, char *err,
			  size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	if (pr_tls_check_private_file(path, err, errlen))
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (size_t)st.st_size > max) {
		snprintf(err, errlen, "%s: not a regular file of 1..%zu bytes",
			 path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", path,
				 n < 0 ? strerror(errno) : "short read");
			OPENSSL_cleanse(buf, got);
			free(buf);
			buf = NULL;
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
out:
	if (fd >= 0)
		close(fd);
	return buf;
}

/* A non-empty string member, or NULL. */
static const char *member(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s && *s ? s : NULL;
}

static int project_id_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr("-.:", s[n]))
			return 0;
	return n > 0 && n <= 128;
}

static int http_url(const char *s)
{
	return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
}

static char *join(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s%s%s", a, b, c);
	return s;
}

static int fcm_create(void **inst, const struct pr_app_config *app,
		      const struct pr_provider_env *env, char *err,
		      size_t errlen)
{
	const char *name = app && app->name ? app->name : "?";
	const char *path, *type, *pid, *pk, *email, *turi, *kid, *tu;
	struct fcm *f = NULL;
	json_t *sa = NULL;
	char inner[256], what[300], *buf = NULL, *base = NULL;
	size_t len = 0, n;
	int rv = PR_ERR_CONFIG;

	*inst = NULL;
	if (!app || !is_set(app->fcm_credentials))
		return PR_ERR_NOTFOUND;
	path = app->fcm_credentials;
	buf = read_private(path, MAX_CREDENTIALS, &len, inner, sizeof(inner));
	if (!buf) {
		snprintf(err, errlen, "app \"%s\": fcm_credentials %s", name,
			 inner);
		return PR_ERR_CONFIG;
	}
	sa = json_loadb(buf, len, 0, NULL);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (!json_is_object(sa)) {
		snprintf(err, errlen,
			 "app \"%s\": fcm_credentials %s: not a JSON object",
			 name, path);
		goto fail;
	}
	type = member(sa, "type");
	pid = member(sa, "project_id");
	pk = member(sa, "private_key");
	email = member(sa, "client_email");
	turi = member(sa, "token_uri");
	kid = member(sa, "private_key_id");
	if (!type || strcmp(type, "service_account") != 0 || !pid || !pk ||
	    !email || !turi) {
		snprintf(err, errlen,
			 "app \"%s\": fcm_credentials %s: not a service "
			 "account key (need type \"service_account\", "
			 "project_id, private_key, client_email, token_uri)",
			 name, path);
		goto fail;
	}
	if (!project_id_ok(pid)) {
		snprintf(err, errlen,
			 "app \"%s\": fcm_credentials %s: bad project_id", name,
			 path);
		goto fail;
	}
	tu = is_set(app->fcm_token_url) ? app->fcm_token_url : turi;
	if (!http_url(tu) || strpbrk(tu, " \t\r\n")) {
		snprintf(err, errlen,
			 "app \"%s\": fcm_credentials %s: token URL is not "
			 "an http(s) URL",
			 name, path);
		goto fail;
	}
	rv = PR_ERR_NOMEM;
	f = calloc(1, sizeof(*f));
	if (!f)
		goto fail;
	snprintf(what, sizeof(what), "%s: private_key", path);
	f->key = pr_jwt_key_load_pem(pk, strlen(pk), PR_JWT_RS256, what, inner,
				     sizeof(inner));
	if (!f->key) {
		snprintf(err, errlen, "app \"%s\": fcm_credentials %s", name,
			 inner);
		rv = PR_ERR_CONFIG;
		goto fail;
	}
	base = strdup(is_set(app->fcm_url) ? app->fcm_url : DEFAULT_URL);
	if (!base)
		goto fail;
	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		base[--n] = '\0';
	f->app = strdup(name);
	f->project_id = strdup(pid);
	f->client_email = strdup(email);
	f->key_id = kid ? strdup(kid) : NULL;
	f->token_url = strdup(tu);
	f->ca_file = is_set(app->ca_file) ? strdup(app->ca_file) : NULL;
	{
		char *mid = join("/v1/projects/", pid, "/messages:send");

		f->send_url = mid ? join(base, mid, "") : NULL;
		free(mid);
	}
	if (!f->app || !f->project_id || !f->client_email ||
	    (kid && !f->key_id) || !f->token_url || !f->send_url ||
	    (is_set(app->ca_file) && !f->ca_file))
		goto fail;
	f->margin = env ? env->oauth_margin : 300;
	if (f->margin < 0)
		f->margin = 0;
	rv = PR_OK;
fail:
	free(base);
	if (json_is_object(sa)) {
		/* Wipe our copy of the key text; jansson owns the buffer
		 * and it is writable. */
		json_t *k = json_object_get(sa, "private_key");

		if (json_is_string(k))
			OPENSSL_cleanse((char *)json_string_value(k),
					json_string_length(k));
	}
	json_decref(sa);
	if (rv) {
		if (rv == PR_ERR_NOMEM)
			snprintf(err, errlen, "app \"%s\": fcm: out of memory",
				 name);
		fcm_destroy(f);
		return rv;
	}
	*inst = f;
	return PR_OK;
}

/* Refresh ahead of expiry, but never so early that a short-lived token
 * would be re-fetched the moment it arrives. */
static int fcm_needs_auth(void *inst, time_t now)
{
	struct fcm *f = inst;
	long margin = f->margin;

	if (!f->access_token)
		return 1;
	if (margin > f->token_lifetime / 2)
		margin = f->token_lifetime / 2;
	return (int64_t)now + margin >= f->token_expires;
}

static int fcm_build_auth(void *inst, time_t now, struct pr_http_request *out)
{
	struct fcm *f = inst;
	json_t *h, *c;
	char *jwt = NULL;
	size_t plen = strlen(GRANT_PREFIX), jlen;
	int rv = PR_ERR_NOMEM;

	memset(out, 0, sizeof(*out));
	h = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	if (h && f->key_id &&
	    json_object_set_new(h, "kid", json_string(f->key_id)))
		goto out;
	c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", f->client_email,
		      "scope", FCM_SCOPE, "aud", f->token_url, "iat",
		      (json_int_t)now, "exp", (json_int_t)now + ASSERTION_LIFE);
	if (h && c)
		rv = pr_jwt_sign(f->key, PR_JWT_RS256, h, c, &jwt);
	json_decref(c);
	if (rv)
		goto out;
	/* The assertion is base64url and dots: nothing to form-encode. */
	rv = PR_ERR_NOMEM;
	jlen = strlen(jwt);
	out->body = malloc(plen + jlen + 1);
	out->url = strdup(f->token_url);
	if (!out->body || !out->url)
		goto out;
	memcpy(out->body, GRANT_PREFIX, plen);
	memcpy(out->body + plen, jwt, jlen + 1);
	out->body_len = plen + jlen;
	out->method = "POST";
	rv = pr_http_request_header(
	    out, "content-type: application/x-www-form-urlencoded");
	if (!rv)
		rv = pr_http_request_header(out, "accept: application/json");
out:
	json_decref(h);
	pr_jwt_free_secret(jwt);
	if (rv)
		pr_http_request_cleanup(out);
	return rv;
}

/* Token-endpoint answers are untrusted: parse only a bounded body. */
static json_t *parse_body(const struct pr_http_response *resp)
{
	if (!resp->body || resp->body_len == 0 || resp->body_len > MAX_RESPONSE)
		return NULL;
	return json_loadb(resp->body, resp->body_len, 0, NULL);
}

static int access_token_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return 0;
	return n > 0 && n <= MAX_ACCESS_TOKEN;
}

static int fcm_handle_auth(void *inst, time_t now,
			   const struct pr_http_response *resp, char *err,
			   size_t errlen)
{
	struct fcm *f = inst;
	json_t *body = NULL, *tok, *exp;
	char code[64], *copy;
	long lifetime = DEFAULT_LIFETIME;
	int rv;

	if (resp->status == 0) {
		pr_jwt_copy_printable(code, sizeof(code),
				      resp->transport ? resp->transport
						      : "transport failure");
		snprintf(err, errlen,
			 "app \"%s\": OAuth token request failed: %s", f->app,
			 code);
		return PR_ERR_BUSY;
	}
	body = parse_body(resp);
	if (resp->status != 200) {
		/* OAuth's {"error":"invalid_grant",...}; only the code is
		 * repeated: descriptions may quote what we sent. */
		json_t *e = json_object_get(body, "error");
		const char *s = json_string_value(e);

		if (!s)
			s = json_string_value(json_object_get(e, "status"));
		pr_jwt_copy_printable(code, sizeof(code),
				      s ? s : "no error code");
		snprintf(err, errlen,
			 "app \"%s\": OAuth token request failed: HTTP %ld %s",
			 f->app, resp->status, code);
		rv = resp->status == 429 || resp->status >= 500 ? PR_ERR_BUSY
								: PR_ERR_CONFIG;
		goto out;
	}
	rv = PR_ERR_PROTO;
	tok = json_object_get(body, "access_token");
	if (!json_is_string(tok) || !access_token_ok(json_string_value(tok))) {
		snprintf(err, errlen,
			 "app \"%s\": OAuth token answer has no usable "
			 "access_token",
			 f->app);
		goto out;
	}
	exp = json_object_get(body, "expires_in");
	if (exp) {
		if (!json_is_integer(exp) || json_integer_value(exp) <= 0 ||
		    json_integer_value(exp) > 86400 * 7) {
			snprintf(err, errlen,
				 "app \"%s\": OAuth token answer has a bad "
				 "expires_in",
				 f->app);
			goto out;
		}
		lifetime = (long)json_integer_value(exp);
	}
	rv = PR_ERR_NOMEM;
	copy = strdup(json_string_value(tok));
	if (!copy) {
		snprintf(err, errlen, "app \"%s\": out of memory", f->app);
		goto out;
	}
	pr_jwt_free_secret(f->access_token);
	f->access_token = copy;
	f->token_gen++;
	f->token_expires = (int64_t)now + lifetime;
	f->token_lifetime = lifetime;
	rv = PR_OK;
out:
	tok = json_object_get(body, "access_token");
	if (json_is_string(tok))
		OPENSSL_cleanse((char *)json_string_value(tok),
				json_string_length(tok));
	json_decref(body);
	return rv;
}

static int set_str(json_t *obj, const char *key, const char *val)
{
	return json_object_set_new(obj, key, json_string(val ? val : ""));
}

static int fcm_build(void *inst, const struct pr_push *push, time_t now,
		     struct pr_http_request *out, char *err, size_t errlen)
{
	static const char *const shrink[] = {"body", "title"};
	struct fcm *f = inst;
	json_t *ev = NULL, *root = NULL, *msg, *data, *android, *notif = NULL;
	const char *prio, *s;
	char seq[32], ttl[32];
	int alert_mode = push->mode == PR_PUSH_ALERT, rv, bad;
	int64_t t;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (push->mode != PR_PUSH_ALERT && push->mode != PR_PUSH_WAKEUP) {
		snprintf(err, errlen, "push mode none sends no push");
		return PR_ERR_INVAL;
	}
	if (!f->access_token || (int64_t)now >= f->token_expires) {
		snprintf(err, errlen, "no OAuth access token yet");
		return PR_ERR_BUSY;
	}
	if (!push->token || !*push->token ||
	    strlen(push->token) > MAX_TOKEN_CHARS) {
		snprintf(err, errlen, "device token is empty or too long");
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
	root = json_object();
	msg = json_object();
	data = json_object();
	android = json_object();
	bad = !root || !msg || !data || !android;
	bad = bad || json_object_set(root, "message", msg);
	bad = bad || set_str(msg, "token", push->token);
	/* data values must be strings (else 400 INVALID_ARGUMENT). */
	snprintf(seq, sizeof(seq), "%" PRId64, push->seq);
	bad = bad || set_str(data, "message_id", push->message_id);
	bad = bad || set_str(data, "seq", seq);
	bad = bad || set_str(data, "mode", alert_mode ? "alert" : "wakeup");
	bad = bad || json_object_set(msg, "data", data);
	/*
	 * HIGH for alerts and for wakeups alike: a wakeup is a data-only
	 * message, and data messages default to NORMAL, which does not wake
	 * a dozing device - the app would not fetch its inbox until the
	 * user opens it. An event that asks for "normal" gets NORMAL.
	 */
	prio = json_string_value(json_object_get(ev, "priority"));
	bad = bad ||
	      set_str(android, "priority",
		      prio && strcmp(prio, "normal") == 0 ? "NORMAL" : "HIGH");
	t = push->expires_at - (int64_t)now;
	if (t < 0)
		t = 0;
	if (t > MAX_TTL)
		t = MAX_TTL;
	snprintf(ttl, sizeof(ttl), "%" PRId64 "s", t);
	bad = bad || set_str(android, "ttl", ttl);
	s = json_string_value(json_object_get(ev, "collapse_id"));
	if (s && *s)
		bad = bad || set_str(android, "collapse_key", s);
	bad = bad || json_object_set(msg, "android", android);
	if (!bad && alert_mode &&
	    (json_is_string(json_object_get(ev, "title")) ||
	     json_is_string(json_object_get(ev, "body")))) {
		notif = json_object();
		bad = !notif;
		if (!bad && json_is_string(json_object_get(ev, "title")))
			bad = json_object_set(notif, "title",
					      json_object_get(ev, "title"));
		if (!bad && json_is_string(json_object_get(ev, "body")))
			bad = json_object_set(notif, "body",
					      json_object_get(ev, "body"));
		bad = bad || json_object_set(msg, "notification", notif);
	}
	json_decref(msg);
	json_decref(data);
	json_decref(android);
	if (bad)
		goto fail;

	rv = pr_jwt_fit_json(root, notif, shrink, notif ? 2 : 0, MAX_PAYLOAD,
			     &out->body, &len);
	if (rv == PR_ERR_LIMIT) {
		snprintf(err, errlen,
			 "payload exceeds %d bytes even without title and "
			 "body",
			 MAX_PAYLOAD);
		goto fail;
	}
	if (rv)
		goto fail;
	out->body_len = len;
	out->method = "POST";
	rv = PR_ERR_NOMEM;
	out->url = strdup(f->send_url);
	if (!out->url)
		goto fail;
	rv = pr_http_request_header(out, "authorization: Bearer %s",
				    f->access_token);
	out->credential = f->token_gen;
	rv = rv ? rv
		: pr_http_request_header(out, "content-type: application/json");
	if (rv)
		goto fail;
	json_decref(notif);
	json_decref(root);
	json_decref(ev);
	return PR_OK;
fail:
	if (rv == PR_ERR_NOMEM)
		snprintf(err, errlen, "out of memory building the request");
	json_decref(notif);
	json_decref(root);
	json_decref(ev);
	pr_http_request_cleanup(out);
	return rv;
}

/* Is a 400 about the registration token rather than the message? */
static int about_token(json_t *error)
{
	const char *msg = json_string_value(json_object_get(error, "message"));
	json_t *details = json_object_get(error, "details"), *d;
	size_t i;

	json_array_foreach(details, i, d)
	{
		const char *type =
		    json_string_value(json_object_get(d, "@type"));
		json_t *fv = json_object_get(d, "fieldViolations"), *one;
		size_t j;

		if (!type || strcmp(type, BAD_REQ_TYPE) != 0)
			continue;
		json_array_foreach(fv, j, one)
		{
			const char *field =
			    json_string_value(json_object_get(one, "field"));

			if (field && strcmp(field, "message.token") == 0)
				return 1;
		}
	}
	/* "The registration token is not a valid FCM registration token" */
	if (msg) {
		for (const char *p = msg; *p; p++)
			if (strncasecmp(p, "registration token", 18) == 0)
				return 1;
	}
	return 0;
}

static const char *fcm_error_code(json_t *error)
{
	json_t *details = json_object_get(error, "details"), *d;
	size_t i;

	json_array_foreach(details, i, d)
	{
		const char *type =
		    json_string_value(json_object_get(d, "@type"));
		const char *code =
		    json_string_value(json_object_get(d, "errorCode"));

		if (type && code && strcmp(type, FCM_ERROR_TYPE) == 0)
			return code;
	}
	return NULL;
}

static enum pr_outcome by_status(long status, int token)
{
	switch (status) {
	case 400: return token ? PR_OUTCOME_INVALID_TOKEN : PR_OUTCOME_REJECTED;
	case 401: /* UNAUTHENTICATED: our access token was refused */
		return PR_OUTCOME_REAUTH;
	case 403: /* PERMISSION_DENIED: the account may not send */
		return PR_OUTCOME_AUTH;
	case 404:
		/* Without errorCode UNREGISTERED a 404 means a wrong URL or
		 * project: pausing is right; deleting every token is not. */
		return PR_OUTCOME_AUTH;
	case 429: return PR_OUTCOME_RETRY;
	}
	return status >= 500 ? PR_OUTCOME_RETRY : PR_OUTCOME_REJECTED;
}

static void fcm_classify(void *inst, const struct pr_push *push,
			 const struct pr_http_response *resp, time_t now,
			 struct pr_push_verdict *v)
{
	struct fcm *f = inst;
	json_t *body, *error;
	const char *code, *status;
	int token;

	(void)push;
	memset(v, 0, sizeof(*v));
	v->retry_after = resp->retry_after >= 0 ? resp->retry_after : -1;
	if (resp->status == 0) {
		v->outcome = PR_OUTCOME_RETRY;
		pr_jwt_copy_printable(v->reason, sizeof(v->reason),
				      resp->transport ? resp->transport
						      : "transport");
		return;
	}
	body = parse_body(resp);
	if (resp->status == 200) {
		v->outcome = PR_OUTCOME_SENT;
		pr_jwt_copy_printable(
		    v->provider_id, sizeof(v->provider_id),
		    json_string_value(json_object_get(body, "name")));
		json_decref(body);
		return;
	}
	error = json_object_get(body, "error");
	code = fcm_error_code(error);
	status = json_string_value(json_object_get(error, "status"));
	token = about_token(error);
	if (code)
		pr_jwt_copy_printable(v->reason, sizeof(v->reason), code);
	else if (status)
		pr_jwt_copy_printable(v->reason, sizeof(v->reason), status);
	else
		snprintf(v->reason, sizeof(v->reason), "http_%ld",
			 resp->status);

	v->outcome = by_status(resp->status, token);
	/* errorCode first; UNSPECIFIED_ERROR or none leaves the status. */
	if (!code)
		code = "UNSPECIFIED_ERROR";
	if (strcmp(code, "UNREGISTERED") == 0)
		v->outcome = PR_OUTCOME_INVALID_TOKEN;
	else if (strcmp(code, "INVALID_ARGUMENT") == 0)
		v->outcome =
		    token ? PR_OUTCOME_INVALID_TOKEN : PR_OUTCOME_REJECTED;
	else if (strcmp(code, "SENDER_ID_MISMATCH") == 0)
		/* The token was registered for another Firebase project:
		 * nothing we can change makes it deliverable for this app,
		 * and retrying only counts against us. It is the token that
		 * is wrong for this app (like APNs DeviceTokenNotForTopic),
		 * so drop it rather than pause the whole provider. */
		v->outcome = PR_OUTCOME_INVALID_TOKEN;
	else if (strcmp(code, "THIRD_PARTY_AUTH_ERROR") == 0)
		v->outcome = PR_OUTCOME_AUTH;
	else if (strcmp(code, "QUOTA_EXCEEDED") == 0 ||
		 strcmp(code, "UNAVAILABLE") == 0 ||
		 strcmp(code, "INTERNAL") == 0)
		v->outcome = PR_OUTCOME_RETRY;

	if ((resp->status == 429 || strcmp(code, "QUOTA_EXCEEDED") == 0) &&
	    v->retry_after < 0)
		v->retry_after = QUOTA_MIN_RETRY;
	if (v->outcome == PR_OUTCOME_REAUTH && f && f->access_token &&
	    resp->credential == f->token_gen) {
		/* Drop the token this request carried; one fetched since
		 * it was sent is left alone. */
		pr_jwt_free_secret(f->access_token);
		f->access_token = NULL;
	}
	json_decref(body);
}

static void fcm_client_cert(void *inst, const char **cert, const char **key,
			    const char **type, const char **password)
{
	(void)inst;
	*cert = *key = *type = *password = NULL;
}

static const char *fcm_ca_file(void *inst)
{
	struct fcm *f = inst;

	return f ? f->ca_file : NULL;
}

const struct pr_provider_ops pr_fcm_provider = {
    .name = "fcm",
    .create = fcm_create,
    .destroy = fcm_destroy,
    .needs_auth = fcm_needs_auth,
    .build_auth = fcm_build_auth,
    .handle_auth = fcm_handle_auth,
    .build = fcm_build,
    .classify = fcm_classify,
    .client_cert = fcm_client_cert,
    .ca_file = fcm_ca_file,
};

/*
 * fcm.c - FCM HTTP v1 sends (POST /v1/projects/<p>/messages:send) and the
 * Google OAuth 2.0 token endpoint they depend on (POST /token with a
 * jwt-bearer assertion), as PROTOCOLS.md section 2 describes them.
 *
 * The token endpoint verifies the RS256 assertion against the public half
 * of the --fcm-credentials key and hands out "ya29.mock-..." access tokens
 * that live --token-lifetime seconds; sends must carry one of those. The
 * last MOCK_MAX_TOKENS issued tokens are remembered (a ring).
 *
 * Errors use Google's shape: {"error":{"code","message","status","details"}}
 * where details hold a google.firebase.fcm.v1.FcmError {errorCode} for
 * FCM's own verdicts and a google.rpc.BadRequest {fieldViolations} for a
 * request that does not fit the Message schema.
 */
#include "autoconf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jwt.h"
#include "mock.h"

#define FCM_MAX_MESSAGE	      4096
#define FCM_MAX_TOPIC_MESSAGE 2048
#define FCM_MAX_TTL	      2419200 /* s, four weeks */
#define OAUTH_SKEW	      300     /* s either side of now for iat */
#define OAUTH_MAX_LIFETIME    3600    /* s between iat and exp */
#define GRANT_JWT	      "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define SCOPE_FCM	      "https://www.googleapis.com/auth/firebase.messaging"
#define SCOPE_CLOUD	      "https://www.googleapis.com/auth/cloud-platform"
#define FCM_ERROR_TYPE	      "type.googleapis.com/google.firebase.fcm.v1.FcmError"
#define BAD_REQUEST_TYPE      "type.googleapis.com/google.rpc.BadRequest"

static const char *canonical(int status)
{
	switch (status) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "UNAUTHENTICATED";
	case 403: return "PERMISSION_DENIED";
	case 404: return "NOT_FOUND";
	case 409: return "ABORTED";
	case 413: return "INVALID_ARGUMENT";
	case 429: return "RESOURCE_EXHAUSTED";
	case 500: return "INTERNAL";
	case 501: return "UNIMPLEMENTED";
	case 503: return "UNAVAILABLE";
	case 504: return "DEADLINE_EXCEEDED";
	default: return "UNKNOWN";
	}
}

/*
 * Answer with a Google error. fcm_code (may be NULL) becomes an FcmError
 * detail; violations (may be NULL, taken) a BadRequest detail.
 */
static void google_error(struct mock_stream *st, int status, const char *msg,
			 const char *fcm_code, json_t *violations,
			 long retry_after)
{
	json_t *details = json_array(), *err, *doc;
	nghttp2_nv nv[1];
	char ra[24], *text;
	size_t nnv = 0;

	if (fcm_code)
		json_array_append_new(
		    details, json_pack("{s:s, s:s}", "@type", FCM_ERROR_TYPE,
				       "errorCode", fcm_code));
	if (violations)
		json_array_append_new(
		    details, json_pack("{s:s, s:o}", "@type", BAD_REQUEST_TYPE,
				       "fieldViolations", violations));
	err = json_pack("{s:i, s:s, s:s}", "code", status, "message", msg,
			"status", canonical(status));
	if (json_array_size(details))
		json_object_set_new(err, "details", details);
	else
		json_decref(details);
	doc = json_pack("{s:o}", "error", err);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (retry_after >= 0) {
		snprintf(ra, sizeof(ra), "%ld", retry_after);
		nv[nnv++] = mock_nv("retry-after", ra);
	}
	mock_respond(st, status, nv, nnv, text, text ? strlen(text) : 0,
		     fcm_code ? fcm_code : canonical(status));
	free(text);
}

/* One field violation (BadRequest), 400. */
static void bad_field(struct mock_stream *st, const char *field,
		      const char *description)
{
	json_t *v = json_pack("[{s:s, s:s}]", "field", field, "description",
			      description);

	google_error(st, 400, description, NULL, v, -1);
}

static void invalid(struct mock_stream *st, const char *msg)
{
	google_error(st, 400, msg, "INVALID_ARGUMENT", NULL, -1);
}

/* --- access tokens ---------------------------------------------------- */

static int token_valid(struct mock_server *srv, const char *tok, size_t len)
{
	double now = mock_now(srv);

	if (!srv->have_sa)
		return len > 0; /* no service account: any bearer will do */
	/* Newest first: a relay normally uses the token it got last. */
	for (size_t i = 0; i < MOCK_MAX_TOKENS; i++) {
		size_t at =
		    (srv->tok_next + MOCK_MAX_TOKENS - 1 - i) % MOCK_MAX_TOKENS;

		if (!srv->tokens[at].tok[0])
			break;
		if (strlen(srv->tokens[at].tok) == len &&
		    memcmp(srv->tokens[at].tok, tok, len) == 0)
			return now < srv->tokens[at].expires;
	}
	return 0;
}

static const char *bearer(const struct mock_stream *st, size_t *len)
{
	const char *v = mock_header(st, "authorization", len);

	if (!v || *len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
		return NULL;
	*len -= 7;
	return v + 7;
}

/* --- FCM -------------------------------------------------------------- */

static int name_known(const char *key, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(key, *names) == 0)
			return 1;
	return 0;
}

/* Protobuf JSON mapping refuses unknown members; so does FCM. */
static int unknown_member(struct mock_stream *st, json_t *obj,
			  const char *const *names)
{
	const char *key;
	json_t *v;
	char msg[256];

	json_object_foreach(obj, key, v)
	{
		if (name_known(key, names))
			continue;
		snprintf(
		    msg, sizeof(msg),
		    "Invalid JSON payload received. Unknown name \"%.64s\": "
		    "Cannot find field.",
		    key);
		bad_field(st, "", msg);
		return 1;
	}
	return 0;
}

/* A map<string,string> such as data or headers; answers when bad. */
static int string_map(struct mock_stream *st, json_t *map, const char *field,
		      int reserved_keys)
{
	const char *key;
	json_t *v;
	size_t i = 0;
	char where[128], msg[256];

	if (!map)
		return 0;
	if (!json_is_object(map)) {
		snprintf(msg, sizeof(msg),
			 "Invalid value at '%s' (type.googleapis.com/"
			 "google.protobuf.Map), not an object",
			 field);
		bad_field(st, field, msg);
		return 1;
	}
	json_object_foreach(map, key, v)
	{
		if (!json_is_string(v)) {
			snprintf(where, sizeof(where), "%s[%zu].value", field,
				 i);
			snprintf(msg, sizeof(msg),
				 "Invalid value at '%s' (TYPE_STRING)", where);
			bad_field(st, where, msg);
			return 1;
		}
		if (reserved_keys && (strcmp(key, "from") == 0 ||
				      strcmp(key, "message_type") == 0 ||
				      strncmp(key, "google", 6) == 0 ||
				      strncmp(key, "gcm", 3) == 0)) {
			snprintf(msg, sizeof(msg),
				 "Invalid data payload key: %.64s", key);
			invalid(st, msg);
			return 1;
		}
		i++;
	}
	return 0;
}

/* "3.5s": digits, optional fraction, "s"; returns whole seconds or -1. */
static long long parse_duration(const char *s)
{
	long long secs = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (secs > 100000000000LL)
			return -1;
		secs = secs * 10 + (*p - '0');
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p[0] == 's' && p[1] == '\0' ? secs : -1;
}

static int check_android(struct mock_stream *st, json_t *android)
{
	static const char *const names[] = {"collapse_key",
					    "priority",
					    "ttl",
					    "restricted_package_name",
					    "data",
					    "notification",
					    "fcm_options",
					    "direct_boot_ok",
					    "bandwidth_constrained_ok",
					    "restricted_satellite_ok",
					    NULL};
	json_t *prio, *ttl;
	char msg[256];
	long long secs;

	if (!android)
		return 0;
	if (!json_is_object(android)) {
		bad_field(st, "message.android",
			  "Invalid value at 'message.android', not an object");
		return 1;
	}
	if (unknown_member(st, android, names))
		return 1;
	prio = json_object_get(android, "priority");
	if (prio && !(json_is_string(prio) &&
		      (strcmp(json_string_value(prio), "NORMAL") == 0 ||
		       strcmp(json_string_value(prio), "HIGH") == 0))) {
		bad_field(st, "message.android.priority",
			  "Invalid value at 'message.android.priority' "
			  "(type.googleapis.com/"
			  "google.firebase.fcm.v1.AndroidMessagePriority)");
		return 1;
	}
	ttl = json_object_get(android, "ttl");
	if (ttl) {
		secs = json_is_string(ttl)
			   ? parse_duration(json_string_value(ttl))
			   : -1;
		if (secs < 0) {
			bad_field(st, "message.android.ttl",
				  "Invalid value at 'message.android.ttl' "
				  "(type.googleapis.com/"
				  "google.protobuf.Duration)");
			return 1;
		}
		if (secs > FCM_MAX_TTL) {
			snprintf(msg, sizeof(msg),
				 "TTL %llds is outside 0..%ds", secs,
				 FCM_MAX_TTL);
			invalid(st, msg);
			return 1;
		}
	}
	return string_map(st, json_object_get(android, "data"),
			  "message.android.data", 1);
}

static int check_message(struct mock_stream *st, json_t *msg)
{
	static const char *const names[] = {
	    "name",    "data",	    "notification", "android",
	    "webpush", "apns",	    "fcm_options",  "token",
	    "topic",   "condition", "fid",	    NULL};
	static const char *const targets[] = {"token", "topic", "condition",
					      "fid"};
	json_t *apns, *webpush, *topic;
	size_t ntarget = 0, size;
	const char *tok;

	if (unknown_member(st, msg, names))
		return 1;
	for (size_t i = 0; i < 4; i++) {
		json_t *t = json_object_get(msg, targets[i]);

		if (!t)
			continue;
		if (!json_is_string(t) || !json_string_length(t)) {
			invalid(st, "The message target must be a non-empty "
				    "string");
			return 1;
		}
		ntarget++;
	}
	if (ntarget != 1) {
		invalid(st, "Exactly one of message.token, message.topic or "
			    "message.condition must be set");
		return 1;
	}
	topic = json_object_get(msg, "topic");
	if (topic) {
		const char *s = json_string_value(topic);

		if (strncmp(s, "/topics/", 8) == 0 ||
		    strspn(s,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
			   "YZ0123456789-_.~%") != strlen(s)) {
			invalid(st, "Invalid topic name");
			return 1;
		}
	}
	if (string_map(st, json_object_get(msg, "data"), "message.data", 1) ||
	    check_android(st, json_object_get(msg, "android")))
		return 1;
	apns = json_object_get(msg, "apns");
	webpush = json_object_get(msg, "webpush");
	if ((apns && string_map(st, json_object_get(apns, "headers"),
				"message.apns.headers", 0)) ||
	    (webpush && (string_map(st, json_object_get(webpush, "headers"),
				    "message.webpush.headers", 0) ||
			 string_map(st, json_object_get(webpush, "data"),
				    "message.webpush.data", 1))))
		return 1;
	/* The sheet's limit is on keys + values; the whole message JSON is a
	 * stricter stand-in that a well-behaved relay stays under too. */
	size = json_dumpb(msg, NULL, 0, JSON_COMPACT);
	if (size > (topic ? FCM_MAX_TOPIC_MESSAGE : FCM_MAX_MESSAGE)) {
		invalid(st, "Message is too big");
		return 1;
	}
	tok = json_string_value(json_object_get(msg, "token"));
	if (tok)
		st->token = strdup(tok);
	return 0;
}

void mock_fcm_handle(struct mock_stream *st)
{
	static const char *const top_names[] = {"message", "validate_only",
						NULL};
	struct mock_server *srv = st->conn->srv;
	const char *path = mock_str(st, &st->path) + 13; /* /v1/projects/ */
	const char *slash = strchr(path, '/'), *tok;
	size_t len = 0;
	json_t *doc, *msg, *vo;

	if (!slash || slash == path || strcmp(slash, "/messages:send") != 0) {
		google_error(st, 404, "Requested entity was not found.", NULL,
			     NULL, -1);
		return;
	}
	st->project = strndup(path, (size_t)(slash - path));
	if (strcmp(mock_str(st, &st->method), "POST") != 0) {
		google_error(st, 404, "Requested entity was not found.", NULL,
			     NULL, -1);
		return;
	}
	tok = bearer(st, &len);
	if (!tok || !token_valid(srv, tok, len)) {
		google_error(st, 401,
			     "Request had invalid authentication credentials. "
			     "Expected OAuth 2 access token, login cookie or "
			     "other valid authentication credential.",
			     NULL, NULL, -1);
		return;
	}
	if (srv->have_sa && strcmp(st->project, srv->sa.project_id) != 0) {
		google_error(st, 403,
			     "Permission 'cloudmessaging.messages.create' "
			     "denied on resource",
			     NULL, NULL, -1);
		return;
	}
	if (st->body_over) {
		google_error(st, 413, "Request payload size exceeds the limit",
			     NULL, NULL, -1);
		return;
	}
	doc = json_loadb(st->body ? st->body : "", st->blen, 0, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		bad_field(st, "", "Invalid JSON payload received.");
		return;
	}
	msg = json_object_get(doc, "message");
	vo = json_object_get(doc, "validate_only");
	if (unknown_member(st, doc, top_names)) {
		json_decref(doc);
		return;
	}
	if (vo && !json_is_boolean(vo)) {
		bad_field(st, "validate_only",
			  "Invalid value at 'validate_only' (TYPE_BOOL)");
	} else if (!json_is_object(msg)) {
		invalid(st, "message is required and must be an object");
	} else if (!check_message(st, msg)) {
		json_decref(doc);
		mock_proceed(st);
		return;
	}
	json_decref(doc);
}

static const char *default_fcm_code(int status)
{
	switch (status) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "THIRD_PARTY_AUTH_ERROR";
	case 403: return "SENDER_ID_MISMATCH";
	case 404: return "UNREGISTERED";
	case 429: return "QUOTA_EXCEEDED";
	case 500: return "INTERNAL";
	case 503: return "UNAVAILABLE";
	default: return "UNSPECIFIED_ERROR";
	}
}

static const char *fcm_message(const char *code)
{
	if (strcmp(code, "UNREGISTERED") == 0)
		return "Requested entity was not found.";
	if (strcmp(code, "INVALID_ARGUMENT") == 0)
		return "The registration token is not a valid FCM "
		       "registration token";
	if (strcmp(code, "SENDER_ID_MISMATCH") == 0)
		return "SenderId mismatch";
	if (strcmp(code, "QUOTA_EXCEEDED") == 0)
		return "Quota exceeded.";
	if (strcmp(code, "UNAVAILABLE") == 0)
		return "The service is currently unavailable.";
	if (strcmp(code, "THIRD_PARTY_AUTH_ERROR") == 0)
		return "Auth error from APNS or Web Push Service";
	return "Internal error encountered.";
}

void mock_fcm_answer(struct mock_stream *st, const struct mock_rule *r)
{
	struct mock_server *srv = st->conn->srv;
	nghttp2_nv nv[1];
	char body[512], ra[24];
	size_t nnv = 0;
	int n;

	if (r && r->status && r->status != 200) {
		const char *code =
		    r->reason[0] ? r->reason : default_fcm_code(r->status);

		google_error(st, r->status, fcm_message(code), code, NULL,
			     r->retry_after);
		return;
	}
	if (r && r->retry_after >= 0) {
		snprintf(ra, sizeof(ra), "%ld", r->retry_after);
		nv[nnv++] = mock_nv("retry-after", ra);
	}
	n = snprintf(body, sizeof(body),
		     "{\"name\":\"projects/%.200s/messages/0:%lld%%%016llx\"}",
		     st->project, (long long)(mock_now(srv) * 1000.0),
		     (unsigned long long)mock_rand(srv));
	mock_respond(st, 200, nv, nnv, body, (size_t)n, NULL);
}

/* --- OAuth ------------------------------------------------------------ */

static void oauth_error(struct mock_stream *st, int status, const char *error,
			const char *description)
{
	json_t *doc = json_pack("{s:s, s:s}", "error", error,
				"error_description", description);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	mock_respond(st, status, NULL, 0, text, text ? strlen(text) : 0, error);
	free(text);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A form field, percent- and plus-decoded into a new string, or NULL. */
static char *form_get(const char *body, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = body, *end = body + len;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *fend = amp ? amp : end;

		if ((size_t)(fend - p) > nlen && memcmp(p, name, nlen) == 0 &&
		    p[nlen] == '=') {
			char *out = malloc((size_t)(fend - p)), *o = out;

			if (!out)
				return NULL;
			for (const char *q = p + nlen + 1; q < fend; q++) {
				if (*q == '+') {
					*o++ = ' ';
				} else if (*q == '%' && fend - q > 2 &&
					   hexval(q[1]) >= 0 &&
					   hexval(q[2]) >= 0) {
					*o++ = (char)(hexval(q[1]) * 16 +
						      hexval(q[2]));
					q += 2;
				} else {
					*o++ = *q;
				}
			}
			*o = '\0';
			return out;
		}
		p = fend + 1;
	}
	return NULL;
}

static int has_scope(const char *scopes, const char *want)
{
	size_t n = strlen(want);

	for (const char *p = scopes; p && *p;) {
		const char *sp = strchr(p, ' ');
		size_t len = sp ? (size_t)(sp - p) : strlen(p);

		if (len == n && memcmp(p, want, n) == 0)
			return 1;
		p = sp ? sp + 1 : NULL;
	}
	return 0;
}

static int aud_ok(struct mock_stream *st, const char *aud)
{
	struct mock_server *srv = st->conn->srv;
	char url[300];

	if (strcmp(aud, srv->sa.token_uri) == 0)
		return 1;
	snprintf(url, sizeof(url), "https://%.200s/token",
		 mock_str(st, &st->authority));
	if (st->authority.nlen && strcmp(aud, url) == 0)
		return 1;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/token", srv->port);
	if (strcmp(aud, url) == 0)
		return 1;
	snprintf(url, sizeof(url), "https://localhost:%d/token", srv->port);
	return strcmp(aud, url) == 0;
}

/* Claims of a verified assertion: NULL, or (error, description). */
static const char *check_claims(struct mock_stream *st, json_t *claims,
				const char **error)
{
	struct mock_server *srv = st->conn->srv;
	const char *iss = mock_jwt_str(claims, "iss");
	const char *aud = mock_jwt_str(claims, "aud");
	const char *scope = mock_jwt_str(claims, "scope");
	json_t *iat = json_object_get(claims, "iat");
	json_t *exp = json_object_get(claims, "exp");
	double now = mock_now(srv);
	long long i, e;

	*error = "invalid_grant";
	if (!iss || strcmp(iss, srv->sa.client_email) != 0)
		return "Invalid grant: account not found";
	if (!aud || !aud_ok(st, aud))
		return "Invalid JWT: Failed audience check.";
	if (!json_is_integer(iat) || !json_is_integer(exp))
		return "Invalid JWT: iat and exp must be integers.";
	i = (long long)json_integer_value(iat);
	e = (long long)json_integer_value(exp);
	if ((double)i > now + OAUTH_SKEW || (double)i < now - OAUTH_SKEW ||
	    e <= i || e - i > OAUTH_MAX_LIFETIME || (double)e <= now)
		return "Invalid JWT: Token must be a short-lived token (60 "
		       "minutes) and in a reasonable timeframe. Check your iat "
		       "and exp values in the JWT claim.";
	if (!scope ||
	    !(has_scope(scope, SCOPE_FCM) || has_scope(scope, SCOPE_CLOUD))) {
		/* Google answers a missing scope with invalid_scope. */
		*error = "invalid_scope";
		return "Invalid OAuth scope or ID token audience provided.";
	}
	return NULL;
}

void mock_oauth_handle(struct mock_stream *st)
{
	struct mock_server *srv = st->conn->srv;
	size_t len = 0;
	const char *ctype = mock_header(st, "content-type", &len);
	const char *body = st->body ? st->body : "";
	char *grant = NULL, *assertion = NULL;
	const char *why = NULL, *error = "invalid_grant", *kid;
	struct mock_jwt j = {0};

	if (strcmp(mock_str(st, &st->method), "POST") != 0) {
		oauth_error(st, 405, "invalid_request", "POST only");
		return;
	}
	if (!ctype || len < 33 ||
	    strncasecmp(ctype, "application/x-www-form-urlencoded", 33) != 0) {
		oauth_error(st, 400, "invalid_request",
			    "Content-Type must be "
			    "application/x-www-form-urlencoded");
		return;
	}
	grant = form_get(body, st->blen, "grant_type");
	assertion = form_get(body, st->blen, "assertion");
	if (!grant || strcmp(grant, GRANT_JWT) != 0) {
		oauth_error(st, 400, "unsupported_grant_type",
			    "Invalid grant_type");
		goto out;
	}
	if (!assertion) {
		oauth_error(st, 400, "invalid_request", "Missing assertion");
		goto out;
	}
	if (!srv->have_sa) {
		oauth_error(st, 400, "invalid_grant",
			    "pr-mock runs without --fcm-credentials");
		goto out;
	}
	if (mock_jwt_parse(&j, assertion, strlen(assertion)) ||
	    mock_jwt_verify(&j, assertion, MOCK_JWT_RS256, srv->sa.key)) {
		why = "Invalid JWT Signature.";
	} else {
		kid = mock_jwt_str(j.header, "kid");
		if (kid && srv->sa.private_key_id &&
		    strcmp(kid, srv->sa.private_key_id) != 0)
			why = "Invalid JWT Signature.";
		else
			why = check_claims(st, j.claims, &error);
	}
	if (why)
		oauth_error(st, 400, error, why);
	else
		mock_proceed(st);
out:
	mock_jwt_cleanup(&j);
	free(grant);
	free(assertion);
}

void mock_oauth_answer(struct mock_stream *st, const struct mock_rule *r)
{
	struct mock_server *srv = st->conn->srv;
	char body[256], *tok;
	int n;

	if (r && r->status && r->status != 200) {
		oauth_error(st, r->status,
			    r->reason[0]       ? r->reason
			    : r->status >= 500 ? "temporarily_unavailable"
					       : "invalid_grant",
			    "scripted by pr-mock");
		return;
	}
	tok = srv->tokens[srv->tok_next].tok;
	snprintf(tok, sizeof(srv->tokens[0].tok), "ya29.mock-%016llx%016llx",
		 (unsigned long long)mock_rand(srv),
		 (unsigned long long)mock_rand(srv));
	srv->tokens[srv->tok_next].expires =
	    mock_now(srv) + (double)srv->token_lifetime;
	srv->tok_next = (srv->tok_next + 1) % MOCK_MAX_TOKENS;
	n = snprintf(body, sizeof(body),
		     "{\"access_token\":\"%s\",\"expires_in\":%ld,"
		     "\"token_type\":\"Bearer\"}",
		     tok, srv->token_lifetime);
	mock_respond(st, 200, NULL, 0, body, (size_t)n, NULL);
}

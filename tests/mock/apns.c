/*
 * apns.c - POST /3/device/<token> as the APNs provider API answers it
 * (PROTOCOLS.md 1.2-1.6): request validation with Apple's status and
 * {"reason":...} answers, provider-token (JWT, ES256) checks per connection,
 * and the success answer (200, no body, apns-id).
 *
 * Checks run in a fixed order, the first failure answers: method, path and
 * device token, repeated headers, provider token, topic, push type,
 * priority, expiration, collapse id, apns-id, payload. Apple does not
 * document its own order.
 *
 * The provider token is verified once per token per connection: the
 * connection keeps the last token it accepted and compares bytes on every
 * request, so the signature check is off the hot path. A connection takes a
 * new token at most once every 20 minutes (TooManyProviderTokenUpdates),
 * unless the token it holds has expired.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mock.h"
#include "jwt.h"

#define APNS_MAX_PAYLOAD      4096
#define APNS_MAX_VOIP_PAYLOAD 5120
#define APNS_MAX_COLLAPSE_ID  64
#define JWT_MAX_AGE	      3600 /* s: ExpiredProviderToken past this */
#define JWT_MIN_CHANGE	      1200 /* s: between token changes */
/* Not Apple's rule: an iat this far ahead (say, milliseconds by mistake)
 * is treated as an invalid token rather than accepted for ever. */
#define JWT_MAX_FUTURE 300

struct push_type {
	const char *name;
	const char *topic_suffix; /* NULL = the bare bundle ID (or anything) */
};

/* PROTOCOLS.md 1.3. */
static const struct push_type push_types[] = {
    {"alert", NULL},
    {"background", NULL},
    {"complication", ".complication"},
    {"controls", ".push-type.controls"},
    {"fileprovider", ".pushkit.fileprovider"},
    {"liveactivity", ".push-type.liveactivity"},
    {"location", ".location-query"},
    {"mdm", NULL},
    {"pushtotalk", ".voip-ptt"},
    {"voip", ".voip"},
    {"widgets", ".push-type.widgets"},
};

static void apns_error(struct mock_stream *st, int status, const char *reason,
		       long retry_after, long long timestamp)
{
	char body[160], ra[24];
	nghttp2_nv nv[2];
	size_t nnv = 0;
	int n;

	nv[nnv++] = mock_nv("apns-id", st->apns_id);
	if (retry_after >= 0) {
		snprintf(ra, sizeof(ra), "%ld", retry_after);
		nv[nnv++] = mock_nv("retry-after", ra);
	}
	if (timestamp >= 0)
		n = snprintf(body, sizeof(body),
			     "{\"reason\":\"%s\",\"timestamp\":%lld}", reason,
			     timestamp);
	else
		n = snprintf(body, sizeof(body), "{\"reason\":\"%s\"}", reason);
	mock_respond(st, status, nv, nnv, body, (size_t)n, reason);
}

static void fail(struct mock_stream *st, int status, const char *reason)
{
	apns_error(st, status, reason, -1, -1);
}

static int is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
	       (ch >= 'A' && ch <= 'F');
}

/* 8-4-4-4-12 hex digits, either case. */
static int is_uuid(const char *s, size_t len)
{
	if (len != 36)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!is_hex(s[i])) {
			return 0;
		}
	}
	return 1;
}

static void make_uuid(struct mock_server *srv, char *out)
{
	uint64_t a = mock_rand(srv), b = mock_rand(srv);

	static const char hex[] = "0123456789abcdef";
	int n = 0;

	a = (a & ~0xF000ULL) | 0x4000ULL;			 /* version 4 */
	b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL; /* variant */
	/* Hand-formatted: this runs for every push without an apns-id. */
	for (int i = 0; i < 32; i++) {
		uint64_t w = i < 16 ? a : b;

		if (i == 8 || i == 12 || i == 16 || i == 20)
			out[n++] = '-';
		out[n++] = hex[(w >> (60 - 4 * (i % 16))) & 0xF];
	}
	out[n] = '\0';
}

/* Any header name seen twice (nghttp2 already refuses repeated pseudo
 * headers). */
static int has_duplicates(const struct mock_stream *st)
{
	for (size_t i = 0; i < st->nhdr; i++)
		for (size_t j = i + 1; j < st->nhdr; j++)
			if (st->hdrs[i].nlen == st->hdrs[j].nlen &&
			    memcmp(st->hbuf + st->hdrs[i].name,
				   st->hbuf + st->hdrs[j].name,
				   st->hdrs[i].nlen) == 0)
				return 1;
	return 0;
}

/* Verify a token this connection has not accepted yet: 0 or a reason. */
static const char *verify_new(struct mock_server *srv, const char *tok,
			      size_t len, long long *iat_out)
{
	struct mock_jwt j;
	const char *why = "InvalidProviderToken", *kid, *iss;
	json_t *iat;
	double now = mock_now(srv);

	if (mock_jwt_parse(&j, tok, len))
		return why;
	kid = mock_jwt_str(j.header, "kid");
	iss = mock_jwt_str(j.claims, "iss");
	iat = json_object_get(j.claims, "iat");
	if (!kid || strcmp(kid, srv->apns_key_id) != 0 || !iss ||
	    strcmp(iss, srv->apns_team_id) != 0 || !json_is_integer(iat) ||
	    (double)json_integer_value(iat) > now + JWT_MAX_FUTURE ||
	    mock_jwt_verify(&j, tok, MOCK_JWT_ES256, srv->apns_key))
		goto out;
	*iat_out = (long long)json_integer_value(iat);
	why = now - (double)*iat_out > JWT_MAX_AGE ? "ExpiredProviderToken"
						   : NULL;
out:
	mock_jwt_cleanup(&j);
	return why;
}

/* Provider-token checks; answers and returns -1 on failure. */
static int check_token(struct mock_stream *st)
{
	struct mock_conn *c = st->conn;
	struct mock_server *srv = c->srv;
	double now = mock_now(srv);
	size_t len = 0;
	const char *auth = mock_header(st, "authorization", &len), *why;
	long long iat = 0;
	char *copy;

	/* "bearer" with nothing after it counts as no token at all. */
	if (auth && len >= 6 && strncasecmp(auth, "bearer", 6) == 0 &&
	    (len == 6 || auth[6] == ' ')) {
		auth += 6;
		len -= 6;
		while (len && *auth == ' ') {
			auth++;
			len--;
		}
	} else if (auth && len) {
		fail(st, 403, "InvalidProviderToken");
		return -1;
	}
	if (!auth || len == 0) {
		fail(st, 403, "MissingProviderToken");
		return -1;
	}
	if (c->jwt && c->jwt_len == len && memcmp(c->jwt, auth, len) == 0) {
		if (now - (double)c->jwt_iat > JWT_MAX_AGE) {
			fail(st, 403, "ExpiredProviderToken");
			return -1;
		}
		return 0;
	}
	srv->stats.jwt_tokens_seen++;
	why = verify_new(srv, auth, len, &iat);
	if (why) {
		fail(st, 403, why);
		return -1;
	}
	if (c->jwt && now - c->jwt_since < JWT_MIN_CHANGE &&
	    now - (double)c->jwt_iat <= JWT_MAX_AGE) {
		/* The connection keeps its current token. */
		fail(st, 429, "TooManyProviderTokenUpdates");
		return -1;
	}
	copy = malloc(len);
	if (!copy) {
		fail(st, 500, "InternalServerError");
		return -1;
	}
	memcpy(copy, auth, len);
	free(c->jwt);
	c->jwt = copy;
	c->jwt_len = len;
	c->jwt_iat = iat;
	c->jwt_since = now;
	return 0;
}

static int all_digits(const char *s, size_t len)
{
	if (len == 0 || len > 19)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len > n && memcmp(s + len - n, suffix, n) == 0;
}

/* Header checks after the token: 0, or answered and -1. */
static int check_headers(struct mock_stream *st, const struct push_type **pt)
{
	size_t tlen = 0, plen = 0, len = 0;
	const char *topic = mock_header(st, "apns-topic", &tlen);
	const char *type = mock_header(st, "apns-push-type", &len);
	const char *prio = mock_header(st, "apns-priority", &plen);
	const char *v;

	*pt = NULL;
	if (!topic || tlen == 0) {
		fail(st, 400, "MissingTopic");
		return -1;
	}
	if (type) {
		for (size_t i = 0;
		     i < sizeof(push_types) / sizeof(push_types[0]); i++)
			if (strlen(push_types[i].name) == len &&
			    memcmp(push_types[i].name, type, len) == 0)
				*pt = &push_types[i];
		if (!*pt) {
			fail(st, 400, "InvalidPushType");
			return -1;
		}
		if ((*pt)->topic_suffix &&
		    !ends_with(topic, tlen, (*pt)->topic_suffix)) {
			fail(st, 400, "BadTopic");
			return -1;
		}
	}
	if (prio && !((plen == 1 && (prio[0] == '1' || prio[0] == '5')) ||
		      (plen == 2 && prio[0] == '1' && prio[1] == '0'))) {
		fail(st, 400, "BadPriority");
		return -1;
	}
	/* Background pushes are always priority 5; omitted means 10. */
	if (*pt && strcmp((*pt)->name, "background") == 0 &&
	    !(prio && plen == 1 && prio[0] == '5')) {
		fail(st, 400, "BadPriority");
		return -1;
	}
	v = mock_header(st, "apns-expiration", &len);
	if (v && !all_digits(v, len)) {
		fail(st, 400, "BadExpirationDate");
		return -1;
	}
	v = mock_header(st, "apns-collapse-id", &len);
	if (v && len > APNS_MAX_COLLAPSE_ID) {
		fail(st, 400, "BadCollapseId");
		return -1;
	}
	v = mock_header(st, "apns-id", &len);
	if (v && !is_uuid(v, len)) {
		fail(st, 400, "BadMessageId");
		return -1;
	}
	return 0;
}

/*
 * A validating JSON scan (RFC 8259, UTF-8 checked) that builds nothing:
 * building a jansson tree for every push cost a fifth of the mock's time
 * in the h2load benchmark. Only the top level is looked at beyond syntax:
 * whether it is an object with an "aps" member (written without escapes)
 * whose value is an object.
 */
#define SCAN_MAX_DEPTH 64

struct scan {
	const unsigned char *p, *end;
	int depth;
};

static void skip_ws(struct scan *sc)
{
	while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' ||
				   *sc->p == '\n' || *sc->p == '\r'))
		sc->p++;
}

/* One UTF-8 sequence starting at a byte >= 0x80; 0 or -1. */
static int scan_utf8(struct scan *sc)
{
	unsigned c = *sc->p++, n, cp, min;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return -1;
	}
	if ((size_t)(sc->end - sc->p) < n)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		if ((sc->p[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (sc->p[i] & 0x3f);
	}
	sc->p += n;
	return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? -1
									   : 0;
}

/* A string; raw and rawlen give its bytes between the quotes. */
static int scan_string(struct scan *sc, const unsigned char **raw,
		       size_t *rawlen)
{
	const unsigned char *start;

	if (sc->p >= sc->end || *sc->p != '"')
		return -1;
	start = ++sc->p;
	while (sc->p < sc->end && *sc->p != '"') {
		unsigned char c = *sc->p;

		if (c < 0x20)
			return -1;
		if (c == '\\') {
			if (++sc->p >= sc->end)
				return -1;
			if (*sc->p == 'u') {
				if (sc->end - sc->p < 5)
					return -1;
				for (int i = 1; i <= 4; i++)
					if (!is_hex((char)sc->p[i]))
						return -1;
				sc->p += 5;
			} else if (*sc->p && strchr("\"\\/bfnrt", *sc->p)) {
				sc->p++;
			} else {
				return -1;
			}
		} else if (c >= 0x80) {
			if (scan_utf8(sc))
				return -1;
		} else {
			sc->p++;
		}
	}
	if (sc->p >= sc->end)
		return -1;
	*raw = start;
	*rawlen = (size_t)(sc->p - start);
	sc->p++;
	return 0;
}

static int scan_digits(struct scan *sc)
{
	const unsigned char *start = sc->p;

	while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9')
		sc->p++;
	return sc->p > start ? 0 : -1;
}

static int scan_number(struct scan *sc)
{
	if (*sc->p == '-')
		sc->p++;
	if (sc->p < sc->end && *sc->p == '0')
		sc->p++;
	else if (scan_digits(sc))
		return -1;
	if (sc->p < sc->end && *sc->p == '.') {
		sc->p++;
		if (scan_digits(sc))
			return -1;
	}
	if (sc->p < sc->end && (*sc->p == 'e' || *sc->p == 'E')) {
		sc->p++;
		if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-'))
			sc->p++;
		if (scan_digits(sc))
			return -1;
	}
	return 0;
}

static int scan_literal(struct scan *sc, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, lit, n) != 0)
		return -1;
	sc->p += n;
	return 0;
}

/* One value. top: this is the top-level object, where *aps is set when
 * its "aps" member holds an object. */
static int scan_value(struct scan *sc, int top, int *aps)
{
	const unsigned char *raw;
	size_t rawlen;
	unsigned char c;

	skip_ws(sc);
	if (sc->p >= sc->end)
		return -1;
	c = *sc->p;
	if (c == '"')
		return scan_string(sc, &raw, &rawlen);
	if (c == 't')
		return scan_literal(sc, "true");
	if (c == 'f')
		return scan_literal(sc, "false");
	if (c == 'n')
		return scan_literal(sc, "null");
	if (c == '-' || (c >= '0' && c <= '9'))
		return scan_number(sc);
	if (c != '{' && c != '[')
		return -1;
	if (++sc->depth > SCAN_MAX_DEPTH)
		return -1;
	sc->p++;
	skip_ws(sc);
	if (sc->p < sc->end && *sc->p == (c == '{' ? '}' : ']')) {
		sc->p++;
		sc->depth--;
		return 0;
	}
	for (;;) {
		int is_aps = 0;

		if (c == '{') {
			skip_ws(sc);
			if (scan_string(sc, &raw, &rawlen))
				return -1;
			is_aps =
			    top && rawlen == 3 && memcmp(raw, "aps", 3) == 0;
			skip_ws(sc);
			if (sc->p >= sc->end || *sc->p++ != ':')
				return -1;
			skip_ws(sc);
			if (is_aps)
				*aps = sc->p < sc->end && *sc->p == '{';
		}
		if (scan_value(sc, 0, aps))
			return -1;
		skip_ws(sc);
		if (sc->p >= sc->end)
			return -1;
		if (*sc->p == ',') {
			sc->p++;
			continue;
		}
		if (*sc->p++ != (c == '{' ? '}' : ']'))
			return -1;
		sc->depth--;
		return 0;
	}
}

/* 1 when body is one JSON object; *aps says whether "aps" is an object. */
static int json_object_with(const char *body, size_t len, int *aps)
{
	struct scan sc = {(const unsigned char *)body,
			  (const unsigned char *)body + len, 0};

	*aps = 0;
	skip_ws(&sc);
	if (sc.p >= sc.end || *sc.p != '{' || scan_value(&sc, 1, aps))
		return 0;
	skip_ws(&sc);
	return sc.p == sc.end;
}

static int check_payload(struct mock_stream *st, const struct push_type *pt)
{
	size_t max = pt && strcmp(pt->name, "voip") == 0 ? APNS_MAX_VOIP_PAYLOAD
							 : APNS_MAX_PAYLOAD;
	int ok, aps;

	if (st->blen == 0 && !st->body_over) {
		fail(st, 400, "PayloadEmpty");
		return -1;
	}
	if (st->body_over || st->blen > max) {
		fail(st, 413, "PayloadTooLarge");
		return -1;
	}
	/* MDM and location pushes carry no "aps" dictionary. */
	ok = json_object_with(st->body, st->blen, &aps) &&
	     (aps || (pt && (strcmp(pt->name, "mdm") == 0 ||
			     strcmp(pt->name, "location") == 0)));
	if (!ok) {
		/* Not an Apple reason: APNs does not document what it says
		 * about a body that is not a JSON object with "aps". */
		fail(st, 400, "BadPayload");
		return -1;
	}
	return 0;
}

void mock_apns_handle(struct mock_stream *st)
{
	struct mock_server *srv = st->conn->srv;
	const char *path = mock_str(st, &st->path);
	const char *tok = path + 9; /* after "/3/device" */
	const struct push_type *pt;
	size_t len = 0, tlen;
	const char *id = mock_header(st, "apns-id", &len);

	if (id && is_uuid(id, len))
		memcpy(st->apns_id, id, 36);
	else
		make_uuid(srv, st->apns_id);
	if (strcmp(mock_str(st, &st->method), "POST") != 0) {
		fail(st, 405, "MethodNotAllowed");
		return;
	}
	if (*tok == '/')
		tok++;
	tlen = strlen(tok);
	if (tlen == 0 || *tok == '?') {
		fail(st, 400, "MissingDeviceToken");
		return;
	}
	st->token = strdup(tok);
	/* Hex digits standing for whole bytes; the length is not fixed. */
	for (size_t i = 0; i < tlen; i++) {
		if (!is_hex(tok[i]) || tlen % 2 != 0) {
			fail(st, 400, "BadDeviceToken");
			return;
		}
	}
	if (has_duplicates(st)) {
		fail(st, 400, "DuplicateHeaders");
		return;
	}
	if (srv->apns_key && check_token(st))
		return;
	if (check_headers(st, &pt) || check_payload(st, pt))
		return;
	mock_proceed(st);
}

static const char *default_reason(int status)
{
	switch (status) {
	case 400: return "BadDeviceToken";
	case 403: return "Forbidden";
	case 404: return "BadPath";
	case 405: return "MethodNotAllowed";
	case 410: return "Unregistered";
	case 413: return "PayloadTooLarge";
	case 429: return "TooManyRequests";
	case 503: return "ServiceUnavailable";
	default: return "InternalServerError";
	}
}

void mock_apns_answer(struct mock_stream *st, const struct mock_rule *r)
{
	nghttp2_nv nv[2];
	size_t n = 0;
	char ra[24];

	if (r && r->status && r->status != 200) {
		long long ts = -1;

		if (r->status == 410)
			ts =
			    r->timestamp >= 0
				? r->timestamp
				: (long long)(mock_now(st->conn->srv) * 1000.0);
		apns_error(st, r->status,
			   r->reason[0] ? r->reason : default_reason(r->status),
			   r->retry_after, ts);
		return;
	}
	nv[n++] = mock_nv("apns-id", st->apns_id);
	if (r && r->retry_after >= 0) {
		snprintf(ra, sizeof(ra), "%ld", r->retry_after);
		nv[n++] = mock_nv("retry-after", ra);
	}
	mock_respond(st, 200, nv, n, NULL, 0, NULL);
	mock_conn_raise_streams(st->conn);
}

/*
 * control.c - what makes the mock scriptable and inspectable: the rule
 * list (POST/GET/DELETE /mock/script), applying a rule to a valid request
 * (scripted status, delay, GOAWAY, RST_STREAM, dropped connection) or to
 * a new connection's TLS handshake (refused), the ring of request records
 * (GET /mock/requests), counters (GET /mock/stats) and POST /mock/reset.
 * Control requests are neither recorded nor counted.
 *
 * Rules live in one array, oldest first, at most MOCK_MAX_RULES; a match
 * takes a copy (without the token) into the stream, so deleting rules never
 * touches a delayed answer. A rule with for_ms goes once that time is up,
 * matched or not. A TLS rule needs times or for_ms: without, it would
 * lock out the control API, which shares the port. Records keep the raw request (one
 * allocation) in a ring of --max-record entries and become JSON only when
 * read; with --max-record 0 nothing is copied at all.
 */
#include "autoconf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

static const char *const kind_names[] = {"other", "apns",    "fcm",
					 "oauth", "control", "tls"};
static const char *const action_names[] = {"respond", "goaway",	   "rst",
					   "drop",    "cancelled", "fail"};

#define KIND_BIT(k)   (1u << (k))
#define DEFAULT_KINDS (KIND_BIT(MOCK_APNS) | KIND_BIT(MOCK_FCM))

/* --- answers ---------------------------------------------------------- */

static void answer_json(struct mock_stream *st, int status, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	if (text)
		mock_respond(st, status, NULL, 0, text, strlen(text), NULL);
	else
		mock_respond(st, 500, NULL, 0, NULL, 0, NULL);
	free(text);
	json_decref(doc);
}

static void answer_error(struct mock_stream *st, int status, const char *msg)
{
	answer_json(st, status, json_pack("{s:s}", "error", msg));
}

/* The kind's own answer: success when r is NULL or r->status is 0/200. */
static void answer(struct mock_stream *st, const struct mock_rule *r)
{
	switch (st->kind) {
	case MOCK_APNS: mock_apns_answer(st, r); break;
	case MOCK_FCM: mock_fcm_answer(st, r); break;
	case MOCK_OAUTH: mock_oauth_answer(st, r); break;
	default:
		mock_respond(st, r && r->status ? r->status : 404, NULL, 0,
			     NULL, 0, NULL);
	}
}

/* --- rules ------------------------------------------------------------ */

static void rule_remove(struct mock_server *srv, size_t i)
{
	free(srv->rules[i].token);
	memmove(&srv->rules[i], &srv->rules[i + 1],
		(srv->nrules - i - 1) * sizeof(srv->rules[0]));
	srv->nrules--;
}

static void rules_clear(struct mock_server *srv)
{
	while (srv->nrules)
		rule_remove(srv, srv->nrules - 1);
}

/* Forget the rules whose for_ms is up. */
static void rules_expire(struct mock_server *srv)
{
	double now = mock_now(srv);

	for (size_t i = srv->nrules; i-- > 0;)
		if (srv->rules[i].expires > 0 && srv->rules[i].expires <= now)
			rule_remove(srv, i);
}

/* Newest matching rule into *out (token not copied); counts it down. */
static int rule_match(struct mock_server *srv, const struct mock_stream *st,
		      struct mock_rule *out)
{
	rules_expire(srv);
	for (size_t i = srv->nrules; i-- > 0;) {
		struct mock_rule *r = &srv->rules[i];

		if (!(r->kinds & KIND_BIT(st->kind)))
			continue;
		if (strcmp(r->token, "*") != 0 &&
		    (!st->token || strcmp(r->token, st->token) != 0))
			continue;
		*out = *r;
		out->token = NULL;
		if (r->times > 0 && --r->times == 0)
			rule_remove(srv, i);
		return 1;
	}
	return 0;
}

static void delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mock_stream *st = w->data;
	struct mock_conn *c = st->conn;

	st->delayed = 0;
	c->srv->ndelayed--;
	mock_apply(st, &st->rule);
	mock_conn_kick(c); /* may free c and st */
}

int mock_tls_fail(struct mock_server *srv)
{
	rules_expire(srv);
	for (size_t i = srv->nrules; i-- > 0;) {
		struct mock_rule *r = &srv->rules[i];

		if (!(r->kinds & KIND_BIT(MOCK_TLS)))
			continue;
		if (r->times > 0 && --r->times == 0)
			rule_remove(srv, i);
		srv->stats.tls_failed++;
		return 1;
	}
	return 0;
}

void mock_proceed(struct mock_stream *st)
{
	struct mock_server *srv = st->conn->srv;
	struct mock_rule r;

	if (!srv->nrules || !rule_match(srv, st, &r)) {
		answer(st, NULL);
		return;
	}
	/* Past the bound a delay is skipped rather than the request lost. */
	if (r.delay_ms > 0 && srv->ndelayed < MOCK_MAX_DELAYED) {
		st->rule = r;
		st->delayed = 1;
		srv->ndelayed++;
		ev_timer_init(&st->timer, delay_cb, (double)r.delay_ms / 1000.0,
			      0.0);
		st->timer.data = st;
		ev_now_update(srv->loop); /* measure the delay from now */
		ev_timer_start(srv->loop, &st->timer);
		return;
	}
	mock_apply(st, &r);
}

void mock_apply(struct mock_stream *st, const struct mock_rule *r)
{
	struct mock_conn *c = st->conn;
	const char *why = r->reason[0] ? r->reason : "Shutdown";
	char data[MOCK_REASON_LEN + 16];
	int n;

	switch (r->action) {
	case MOCK_GOAWAY:
		/* The payload is JSON with a reason, as APNs sends it. */
		n = snprintf(data, sizeof(data), "{\"reason\":\"%s\"}", why);
		if (r->status) {
			/* Served stream: GOAWAY covers it, then the answer. */
			nghttp2_submit_goaway(c->ngh, NGHTTP2_FLAG_NONE, st->id,
					      r->error_code > 0
						  ? (uint32_t)r->error_code
						  : NGHTTP2_NO_ERROR,
					      (const uint8_t *)data, (size_t)n);
			st->act = MOCK_GOAWAY;
			answer(st, r);
		} else {
			/* Refused stream: the GOAWAY's last stream id is below
			 * it, nghttp2 closes it once the frame is out and the
			 * client must retry elsewhere. */
			mock_record(st, 0, why, MOCK_GOAWAY);
			nghttp2_submit_goaway(c->ngh, NGHTTP2_FLAG_NONE,
					      st->id > 2 ? st->id - 2 : 0,
					      r->error_code > 0
						  ? (uint32_t)r->error_code
						  : NGHTTP2_NO_ERROR,
					      (const uint8_t *)data, (size_t)n);
		}
		break;
	case MOCK_RST:
		mock_record(st, 0, NULL, MOCK_RST);
		nghttp2_submit_rst_stream(c->ngh, NGHTTP2_FLAG_NONE, st->id,
					  r->error_code >= 0
					      ? (uint32_t)r->error_code
					      : NGHTTP2_INTERNAL_ERROR);
		break;
	case MOCK_DROP:
		mock_record(st, 0, NULL, MOCK_DROP);
		c->drop = 1;
		break;
	default: answer(st, r); break;
	}
}

/* Reasons end up in JSON built with snprintf: keep them plain. */
static int plain(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return 0;
	return 1;
}

static int parse_kind(const char *s, unsigned *kinds)
{
	if (strcmp(s, "apns") == 0)
		*kinds = KIND_BIT(MOCK_APNS);
	else if (strcmp(s, "fcm") == 0)
		*kinds = KIND_BIT(MOCK_FCM);
	else if (strcmp(s, "oauth") == 0)
		*kinds = KIND_BIT(MOCK_OAUTH);
	else if (strcmp(s, "push") == 0)
		*kinds = DEFAULT_KINDS;
	else if (strcmp(s, "tls") == 0)
		*kinds = KIND_BIT(MOCK_TLS);
	else if (strcmp(s, "any") == 0)
		*kinds =
		    DEFAULT_KINDS | KIND_BIT(MOCK_OAUTH) | KIND_BIT(MOCK_OTHER);
	else
		return -1;
	return 0;
}

/* An optional integer member in [lo, hi]; absent leaves *out alone. */
static const char *get_int(json_t *doc, const char *name, long lo, long hi,
			   long *out)
{
	json_t *v = json_object_get(doc, name);

	if (!v)
		return NULL;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return name;
	*out = (long)json_integer_value(v);
	return NULL;
}

static const char *rule_parse(json_t *doc, struct mock_rule *r)
{
	static const char *const known[] = {
	    "token",	   "kind",	"status", "reason",
	    "retry_after", "delay_ms",	"action", "times",
	    "error_code",  "timestamp", "for_ms"};
	/* What a TLS rule may say: there is no request to answer. */
	static const char *const tls_known[] = {"token", "kind", "action",
						"times", "for_ms"};
	const char *key, *bad = NULL, *s;
	long timestamp = -1, for_ms = 0;
	int tls;
	json_t *v;

	memset(r, 0, sizeof(*r));
	r->kinds = DEFAULT_KINDS;
	r->retry_after = -1;
	r->times = -1;
	r->error_code = -1;
	json_object_foreach(doc, key, v)
	{
		size_t i = 0;

		while (i < sizeof(known) / sizeof(known[0]) &&
		       strcmp(key, known[i]) != 0)
			i++;
		if (i == sizeof(known) / sizeof(known[0]))
			return "unknown member";
	}
	s = json_string_value(json_object_get(doc, "kind"));
	tls = s && strcmp(s, "tls") == 0;
	json_object_foreach(doc, key, v)
	{
		size_t i = 0;

		while (tls && i < sizeof(tls_known) / sizeof(tls_known[0]) &&
		       strcmp(key, tls_known[i]) != 0)
			i++;
		if (tls && i == sizeof(tls_known) / sizeof(tls_known[0]))
			return "a tls rule takes only token, kind, action, "
			       "times and for_ms";
	}
	s = json_string_value(json_object_get(doc, "token"));
	if (!s || !*s)
		return "token must be a non-empty string (\"*\" = every send)";
	r->token = strdup(s);
	v = json_object_get(doc, "kind");
	if (v &&
	    (!json_is_string(v) || parse_kind(json_string_value(v), &r->kinds)))
		return "kind must be apns, fcm, oauth, push or any";
	v = json_object_get(doc, "reason");
	if (v && (!json_is_string(v) ||
		  strlen(json_string_value(v)) >= sizeof(r->reason) ||
		  !plain(json_string_value(v))))
		return "reason must be a short plain string";
	if (v)
		snprintf(r->reason, sizeof(r->reason), "%s",
			 json_string_value(v));
	v = json_object_get(doc, "action");
	if (v) {
		s = json_string_value(v);
		if (s && strcmp(s, "respond") == 0)
			r->action = MOCK_RESPOND;
		else if (s && strcmp(s, "goaway") == 0)
			r->action = MOCK_GOAWAY;
		else if (s && strcmp(s, "rst") == 0)
			r->action = MOCK_RST;
		else if (s && strcmp(s, "drop") == 0)
			r->action = MOCK_DROP;
		else if (s && strcmp(s, "fail") == 0)
			r->action = MOCK_FAIL;
		else
			return "action must be respond, goaway, rst, drop or "
			       "fail";
	}
	if (tls != (r->action == MOCK_FAIL))
		return "action fail goes with kind tls, and kind tls with "
		       "action fail";
	if (tls && strcmp(r->token, "*") != 0)
		return "a tls rule has token \"*\": no token is known yet";
	if (tls && !json_object_get(doc, "times") &&
	    !json_object_get(doc, "for_ms"))
		return "a tls rule needs times or for_ms: the control API "
		       "shares the port and would be locked out";
	{
		long status = 0;

		bad = get_int(doc, "status", 0, 599, &status);
		r->status = (int)status;
	}
	if (!bad && r->status && r->status < 100)
		bad = "status";
	if (!bad)
		bad = get_int(doc, "retry_after", 0, 86400 * 365,
			      &r->retry_after);
	if (!bad)
		bad = get_int(doc, "delay_ms", 0, 3600 * 1000, &r->delay_ms);
	if (!bad)
		bad = get_int(doc, "times", 1, 1L << 30, &r->times);
	if (!bad)
		bad = get_int(doc, "error_code", 0, 0x7fffffff, &r->error_code);
	if (!bad)
		bad = get_int(doc, "timestamp", 0, 0x7fffffffffffffffL,
			      &timestamp);
	if (!bad)
		bad = get_int(doc, "for_ms", 1, 86400 * 1000, &for_ms);
	r->timestamp = timestamp;
	r->expires = (double)for_ms / 1000.0; /* made absolute when added */
	if (bad)
		return "an integer member is out of range";
	return NULL;
}

static json_t *rule_json(const struct mock_rule *r)
{
	json_t *o = json_pack(
	    "{s:I, s:s, s:i, s:s, s:I, s:I}", "id", (json_int_t)r->id, "token",
	    r->token, "status", r->status, "action", action_names[r->action],
	    "delay_ms", (json_int_t)r->delay_ms, "times", (json_int_t)r->times);
	json_t *kinds = json_array();

	for (int k = MOCK_OTHER; k <= MOCK_TLS; k++)
		if (k != MOCK_CONTROL && (r->kinds & KIND_BIT(k)))
			json_array_append_new(kinds,
					      json_string(kind_names[k]));
	json_object_set_new(o, "kinds", kinds);
	if (r->reason[0])
		json_object_set_new(o, "reason", json_string(r->reason));
	if (r->retry_after >= 0)
		json_object_set_new(o, "retry_after",
				    json_integer(r->retry_after));
	if (r->expires > 0)
		json_object_set_new(
		    o, "expires",
		    json_integer((json_int_t)(r->expires * 1000.0)));
	return o;
}

static void script_post(struct mock_stream *st)
{
	struct mock_server *srv = st->conn->srv;
	json_t *doc = json_loadb(st->body ? st->body : "", st->blen, 0, NULL);
	struct mock_rule r;
	const char *err;

	if (!json_is_object(doc)) {
		json_decref(doc);
		answer_error(st, 400, "body must be a JSON object");
		return;
	}
	err = rule_parse(doc, &r);
	json_decref(doc);
	rules_expire(srv); /* expired rules give their slots back */
	if (!err && srv->nrules >= MOCK_MAX_RULES)
		err = "too many rules (1024): DELETE /mock/script first";
	if (!err && !srv->rules) {
		srv->rules = calloc(MOCK_MAX_RULES, sizeof(*srv->rules));
		if (!srv->rules)
			err = "out of memory";
	}
	if (err) {
		free(r.token);
		answer_error(st, 400, err);
		return;
	}
	r.id = ++srv->next_rule_id;
	if (r.expires > 0) {
		ev_now_update(srv->loop); /* measure for_ms from now */
		r.expires += mock_now(srv);
	}
	srv->rules[srv->nrules++] = r;
	answer_json(st, 200,
		    json_pack("{s:I, s:I}", "id", (json_int_t)r.id, "rules",
			      (json_int_t)srv->nrules));
}

static void script_get(struct mock_stream *st)
{
	struct mock_server *srv = st->conn->srv;
	json_t *list = json_array();

	rules_expire(srv);
	for (size_t i = srv->nrules; i-- > 0;)
		json_array_append_new(list, rule_json(&srv->rules[i]));
	answer_json(st, 200, json_pack("{s:o}", "rules", list));
}

/* --- records ---------------------------------------------------------- */

/* A JSON string of arbitrary bytes: invalid UTF-8 becomes '?'. */
static json_t *bytes_string(const char *p, size_t len)
{
	json_t *s = json_stringn(p, len);
	char *copy;

	/* A cut at the 8 KiB cap may split the last character. */
	for (size_t cut = 1; !s && cut <= 3 && cut <= len; cut++)
		s = json_stringn(p, len - cut);
	if (s)
		return s;
	copy = malloc(len + 1);
	if (!copy)
		return json_null();
	for (size_t i = 0; i < len; i++)
		copy[i] = (unsigned char)p[i] < 0x80 ? p[i] : '?';
	s = json_stringn(copy, len);
	free(copy);
	return s ? s : json_null();
}

static void record_free(struct mock_record *rec)
{
	free(rec->data);
	rec->data = NULL;
}

static void put(char **p, const void *src, size_t len)
{
	memcpy(*p, src, len);
	*p += len;
}

void mock_record(struct mock_stream *st, int status, const char *reason,
		 enum mock_action action)
{
	struct mock_server *srv = st->conn->srv;
	struct mock_record *rec;
	size_t blen = st->blen < MOCK_RECORD_BODY ? st->blen : MOCK_RECORD_BODY;
	size_t tlen = st->token ? strlen(st->token) : 0, size;
	char *data, *p;

	if (st->recorded || st->kind == MOCK_CONTROL)
		return;
	st->recorded = 1;
	srv->rec_next++;
	if (srv->verbose)
		fprintf(stderr,
			"pr-mock: #%llu conn %llu stream %d %s %s %s -> "
			"%d %s (%s)\n",
			(unsigned long long)srv->rec_next,
			(unsigned long long)st->conn->id, (int)st->id,
			kind_names[st->kind], mock_str(st, &st->method),
			mock_str(st, &st->path), status, reason ? reason : "-",
			action_names[action]);
	if (!srv->max_record)
		return;
	size = st->method.vlen + st->path.vlen + tlen + blen;
	for (size_t i = 0; i < st->nhdr; i++)
		size += 8 + st->hdrs[i].nlen + st->hdrs[i].vlen;
	data = malloc(size ? size : 1);
	if (!data)
		return;
	p = data;
	put(&p, mock_str(st, &st->method), st->method.vlen);
	put(&p, mock_str(st, &st->path), st->path.vlen);
	if (tlen)
		put(&p, st->token, tlen);
	if (blen)
		put(&p, st->body, blen);
	for (size_t i = 0; i < st->nhdr; i++) {
		const struct mock_hdr *h = &st->hdrs[i];

		put(&p, &h->nlen, 4);
		put(&p, &h->vlen, 4);
		put(&p, st->hbuf + h->name, h->nlen);
		put(&p, st->hbuf + h->value, h->vlen);
	}
	if (srv->rec_count == srv->max_record) {
		record_free(&srv->records[srv->rec_head]);
		srv->rec_head = (srv->rec_head + 1) % srv->max_record;
		srv->rec_count--;
	}
	rec = &srv->records[(srv->rec_head + srv->rec_count) % srv->max_record];
	rec->n = srv->rec_next;
	rec->conn = st->conn->id;
	rec->kind = st->kind;
	rec->action = action;
	rec->status = status;
	rec->has_token = st->token != NULL;
	rec->stream = st->id;
	rec->at = st->at;
	rec->body_len = st->blen;
	snprintf(rec->reason, sizeof(rec->reason), "%s", reason ? reason : "");
	rec->data = data;
	rec->mlen = st->method.vlen;
	rec->plen = st->path.vlen;
	rec->tlen = (uint32_t)tlen;
	rec->blen = (uint32_t)blen;
	rec->nhdr = (uint32_t)st->nhdr;
	srv->rec_count++;
}

static json_t *headers_json(const struct mock_record *rec, const char *p)
{
	json_t *o = json_object();

	for (uint32_t i = 0; i < rec->nhdr; i++) {
		uint32_t nlen, vlen;
		char name[256];
		json_t *old, *v;

		memcpy(&nlen, p, 4);
		memcpy(&vlen, p + 4, 4);
		p += 8;
		snprintf(name, sizeof(name), "%.*s", (int)nlen, p);
		v = bytes_string(p + nlen, vlen);
		p += nlen + vlen;
		old = json_object_get(o, name);
		if (old && json_is_string(old) && json_is_string(v)) {
			/* A repeated field: keep both, comma-joined. */
			size_t n =
			    json_string_length(old) + json_string_length(v) + 3;
			char *j = malloc(n);

			if (j) {
				snprintf(j, n, "%s, %s", json_string_value(old),
					 json_string_value(v));
				json_decref(v);
				v = json_string(j);
				free(j);
			}
		}
		json_object_set_new(o, name, v ? v : json_null());
	}
	return o;
}

/* One record as compact JSON; the caller frees it. */
static char *record_json(const struct mock_record *rec)
{
	const char *p = rec->data;
	json_t *doc;
	char *text;

	doc = json_pack(
	    "{s:I, s:I, s:I, s:i, s:s, s:o, s:o, s:I, s:i, s:s}", "n",
	    (json_int_t)rec->n, "at", (json_int_t)(rec->at * 1000.0), "conn",
	    (json_int_t)rec->conn, "stream", (int)rec->stream, "kind",
	    kind_names[rec->kind], "method", bytes_string(p, rec->mlen), "path",
	    bytes_string(p + rec->mlen, rec->plen), "body_len",
	    (json_int_t)rec->body_len, "status", rec->status, "action",
	    action_names[rec->action]);
	if (!doc)
		return NULL;
	p += rec->mlen + rec->plen;
	json_object_set_new(doc, "token",
			    rec->has_token ? bytes_string(p, rec->tlen)
					   : json_null());
	p += rec->tlen;
	json_object_set_new(doc, "body", bytes_string(p, rec->blen));
	p += rec->blen;
	json_object_set_new(doc, "headers", headers_json(rec, p));
	json_object_set_new(doc, "reason",
			    rec->reason[0] ? json_string(rec->reason)
					   : json_null());
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

static void records_clear(struct mock_server *srv)
{
	for (size_t i = 0; i < srv->rec_count; i++)
		record_free(
		    &srv->records[(srv->rec_head + i) % srv->max_record]);
	srv->rec_head = srv->rec_count = 0;
}

/* Value of name in a query string, or NULL; *len set. */
static const char *query_get(const char *q, const char *name, size_t *len)
{
	size_t nlen = strlen(name);

	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t plen = amp ? (size_t)(amp - q) : strlen(q);

		if (plen > nlen && strncmp(q, name, nlen) == 0 &&
		    q[nlen] == '=') {
			*len = plen - nlen - 1;
			return q + nlen + 1;
		}
		q = amp ? amp + 1 : NULL;
	}
	return NULL;
}

static int query_num(const char *q, const char *name, unsigned long long hi,
		     unsigned long long *out)
{
	size_t len;
	const char *v = query_get(q, name, &len);
	unsigned long long n = 0;

	if (!v)
		return 0;
	if (len == 0 || len > 19)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (unsigned)(v[i] - '0');
	}
	if (n > hi)
		return -1;
	*out = n;
	return 0;
}

struct sbuf {
	char *p;
	size_t len, cap;
	int failed;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t len)
{
	if (b->failed)
		return;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *n;

		while (cap < b->len + len + 1)
			cap *= 2;
		n = realloc(b->p, cap);
		if (!n) {
			b->failed = 1;
			return;
		}
		b->p = n;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void requests_get(struct mock_stream *st, const char *q)
{
	struct mock_server *srv = st->conn->srv;
	unsigned long long after = 0, limit = 1000, next;
	const char *kind;
	size_t klen, count = 0;
	struct sbuf b = {NULL, 0, 0, 0};
	char tail[64], *text;
	int want = -1;

	if (query_num(q, "after", ~0ULL >> 1, &after) ||
	    query_num(q, "limit", 10000, &limit) || limit == 0) {
		answer_error(st, 400, "after and limit (1..10000) are numbers");
		return;
	}
	kind = query_get(q, "kind", &klen);
	for (int k = MOCK_OTHER; kind && k <= MOCK_OAUTH; k++)
		if (strlen(kind_names[k]) == klen &&
		    strncmp(kind, kind_names[k], klen) == 0)
			want = k;
	if (kind && want < 0) {
		answer_error(st, 400, "kind must be apns, fcm, oauth or other");
		return;
	}
	next = after;
	sbuf_add(&b, "{\"requests\":[", 13);
	for (size_t i = 0; i < srv->rec_count && count < limit; i++) {
		const struct mock_record *rec =
		    &srv->records[(srv->rec_head + i) % srv->max_record];

		if (rec->n <= after)
			continue;
		next = rec->n;
		if (want >= 0 && (int)rec->kind != want)
			continue;
		text = record_json(rec);
		if (!text)
			continue;
		if (count++)
			sbuf_add(&b, ",", 1);
		sbuf_add(&b, text, strlen(text));
		free(text);
	}
	snprintf(tail, sizeof(tail), "],\"next\":%llu}", next);
	sbuf_add(&b, tail, strlen(tail));
	if (b.failed)
		answer_error(st, 500, "out of memory");
	else
		mock_respond(st, 200, NULL, 0, b.p, b.len, NULL);
	free(b.p);
}

static void stats_get(struct mock_stream *st)
{
	struct mock_server *srv = st->conn->srv;
	const struct mock_stats *s = &srv->stats;
	json_t *status = json_object();

	rules_expire(srv);
	for (int i = 0; i < 600; i++) {
		char key[16];

		if (!s->status[i])
			continue;
		snprintf(key, sizeof(key), "%d", i);
		json_object_set_new(status, key,
				    json_integer((json_int_t)s->status[i]));
	}
	answer_json(
	    st, 200,
	    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		      "s:I, s:I, s:o}",
		      "requests", (json_int_t)s->requests, "apns",
		      (json_int_t)s->apns, "fcm", (json_int_t)s->fcm, "oauth",
		      (json_int_t)s->oauth, "other", (json_int_t)s->other,
		      "connections", (json_int_t)s->connections,
		      "connections_open", (json_int_t)srv->nconns,
		      "jwt_tokens_seen", (json_int_t)s->jwt_tokens_seen,
		      "tls_failed", (json_int_t)s->tls_failed, "rules",
		      (json_int_t)srv->nrules, "delayed",
		      (json_int_t)srv->ndelayed, "records",
		      (json_int_t)srv->rec_count, "status", status));
}

void mock_control_handle(struct mock_stream *st)
{
	struct mock_server *srv = st->conn->srv;
	const char *method = mock_str(st, &st->method);
	const char *path = mock_str(st, &st->path);
	const char *q = strchr(path, '?');
	size_t plen = q ? (size_t)(q - path) : strlen(path);
	int post = strcmp(method, "POST") == 0,
	    get = strcmp(method, "GET") == 0;

#define ROUTE(lit) (plen == sizeof(lit) - 1 && memcmp(path, lit, plen) == 0)
	if (ROUTE("/mock/script")) {
		if (post)
			script_post(st);
		else if (get)
			script_get(st);
		else if (strcmp(method, "DELETE") == 0) {
			rules_clear(srv);
			answer_json(
			    st, 200,
			    json_pack("{s:b, s:i}", "ok", 1, "rules", 0));
		} else
			answer_error(st, 405, "POST, GET or DELETE");
	} else if (ROUTE("/mock/reset")) {
		if (!post) {
			answer_error(st, 405, "POST");
			return;
		}
		rules_clear(srv);
		records_clear(srv);
		memset(&srv->stats, 0, sizeof(srv->stats));
		srv->rec_next = 0;
		answer_json(st, 200, json_pack("{s:b}", "ok", 1));
	} else if (ROUTE("/mock/requests")) {
		if (get)
			requests_get(st, q ? q + 1 : NULL);
		else
			answer_error(st, 405, "GET");
	} else if (ROUTE("/mock/stats")) {
		if (get)
			stats_get(st);
		else
			answer_error(st, 405, "GET");
	} else {
		answer_error(st, 404, "unknown control endpoint");
	}
#undef ROUTE
}

void mock_control_free(struct mock_server *srv)
{
	rules_clear(srv);
	free(srv->rules);
	srv->rules = NULL;
	if (srv->records)
		records_clear(srv);
}

/*
 * api.c - shared pieces of the JSON endpoints. See api.h.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "config.h"
#include "http.h"
#include "pushrelay.h"

int pr_api_depth(json_t *v, int limit)
{
	int best = 0;

	if (limit <= 0)
		return 1;
	if (json_is_object(v)) {
		const char *k;
		json_t *c;

		json_object_foreach(v, k, c)
		{
			int d = pr_api_depth(c, limit - 1);

			if (d > best)
				best = d;
			if (best >= limit)
				break;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;

		json_array_foreach(v, i, c)
		{
			int d = pr_api_depth(c, limit - 1);

			if (d > best)
				best = d;
			if (best >= limit)
				break;
		}
	}
	return best + 1;
}

/*
 * Does JSON text nest deeper than max containers? Counted on the bytes,
 * brackets inside strings skipped, before anything parses it: jansson's
 * parser recurses once a level, as deep as the limit it was built with.
 * When it does, field gets the top-level member it happens in ("" if
 * none, or if the name is not plain ASCII) and *index the element of that
 * member when it is an array of objects (a batch), else -1. Malformed
 * text is the parser's to report.
 */
static int nests_deeper(const char *p, size_t len, int max, char *field,
			size_t flen, long *index)
{
	size_t str = 0, last = 0, last_len = 0, key = 0, key_len = 0;
	int depth = 0, in_str = 0, esc = 0, in_obj = 0, seen_top = 0;
	long idx = -1;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (in_str) {
			if (esc) {
				esc = 0;
			} else if (c == '\\') {
				esc = 1;
			} else if (c == '"') {
				in_str = 0;
				last = str;
				last_len = i - str;
			}
			continue;
		}
		switch (c) {
		case '"':
			in_str = 1;
			str = i + 1;
			break;
		case ':':
			if (depth == 1) {
				key = last;
				key_len = last_len;
				idx = -1;
			}
			break;
		case ',':
			if (depth == 2 && idx >= 0)
				idx++;
			break;
		case '[':
		case '{':
			/* A second top-level value: malformed, jansson says so.
			 */
			if (depth == 0 && seen_top)
				return 0;
			seen_top = 1;
			if (++depth == 2)
				idx = c == '[' ? 0 : -1;
			else if (depth == 3)
				in_obj = c == '{';
			if (depth > max)
				goto deep;
			break;
		case ']':
		case '}':
			/* Unbalanced: malformed, left to jansson. */
			if (--depth < 0)
				return 0;
			if (depth == 0)
				key_len = 0;
			break;
		default: break;
		}
	}
	return 0;
deep:
	field[0] = '\0';
	*index = -1;
	if (key_len == 0 || key_len >= flen)
		return 1;
	for (size_t i = 0; i < key_len; i++)
		if (p[key + i] < 0x20 || p[key + i] > 0x7e ||
		    p[key + i] == '\\')
			return 1;
	memcpy(field, p + key, key_len);
	field[key_len] = '\0';
	*index = in_obj ? idx : -1;
	return 1;
}

/* Answer 400 for a document nested too deep, naming where when known. */
static void too_deep(struct pr_request *req, const char *field, long index)
{
	if (field && *field && index >= 0)
		pr_respond_error_at(req, 400, "invalid_json", field, index,
				    "JSON nested deeper than %d levels in "
				    "%s[%ld]",
				    PR_API_MAX_DEPTH, field, index);
	else if (field && *field)
		pr_respond_error(req, 400, "invalid_json", field,
				 "JSON nested deeper than %d levels in %s",
				 PR_API_MAX_DEPTH, field);
	else
		pr_respond_error(req, 400, "invalid_json", NULL,
				 "JSON nested deeper than %d levels",
				 PR_API_MAX_DEPTH);
}

json_t *pr_api_body(struct pr_request *req)
{
	const char *ct = pr_request_header(req, "content-type");
	json_error_t jerr;
	json_t *doc;
	char field[64];
	long index;

	if (ct && strncasecmp(ct, "application/json", 16) != 0) {
		pr_respond_error(req, 415, "unsupported_media_type", NULL,
				 "the body must be application/json");
		return NULL;
	}
	if (pr_buf_avail(&req->body) == 0) {
		pr_respond_error(req, 400, "invalid_json", NULL,
				 "the request needs a JSON body");
		return NULL;
	}
	/* Too deep for us is refused before the parser recurses into it. */
	if (nests_deeper(pr_buf_peek(&req->body), pr_buf_avail(&req->body),
			 PR_API_MAX_DEPTH, field, sizeof(field), &index)) {
		too_deep(req, field, index);
		return NULL;
	}
	/* jansson refuses NUL in strings and invalid UTF-8. */
	doc = json_loadb(pr_buf_peek(&req->body), pr_buf_avail(&req->body),
			 JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		pr_respond_error(req, 400, "invalid_json", NULL,
				 "malformed JSON at line %d column %d: %s",
				 jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		pr_respond_error(req, 400, "invalid_json", NULL,
				 "the body must be a JSON object");
		return NULL;
	}
	/* A scalar at the bottom counts as a level too. */
	if (pr_api_depth(doc, PR_API_MAX_DEPTH + 1) > PR_API_MAX_DEPTH) {
		const char *k, *name = NULL;
		json_t *c, *deep = NULL, *el;
		size_t i;
		int n;

		json_object_foreach(doc, k, c)
		{
			if (pr_api_depth(c, PR_API_MAX_DEPTH) >=
			    PR_API_MAX_DEPTH) {
				name = k;
				deep = c;
				break;
			}
		}
		/* In an array of objects (a batch), which element. */
		index = -1;
		json_array_foreach(deep, i, el)
		{
			if (pr_api_depth(el, PR_API_MAX_DEPTH - 1) >=
			    PR_API_MAX_DEPTH - 1) {
				if (json_is_object(el))
					index = (long)i;
				break;
			}
		}
		n = snprintf(field, sizeof(field), "%s", name ? name : "");
		too_deep(req, n > 0 && (size_t)n < sizeof(field) ? field : NULL,
			 index);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

const char *pr_api_text(json_t *v, size_t max)
{
	const char *s = json_string_value(v);
	size_t n;

	if (!s)
		return NULL;
	n = json_string_length(v);
	if (n == 0 || n > max)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return NULL;
	return s;
}

void pr_api_store_error(struct pr_request *req, int rv, const char *reason)
{
	switch (rv) {
	case PR_ERR_LIMIT:
		pr_response_header(req, "Retry-After", "30");
		pr_respond_error(req, 429, "queue_full", NULL,
				 "the relay's queue is full; retry later");
		return;
	case PR_ERR_BUSY:
		pr_response_header(req, "Retry-After", "1");
		pr_respond_error(req, 503, "overloaded", NULL,
				 "too many requests waiting for storage; "
				 "retry later");
		return;
	case PR_ERR_NOTFOUND:
		pr_respond_error(req, 404, "not_found", NULL, "%s",
				 reason && *reason ? reason : "not found");
		return;
	case PR_ERR_INVAL:
		pr_respond_error(req, 400, "invalid_request", NULL, "%s",
				 reason && *reason ? reason : "invalid");
		return;
	default:
		pr_response_header(req, "Retry-After", "5");
		pr_respond_error(req, 503, "storage_unavailable", NULL,
				 "storage failed (%s); nothing was stored, "
				 "retry later",
				 reason && *reason ? reason : pr_strerror(rv));
		return;
	}
}

void pr_api_time(long long t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#include <stdlib.h>

#include "server.h"
#include "store.h"

struct pr_api_call *pr_api_call_new(struct pr_server *s, struct pr_request *req,
				    int op, int ok_status)
{
	struct pr_api_call *call = calloc(1, sizeof(*call));

	if (!call) {
		pr_respond_error(req, 500, "internal", NULL, "out of memory");
		return NULL;
	}
	call->req = req;
	call->server = s;
	call->ok_status = ok_status;
	call->job.op = (enum pr_store_op)op;
	call->job.now = (int64_t)time(NULL);
	return call;
}

const char *pr_api_call_keep(struct pr_api_call *call, const char *s)
{
	if (!s || call->n_own >= PR_ARRAY_SIZE(call->own))
		return NULL;
	call->own[call->n_own] = strdup(s);
	return call->own[call->n_own++];
}

void pr_api_call_free(struct pr_api_call *call)
{
	if (!call)
		return;
	for (size_t i = 0; i < call->n_own; i++)
		free(call->own[i]);
	json_decref(call->hold);
	json_decref(call->job.result);
	free(call);
}

static void call_abort(struct pr_request *req, void *arg)
{
	struct pr_api_call *call = arg;

	call->req = NULL;
}

static void call_done(struct pr_store_job *job, void *arg)
{
	struct pr_api_call *call = arg;
	struct pr_request *req = call->req;

	if (!req)
		goto out;
	if (job->rv) {
		pr_api_store_error(req, job->rv, job->err);
		goto out;
	}
	if (call->finish) {
		call->finish(call);
		goto out;
	}
	pr_respond_json(req, call->ok_status,
			job->result ? json_incref(job->result) : json_object());
out:
	pr_api_call_free(call);
}

void pr_api_call_submit(struct pr_api_call *call)
{
	struct pr_request *req = call->req;
	int rv;

	call->job.done = call_done;
	call->job.arg = call;
	rv = pr_store_submit(call->server->store, &call->job);
	if (rv) {
		pr_api_store_error(req, rv, NULL);
		pr_api_call_free(call);
		return;
	}
	pr_request_defer(req, call_abort, call);
}

const struct pr_app_config *pr_api_app(struct pr_request *req,
				       struct pr_server *s, const char *name)
{
	const struct pr_app_config *app;

	if (!name) {
		if (s->cfg->n_apps == 1)
			return &s->cfg->apps[0];
		pr_respond_error(req, 400, "invalid_request", "app",
				 "app: required when more than one app is "
				 "configured");
		return NULL;
	}
	app = pr_config_app(s->cfg, name);
	if (!app)
		pr_respond_error(req, 400, "invalid_request", "app",
				 "app: no such app");
	return app;
}

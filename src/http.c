/*
 * http.c - the protocol-neutral request: building it from what a session
 * parsed, looking things up in it, and answering it. Answers are recorded
 * here once for both protocols (metrics, access log), then handed to the
 * session's respond hook.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"

void pr_request_init(struct pr_request *req, struct pr_conn *conn,
		     enum pr_proto_kind proto, const struct pr_request_ops *ops,
		     void *session)
{
	struct pr_server *s = conn->server;

	memset(req, 0, sizeof(*req));
	req->conn = conn;
	req->server = s;
	req->proto = proto;
	req->ops = ops;
	req->session = session;
	req->started = ev_now(s->loop);
	pr_buf_init(&req->body, (size_t)s->cfg->max_body_bytes);
	pr_server_request_id(s, req->id);
}

void pr_request_cleanup(struct pr_request *req)
{
	size_t i;

	for (i = 0; i < req->n_headers; i++) {
		free(req->headers[i].name);
		free(req->headers[i].value);
	}
	free(req->headers);
	for (i = 0; i < req->n_resp_headers; i++) {
		free(req->resp_headers[i].name);
		free(req->resp_headers[i].value);
	}
	for (i = 0; i < req->n_params; i++)
		free(req->params[i]);
	free(req->target);
	free(req->path);
	free(req->resp_body);
	pr_buf_cleanup(&req->body);
	memset(req, 0, sizeof(*req));
}

static int count_header_bytes(struct pr_request *req, size_t n)
{
	size_t max = (size_t)req->server->cfg->max_header_bytes;

	if (n > max || req->header_bytes > max - n)
		return PR_ERR_LIMIT;
	req->header_bytes += n;
	return PR_OK;
}

int pr_request_set_method(struct pr_request *req, const char *m, size_t len)
{
	if (len == 0 || len >= sizeof(req->method))
		return PR_ERR_INVAL;
	for (size_t i = 0; i < len; i++)
		if (!isupper((unsigned char)m[i]))
			return PR_ERR_INVAL;
	memcpy(req->method, m, len);
	req->method[len] = '\0';
	return count_header_bytes(req, len);
}

int pr_request_set_target(struct pr_request *req, const char *t, size_t len)
{
	const char *q;
	size_t plen;
	int rv;

	rv = count_header_bytes(req, len);
	if (rv)
		return rv;
	if (len == 0 || t[0] != '/' || req->target)
		return PR_ERR_INVAL;
	/* Targets are ASCII (RFC 3986); anything else is percent-encoded. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return PR_ERR_INVAL;
	req->target = strndup(t, len);
	if (!req->target)
		return PR_ERR_NOMEM;
	q = memchr(req->target, '?', len);
	plen = q ? (size_t)(q - req->target) : len;
	req->path = strndup(req->target, plen);
	if (!req->path)
		return PR_ERR_NOMEM;
	req->query = q ? req->target + plen + 1 : NULL;
	return PR_OK;
}

int pr_request_add_header(struct pr_request *req, const char *name, size_t nlen,
			  const char *value, size_t vlen)
{
	struct pr_kv *kv;
	size_t max = (size_t)req->server->cfg->max_headers;
	int rv;

	rv = count_header_bytes(req, nlen + vlen + 4);
	if (rv)
		return rv;
	if (req->n_headers >= max)
		return PR_ERR_LIMIT;
	if (nlen == 0)
		return PR_ERR_INVAL;
	if (req->n_headers == req->cap_headers) {
		size_t cap = req->cap_headers ? req->cap_headers * 2 : 8;

		if (cap > max)
			cap = max;
		kv = realloc(req->headers, cap * sizeof(*kv));
		if (!kv)
			return PR_ERR_NOMEM;
		req->headers = kv;
		req->cap_headers = cap;
	}
	kv = &req->headers[req->n_headers];
	kv->name = strndup(name, nlen);
	kv->value = strndup(value, vlen);
	if (!kv->name || !kv->value) {
		free(kv->name);
		free(kv->value);
		return PR_ERR_NOMEM;
	}
	for (char *p = kv->name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	req->n_headers++;
	return PR_OK;
}

void pr_request_take_id(struct pr_request *req)
{
	const char *v = pr_request_header(req, "x-request-id");
	size_t n;

	if (!v)
		return;
	n = strlen(v);
	if (n == 0 || n > PR_REQUEST_ID_LEN)
		return;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && v[i] != '-' &&
		    v[i] != '_' && v[i] != '.')
			return;
	memcpy(req->id, v, n + 1);
}

const char *pr_request_header(const struct pr_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode [s, s+n) into out; '+' is a space in query strings. */
static int decode(const char *s, size_t n, char *out, size_t outlen, int plus)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return PR_ERR_INVAL;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return PR_ERR_INVAL;
			c = hi * 16 + lo;
			if (c == 0)
				return PR_ERR_INVAL;
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (o + 1 >= outlen)
			return PR_ERR_INVAL;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

int pr_request_query(const struct pr_request *req, const char *key, char *out,
		     size_t outlen)
{
	const char *p = req->query;
	size_t klen = strlen(key);

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		size_t nlen = eq ? (size_t)(eq - p) : n;

		if (nlen == klen && memcmp(p, key, klen) == 0) {
			if (!eq)
				return decode("", 0, out, outlen, 1);
			return decode(eq + 1, n - nlen - 1, out, outlen, 1);
		}
		p = amp ? amp + 1 : NULL;
	}
	return -1;
}

int pr_response_header(struct pr_request *req, const char *name,
		       const char *value)
{
	struct pr_kv *kv;

	if (req->n_resp_headers >= PR_MAX_RESP_HEADERS)
		return PR_ERR_LIMIT;
	kv = &req->resp_headers[req->n_resp_headers];
	kv->name = strdup(name);
	kv->value = strdup(value);
	if (!kv->name || !kv->value) {
		free(kv->name);
		free(kv->value);
		kv->name = kv->value = NULL;
		return PR_ERR_NOMEM;
	}
	req->n_resp_headers++;
	return PR_OK;
}

void pr_respond(struct pr_request *req, int status, const char *content_type,
		const char *body, size_t len)
{
	struct pr_server *s = req->server;
	size_t route = req->route ? req->route->index : (size_t)-1;
	double elapsed;

	if (req->responded)
		return;
	req->responded = 1;
	req->status = status;
	req->resp_type = content_type;
	if (len) {
		req->resp_body = malloc(len);
		if (!req->resp_body) {
			/* Out of memory: say so with a static body. */
			static const char oom[] = "{\"error\":{\"code\":"
						  "\"internal\",\"message\":"
						  "\"out of memory\"}}";
			req->status = 500;
			req->resp_type = "application/json";
			req->resp_body = strdup(oom);
			len = req->resp_body ? sizeof(oom) - 1 : 0;
		} else {
			memcpy(req->resp_body, body, len);
		}
	}
	req->resp_len = len;

	elapsed = ev_time() - req->started;
	pr_metrics_request(s->metrics, route, req->status, elapsed);
	if (s->cfg->log_access)
		pr_log(PR_LOG_INFO, req->id, "%s %s %s %d %zu %.3fms",
		       req->conn->peer, req->method,
		       req->path ? req->path : "-", req->status, len,
		       elapsed * 1000.0);
	req->ops->respond(req);
}

void pr_respond_json(struct pr_request *req, int status, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	if (!text) {
		pr_respond_error(req, 500, "internal", NULL,
				 "could not encode the response");
		return;
	}
	pr_respond(req, status, "application/json", text, strlen(text));
	free(text);
}

static void respond_error(struct pr_request *req, int status, const char *code,
			  const char *field, long index, const char *fmt,
			  va_list ap)
{
	char msg[512];
	json_t *err, *doc;

	if (req->responded)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	err = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (err && field)
		json_object_set_new(err, "field", json_string(field));
	if (err && index >= 0)
		json_object_set_new(err, "index", json_integer(index));
	doc = err ? json_pack("{s:o}", "error", err) : NULL;
	if (status >= 500)
		pr_log(PR_LOG_WARN, req->id, "%d %s: %s", status, code, msg);
	else
		pr_log(PR_LOG_DEBUG, req->id, "%d %s: %s", status, code, msg);
	pr_respond_json(req, status, doc);
}

void pr_respond_error(struct pr_request *req, int status, const char *code,
		      const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	respond_error(req, status, code, field, -1, fmt, ap);
	va_end(ap);
}

void pr_respond_error_at(struct pr_request *req, int status, const char *code,
			 const char *field, long index, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	respond_error(req, status, code, field, index, fmt, ap);
	va_end(ap);
}

void pr_request_defer(struct pr_request *req,
		      void (*on_abort)(struct pr_request *, void *), void *arg)
{
	req->deferred = 1;
	req->on_abort = on_abort;
	req->abort_arg = arg;
}

void pr_request_abort(struct pr_request *req)
{
	void (*cb)(struct pr_request *, void *) = req->on_abort;

	if (req->responded || !cb)
		return;
	/* The peer is gone: nothing may answer from here on, not even the
	 * callback (an answer would reach a session being freed). */
	req->on_abort = NULL;
	req->responded = 1;
	cb(req, req->abort_arg);
}

const char *pr_http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

size_t pr_http_error_body(char *out, size_t outlen, const char *code,
			  const char *message)
{
	int n = snprintf(out, outlen,
			 "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
			 code, message);

	if (n < 0 || (size_t)n >= outlen)
		return 0;
	return (size_t)n;
}

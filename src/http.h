/*
 * http.h - the protocol-neutral request and response. HTTP/1.1 and HTTP/2
 * sessions fill a pr_request, hand it to the router, and turn whatever the
 * handler answers into bytes on the wire. Handlers see only this header.
 *
 * Lifetime: the session allocates the request and frees it after the
 * response has been handed to the protocol, or after the peer went away.
 * A handler that does not answer before it returns has deferred the
 * response: it must call pr_request_defer() with an abort callback, and it
 * may use the request until it answers or the abort callback runs.
 */
#ifndef PR_HTTP_H
#define PR_HTTP_H

#include <stddef.h>
#include <jansson.h>

#include "buf.h"

#define PR_REQUEST_ID_LEN   16
#define PR_MAX_RESP_HEADERS 8
#define PR_MAX_ROUTE_PARAMS 4

enum pr_proto_kind { PR_PROTO_HTTP1 = 1, PR_PROTO_HTTP2 = 2 };

struct pr_kv {
	char *name;
	char *value;
};

struct pr_request;
struct pr_route;

/* What a protocol session does with a finished response. */
struct pr_request_ops {
	/*
	 * Put req's response on the wire (or queue it). Called once, by
	 * pr_respond(). The session may free req before returning, unless
	 * the handler is still on the stack (req->in_handler), in which
	 * case it frees it when the handler returns.
	 */
	void (*respond)(struct pr_request *req);
};

struct pr_request {
	char id[PR_REQUEST_ID_LEN + 1];
	struct pr_server *server;
	struct pr_conn *conn;
	enum pr_proto_kind proto;

	char method[16];
	char *target; /* raw request-target, owned */
	char *path;   /* points into target storage copy, NUL-terminated */
	char *query;  /* after '?', or NULL */

	struct pr_kv *headers; /* request headers, names lower-cased */
	size_t n_headers;
	size_t cap_headers;
	size_t header_bytes; /* bytes counted against max_header_bytes */
	struct pr_buf body;  /* bounded by max_body_bytes */

	/* Filled by the router. */
	const struct pr_route *route;
	char *params[PR_MAX_ROUTE_PARAMS];
	size_t n_params;

	/* The response. */
	int status;
	struct pr_kv resp_headers[PR_MAX_RESP_HEADERS];
	size_t n_resp_headers;
	const char *resp_type;
	char *resp_body;
	size_t resp_len;
	int responded;
	int in_handler;
	int deferred;
	int close_after; /* HTTP/1.1: close the connection after this */

	void (*on_abort)(struct pr_request *req, void *arg);
	void *abort_arg;

	const struct pr_request_ops *ops;
	void *session;	/* the protocol session's per-request state */
	double started; /* ev_now() when the request began */
};

/* Fill in a new request. ops/session come from the protocol session. */
void pr_request_init(struct pr_request *req, struct pr_conn *conn,
		     enum pr_proto_kind proto, const struct pr_request_ops *ops,
		     void *session);
/* Free everything the request owns (not the struct itself). */
void pr_request_cleanup(struct pr_request *req);

/*
 * Request building, used by the sessions. Each returns 0, PR_ERR_LIMIT
 * when a configured bound is passed, PR_ERR_INVAL for malformed input or
 * PR_ERR_NOMEM.
 */
int pr_request_set_method(struct pr_request *req, const char *m, size_t len);
int pr_request_set_target(struct pr_request *req, const char *t, size_t len);
int pr_request_add_header(struct pr_request *req, const char *name, size_t nlen,
			  const char *value, size_t vlen);
/* Adopt the X-Request-Id header when it is short and safe. */
void pr_request_take_id(struct pr_request *req);

/* Case-insensitive header lookup; NULL when absent. */
const char *pr_request_header(const struct pr_request *req, const char *name);
/*
 * Look up a query parameter, percent-decoded into out. Returns the decoded
 * length, -1 when absent, PR_ERR_INVAL when malformed or too long.
 */
int pr_request_query(const struct pr_request *req, const char *key, char *out,
		     size_t outlen);

/* Add a response header (copied). At most PR_MAX_RESP_HEADERS. */
int pr_response_header(struct pr_request *req, const char *name,
		       const char *value);

/*
 * Answer the request. The body is copied; content_type may be NULL for
 * an empty body. Safe to call once; later calls are ignored.
 */
void pr_respond(struct pr_request *req, int status, const char *content_type,
		const char *body, size_t len);
/* Answer with a JSON document; takes ownership of (steals) `doc`. */
void pr_respond_json(struct pr_request *req, int status, json_t *doc);
/*
 * Answer {"error":{"code":code,"message":...}}. `field` (may be NULL)
 * names the offending input field. Every error leaves the relay this way.
 */
void pr_respond_error(struct pr_request *req, int status, const char *code,
		      const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The same with the batch index of the offending item (index >= 0). */
void pr_respond_error_at(struct pr_request *req, int status, const char *code,
			 const char *field, long index, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Say the handler will answer later; see the lifetime rules above. */
void pr_request_defer(struct pr_request *req,
		      void (*on_abort)(struct pr_request *, void *), void *arg);
/* Called by the session when the peer went away before an answer. The
 * abort callback must not answer (any answer is ignored); it only lets
 * go of the request. */
void pr_request_abort(struct pr_request *req);

/* "OK", "Not Found", ... for a status code. */
const char *pr_http_reason(int status);

/* Write a full JSON error body for status/code/message into a caller's
 * buffer (used where no request exists, e.g. a connection refused for
 * load). Returns the length, or 0 when it does not fit. */
size_t pr_http_error_body(char *out, size_t outlen, const char *code,
			  const char *message);

#endif

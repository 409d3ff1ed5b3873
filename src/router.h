/*
 * router.h - maps a method and a path pattern to a handler. Patterns are
 * literal segments and {name} segments ("/v1/devices/{id}"); a {name}
 * matches one non-empty segment and is handed to the handler, percent-
 * decoded, in req->params. An unknown path answers 404; a known path with
 * another method answers 405 with Allow.
 */
#ifndef PR_ROUTER_H
#define PR_ROUTER_H

#include <stddef.h>

#include "http.h"

typedef void pr_handler_fn(struct pr_request *req, void *arg);

enum pr_route_flags {
	PR_ROUTE_PUBLIC = 1 << 0, /* served on API listeners */
	PR_ROUTE_ADMIN = 1 << 1,  /* served on admin listeners */
};

struct pr_route {
	char method[16];
	char *pattern; /* owned copy; also the metrics label */
	pr_handler_fn *fn;
	void *arg;
	unsigned flags;
	size_t index; /* position in the router, for metrics */
};

struct pr_router *pr_router_new(void);
void pr_router_free(struct pr_router *r);

/* Register a route; the pattern is copied. 0 or PR_ERR_INVAL/NOMEM. */
int pr_router_add(struct pr_router *r, const char *method, const char *pattern,
		  pr_handler_fn *fn, void *arg, unsigned flags);

/*
 * Find the handler for req (on a listener of kind `listener_flags`) and
 * run it, or answer 404/405. Does not return an error: every outcome is
 * an HTTP answer or a deferral. The calling session sets req->in_handler
 * around this call so that an answer given synchronously does not free
 * the request under the caller.
 */
void pr_router_dispatch(struct pr_router *r, struct pr_request *req,
			unsigned listener_flags);

size_t pr_router_count(const struct pr_router *r);
const struct pr_route *pr_router_get(const struct pr_router *r, size_t i);

#endif

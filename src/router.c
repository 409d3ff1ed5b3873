/*
 * router.c - method + path pattern to handler. Routes are few (tens), so
 * dispatch is a linear scan comparing segments in place; no allocation
 * happens unless a route with {params} matches.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "pushrelay.h"
#include "router.h"

#define MAX_ROUTES 128

struct pr_router {
	struct pr_route routes[MAX_ROUTES];
	size_t n;
};

struct pr_router *pr_router_new(void)
{
	return calloc(1, sizeof(struct pr_router));
}

void pr_router_free(struct pr_router *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->routes[i].pattern);
	free(r);
}

int pr_router_add(struct pr_router *r, const char *method, const char *pattern,
		  pr_handler_fn *fn, void *arg, unsigned flags)
{
	struct pr_route *rt;

	if (r->n >= MAX_ROUTES || !fn || pattern[0] != '/' ||
	    strlen(method) >= sizeof(rt->method))
		return PR_ERR_INVAL;
	rt = &r->routes[r->n];
	rt->pattern = strdup(pattern);
	if (!rt->pattern)
		return PR_ERR_NOMEM;
	snprintf(rt->method, sizeof(rt->method), "%s", method);
	rt->fn = fn;
	rt->arg = arg;
	rt->flags = flags;
	rt->index = r->n;
	r->n++;
	return PR_OK;
}

size_t pr_router_count(const struct pr_router *r)
{
	return r->n;
}

const struct pr_route *pr_router_get(const struct pr_router *r, size_t i)
{
	return i < r->n ? &r->routes[i] : NULL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode one path segment into a new string; NULL if malformed. */
static char *decode_segment(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi =
			    i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
			int lo =
			    i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

/*
 * Does path match pattern? On a match with params, store the spans of the
 * {param} segments in spans (start, length pairs) and their count.
 */
static int match(const char *pattern, const char *path, const char **spans,
		 size_t *lens, size_t *nspans)
{
	const char *p = pattern, *q = path;

	*nspans = 0;
	while (*p && *q) {
		if (*p == '{') {
			const char *end = strchr(q, '/');
			size_t n = end ? (size_t)(end - q) : strlen(q);

			if (n == 0 || *nspans >= PR_MAX_ROUTE_PARAMS)
				return 0;
			spans[*nspans] = q;
			lens[*nspans] = n;
			(*nspans)++;
			p = strchr(p, '}');
			if (!p)
				return 0;
			p++;
			q += n;
			continue;
		}
		if (*p != *q)
			return 0;
		p++;
		q++;
	}
	return *p == '\0' && *q == '\0';
}

static void add_allow(struct pr_request *req, const char *allow)
{
	pr_response_header(req, "Allow", allow);
}

void pr_router_dispatch(struct pr_router *r, struct pr_request *req,
			unsigned listener_flags)
{
	const char *spans[PR_MAX_ROUTE_PARAMS];
	size_t lens[PR_MAX_ROUTE_PARAMS], nspans;
	char allow[128] = "";
	size_t alen = 0;
	int path_known = 0;

	for (size_t i = 0; i < r->n; i++) {
		struct pr_route *rt = &r->routes[i];

		if (!(rt->flags & listener_flags))
			continue;
		if (!match(rt->pattern, req->path, spans, lens, &nspans))
			continue;
		path_known = 1;
		if (strcmp(rt->method, req->method) != 0 &&
		    !(strcmp(rt->method, "GET") == 0 &&
		      strcmp(req->method, "HEAD") == 0)) {
			if (!strstr(allow, rt->method)) {
				int w = snprintf(allow + alen,
						 sizeof(allow) - alen, "%s%s",
						 alen ? ", " : "", rt->method);
				if (w > 0 && (size_t)w < sizeof(allow) - alen)
					alen += (size_t)w;
			}
			continue;
		}
		req->route = rt;
		for (size_t k = 0; k < nspans; k++) {
			req->params[k] = decode_segment(spans[k], lens[k]);
			if (!req->params[k]) {
				req->n_params = k;
				pr_respond_error(req, 400, "bad_path", NULL,
						 "malformed percent-encoding "
						 "in the path");
				return;
			}
		}
		req->n_params = nspans;
		rt->fn(req, rt->arg);
		if (!req->responded && !req->deferred)
			pr_respond_error(req, 500, "internal", NULL,
					 "the handler gave no answer");
		return;
	}
	if (path_known) {
		add_allow(req, allow);
		pr_respond_error(req, 405, "method_not_allowed", NULL,
				 "%s is not allowed here; allowed: %s",
				 req->method, allow);
		return;
	}
	pr_respond_error(req, 404, "not_found", NULL, "no such endpoint: %s",
			 req->path);
}

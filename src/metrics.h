/*
 * metrics.h - counters and gauges rendered as Prometheus text. Everything
 * here is touched only from the event-loop thread. Label sets are bounded
 * by construction: routes are the router's patterns and status codes fall
 * in 100..599.
 */
#ifndef PR_METRICS_H
#define PR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct pr_metrics;

struct pr_metrics *pr_metrics_new(size_t n_routes);
void pr_metrics_free(struct pr_metrics *m);

/* Connections. */
void pr_metrics_conn_open(struct pr_metrics *m);
void pr_metrics_conn_close(struct pr_metrics *m);
void pr_metrics_conn_rejected(struct pr_metrics *m);
uint64_t pr_metrics_conn_current(const struct pr_metrics *m);

/* One finished request on route index `route` (or (size_t)-1 when no route
 * matched) with HTTP status `status` after `seconds`. */
void pr_metrics_request(struct pr_metrics *m, size_t route, int status,
			double seconds);

/* Append the Prometheus text exposition. route_name(i) gives labels. */
int pr_metrics_render(const struct pr_metrics *m, struct pr_buf *out,
		      const char *(*route_name)(void *ctx, size_t i,
						const char **method),
		      void *ctx);

#endif

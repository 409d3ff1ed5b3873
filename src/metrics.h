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

/* Events taken by POST /v1/events: queued, or duplicates of earlier ids. */
void pr_metrics_events(struct pr_metrics *m, uint64_t queued,
		       uint64_t duplicate);
/* Messages handed to inbox clients (long poll or stream), and acks. */
void pr_metrics_inbox_fetched(struct pr_metrics *m, uint64_t messages);
void pr_metrics_inbox_acked(struct pr_metrics *m);

/*
 * Push-job queue depth by state, as last counted by the store (a count is
 * a store job, so /metrics serves a cached copy refreshed in the
 * background). n_states names with their counts; `at` is ev_now() of the
 * count. Copies at most PR_METRICS_QUEUE_STATES states.
 */
#define PR_METRICS_QUEUE_STATES 16
void pr_metrics_queue_set(struct pr_metrics *m, const char *const *states,
			  const uint64_t *counts, size_t n_states, double at);
/* ev_now() of the last count (0: never), and whether one is running. */
double pr_metrics_queue_at(const struct pr_metrics *m);
/* Seconds the oldest pending or retrying push has waited, as counted. */
void pr_metrics_queue_set_oldest(struct pr_metrics *m, double seconds);
int pr_metrics_queue_busy(const struct pr_metrics *m);
void pr_metrics_queue_set_busy(struct pr_metrics *m, int busy);
/* The queue families; `now` is ev_now() for the age of the count. */
int pr_metrics_render_queue(const struct pr_metrics *m, struct pr_buf *out,
			    double now);

/* Append the Prometheus text exposition. route_name(i) gives labels. */
int pr_metrics_render(const struct pr_metrics *m, struct pr_buf *out,
		      const char *(*route_name)(void *ctx, size_t i,
						const char **method),
		      void *ctx);

#endif

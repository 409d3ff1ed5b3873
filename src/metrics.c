/*
 * metrics.c - the daemon's counters and their Prometheus text form.
 * Request counters are kept per route and status in a small fixed table
 * per route (a route answers a handful of distinct statuses); a status
 * beyond the table's room is counted under its class ("5xx").
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "pushrelay.h"

#define STATUS_SLOTS 16 /* exact statuses per route */
#define CLASS_SLOTS  5	/* then one overflow counter per class 1xx..5xx */

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
				 0.025,	 0.05,	0.1,	0.25,  0.5,
				 1.0,	 2.5,	5.0,	10.0};
#define NBUCKETS PR_ARRAY_SIZE(buckets)

struct status_slot {
	int status; /* 0 = free; 1..5 = class overflow "Nxx" */
	uint64_t count;
};

struct route_counts {
	struct status_slot slots[STATUS_SLOTS + CLASS_SLOTS];
};

struct pr_metrics {
	uint64_t conn_current;
	uint64_t conn_total;
	uint64_t conn_rejected;
	size_t n_routes;
	struct route_counts *routes; /* n_routes + 1; the last is "unmatched" */
	uint64_t dur_buckets[NBUCKETS];
	uint64_t dur_count;
	double dur_sum;
	uint64_t events_queued;
	uint64_t events_duplicate;
	uint64_t inbox_fetched;
	uint64_t inbox_acked;
	/* Cached push-job counts by state (see pr_metrics_queue_set). */
	char queue_state[PR_METRICS_QUEUE_STATES][32];
	uint64_t queue_count[PR_METRICS_QUEUE_STATES];
	size_t queue_n;
	double queue_oldest; /* seconds, from the same count */
	double queue_at;
	int queue_busy;
};

struct pr_metrics *pr_metrics_new(size_t n_routes)
{
	struct pr_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->n_routes = n_routes;
	m->routes = calloc(n_routes + 1, sizeof(*m->routes));
	if (!m->routes) {
		free(m);
		return NULL;
	}
	return m;
}

void pr_metrics_free(struct pr_metrics *m)
{
	if (!m)
		return;
	free(m->routes);
	free(m);
}

void pr_metrics_conn_open(struct pr_metrics *m)
{
	m->conn_current++;
	m->conn_total++;
}

void pr_metrics_conn_close(struct pr_metrics *m)
{
	if (m->conn_current)
		m->conn_current--;
}

void pr_metrics_conn_rejected(struct pr_metrics *m)
{
	m->conn_rejected++;
}

uint64_t pr_metrics_conn_current(const struct pr_metrics *m)
{
	return m->conn_current;
}

void pr_metrics_request(struct pr_metrics *m, size_t route, int status,
			double seconds)
{
	struct route_counts *rc;
	size_t i;

	if (route >= m->n_routes)
		route = m->n_routes;
	if (status < 100 || status > 599)
		status = 500;
	rc = &m->routes[route];
	for (i = 0; i < STATUS_SLOTS; i++) {
		if (rc->slots[i].status == status || rc->slots[i].status == 0) {
			rc->slots[i].status = status;
			rc->slots[i].count++;
			goto timing;
		}
	}
	/* What did not fit is counted by class ("4xx"). */
	i = STATUS_SLOTS + (size_t)(status / 100) - 1;
	rc->slots[i].status = status / 100;
	rc->slots[i].count++;
timing:
	if (seconds < 0)
		seconds = 0;
	for (i = 0; i < NBUCKETS; i++)
		if (seconds <= buckets[i])
			m->dur_buckets[i]++;
	m->dur_count++;
	m->dur_sum += seconds;
}

void pr_metrics_events(struct pr_metrics *m, uint64_t queued,
		       uint64_t duplicate)
{
	m->events_queued += queued;
	m->events_duplicate += duplicate;
}

void pr_metrics_inbox_fetched(struct pr_metrics *m, uint64_t messages)
{
	m->inbox_fetched += messages;
}

void pr_metrics_inbox_acked(struct pr_metrics *m)
{
	m->inbox_acked++;
}

/* A state name is kept only when it is a plain label value. */
static int plain_name(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_' ||
		      (s[n] >= '0' && s[n] <= '9')))
			return 0;
	return n > 0 && n < 32;
}

void pr_metrics_queue_set(struct pr_metrics *m, const char *const *states,
			  const uint64_t *counts, size_t n_states, double at)
{
	size_t k = 0;

	for (size_t i = 0; i < n_states && k < PR_METRICS_QUEUE_STATES; i++) {
		if (!states[i] || !plain_name(states[i]))
			continue;
		snprintf(m->queue_state[k], sizeof(m->queue_state[k]), "%s",
			 states[i]);
		m->queue_count[k] = counts[i];
		k++;
	}
	m->queue_n = k;
	m->queue_at = at;
}

double pr_metrics_queue_at(const struct pr_metrics *m)
{
	return m->queue_at;
}

int pr_metrics_queue_busy(const struct pr_metrics *m)
{
	return m->queue_busy;
}

void pr_metrics_queue_set_busy(struct pr_metrics *m, int busy)
{
	m->queue_busy = busy;
}

void pr_metrics_queue_set_oldest(struct pr_metrics *m, double seconds)
{
	m->queue_oldest = seconds > 0 ? seconds : 0;
}

int pr_metrics_render_queue(const struct pr_metrics *m, struct pr_buf *out,
			    double now)
{
	int rv = 0;

	rv |= pr_buf_appends(
	    out, "# HELP pushrelay_push_queue_depth Push jobs by state, "
		 "as of the last background count.\n"
		 "# TYPE pushrelay_push_queue_depth gauge\n");
	for (size_t i = 0; i < m->queue_n; i++)
		rv |= pr_buf_printf(out,
				    "pushrelay_push_queue_depth{state=\"%s\"} "
				    "%llu\n",
				    m->queue_state[i],
				    (unsigned long long)m->queue_count[i]);
	if (m->queue_at > 0)
		rv |= pr_buf_printf(
		    out,
		    "# HELP pushrelay_push_queue_depth_age_seconds Age "
		    "of the queue depth count.\n"
		    "# TYPE pushrelay_push_queue_depth_age_seconds "
		    "gauge\n"
		    "pushrelay_push_queue_depth_age_seconds %.3f\n"
		    "# HELP pushrelay_oldest_pending_age_seconds How long "
		    "the oldest pending or retrying push has waited.\n"
		    "# TYPE pushrelay_oldest_pending_age_seconds gauge\n"
		    "pushrelay_oldest_pending_age_seconds %.0f\n",
		    now > m->queue_at ? now - m->queue_at : 0.0,
		    m->queue_oldest);
	return rv ? PR_ERR_LIMIT : PR_OK;
}

int pr_metrics_render(const struct pr_metrics *m, struct pr_buf *out,
		      const char *(*route_name)(void *ctx, size_t i,
						const char **method),
		      void *ctx)
{
	int rv = 0;

	rv |= pr_buf_printf(
	    out,
	    "# HELP pushrelay_connections Open client connections.\n"
	    "# TYPE pushrelay_connections gauge\n"
	    "pushrelay_connections %llu\n"
	    "# HELP pushrelay_connections_accepted_total Connections "
	    "accepted.\n"
	    "# TYPE pushrelay_connections_accepted_total counter\n"
	    "pushrelay_connections_accepted_total %llu\n"
	    "# HELP pushrelay_connections_rejected_total Connections "
	    "turned away with 503 (max_connections reached or out of "
	    "descriptors).\n"
	    "# TYPE pushrelay_connections_rejected_total counter\n"
	    "pushrelay_connections_rejected_total %llu\n",
	    (unsigned long long)m->conn_current,
	    (unsigned long long)m->conn_total,
	    (unsigned long long)m->conn_rejected);
	rv |= pr_buf_printf(
	    out,
	    "# HELP pushrelay_events_ingested_total Events taken by POST "
	    "/v1/events, by status.\n"
	    "# TYPE pushrelay_events_ingested_total counter\n"
	    "pushrelay_events_ingested_total{status=\"queued\"} %llu\n"
	    "pushrelay_events_ingested_total{status=\"duplicate\"} %llu\n"
	    "# HELP pushrelay_inbox_messages_fetched_total Messages "
	    "handed to inbox clients (long poll and stream).\n"
	    "# TYPE pushrelay_inbox_messages_fetched_total counter\n"
	    "pushrelay_inbox_messages_fetched_total %llu\n"
	    "# HELP pushrelay_inbox_acks_total Acknowledgements "
	    "committed.\n"
	    "# TYPE pushrelay_inbox_acks_total counter\n"
	    "pushrelay_inbox_acks_total %llu\n",
	    (unsigned long long)m->events_queued,
	    (unsigned long long)m->events_duplicate,
	    (unsigned long long)m->inbox_fetched,
	    (unsigned long long)m->inbox_acked);
	rv |= pr_buf_appends(
	    out, "# HELP pushrelay_http_requests_total HTTP requests "
		 "answered, by route and status.\n"
		 "# TYPE pushrelay_http_requests_total counter\n");
	for (size_t r = 0; r <= m->n_routes; r++) {
		const char *method = "", *name = "unmatched";

		if (r < m->n_routes)
			name = route_name(ctx, r, &method);
		for (size_t i = 0; i < STATUS_SLOTS + CLASS_SLOTS; i++) {
			const struct status_slot *sl = &m->routes[r].slots[i];
			char st[16];

			if (!sl->count)
				continue;
			if (sl->status < 10)
				snprintf(st, sizeof(st), "%dxx", sl->status);
			else
				snprintf(st, sizeof(st), "%d", sl->status);
			rv |= pr_buf_printf(
			    out,
			    "pushrelay_http_requests_total{route=\"%s\","
			    "method=\"%s\",status=\"%s\"} %llu\n",
			    name, method, st, (unsigned long long)sl->count);
		}
	}
	rv |= pr_buf_appends(
	    out, "# HELP pushrelay_http_request_duration_seconds Time "
		 "from request start to answer.\n"
		 "# TYPE pushrelay_http_request_duration_seconds "
		 "histogram\n");
	for (size_t i = 0; i < NBUCKETS; i++)
		rv |= pr_buf_printf(
		    out,
		    "pushrelay_http_request_duration_seconds_bucket{le="
		    "\"%g\"} %llu\n",
		    buckets[i], (unsigned long long)m->dur_buckets[i]);
	rv |= pr_buf_printf(
	    out,
	    "pushrelay_http_request_duration_seconds_bucket{le=\"+Inf\"} "
	    "%llu\n"
	    "pushrelay_http_request_duration_seconds_sum %.6f\n"
	    "pushrelay_http_request_duration_seconds_count %llu\n",
	    (unsigned long long)m->dur_count, m->dur_sum,
	    (unsigned long long)m->dur_count);
	return rv ? PR_ERR_LIMIT : PR_OK;
}

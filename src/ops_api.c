/*
 * ops_api.c - health, readiness, metrics and version. /healthz says the
 * process answers; /readyz says it should get traffic (not draining);
 * /metrics is the Prometheus text exposition.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "dispatch.h"
#include "http.h"
#include "metrics.h"
#include "ops_api.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "version.h"
#include "webhook.h"

#define METRICS_MAX   (4u << 20)
#define QUEUE_REFRESH 5.0 /* seconds between background queue counts */

static void healthz(struct pr_request *req, void *arg)
{
	pr_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;

	if (s->draining) {
		pr_response_header(req, "Retry-After", "1");
		pr_respond_json(req, 503,
				json_pack("{s:s}", "status", "draining"));
		return;
	}
	if (s->store && pr_store_health(s->store)) {
		pr_response_header(req, "Retry-After", "5");
		pr_respond_json(req, 503,
				json_pack("{s:s, s:s}", "status", "unavailable",
					  "reason", "storage is failing"));
		return;
	}
	if (pr_dispatch_all_paused(s->dispatch)) {
		pr_response_header(req, "Retry-After", "30");
		pr_respond_json(req, 503,
				json_pack("{s:s, s:s}", "status", "unavailable",
					  "reason",
					  "every push provider is "
					  "paused"));
		return;
	}
	pr_respond_json(req, 200, json_pack("{s:s}", "status", "ready"));
}

static const char *route_name(void *ctx, size_t i, const char **method)
{
	const struct pr_route *rt = pr_router_get(ctx, i);

	*method = rt->method;
	return rt->pattern;
}

static long resident_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *fp = fopen("/proc/self/statm", "r");

	if (!fp)
		return 0;
	if (fscanf(fp, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(fp);
	return rss * sysconf(_SC_PAGESIZE);
}

static int render_store(const struct pr_store *st, struct pr_buf *out)
{
	const struct pr_store_stats *ss = pr_store_stats(st);
	int rv;

	rv = pr_buf_printf(
	    out,
	    "# HELP pushrelay_store_commits_total Store transactions "
	    "committed.\n"
	    "# TYPE pushrelay_store_commits_total counter\n"
	    "pushrelay_store_commits_total %llu\n"
	    "# HELP pushrelay_store_commit_errors_total Store transactions "
	    "that failed.\n"
	    "# TYPE pushrelay_store_commit_errors_total counter\n"
	    "pushrelay_store_commit_errors_total %llu\n"
	    "# HELP pushrelay_store_pending_jobs Jobs waiting for the "
	    "store.\n"
	    "# TYPE pushrelay_store_pending_jobs gauge\n"
	    "pushrelay_store_pending_jobs %zu\n"
	    "# HELP pushrelay_store_healthy 1 while storage takes writes; "
	    "0 from a failed transaction until a write commits again "
	    "(/readyz answers 503 meanwhile).\n"
	    "# TYPE pushrelay_store_healthy gauge\n"
	    "pushrelay_store_healthy %d\n"
	    "# HELP pushrelay_store_commit_latency_seconds From submit to "
	    "commit.\n"
	    "# TYPE pushrelay_store_commit_latency_seconds histogram\n",
	    (unsigned long long)ss->commits,
	    (unsigned long long)ss->commit_errors, pr_store_pending(st),
	    pr_store_health(st) == 0);
	for (size_t i = 0; rv == PR_OK && i < 12; i++)
		rv = pr_buf_printf(
		    out,
		    "pushrelay_store_commit_latency_seconds_"
		    "bucket{le=\"%g\"} %llu\n",
		    pr_store_latency_bounds[i],
		    (unsigned long long)ss->commit_latency_buckets[i]);
	if (rv == PR_OK)
		rv = pr_buf_printf(
		    out,
		    "pushrelay_store_commit_latency_seconds_bucket{le="
		    "\"+Inf\"} %llu\n"
		    "pushrelay_store_commit_latency_seconds_sum %.6f\n"
		    "pushrelay_store_commit_latency_seconds_count %llu\n",
		    (unsigned long long)ss->jobs, ss->commit_seconds,
		    (unsigned long long)ss->jobs);
	return rv;
}

/*
 * Queue depth: counting push_jobs is a store query, so a scrape never
 * waits for one. A scrape that finds the cached count older than
 * QUEUE_REFRESH starts a PR_STORE_STATS job in the background (at most one
 * at a time) and renders what is cached, with its age. The job is on the
 * heap: pr_store_free() runs its done() before the metrics are freed.
 */
struct queue_count {
	struct pr_store_job job;
	struct pr_server *s;
};

static void queue_counted(struct pr_store_job *job, void *arg)
{
	struct queue_count *qc = arg;
	struct pr_metrics *m = qc->s->metrics;
	const char *names[PR_METRICS_QUEUE_STATES];
	uint64_t counts[PR_METRICS_QUEUE_STATES];
	const char *k;
	json_t *v;
	size_t n = 0;

	if (m) {
		pr_metrics_queue_set_busy(m, 0);
		if (job->rv == 0) {
			json_object_foreach(
			    json_object_get(job->result, "queue"), k, v)
			{
				if (n == PR_METRICS_QUEUE_STATES)
					break;
				if (!json_is_integer(v) ||
				    json_integer_value(v) < 0)
					continue;
				names[n] = k;
				counts[n++] = (uint64_t)json_integer_value(v);
			}
			pr_metrics_queue_set(m, names, counts, n,
					     ev_now(qc->s->loop));
			pr_metrics_queue_set_oldest(
			    m, (double)json_integer_value(json_object_get(
				   job->result, "oldest_pending_age")));
		}
	}
	json_decref(job->result);
	free(qc);
}

static void queue_refresh(struct pr_server *s)
{
	struct queue_count *qc;
	double at = pr_metrics_queue_at(s->metrics);

	if (!s->store || s->draining || pr_metrics_queue_busy(s->metrics) ||
	    (at > 0 && ev_now(s->loop) - at < QUEUE_REFRESH))
		return;
	qc = calloc(1, sizeof(*qc));
	if (!qc)
		return;
	qc->s = s;
	qc->job.op = PR_STORE_STATS;
	qc->job.now = (int64_t)time(NULL);
	qc->job.done = queue_counted;
	qc->job.arg = qc;
	if (pr_store_submit(s->store, &qc->job)) {
		free(qc); /* busy: the next scrape tries again */
		return;
	}
	pr_metrics_queue_set_busy(s->metrics, 1);
}

static void metrics(struct pr_request *req, void *arg)
{
	struct pr_server *s = arg;
	struct pr_buf out;
	int rv;

	queue_refresh(s);
	pr_buf_init(&out, METRICS_MAX);
	rv = pr_buf_printf(
	    &out,
	    "# HELP pushrelay_build_info Version of the running relay.\n"
	    "# TYPE pushrelay_build_info gauge\n"
	    "pushrelay_build_info{version=\"%s\"} 1\n"
	    "# HELP pushrelay_start_time_seconds Start time since the "
	    "epoch.\n"
	    "# TYPE pushrelay_start_time_seconds gauge\n"
	    "pushrelay_start_time_seconds %.0f\n"
	    "# HELP process_resident_memory_bytes Resident memory.\n"
	    "# TYPE process_resident_memory_bytes gauge\n"
	    "process_resident_memory_bytes %ld\n"
	    "# HELP pushrelay_draining 1 while shutting down.\n"
	    "# TYPE pushrelay_draining gauge\n"
	    "pushrelay_draining %d\n",
	    pr_version(), s->started, resident_bytes(), s->draining);
	if (rv == PR_OK)
		rv = pr_metrics_render(s->metrics, &out, route_name, s->router);
	if (rv == PR_OK && s->store)
		rv = render_store(s->store, &out);
	if (rv == PR_OK && s->store)
		rv = pr_metrics_render_queue(s->metrics, &out, ev_now(s->loop));
	if (rv == PR_OK && s->dispatch)
		rv = pr_dispatch_render_metrics(s->dispatch, &out);
	if (rv == PR_OK)
		rv = pr_webhook_render_metrics(s->webhook, &out);
	if (rv) {
		pr_buf_cleanup(&out);
		pr_respond_error(req, 500, "internal", NULL,
				 "metrics do not fit in %u bytes", METRICS_MAX);
		return;
	}
	pr_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8",
		   pr_buf_peek(&out), pr_buf_avail(&out));
	pr_buf_cleanup(&out);
}

static void version(struct pr_request *req, void *arg)
{
	pr_respond_json(req, 200,
			json_pack("{s:s, s:s, s:o}", "name", PACKAGE_NAME,
				  "version", pr_version(), "libraries",
				  pr_version_libraries()));
}

int pr_ops_api_register(struct pr_server *s)
{
	const unsigned both = PR_ROUTE_PUBLIC | PR_ROUTE_ADMIN;
	int rv = 0;

	rv |= pr_router_add(s->router, "GET", "/healthz", healthz, s, both);
	rv |= pr_router_add(s->router, "GET", "/readyz", readyz, s, both);
	rv |= pr_router_add(s->router, "GET", "/metrics", metrics, s, both);
	rv |= pr_router_add(s->router, "GET", "/v1/version", version, s, both);
	return rv ? PR_ERR_NOMEM : PR_OK;
}

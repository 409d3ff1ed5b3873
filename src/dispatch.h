/*
 * dispatch.h - the push dispatcher: takes due push jobs from the store,
 * has the app's provider build each request, sends it through the
 * HTTP/2 client, classifies the answer and writes the outcome back, all
 * on the event loop. See dispatch.c for the flow.
 */
#ifndef PR_DISPATCH_H
#define PR_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct pr_server;
struct pr_dispatch;

/*
 * Make provider instances for every app (credentials are read and
 * checked here: a bad key file stops start-up with a reason in err) and
 * the HTTP/2 client. Sends nothing until pr_dispatch_start().
 */
struct pr_dispatch *pr_dispatch_new(struct pr_server *s, char *err,
				    size_t errlen);
/* Recover pushes left in flight by a previous run, then start sending. */
void pr_dispatch_start(struct pr_dispatch *d);
/* Stop claiming new work (shutdown). */
void pr_dispatch_stop(struct pr_dispatch *d);
/* Write every result known so far (at shutdown, before the store
 * closes). */
void pr_dispatch_flush(struct pr_dispatch *d);
/* Jobs in flight stay in flight in the store: the next start sends them
 * again with the same apns-id. */
void pr_dispatch_free(struct pr_dispatch *d);

/* New work may be due (an ingest committed): look soon. */
void pr_dispatch_kick(struct pr_dispatch *d);

/* Pause or resume a provider ("apns" / "fcm") for one app, or for every
 * app when app is NULL. Returns how many instances changed. */
int pr_dispatch_pause(struct pr_dispatch *d, const char *provider,
		      const char *app, const char *why);
int pr_dispatch_resume(struct pr_dispatch *d, const char *provider,
		       const char *app);
/* A device whose app holds a stream with pushes turned off: while on,
 * its pushes are cancelled as delivered (counted: several streams may
 * hold one device). */
void pr_dispatch_quiet(struct pr_dispatch *d, const char *app,
		       const char *device, int on);

/* 1 when at least one provider instance exists and every one is
 * paused (for /readyz). */
int pr_dispatch_all_paused(const struct pr_dispatch *d);
size_t pr_dispatch_in_flight(const struct pr_dispatch *d);

/* Append the Prometheus lines for pushes. */
int pr_dispatch_render_metrics(const struct pr_dispatch *d, struct pr_buf *out);
/* {"apns":{"sent":N,"failed":N,"retrying":N,"paused":bool,...},...} for
 * the admin API; the caller owns the result. */
void *pr_dispatch_stats_json(const struct pr_dispatch *d);

#endif

/*
 * webhook.h - delivery receipts: for each app with a webhook_url, the
 * relay POSTs what happened to its messages to the chat server, in
 * batches, signed, retried with backoff.
 *
 * A receipt is one JSON object:
 *
 *   {"type":"pushed"|"fetched"|"acknowledged"|"token_invalid",
 *    "id":"<unique per receipt, for deduplication>", "app":..., "user":...,
 *    "device":..., "at":"<RFC 3339 UTC, ms>", ...detail}
 *
 * with the detail of its type: pushed {message_id, seq, provider_id};
 * token_invalid {message_id, reason}; fetched {message_ids:[...], up_to};
 * acknowledged {up_to}. A POST carries {"receipts":[...]} as
 * application/json with the header
 *
 *   X-Pushrelay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
 *
 * where the HMAC is keyed with the app's webhook_secret over the bytes
 * "<t>." followed by the body (Stripe's scheme: a receiver recomputes it,
 * compares in constant time and refuses a t too far from its clock, so a
 * captured request cannot be replayed later). Each attempt is signed
 * afresh; the body of a retried batch is the same bytes.
 *
 * Receipts are best-effort notifications, unlike events: they live in
 * memory only, bounded by [webhook] max_pending, and are dropped (and
 * counted in pushrelay_webhook_dropped_total) when that is full, when the
 * receiver refuses them (a 4xx other than 429), after max_attempts, and
 * at shutdown. Nothing here ever blocks the loop or fails its caller.
 */
#ifndef PR_WEBHOOK_H
#define PR_WEBHOOK_H

#include <jansson.h>
#include <stdint.h>

struct pr_buf;
struct pr_server;
struct pr_webhook;

/*
 * Make the receipts sender for every app of s->cfg that has a
 * webhook_url (its URL and secret are copied: restart to change them).
 * The [webhook] settings are read from s->cfg as they are used, so a
 * reload applies to them at once. NULL only when out of memory; an object
 * with no app to serve is valid and costs nothing. Free with
 * pr_webhook_free() after the last caller that may emit is gone.
 */
struct pr_webhook *pr_webhook_new(struct pr_server *s);
/* Abort POSTs in flight and drop every receipt not yet delivered. */
void pr_webhook_free(struct pr_webhook *w);

/* Does app (its name) want receipts? w may be NULL. */
int pr_webhook_wanted(const struct pr_webhook *w, const char *app);

/*
 * Queue one receipt of type (a static string) for app's webhook. detail
 * is stolen (NULL for none): its members are added to the receipt. A
 * no-op when w is NULL or app has no webhook_url. The strings are copied.
 */
void pr_webhook_emit(struct pr_webhook *w, const char *app, const char *type,
		     const char *user, const char *device, json_t *detail);

/*
 * The emit points, each building its detail only when the app wants
 * receipts. item is a claimed push as the store hands it out (app, user,
 * device_id, message_id, seq); provider_id and reason may be NULL.
 */
void pr_webhook_pushed(struct pr_webhook *w, const json_t *item,
		       const char *provider_id);
void pr_webhook_token_invalid(struct pr_webhook *w, const json_t *item,
			      const char *reason);
/* messages: an inbox page ({seq, id, ...} objects); those with
 * after < seq <= up_to were served. Nothing when none was. */
void pr_webhook_fetched(struct pr_webhook *w, const char *app, const char *user,
			const char *device, const json_t *messages,
			int64_t after, int64_t up_to);
/* result: what PR_STORE_ACK answered ({"acked":N, ...}); nothing when it
 * is NULL (the ack failed). */
void pr_webhook_acknowledged(struct pr_webhook *w, const char *app,
			     const char *user, const char *device,
			     const json_t *result);

/* Prometheus text for /metrics: 0, or PR_ERR_LIMIT when out doesn't fit. */
int pr_webhook_render_metrics(const struct pr_webhook *w, struct pr_buf *out);

#endif

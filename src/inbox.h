/*
 * inbox.h - what mobile apps use when they reconnect: the inbox long poll
 * (GET /v1/inbox), acknowledgements (POST /v1/inbox/ack) and the
 * WebSocket stream (GET /v1/stream). Waiting long polls and open streams
 * are kept per (app, user) and woken when an ingest for that user
 * commits.
 */
#ifndef PR_INBOX_H
#define PR_INBOX_H

#include <stddef.h>

struct pr_server;
struct pr_inbox;

struct pr_inbox *pr_inbox_new(struct pr_server *s);
/* Answers every waiting long poll (empty) and closes every stream. */
void pr_inbox_free(struct pr_inbox *ib);
int pr_inbox_register(struct pr_server *s);

/* New messages for (app, user) are committed: wake their waiters. */
void pr_inbox_wake(struct pr_inbox *ib, const char *app, const char *user);
/* Long polls and streams held now. */
size_t pr_inbox_waiting(const struct pr_inbox *ib);

#endif

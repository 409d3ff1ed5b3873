/* api_ingest.h - POST /v1/events: chat servers hand over messages. */
#ifndef PR_API_INGEST_H
#define PR_API_INGEST_H

struct pr_server;

int pr_api_ingest_register(struct pr_server *s);

#endif

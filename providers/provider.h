/*
 * provider.h - the one interface between the dispatcher and a push
 * provider (APNs, FCM, the null provider). The core never includes a
 * provider's own header; it looks providers up by name here and talks to
 * them only through this const table of operations.
 *
 * A provider turns one push into one HTTP request description, and one
 * HTTP response into a delivery outcome. It never touches sockets.
 */
#ifndef PR_PROVIDER_H
#define PR_PROVIDER_H

#include <stddef.h>

/* A provider's verdict on one push: an outcome, not an error code. */
enum pr_outcome {
	PR_OUTCOME_SENT = 0,      /* accepted by the provider */
	PR_OUTCOME_RETRY,         /* transient: retry with backoff */
	PR_OUTCOME_INVALID_TOKEN, /* dead token: remove the device */
	PR_OUTCOME_REJECTED,      /* permanent for this push: do not retry */
	PR_OUTCOME_AUTH,          /* credentials or config: pause provider */
};

const char *pr_outcome_name(enum pr_outcome o);

/* What a provider builds for one push. Strings are owned by the provider
 * instance and stay valid until the next build call on it. */
struct pr_push_request {
	const char *url;
	const char *headers[16]; /* "name: value", NULL-terminated */
	const char *body;
	size_t body_len;
};

/* The provider's reading of a finished HTTP exchange. */
struct pr_push_response {
	int status;            /* HTTP status, 0 on a transport failure */
	const char *body;      /* may be NULL */
	size_t body_len;
	long retry_after;      /* seconds from Retry-After, -1 when absent */
};

struct pr_push_verdict {
	enum pr_outcome outcome;
	char reason[64];       /* the provider's reason string, if any */
	char message_id[128];  /* provider message id on success */
};

struct pr_provider_ops {
	const char *name;
	/* Classify a response (pure: no I/O), filling *v. */
	void (*classify)(const struct pr_push_response *resp,
			 struct pr_push_verdict *v);
};

/* Look a provider up by name ("null", later "apns", "fcm"); NULL if none. */
const struct pr_provider_ops *pr_provider_find(const char *name);

extern const struct pr_provider_ops pr_null_provider;

#endif

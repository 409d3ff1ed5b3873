/*
 * provider.h - the one interface between the dispatcher and a push
 * provider (APNs, FCM, the null provider). The core never includes a
 * provider's own header; it looks providers up by name here and talks to
 * them only through this const table of operations.
 *
 * A provider never touches sockets. It turns one push into one HTTP
 * request description, and one HTTP response into a delivery verdict.
 * Credentials live in the provider instance (one per app and platform):
 * APNs keeps ONE signed JWT for all connections and refreshes it between
 * 20 and 60 minutes; FCM keeps ONE OAuth2 access token, which the
 * dispatcher fetches through build_auth / handle_auth with one request
 * in flight that sends wait for.
 *
 * Time is always passed in (`now`, unix seconds) so tests drive a clock.
 * Secrets (keys, JWTs, access tokens) never reach a log line or an error
 * string.
 */
#ifndef PR_PROVIDER_H
#define PR_PROVIDER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct pr_app_config;

/* A provider's verdict on one push: an outcome, not an error code. */
enum pr_outcome {
	PR_OUTCOME_SENT = 0,	  /* accepted by the provider */
	PR_OUTCOME_RETRY,	  /* transient: retry with backoff */
	PR_OUTCOME_INVALID_TOKEN, /* dead token: remove the device's token */
	PR_OUTCOME_REJECTED,	  /* permanent for this push: do not retry */
	PR_OUTCOME_AUTH,	  /* credentials or config: pause provider */
	PR_OUTCOME_REAUTH,	  /* credential went stale: refresh, retry */
	PR_OUTCOME_CANCELLED,	  /* not sent: delivered another way (stream) */
};

const char *pr_outcome_name(enum pr_outcome o);

/* One push to build, as the store hands it out. Strings are owned by the
 * caller and valid during build() and classify(). */
struct pr_push {
	int64_t job_id;
	const char *app;
	const char *platform;	 /* "apns" | "fcm" */
	const char *token;	 /* device token */
	const char *environment; /* "production" | "sandbox" (APNs) */
	const char *message_id;	 /* the chat server's id */
	int64_t seq;		 /* the delivery's per-device sequence */
	int mode;		 /* enum pr_push_mode: wakeup | alert */
	const char *push_json; /* the event's "push" object as JSON, or NULL */
	long unread;	       /* queued messages for "badge":"unread" */
	int64_t expires_at;    /* absolute unix seconds */
	const char *apns_id;   /* canonical UUID kept with the job */
	int attempt;	       /* 1 for the first try */
};

#define PR_HTTP_MAX_HEADERS 16

/* An HTTP request a provider built. Heap strings, freed by
 * pr_http_request_cleanup(). */
struct pr_http_request {
	char *url;
	char *headers[PR_HTTP_MAX_HEADERS]; /* "name: value", NULL after the
					       last */
	size_t n_headers;
	char *body;
	size_t body_len;
	const char *method; /* static string: "POST" */
	/* Which credential the provider put in it (a generation it counts;
	 * 0 for none). The dispatcher hands it back in the response, so a
	 * refused credential is told apart from one fetched since. */
	uint64_t credential;
};

void pr_http_request_cleanup(struct pr_http_request *r);
/* Append a header (copied); PR_ERR_LIMIT past PR_HTTP_MAX_HEADERS. */
int pr_http_request_header(struct pr_http_request *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What came back. status 0 means no HTTP response (transport failure:
 * connect, TLS, reset, GOAWAY, timeout); `transport` then says which. */
struct pr_http_response {
	long status;
	const char *body;
	size_t body_len;
	long retry_after;      /* seconds from Retry-After, -1 when absent */
	const char *apns_id;   /* apns-id response header, or NULL */
	const char *transport; /* libcurl's reason when status is 0 */
	double latency;	       /* seconds from submit to completion */
	uint64_t credential;   /* the request's credential generation */
};

struct pr_push_verdict {
	enum pr_outcome outcome;
	char reason[64];       /* provider reason ("BadDeviceToken"), or "" */
	char provider_id[160]; /* APNs apns-id / FCM message name on success */
	long retry_after;      /* seconds the provider asked for, -1 if not */
	int64_t invalid_since; /* APNs 410 timestamp (ms), 0 when absent */
};

/* Settings every provider instance gets besides its app's. */
struct pr_provider_env {
	long jwt_refresh;  /* APNs: seconds between JWT refreshes, 1200..3600 */
	long oauth_margin; /* FCM: refresh this many seconds before expiry */
};

struct pr_provider_ops {
	const char *name; /* "apns", "fcm", "null" */
	/*
	 * Make an instance for one app. Reads and checks the credentials the
	 * app's config names (key files must not be readable by group or
	 * others). 0 or PR_ERR_CONFIG with a reason naming the file (never
	 * its contents) in err. Returns PR_ERR_NOTFOUND when the app does not
	 * configure this provider at all.
	 */
	int (*create)(void **inst, const struct pr_app_config *app,
		      const struct pr_provider_env *env, char *err,
		      size_t errlen);
	void (*destroy)(void *inst);
	/* Does a request need a credential fetched first (FCM's OAuth2
	 * token)? 0 = ready to build; 1 = call build_auth first. */
	int (*needs_auth)(void *inst, time_t now);
	/* Build the credential request (FCM: POST token_uri with a signed
	 * RS256 assertion). NULL for providers without one. */
	int (*build_auth)(void *inst, time_t now, struct pr_http_request *out);
	/* Take the credential response. 0, or an error with a reason (an
	 * auth failure pauses the provider). */
	int (*handle_auth)(void *inst, time_t now,
			   const struct pr_http_response *resp, char *err,
			   size_t errlen);
	/* Build the request for one push. 0 or an error (the push is then
	 * rejected, with the reason in err). */
	int (*build)(void *inst, const struct pr_push *push, time_t now,
		     struct pr_http_request *out, char *err, size_t errlen);
	/* Classify a finished exchange. Pure apart from credential state
	 * (APNs ExpiredProviderToken schedules a JWT refresh). */
	void (*classify)(void *inst, const struct pr_push *push,
			 const struct pr_http_response *resp, time_t now,
			 struct pr_push_verdict *v);
	/* TLS client certificate for the connection (APNs certificate
	 * auth), or NULL: file paths and the type ("PEM" or "P12"). */
	void (*client_cert)(void *inst, const char **cert, const char **key,
			    const char **type, const char **password);
	/* The CA bundle to verify the provider with, or NULL for default. */
	const char *(*ca_file)(void *inst);
};

/* Look a provider up by name; NULL if none. */
const struct pr_provider_ops *pr_provider_find(const char *name);
/* The platforms a device can have, NULL-terminated: "apns", "fcm". */
extern const char *const pr_push_platforms[];
/*
 * The instance of platform's provider for one app: 0 with *ops and *inst
 * set (free with (*ops)->destroy); PR_ERR_NOTFOUND when the app does not
 * configure it; otherwise an error with `[app "NAME"] platform: reason`
 * in err.
 */
int pr_provider_create(const char *platform, const struct pr_app_config *app,
		       const struct pr_provider_env *env,
		       const struct pr_provider_ops **ops, void **inst,
		       char *err, size_t errlen);

extern const struct pr_provider_ops pr_null_provider;
extern const struct pr_provider_ops pr_apns_provider;
extern const struct pr_provider_ops pr_fcm_provider;

#endif

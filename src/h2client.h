/*
 * h2client.h - outgoing HTTP/2 requests on the event loop, through
 * libcurl's multi-socket API in the pattern of curl's evhiperfifo.c: one
 * ev_io per curl socket, one ev_timer, completions read with
 * curl_multi_info_read. No threads, no polling.
 *
 * Requests to one endpoint multiplex over a pool of at most
 * `connections` HTTP/2 connections (CURLOPT_PIPEWAIT), each carrying up
 * to `max_streams` streams (CURLMOPT_MAX_CONCURRENT_STREAMS, raised from
 * libcurl's 100; the server's SETTINGS still rule). Connections are
 * reused; one told to GOAWAY takes no new streams (libcurl's rule), and a
 * stream it refused, a reset, a timeout or a connect/TLS failure
 * completes with status 0 and a reason, for the caller to retry. Idle
 * connections get an HTTP/2 PING every ping_interval
 * (CURLOPT_UPKEEP_INTERVAL_MS + curl_easy_upkeep).
 *
 * Flow control: at most max_in_flight requests exist at once; submit
 * answers PR_ERR_BUSY beyond that, so callers keep the rest in the store.
 */
#ifndef PR_H2CLIENT_H
#define PR_H2CLIENT_H

#include <ev.h>
#include <stddef.h>

#include "buf.h"
#include "provider.h"

struct pr_h2client;
struct pr_h2req;

struct pr_h2client_config {
	long max_in_flight;   /* requests at once (all endpoints) */
	long connections;     /* per endpoint (CURLMOPT_MAX_HOST_CONNECTIONS) */
	long max_streams;     /* per connection */
	long connect_timeout; /* seconds */
	long request_timeout; /* seconds */
	long ping_interval;   /* seconds of idleness before a PING */
	size_t max_response;  /* bytes of response body kept */
};

/* One request. The caller fills the inputs, keeps the struct (and every
 * string it points to) alive until done() has run, and may reuse or free
 * it inside done(). */
struct pr_h2req {
	/* Inputs. */
	const struct pr_http_request *http; /* url, headers, body */
	const char *ca_file;		    /* NULL: the system trust store */
	const char *cert_file;		    /* client certificate, or NULL */
	const char *key_file;
	const char *cert_type; /* "PEM" or "P12" */
	const char *key_password;
	/* 0: HTTP/2 as above. 1: what a web server speaks (webhooks):
	 * HTTP/1.1 for http://, ALPN's choice of h2 or HTTP/1.1 for
	 * https://. */
	int http1;
	long timeout; /* seconds for the whole request; 0: request_timeout */
	void (*done)(struct pr_h2req *req, const struct pr_http_response *resp,
		     void *arg);
	void *arg;

	/* Private to h2client. */
	void *easy;
	void *slist;
	struct pr_buf body;
	char apns_id[64];
	long retry_after;
	char errbuf[256];
	double started;
	struct pr_h2client *client;
	struct pr_h2req *prev, *next;
};

struct pr_h2client *pr_h2client_new(struct ev_loop *loop,
				    const struct pr_h2client_config *cfg);
/* Abort every request in flight (each done() runs with status 0 and the
 * reason "shutting down"), then free. */
void pr_h2client_free(struct pr_h2client *c);

/* Start a request: 0, PR_ERR_BUSY (max_in_flight reached) or
 * PR_ERR_NOMEM / PR_ERR_INVAL. done() is never called from inside
 * submit. */
int pr_h2client_submit(struct pr_h2client *c, struct pr_h2req *req);

size_t pr_h2client_in_flight(const struct pr_h2client *c);

/* Counters for /metrics. */
struct pr_h2client_stats {
	unsigned long long requests; /* finished */
	unsigned long long failures; /* status 0 */
	unsigned long long connects; /* new connections made */
};
const struct pr_h2client_stats *pr_h2client_stats(const struct pr_h2client *c);

#endif

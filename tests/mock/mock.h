/*
 * mock.h - pr-mock, the APNs / FCM / Google OAuth stand-in the relay is
 * tested and benchmarked against. One TLS HTTP/2 server (pr-mock.c) hands
 * each complete request stream to a handler by path:
 *
 *   /3/device/<token>                       apns.c   (APNs provider API)
 *   /v1/projects/<p>/messages:send          fcm.c    (FCM HTTP v1)
 *   /token                                  fcm.c    (OAuth jwt-bearer)
 *   /mock/...                               control.c (scripting, records)
 *
 * A handler validates the request and either answers it with an error at
 * once or calls mock_proceed(), which applies the newest matching script
 * rule (answer with a scripted status, delay, GOAWAY, RST_STREAM, drop the
 * connection) and otherwise lets the handler's success answer go out. TLS
 * rules act before any request: they refuse a new connection's handshake.
 *
 * Ownership: the server owns connections, a connection owns its streams,
 * nghttp2 decides when a stream ends (its close callback frees ours), so a
 * handler may keep a stream only through its delay timer, which stream
 * freeing stops. Everything a request brings is bounded (MOCK_MAX_*).
 */
#ifndef PR_MOCK_H
#define PR_MOCK_H

#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "creds.h"

#define MOCK_MAX_RULES	      1024
#define MOCK_MAX_DELAYED      100000
#define MOCK_MAX_BODY	      (1024 * 1024)
#define MOCK_RECORD_BODY      8192
#define MOCK_MAX_HEADERS      128
#define MOCK_MAX_HEADER_BYTES 65536
#define MOCK_MAX_CONNS	      4096
#define MOCK_MAX_TOKENS	      1024 /* OAuth access tokens remembered */
#define MOCK_REASON_LEN	      64

enum mock_kind {
	MOCK_OTHER = 0,
	MOCK_APNS = 1,
	MOCK_FCM = 2,
	MOCK_OAUTH = 3,
	MOCK_CONTROL = 4,
	MOCK_TLS = 5, /* rules only: the TLS handshake of a new connection */
};

enum mock_action {
	MOCK_RESPOND = 0,
	MOCK_GOAWAY,
	MOCK_RST,
	MOCK_DROP,
	MOCK_CANCELLED, /* records only: the peer or the connection went first
			 */
	MOCK_FAIL,	/* TLS rules: refuse the handshake */
};

/* A script rule (POST /mock/script). */
struct mock_rule {
	uint64_t id;
	unsigned kinds; /* bit (1 << enum mock_kind) per kind it applies to */
	char *token;	/* owned by the rule list; NULL in stream copies */
	int status;	/* 0 = the normal answer */
	char reason[MOCK_REASON_LEN];
	long retry_after; /* -1 = no Retry-After header */
	long delay_ms;
	enum mock_action action;
	long times;	     /* matches left, -1 = forever */
	long error_code;     /* RST_STREAM / GOAWAY code, -1 = default */
	long long timestamp; /* APNs 410 timestamp in ms, -1 = now */
	double expires;	     /* wall clock after which it is gone, 0 = never */
};

/* A header field as offsets into the stream's hbuf (NUL-terminated). */
struct mock_hdr {
	uint32_t name, nlen, value, vlen;
};

struct mock_conn;

struct mock_stream {
	struct mock_conn *conn;
	struct mock_stream *prev, *next;
	int32_t id;
	enum mock_kind kind;
	double at; /* wall clock when the request was complete */

	char *hbuf; /* "name\0value\0" for every field, pseudo ones too */
	size_t hlen, hcap;
	struct mock_hdr *hdrs; /* regular fields, in arrival order */
	size_t nhdr, hdrcap;
	struct mock_hdr method, path, authority; /* vlen 0 = absent */
	int head_over; /* too many or too large header fields */

	char *body; /* request body, at most MOCK_MAX_BODY bytes */
	size_t blen, bcap;
	int body_over;

	char *token; /* owned; device/registration token, NULL if none */
	char apns_id[40];
	char *project; /* owned; FCM project from the path */

	char *resp; /* owned; response body handed to nghttp2 */
	size_t rlen, roff;
	int answered, recorded, dispatched;
	enum mock_action act; /* what the record says was done */

	ev_timer timer; /* a delayed rule */
	int delayed;
	struct mock_rule rule; /* the rule being applied (token NULL) */
};

struct mock_server;

struct mock_conn {
	struct mock_server *srv;
	struct mock_conn *prev, *next;
	uint64_t id;
	int fd;
	SSL *ssl;
	nghttp2_session *ngh; /* NULL until the TLS handshake is done */
	ev_io io;
	unsigned io_events;
	char *out; /* TLS plaintext waiting for SSL_write */
	size_t olen, ooff, ocap;
	int wblocked;	/* SSL_write must be retried with the same bytes */
	int drop;	/* close as soon as nghttp2 is off the stack */
	int hello_seen; /* the ClientHello went past the TLS rules */
	int in_recv;	/* nghttp2_session_mem_recv is on the stack */
	/* Closing gracefully: close_notify and FIN sent, input read and
	 * dropped until the peer closes or linger_w fires, so that a reset
	 * (unread input at close) cannot destroy answers it has not read. */
	int lingering;
	ev_timer linger_w;
	struct mock_stream *streams;
	size_t nstreams;
	struct mock_stream *spare; /* freed streams kept with their buffers */
	size_t nspare;
	/* APNs provider token: the one this connection accepted last, so its
	 * signature is checked once per token, not once per request. */
	char *jwt;
	size_t jwt_len;
	long long jwt_iat;
	double jwt_since; /* when this connection accepted it */
	int streams_raised;
};

/*
 * A request as received, kept raw and turned into JSON only when someone
 * asks (GET /mock/requests): recording must stay cheap under load.
 * data holds method, path, token, body (capped at MOCK_RECORD_BODY) and
 * then each header as name and value, all with the lengths below.
 */
struct mock_record {
	uint64_t n, conn;
	enum mock_kind kind;
	enum mock_action action;
	int status, has_token;
	int32_t stream;
	double at;
	size_t body_len; /* the whole body's length */
	char reason[MOCK_REASON_LEN];
	char *data; /* owned */
	uint32_t mlen, plen, tlen, blen, nhdr;
};

struct mock_stats {
	uint64_t requests, apns, fcm, oauth, other;
	uint64_t connections, jwt_tokens_seen;
	uint64_t tls_failed; /* handshakes refused by a TLS rule */
	uint64_t status[600];
};

struct mock_server {
	struct ev_loop *loop;
	SSL_CTX *ctx;
	int lfd, port;
	char host[16]; /* dotted quad we listen on */
	ev_io lio;
	ev_signal sigterm, sigint;

	/* configuration */
	EVP_PKEY *apns_key; /* NULL = certificate mode: no JWT checks */
	const char *apns_key_id, *apns_team_id;
	struct mock_sa sa;
	int have_sa;
	long token_lifetime;
	size_t max_record;
	uint32_t initial_streams, max_streams;
	int verbose;

	/* state */
	struct mock_conn *conns;
	size_t nconns;
	uint64_t next_conn_id;
	struct mock_rule *rules; /* oldest first; matched newest first */
	size_t nrules;
	uint64_t next_rule_id;
	size_t ndelayed;
	struct mock_record *records; /* ring of max_record */
	size_t rec_head, rec_count;
	uint64_t rec_next;
	struct {
		char tok[64];
		double expires;
	} tokens[MOCK_MAX_TOKENS]; /* issued OAuth access tokens (a ring) */
	size_t tok_next;
	struct mock_stats stats;
	uint64_t rng;
};

/* --- pr-mock.c -------------------------------------------------------- */

/* Value of the first regular header called name (lowercase), or NULL.
 * Valid while the stream lives. */
const char *mock_header(const struct mock_stream *st, const char *name,
			size_t *len);
/* A field of the stream's hbuf as a C string ("" when absent). */
const char *mock_str(const struct mock_stream *st, const struct mock_hdr *h);

/*
 * Answer st: status, extra header fields (may be NULL), a body (copied;
 * may be NULL) with content-type application/json when present. reason
 * (may be NULL) goes to the request record. A stream is answered once;
 * later calls are ignored.
 */
void mock_respond(struct mock_stream *st, int status, const nghttp2_nv *extra,
		  size_t nextra, const char *body, size_t len,
		  const char *reason);

/* A name/value pair for mock_respond's extra headers. */
nghttp2_nv mock_nv(const char *name, const char *value);

/* Write and close as needed after a timer acted on c (c may be freed). */
void mock_conn_kick(struct mock_conn *c);
/* After a connection's first success: raise MAX_CONCURRENT_STREAMS from
 * --initial-streams to --max-streams (APNs with token auth, A-send). */
void mock_conn_raise_streams(struct mock_conn *c);

/* 64 random bits from a per-process xorshift generator (not for keys). */
uint64_t mock_rand(struct mock_server *srv);
/* Wall clock in seconds. */
double mock_now(const struct mock_server *srv);

/* --- control.c -------------------------------------------------------- */

/* Handle a /mock/... request. */
void mock_control_handle(struct mock_stream *st);
/* The request is valid: apply the newest matching rule, or answer it the
 * normal way through the kind's handler. */
void mock_proceed(struct mock_stream *st);
/* Carry out rule r on st (after its delay). */
void mock_apply(struct mock_stream *st, const struct mock_rule *r);
/* Append st to the request records (once). status 0 = not answered. */
void mock_record(struct mock_stream *st, int status, const char *reason,
		 enum mock_action action);
void mock_control_free(struct mock_server *srv);
/* A new connection's ClientHello arrived: 1 when a TLS rule says to refuse
 * the handshake (the rule is counted down). */
int mock_tls_fail(struct mock_server *srv);

/* --- apns.c ----------------------------------------------------------- */

void mock_apns_handle(struct mock_stream *st);
/* Answer a valid request: success when r is NULL or has no status. */
void mock_apns_answer(struct mock_stream *st, const struct mock_rule *r);

/* --- fcm.c ------------------------------------------------------------ */

void mock_fcm_handle(struct mock_stream *st);
void mock_fcm_answer(struct mock_stream *st, const struct mock_rule *r);
void mock_oauth_handle(struct mock_stream *st);
void mock_oauth_answer(struct mock_stream *st, const struct mock_rule *r);

#endif

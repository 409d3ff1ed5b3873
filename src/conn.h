/*
 * conn.h - one accepted connection: the socket (plain or TLS), its bounded
 * output buffer, its timer, and the protocol session that speaks on it.
 * The connection picks HTTP/2 when TLS negotiated "h2" by ALPN or when the
 * first bytes are the HTTP/2 client preface (h2c prior knowledge), and
 * HTTP/1.1 otherwise.
 *
 * A connection can also be made without a socket (pr_conn_new_mem) so the
 * protocol sessions are tested by feeding bytes and reading c->out.
 */
#ifndef PR_CONN_H
#define PR_CONN_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct pr_conn;

/* What a protocol session implements. All take the owning connection. */
struct pr_proto {
	const char *name;
	/* Create the session in c->session. 0 or an enum pr_error. */
	int (*init)(struct pr_conn *c);
	/* Destroy the session; aborts every request still open. */
	void (*free)(struct pr_conn *c);
	/*
	 * Consume input. Returns the number of bytes consumed (fewer than
	 * len when the session paused, e.g. while a pipelined request waits
	 * for its predecessor), or a negative enum pr_error: close now.
	 */
	ssize_t (*recv)(struct pr_conn *c, const uint8_t *data, size_t len);
	/* Move queued output into c->out while it has room. */
	int (*flush)(struct pr_conn *c);
	/* Stop taking new requests; finish those in progress. */
	void (*shutdown)(struct pr_conn *c);
	/* Nonzero while a request is in progress or output is queued. */
	int (*busy)(struct pr_conn *c);
	/* The connection's timer fired (c->timer_kind says which). */
	void (*timeout)(struct pr_conn *c);
};

extern const struct pr_proto pr_http1_proto;
extern const struct pr_proto pr_http2_proto;

enum pr_timer_kind {
	PR_TIMER_NONE = 0,
	PR_TIMER_IDLE,	  /* no request in progress: idle_timeout */
	PR_TIMER_HEADER,  /* reading a request head: header_timeout */
	PR_TIMER_BODY,	  /* reading a body, reset on progress: body_timeout */
	PR_TIMER_DRAIN,	  /* shutting down */
	PR_TIMER_SESSION, /* the session's own duration (WebSocket ping/close)
			   */
};

enum pr_conn_flags {
	PR_CONN_CLOSING = 1 << 0,     /* close once out is flushed */
	PR_CONN_READ_PAUSED = 1 << 1, /* backpressure: not reading */
	PR_CONN_SHUTDOWN = 1 << 2,    /* graceful shutdown requested */
	PR_CONN_MEM = 1 << 3,	      /* no socket: test mode */
	PR_CONN_TLS_DONE = 1 << 4,    /* TLS handshake finished */
	PR_CONN_LINGER = 1 << 5,      /* sent FIN; reading until the peer's */
};

struct pr_conn {
	struct pr_server *server;
	struct pr_listener *listener;
	unsigned listen_flags; /* enum pr_route_flags of the listener */
	int admin_socket;      /* accepted on an admin Unix socket */
	char id[24];	       /* "c" + counter, for log lines */
	char peer[80];

	int fd;
	SSL *ssl;
	ev_io rio;
	ev_io wio;
	ev_timer timer;
	enum pr_timer_kind timer_kind;
	unsigned flags;

	struct pr_buf in;  /* bytes read but not yet consumed by the session */
	struct pr_buf out; /* bytes waiting for the socket */

	const struct pr_proto *proto;
	void *session;
	/* A protocol switch a handler accepted (HTTP/1.1 Upgrade): the
	 * current session installs it with pr_conn_switch_proto() once the
	 * request that asked for it is finished. Freed with the connection
	 * if that never happens. */
	const struct pr_proto *next_proto;
	void *next_session;

	struct pr_conn *prev, *next; /* the server's connection list */
};

/* Wrap an accepted socket (fd is owned from here on). NULL on failure. */
struct pr_conn *pr_conn_new(struct pr_server *s, struct pr_listener *l, int fd,
			    SSL *ssl, const char *peer);
/* A socketless connection for tests; feed it with pr_conn_feed(). */
struct pr_conn *pr_conn_new_mem(struct pr_server *s, unsigned listen_flags,
				const struct pr_proto *proto);
/* Close the socket, free the session and the connection. */
void pr_conn_free(struct pr_conn *c);

/* Test mode: push bytes in as if read from the socket. */
int pr_conn_feed(struct pr_conn *c, const void *data, size_t len);

/*
 * Queue bytes for the peer. PR_ERR_LIMIT when c->out would pass
 * output_buffer_bytes; the caller then fails the request.
 */
int pr_conn_write(struct pr_conn *c, const void *data, size_t len);
/* Ask for the session's flush() and a socket write soon. */
void pr_conn_kick(struct pr_conn *c);
/* Close once everything queued is written. */
void pr_conn_close_after_write(struct pr_conn *c);
/* Arm the connection's single timer for the given purpose. */
void pr_conn_set_timer(struct pr_conn *c, enum pr_timer_kind kind);
/* Arm the timer as PR_TIMER_SESSION to fire after `after` seconds. */
void pr_conn_set_session_timer(struct pr_conn *c, double after);
/*
 * Install c->next_proto/next_session in place of the current session,
 * which is freed: the caller (that session) must not touch its own state
 * afterwards. Input the old session did not consume stays in c->in for
 * the new one (which picks it up with pr_conn_resume()).
 */
void pr_conn_switch_proto(struct pr_conn *c);
/* Free space below the high-water mark for session output. */
size_t pr_conn_out_room(const struct pr_conn *c);
/* Begin a graceful shutdown of this connection. */
void pr_conn_shutdown(struct pr_conn *c);
/* Resume reading after the session un-paused (e.g. a response left). */
void pr_conn_resume(struct pr_conn *c);

#endif

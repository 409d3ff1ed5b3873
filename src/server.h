/*
 * server.h - the daemon object: the event loop, the config in force, the
 * listeners, every open connection, the router and the metrics. Signals
 * are libev watchers here: TERM/INT drain and stop, HUP reloads.
 */
#ifndef PR_SERVER_H
#define PR_SERVER_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pushrelay.h"

struct pr_server {
	struct ev_loop *loop;
	struct pr_config *cfg; /* owned; replaced piecewise on reload */
	struct pr_router *router;
	struct pr_metrics *metrics;
	struct pr_store *store; /* opened by pr_server_start */
	struct pr_auth *auth;
	struct pr_dispatch *dispatch; /* made by pr_server_start */
	struct pr_inbox *inbox;	      /* waiting long polls and streams */
	struct pr_webhook *webhook;   /* delivery receipts; made by start */
	SSL_CTX *tls;		      /* NULL when no listener uses TLS */

	struct pr_listener *listeners;
	struct pr_conn *conns; /* doubly linked */
	size_t n_conns;

	ev_signal sigterm_w;
	ev_signal sigint_w;
	ev_signal sighup_w;
	ev_timer drain_w;
	ev_timer sweep_w;      /* retention sweep */
	ev_timer checkpoint_w; /* WAL checkpoint */
	ev_timer touch_w;      /* write API keys' last use */
	int sweep_running;
	int draining;
	double drain_started;
	int exit_code;
	double started; /* wall-clock start, for uptime */

	uint64_t next_conn;
	uint64_t next_req;
	uint32_t id_salt; /* random per process: request ids never repeat */
	int reserve_fd;	  /* spare fd released to shed load under EMFILE */
};

/*
 * What `pushrelayd -t` checks beyond the syntax: the TLS certificate and
 * key load (and the key is private), and every app's provider credentials
 * load and are private. 0, or an error with a message naming the file.
 */
int pr_server_check_files(const struct pr_config *cfg, char *err,
			  size_t errlen);
/*
 * Make a server from a loaded config (ownership of cfg passes to the
 * server, also on failure). Registers the built-in routes. Listens on
 * nothing yet. Returns NULL and a reason in err on failure.
 */
struct pr_server *pr_server_new(struct ev_loop *loop, struct pr_config *cfg,
				char *err, size_t errlen);
/* Bind the listeners and install the signal watchers. 0 or enum error. */
int pr_server_start(struct pr_server *s, char *err, size_t errlen);
/* Close listeners, let requests in flight finish, then break the loop. */
void pr_server_drain(struct pr_server *s);
/* Re-read cfg->path and apply what can be reloaded. */
int pr_server_reload(struct pr_server *s);
void pr_server_free(struct pr_server *s);

/* Hand a complete request to the router. */
void pr_server_dispatch(struct pr_server *s, struct pr_request *req,
			unsigned listen_flags);
/* Write a fresh request id (PR_REQUEST_ID_LEN hex chars + NUL). */
void pr_server_request_id(struct pr_server *s, char *out);

/* Connection bookkeeping, used by conn.c. */
void pr_server_conn_add(struct pr_server *s, struct pr_conn *c);
void pr_server_conn_remove(struct pr_server *s, struct pr_conn *c);

/* First listener's bound TCP port (tests use port 0). */
int pr_server_first_port(const struct pr_server *s, int admin);

#endif

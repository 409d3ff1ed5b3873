/*
 * listener.h - a listening socket (TCP over IPv4/IPv6, or a Unix socket)
 * and its accept watcher. Accepted sockets become connections; past
 * max_connections, or when the process is out of descriptors, a client
 * gets a 503 and is closed.
 */
#ifndef PR_LISTENER_H
#define PR_LISTENER_H

#include <ev.h>
#include <stddef.h>

#include "config.h"

struct pr_listener {
	struct pr_server *server;
	struct pr_listen_spec spec; /* text is not owned here */
	unsigned flags;		    /* enum pr_route_flags */
	int fd;
	int port; /* bound TCP port */
	ev_io io;
	ev_timer pause; /* accepting is off for a moment (out of fds) */
	double warned;	/* last "out of descriptors" warning */
	unsigned long turned_away; /* clients shed since that warning */
	struct pr_listener *next;
};

/* Bind and listen (not yet accepting). NULL with a reason on failure. */
struct pr_listener *pr_listener_new(struct pr_server *s,
				    const struct pr_listen_spec *spec,
				    unsigned flags, int unix_mode, char *err,
				    size_t errlen);
void pr_listener_start(struct pr_listener *l);
/* Stop accepting and close the socket (a Unix socket file is removed). */
void pr_listener_free(struct pr_listener *l);

#endif

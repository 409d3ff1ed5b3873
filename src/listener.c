/*
 * listener.c - listening sockets. Accepting is bounded per wake-up so one
 * busy listener cannot starve the loop, and a spare descriptor is kept so
 * that when the process runs out of descriptors a waiting client is
 * accepted, answered 503 and closed instead of spinning on EMFILE; when
 * even that is impossible, accepting pauses for a moment.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"

#define ACCEPT_BURST 64
#define BACKLOG	     511
/* Accepting stops this long when a waiting client can be neither taken
 * nor shed (no spare descriptor, or the kernel is out of memory). */
#define ACCEPT_PAUSE 0.1
/* At most one "out of descriptors" warning per this many seconds. */
#define WARN_EVERY 10.0

static void listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents);
static void listener_pause_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* Remove a stale Unix socket left by a dead process; refuse a live one. */
static int clear_unix_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, rv;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? PR_OK : PR_ERR_IO;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return PR_ERR_CONFIG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return PR_ERR_IO;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	rv = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rv == 0) {
		snprintf(err, errlen, "%s is in use by a running process",
			 path);
		return PR_ERR_CONFIG;
	}
	unlink(path);
	return PR_OK;
}

static int bind_unix(struct pr_listener *l, int mode, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	mode_t old;
	int rv;

	rv = clear_unix_path(l->spec.path, err, errlen);
	if (rv)
		return rv;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, l->spec.path, strlen(l->spec.path));
	/* Create the socket file with the final mode: no window where it is
	 * more open than asked. */
	old = umask((mode_t)(~mode & 0777));
	rv = bind(l->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rv != 0)
		return PR_ERR_IO;
	if (chmod(l->spec.path, (mode_t)mode) != 0)
		return PR_ERR_IO;
	return PR_OK;
}

static int bind_tcp(struct pr_listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	memset(&ss, 0, sizeof(ss));
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->spec.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)l->spec.port);
		if (inet_pton(AF_INET6, l->spec.host, &s6->sin6_addr) != 1)
			return PR_ERR_CONFIG;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)l->spec.port);
		if (inet_pton(AF_INET, l->spec.host, &s4->sin_addr) != 1)
			return PR_ERR_CONFIG;
		len = sizeof(*s4);
	}
	if (bind(l->fd, (struct sockaddr *)&ss, len) != 0)
		return PR_ERR_IO;
	len = sizeof(ss);
	if (getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0)
		l->port = ntohs(ss.ss_family == AF_INET6
				    ? ((struct sockaddr_in6 *)&ss)->sin6_port
				    : ((struct sockaddr_in *)&ss)->sin_port);
	return PR_OK;
}

struct pr_listener *pr_listener_new(struct pr_server *s,
				    const struct pr_listen_spec *spec,
				    unsigned flags, int unix_mode, char *err,
				    size_t errlen)
{
	struct pr_listener *l = calloc(1, sizeof(*l));
	int rv;

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->server = s;
	l->spec = *spec;
	l->flags = flags;
	l->fd =
	    socket(spec->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", spec->text,
			 strerror(errno));
		free(l);
		return NULL;
	}
	if (spec->family == AF_UNIX)
		rv = bind_unix(l, unix_mode, err, errlen);
	else
		rv = bind_tcp(l);
	if (rv == PR_OK && listen(l->fd, BACKLOG) != 0)
		rv = PR_ERR_IO;
	if (rv) {
		if (rv == PR_ERR_IO)
			snprintf(err, errlen, "listen %s: %s", spec->text,
				 strerror(errno));
		close(l->fd);
		free(l);
		return NULL;
	}
	ev_io_init(&l->io, listener_accept_cb, l->fd, EV_READ);
	l->io.data = l;
	ev_init(&l->pause, listener_pause_cb);
	l->pause.data = l;
	l->warned = -WARN_EVERY;
	return l;
}

void pr_listener_start(struct pr_listener *l)
{
	ev_io_start(l->server->loop, &l->io);
}

void pr_listener_free(struct pr_listener *l)
{
	if (!l)
		return;
	ev_io_stop(l->server->loop, &l->io);
	ev_timer_stop(l->server->loop, &l->pause);
	close(l->fd);
	if (l->spec.family == AF_UNIX)
		unlink(l->spec.path);
	free(l);
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, n, "%s:%u", host, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, n, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		snprintf(out, n, "unix");
	}
}

/* Over max_connections or out of descriptors: a short 503 on plain
 * listeners, then close. */
static void refuse(struct pr_listener *l, int fd)
{
	char body[160], msg[400];
	size_t blen;
	int n;

	pr_metrics_conn_rejected(l->server->metrics);
	if (!l->spec.tls) {
		blen = pr_http_error_body(body, sizeof(body), "overloaded",
					  "too many connections; retry later");
		n = snprintf(msg, sizeof(msg),
			     "HTTP/1.1 503 Service Unavailable\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\nRetry-After: 1\r\n"
			     "Connection: close\r\n\r\n%s",
			     blen, body);
		/* Best effort: the socket is fresh, so this fits. */
		if (n > 0 && write(fd, msg, (size_t)n) < 0)
			pr_log(PR_LOG_DEBUG, NULL, "503 write failed");
	}
	close(fd);
}

static void listener_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pr_listener *l = w->data;

	ev_io_start(loop, &l->io);
}

/*
 * accept() failed for want of descriptors or memory (err). The waiting
 * client stays in the backlog and the listener stays readable, so doing
 * nothing would spin the loop. Take the client on the spare descriptor and
 * answer it 503; when that is impossible, stop accepting for a moment.
 */
static void cannot_accept(struct pr_listener *l, int err)
{
	struct pr_server *s = l->server;
	double now = ev_now(s->loop);
	int fd = -1, stuck = 1;

	if ((err == EMFILE || err == ENFILE) && s->reserve_fd >= 0) {
		close(s->reserve_fd);
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		/* Nobody waiting any more is fine too. */
		stuck = fd < 0 && errno != EAGAIN && errno != ECONNABORTED;
		if (fd >= 0) {
			refuse(l, fd);
			l->turned_away++;
		}
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (now - l->warned >= WARN_EVERY) {
		pr_log(PR_LOG_WARN, NULL,
		       "accept on %s: %s; %lu client(s) turned away since the "
		       "last warning%s",
		       l->spec.text, strerror(err), l->turned_away,
		       stuck ? "; accepting paused" : "");
		l->warned = now;
		l->turned_away = 0;
	}
	if (stuck) {
		ev_io_stop(s->loop, &l->io);
		ev_timer_set(&l->pause, ACCEPT_PAUSE, 0.0);
		ev_timer_start(s->loop, &l->pause);
	}
}

static void listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pr_listener *l = w->data;
	struct pr_server *s = l->server;

	/* The spare may have been lost while descriptors were short. */
	if (s->reserve_fd < 0)
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char peer[80];
		SSL *ssl = NULL;
		int fd, one = 1;

		fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				cannot_accept(l, errno);
			else if (errno != EAGAIN && errno != EINTR &&
				 errno != ECONNABORTED)
				pr_log_errno(PR_LOG_WARN, NULL, "accept");
			return;
		}
		if (s->n_conns >= (size_t)s->cfg->max_connections ||
		    s->draining) {
			refuse(l, fd);
			continue;
		}
		if (l->spec.family != AF_UNIX)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
		peer_name(&ss, peer, sizeof(peer));
		if (l->spec.tls) {
			ssl = SSL_new(s->tls);
			if (!ssl || SSL_set_fd(ssl, fd) != 1) {
				SSL_free(ssl);
				close(fd);
				continue;
			}
			SSL_set_accept_state(ssl);
		}
		struct pr_conn *c = pr_conn_new(s, l, fd, ssl, peer);
		if (!c) {
			SSL_free(ssl);
			close(fd);
			continue;
		}
		c->listen_flags = l->flags;
		c->admin_socket =
		    (l->flags & PR_ROUTE_ADMIN) && l->spec.family == AF_UNIX;
	}
}

/*
 * conn.c - one client connection on the event loop. It owns the socket,
 * the TLS state, a bounded output buffer and one timer, and passes bytes
 * between the socket and the protocol session (HTTP/1.1 or HTTP/2).
 *
 * A connection is only freed at the end of one of its own callbacks (or by
 * the server), never from inside a session callback: sessions ask for a
 * close with pr_conn_close_after_write() and the I/O path acts on it.
 *
 * Backpressure: when queued output passes half of output_buffer_bytes the
 * connection stops reading until the peer drains it, so a client that
 * pipelines requests without reading answers cannot grow memory.
 */
#include "autoconf.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"

#define READ_CHUNK 16384
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void after_io(struct pr_conn *c);

#define LINGER_SECONDS 2.0

/* Half the connection's own bound: a reload that changes
 * output_buffer_bytes applies to new connections only. */
static size_t high_water(const struct pr_conn *c)
{
	return c->out.max / 2;
}

static void conn_setup(struct pr_conn *c, struct pr_server *s, int fd)
{
	c->server = s;
	c->fd = fd;
	snprintf(c->id, sizeof(c->id), "c%llu",
		 (unsigned long long)++s->next_conn);
	pr_buf_init(&c->in, READ_CHUNK + sizeof(H2_PREFACE));
	pr_buf_init(&c->out, (size_t)s->cfg->output_buffer_bytes);
	ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
	ev_init(&c->timer, conn_timer_cb);
	c->rio.data = c->wio.data = c->timer.data = c;
}

struct pr_conn *pr_conn_new(struct pr_server *s, struct pr_listener *l, int fd,
			    SSL *ssl, const char *peer)
{
	struct pr_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	conn_setup(c, s, fd);
	c->listener = l;
	c->ssl = ssl;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	pr_server_conn_add(s, c);
	pr_metrics_conn_open(s->metrics);
	ev_io_start(s->loop, &c->rio);
	/* Until a request starts, a silent connection gets header_timeout. */
	pr_conn_set_timer(c, PR_TIMER_HEADER);
	if (ssl)
		ev_io_start(s->loop, &c->wio); /* drive the handshake */
	return c;
}

struct pr_conn *pr_conn_new_mem(struct pr_server *s, unsigned listen_flags,
				const struct pr_proto *proto)
{
	struct pr_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	conn_setup(c, s, -1);
	c->flags |= PR_CONN_MEM;
	c->listen_flags = listen_flags;
	/* Tests stand in for an admin Unix socket. */
	c->admin_socket = (listen_flags & PR_ROUTE_ADMIN) != 0;
	snprintf(c->peer, sizeof(c->peer), "test");
	if (proto) {
		c->proto = proto;
		if (proto->init(c)) {
			c->proto = NULL;
			pr_conn_free(c);
			return NULL;
		}
	}
	return c;
}

void pr_conn_free(struct pr_conn *c)
{
	struct pr_server *s = c->server;

	ev_io_stop(s->loop, &c->rio);
	ev_io_stop(s->loop, &c->wio);
	ev_timer_stop(s->loop, &c->timer);
	if (c->next_proto) {
		/* An accepted upgrade that was never installed. */
		void *cur = c->session;

		c->session = c->next_session;
		c->next_proto->free(c);
		c->session = cur;
		c->next_proto = NULL;
	}
	if (c->proto)
		c->proto->free(c);
	if (c->ssl) {
		SSL_set_quiet_shutdown(c->ssl, 1);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0) {
		close(c->fd);
		pr_server_conn_remove(s, c);
		pr_metrics_conn_close(s->metrics);
	}
	pr_buf_cleanup(&c->in);
	pr_buf_cleanup(&c->out);
	free(c);
}

int pr_conn_write(struct pr_conn *c, const void *data, size_t len)
{
	int rv = pr_buf_append(&c->out, data, len);

	if (rv)
		return rv;
	if (!(c->flags & PR_CONN_MEM) && c->fd >= 0)
		ev_io_start(c->server->loop, &c->wio);
	return PR_OK;
}

size_t pr_conn_out_room(const struct pr_conn *c)
{
	size_t hw = high_water(c), used = pr_buf_avail(&c->out);

	return used >= hw ? 0 : hw - used;
}

void pr_conn_kick(struct pr_conn *c)
{
	if (c->flags & PR_CONN_MEM) {
		if (c->proto)
			c->proto->flush(c);
		return;
	}
	ev_io_start(c->server->loop, &c->wio);
}

void pr_conn_close_after_write(struct pr_conn *c)
{
	c->flags |= PR_CONN_CLOSING;
	ev_io_stop(c->server->loop, &c->rio);
	/* A peer that never reads its last answer is dropped in bounded time.
	 */
	pr_conn_set_timer(c, PR_TIMER_HEADER);
	if (!(c->flags & PR_CONN_MEM))
		ev_io_start(c->server->loop, &c->wio);
}

void pr_conn_set_timer(struct pr_conn *c, enum pr_timer_kind kind)
{
	const struct pr_config *cfg = c->server->cfg;
	double after;

	c->timer_kind = kind;
	switch (kind) {
	case PR_TIMER_IDLE: after = (double)cfg->idle_timeout; break;
	case PR_TIMER_HEADER: after = (double)cfg->header_timeout; break;
	case PR_TIMER_BODY: after = (double)cfg->body_timeout; break;
	case PR_TIMER_DRAIN: after = (double)cfg->drain_timeout; break;
	case PR_TIMER_NONE:
	default: ev_timer_stop(c->server->loop, &c->timer); return;
	}
	c->timer.repeat = after > 0 ? after : 0.001;
	ev_timer_again(c->server->loop, &c->timer);
}

void pr_conn_set_session_timer(struct pr_conn *c, double after)
{
	c->timer_kind = PR_TIMER_SESSION;
	c->timer.repeat = after > 0 ? after : 0.001;
	ev_timer_again(c->server->loop, &c->timer);
}

void pr_conn_switch_proto(struct pr_conn *c)
{
	if (!c->next_proto)
		return;
	if (c->proto)
		c->proto->free(c);
	c->proto = c->next_proto;
	c->session = c->next_session;
	c->next_proto = NULL;
	c->next_session = NULL;
}

void pr_conn_shutdown(struct pr_conn *c)
{
	if (c->flags & PR_CONN_SHUTDOWN)
		return;
	c->flags |= PR_CONN_SHUTDOWN;
	if (!c->proto) {
		/* Nothing was said yet: no request can be in flight. */
		pr_conn_close_after_write(c);
		return;
	}
	c->proto->shutdown(c);
	if (!(c->flags & PR_CONN_MEM))
		ev_io_start(c->server->loop, &c->wio);
}

/* Choose the protocol from ALPN or the first bytes. 1 = chosen, 0 = need
 * more bytes, <0 = error. */
static int pick_proto(struct pr_conn *c, const uint8_t *data, size_t len)
{
	const struct pr_proto *p = &pr_http1_proto;

	if (c->ssl) {
		const unsigned char *alpn = NULL;
		unsigned int alen = 0;

		SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
		if (alen == 2 && memcmp(alpn, "h2", 2) == 0)
			p = &pr_http2_proto;
	} else {
		size_t n = len < 4 ? len : 4;

		if (memcmp(data, H2_PREFACE, n) == 0) {
			if (len < 4)
				return 0;
			p = &pr_http2_proto;
		}
	}
	c->proto = p;
	if (p->init(c)) {
		c->proto = NULL;
		return PR_ERR_NOMEM;
	}
	return 1;
}

/*
 * Give bytes to the session; whatever it does not take waits in c->in
 * (reading stops meanwhile). Returns <0 when the connection must close.
 */
static int deliver(struct pr_conn *c, const uint8_t *data, size_t len)
{
	ssize_t used;
	int rv;

	if (!c->proto) {
		if (pr_buf_avail(&c->in)) {
			rv = pr_buf_append(&c->in, data, len);
			if (rv)
				return rv;
			data = (const uint8_t *)pr_buf_peek(&c->in);
			len = pr_buf_avail(&c->in);
		}
		rv = pick_proto(c, data, len);
		if (rv < 0)
			return rv;
		if (rv == 0) {
			if (data != (const uint8_t *)pr_buf_peek(&c->in))
				return pr_buf_append(&c->in, data, len);
			return PR_OK;
		}
		if (data == (const uint8_t *)pr_buf_peek(&c->in)) {
			/* Re-deliver the stash through the session. */
			struct pr_buf tmp = c->in;

			pr_buf_init(&c->in, tmp.max);
			used = c->proto->recv(
			    c, (const uint8_t *)pr_buf_peek(&tmp),
			    pr_buf_avail(&tmp));
			if (used >= 0 && (size_t)used < pr_buf_avail(&tmp))
				rv = pr_buf_append(
				    &c->in, pr_buf_peek(&tmp) + used,
				    pr_buf_avail(&tmp) - (size_t)used);
			else
				rv = PR_OK;
			pr_buf_cleanup(&tmp);
			return used < 0 ? (int)used : rv;
		}
	}
	used = c->proto->recv(c, data, len);
	if (used < 0)
		return (int)used;
	if ((size_t)used < len)
		return pr_buf_append(&c->in, data + used, len - (size_t)used);
	return PR_OK;
}

int pr_conn_feed(struct pr_conn *c, const void *data, size_t len)
{
	int rv;

	if (pr_buf_avail(&c->in) && c->proto) {
		rv = pr_buf_append(&c->in, data, len);
		if (rv)
			return rv;
		pr_conn_resume(c);
		return PR_OK;
	}
	rv = deliver(c, data, len);
	if (rv == PR_OK && c->proto)
		c->proto->flush(c);
	return rv;
}

void pr_conn_resume(struct pr_conn *c)
{
	struct pr_buf tmp;
	ssize_t used;

	if (!c->proto || !pr_buf_avail(&c->in))
		goto read_again;
	tmp = c->in;
	pr_buf_init(&c->in, tmp.max);
	used = c->proto->recv(c, (const uint8_t *)pr_buf_peek(&tmp),
			      pr_buf_avail(&tmp));
	if (used < 0) {
		pr_buf_cleanup(&tmp);
		pr_conn_close_after_write(c);
		return;
	}
	if ((size_t)used < pr_buf_avail(&tmp))
		pr_buf_append(&c->in, pr_buf_peek(&tmp) + used,
			      pr_buf_avail(&tmp) - (size_t)used);
	pr_buf_cleanup(&tmp);
read_again:
	if (c->flags & PR_CONN_MEM) {
		if (c->proto)
			c->proto->flush(c);
		return;
	}
	if (!pr_buf_avail(&c->in) && !(c->flags & PR_CONN_CLOSING) &&
	    !(c->flags & PR_CONN_READ_PAUSED))
		ev_io_start(c->server->loop, &c->rio);
	ev_io_start(c->server->loop, &c->wio);
}

static void log_tls_error(struct pr_conn *c, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (!e)
		return;
	ERR_error_string_n(e, buf, sizeof(buf));
	pr_log(PR_LOG_DEBUG, c->id, "%s %s: %s", c->peer, what, buf);
	ERR_clear_error();
}

/* Drive the TLS handshake. 1 = done, 0 = in progress, <0 = failed. */
static int handshake(struct pr_conn *c)
{
	int r = SSL_do_handshake(c->ssl);

	if (r == 1) {
		c->flags |= PR_CONN_TLS_DONE;
		return 1;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		ev_io_stop(c->server->loop, &c->wio);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		ev_io_start(c->server->loop, &c->wio);
		return 0;
	default: log_tls_error(c, "TLS handshake failed"); return PR_ERR_TLS;
	}
}

/* Read once from the socket. >0 bytes, 0 = nothing now, <0 = close. */
static ssize_t sock_read(struct pr_conn *c, uint8_t *buf, size_t len)
{
	ssize_t n;

	if (c->ssl) {
		int r;

		ERR_clear_error();
		r = SSL_read(c->ssl, buf, (int)len);
		if (r > 0)
			return r;
		switch (SSL_get_error(c->ssl, r)) {
		case SSL_ERROR_WANT_READ: return 0;
		case SSL_ERROR_WANT_WRITE:
			ev_io_start(c->server->loop, &c->wio);
			return 0;
		case SSL_ERROR_ZERO_RETURN: return PR_ERR_CLOSED;
		default: log_tls_error(c, "TLS read failed"); return PR_ERR_TLS;
		}
	}
	n = read(c->fd, buf, len);
	if (n > 0)
		return n;
	if (n == 0)
		return PR_ERR_CLOSED;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return PR_ERR_IO;
}

/* A peer that is still reading is not idle: push its timer back. */
static void wrote(struct pr_conn *c)
{
	if (c->timer_kind == PR_TIMER_IDLE || (c->flags & PR_CONN_CLOSING))
		ev_timer_again(c->server->loop, &c->timer);
}

/* Write as much of c->out as the socket takes. <0 = close. */
static int sock_flush(struct pr_conn *c)
{
	size_t before = pr_buf_avail(&c->out);
	int rv = PR_OK;

	while (pr_buf_avail(&c->out)) {
		const char *p = pr_buf_peek(&c->out);
		size_t len = pr_buf_avail(&c->out);
		ssize_t n;

		if (c->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_write(c->ssl, p,
				      (int)(len > INT32_MAX ? INT32_MAX : len));
			if (r > 0) {
				pr_buf_consume(&c->out, (size_t)r);
				continue;
			}
			switch (SSL_get_error(c->ssl, r)) {
			case SSL_ERROR_WANT_WRITE:
			case SSL_ERROR_WANT_READ: goto out;
			default:
				log_tls_error(c, "TLS write failed");
				return PR_ERR_TLS;
			}
		}
		n = write(c->fd, p, len);
		if (n > 0) {
			pr_buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			goto out;
		return PR_ERR_IO;
	}
out:
	if (pr_buf_avail(&c->out) < before)
		wrote(c);
	return rv;
}

/*
 * Close politely: send FIN, then read and discard what the peer still
 * sends for a short while, so an error answer is not lost to a TCP reset
 * caused by unread input. Returns 1 when lingering, 0 to free now.
 */
static int linger(struct pr_conn *c)
{
	if (c->ssl || (c->flags & (PR_CONN_MEM | PR_CONN_LINGER)) ||
	    shutdown(c->fd, SHUT_WR) != 0)
		return 0;
	c->flags |= PR_CONN_LINGER;
	ev_io_stop(c->server->loop, &c->wio);
	ev_io_start(c->server->loop, &c->rio);
	c->timer_kind = PR_TIMER_DRAIN;
	c->timer.repeat = LINGER_SECONDS;
	ev_timer_again(c->server->loop, &c->timer);
	return 1;
}

/* Lingering: discard input until EOF (or the timer). <0 = free now. */
static int linger_read(struct pr_conn *c)
{
	char buf[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return -1;
	}
	return 0;
}

/*
 * After reading or writing: pull session output, write what the socket
 * takes, apply backpressure and close when asked. May free c; callers
 * must not touch c afterwards.
 */
static void after_io(struct pr_conn *c)
{
	struct ev_loop *loop = c->server->loop;

	if (c->ssl && !(c->flags & PR_CONN_TLS_DONE))
		return;
	for (;;) {
		if (c->proto)
			c->proto->flush(c);
		if (!pr_buf_avail(&c->out))
			break;
		if (sock_flush(c) < 0) {
			pr_conn_free(c);
			return;
		}
		if (pr_buf_avail(&c->out))
			break; /* the socket is full; wait for EV_WRITE */
	}
	if (pr_buf_avail(&c->out)) {
		ev_io_start(loop, &c->wio);
		if (pr_buf_avail(&c->out) >= high_water(c) &&
		    !(c->flags & PR_CONN_READ_PAUSED)) {
			c->flags |= PR_CONN_READ_PAUSED;
			ev_io_stop(loop, &c->rio);
		}
		return;
	}
	ev_io_stop(loop, &c->wio);
	if (c->flags & PR_CONN_CLOSING) {
		if (!linger(c))
			pr_conn_free(c);
		return;
	}
	if (c->flags & PR_CONN_READ_PAUSED) {
		c->flags &= ~PR_CONN_READ_PAUSED;
		if (!pr_buf_avail(&c->in))
			ev_io_start(loop, &c->rio);
		else
			pr_conn_resume(c);
	}
	if ((c->flags & PR_CONN_SHUTDOWN) && c->proto && !c->proto->busy(c)) {
		pr_conn_free(c);
		return;
	}
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pr_conn *c = w->data;
	uint8_t buf[READ_CHUNK];
	ssize_t n = 0;
	int rv;

	if (c->flags & PR_CONN_LINGER) {
		if (linger_read(c) < 0)
			pr_conn_free(c);
		return;
	}
	if (c->ssl && !(c->flags & PR_CONN_TLS_DONE)) {
		rv = handshake(c);
		if (rv < 0)
			goto close;
		if (rv == 0)
			return;
	}
	/* TLS may hold decrypted bytes the socket no longer signals. */
	do {
		n = sock_read(c, buf, sizeof(buf));
		if (n < 0)
			goto close;
		if (n == 0)
			break;
		rv = deliver(c, buf, (size_t)n);
		if (rv < 0)
			goto close;
		if (pr_buf_avail(&c->in) && c->proto) {
			/* The session paused: stop reading until it resumes. */
			ev_io_stop(loop, &c->rio);
			break;
		}
	} while (c->ssl && SSL_pending(c->ssl) > 0 &&
		 !(c->flags & PR_CONN_CLOSING));
	after_io(c);
	return;
close:
	/* Try to say goodbye (e.g. an HTTP/2 GOAWAY the session queued). */
	if (pr_buf_avail(&c->out) && n != PR_ERR_CLOSED)
		sock_flush(c);
	pr_conn_free(c);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pr_conn *c = w->data;
	int rv;

	if (c->ssl && !(c->flags & PR_CONN_TLS_DONE)) {
		rv = handshake(c);
		if (rv < 0) {
			pr_conn_free(c);
			return;
		}
		if (rv == 0)
			return;
		ev_io_stop(loop, &c->wio);
	}
	if (sock_flush(c) < 0) {
		pr_conn_free(c);
		return;
	}
	after_io(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pr_conn *c = w->data;

	ev_timer_stop(loop, w);
	if (!c->proto || (c->flags & PR_CONN_CLOSING)) {
		pr_log(PR_LOG_DEBUG, c->id, "%s: timed out, closing", c->peer);
		pr_conn_free(c);
		return;
	}
	c->proto->timeout(c);
	if (c->flags & PR_CONN_MEM)
		return;
	after_io(c);
}

/*
 * check_h2client.c - the outgoing HTTP/2 client against real servers on
 * loopback, driven with ev_run(EVRUN_ONCE):
 *
 *  - pushrelayd itself (TLS h2 with its throwaway certificate): one
 *    request, 500 multiplexed over one connection (checked on both ends:
 *    libcurl's connect count and the daemon's accepted-connections
 *    counter), the per-endpoint connection cap, flow control;
 *  - "mini", an h2c server in this file on the same loop (nghttp2 server
 *    session) whose answers the tests script by path: Retry-After and
 *    apns-id echoes, big bodies, held and silent streams, GOAWAY while
 *    streams are open, RST_STREAM;
 *  - a raw listening socket that never answers (timeouts) and a closed
 *    port (connection refused).
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <ftw.h>
#include <time.h>
#include <unistd.h>

#include "h2client.h"
#include "harness.h"
#include "provider.h"
#include "pushrelay.h"

/* ---- collecting completions --------------------------------------- */

struct slot {
	struct pr_h2req req;
	struct pr_http_request http;
	int done;
	long status;
	char *body;
	size_t body_len;
	long retry_after;
	char apns_id[64];
	int has_apns_id;
	char transport[400];
	double latency;
	int resubmit; /* done() submits the same req again this many times */
};

static int in_submit; /* done() must never run inside submit */
static int n_done;    /* completions seen by slot_done */
static struct pr_h2client *cur_client;

static void slot_done(struct pr_h2req *req, const struct pr_http_response *r,
		      void *arg)
{
	struct slot *s = arg;

	ck_assert_msg(!in_submit, "done() ran inside submit");
	ck_assert_ptr_eq(&s->req, req);
	ck_assert_ptr_null(req->easy);
	s->done++;
	n_done++;
	s->status = r->status;
	free(s->body);
	s->body = malloc(r->body_len + 1);
	ck_assert_ptr_nonnull(s->body);
	memcpy(s->body, r->body, r->body_len);
	s->body[r->body_len] = '\0';
	s->body_len = r->body_len;
	s->retry_after = r->retry_after;
	s->has_apns_id = r->apns_id != NULL;
	snprintf(s->apns_id, sizeof(s->apns_id), "%s",
		 r->apns_id ? r->apns_id : "");
	snprintf(s->transport, sizeof(s->transport), "%s",
		 r->transport ? r->transport : "");
	s->latency = r->latency;
	ck_assert(r->latency >= 0);
	if (r->status == 0)
		ck_assert_msg(r->transport && *r->transport,
			      "status 0 without a reason");
	else
		ck_assert_ptr_null(r->transport);
	if (s->resubmit > 0) {
		s->resubmit--;
		in_submit = 1;
		ck_assert_int_eq(pr_h2client_submit(cur_client, req), 0);
		in_submit = 0;
	}
}

static void slot_init(struct slot *s, const char *url, const char *method,
		      const char *body, const char *ca)
{
	memset(s, 0, sizeof(*s));
	s->http.url = (char *)url;
	s->http.method = method;
	s->http.body = (char *)body;
	s->http.body_len = body ? strlen(body) : 0;
	s->req.http = &s->http;
	s->req.ca_file = ca;
	s->req.done = slot_done;
	s->req.arg = s;
	s->retry_after = -2;
}

static void slot_header(struct slot *s, const char *h)
{
	s->http.headers[s->http.n_headers++] = (char *)h;
}

static void slots_free(struct slot *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i].body);
}

static int submit(struct pr_h2client *c, struct slot *s)
{
	int rv;

	in_submit = 1;
	rv = pr_h2client_submit(c, &s->req);
	in_submit = 0;
	return rv;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run the loop until *counter reaches want or timeout seconds pass. */
static int run_until(struct ev_loop *loop, const int *counter, int want,
		     double timeout)
{
	double end = ev_time() + timeout;
	ev_timer tick;

	ev_timer_init(&tick, tick_cb, 0.02, 0.02);
	ev_timer_start(loop, &tick);
	while (*counter < want && ev_time() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	return *counter >= want;
}

static void run_for(struct ev_loop *loop, double secs)
{
	int never = 0;

	run_until(loop, &never, 1, secs);
}

static struct pr_h2client_config base_cfg(void)
{
	struct pr_h2client_config cfg = {
	    .max_in_flight = 1000,
	    .connections = 1,
	    .max_streams = 100,
	    .connect_timeout = 5,
	    .request_timeout = 10,
	    .ping_interval = 3600,
	    .max_response = 65536,
	};
	return cfg;
}

/* ---- mini: a scripted h2 server on the test's loop -------------------
 * TLS with ALPN h2 like APNs and FCM (the h2c mode exists for one test:
 * libcurl 7.88 cannot reuse h2c prior-knowledge connections). */

struct mstream {
	int32_t id;
	char path[64];
	char retry[80]; /* x-retry-after, echoed as retry-after */
	char apns[80];	/* x-apns-id, echoed as apns-id */
	char ctype[80]; /* content-type as received */
	int expect;	/* an expect header came */
	size_t size;	/* x-size: bytes of body to answer with */
	size_t got;	/* request body bytes received */
	int held;
	char *out; /* response body */
	size_t out_len, out_off;
	struct mconn *mc;
	struct mstream *next;
};

struct mconn {
	int fd;
	SSL *ssl;      /* NULL in h2c mode */
	int handshake; /* TLS handshake done */
	int index;     /* 1 for the first connection accepted */
	ev_io io;
	nghttp2_session *sess;
	struct mstream *streams;
	int n_streams; /* streams ever opened on this connection */
	int goaway;
	struct mini *m;
	struct mconn *next;
};

struct mini {
	struct ev_loop *loop;
	SSL_CTX *ctx; /* NULL in h2c mode */
	char dir[256], cert[300], key[300];
	int lfd, port;
	ev_io accept_io;
	struct mconn *conns;
	int accepted;
	int held;
	char url[128];
};

static struct mini mini;

static void wait_fd(int fd, short events)
{
	struct pollfd pfd = {.fd = fd, .events = events};

	poll(&pfd, 1, 1000);
}

static void write_all(struct mconn *mc, const uint8_t *p, size_t n)
{
	int fd = mc->fd;

	while (mc->ssl && n > 0) {
		int k = SSL_write(mc->ssl, p, n > INT_MAX ? INT_MAX : (int)n);

		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		switch (SSL_get_error(mc->ssl, k)) {
		case SSL_ERROR_WANT_WRITE: wait_fd(fd, POLLOUT); break;
		case SSL_ERROR_WANT_READ: wait_fd(fd, POLLIN); break;
		default: return; /* the client went away */
		}
	}
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			wait_fd(fd, POLLOUT);
			continue;
		}
		if (k <= 0)
			return; /* the client went away */
		p += k;
		n -= (size_t)k;
	}
}

static void mconn_flush(struct mconn *mc)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(mc->sess, &data);

		if (n <= 0)
			break;
		write_all(mc, data, (size_t)n);
	}
}

static void mconn_close(struct mconn *mc)
{
	struct mconn **pp;

	for (pp = &mc->m->conns; *pp; pp = &(*pp)->next)
		if (*pp == mc) {
			*pp = mc->next;
			break;
		}
	ev_io_stop(mc->m->loop, &mc->io);
	if (mc->ssl)
		SSL_free(mc->ssl);
	close(mc->fd);
	nghttp2_session_del(mc->sess); /* no stream-close callbacks */
	while (mc->streams) {
		struct mstream *st = mc->streams;

		mc->streams = st->next;
		if (st->held)
			mc->m->held--;
		free(st->out);
		free(st);
	}
	free(mc);
}

static ssize_t body_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf,
			    size_t len, uint32_t *flags,
			    nghttp2_data_source *src, void *ud)
{
	struct mstream *st = src->ptr;
	size_t n = st->out_len - st->out_off;

	(void)s;
	(void)id;
	(void)ud;
	if (n > len)
		n = len;
	memcpy(buf, st->out + st->out_off, n);
	st->out_off += n;
	if (st->out_off == st->out_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

#define NV(n, v)                                                               \
	{                                                                      \
		(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v),          \
		    NGHTTP2_NV_FLAG_NONE                                       \
	}

static void respond(struct mstream *st, const char *status)
{
	nghttp2_nv nv[4] = {NV(":status", status)};
	size_t n = 1;
	nghttp2_data_provider prd = {.source.ptr = st,
				     .read_callback = body_read_cb};

	if (st->retry[0])
		nv[n++] = (nghttp2_nv)NV("retry-after", st->retry);
	if (st->apns[0])
		nv[n++] = (nghttp2_nv)NV("apns-id", st->apns);
	nghttp2_submit_response(st->mc->sess, st->id, nv, n, &prd);
}

/* The script, by path. */
static void handle(struct mstream *st)
{
	struct mconn *mc = st->mc;
	char tmp[256];
	int n;

	if (strcmp(st->path, "/silent") == 0)
		return;
	if (strcmp(st->path, "/hold") == 0) {
		st->held = 1;
		mc->m->held++;
		return;
	}
	if (strcmp(st->path, "/rst-refused") == 0) {
		nghttp2_submit_rst_stream(mc->sess, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_REFUSED_STREAM);
		return;
	}
	if (strcmp(st->path, "/rst-internal") == 0) {
		nghttp2_submit_rst_stream(mc->sess, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (strcmp(st->path, "/big") == 0) {
		st->out = malloc(st->size);
		for (size_t i = 0; i < st->size; i++)
			st->out[i] = (char)('a' + i % 26);
		st->out_len = st->size;
		respond(st, "200");
		return;
	}
	if (strcmp(st->path, "/echo") == 0) {
		n = snprintf(tmp, sizeof(tmp), "len=%zu ctype=%s expect=%d",
			     st->got, st->ctype[0] ? st->ctype : "-",
			     st->expect);
		st->out = strdup(tmp);
		st->out_len = (size_t)n;
		respond(st, "200");
		return;
	}
	if (strcmp(st->path, "/retry") == 0) {
		st->out = strdup("{}");
		st->out_len = 2;
		respond(st, "503");
		return;
	}
	n = snprintf(tmp, sizeof(tmp), "hello conn=%d", mc->index);
	st->out = strdup(tmp);
	st->out_len = (size_t)n;
	respond(st, "200");
	if (strcmp(st->path, "/goaway") == 0) {
		/* Graceful: this stream is served, nothing after it; the
		 * connection stays open. */
		nghttp2_submit_goaway(mc->sess, NGHTTP2_FLAG_NONE, st->id,
				      NGHTTP2_NO_ERROR, NULL, 0);
		mc->goaway = 1;
	}
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f,
			    void *ud)
{
	struct mconn *mc = ud;
	struct mstream *st;

	if (f->hd.type != NGHTTP2_HEADERS ||
	    f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	ck_assert_ptr_nonnull(st);
	st->id = f->hd.stream_id;
	st->mc = mc;
	st->next = mc->streams;
	mc->streams = st;
	mc->n_streams++;
	nghttp2_session_set_stream_user_data(s, st->id, st);
	return 0;
}

static void copy_val(char *dst, size_t cap, const uint8_t *v, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
		     const uint8_t *name, size_t nlen, const uint8_t *value,
		     size_t vlen, uint8_t flags, void *ud)
{
	struct mstream *st =
	    nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	char tmp[32];

	(void)flags;
	(void)ud;
	if (!st)
		return 0;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
	if (IS(":path"))
		copy_val(st->path, sizeof(st->path), value, vlen);
	else if (IS("x-retry-after"))
		copy_val(st->retry, sizeof(st->retry), value, vlen);
	else if (IS("x-apns-id"))
		copy_val(st->apns, sizeof(st->apns), value, vlen);
	else if (IS("content-type"))
		copy_val(st->ctype, sizeof(st->ctype), value, vlen);
	else if (IS("expect"))
		st->expect = 1;
	else if (IS("x-size")) {
		copy_val(tmp, sizeof(tmp), value, vlen);
		st->size = strtoul(tmp, NULL, 10);
	}
#undef IS
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id,
		   const uint8_t *data, size_t len, void *ud)
{
	struct mstream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)flags;
	(void)data;
	(void)ud;
	if (st)
		st->got += len;
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct mstream *st;

	(void)ud;
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st)
		handle(st);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code,
			   void *ud)
{
	struct mconn *mc = ud;
	struct mstream **pp;

	(void)s;
	(void)code;
	for (pp = &mc->streams; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct mstream *st = *pp;

			*pp = st->next;
			if (st->held)
				mc->m->held--;
			free(st->out);
			free(st);
			break;
		}
	return 0;
}

/* Read what there is: 1 fed to nghttp2, 0 nothing now, -1 closed. */
static int mconn_read(struct mconn *mc)
{
	uint8_t buf[16384];
	ssize_t n;

	if (mc->ssl) {
		int k = SSL_read(mc->ssl, buf, sizeof(buf));

		if (k <= 0) {
			int e = SSL_get_error(mc->ssl, k);

			return e == SSL_ERROR_WANT_READ ||
				       e == SSL_ERROR_WANT_WRITE
				   ? 0
				   : -1;
		}
		n = k;
	} else {
		n = recv(mc->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			return -1;
	}
	return nghttp2_session_mem_recv(mc->sess, buf, (size_t)n) < 0 ? -1 : 1;
}

static void mconn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mconn *mc = w->data;
	int rv;

	(void)loop;
	(void)revents;
	if (mc->ssl && !mc->handshake) {
		int k = SSL_accept(mc->ssl);

		if (k <= 0) {
			int e = SSL_get_error(mc->ssl, k);

			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				mconn_close(mc);
			return;
		}
		mc->handshake = 1;
		mconn_flush(mc); /* our SETTINGS */
	}
	do
		rv = mconn_read(mc);
	while (rv > 0);
	if (rv < 0) {
		mconn_close(mc);
		return;
	}
	mconn_flush(mc);
}

static void mini_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mini *m = w->data;
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
				     100};
	struct mconn *mc;
	int fd = accept(m->lfd, NULL, NULL);

	(void)revents;
	if (fd < 0)
		return;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	mc = calloc(1, sizeof(*mc));
	ck_assert_ptr_nonnull(mc);
	mc->fd = fd;
	mc->m = m;
	mc->index = ++m->accepted;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_begin_headers_callback(
	    cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
							     on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
							       on_stream_close);
	ck_assert_int_eq(nghttp2_session_server_new(&mc->sess, cbs, mc), 0);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(mc->sess, NGHTTP2_FLAG_NONE, &iv, 1);
	mc->next = m->conns;
	m->conns = mc;
	ev_io_init(&mc->io, mconn_io_cb, fd, EV_READ);
	mc->io.data = mc;
	ev_io_start(loop, &mc->io);
	if (m->ctx) {
		mc->ssl = SSL_new(m->ctx);
		ck_assert_ptr_nonnull(mc->ssl);
		SSL_set_fd(mc->ssl, fd);
		SSL_set_mode(mc->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	} else {
		mconn_flush(mc);
	}
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned int i = 0; i + 1 + in[i] <= inlen; i += 1u + in[i])
		if (in[i] == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A listening socket on 127.0.0.1; *port gets its port. */
static int listen_any(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void mini_start_mode(struct ev_loop *loop, int tls)
{
	memset(&mini, 0, sizeof(mini));
	mini.loop = loop;
	mini.lfd = listen_any(&mini.port);
	fcntl(mini.lfd, F_SETFL, fcntl(mini.lfd, F_GETFL) | O_NONBLOCK);
	if (tls) {
		ck_assert_int_eq(th_tmpdir(mini.dir, sizeof(mini.dir)), 0);
		snprintf(mini.cert, sizeof(mini.cert), "%s/c.pem", mini.dir);
		snprintf(mini.key, sizeof(mini.key), "%s/k.pem", mini.dir);
		ck_assert_int_eq(th_make_cert(mini.cert, mini.key), 0);
		mini.ctx = SSL_CTX_new(TLS_server_method());
		ck_assert_ptr_nonnull(mini.ctx);
		ck_assert_int_eq(
		    SSL_CTX_use_certificate_chain_file(mini.ctx, mini.cert), 1);
		ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(mini.ctx, mini.key,
							     SSL_FILETYPE_PEM),
				 1);
		SSL_CTX_set_alpn_select_cb(mini.ctx, alpn_cb, NULL);
		snprintf(mini.url, sizeof(mini.url), "https://localhost:%d",
			 mini.port);
	} else {
		snprintf(mini.url, sizeof(mini.url), "http://127.0.0.1:%d",
			 mini.port);
	}
	ev_io_init(&mini.accept_io, mini_accept_cb, mini.lfd, EV_READ);
	mini.accept_io.data = &mini;
	ev_io_start(loop, &mini.accept_io);
}

static void mini_start(struct ev_loop *loop)
{
	mini_start_mode(loop, 1);
}

static void mini_stop(void)
{
	while (mini.conns)
		mconn_close(mini.conns);
	ev_io_stop(mini.loop, &mini.accept_io);
	close(mini.lfd);
	if (mini.ctx)
		SSL_CTX_free(mini.ctx);
	if (mini.dir[0])
		nftw(mini.dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* The CA file for the mini's certificate (NULL in h2c mode). */
static const char *mini_ca(void)
{
	return mini.ctx ? mini.cert : NULL;
}

static struct mconn *mini_conn(int index)
{
	for (struct mconn *mc = mini.conns; mc; mc = mc->next)
		if (mc->index == index)
			return mc;
	return NULL;
}

/* Answer every held stream (with id <= max_id; 0 = all) 200. */
static void mini_release(int32_t max_id)
{
	for (struct mconn *mc = mini.conns; mc; mc = mc->next) {
		for (struct mstream *st = mc->streams; st; st = st->next) {
			if (!st->held || (max_id && st->id > max_id))
				continue;
			st->held = 0;
			mini.held--;
			st->out = strdup("released");
			st->out_len = strlen(st->out);
			respond(st, "200");
		}
		mconn_flush(mc);
	}
}

static char *mini_url(const char *path)
{
	static char buf[8][160];
	static int i;
	char *p = buf[i++ % 8];

	snprintf(p, sizeof(buf[0]), "%s%s", mini.url, path);
	return p;
}

/* ---- against pushrelayd ------------------------------------------------ */

static struct th_daemon d;
static int have_daemon;

static void start_daemon(const char *extra_server)
{
	ck_assert_msg(th_daemon_start(&d, extra_server, NULL) == 0,
		      "pushrelayd did not start; log: %s", d.log);
	have_daemon = 1;
}

static void teardown(void)
{
	if (have_daemon)
		th_daemon_cleanup(&d);
	have_daemon = 0;
}

static const char *daemon_url(const char *path)
{
	static char buf[4][160];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, sizeof(buf[0]), "https://localhost:%d%s", d.tls_port, path);
	return p;
}

/* The daemon's pushrelay_connections_accepted_total, read through c. */
static long daemon_accepted(struct ev_loop *loop, struct pr_h2client *c)
{
	struct slot s;
	const char *key = "\npushrelay_connections_accepted_total ";
	char *p;
	long v;
	int before = n_done;

	slot_init(&s, daemon_url("/metrics"), "GET", NULL, d.cert);
	ck_assert_int_eq(submit(c, &s), 0);
	ck_assert(run_until(loop, &n_done, before + 1, 10));
	ck_assert_int_eq(s.status, 200);
	p = strstr(s.body, key);
	ck_assert_msg(p != NULL, "no accepted counter in %s", s.body);
	v = strtol(p + strlen(key), NULL, 10);
	free(s.body);
	return v;
}

START_TEST(test_one_request)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	const struct pr_h2client_stats *st;
	struct slot s;

	start_daemon(NULL);
	c = pr_h2client_new(loop, &cfg);
	ck_assert_ptr_nonnull(c);
	n_done = 0;
	slot_init(&s, daemon_url("/healthz"), "GET", NULL, d.cert);
	ck_assert_int_eq(submit(c, &s), 0);
	ck_assert_int_eq(s.done, 0);
	ck_assert_uint_eq(pr_h2client_in_flight(c), 1);
	ck_assert(run_until(loop, &n_done, 1, 10));
	ck_assert_int_eq(s.done, 1);
	ck_assert_msg(s.status == 200, "status %ld: %s", s.status, s.transport);
	ck_assert_ptr_nonnull(strstr(s.body, "\"status\""));
	ck_assert_int_eq(s.retry_after, -1);
	ck_assert(!s.has_apns_id);
	ck_assert(s.latency > 0 && s.latency < 10);
	ck_assert_uint_eq(pr_h2client_in_flight(c), 0);
	st = pr_h2client_stats(c);
	ck_assert_uint_eq(st->requests, 1);
	ck_assert_uint_eq(st->failures, 0);
	ck_assert_uint_eq(st->connects, 1);

	/* A POST answered 405 is an HTTP answer, not a failure. */
	slots_free(&s, 1);
	slot_init(&s, daemon_url("/healthz"), "POST", "{}", d.cert);
	slot_header(&s, "content-type: application/json");
	ck_assert_int_eq(submit(c, &s), 0);
	ck_assert(run_until(loop, &n_done, 2, 10));
	ck_assert_int_eq(s.status, 405);
	ck_assert_uint_eq(st->connects, 1); /* reused */
	ck_assert_uint_eq(st->failures, 0);
	pr_h2client_free(c);
	slots_free(&s, 1);
	ev_loop_destroy(loop);
}
END_TEST

/* Send n POSTs to the daemon at once through c; all must come back. */
static void burst(struct ev_loop *loop, struct pr_h2client *c, size_t n)
{
	struct slot *s = calloc(n, sizeof(*s));
	int before = n_done;

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++) {
		slot_init(&s[i], daemon_url("/healthz"), "POST", "{\"a\":1}",
			  d.cert);
		ck_assert_int_eq(submit(c, &s[i]), 0);
	}
	ck_assert_uint_eq(pr_h2client_in_flight(c), n);
	ck_assert_msg(run_until(loop, &n_done, before + (int)n, 30),
		      "%d of %zu done", n_done - before, n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(s[i].done, 1);
		ck_assert_msg(s[i].status == 405, "request %zu: %ld %s", i,
			      s[i].status, s[i].transport);
	}
	ck_assert_uint_eq(pr_h2client_in_flight(c), 0);
	slots_free(s, n);
	free(s);
}

START_TEST(test_multiplex_500_one_connection)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	long a1, a2;

	start_daemon(NULL); /* max_streams = 100 */
	cfg.connections = 1;
	cfg.max_streams = 100;
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	a1 = daemon_accepted(loop, c);
	burst(loop, c, 500);
	a2 = daemon_accepted(loop, c);
	/* The proof, from both ends: one connection carried everything. */
	ck_assert_uint_eq(pr_h2client_stats(c)->connects, 1);
	ck_assert_int_eq(a2, a1);
	ck_assert_uint_eq(pr_h2client_stats(c)->requests, 502);
	ck_assert_uint_eq(pr_h2client_stats(c)->failures, 0);
	pr_h2client_free(c);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_connection_cap)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	unsigned long long conns;
	long a1, a2;

	start_daemon(NULL);
	cfg.connections = 4;
	cfg.max_streams = 10; /* 400 at once need more than one */
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	a1 = daemon_accepted(loop, c);
	burst(loop, c, 400);
	burst(loop, c, 400);
	a2 = daemon_accepted(loop, c);
	conns = pr_h2client_stats(c)->connects;
	ck_assert_msg(conns >= 2 && conns <= 4, "%llu connections", conns);
	ck_assert_int_eq(a2 - a1 + 1, (long)conns);
	pr_h2client_free(c);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_max_in_flight_busy)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[5];

	mini_start(loop);
	cfg.max_in_flight = 3;
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	for (int i = 0; i < 5; i++)
		slot_init(&s[i], mini_url("/"), "POST", "x", mini_ca());
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(submit(c, &s[i]), 0);
	ck_assert_int_eq(submit(c, &s[3]), PR_ERR_BUSY);
	ck_assert_uint_eq(pr_h2client_in_flight(c), 3);
	ck_assert(run_until(loop, &n_done, 3, 10));
	ck_assert_uint_eq(pr_h2client_in_flight(c), 0);
	ck_assert_int_eq(s[3].done, 0);
	ck_assert_int_eq(submit(c, &s[3]), 0);
	ck_assert_int_eq(submit(c, &s[4]), 0);
	ck_assert(run_until(loop, &n_done, 5, 10));
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(s[i].status, 200);

	/* Bad input never reaches libcurl. */
	slots_free(s, 5);
	slot_init(&s[0], "ftp://127.0.0.1/", "POST", "x", NULL);
	ck_assert_int_eq(submit(c, &s[0]), PR_ERR_INVAL);
	slot_init(&s[0], mini_url("/"), "POST", "x", mini_ca());
	s[0].req.done = NULL;
	ck_assert_int_eq(submit(c, &s[0]), PR_ERR_INVAL);
	ck_assert_uint_eq(pr_h2client_in_flight(c), 0);
	pr_h2client_free(c);
	mini_stop();
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_connection_refused)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c = pr_h2client_new(loop, &cfg);
	char url[64];
	struct slot s;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", th_free_port(0));
	n_done = 0;
	slot_init(&s, url, "POST", "{}", NULL);
	ck_assert_int_eq(submit(c, &s), 0);
	ck_assert_int_eq(s.done, 0); /* not from inside submit */
	ck_assert(run_until(loop, &n_done, 1, 10));
	ck_assert_int_eq(s.status, 0);
	ck_assert_msg(strstr(s.transport, "onnect") != NULL, "%s", s.transport);
	ck_assert_uint_eq(pr_h2client_stats(c)->failures, 1);
	ck_assert_uint_eq(pr_h2client_stats(c)->requests, 1);
	pr_h2client_free(c);
	slots_free(&s, 1);
	ev_loop_destroy(loop);
}
END_TEST

/* A server that accepts (in the kernel backlog) and never says a word:
 * the TLS handshake never finishes. Three requests on one connection
 * slot: one connecting, two waiting for it; all time out in time. */
START_TEST(test_request_timeout_silent_server)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[3];
	char url[64];
	int port, lfd = listen_any(&port);
	double t0;

	cfg.request_timeout = 1;
	cfg.connect_timeout = 10;
	c = pr_h2client_new(loop, &cfg);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
	n_done = 0;
	t0 = ev_time();
	for (int i = 0; i < 3; i++) {
		slot_init(&s[i], url, "POST", "{}", NULL);
		ck_assert_int_eq(submit(c, &s[i]), 0);
	}
	ck_assert(run_until(loop, &n_done, 3, 10));
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(s[i].status, 0);
		ck_assert_msg(strstr(s[i].transport, "imeout") ||
				  strstr(s[i].transport, "timed out"),
			      "%s", s[i].transport);
		ck_assert_msg(s[i].latency > 0.8 && s[i].latency < 3.0,
			      "latency %f", s[i].latency);
	}
	ck_assert_msg(ev_time() - t0 < 3.5, "took %f s", ev_time() - t0);
	pr_h2client_free(c);
	close(lfd);
	slots_free(s, 3);
	ev_loop_destroy(loop);
}
END_TEST

/* A stream that is never answered on a live connection times out; the
 * connection stays and serves the next request. */
START_TEST(test_request_timeout_silent_stream)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[2];

	mini_start(loop);
	cfg.request_timeout = 1;
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	slot_init(&s[0], mini_url("/silent"), "POST", "{}", mini_ca());
	slot_init(&s[1], mini_url("/"), "POST", "{}", mini_ca());
	ck_assert_int_eq(submit(c, &s[0]), 0);
	ck_assert(run_until(loop, &n_done, 1, 5));
	ck_assert_int_eq(s[0].status, 0);
	ck_assert_msg(strstr(s[0].transport, "imeout") ||
			  strstr(s[0].transport, "timed out"),
		      "%s", s[0].transport);
	ck_assert_msg(s[0].latency > 0.8 && s[0].latency < 3.0, "latency %f",
		      s[0].latency);
	ck_assert_int_eq(submit(c, &s[1]), 0);
	ck_assert(run_until(loop, &n_done, 2, 5));
	ck_assert_int_eq(s[1].status, 200);
	ck_assert_str_eq(s[1].body, "hello conn=1");
	ck_assert_int_eq(mini.accepted, 1);
	pr_h2client_free(c);
	mini_stop();
	slots_free(s, 2);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_body_truncated_not_failed)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[2];

	mini_start(loop);
	cfg.max_response = 1000;
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	slot_init(&s[0], mini_url("/big"), "POST", "{}", mini_ca());
	slot_header(&s[0], "x-size: 100000");
	slot_init(&s[1], mini_url("/big"), "POST", "{}", mini_ca());
	slot_header(&s[1], "x-size: 1000");
	ck_assert_int_eq(submit(c, &s[0]), 0);
	ck_assert_int_eq(submit(c, &s[1]), 0);
	ck_assert(run_until(loop, &n_done, 2, 10));
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(s[i].status, 200);
		ck_assert_uint_eq(s[i].body_len, 1000);
		for (size_t k = 0; k < 1000; k++)
			ck_assert_int_eq(s[i].body[k], 'a' + k % 26);
	}
	ck_assert_uint_eq(pr_h2client_stats(c)->failures, 0);
	pr_h2client_free(c);
	mini_stop();
	slots_free(s, 2);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_request_plumbing)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[3];
	static char big[70000];

	memset(big, 'b', sizeof(big) - 1);
	mini_start(loop);
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	/* The body goes out whole, with the caller's content type and
	 * no Expect; without one, curl's form type is not invented. */
	slot_init(&s[0], mini_url("/echo"), "POST", big, mini_ca());
	slot_header(&s[0], "content-type: application/json");
	slot_header(&s[0], "authorization: bearer secret");
	slot_init(&s[1], mini_url("/echo"), "POST", NULL, mini_ca());
	slot_init(&s[2], mini_url("/echo"), "GET", NULL, mini_ca());
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(submit(c, &s[i]), 0);
	ck_assert(run_until(loop, &n_done, 3, 10));
	ck_assert_str_eq(s[0].body,
			 "len=69999 ctype=application/json expect=0");
	ck_assert_str_eq(s[1].body, "len=0 ctype=- expect=0");
	ck_assert_str_eq(s[2].body, "len=0 ctype=- expect=0");
	pr_h2client_free(c);
	mini_stop();
	slots_free(s, 3);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_retry_after_and_apns_id)
{
	static const char *const id = "123e4567-e89b-12d3-a456-426614174000";
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[6];
	char future[128], past[128], idh[80];
	time_t now = time(NULL), t = now + 120;
	struct tm tm;

	strftime(future, sizeof(future),
		 "x-retry-after: %a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
	t = now - 3600;
	strftime(past, sizeof(past), "x-retry-after: %a, %d %b %Y %H:%M:%S GMT",
		 gmtime_r(&t, &tm));
	snprintf(idh, sizeof(idh), "x-apns-id: %s", id);
	mini_start(loop);
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	for (int i = 0; i < 6; i++)
		slot_init(&s[i], mini_url("/retry"), "POST", "{}", mini_ca());
	slot_header(&s[0], "x-retry-after: 42");
	slot_header(&s[1], future);
	slot_header(&s[2], past);
	slot_header(&s[3], "x-retry-after: soon");
	slot_header(&s[4], idh); /* no retry-after */
	slot_header(&s[5], "x-retry-after: 99999999999999999999");
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(submit(c, &s[i]), 0);
	ck_assert(run_until(loop, &n_done, 6, 10));
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(s[i].status, 503);
	ck_assert_int_eq(s[0].retry_after, 42);
	ck_assert_msg(s[1].retry_after >= 115 && s[1].retry_after <= 120,
		      "date: %ld", s[1].retry_after);
	ck_assert_int_eq(s[2].retry_after, 0);
	ck_assert_int_eq(s[3].retry_after, -1);
	ck_assert_int_eq(s[4].retry_after, -1);
	ck_assert(s[4].has_apns_id);
	ck_assert_str_eq(s[4].apns_id, id);
	ck_assert(!s[0].has_apns_id);
	ck_assert_int_ge(s[5].retry_after, 1000000000L); /* clamped */
	pr_h2client_free(c);
	mini_stop();
	slots_free(s, 6);
	ev_loop_destroy(loop);
}
END_TEST

/* GOAWAY after an answered stream, connection left open: the next
 * request must go out on a new connection. */
START_TEST(test_goaway_connection_not_reused)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[3];

	mini_start(loop);
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	slot_init(&s[0], mini_url("/goaway"), "POST", "{}", mini_ca());
	ck_assert_int_eq(submit(c, &s[0]), 0);
	ck_assert(run_until(loop, &n_done, 1, 5));
	ck_assert_int_eq(s[0].status, 200);
	ck_assert_str_eq(s[0].body, "hello conn=1");
	run_for(loop, 0.1); /* let the GOAWAY arrive if it came late */
	slot_init(&s[1], mini_url("/"), "POST", "{}", mini_ca());
	slot_init(&s[2], mini_url("/"), "POST", "{}", mini_ca());
	ck_assert_int_eq(submit(c, &s[1]), 0);
	ck_assert_int_eq(submit(c, &s[2]), 0);
	ck_assert(run_until(loop, &n_done, 3, 5));
	ck_assert_msg(s[1].status == 200, "%ld %s", s[1].status,
		      s[1].transport);
	ck_assert_str_eq(s[1].body, "hello conn=2");
	ck_assert_str_eq(s[2].body, "hello conn=2");
	/* libcurl closed it, or left it with its one stream. */
	if (mini_conn(1))
		ck_assert_int_eq(mini_conn(1)->n_streams, 1);
	ck_assert_int_eq(mini.accepted, 2);
	ck_assert_uint_eq(pr_h2client_stats(c)->connects, 2);
	pr_h2client_free(c);
	mini_stop();
	slots_free(s, 3);
	ev_loop_destroy(loop);
}
END_TEST

/* GOAWAY while three streams are open, naming only the first: it is
 * answered; the two the server will not process complete (libcurl 7.88.1
 * retries them on a new connection and they succeed; a status 0 with a
 * reason would also keep the contract), and nothing new goes to the old
 * connection. */
START_TEST(test_goaway_with_streams_in_flight)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct mconn *mc;
	struct slot s[4];
	int32_t first = 0;

	mini_start(loop);
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	for (int i = 0; i < 3; i++) {
		slot_init(&s[i], mini_url("/hold"), "POST", "{}", mini_ca());
		ck_assert_int_eq(submit(c, &s[i]), 0);
	}
	ck_assert(run_until(loop, &mini.held, 3, 5));
	mc = mini_conn(1);
	ck_assert_ptr_nonnull(mc);
	for (struct mstream *st = mc->streams; st; st = st->next)
		if (!first || st->id < first)
			first = st->id;
	nghttp2_submit_goaway(mc->sess, NGHTTP2_FLAG_NONE, first,
			      NGHTTP2_NO_ERROR, NULL, 0);
	mini_release(first);
	/* Whatever libcurl retries lands on connection 2 and is held:
	 * release those as they come. */
	for (int k = 0; k < 50 && n_done < 3; k++) {
		run_for(loop, 0.05);
		mini_release(0);
	}
	ck_assert_msg(n_done == 3, "%d done", n_done);
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(s[i].status == 200 ||
				  (s[i].status == 0 && s[i].transport[0]),
			      "request %d: %ld", i, s[i].status);
	}
	slot_init(&s[3], mini_url("/"), "POST", "{}", mini_ca());
	ck_assert_int_eq(submit(c, &s[3]), 0);
	ck_assert(run_until(loop, &n_done, 4, 5));
	ck_assert_int_eq(s[3].status, 200);
	ck_assert_str_ne(s[3].body, "hello conn=1");
	mc = mini_conn(1);
	if (mc)
		ck_assert_int_eq(mc->n_streams, 3);
	pr_h2client_free(c);
	mini_stop();
	slots_free(s, 4);
	ev_loop_destroy(loop);
}
END_TEST

/* RST_STREAM: a reset stream completes with status 0 and a reason.
 * INTERNAL_ERROR comes back as CURLE_HTTP2_STREAM; REFUSED_STREAM is
 * retried by libcurl 7.88 on fresh connections, 5 times, then
 * CURLE_RECV_ERROR "Connection died, tried 5 times before giving up". */
START_TEST(test_rst_stream)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[3];

	mini_start(loop);
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	slot_init(&s[0], mini_url("/rst-internal"), "POST", "{}", mini_ca());
	slot_init(&s[1], mini_url("/rst-refused"), "POST", "{}", mini_ca());
	slot_init(&s[2], mini_url("/"), "POST", "{}", mini_ca());
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(submit(c, &s[i]), 0);
	ck_assert(run_until(loop, &n_done, 3, 10));
	ck_assert_int_eq(s[0].status, 0);
	ck_assert_msg(strstr(s[0].transport, "HTTP/2") ||
			  strstr(s[0].transport, "stream"),
		      "%s", s[0].transport);
	ck_assert_int_eq(s[1].status, 0);
	ck_assert_int_eq(s[2].status, 200);
	pr_h2client_free(c);
	mini_stop();
	slots_free(s, 3);
	ev_loop_destroy(loop);
}
END_TEST

/* h2c (prior knowledge) for plain http:// URLs. One request per
 * connection only: libcurl 7.88 fails streams on a reused h2c
 * connection (curl issue #10634), so this checks no more than that. */
START_TEST(test_h2c_single)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s;

	mini_start_mode(loop, 0);
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	slot_init(&s, mini_url("/echo"), "POST", "abc", NULL);
	ck_assert_int_eq(submit(c, &s), 0);
	ck_assert(run_until(loop, &n_done, 1, 5));
	ck_assert_msg(s.status == 200, "%ld %s", s.status, s.transport);
	ck_assert_str_eq(s.body, "len=3 ctype=- expect=0");
	pr_h2client_free(c);
	mini_stop();
	slots_free(&s, 1);
	ev_loop_destroy(loop);
}
END_TEST

/*
 * REFUSED_STREAM while other streams are open on the connection: libcurl
 * 7.88 retries the refused request on a fresh connection (up to 5 times),
 * which waits for a free connection slot; the open streams are not
 * disturbed. Every request completes: the held ones 200, the refused one
 * status 0 with a reason.
 */
START_TEST(test_refused_with_others_open)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[11];

	mini_start(loop);
	c = pr_h2client_new(loop, &cfg);
	n_done = 0;
	for (int i = 0; i < 10; i++) {
		slot_init(&s[i], mini_url("/hold"), "POST", "{}", mini_ca());
		ck_assert_int_eq(submit(c, &s[i]), 0);
	}
	ck_assert(run_until(loop, &mini.held, 10, 5));
	slot_init(&s[10], mini_url("/rst-refused"), "POST", "{}", mini_ca());
	ck_assert_int_eq(submit(c, &s[10]), 0);
	run_for(loop, 0.3);
	ck_assert_int_eq(mini.held, 10);
	mini_release(0);
	ck_assert(run_until(loop, &n_done, 11, 10));
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(s[i].status, 200);
		ck_assert_str_eq(s[i].body, "released");
	}
	ck_assert_int_eq(s[10].status, 0);
	ck_assert(s[10].transport[0]);
	pr_h2client_free(c);
	mini_stop();
	slots_free(s, 11);
	ev_loop_destroy(loop);
}
END_TEST

/* done() resubmits its own req, 100 times in a row. */
START_TEST(test_done_resubmits)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct slot s[10];

	mini_start(loop);
	cfg.max_in_flight = 10;
	cur_client = pr_h2client_new(loop, &cfg);
	n_done = 0;
	for (int i = 0; i < 10; i++) {
		slot_init(&s[i], mini_url("/"), "POST", "{}", mini_ca());
		s[i].resubmit = 99;
		ck_assert_int_eq(submit(cur_client, &s[i]), 0);
	}
	ck_assert(run_until(loop, &n_done, 1000, 30));
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(s[i].done, 100);
		ck_assert_int_eq(s[i].status, 200);
	}
	ck_assert_uint_eq(pr_h2client_stats(cur_client)->requests, 1000);
	ck_assert_uint_eq(pr_h2client_stats(cur_client)->connects, 1);
	ck_assert_uint_eq(pr_h2client_in_flight(cur_client), 0);
	pr_h2client_free(cur_client);
	cur_client = NULL;
	mini_stop();
	slots_free(s, 10);
	ev_loop_destroy(loop);
}
END_TEST

/* done() frees its req (a heap one), the response still readable. */
static int freed;

static void free_done(struct pr_h2req *req, const struct pr_http_response *r,
		      void *arg)
{
	struct slot *s = arg;

	ck_assert_int_eq(r->status, 200);
	ck_assert_uint_eq(r->body_len, 12);
	ck_assert(memcmp(r->body, "hello conn=1", 12) == 0);
	ck_assert_ptr_eq(&s->req, req);
	free(s);
	freed++;
}

START_TEST(test_done_frees_req)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;

	mini_start(loop);
	c = pr_h2client_new(loop, &cfg);
	freed = 0;
	for (int i = 0; i < 20; i++) {
		struct slot *s = malloc(sizeof(*s));

		ck_assert_ptr_nonnull(s);
		slot_init(s, mini_url("/"), "POST", "{}", mini_ca());
		s->req.done = free_done;
		ck_assert_int_eq(submit(c, s), 0);
	}
	ck_assert(run_until(loop, &freed, 20, 10));
	pr_h2client_free(c);
	mini_stop();
	ev_loop_destroy(loop);
}
END_TEST

/* free() with requests in flight: every done() runs, with status 0 and
 * "shutting down", and a resubmit from done() is turned away. */
static int aborted, resubmit_rv;

static void abort_done(struct pr_h2req *req, const struct pr_http_response *r,
		       void *arg)
{
	(void)arg;
	ck_assert_int_eq(r->status, 0);
	ck_assert_str_eq(r->transport, "shutting down");
	ck_assert_ptr_null(req->easy);
	resubmit_rv = pr_h2client_submit(req->client, req);
	aborted++;
}

START_TEST(test_free_aborts_in_flight)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pr_h2client_config cfg = base_cfg();
	struct pr_h2client *c;
	struct slot s[30];
	char url[64];
	int port, lfd = listen_any(&port);

	mini_start(loop);
	c = pr_h2client_new(loop, &cfg);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
	aborted = 0;
	for (int i = 0; i < 30; i++) {
		/* 20 streams open on a connection, 10 still connecting. */
		slot_init(&s[i], i < 20 ? mini_url("/silent") : url, "POST",
			  "{}", i < 20 ? mini_ca() : NULL);
		s[i].req.done = abort_done;
		ck_assert_int_eq(submit(c, &s[i]), 0);
	}
	run_for(loop, 0.3);
	ck_assert_int_eq(aborted, 0);
	ck_assert_int_eq(mini_conn(1)->n_streams, 20);
	pr_h2client_free(c);
	ck_assert_int_eq(aborted, 30);
	ck_assert_int_eq(resubmit_rv, PR_ERR_BUSY);
	run_for(loop, 0.1); /* the client's watchers are all gone */
	mini_stop();
	close(lfd);
	ev_loop_destroy(loop);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("h2client");
	TCase *tc = tcase_create("daemon");
	TCase *tm = tcase_create("mini");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_one_request);
	tcase_add_test(tc, test_multiplex_500_one_connection);
	tcase_add_test(tc, test_connection_cap);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tm, 60);
	tcase_add_test(tm, test_max_in_flight_busy);
	tcase_add_test(tm, test_connection_refused);
	tcase_add_test(tm, test_request_timeout_silent_server);
	tcase_add_test(tm, test_request_timeout_silent_stream);
	tcase_add_test(tm, test_body_truncated_not_failed);
	tcase_add_test(tm, test_request_plumbing);
	tcase_add_test(tm, test_retry_after_and_apns_id);
	tcase_add_test(tm, test_goaway_connection_not_reused);
	tcase_add_test(tm, test_goaway_with_streams_in_flight);
	tcase_add_test(tm, test_rst_stream);
	tcase_add_test(tm, test_h2c_single);
	tcase_add_test(tm, test_refused_with_others_open);
	tcase_add_test(tm, test_done_resubmits);
	tcase_add_test(tm, test_done_frees_req);
	tcase_add_test(tm, test_free_aborts_in_flight);
	suite_add_tcase(s, tm);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

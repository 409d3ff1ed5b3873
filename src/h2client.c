/*
 * h2client.c - outgoing HTTP/2 requests on the libev loop through
 * libcurl's multi-socket API, the way curl's docs/examples/evhiperfifo.c
 * does it: curl tells us which sockets to watch (one ev_io each, a
 * `struct sock`) and when to wake it (one ev_timer); we hand readiness
 * back with curl_multi_socket_action and finish requests only after
 * curl_multi_info_read says they are done. This file owns the multi
 * handle, a pool of idle easy handles, the list of requests in flight and
 * the counters; the caller owns every pr_h2req and what it points to.
 *
 * Completion runs from a libev callback, never from submit or from inside
 * a libcurl callback, so done() may submit again (even the same req) or
 * free its req. Before done() runs the request is off every list, its easy
 * handle is back in the pool and the response body has moved out of the
 * req, so nothing here touches the req after done() returns.
 *
 * libcurl 7.88 facts this relies on or works around (see the notes by
 * each use): curl_easy_upkeep() only looks at the private connection
 * cache of curl_easy_perform(), never a multi handle's (upstream changed
 * that in 2024, curl PR #12677), and measured against an nghttp2 server
 * it sent no PING at all, so HTTP/2 PINGs cannot be sent from here and
 * none are faked: idle connections get TCP keepalive instead and are
 * retired once idle longer than ping_interval (CURLOPT_MAXAGE_CONN).
 * Before a server's SETTINGS arrive libcurl assumes 100 streams per
 * connection.
 */
#include "autoconf.h"

#include <curl/curl.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "h2client.h"
#include "log.h"
#include "provider.h"
#include "pushrelay.h"

/*
 * Endpoints one client talks to (APNs production + sandbox, FCM + its
 * OAuth token host, ...). The total connection cap and the connection
 * cache are `connections` times this, so a lull with few requests in
 * flight does not make libcurl close idle connections we want to keep.
 */
#define MAX_ENDPOINTS 8

/* Idle easy handles kept for reuse; beyond this they are cleaned up. */
#define POOL_MAX 4096

/* TCP keepalive on every connection: first probe after this many idle
 * seconds (or ping_interval when shorter), then one every
 * KEEPALIVE_INTERVAL. Short enough for NAT gateways that forget idle
 * flows after a few minutes; invisible to the HTTP/2 peer. */
#define KEEPALIVE_IDLE	   60L
#define KEEPALIVE_INTERVAL 30L

/* One socket libcurl asked us to watch. */
struct sock {
	struct ev_io io;
	curl_socket_t fd;
	struct pr_h2client *c;
	struct sock *prev, *next;
};

/* A transfer libcurl reported done, waiting for finish(). */
struct done_msg {
	struct pr_h2req *req;
	CURLcode result;
};

struct pr_h2client {
	struct ev_loop *loop;
	CURLM *multi;
	struct ev_timer timer; /* libcurl's one timeout */
	struct pr_h2client_config cfg;

	struct pr_h2req *head, *tail; /* in flight, oldest first */
	size_t in_flight;
	struct sock *socks; /* watched sockets */

	CURL **pool; /* idle easy handles */
	size_t n_pool, pool_cap;

	/* Finished transfers read from libcurl, not yet completed: one per
	 * request in flight at most. */
	struct done_msg *done_q;
	size_t done_cap;
	int reaping; /* check_multi_info is running */

	int closing; /* pr_h2client_free is aborting requests */
	struct pr_h2client_stats stats;
};

/* ---- sockets and the timer (evhiperfifo.c) ------------------------- */

static void check_multi_info(struct pr_h2client *c);

static void sock_io_cb(struct ev_loop *loop, struct ev_io *w, int revents)
{
	struct sock *s = w->data;
	struct pr_h2client *c = s->c;
	curl_socket_t fd = s->fd; /* s may be freed inside socket_action */
	int action = 0, running;

	(void)loop;
	if (revents & EV_READ)
		action |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	if (revents & EV_ERROR)
		action |= CURL_CSELECT_ERR;
	curl_multi_socket_action(c->multi, fd, action, &running);
	check_multi_info(c);
}

static void timer_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct pr_h2client *c = w->data;
	int running;

	(void)loop;
	(void)revents;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_multi_info(c);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arm the timer. Calling back into
 * libcurl from here is not allowed, and arming a 0 s timer instead of
 * acting at once is what keeps done() out of submit. */
static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct pr_h2client *c = userp;

	(void)multi;
	ev_timer_stop(c->loop, &c->timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&c->timer, (double)timeout_ms / 1000.0, 0.0);
		ev_timer_start(c->loop, &c->timer);
	}
	return 0;
}

static void sock_free(struct pr_h2client *c, struct sock *s)
{
	ev_io_stop(c->loop, &s->io);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: one ev_io per socket, re-armed when libcurl
 * changes what it waits for, stopped before libcurl closes the socket. */
static int multi_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
			 void *socketp)
{
	struct pr_h2client *c = userp;
	struct sock *s = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(c, s);
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1; /* libcurl fails the transfers on it */
		s->fd = fd;
		s->c = c;
		s->io.data = s;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		ev_io_init(&s->io, sock_io_cb, fd, events);
		curl_multi_assign(c->multi, fd, s);
	} else {
		ev_io_stop(c->loop, &s->io);
		ev_io_set(&s->io, fd, events);
	}
	ev_io_start(c->loop, &s->io);
	return 0;
}

/* ---- response callbacks --------------------------------------------- */

/* CURLOPT_WRITEFUNCTION: keep the first max_response bytes; the rest is
 * read and dropped so an oversized answer still completes. */
static size_t body_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct pr_h2req *req = ud;
	struct pr_buf *b = &req->body;
	size_t n = size * nmemb, room = b->max - pr_buf_avail(b);

	if (room > n)
		room = n;
	if (room)
		(void)pr_buf_append(b, ptr, room); /* NOMEM: keep less */
	return n;
}

/*
 * Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP-date, turned
 * into seconds from `now`; -1 when it is neither. A date in the past is 0.
 */
static long parse_retry_after(const char *v, size_t n, time_t now)
{
	char tmp[64];
	long secs = 0;
	time_t t;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n && v[i] >= '0' && v[i] <= '9'; i++)
		if (secs < 1000000000L)
			secs = secs * 10 + (v[i] - '0');
	if (i == n)
		return secs;
	if (n >= sizeof(tmp))
		return -1;
	memcpy(tmp, v, n);
	tmp[n] = '\0';
	t = curl_getdate(tmp, NULL);
	if (t == (time_t)-1)
		return -1;
	return t > now ? (long)(t - now) : 0;
}

/* Does the header line `line` (n bytes) name `name`? Then *val and *vlen get
 * its value without surrounding blanks and the CRLF. */
static int header_is(const char *line, size_t n, const char *name,
		     const char **val, size_t *vlen)
{
	size_t k = strlen(name);
	const char *v, *e;

	if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
		return 0;
	v = line + k + 1;
	e = line + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' ||
			 e[-1] == '\t'))
		e--;
	*val = v;
	*vlen = (size_t)(e - v);
	return 1;
}

/* CURLOPT_HEADERFUNCTION: pick out retry-after and apns-id. Values are
 * never logged: other headers carry credentials. */
static size_t header_cb(char *line, size_t size, size_t nitems, void *ud)
{
	struct pr_h2req *req = ud;
	size_t n = size * nitems, vlen;
	const char *v;

	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		/* A new response (after a 1xx): forget the last one's. */
		req->retry_after = -1;
		req->apns_id[0] = '\0';
	} else if (header_is(line, n, "retry-after", &v, &vlen)) {
		req->retry_after = parse_retry_after(v, vlen, time(NULL));
	} else if (header_is(line, n, "apns-id", &v, &vlen)) {
		if (vlen >= sizeof(req->apns_id))
			vlen = sizeof(req->apns_id) - 1;
		memcpy(req->apns_id, v, vlen);
		req->apns_id[vlen] = '\0';
	}
	return n;
}

/* ---- requests --------------------------------------------------------- */

static void list_add(struct pr_h2client *c, struct pr_h2req *req)
{
	req->next = NULL;
	req->prev = c->tail;
	if (c->tail)
		c->tail->next = req;
	else
		c->head = req;
	c->tail = req;
	c->in_flight++;
}

static void list_del(struct pr_h2client *c, struct pr_h2req *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		c->head = req->next;
	if (req->next)
		req->next->prev = req->prev;
	else
		c->tail = req->prev;
	req->prev = req->next = NULL;
	c->in_flight--;
}

static CURL *easy_get(struct pr_h2client *c)
{
	if (c->n_pool)
		return c->pool[--c->n_pool];
	return curl_easy_init();
}

/* Back to the pool, stripped of every option (and so of every pointer
 * into the finished req); live connections stay with the multi handle. */
static void easy_put(struct pr_h2client *c, CURL *easy)
{
	if (c->n_pool < c->pool_cap) {
		curl_easy_reset(easy);
		c->pool[c->n_pool++] = easy;
	} else {
		curl_easy_cleanup(easy);
	}
}

static int set_method(CURL *e, const struct pr_http_request *http)
{
	const char *m = http->method ? http->method : "POST";
	const char *body = http->body ? http->body : "";
	int rv = 0;

	if (strcmp(m, "GET") == 0 && !http->body)
		return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	/* Not copied: the caller keeps the body alive until done(). */
	rv |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
			       (curl_off_t)http->body_len) != CURLE_OK;
	rv |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, body) != CURLE_OK;
	if (strcmp(m, "POST") != 0)
		rv |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m) != CURLE_OK;
	return rv;
}

static struct curl_slist *make_headers(const struct pr_http_request *http)
{
	struct curl_slist *l = NULL, *t;
	int has_ctype = 0;

	for (size_t i = 0;
	     i < http->n_headers && i < PR_HTTP_MAX_HEADERS && http->headers[i];
	     i++) {
		if (strncasecmp(http->headers[i], "content-type:", 13) == 0)
			has_ctype = 1;
		t = curl_slist_append(l, http->headers[i]);
		if (!t)
			goto fail;
		l = t;
	}
	/* No 100-continue round trip, and no content type the provider did
	 * not ask for (curl would add a form one to every POST). */
	t = curl_slist_append(l, "Expect:");
	if (!t)
		goto fail;
	l = t;
	if (!has_ctype) {
		t = curl_slist_append(l, "Content-Type:");
		if (!t)
			goto fail;
		l = t;
	}
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
}

static int setup_easy(struct pr_h2client *c, struct pr_h2req *req, CURL *e)
{
	const struct pr_http_request *http = req->http;
	const struct pr_h2client_config *cfg = &c->cfg;
	/* h2c: libcurl before 8.0.0 cannot reuse a prior-knowledge
	 * connection (curl issue #10634, PR #10643): streams after the first
	 * fail with "Error in the HTTP2 framing layer". Only test servers
	 * speak h2c; APNs and FCM are TLS. A web server (req->http1) gets
	 * HTTP/1.1 in the clear, ALPN over TLS. */
	long version = strncasecmp(http->url, "http://", 7) != 0
			   ? (long)CURL_HTTP_VERSION_2TLS
		       : req->http1 ? (long)CURL_HTTP_VERSION_1_1
				    : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
	int rv = 0;

#define SET(opt, val) (rv |= curl_easy_setopt(e, opt, val) != CURLE_OK)
	SET(CURLOPT_PRIVATE, (void *)req);
	SET(CURLOPT_URL, http->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SET(CURLOPT_HTTP_VERSION, version);
	SET(CURLOPT_PIPEWAIT, 1L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TCP_NODELAY, 1L);
	/* Apple: an uncached DNS lookup before each new connection. Reused
	 * connections resolve nothing. */
	SET(CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	/* No HTTP/2 PING from a multi handle in libcurl 7.88 (see the top of
	 * the file): TCP keepalive keeps middleboxes aware of an idle
	 * connection and finds dead peers, and one idle for longer than
	 * ping_interval is closed rather than reused (libcurl's default
	 * would retire it after 118 s). */
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_TCP_KEEPIDLE, cfg->ping_interval < KEEPALIVE_IDLE
				      ? cfg->ping_interval
				      : KEEPALIVE_IDLE);
	SET(CURLOPT_TCP_KEEPINTVL, KEEPALIVE_INTERVAL);
	SET(CURLOPT_MAXAGE_CONN, cfg->ping_interval);
	SET(CURLOPT_CONNECTTIMEOUT, cfg->connect_timeout);
	SET(CURLOPT_TIMEOUT,
	    req->timeout > 0 ? req->timeout : cfg->request_timeout);
	SET(CURLOPT_HTTPHEADER, (struct curl_slist *)req->slist);
	SET(CURLOPT_WRITEFUNCTION, body_write_cb);
	SET(CURLOPT_WRITEDATA, (void *)req);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, (void *)req);
	SET(CURLOPT_ERRORBUFFER, req->errbuf);
	if (req->ca_file && *req->ca_file)
		SET(CURLOPT_CAINFO, req->ca_file);
	if (req->cert_file && *req->cert_file) {
		SET(CURLOPT_SSLCERT, req->cert_file);
		SET(CURLOPT_SSLCERTTYPE,
		    req->cert_type && *req->cert_type ? req->cert_type : "PEM");
		if (req->key_file && *req->key_file)
			SET(CURLOPT_SSLKEY, req->key_file);
		if (req->key_password && *req->key_password)
			SET(CURLOPT_KEYPASSWD, req->key_password);
	}
#undef SET
	rv |= set_method(e, http);
	return rv ? PR_ERR_INVAL : PR_OK;
}

int pr_h2client_submit(struct pr_h2client *c, struct pr_h2req *req)
{
	CURL *e = NULL;
	int rv;

	if (!c || !req || !req->http || !req->http->url || !req->done ||
	    (req->http->body_len && !req->http->body))
		return PR_ERR_INVAL;
	if (strncasecmp(req->http->url, "https://", 8) != 0 &&
	    strncasecmp(req->http->url, "http://", 7) != 0)
		return PR_ERR_INVAL;
	/* While free() aborts, done() may try again: the caller keeps it. */
	if (c->closing || c->in_flight >= (size_t)c->cfg.max_in_flight)
		return PR_ERR_BUSY;

	req->client = c;
	req->retry_after = -1;
	req->apns_id[0] = '\0';
	req->errbuf[0] = '\0';
	pr_buf_init(&req->body, c->cfg.max_response);
	req->slist = make_headers(req->http);
	if (!req->slist)
		return PR_ERR_NOMEM;
	e = easy_get(c);
	if (!e) {
		rv = PR_ERR_NOMEM;
		goto fail;
	}
	rv = setup_easy(c, req, e);
	if (rv)
		goto fail;
	req->easy = e;
	req->started = ev_time();
	/* Only arms the timer (see multi_timer_cb): nothing completes here. */
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
		rv = PR_ERR_NOMEM;
		goto fail;
	}
	list_add(c, req);
	return PR_OK;
fail:
	if (e)
		easy_put(c, e);
	curl_slist_free_all(req->slist);
	req->slist = NULL;
	req->easy = NULL;
	return rv;
}

/*
 * Finish one request: collect what it got, detach it from libcurl and
 * from us, then call done(). `abort_reason` non-NULL overrides the
 * outcome (shutdown). The body moves into a local buffer and the small
 * strings onto the stack, so done() may reuse or free the req.
 */
static void finish(struct pr_h2client *c, struct pr_h2req *req, CURLcode result,
		   const char *abort_reason)
{
	CURL *e = req->easy;
	struct pr_http_response resp;
	struct pr_buf body = req->body;
	char reason[320], apns_id[sizeof(req->apns_id)];
	long status = 0, nconn = 0;
	curl_off_t got = 0;

	if (!abort_reason && result == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK &&
	    nconn > 0)
		c->stats.connects += (unsigned long long)nconn;
	if (status && pr_log_enabled(PR_LOG_DEBUG) &&
	    curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &got) == CURLE_OK &&
	    got > (curl_off_t)pr_buf_avail(&body))
		pr_log(PR_LOG_DEBUG, NULL,
		       "h2client: response body truncated to %zu of %lld bytes",
		       pr_buf_avail(&body), (long long)got);

	reason[0] = '\0';
	if (abort_reason)
		snprintf(reason, sizeof(reason), "%s", abort_reason);
	else if (status == 0 && req->errbuf[0])
		snprintf(reason, sizeof(reason), "%s: %s",
			 curl_easy_strerror(result), req->errbuf);
	else if (status == 0)
		snprintf(reason, sizeof(reason), "%s",
			 result == CURLE_OK ? "no HTTP status"
					    : curl_easy_strerror(result));
	memcpy(apns_id, req->apns_id, sizeof(apns_id));

	curl_multi_remove_handle(c->multi, e);
	list_del(c, req);
	easy_put(c, e);
	curl_slist_free_all(req->slist);
	req->slist = NULL;
	req->easy = NULL;
	pr_buf_init(&req->body, 0);

	c->stats.requests++;
	if (status == 0)
		c->stats.failures++;
	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	resp.body = status ? pr_buf_peek(&body) : "";
	resp.body_len = status ? pr_buf_avail(&body) : 0;
	resp.retry_after = status ? req->retry_after : -1;
	resp.apns_id = status && apns_id[0] ? apns_id : NULL;
	resp.transport = status ? NULL : reason;
	resp.latency = ev_time() - req->started;
	if (resp.latency < 0)
		resp.latency = 0;
	req->done(req, &resp, req->arg);
	pr_buf_cleanup(&body);
}

/*
 * Completions, only as curl_multi_info_read reports them. All queued
 * messages are read first and finished after: curl_multi_remove_handle
 * walks the queue of unread messages, so removing while a thousand are
 * queued is quadratic (a third of the CPU at 1000 streams). Each message
 * is copied out before any removal (removal invalidates it). done() may
 * add handles meanwhile; a nested loop run from inside done() finds
 * `reaping` set and leaves the messages to this one.
 */
static void check_multi_info(struct pr_h2client *c)
{
	size_t n;

	if (c->reaping)
		return;
	c->reaping = 1;
	do {
		n = 0;
		while (n < c->done_cap) {
			int left;
			CURLMsg *msg = curl_multi_info_read(c->multi, &left);
			char *priv = NULL;

			if (!msg)
				break;
			if (msg->msg != CURLMSG_DONE ||
			    curl_easy_getinfo(msg->easy_handle,
					      CURLINFO_PRIVATE,
					      &priv) != CURLE_OK ||
			    !priv)
				continue;
			c->done_q[n].req = (struct pr_h2req *)(void *)priv;
			c->done_q[n].result = msg->data.result;
			n++;
		}
		for (size_t i = 0; i < n; i++)
			finish(c, c->done_q[i].req, c->done_q[i].result, NULL);
	} while (n > 0);
	c->reaping = 0;
}

/* ---- the client --------------------------------------------------------- */

struct pr_h2client *pr_h2client_new(struct ev_loop *loop,
				    const struct pr_h2client_config *cfg)
{
	struct pr_h2client *c;
	long conns, total;
	int rv = 0;

	if (!loop || !cfg || cfg->max_in_flight <= 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = loop;
	c->cfg = *cfg;
	if (c->cfg.connections <= 0)
		c->cfg.connections = 1;
	if (c->cfg.max_streams <= 0)
		c->cfg.max_streams = 100;
	if (c->cfg.connect_timeout <= 0)
		c->cfg.connect_timeout = 10;
	if (c->cfg.request_timeout <= 0)
		c->cfg.request_timeout = 30;
	if (c->cfg.ping_interval <= 0)
		c->cfg.ping_interval = 3600;
	c->pool_cap = (size_t)c->cfg.max_in_flight < POOL_MAX
			  ? (size_t)c->cfg.max_in_flight
			  : POOL_MAX;
	c->pool = calloc(c->pool_cap, sizeof(*c->pool));
	c->done_cap = (size_t)c->cfg.max_in_flight;
	c->done_q = calloc(c->done_cap, sizeof(*c->done_q));
	c->multi = curl_multi_init();
	if (!c->pool || !c->done_q || !c->multi)
		goto fail;
	ev_init(&c->timer, timer_cb);
	c->timer.data = c;

	conns = c->cfg.connections;
	total = conns * MAX_ENDPOINTS;
#define MSET(opt, val) (rv |= curl_multi_setopt(c->multi, opt, val) != CURLM_OK)
	MSET(CURLMOPT_SOCKETFUNCTION, multi_sock_cb);
	MSET(CURLMOPT_SOCKETDATA, (void *)c);
	MSET(CURLMOPT_TIMERFUNCTION, multi_timer_cb);
	MSET(CURLMOPT_TIMERDATA, (void *)c);
	MSET(CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	MSET(CURLMOPT_MAX_HOST_CONNECTIONS, conns);
	MSET(CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
	/* The idle cache defaults to 4 x the handles added at that moment;
	 * a lull would then close connections Apple wants kept. */
	MSET(CURLMOPT_MAXCONNECTS, total);
	MSET(CURLMOPT_MAX_CONCURRENT_STREAMS, c->cfg.max_streams);
#undef MSET
	if (rv)
		goto fail;
	return c;
fail:
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c->done_q);
	free(c->pool);
	free(c);
	return NULL;
}

void pr_h2client_free(struct pr_h2client *c)
{
	if (!c)
		return;
	c->closing = 1;
	while (c->head)
		finish(c, c->head, CURLE_ABORTED_BY_CALLBACK, "shutting down");
	/* Closes the connections; libcurl says CURL_POLL_REMOVE for the
	 * sockets it still watches. */
	curl_multi_cleanup(c->multi);
	while (c->socks)
		sock_free(c, c->socks);
	ev_timer_stop(c->loop, &c->timer);
	while (c->n_pool)
		curl_easy_cleanup(c->pool[--c->n_pool]);
	free(c->done_q);
	free(c->pool);
	free(c);
}

size_t pr_h2client_in_flight(const struct pr_h2client *c)
{
	return c ? c->in_flight : 0;
}

const struct pr_h2client_stats *pr_h2client_stats(const struct pr_h2client *c)
{
	return &c->stats;
}

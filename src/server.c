/*
 * server.c - the daemon object. It owns the config in force, the
 * listeners and every connection, and reacts to signals: TERM and INT
 * stop accepting, let requests in flight finish (bounded by
 * drain_timeout) and leave the loop; HUP reloads the config and reopens
 * the log.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "api_admin.h"
#include "api_devices.h"
#include "api_ingest.h"
#include "dashboard.h"
#include "auth.h"
#include "dispatch.h"
#include "inbox.h"
#include "ops_api.h"
#include "store.h"
#include "provider.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"
#include "tls.h"
#include "webhook.h"

static void server_signal_cb(struct ev_loop *loop, ev_signal *w, int revents);
static void server_drain_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void server_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void server_checkpoint_cb(struct ev_loop *loop, ev_timer *w,
				 int revents);
static void server_touch_cb(struct ev_loop *loop, ev_timer *w, int revents);

#define TOUCH_INTERVAL 60.0
#define TOUCH_MAX      256

/* A periodic job owned by the server: at most one of each in flight. */
struct periodic {
	struct pr_store_job job;
	struct pr_server *server;
	int64_t ids[TOUCH_MAX];
	int64_t times[TOUCH_MAX];
};

static void periodic_done(struct pr_store_job *job, void *arg)
{
	struct periodic *p = arg;

	if (job->rv)
		pr_log(PR_LOG_WARN, NULL, "store %s failed: %s",
		       job->op == PR_STORE_SWEEP	? "sweep"
		       : job->op == PR_STORE_CHECKPOINT ? "checkpoint"
							: "key touch",
		       job->err);
	else if (job->op == PR_STORE_SWEEP && job->result)
		pr_log(PR_LOG_DEBUG, NULL, "retention sweep done");
	if (job->op == PR_STORE_SWEEP)
		p->server->sweep_running = 0;
	json_decref(job->result);
	free(p);
}

static void submit_periodic(struct pr_server *s, enum pr_store_op op,
			    struct periodic *p)
{
	p->server = s;
	p->job.op = op;
	p->job.now = (int64_t)time(NULL);
	p->job.limit = s->cfg->storage_sweep_batch;
	p->job.done = periodic_done;
	p->job.arg = p;
	if (pr_store_submit(s->store, &p->job)) {
		if (op == PR_STORE_SWEEP)
			s->sweep_running = 0;
		free(p);
	}
}

static void server_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pr_server *s = w->data;
	struct periodic *p;

	w->repeat = (double)s->cfg->storage_sweep_interval;
	ev_timer_again(loop, w);
	if (s->sweep_running || !s->store)
		return;
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	s->sweep_running = 1;
	submit_periodic(s, PR_STORE_SWEEP, p);
}

static void server_checkpoint_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pr_server *s = w->data;
	struct periodic *p = calloc(1, sizeof(*p));

	w->repeat = (double)s->cfg->storage_checkpoint_interval;
	ev_timer_again(loop, w);
	if (p)
		submit_periodic(s, PR_STORE_CHECKPOINT, p);
}

/* Record API keys' last use in batches, not per request. */
static void server_touch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pr_server *s = w->data;
	struct periodic *p = calloc(1, sizeof(*p));
	size_t n;

	if (!p)
		return;
	n = pr_auth_take_used(s->auth, p->ids, p->times, TOUCH_MAX);
	if (n == 0) {
		free(p);
		return;
	}
	p->job.touch_ids = p->ids;
	p->job.touch_times = p->times;
	p->job.n_touch = n;
	submit_periodic(s, PR_STORE_KEY_TOUCH, p);
}

struct key_load {
	int done;
	int rv;
	char err[160];
};

static void key_load_done(struct pr_store_job *job, void *arg)
{
	struct key_load *kl = arg;

	kl->done = 1;
	kl->rv = job->rv;
	snprintf(kl->err, sizeof(kl->err), "%s", job->err);
}

/* Open the store and fill the key cache before any listener opens. */
static int open_store(struct pr_server *s, char *err, size_t errlen)
{
	struct pr_store_job job;
	struct key_load kl;
	int rv;

	s->store = pr_store_new(s->loop, s->cfg, err, errlen);
	if (!s->store)
		return PR_ERR_STORE;
	memset(&job, 0, sizeof(job));
	memset(&kl, 0, sizeof(kl));
	job.op = PR_STORE_KEY_LOAD;
	job.done = key_load_done;
	job.arg = &kl;
	rv = pr_store_submit(s->store, &job);
	while (rv == PR_OK && !kl.done)
		ev_run(s->loop, EVRUN_ONCE);
	if (rv == PR_OK)
		rv = kl.rv;
	if (rv == PR_OK)
		rv = pr_auth_load(s->auth, job.result);
	json_decref(job.result);
	if (rv) {
		snprintf(err, errlen, "cannot load API keys: %s",
			 kl.err[0] ? kl.err : pr_strerror(rv));
		return rv;
	}
	pr_log(PR_LOG_INFO, NULL, "storage %s open; %zu API key(s)",
	       s->cfg->storage_path, pr_auth_count(s->auth));
	return PR_OK;
}

static int needs_tls(const struct pr_config *cfg)
{
	for (size_t i = 0; i < cfg->n_listen; i++)
		if (cfg->listen[i].tls)
			return 1;
	for (size_t i = 0; i < cfg->n_admin_listen; i++)
		if (cfg->admin_listen[i].tls)
			return 1;
	return 0;
}

int pr_server_check_files(const struct pr_config *cfg, char *err, size_t errlen)
{
	struct pr_provider_env env = {.jwt_refresh = cfg->push_jwt_refresh,
				      .oauth_margin = 300};

	if (needs_tls(cfg)) {
		SSL_CTX *ctx;

		if (!cfg->tls_cert || !*cfg->tls_cert || !cfg->tls_key ||
		    !*cfg->tls_key) {
			snprintf(err, errlen,
				 "a tls listener needs tls_cert and tls_key");
			return PR_ERR_CONFIG;
		}
		ctx =
		    pr_tls_server_ctx(cfg->tls_cert, cfg->tls_key, err, errlen);
		if (!ctx)
			return PR_ERR_CONFIG;
		SSL_CTX_free(ctx);
	}
	for (size_t a = 0; a < cfg->n_apps; a++) {
		for (size_t k = 0; pr_push_platforms[k]; k++) {
			const struct pr_provider_ops *ops;
			void *p;
			int rv = pr_provider_create(pr_push_platforms[k],
						    &cfg->apps[a], &env, &ops,
						    &p, err, errlen);

			if (rv == PR_ERR_NOTFOUND)
				continue;
			if (rv)
				return rv;
			ops->destroy(p);
		}
	}
	return PR_OK;
}

struct pr_server *pr_server_new(struct ev_loop *loop, struct pr_config *cfg,
				char *err, size_t errlen)
{
	struct pr_server *s = calloc(1, sizeof(*s));

	if (!s) {
		pr_config_free(cfg);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = loop;
	s->cfg = cfg;
	s->reserve_fd = -1;
	s->started = (double)time(NULL);
	if (getrandom(&s->id_salt, sizeof(s->id_salt), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(s->id_salt))
		s->id_salt = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	s->router = pr_router_new();
	s->auth =
	    pr_auth_new(cfg->max_api_keys > 0 ? (size_t)cfg->max_api_keys : 1);
	s->inbox = pr_inbox_new(s);
	if (!s->router || !s->auth || !s->inbox || pr_ops_api_register(s) ||
	    pr_api_ingest_register(s) || pr_api_devices_register(s) ||
	    pr_api_admin_register(s) || pr_dashboard_register(s) ||
	    pr_inbox_register(s)) {
		snprintf(err, errlen, "cannot set up routes");
		goto fail;
	}
	s->metrics = pr_metrics_new(pr_router_count(s->router));
	if (!s->metrics) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (needs_tls(cfg)) {
		if (!cfg->tls_cert || !*cfg->tls_cert || !cfg->tls_key ||
		    !*cfg->tls_key) {
			snprintf(err, errlen,
				 "a tls listener needs tls_cert and tls_key");
			goto fail;
		}
		s->tls =
		    pr_tls_server_ctx(cfg->tls_cert, cfg->tls_key, err, errlen);
		if (!s->tls)
			goto fail;
	}
	ev_init(&s->drain_w, server_drain_cb);
	s->drain_w.data = s;
	ev_init(&s->sweep_w, server_sweep_cb);
	ev_init(&s->checkpoint_w, server_checkpoint_cb);
	ev_init(&s->touch_w, server_touch_cb);
	s->sweep_w.data = s->checkpoint_w.data = s->touch_w.data = s;
	return s;
fail:
	pr_server_free(s);
	return NULL;
}

static int add_listeners(struct pr_server *s, const struct pr_listen_spec *v,
			 size_t n, unsigned flags, int mode, char *err,
			 size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		struct pr_listener *l =
		    pr_listener_new(s, &v[i], flags, mode, err, errlen);

		if (!l)
			return PR_ERR_IO;
		l->next = s->listeners;
		s->listeners = l;
		if (v[i].family == AF_UNIX)
			pr_log(PR_LOG_INFO, NULL, "listening on %s%s",
			       v[i].text,
			       flags & PR_ROUTE_ADMIN ? " [admin]" : "");
		else
			pr_log(PR_LOG_INFO, NULL,
			       "listening on %s%s%s (port %d)", v[i].text,
			       flags & PR_ROUTE_ADMIN ? " [admin]" : "",
			       v[i].tls ? " [tls]" : "", l->port);
	}
	return PR_OK;
}

int pr_server_start(struct pr_server *s, char *err, size_t errlen)
{
	const struct pr_config *cfg = s->cfg;
	int rv;

	rv = open_store(s, err, errlen);
	if (rv)
		return rv;
	s->dispatch = pr_dispatch_new(s, err, errlen);
	if (!s->dispatch)
		return PR_ERR_CONFIG;
	s->webhook = pr_webhook_new(s);
	if (!s->webhook) {
		snprintf(err, errlen, "out of memory");
		return PR_ERR_NOMEM;
	}
	rv = add_listeners(s, cfg->listen, cfg->n_listen, PR_ROUTE_PUBLIC, 0666,
			   err, errlen);
	if (rv == PR_OK)
		rv = add_listeners(s, cfg->admin_listen, cfg->n_admin_listen,
				   PR_ROUTE_ADMIN, (int)cfg->admin_socket_mode,
				   err, errlen);
	if (rv)
		return rv;
	for (struct pr_listener *l = s->listeners; l; l = l->next)
		pr_listener_start(l);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ev_signal_init(&s->sigterm_w, server_signal_cb, SIGTERM);
	ev_signal_init(&s->sigint_w, server_signal_cb, SIGINT);
	ev_signal_init(&s->sighup_w, server_signal_cb, SIGHUP);
	s->sigterm_w.data = s->sigint_w.data = s->sighup_w.data = s;
	ev_signal_start(s->loop, &s->sigterm_w);
	ev_signal_start(s->loop, &s->sigint_w);
	ev_signal_start(s->loop, &s->sighup_w);

	s->sweep_w.repeat = (double)cfg->storage_sweep_interval;
	ev_timer_again(s->loop, &s->sweep_w);
	s->checkpoint_w.repeat = (double)cfg->storage_checkpoint_interval;
	ev_timer_again(s->loop, &s->checkpoint_w);
	s->touch_w.repeat = TOUCH_INTERVAL;
	ev_timer_again(s->loop, &s->touch_w);
	pr_dispatch_start(s->dispatch);
	return PR_OK;
}

static void close_listeners(struct pr_server *s)
{
	while (s->listeners) {
		struct pr_listener *l = s->listeners;

		s->listeners = l->next;
		pr_listener_free(l);
	}
}

void pr_server_drain(struct pr_server *s)
{
	struct pr_conn *c, *next;

	if (s->draining)
		return;
	s->draining = 1;
	s->drain_started = ev_now(s->loop);
	pr_log(PR_LOG_INFO, NULL,
	       "shutting down: %zu connection(s) open, waiting up to %lds",
	       s->n_conns, s->cfg->drain_timeout);
	close_listeners(s);
	pr_dispatch_stop(s->dispatch);
	for (c = s->conns; c; c = next) {
		next = c->next;
		pr_conn_shutdown(c);
	}
	s->drain_w.repeat = 0.02;
	ev_timer_again(s->loop, &s->drain_w);
}

static void server_drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pr_server *s = w->data;
	double waited = ev_now(loop) - s->drain_started;

	if (s->n_conns == 0) {
		ev_timer_stop(loop, w);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (waited >= (double)s->cfg->drain_timeout) {
		pr_log(PR_LOG_WARN, NULL,
		       "drain_timeout reached; closing %zu connection(s)",
		       s->n_conns);
		while (s->conns)
			pr_conn_free(s->conns);
		ev_timer_stop(loop, w);
		ev_break(loop, EVBREAK_ALL);
	}
}

int pr_server_reload(struct pr_server *s)
{
	struct pr_config *fresh = NULL;
	char err[4096], note[2048] = "";
	int rv;

	if (!s->cfg->path)
		return PR_OK;
	rv = pr_config_load(s->cfg->path, &fresh, err, sizeof(err));
	if (rv) {
		pr_log(PR_LOG_ERROR, NULL,
		       "reload failed, keeping the "
		       "running config:\n%s",
		       err);
		return rv;
	}
	if (pr_config_apply_reload(s->cfg, fresh, note, sizeof(note)) > 0)
		pr_log(PR_LOG_WARN, NULL, "%s", note);
	pr_config_free(fresh);
	if (pr_log_open(s->cfg->log_target))
		pr_log_errno(PR_LOG_ERROR, NULL, "cannot open log %s",
			     s->cfg->log_target);
	pr_log_set_level((enum pr_log_level)s->cfg->log_level);
	pr_log(PR_LOG_INFO, NULL, "configuration reloaded from %s",
	       s->cfg->path);
	return PR_OK;
}

static void server_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct pr_server *s = w->data;

	if (w->signum == SIGHUP) {
		pr_server_reload(s);
		return;
	}
	pr_server_drain(s);
}

void pr_server_free(struct pr_server *s)
{
	if (!s)
		return;
	close_listeners(s);
	while (s->conns)
		pr_conn_free(s->conns);
	if (s->loop) {
		ev_signal_stop(s->loop, &s->sigterm_w);
		ev_signal_stop(s->loop, &s->sigint_w);
		ev_signal_stop(s->loop, &s->sighup_w);
		ev_timer_stop(s->loop, &s->drain_w);
		ev_timer_stop(s->loop, &s->sweep_w);
		ev_timer_stop(s->loop, &s->checkpoint_w);
		ev_timer_stop(s->loop, &s->touch_w);
	}
	/* The dispatcher stops claiming; pending store jobs finish and their
	 * callbacks run (connections are gone, so deferred requests were
	 * aborted); then pushes still in flight are abandoned: they stay in
	 * flight in the store and are sent again at the next start. */
	pr_dispatch_stop(s->dispatch);
	pr_dispatch_flush(s->dispatch);
	if (s->store) {
		if (s->auth)
			server_touch_cb(s->loop, &s->touch_w, 0);
		pr_store_free(s->store);
		s->store = NULL;
	}
	pr_dispatch_free(s->dispatch);
	/* After the store: its last callbacks may still emit receipts. */
	pr_webhook_free(s->webhook);
	pr_inbox_free(s->inbox);
	pr_auth_free(s->auth);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	SSL_CTX_free(s->tls);
	pr_metrics_free(s->metrics);
	pr_router_free(s->router);
	pr_config_free(s->cfg);
	free(s);
}

void pr_server_dispatch(struct pr_server *s, struct pr_request *req,
			unsigned listen_flags)
{
	pr_router_dispatch(s->router, req, listen_flags);
}

void pr_server_request_id(struct pr_server *s, char *out)
{
	snprintf(out, PR_REQUEST_ID_LEN + 1, "%08x%08x", s->id_salt,
		 (unsigned)(++s->next_req & 0xffffffffu));
}

void pr_server_conn_add(struct pr_server *s, struct pr_conn *c)
{
	c->prev = NULL;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
}

void pr_server_conn_remove(struct pr_server *s, struct pr_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (s->conns == c)
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	s->n_conns--;
}

int pr_server_first_port(const struct pr_server *s, int admin)
{
	int port = -1;

	/* The list is in reverse order of the config; report the first. */
	for (const struct pr_listener *l = s->listeners; l; l = l->next)
		if (l->spec.family != AF_UNIX &&
		    !!(l->flags & PR_ROUTE_ADMIN) == !!admin)
			port = l->port;
	return port;
}

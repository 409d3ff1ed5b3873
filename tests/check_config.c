/*
 * check_config.c - the config module: defaults, every value type, every
 * error path (each error must name the file, the line and the key), the
 * cross-field checks, reload, and that etc/pushrelay.conf and
 * pushrelay.conf(5) stay in step with the directive table.
 */
#include "autoconf.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pushrelay.h"
#include "store.h"

#define ERRLEN 4096

/* ---- helpers ------------------------------------------------------------ */

static void tmp_template(char *out, size_t len)
{
	const char *dir = getenv("TMPDIR");

	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(out, len, "%s/check_config.XXXXXX", dir);
}

/* Write len bytes to a fresh temp file; its name goes into path. */
static void write_tmp(const char *data, size_t len, char *path, size_t plen)
{
	ssize_t w;
	int fd;

	tmp_template(path, plen);
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	w = write(fd, data, len);
	ck_assert_int_eq((long)w, (long)len);
	close(fd);
}

/*
 * Load `text` from a temp file (removed again). path receives the file
 * name so tests can check that errors start with it.
 */
static int load_bytes(const char *data, size_t len, struct pr_config **cfg,
		      char *err, size_t errlen, char *path, size_t plen)
{
	int rv;

	write_tmp(data, len, path, plen);
	rv = pr_config_load(path, cfg, err, errlen);
	unlink(path);
	return rv;
}

static int load_text(const char *text, struct pr_config **cfg, char *err,
		     char *path)
{
	return load_bytes(text, strlen(text), cfg, err, ERRLEN, path, PATH_MAX);
}

/* Load must succeed; returns the config (caller frees). */
static struct pr_config *load_ok(const char *text)
{
	char err[ERRLEN], path[PATH_MAX];
	struct pr_config *cfg = NULL;
	int rv;

	rv = load_text(text, &cfg, err, path);
	ck_assert_msg(rv == PR_OK, "load failed (%d):\n%s", rv, err);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(err, "");
	return cfg;
}

/* Messages in an err or note buffer: one a line, no final newline. */
static int count_lines(const char *s)
{
	int n = *s ? 1 : 0;

	for (; *s; s++)
		if (*s == '\n')
			n++;
	return n;
}

/*
 * Load must fail with PR_ERR_CONFIG and err must hold "PATH" + needle
 * (needle starts with ":LINE: [section] key: ..." or ": [section] ...").
 * Returns the number of error lines.
 */
static int expect_error(const char *text, const char *needle)
{
	char err[ERRLEN], path[PATH_MAX], want[PATH_MAX + 256];
	struct pr_config *cfg = (struct pr_config *)&cfg; /* not NULL */
	int rv;

	rv = load_text(text, &cfg, err, path);
	ck_assert_msg(rv == PR_ERR_CONFIG, "rv %d for:\n%s", rv, text);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof(want), "%s%s", path, needle);
	ck_assert_msg(strstr(err, want) != NULL, "want '%s' in:\n%s", want,
		      err);
	ck_assert_int_ne(err[strlen(err) - 1], '\n');
	return count_lines(err);
}

/* pr_config_parse_listen must fail with a reason containing needle. */
static void expect_listen_error(const char *text, const char *needle)
{
	struct pr_listen_spec spec;
	char err[256];
	int rv;

	memset(&spec, 0x55, sizeof(spec));
	rv = pr_config_parse_listen(text, &spec, err, sizeof(err));
	ck_assert_msg(rv == PR_ERR_CONFIG, "'%s' accepted", text);
	ck_assert_msg(strstr(err, needle) != NULL, "'%s': want '%s', got '%s'",
		      text, needle, err);
	ck_assert_ptr_null(spec.text);
}

static void assert_app_defaults(const struct pr_app_config *a)
{
	ck_assert_int_eq(a->push_mode, PR_PUSH_WAKEUP);
	ck_assert_int_eq(a->default_ttl, 28 * 86400);
	ck_assert_int_eq(a->max_ttl, 28 * 86400);
	ck_assert_int_eq(a->push_delay, 0);
	ck_assert_str_eq(a->apns_key_file, "");
	ck_assert_str_eq(a->apns_key_id, "");
	ck_assert_str_eq(a->apns_team_id, "");
	ck_assert_str_eq(a->apns_cert_file, "");
	ck_assert_str_eq(a->apns_cert_key_file, "");
	ck_assert_str_eq(a->apns_cert_password, "");
	ck_assert_str_eq(a->apns_topic, "");
	ck_assert_str_eq(a->apns_url, "https://api.push.apple.com");
	ck_assert_str_eq(a->apns_sandbox_url,
			 "https://api.sandbox.push.apple.com");
	ck_assert_str_eq(a->fcm_credentials, "");
	ck_assert_str_eq(a->fcm_url, "https://fcm.googleapis.com");
	ck_assert_str_eq(a->fcm_token_url, "");
	ck_assert_str_eq(a->ca_file, "");
	ck_assert_str_eq(a->client_token_secret, "");
	ck_assert_str_eq(a->webhook_url, "");
	ck_assert_str_eq(a->webhook_secret, "");
}

static void assert_defaults(const struct pr_config *c)
{
	ck_assert_uint_eq(c->n_listen, 1);
	ck_assert_str_eq(c->listen[0].text, "127.0.0.1:8080");
	ck_assert_int_eq(c->listen[0].family, AF_INET);
	ck_assert_str_eq(c->listen[0].host, "127.0.0.1");
	ck_assert_int_eq(c->listen[0].port, 8080);
	ck_assert_int_eq(c->listen[0].tls, 0);
	ck_assert_str_eq(c->tls_cert, "");
	ck_assert_str_eq(c->tls_key, "");
	ck_assert_int_eq(c->max_connections, 10000);
	ck_assert_int_eq(c->max_header_bytes, 16 * 1024);
	ck_assert_int_eq(c->max_headers, 100);
	ck_assert_int_eq(c->max_body_bytes, 1024 * 1024);
	ck_assert_int_eq(c->max_streams, 100);
	ck_assert_int_eq(c->output_buffer_bytes, 4 * 1024 * 1024);
	ck_assert_int_eq(c->header_timeout, 10);
	ck_assert_int_eq(c->body_timeout, 30);
	ck_assert_int_eq(c->idle_timeout, 60);
	ck_assert_int_eq(c->drain_timeout, 10);
	ck_assert_uint_eq(c->n_admin_listen, 1);
	ck_assert_int_eq(c->admin_listen[0].family, AF_UNIX);
	ck_assert_str_eq(c->admin_listen[0].path,
			 "/var/lib/pushrelay/admin.sock");
	ck_assert_int_eq(c->admin_socket_mode, 0600);
	ck_assert_str_eq(c->storage_path, "/var/lib/pushrelay/pushrelay.db");
	ck_assert_int_eq(c->storage_synchronous, 2);
	ck_assert_int_eq(c->storage_startup_check, 1);
	ck_assert_int_eq(c->storage_busy_timeout, 5000);
	ck_assert_int_eq(c->storage_commit_batch, 1024);
	ck_assert_int_eq(c->storage_max_pending_jobs, 65536);
	ck_assert_int_eq(c->storage_max_messages, 10000000);
	ck_assert_int_eq(c->storage_max_size, 0);
	ck_assert_int_eq(c->storage_sweep_interval, 60);
	ck_assert_int_eq(c->storage_sweep_batch, 5000);
	ck_assert_int_eq(c->storage_checkpoint_interval, 300);
	ck_assert_int_eq(c->storage_history, 86400);
	ck_assert_int_eq(c->ingest_max_events, 100);
	ck_assert_int_eq(c->ingest_max_payload_bytes, 16 * 1024);
	ck_assert_int_eq(c->ingest_max_devices, 100);
	ck_assert_int_eq(c->ingest_max_id_bytes, 256);
	ck_assert_int_eq(c->push_max_in_flight, 1000);
	ck_assert_int_eq(c->push_connections, 2);
	ck_assert_int_eq(c->push_max_streams, 1000);
	ck_assert_int_eq(c->push_connect_timeout, 10);
	ck_assert_int_eq(c->push_request_timeout, 30);
	ck_assert_int_eq(c->push_max_attempts, 12);
	ck_assert_int_eq(c->push_max_age, 86400);
	ck_assert_int_eq(c->push_backoff_base, 2);
	ck_assert_int_eq(c->push_backoff_max, 900);
	ck_assert_int_eq(c->push_coalesce_window, 0);
	ck_assert_int_eq(c->push_min_interval, 0);
	ck_assert_int_eq(c->push_jwt_refresh, 3000);
	ck_assert_int_eq(c->push_ping_interval, 3600);
	ck_assert_int_eq(c->push_claim_batch, 256);
	ck_assert_int_eq(c->inbox_max_wait, 60);
	ck_assert_int_eq(c->inbox_max_limit, 500);
	ck_assert_int_eq(c->inbox_token_leeway, 30);
	ck_assert_int_eq(c->inbox_max_waiters, 10000);
	ck_assert_int_eq(c->ws_ping_interval, 30);
	ck_assert_int_eq(c->ws_idle_timeout, 120);
	ck_assert_int_eq(c->ws_max_message, 64 * 1024);
	ck_assert_int_eq(c->ws_max_queued, 1024 * 1024);
	ck_assert_int_eq(c->webhook_flush_interval, 1);
	ck_assert_int_eq(c->webhook_max_batch, 100);
	ck_assert_int_eq(c->webhook_max_pending, 10000);
	ck_assert_int_eq(c->webhook_backoff_base, 1);
	ck_assert_int_eq(c->webhook_backoff_max, 300);
	ck_assert_int_eq(c->webhook_max_attempts, 10);
	ck_assert_int_eq(c->webhook_timeout, 10);
	ck_assert_int_eq(c->log_level, PR_LOG_INFO);
	ck_assert_str_eq(c->log_target, "stderr");
	ck_assert_int_eq(c->log_access, 0);
	/* No [app] section: one app "default". */
	ck_assert_uint_eq(c->n_apps, 1);
	ck_assert_str_eq(c->apps[0].name, "default");
	assert_app_defaults(&c->apps[0]);
}

/* A source-tree file: $PR_SRCDIR/rel, else ../rel, else rel. */
static void src_file(const char *rel, char *out, size_t len)
{
	const char *dir = getenv("PR_SRCDIR");

	if (dir && *dir) {
		snprintf(out, len, "%s/%s", dir, rel);
		if (access(out, R_OK) == 0)
			return;
	}
	snprintf(out, len, "../%s", rel);
	if (access(out, R_OK) == 0)
		return;
	snprintf(out, len, "%s", rel);
}

/* Whole file, NUL-terminated; at most 1 MiB. Caller frees. */
static char *read_all(const char *path)
{
	size_t cap = 1 << 20, n;
	char *buf;
	FILE *fp;

	fp = fopen(path, "r");
	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	buf = malloc(cap + 1);
	ck_assert_ptr_nonnull(buf);
	n = fread(buf, 1, cap, fp);
	ck_assert_msg(feof(fp), "%s: larger than 1 MiB or unreadable", path);
	fclose(fp);
	buf[n] = '\0';
	return buf;
}

/* The example writer's output as a string. Caller frees. */
static char *example_text(char *path, size_t plen)
{
	FILE *fp;
	int fd;

	tmp_template(path, plen);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fp = fdopen(fd, "w");
	ck_assert_ptr_nonnull(fp);
	pr_config_write_example(fp);
	ck_assert_int_eq(fclose(fp), 0);
	return read_all(path);
}

/* ---- defaults and values ------------------------------------------------ */

START_TEST(test_defaults)
{
	struct pr_config *c = pr_config_new();

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(c->path);
	assert_defaults(c);
	pr_config_free(c);
	pr_config_free(NULL);
}
END_TEST

START_TEST(test_empty_file)
{
	char err[ERRLEN], path[PATH_MAX];
	struct pr_config *c = NULL;

	ck_assert_int_eq(load_text("", &c, err, path), PR_OK);
	assert_defaults(c);
	ck_assert_str_eq(c->path, path);
	pr_config_free(c);

	c = load_ok("; only comments\n# here\n\n[server]\n[admin]\n[log]\n");
	assert_defaults(c);
	pr_config_free(c);
}
END_TEST

START_TEST(test_sizes)
{
	struct pr_config *c = load_ok("[server]\n"
				      "max_header_bytes = 16k\n"
				      "max_body_bytes = 2M\n"
				      "output_buffer_bytes = 65536\n");

	ck_assert_int_eq(c->max_header_bytes, 16384);
	ck_assert_int_eq(c->max_body_bytes, 2097152);
	ck_assert_int_eq(c->output_buffer_bytes, 65536);
	pr_config_free(c);

	c = load_ok("[server]\nmax_header_bytes = 1m\nmax_body_bytes = 1K\n"
		    "output_buffer_bytes = 256m\n");
	ck_assert_int_eq(c->max_header_bytes, 1048576);
	ck_assert_int_eq(c->max_body_bytes, 1024);
	ck_assert_int_eq(c->output_buffer_bytes, 256L * 1024 * 1024);
	pr_config_free(c);
}
END_TEST

START_TEST(test_seconds)
{
	struct pr_config *c = load_ok("[server]\n"
				      "header_timeout = 2m\n"
				      "body_timeout = 45s\n"
				      "idle_timeout = 1h\n"
				      "drain_timeout = 0\n");

	ck_assert_int_eq(c->header_timeout, 120);
	ck_assert_int_eq(c->body_timeout, 45);
	ck_assert_int_eq(c->idle_timeout, 3600);
	ck_assert_int_eq(c->drain_timeout, 0);
	pr_config_free(c);
}
END_TEST

START_TEST(test_bools)
{
	static const char *const yes[] = {"yes", "true", "on",
					  "1",	 "YES",	 "On"};
	static const char *const no[] = {"no", "false", "off", "0", "False"};
	struct pr_config *c;
	char text[128];

	for (size_t i = 0; i < PR_ARRAY_SIZE(yes); i++) {
		snprintf(text, sizeof(text), "[log]\naccess = %s\n", yes[i]);
		c = load_ok(text);
		ck_assert_msg(c->log_access == 1, "%s", yes[i]);
		pr_config_free(c);
	}
	for (size_t i = 0; i < PR_ARRAY_SIZE(no); i++) {
		snprintf(text, sizeof(text), "[log]\naccess = %s\n", no[i]);
		c = load_ok(text);
		ck_assert_msg(c->log_access == 0, "%s", no[i]);
		pr_config_free(c);
	}
}
END_TEST

START_TEST(test_log_and_mode)
{
	struct pr_config *c = load_ok("[log]\nlevel = debug\n"
				      "target = /var/log/pushrelay.log\n"
				      "[admin]\nsocket_mode = 0660\n");

	ck_assert_int_eq(c->log_level, PR_LOG_DEBUG);
	ck_assert_str_eq(c->log_target, "/var/log/pushrelay.log");
	ck_assert_int_eq(c->admin_socket_mode, 0660);
	pr_config_free(c);

	c = load_ok("[log]\nlevel = WARN\ntarget = syslog\n"
		    "[admin]\nsocket_mode = 600\n");
	ck_assert_int_eq(c->log_level, PR_LOG_WARN);
	ck_assert_str_eq(c->log_target, "syslog");
	ck_assert_int_eq(c->admin_socket_mode, 0600);
	pr_config_free(c);
}
END_TEST

START_TEST(test_listen_repeat)
{
	struct pr_config *c = load_ok("[server]\n"
				      "listen = [::1]:8080\n"
				      "listen = [::]:8443 tls\n"
				      "listen = unix:/run/pushrelay/api.sock\n"
				      "tls_cert = /etc/pushrelay/tls.crt\n"
				      "tls_key = /etc/pushrelay/tls.key\n"
				      "[log]\n"
				      "[server]\n"
				      "listen = 0.0.0.0:0 ; any free port\n");

	/* The first listen replaced the default; the rest appended. */
	ck_assert_uint_eq(c->n_listen, 4);
	ck_assert_int_eq(c->listen[0].family, AF_INET6);
	ck_assert_str_eq(c->listen[0].host, "::1");
	ck_assert_int_eq(c->listen[0].port, 8080);
	ck_assert_int_eq(c->listen[0].tls, 0);
	ck_assert_int_eq(c->listen[1].family, AF_INET6);
	ck_assert_str_eq(c->listen[1].host, "::");
	ck_assert_int_eq(c->listen[1].port, 8443);
	ck_assert_int_eq(c->listen[1].tls, 1);
	ck_assert_str_eq(c->listen[1].text, "[::]:8443 tls");
	ck_assert_int_eq(c->listen[2].family, AF_UNIX);
	ck_assert_str_eq(c->listen[2].path, "/run/pushrelay/api.sock");
	ck_assert_int_eq(c->listen[3].family, AF_INET);
	ck_assert_int_eq(c->listen[3].port, 0);
	ck_assert_str_eq(c->listen[3].text, "0.0.0.0:0");
	ck_assert_str_eq(c->tls_cert, "/etc/pushrelay/tls.crt");
	/* [admin] listen is a list of its own: still the default. */
	ck_assert_uint_eq(c->n_admin_listen, 1);
	ck_assert_str_eq(c->admin_listen[0].path,
			 "/var/lib/pushrelay/admin.sock");
	pr_config_free(c);

	c = load_ok("[admin]\nlisten = 127.0.0.1:9090\n");
	ck_assert_uint_eq(c->n_admin_listen, 1);
	ck_assert_int_eq(c->admin_listen[0].port, 9090);
	ck_assert_uint_eq(c->n_listen, 1);
	pr_config_free(c);
}
END_TEST

START_TEST(test_comments_and_layout)
{
	struct pr_config *c = load_ok("\xEF\xBB\xBF; a BOM, then comments\n"
				      "[server] ; the API\n"
				      "max_headers = 50 ; fifty\n"
				      "  max_streams = 10\n"
				      "# hash comment\n"
				      "\t; indented comment\n"
				      "\tidle_timeout=5\n"
				      "body_timeout: 7\n"
				      "\n"
				      "   \n");

	ck_assert_int_eq(c->max_headers, 50);
	ck_assert_int_eq(c->max_streams, 10);
	ck_assert_int_eq(c->idle_timeout, 5);
	ck_assert_int_eq(c->body_timeout, 7);
	pr_config_free(c);

	c = load_ok("[server]\r\nmax_headers = 50\r\n[log]\r\nlevel = warn");
	ck_assert_int_eq(c->max_headers, 50);
	ck_assert_int_eq(c->log_level, PR_LOG_WARN);
	pr_config_free(c);
}
END_TEST

START_TEST(test_full_config)
{
	struct pr_config *c =
	    load_ok("[server]\n"
		    "listen = 0.0.0.0:80\n"
		    "listen = [::]:443 tls\n"
		    "tls_cert = /etc/pushrelay/tls.crt\n"
		    "tls_key = /etc/pushrelay/tls.key\n"
		    "max_connections = 20000\n"
		    "max_header_bytes = 32k\n"
		    "max_headers = 64\n"
		    "max_body_bytes = 8m\n"
		    "max_streams = 250\n"
		    "output_buffer_bytes = 1m\n"
		    "header_timeout = 5\n"
		    "body_timeout = 15\n"
		    "idle_timeout = 120\n"
		    "drain_timeout = 30\n"
		    "[admin]\n"
		    "listen = unix:/run/pushrelay/admin.sock\n"
		    "listen = 127.0.0.1:9090\n"
		    "socket_mode = 0660\n"
		    "[log]\n"
		    "level = debug\n"
		    "target = syslog\n"
		    "access = yes\n");

	ck_assert_uint_eq(c->n_listen, 2);
	ck_assert_int_eq(c->listen[0].port, 80);
	ck_assert_int_eq(c->listen[1].tls, 1);
	ck_assert_str_eq(c->tls_key, "/etc/pushrelay/tls.key");
	ck_assert_int_eq(c->max_connections, 20000);
	ck_assert_int_eq(c->max_header_bytes, 32768);
	ck_assert_int_eq(c->max_headers, 64);
	ck_assert_int_eq(c->max_body_bytes, 8L << 20);
	ck_assert_int_eq(c->max_streams, 250);
	ck_assert_int_eq(c->output_buffer_bytes, 1L << 20);
	ck_assert_int_eq(c->header_timeout, 5);
	ck_assert_int_eq(c->body_timeout, 15);
	ck_assert_int_eq(c->idle_timeout, 120);
	ck_assert_int_eq(c->drain_timeout, 30);
	ck_assert_uint_eq(c->n_admin_listen, 2);
	ck_assert_str_eq(c->admin_listen[0].path, "/run/pushrelay/admin.sock");
	ck_assert_int_eq(c->admin_listen[1].port, 9090);
	ck_assert_int_eq(c->admin_socket_mode, 0660);
	ck_assert_int_eq(c->log_level, PR_LOG_DEBUG);
	ck_assert_str_eq(c->log_target, "syslog");
	ck_assert_int_eq(c->log_access, 1);
	pr_config_free(c);
}
END_TEST

START_TEST(test_storage_and_ingest)
{
	struct pr_config *c = load_ok("[storage]\n"
				      "path = /srv/pushrelay/relay.db\n"
				      "synchronous = normal\n"
				      "busy_timeout = 0\n"
				      "commit_batch = 1\n"
				      "max_pending_jobs = 16\n"
				      "max_messages = 1000000000\n"
				      "max_size = 1t\n"
				      "sweep_interval = 1d\n"
				      "sweep_batch = 100\n"
				      "checkpoint_interval = 5m\n"
				      "history = 7d\n"
				      "[ingest]\n"
				      "max_events = 10000\n"
				      "max_payload_bytes = 64\n"
				      "max_devices = 1\n"
				      "max_id_bytes = 1024\n");

	ck_assert_str_eq(c->storage_path, "/srv/pushrelay/relay.db");
	ck_assert_int_eq(c->storage_synchronous, 1);
	ck_assert_int_eq(c->storage_busy_timeout, 0);
	ck_assert_int_eq(c->storage_commit_batch, 1);
	ck_assert_int_eq(c->storage_max_pending_jobs, 16);
	ck_assert_int_eq(c->storage_max_messages, 1000000000);
	ck_assert_int_eq(c->storage_max_size, 1L << 40);
	ck_assert_int_eq(c->storage_sweep_interval, 86400);
	ck_assert_int_eq(c->storage_sweep_batch, 100);
	ck_assert_int_eq(c->storage_checkpoint_interval, 300);
	ck_assert_int_eq(c->storage_history, 7 * 86400);
	ck_assert_int_eq(c->ingest_max_events, 10000);
	ck_assert_int_eq(c->ingest_max_payload_bytes, 64);
	ck_assert_int_eq(c->ingest_max_devices, 1);
	ck_assert_int_eq(c->ingest_max_id_bytes, 1024);
	pr_config_free(c);

	/* Choices in any case; "d" and "D" are days; 0 keeps no history. */
	c = load_ok("[storage]\nsynchronous = FULL\nmax_size = 2G\n"
		    "history = 0\nsweep_interval = 2h\n"
		    "checkpoint_interval = 1D\n");
	ck_assert_int_eq(c->storage_synchronous, 2);
	ck_assert_int_eq(c->storage_max_size, 2L << 30);
	ck_assert_int_eq(c->storage_history, 0);
	ck_assert_int_eq(c->storage_sweep_interval, 7200);
	ck_assert_int_eq(c->storage_checkpoint_interval, 86400);
	pr_config_free(c);
}
END_TEST

START_TEST(test_apps)
{
	static const char long_name[] = "a123456789b123456789c123456789"
					"d123456789e123456789f123456789"
					"g123"; /* 64 */
	const struct pr_app_config *a;
	char text[512];
	struct pr_config *c;

	c = load_ok("[app \"chat\"]\n"
		    "push_mode = alert\n"
		    "default_ttl = 1d\n"
		    "max_ttl = 7d\n"
		    "push_delay = 30s\n"
		    "[server]\n"
		    "max_headers = 50\n"
		    "[app\t \"com.example.Other_app-2\"]\n"
		    "push_delay = 5\n");

	/* In file order; the implicit "default" app is gone. */
	ck_assert_uint_eq(c->n_apps, 2);
	ck_assert_str_eq(c->apps[0].name, "chat");
	ck_assert_int_eq(c->apps[0].push_mode, PR_PUSH_ALERT);
	ck_assert_int_eq(c->apps[0].default_ttl, 86400);
	ck_assert_int_eq(c->apps[0].max_ttl, 7 * 86400);
	ck_assert_int_eq(c->apps[0].push_delay, 30);
	ck_assert_str_eq(c->apps[1].name, "com.example.Other_app-2");
	ck_assert_int_eq(c->apps[1].push_mode, PR_PUSH_WAKEUP);
	ck_assert_int_eq(c->apps[1].default_ttl, 28 * 86400);
	ck_assert_int_eq(c->apps[1].max_ttl, 28 * 86400);
	ck_assert_int_eq(c->apps[1].push_delay, 5);
	/* A section after an app's takes the keys again. */
	ck_assert_int_eq(c->max_headers, 50);

	ck_assert_ptr_eq(pr_config_app(c, "chat"), &c->apps[0]);
	ck_assert_ptr_eq(pr_config_app(c, "com.example.Other_app-2"),
			 &c->apps[1]);
	ck_assert_ptr_null(pr_config_app(c, "default"));
	ck_assert_ptr_null(pr_config_app(c, "Chat"));
	ck_assert_ptr_null(pr_config_app(c, "cha"));
	ck_assert_ptr_null(pr_config_app(c, NULL));
	ck_assert_ptr_null(pr_config_app(NULL, "chat"));
	pr_config_free(c);

	/* An app section may be empty; a 64-byte name; default_ttl 0. */
	snprintf(text, sizeof(text),
		 "[app \"%s\"]\n[app \"x\"]  ; comment\ndefault_ttl = 0\n"
		 "max_ttl = 1\n",
		 long_name);
	c = load_ok(text);
	ck_assert_uint_eq(c->n_apps, 2);
	a = pr_config_app(c, long_name);
	ck_assert_ptr_nonnull(a);
	assert_app_defaults(a);
	a = pr_config_app(c, "x");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->default_ttl, 0);
	ck_assert_int_eq(a->max_ttl, 1);
	pr_config_free(c);

	/* Naming the default app sets it. */
	c = load_ok("[app \"default\"]\npush_mode = alert\n");
	ck_assert_uint_eq(c->n_apps, 1);
	ck_assert_int_eq(pr_config_app(c, "default")->push_mode, PR_PUSH_ALERT);
	pr_config_free(c);
}
END_TEST

START_TEST(test_implicit_default_app)
{
	struct pr_config *c = pr_config_new();
	const struct pr_app_config *a;

	ck_assert_uint_eq(c->n_apps, 1);
	a = pr_config_app(c, "default");
	ck_assert_ptr_eq(a, &c->apps[0]);
	assert_app_defaults(a);
	pr_config_free(c);

	c = load_ok("[server]\nmax_headers = 10\n");
	ck_assert_uint_eq(c->n_apps, 1);
	a = pr_config_app(c, "default");
	ck_assert_ptr_nonnull(a);
	assert_app_defaults(a);
	pr_config_free(c);
}
END_TEST

START_TEST(test_push_section)
{
	struct pr_config *c = load_ok("[push]\n"
				      "max_in_flight = 100000\n"
				      "connections = 64\n"
				      "max_streams = 1\n"
				      "connect_timeout = 2m\n"
				      "request_timeout = 10m\n"
				      "max_attempts = 1\n"
				      "max_age = 28d\n"
				      "backoff_base = 1h\n"
				      "backoff_max = 1h\n"
				      "coalesce_window = 30s\n"
				      "min_interval = 1h\n"
				      "jwt_refresh = 20m\n"
				      "ping_interval = 1d\n"
				      "claim_batch = 10000\n");

	ck_assert_int_eq(c->push_max_in_flight, 100000);
	ck_assert_int_eq(c->push_connections, 64);
	ck_assert_int_eq(c->push_max_streams, 1);
	ck_assert_int_eq(c->push_connect_timeout, 120);
	ck_assert_int_eq(c->push_request_timeout, 600);
	ck_assert_int_eq(c->push_max_attempts, 1);
	ck_assert_int_eq(c->push_max_age, 28 * 86400);
	ck_assert_int_eq(c->push_backoff_base, 3600);
	ck_assert_int_eq(c->push_backoff_max, 3600);
	ck_assert_int_eq(c->push_coalesce_window, 30);
	ck_assert_int_eq(c->push_min_interval, 3600);
	ck_assert_int_eq(c->push_jwt_refresh, 1200);
	ck_assert_int_eq(c->push_ping_interval, 86400);
	ck_assert_int_eq(c->push_claim_batch, 10000);
	pr_config_free(c);

	/* The low ends. */
	c = load_ok("[push]\nmax_in_flight = 1\nconnections = 1\n"
		    "max_streams = 10000\nconnect_timeout = 1\n"
		    "request_timeout = 1\nmax_attempts = 1000\nmax_age = 1m\n"
		    "backoff_base = 1\nbackoff_max = 1\njwt_refresh = 1h\n"
		    "ping_interval = 60\nclaim_batch = 1\n");
	ck_assert_int_eq(c->push_max_streams, 10000);
	ck_assert_int_eq(c->push_max_age, 60);
	ck_assert_int_eq(c->push_backoff_max, 1);
	ck_assert_int_eq(c->push_jwt_refresh, 3600);
	ck_assert_int_eq(c->push_ping_interval, 60);
	pr_config_free(c);
}
END_TEST

/* Token auth for APNs, FCM beside it and every endpoint overridden. */
START_TEST(test_app_token_auth)
{
	struct pr_config *c =
	    load_ok("[app \"chat\"]\n"
		    "apns_key_file = /etc/pushrelay/AuthKey_ABC123DEFG.p8\n"
		    "apns_key_id = ABC123DEFG\n"
		    "apns_team_id = DEF123GHIJ\n"
		    "apns_topic = com.example.chat\n"
		    "apns_url = https://127.0.0.1:2197\n"
		    "apns_sandbox_url = http://[::1]:8443\n"
		    "fcm_credentials = /etc/pushrelay/service-account.json\n"
		    "fcm_url = http://localhost:9000\n"
		    "fcm_token_url = https://oauth2.googleapis.com/token\n"
		    "ca_file = /etc/ssl/certs/ca-certificates.crt\n"
		    "[app \"fcm-only\"]\n"
		    "fcm_credentials = /etc/pushrelay/sa.json\n"
		    "[app \"none\"]\n"
		    "apns_topic = com.example.None-2\n");
	const struct pr_app_config *a = pr_config_app(c, "chat");

	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->apns_key_file,
			 "/etc/pushrelay/AuthKey_ABC123DEFG.p8");
	ck_assert_str_eq(a->apns_key_id, "ABC123DEFG");
	ck_assert_str_eq(a->apns_team_id, "DEF123GHIJ");
	ck_assert_str_eq(a->apns_topic, "com.example.chat");
	ck_assert_str_eq(a->apns_url, "https://127.0.0.1:2197");
	ck_assert_str_eq(a->apns_sandbox_url, "http://[::1]:8443");
	ck_assert_str_eq(a->fcm_credentials,
			 "/etc/pushrelay/service-account.json");
	ck_assert_str_eq(a->fcm_url, "http://localhost:9000");
	ck_assert_str_eq(a->fcm_token_url,
			 "https://oauth2.googleapis.com/token");
	ck_assert_str_eq(a->ca_file, "/etc/ssl/certs/ca-certificates.crt");
	ck_assert_str_eq(a->apns_cert_file, "");
	ck_assert_str_eq(a->apns_cert_password, "");
	/* FCM alone, or no provider at all, is fine. */
	a = pr_config_app(c, "fcm-only");
	ck_assert_str_eq(a->fcm_credentials, "/etc/pushrelay/sa.json");
	ck_assert_str_eq(a->apns_url, "https://api.push.apple.com");
	ck_assert_str_eq(pr_config_app(c, "none")->apns_topic,
			 "com.example.None-2");
	pr_config_free(c);
}
END_TEST

START_TEST(test_app_cert_auth)
{
	struct pr_config *c =
	    load_ok("[app \"pem\"]\n"
		    "apns_cert_file = /etc/pushrelay/apns.pem\n"
		    "apns_cert_key_file = /etc/pushrelay/k.pem\n"
		    "apns_topic = com.example.chat\n"
		    "[app \"p12\"]\n"
		    "apns_topic = com.example.chat.voip\n"
		    "apns_cert_file = /etc/pushrelay/apns.p12\n"
		    "apns_cert_password = pa ss#word!\n");
	const struct pr_app_config *a = pr_config_app(c, "pem");

	ck_assert_str_eq(a->apns_cert_file, "/etc/pushrelay/apns.pem");
	ck_assert_str_eq(a->apns_cert_key_file, "/etc/pushrelay/k.pem");
	ck_assert_str_eq(a->apns_cert_password, "");
	ck_assert_str_eq(a->apns_topic, "com.example.chat");
	ck_assert_str_eq(a->apns_key_file, "");
	a = pr_config_app(c, "p12");
	ck_assert_str_eq(a->apns_cert_file, "/etc/pushrelay/apns.p12");
	ck_assert_str_eq(a->apns_cert_key_file, "");
	ck_assert_str_eq(a->apns_cert_password, "pa ss#word!");
	ck_assert_str_eq(a->apns_topic, "com.example.chat.voip");
	pr_config_free(c);

	/* Set to empty is unset, for the optional keys. */
	c = load_ok("[app \"x\"]\napns_key_file =\napns_key_id =\n"
		    "apns_cert_password =\nfcm_token_url =\n");
	assert_app_defaults(pr_config_app(c, "x"));
	pr_config_free(c);
}
END_TEST

START_TEST(test_inbox_section)
{
	struct pr_config *c = load_ok("[inbox]\n"
				      "max_wait = 5m\n"
				      "max_limit = 1000\n"
				      "token_leeway = 0\n"
				      "max_waiters = 1000000\n"
				      "ws_ping_interval = 1h\n"
				      "ws_idle_timeout = 1d\n"
				      "ws_max_message = 1m\n"
				      "ws_max_queued = 64m\n");

	ck_assert_int_eq(c->inbox_max_wait, 300);
	ck_assert_int_eq(c->inbox_max_limit, 1000);
	ck_assert_int_eq(c->inbox_token_leeway, 0);
	ck_assert_int_eq(c->inbox_max_waiters, 1000000);
	ck_assert_int_eq(c->ws_ping_interval, 3600);
	ck_assert_int_eq(c->ws_idle_timeout, 86400);
	ck_assert_int_eq(c->ws_max_message, 1L << 20);
	ck_assert_int_eq(c->ws_max_queued, 64L << 20);
	pr_config_free(c);

	/* The low ends; 0 answers a long poll at once. */
	c = load_ok("[inbox]\nmax_wait = 0\nmax_limit = 1\n"
		    "token_leeway = 5m\nmax_waiters = 1\n"
		    "ws_ping_interval = 1\nws_idle_timeout = 5s\n"
		    "ws_max_message = 128\nws_max_queued = 4k\n");
	ck_assert_int_eq(c->inbox_max_wait, 0);
	ck_assert_int_eq(c->inbox_max_limit, 1);
	ck_assert_int_eq(c->inbox_token_leeway, 300);
	ck_assert_int_eq(c->inbox_max_waiters, 1);
	ck_assert_int_eq(c->ws_ping_interval, 1);
	ck_assert_int_eq(c->ws_idle_timeout, 5);
	ck_assert_int_eq(c->ws_max_message, 128);
	ck_assert_int_eq(c->ws_max_queued, 4096);
	pr_config_free(c);
}
END_TEST

START_TEST(test_webhook_section)
{
	struct pr_config *c = load_ok("[webhook]\n"
				      "flush_interval = 1m\n"
				      "max_batch = 1000\n"
				      "max_pending = 1000000\n"
				      "backoff_base = 1h\n"
				      "backoff_max = 1d\n"
				      "max_attempts = 100\n"
				      "timeout = 2m\n");

	ck_assert_int_eq(c->webhook_flush_interval, 60);
	ck_assert_int_eq(c->webhook_max_batch, 1000);
	ck_assert_int_eq(c->webhook_max_pending, 1000000);
	ck_assert_int_eq(c->webhook_backoff_base, 3600);
	ck_assert_int_eq(c->webhook_backoff_max, 86400);
	ck_assert_int_eq(c->webhook_max_attempts, 100);
	ck_assert_int_eq(c->webhook_timeout, 120);
	pr_config_free(c);

	/* The low ends. */
	c = load_ok("[webhook]\nflush_interval = 1s\nmax_batch = 1\n"
		    "max_pending = 100\nbackoff_base = 1\nbackoff_max = 1\n"
		    "max_attempts = 1\ntimeout = 1\n");
	ck_assert_int_eq(c->webhook_flush_interval, 1);
	ck_assert_int_eq(c->webhook_max_batch, 1);
	ck_assert_int_eq(c->webhook_max_pending, 100);
	ck_assert_int_eq(c->webhook_backoff_base, 1);
	ck_assert_int_eq(c->webhook_backoff_max, 1);
	ck_assert_int_eq(c->webhook_max_attempts, 1);
	ck_assert_int_eq(c->webhook_timeout, 1);
	pr_config_free(c);
}
END_TEST

/* 32 and 16 bytes: the shortest client token and webhook secrets. */
#define SECRET32 "Sekr1t-0123456789abcdef012345678"
#define SECRET16 "Sekr1t-012345678"

START_TEST(test_app_tokens_and_webhook)
{
	struct pr_config *c =
	    load_ok("[app \"chat\"]\n"
		    "client_token_secret = " SECRET32 "\n"
		    "webhook_url = https://chat.example.com:8443/"
		    "pushrelay/receipts?app=chat\n"
		    "webhook_secret = " SECRET16 "\n"
		    "[app \"other\"]\n"
		    "client_token_secret = " SECRET32 SECRET32 "\n"
		    "[app \"plain\"]\n"
		    "webhook_url = http://127.0.0.1:9000\n"
		    "webhook_secret = " SECRET32 "\n");
	const struct pr_app_config *a = pr_config_app(c, "chat");

	ck_assert_uint_eq(strlen(SECRET32), 32);
	ck_assert_uint_eq(strlen(SECRET16), 16);
	ck_assert_str_eq(a->client_token_secret, SECRET32);
	ck_assert_str_eq(a->webhook_url, "https://chat.example.com:8443/"
					 "pushrelay/receipts?app=chat");
	ck_assert_str_eq(a->webhook_secret, SECRET16);
	a = pr_config_app(c, "other");
	ck_assert_str_eq(a->client_token_secret, SECRET32 SECRET32);
	ck_assert_str_eq(a->webhook_url, "");
	ck_assert_str_eq(a->webhook_secret, "");
	a = pr_config_app(c, "plain");
	ck_assert_str_eq(a->client_token_secret, "");
	ck_assert_str_eq(a->webhook_url, "http://127.0.0.1:9000");
	pr_config_free(c);

	/* Set to empty is unset. */
	c = load_ok("[app \"x\"]\nclient_token_secret =\nwebhook_url =\n"
		    "webhook_secret =\n");
	assert_app_defaults(pr_config_app(c, "x"));
	pr_config_free(c);
}
END_TEST

/* ---- listen values ------------------------------------------------------ */

START_TEST(test_listen_parse_ok)
{
	struct pr_listen_spec s;
	char err[256], path[200];

	ck_assert_int_eq(
	    pr_config_parse_listen("127.0.0.1:8080", &s, err, sizeof(err)),
	    PR_OK);
	ck_assert_int_eq(s.family, AF_INET);
	ck_assert_str_eq(s.host, "127.0.0.1");
	ck_assert_int_eq(s.port, 8080);
	ck_assert_int_eq(s.tls, 0);
	free(s.text);

	ck_assert_int_eq(
	    pr_config_parse_listen("[::0]:65535  tls", &s, err, sizeof(err)),
	    PR_OK);
	ck_assert_int_eq(s.family, AF_INET6);
	ck_assert_str_eq(s.host, "::"); /* canonical form */
	ck_assert_int_eq(s.port, 65535);
	ck_assert_int_eq(s.tls, 1);
	ck_assert_str_eq(s.text, "[::0]:65535  tls");
	free(s.text);

	/* TLS over a unix socket is allowed. */
	ck_assert_int_eq(pr_config_parse_listen("unix:/run/a.sock tls", &s, err,
						sizeof(err)),
			 PR_OK);
	ck_assert_int_eq(s.family, AF_UNIX);
	ck_assert_str_eq(s.path, "/run/a.sock");
	ck_assert_int_eq(s.tls, 1);
	free(s.text);

	/* The longest path sun_path holds. */
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[sizeof(s.path) - 1] = '\0';
	ck_assert_uint_eq(strlen(path), sizeof(s.path) - 1);
	{
		char text[256];

		snprintf(text, sizeof(text), "unix:%s", path);
		ck_assert_int_eq(
		    pr_config_parse_listen(text, &s, err, sizeof(err)), PR_OK);
		ck_assert_str_eq(s.path, path);
		free(s.text);
	}
}
END_TEST

START_TEST(test_listen_parse_errors)
{
	char text[256];

	expect_listen_error("", "empty value");
	expect_listen_error("127.0.0.1", "missing port");
	expect_listen_error("127.0.0.1:", "bad port ''");
	expect_listen_error("127.0.0.1:65536", "bad port '65536' (0..65535)");
	expect_listen_error("127.0.0.1:99999999", "bad port");
	expect_listen_error("127.0.0.1:http", "bad port 'http'");
	expect_listen_error("127.0.0.1:-1", "bad port '-1'");
	expect_listen_error(":8080", "missing address");
	expect_listen_error("localhost:8080",
			    "'localhost' is not a numeric IP address");
	expect_listen_error("300.1.1.1:80", "bad IPv4 address '300.1.1.1'");
	expect_listen_error("*:80", "bad IPv4 address '*'");
	expect_listen_error("::1:8080", "needs brackets");
	expect_listen_error("[::1:8080", "missing ']'");
	expect_listen_error("[::1]8080", "expected ':' after ']'");
	expect_listen_error("[::1]", "missing port");
	expect_listen_error("[]:80", "missing address");
	expect_listen_error("[127.0.0.1]:80", "bad IPv6 address '127.0.0.1'");
	expect_listen_error("[fe80::1%eth0]:80", "bad IPv6 address");
	expect_listen_error("127.0.0.1:80 ssl", "unknown flag 'ssl'");
	expect_listen_error("127.0.0.1:80 tls h2", "unknown flag 'h2'");
	expect_listen_error("unix:", "missing socket path");
	expect_listen_error("unix:run/a.sock", "not absolute");
	memset(text, 'a', sizeof(text));
	memcpy(text, "unix:/", 6);
	text[5 + sizeof(((struct pr_listen_spec *)0)->path)] = '\0';
	expect_listen_error(text, "unix socket path too long (108 bytes, at "
				  "most 107)");
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

START_TEST(test_err_unknown_section)
{
	/* Reported once at its header; its keys are not piled on. */
	int n = expect_error("[server]\n[bogus]\nfoo = 1\nbar = 2\n",
			     ":2: [bogus]: unknown section (server|admin|"
			     "storage|ingest|push|inbox|webhook|log|app "
			     "\"NAME\")");

	ck_assert_int_eq(n, 1);
	expect_error("[server\nmax_headers = 5\n",
		     ":1: missing ']' in section header");
	expect_error("[server] junk\n", ":1: unexpected text after ']'");
}
END_TEST

START_TEST(test_err_unknown_key)
{
	expect_error("[server]\nmax_conns = 5\n",
		     ":2: [server] max_conns: unknown key");
	expect_error("[server]\nlevel = info\n",
		     ":2: [server] level: unknown key (it belongs in [log])");
	expect_error("max_headers = 10\n",
		     ":1: max_headers: key before any [section]");
}
END_TEST

START_TEST(test_err_syntax)
{
	expect_error("[server]\njust some words\n",
		     ":2: syntax error: expected 'key = value'");
	expect_error("[server]\n= 5\n", ":2: syntax error: missing key");
	expect_error("[server]\nmax_headers ; = 5\n", ":2: syntax error");
}
END_TEST

START_TEST(test_err_bad_int)
{
	expect_error("[server]\nmax_connections = many\n",
		     ":2: [server] max_connections: not a number");
	expect_error("[server]\nmax_connections = 12abc\n",
		     ":2: [server] max_connections: not a number");
	expect_error("[server]\nmax_connections = 1.5\n",
		     ":2: [server] max_connections: not a number");
	expect_error("[server]\nmax_connections = -\n",
		     ":2: [server] max_connections: not a number");
	expect_error("[server]\nmax_connections =\n",
		     ":2: [server] max_connections: empty value");
}
END_TEST

START_TEST(test_err_range)
{
	expect_error("[server]\nheader_timeout = 0\n",
		     ":2: [server] header_timeout: out of range 1..300");
	expect_error("[server]\nheader_timeout = 301\n",
		     ":2: [server] header_timeout: out of range 1..300");
	expect_error("[server]\nheader_timeout = 6m\n",
		     ":2: [server] header_timeout: out of range 1..300");
	expect_error("[server]\nmax_connections = 1000001\n",
		     ":2: [server] max_connections: out of range 1..1000000");
	expect_error("[server]\nmax_connections = -5\n",
		     ":2: [server] max_connections: out of range 1..1000000");
	expect_error("[server]\nmax_headers = 7\n",
		     ":2: [server] max_headers: out of range 8..1000");
	expect_error("[server]\nmax_header_bytes = 2m\n",
		     ":2: [server] max_header_bytes: out of range 1k..1m");
	expect_error("[server]\nmax_body_bytes = 512\n",
		     ":2: [server] max_body_bytes: out of range 1k..64m");
	expect_error("[server]\nmax_body_bytes = 99999999999999999999999\n",
		     ":2: [server] max_body_bytes: out of range 1k..64m");
	expect_error("[server]\nmax_body_bytes = 9000000000000000000g\n",
		     ":2: [server] max_body_bytes: out of range 1k..64m");
	expect_error("[server]\nmax_streams = 1001\n",
		     ":2: [server] max_streams: out of range 1..1000");
	expect_error("[server]\noutput_buffer_bytes = 1g\n",
		     ":2: [server] output_buffer_bytes: out of range "
		     "64k..256m");
	expect_error("[admin]\nsocket_mode = 01000\n",
		     ":2: [admin] socket_mode: out of range 0000..0777");
}
END_TEST

START_TEST(test_err_suffix)
{
	expect_error("[server]\nmax_header_bytes = 16x\n",
		     ":2: [server] max_header_bytes: bad size suffix 'x' "
		     "(k, m, g or t)");
	expect_error("[server]\nmax_header_bytes = 16kb\n",
		     ":2: [server] max_header_bytes: bad size suffix 'kb'");
	expect_error("[server]\nidle_timeout = 10w\n",
		     ":2: [server] idle_timeout: bad time suffix 'w' "
		     "(s, m, h or d)");
	expect_error("[server]\nidle_timeout = 1d\n",
		     ":2: [server] idle_timeout: out of range 1..3600");
	expect_error("[storage]\nhistory = 1dd\n",
		     ":2: [storage] history: bad time suffix 'dd'");
	expect_error("[server]\nmax_headers = 10k\n",
		     ":2: [server] max_headers: not a number");
}
END_TEST

START_TEST(test_err_bool_level_mode_target)
{
	expect_error("[log]\naccess = maybe\n",
		     ":2: [log] access: not a boolean 'maybe' "
		     "(yes|no|true|false|on|off|1|0)");
	expect_error("[log]\nlevel = loud\n",
		     ":2: [log] level: unknown level 'loud' "
		     "(error|warn|info|debug)");
	expect_error("[admin]\nsocket_mode = 0800\n",
		     ":2: [admin] socket_mode: not an octal number");
	expect_error("[admin]\nsocket_mode = rw\n",
		     ":2: [admin] socket_mode: not an octal number");
	expect_error("[log]\ntarget = journal\n",
		     ":2: [log] target: 'journal' is not stderr, syslog or an "
		     "absolute file path");
}
END_TEST

START_TEST(test_err_listen)
{
	char text[4096];
	size_t n;

	expect_error("[server]\nlisten = localhost:8080\n",
		     ":2: [server] listen: 'localhost' is not a numeric IP "
		     "address (host names are not resolved)");
	expect_error("[server]\nlisten = 127.0.0.1\n",
		     ":2: [server] listen: missing port");
	expect_error("[server]\nlisten = 127.0.0.1:70000\n",
		     ":2: [server] listen: bad port '70000' (0..65535)");
	expect_error("[admin]\nlisten = [::1:80\n",
		     ":2: [admin] listen: missing ']' after IPv6 address");
	expect_error("[admin]\nlisten = unix:/run/pushrelay/"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
		     ":2: [admin] listen: unix socket path too long");

	/* At most 16 per list. */
	n = (size_t)snprintf(text, sizeof(text), "[server]\n");
	for (int i = 0; i < 17; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "listen = 127.0.0.1:%d\n", 9000 + i);
	expect_error(text,
		     ":18: [server] listen: too many listeners (at most 16)");
}
END_TEST

START_TEST(test_err_duplicate)
{
	int n = expect_error("[server]\nmax_headers = 10\n[log]\n[server]\n"
			     "max_headers = 20\n",
			     ":5: [server] max_headers: duplicate key (first "
			     "set on line 2)");

	ck_assert_int_eq(n, 1);
	expect_error("[log]\nlevel = info\nlevel = info\n",
		     ":3: [log] level: duplicate key (first set on line 2)");
}
END_TEST

START_TEST(test_err_long_line)
{
	char text[1024], line[256];
	char err[ERRLEN], path[PATH_MAX];
	struct pr_config *c;
	int n;

	/* 250 bytes on line 2; the line after it keeps its number. */
	memset(line, 'x', 250);
	line[0] = ';';
	line[250] = '\0';
	snprintf(text, sizeof(text), "[server]\n%s\nmax_headers = 5000\n",
		 line);
	n = expect_error(text, ":2: line too long (250 bytes, at most 199)");
	ck_assert_int_eq(n, 2);
	expect_error(text, ":3: [server] max_headers: out of range 8..1000");

	/* 199 bytes is fine, also with CRLF; 200 is not. */
	line[199] = '\0';
	snprintf(text, sizeof(text), "[server]\n%s\r\nmax_headers = 9\n", line);
	c = load_ok(text);
	ck_assert_int_eq(c->max_headers, 9);
	pr_config_free(c);
	line[199] = 'x';
	line[200] = '\0';
	snprintf(text, sizeof(text), "[server]\n%s", line);
	expect_error(text, ":2: line too long (200 bytes, at most 199)");

	/* A long value is caught the same way, not split in two. */
	line[199] = '\0';
	snprintf(text, sizeof(text), "[server]\ntls_cert = /%s\n", line);
	c = NULL;
	n = load_text(text, &c, err, path);
	ck_assert_int_eq(n, PR_ERR_CONFIG);
	ck_assert_int_eq(count_lines(err), 1);
	ck_assert_ptr_nonnull(strstr(err, ":2: line too long"));
}
END_TEST

START_TEST(test_err_nul_byte)
{
	static const char data[] = "[server]\nmax_\0headers = 5\n";
	char err[ERRLEN], path[PATH_MAX], want[PATH_MAX + 64];
	struct pr_config *c = NULL;

	ck_assert_int_eq(load_bytes(data, sizeof(data) - 1, &c, err,
				    sizeof(err), path, sizeof(path)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	ck_assert_ptr_nonnull(strstr(err, want));
}
END_TEST

START_TEST(test_err_missing_file)
{
	struct pr_config *c = (struct pr_config *)&c;
	char err[ERRLEN];

	ck_assert_int_eq(
	    pr_config_load("/nonexistent/pushrelay.conf", &c, err, sizeof(err)),
	    PR_ERR_IO);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(err, "/nonexistent/pushrelay.conf: cannot open: No "
			      "such file or directory");

	/* A directory opens but cannot be read. */
	c = (struct pr_config *)&c;
	ck_assert_int_eq(pr_config_load("/", &c, err, sizeof(err)), PR_ERR_IO);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err, "/: read error"));
}
END_TEST

START_TEST(test_err_tls)
{
	int n = expect_error("[server]\nlisten = [::]:8443 tls\n",
			     ": [server] tls_cert: required by the tls "
			     "listener '[::]:8443 tls'");

	ck_assert_int_eq(n, 2);
	expect_error("[server]\nlisten = [::]:8443 tls\n",
		     ": [server] tls_key: required by the tls listener "
		     "'[::]:8443 tls'");
	n = expect_error("[server]\nlisten = [::]:8443 tls\ntls_cert = /c\n",
			 ": [server] tls_key: required by the tls listener");
	ck_assert_int_eq(n, 1);
	expect_error("[admin]\nlisten = 127.0.0.1:9443 tls\n",
		     ": [server] tls_cert: required by the tls listener "
		     "'127.0.0.1:9443 tls'");
	expect_error("[server]\ntls_cert = /c\n",
		     ": [server] tls_key: required with tls_cert");
	expect_error("[server]\ntls_key = /k\n",
		     ": [server] tls_cert: required with tls_key");
}
END_TEST

START_TEST(test_err_same_address)
{
	struct pr_config *c;

	expect_error("[admin]\nlisten = 127.0.0.1:8080\n",
		     ": [admin] listen: '127.0.0.1:8080' uses the address of "
		     "[server] listen '127.0.0.1:8080'");
	expect_error("[server]\nlisten = [::]:80\nlisten = [::0]:80\n",
		     ": [server] listen: '[::0]:80' uses the address of "
		     "[server] listen '[::]:80'");
	expect_error("[server]\nlisten = unix:/run/a.sock\n"
		     "[admin]\nlisten = unix:/run/a.sock\n",
		     ": [admin] listen: 'unix:/run/a.sock' uses the address");
	/* Port 0 is a fresh port each time. */
	c = load_ok("[server]\nlisten = 127.0.0.1:0\nlisten = 127.0.0.1:0\n");
	ck_assert_uint_eq(c->n_listen, 2);
	pr_config_free(c);
}
END_TEST

START_TEST(test_err_several)
{
	char err[ERRLEN], path[PATH_MAX], want[PATH_MAX + 128];
	struct pr_config *c = NULL;
	const char *p;
	static const char *const expected[] = {
	    ":2: [server] max_connections: out of range 1..1000000",
	    ":3: [server] bogus: unknown key",
	    ":5: [log] level: unknown level 'loud'",
	    ":6: [log] access: not a boolean 'maybe'",
	    ": [server] tls_cert: required by the tls listener",
	};

	ck_assert_int_eq(load_text("[server]\n"
				   "max_connections = 0\n"
				   "bogus = 1\n"
				   "[log]\n"
				   "level = loud\n"
				   "access = maybe\n"
				   "[server]\n"
				   "listen = [::]:443 tls\n",
				   &c, err, path),
			 PR_ERR_CONFIG);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(count_lines(err), 6);
	/* In file order, each starting a line. */
	p = err;
	for (size_t i = 0; i < PR_ARRAY_SIZE(expected); i++) {
		snprintf(want, sizeof(want), "%s%s", path, expected[i]);
		p = strstr(p, want);
		ck_assert_msg(p != NULL, "want '%s' in order in:\n%s", want,
			      err);
		ck_assert(p == err || p[-1] == '\n');
	}
}
END_TEST

START_TEST(test_err_buffer_bounded)
{
	char text[2048], err[64], path[PATH_MAX];
	struct pr_config *c = NULL;
	size_t n = 0;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "[server]\n");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "bogus%d = 1\n", i);
	memset(err, '#', sizeof(err));
	ck_assert_int_eq(load_bytes(text, n, &c, err, 40, path, sizeof(path)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(strlen(err), 39);
	ck_assert_str_eq(err + 36, "...");
	ck_assert_int_eq(err[40], '#'); /* nothing written past errlen */

	/* No buffer at all is allowed. */
	ck_assert_int_eq(load_bytes(text, n, &c, NULL, 0, path, sizeof(path)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_err_storage_ingest)
{
	expect_error("[storage]\npath =\n",
		     ":2: [storage] path: empty value (a path is required)");
	expect_error("[storage]\nsynchronous = off\n",
		     ":2: [storage] synchronous: unknown value 'off' "
		     "(full|normal)");
	expect_error("[storage]\nsynchronous =\n",
		     ":2: [storage] synchronous: unknown value '' "
		     "(full|normal)");
	expect_error("[storage]\nbusy_timeout = 60001\n",
		     ":2: [storage] busy_timeout: out of range 0..60000");
	expect_error("[storage]\ncommit_batch = 0\n",
		     ":2: [storage] commit_batch: out of range 1..100000");
	expect_error("[storage]\nmax_pending_jobs = 15\n",
		     ":2: [storage] max_pending_jobs: out of range "
		     "16..1000000");
	expect_error("[storage]\nmax_messages = 1000000001\n",
		     ":2: [storage] max_messages: out of range "
		     "1..1000000000");
	expect_error("[storage]\nmax_size = 1025g\n",
		     ":2: [storage] max_size: out of range 0..1t");
	expect_error("[storage]\nmax_size = 1p\n",
		     ":2: [storage] max_size: bad size suffix 'p' "
		     "(k, m, g or t)");
	expect_error("[storage]\nsweep_interval = 2d\n",
		     ":2: [storage] sweep_interval: out of range 1..1d");
	expect_error("[storage]\nsweep_batch = 99\n",
		     ":2: [storage] sweep_batch: out of range 100..1000000");
	expect_error("[storage]\ncheckpoint_interval = 0\n",
		     ":2: [storage] checkpoint_interval: out of range 1..1d");
	expect_error("[storage]\nhistory = 366d\n",
		     ":2: [storage] history: out of range 0..365d");
	expect_error("[ingest]\nmax_events = 10001\n",
		     ":2: [ingest] max_events: out of range 1..10000");
	expect_error("[ingest]\nmax_payload_bytes = 63\n",
		     ":2: [ingest] max_payload_bytes: out of range 64..1m");
	expect_error("[ingest]\nmax_devices = 0\n",
		     ":2: [ingest] max_devices: out of range 1..1000");
	expect_error("[ingest]\nmax_id_bytes = 1k\n",
		     ":2: [ingest] max_id_bytes: not a number");
	expect_error("[ingest]\npath = /x\n",
		     ":2: [ingest] path: unknown key (it belongs in "
		     "[storage])");
}
END_TEST

START_TEST(test_err_app_section)
{
	char text[2048], name[80], want[256];
	size_t n = 0;

	/* Reported once at the header; the section's keys are skipped. */
	ck_assert_int_eq(expect_error("[app]\npush_mode = bogus\n",
				      ":1: section [app] needs a name: "
				      "[app \"NAME\"]"),
			 1);
	expect_error("[server]\n[app  ]\n",
		     ":2: section [app] needs a name: [app \"NAME\"]");
	ck_assert_int_eq(expect_error("[app chat]\npush_delay = 1\n",
				      ":1: [app chat]: the app name must be "
				      "quoted: [app \"NAME\"]"),
			 1);
	expect_error("[app \"chat]\n",
		     ":1: [app \"chat]: missing '\"' after the app name");
	expect_error("[app \"chat\" beta]\n",
		     ":1: [app \"chat\" beta]: unexpected text after the app "
		     "name");
	expect_error("[app \"\"]\n",
		     ":1: [app \"\"]: bad app name '' (1..64 of A-Z a-z 0-9 . "
		     "_ -)");
	expect_error("[app \"my app\"]\n",
		     ":1: [app \"my app\"]: bad app name 'my app'");
	expect_error("[app \"a/b\"]\n", ":1: [app \"a/b\"]: bad app name");
	memset(name, 'n', 65);
	name[65] = '\0';
	snprintf(text, sizeof(text), "[server]\n[app \"%s\"]\n", name);
	snprintf(want, sizeof(want), ":2: [app \"%s\"]: bad app name '%s'",
		 name, name);
	expect_error(text, want);
	/* Not an app section at all. */
	expect_error("[apps]\n", ":1: [apps]: unknown section");
	expect_error("[App \"chat\"]\n", ":1: [App \"chat\"]: unknown section");

	/* Each app once; the duplicate's keys are skipped. */
	ck_assert_int_eq(expect_error("[app \"chat\"]\n[app \"other\"]\n"
				      "[app \"chat\"]\npush_mode = x\n",
				      ":3: [app \"chat\"]: duplicate app "
				      "(first on line 1)"),
			 1);

	/* At most 64 apps. */
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "[app \"a%d\"]\n", i);
	ck_assert_int_eq(expect_error(text, ":65: [app \"a64\"]: too many "
					    "apps (at most 64)"),
			 1);
}
END_TEST

START_TEST(test_err_app_keys)
{
	expect_error("[app \"chat\"]\npush_mode = loud\n",
		     ":2: [app \"chat\"] push_mode: unknown value 'loud' "
		     "(wakeup|alert)");
	expect_error("[app \"chat\"]\npush_mode = none\n",
		     ":2: [app \"chat\"] push_mode: unknown value 'none'");
	expect_error("[app \"chat\"]\npush_delay = 3601\n",
		     ":2: [app \"chat\"] push_delay: out of range 0..3600");
	expect_error("[app \"chat\"]\nmax_ttl = 29d\n",
		     ":2: [app \"chat\"] max_ttl: out of range 1..28d");
	expect_error("[app \"chat\"]\nmax_ttl = 0\n",
		     ":2: [app \"chat\"] max_ttl: out of range 1..28d");
	expect_error("[app \"chat\"]\ndefault_ttl = -1\n",
		     ":2: [app \"chat\"] default_ttl: out of range 0..28d");
	expect_error("[app \"chat\"]\npush_delay = soon\n",
		     ":2: [app \"chat\"] push_delay: not a number");
	/* Once per app, but each app has its own. */
	expect_error("[app \"chat\"]\npush_delay = 1\n[app \"b\"]\n"
		     "push_delay = 1\n[app \"c\"]\npush_delay = 1\n"
		     "push_delay = 2\n",
		     ":7: [app \"c\"] push_delay: duplicate key (first set on "
		     "line 6)");
	ck_assert_int_eq(expect_error("[app \"chat\"]\npush_delay = 1\n"
				      "[app \"b\"]\npush_delay = 1\n"
				      "push_delay = 2\n",
				      ":5: [app \"b\"] push_delay: duplicate "
				      "key (first set on line 4)"),
			 1);
	expect_error("[app \"chat\"]\nbogus = 1\n",
		     ":2: [app \"chat\"] bogus: unknown key");
	expect_error("[app \"chat\"]\nmax_headers = 5\n",
		     ":2: [app \"chat\"] max_headers: unknown key (it belongs "
		     "in [server])");
	/* App keys belong in an [app] section only. */
	expect_error("[server]\npush_mode = alert\n",
		     ":2: [server] push_mode: unknown key (it belongs in "
		     "[app \"NAME\"])");
	expect_error("[storage]\nmax_ttl = 1d\n",
		     ":2: [storage] max_ttl: unknown key (it belongs in "
		     "[app \"NAME\"])");
}
END_TEST

START_TEST(test_err_app_ttl)
{
	struct pr_config *c;

	expect_error("[app \"chat\"]\ndefault_ttl = 8d\nmax_ttl = 7d\n",
		     ":2: [app \"chat\"] default_ttl: 8d is longer than "
		     "max_ttl (7d)");
	expect_error("[app \"chat\"]\nmax_ttl = 1h\n",
		     ":2: [app \"chat\"] max_ttl: 3600 is shorter than "
		     "default_ttl (28d)");
	/* Checked when the section ends, whatever ends it. */
	ck_assert_int_eq(expect_error("[app \"a\"]\nmax_ttl = 60\n"
				      "[app \"b\"]\n[log]\n",
				      ":2: [app \"a\"] max_ttl: 60 is shorter "
				      "than default_ttl (28d)"),
			 1);
	expect_error("[app \"a\"]\nmax_ttl = 60\n[server\n",
		     ":2: [app \"a\"] max_ttl: 60 is shorter");
	expect_error("[app \"a\"]\n[app \"b\"]\nmax_ttl = 60\n",
		     ":3: [app \"b\"] max_ttl: 60 is shorter");
	c = load_ok("[app \"chat\"]\ndefault_ttl = 7d\nmax_ttl = 7d\n");
	ck_assert_int_eq(c->apps[0].default_ttl, c->apps[0].max_ttl);
	pr_config_free(c);
}
END_TEST

START_TEST(test_err_push)
{
	expect_error("[push]\nmax_in_flight = 0\n",
		     ":2: [push] max_in_flight: out of range 1..100000");
	expect_error("[push]\nconnections = 65\n",
		     ":2: [push] connections: out of range 1..64");
	expect_error("[push]\nmax_streams = 10001\n",
		     ":2: [push] max_streams: out of range 1..10000");
	expect_error("[push]\nconnect_timeout = 3m\n",
		     ":2: [push] connect_timeout: out of range 1..120");
	expect_error("[push]\nrequest_timeout = 0\n",
		     ":2: [push] request_timeout: out of range 1..600");
	expect_error("[push]\nmax_attempts = 1001\n",
		     ":2: [push] max_attempts: out of range 1..1000");
	expect_error("[push]\nmax_age = 59\n",
		     ":2: [push] max_age: out of range 60..28d");
	expect_error("[push]\nmax_age = 29d\n",
		     ":2: [push] max_age: out of range 60..28d");
	expect_error("[push]\nbackoff_base = 0\n",
		     ":2: [push] backoff_base: out of range 1..3600");
	expect_error("[push]\nbackoff_max = 2d\n",
		     ":2: [push] backoff_max: out of range 1..1d");
	expect_error("[push]\ncoalesce_window = 61m\n",
		     ":2: [push] coalesce_window: out of range 0..3600");
	expect_error("[push]\nmin_interval = -1\n",
		     ":2: [push] min_interval: out of range 0..3600");
	/* Apple: no more often than every 20 minutes, at least hourly. */
	expect_error("[push]\njwt_refresh = 19m\n",
		     ":2: [push] jwt_refresh: out of range 1200..3600");
	expect_error("[push]\njwt_refresh = 61m\n",
		     ":2: [push] jwt_refresh: out of range 1200..3600");
	expect_error("[push]\nping_interval = 59\n",
		     ":2: [push] ping_interval: out of range 60..1d");
	expect_error("[push]\nclaim_batch = 0\n",
		     ":2: [push] claim_batch: out of range 1..10000");
	expect_error("[push]\nlevel = info\n",
		     ":2: [push] level: unknown key (it belongs in [log])");
}
END_TEST

START_TEST(test_err_push_backoff)
{
	struct pr_config *c;

	/* Named at the line of the key that was set. */
	ck_assert_int_eq(expect_error("[push]\nmax_attempts = 3\n"
				      "backoff_base = 20m\n",
				      ":3: [push] backoff_base: 1200 is longer "
				      "than backoff_max (900)"),
			 1);
	expect_error("[push]\nbackoff_max = 1\n",
		     ":2: [push] backoff_max: 1 is shorter than backoff_base "
		     "(2)");
	expect_error("[push]\nbackoff_max = 30\n[log]\n[push]\n"
		     "backoff_base = 31\n",
		     ":5: [push] backoff_base: 31 is longer than backoff_max "
		     "(30)");
	c = load_ok("[push]\nbackoff_base = 1h\nbackoff_max = 3600\n");
	ck_assert_int_eq(c->push_backoff_base, c->push_backoff_max);
	pr_config_free(c);
}
END_TEST

START_TEST(test_err_webhook)
{
	struct pr_config *c;

	expect_error("[webhook]\nflush_interval = 0\n",
		     ":2: [webhook] flush_interval: out of range 1..60");
	expect_error("[webhook]\nflush_interval = 2m\n",
		     ":2: [webhook] flush_interval: out of range 1..60");
	expect_error("[webhook]\nmax_batch = 1001\n",
		     ":2: [webhook] max_batch: out of range 1..1000");
	expect_error("[webhook]\nmax_pending = 99\n",
		     ":2: [webhook] max_pending: out of range 100..1000000");
	expect_error("[webhook]\nmax_attempts = 0\n",
		     ":2: [webhook] max_attempts: out of range 1..100");
	expect_error("[webhook]\ntimeout = 121\n",
		     ":2: [webhook] timeout: out of range 1..120");
	expect_error("[webhook]\nbackoff_max = 2d\n",
		     ":2: [webhook] backoff_max: out of range 1..1d");
	expect_error("[webhook]\nmax_batch = many\n",
		     ":2: [webhook] max_batch: not a number");
	/* Per-app keys stay in [app], [webhook] keys out of it. */
	expect_error("[webhook]\nwebhook_url = https://x/r\n",
		     ":2: [webhook] webhook_url: unknown key (it belongs in "
		     "[app \"NAME\"])");
	expect_error("[app \"chat\"]\nflush_interval = 1\n",
		     ":2: [app \"chat\"] flush_interval: unknown key (it "
		     "belongs in [webhook])");
	/* The backoff pair is checked as [push]'s is, apart from it. */
	ck_assert_int_eq(expect_error("[webhook]\nbackoff_base = 10m\n",
				      ":2: [webhook] backoff_base: 600 is "
				      "longer than backoff_max (300)"),
			 1);
	expect_error("[webhook]\nbackoff_max = 1\nbackoff_base = 2\n",
		     ":3: [webhook] backoff_base: 2 is longer than backoff_max "
		     "(1)");
	c = load_ok("[push]\nbackoff_base = 1h\nbackoff_max = 1h\n"
		    "[webhook]\nbackoff_base = 1h\nbackoff_max = 3600\n");
	ck_assert_int_eq(c->webhook_backoff_base, c->webhook_backoff_max);
	pr_config_free(c);
}
END_TEST

START_TEST(test_err_app_strings)
{
	static const char *const bad_ids[] = {
	    "ABC123DEF",   /* 9 */
	    "ABC123DEFGH", /* 11 */
	    "abc123defg",  /* lower case */
	    "ABC-123DEF",  "ABC123DEF\xC3\x89",
	};
	static const char *const bad_urls[] = {
	    "api.push.apple.com",
	    "ftp://api.push.apple.com",
	    "https://",
	    "https:///3/device",
	    "https://api.push.apple.com/",
	    "https://api.push.apple.com/v1",
	    "https://api.push.apple.com?x=1",
	    "https://user:pw@api.push.apple.com",
	    "https://api.push.apple.com:0",
	    "https://api.push.apple.com:65536",
	    "https://api.push.apple.com:443443",
	    "https://api.push.apple.com:",
	    "https://api.push.apple.com:http",
	    "https://-api.push.apple.com",
	    "https://[::1",
	    "https://[]:443",
	    "https://api push.apple.com",
	};
	char text[512];

	for (size_t i = 0; i < PR_ARRAY_SIZE(bad_ids); i++) {
		snprintf(text, sizeof(text),
			 "[app \"chat\"]\napns_key_id = %s\n"
			 "apns_team_id = %s\n",
			 bad_ids[i], bad_ids[i]);
		expect_error(text, ":2: [app \"chat\"] apns_key_id: must be 10 "
				   "characters A-Z 0-9");
		ck_assert_int_eq(expect_error(text, ":3: [app \"chat\"] "
						    "apns_team_id: must be 10 "
						    "characters A-Z 0-9"),
				 2);
	}
	expect_error("[app \"chat\"]\napns_topic = com.example/chat\n",
		     ":2: [app \"chat\"] apns_topic: must be a bundle id: "
		     "1..255 characters A-Z a-z 0-9 . -");
	expect_error("[app \"chat\"]\napns_topic = com.example_chat\n",
		     ":2: [app \"chat\"] apns_topic: must be a bundle id");
	expect_error("[app \"chat\"]\napns_topic = com example\n",
		     ":2: [app \"chat\"] apns_topic: must be a bundle id");

	for (size_t i = 0; i < PR_ARRAY_SIZE(bad_urls); i++) {
		snprintf(text, sizeof(text),
			 "[app \"chat\"]\napns_url = %s\n"
			 "apns_sandbox_url = %s\nfcm_url = %s\n",
			 bad_urls[i], bad_urls[i], bad_urls[i]);
		expect_error(text, ":2: [app \"chat\"] apns_url: must be an "
				   "http:// or https:// URL without a path");
		expect_error(text, ":3: [app \"chat\"] apns_sandbox_url: must "
				   "be an http:// or https:// URL without a "
				   "path");
		expect_error(text, ":4: [app \"chat\"] fcm_url: must be an "
				   "http:// or https:// URL without a path");
	}
	expect_error("[app \"chat\"]\napns_url =\n",
		     ":2: [app \"chat\"] apns_url: empty value (a URL is "
		     "required)");
	expect_error("[app \"chat\"]\nfcm_url =\n",
		     ":2: [app \"chat\"] fcm_url: empty value (a URL is "
		     "required)");
	/* The token URL is a whole URL: a path, but no fragment. */
	expect_error("[app \"chat\"]\nfcm_token_url = oauth2.googleapis.com\n",
		     ":2: [app \"chat\"] fcm_token_url: must be an http:// or "
		     "https:// URL");
	expect_error("[app \"chat\"]\nfcm_token_url = https://a/token#x\n",
		     ":2: [app \"chat\"] fcm_token_url: must be an http:// or "
		     "https:// URL");
	/* Provider keys belong in [app] sections. */
	expect_error("[push]\napns_topic = com.example.chat\n",
		     ":2: [push] apns_topic: unknown key (it belongs in "
		     "[app \"NAME\"])");
	expect_error("[app \"chat\"]\napns_topic = a\napns_topic = b\n",
		     ":3: [app \"chat\"] apns_topic: duplicate key (first set "
		     "on line 2)");
}
END_TEST

START_TEST(test_err_app_auth)
{
	/* Token auth needs the key id, the team id and the topic ... */
	ck_assert_int_eq(expect_error("[app \"chat\"]\n"
				      "apns_key_id = ABC123DEFG\n"
				      "apns_key_file = /k.p8\n"
				      "apns_topic = com.example.chat\n",
				      ":3: [app \"chat\"] apns_team_id: "
				      "required with apns_key_file (token "
				      "auth)"),
			 1);
	ck_assert_int_eq(
	    expect_error("[app \"chat\"]\n"
			 "apns_key_file = /k.p8\n",
			 ":2: [app \"chat\"] apns_key_id: required "
			 "with apns_key_file (token auth)"),
	    3);
	expect_error("[app \"chat\"]\napns_key_file = /k.p8\n",
		     ":2: [app \"chat\"] apns_topic: required with "
		     "apns_key_file (token auth)");
	/* ... certificate auth the topic. */
	ck_assert_int_eq(expect_error("[app \"chat\"]\n"
				      "apns_cert_file = /c.p12\n"
				      "apns_cert_password = x\n",
				      ":2: [app \"chat\"] apns_topic: required "
				      "with apns_cert_file (certificate "
				      "auth)"),
			 1);
	/* Not both, named at the later of the two. */
	ck_assert_int_eq(expect_error("[app \"chat\"]\n"
				      "apns_key_file = /k.p8\n"
				      "apns_key_id = ABC123DEFG\n"
				      "apns_team_id = DEF123GHIJ\n"
				      "apns_topic = com.example.chat\n"
				      "apns_cert_file = /c.pem\n",
				      ":6: [app \"chat\"] apns_cert_file: "
				      "choose token auth (apns_key_file) or "
				      "certificate auth (apns_cert_file)"),
			 1);
	expect_error("[app \"chat\"]\napns_cert_file = /c.pem\n"
		     "apns_key_file = /k.p8\n",
		     ":3: [app \"chat\"] apns_key_file: choose token auth");
	/* The parts of one kind without its file. */
	ck_assert_int_eq(expect_error("[app \"chat\"]\n"
				      "apns_topic = com.example.chat\n"
				      "apns_key_id = ABC123DEFG\n"
				      "apns_team_id = DEF123GHIJ\n",
				      ":3: [app \"chat\"] apns_key_id: needs "
				      "apns_key_file"),
			 2);
	expect_error("[app \"chat\"]\napns_team_id = DEF123GHIJ\n",
		     ":2: [app \"chat\"] apns_team_id: needs apns_key_file");
	expect_error(
	    "[app \"chat\"]\napns_cert_file = /c.pem\n"
	    "apns_topic = com.example.chat\napns_key_id = ABC123DEFG\n",
	    ":4: [app \"chat\"] apns_key_id: needs apns_key_file");
	expect_error("[app \"chat\"]\napns_cert_key_file = /k.pem\n",
		     ":2: [app \"chat\"] apns_cert_key_file: needs "
		     "apns_cert_file");
	expect_error("[app \"chat\"]\napns_cert_password = x\n",
		     ":2: [app \"chat\"] apns_cert_password: needs "
		     "apns_cert_file");
	/* Checked per app, where each section ends. */
	ck_assert_int_eq(expect_error("[app \"a\"]\napns_key_file = /k.p8\n"
				      "apns_key_id = ABC123DEFG\n"
				      "apns_topic = com.example.a\n"
				      "[app \"b\"]\napns_team_id = DEF123GHIJ\n"
				      "[log]\n",
				      ":2: [app \"a\"] apns_team_id: required "
				      "with apns_key_file"),
			 2);
	expect_error("[app \"a\"]\n[app \"b\"]\napns_team_id = DEF123GHIJ\n"
		     "[log]\n",
		     ":3: [app \"b\"] apns_team_id: needs apns_key_file");
}
END_TEST

/* The password is in no error, whatever goes wrong around it. */
START_TEST(test_err_password_hidden)
{
	static const char *const texts[] = {
	    "[app \"chat\"]\napns_cert_password = Sekr1t-pw\n",
	    "[app \"chat\"]\napns_cert_password = Sekr1t-pw\n"
	    "apns_cert_password = Sekr1t-pw2\n",
	    "[server]\napns_cert_password = Sekr1t-pw\n",
	    "[app \"chat\"]\napns_cert_file = /c.p12\n"
	    "apns_key_file = /k.p8\napns_cert_password = Sekr1t-pw\n",
	    "apns_cert_password = Sekr1t-pw\n",
	};
	char err[ERRLEN], path[PATH_MAX];
	struct pr_config *c;

	for (size_t i = 0; i < PR_ARRAY_SIZE(texts); i++) {
		c = NULL;
		ck_assert_int_eq(load_text(texts[i], &c, err, path),
				 PR_ERR_CONFIG);
		ck_assert_msg(strstr(err, "apns_cert_password") ||
				  strstr(err, "apns_key_file"),
			      "%s", err);
		ck_assert_msg(strstr(err, "Sekr1t") == NULL, "password in:\n%s",
			      err);
	}
}
END_TEST

START_TEST(test_err_inbox)
{
	expect_error("[inbox]\nmax_wait = 301\n",
		     ":2: [inbox] max_wait: out of range 0..300");
	expect_error("[inbox]\nmax_wait = 6m\n",
		     ":2: [inbox] max_wait: out of range 0..300");
	expect_error("[inbox]\nmax_wait = -1\n",
		     ":2: [inbox] max_wait: out of range 0..300");
	expect_error("[inbox]\nmax_wait = forever\n",
		     ":2: [inbox] max_wait: not a number");
	expect_error("[inbox]\nmax_limit = 0\n",
		     ":2: [inbox] max_limit: out of range 1..1000");
	expect_error("[inbox]\nmax_limit = 1001\n",
		     ":2: [inbox] max_limit: out of range 1..1000");
	expect_error("[inbox]\nmax_limit = 1k\n",
		     ":2: [inbox] max_limit: not a number");
	expect_error("[inbox]\ntoken_leeway = 301\n",
		     ":2: [inbox] token_leeway: out of range 0..300");
	expect_error("[inbox]\ntoken_leeway = 1w\n",
		     ":2: [inbox] token_leeway: bad time suffix 'w' "
		     "(s, m, h or d)");
	expect_error("[inbox]\nmax_waiters = 0\n",
		     ":2: [inbox] max_waiters: out of range 1..1000000");
	expect_error("[inbox]\nmax_waiters = 1000001\n",
		     ":2: [inbox] max_waiters: out of range 1..1000000");
	expect_error("[inbox]\nws_ping_interval = 0\n",
		     ":2: [inbox] ws_ping_interval: out of range 1..3600");
	expect_error("[inbox]\nws_ping_interval = 2h\n",
		     ":2: [inbox] ws_ping_interval: out of range 1..3600");
	expect_error("[inbox]\nws_idle_timeout = 4\n",
		     ":2: [inbox] ws_idle_timeout: out of range 5..1d");
	expect_error("[inbox]\nws_idle_timeout = 2d\n",
		     ":2: [inbox] ws_idle_timeout: out of range 5..1d");
	expect_error("[inbox]\nws_idle_timeout =\n",
		     ":2: [inbox] ws_idle_timeout: empty value");
	expect_error("[inbox]\nws_max_message = 127\n",
		     ":2: [inbox] ws_max_message: out of range 128..1m");
	expect_error("[inbox]\nws_max_message = 2m\n",
		     ":2: [inbox] ws_max_message: out of range 128..1m");
	expect_error("[inbox]\nws_max_message = 64kb\n",
		     ":2: [inbox] ws_max_message: bad size suffix 'kb'");
	expect_error("[inbox]\nws_max_queued = 4095\n",
		     ":2: [inbox] ws_max_queued: out of range 4k..64m");
	expect_error("[inbox]\nws_max_queued = 1g\n",
		     ":2: [inbox] ws_max_queued: out of range 4k..64m");
	/* Keys of the section, in the section. */
	expect_error("[server]\nmax_wait = 10\n",
		     ":2: [server] max_wait: unknown key (it belongs in "
		     "[inbox])");
	expect_error("[inbox]\nmax_events = 10\n",
		     ":2: [inbox] max_events: unknown key (it belongs in "
		     "[ingest])");
	expect_error("[inbox]\nmax_wait = 10\nmax_wait = 20\n",
		     ":3: [inbox] max_wait: duplicate key (first set on line "
		     "2)");
}
END_TEST

START_TEST(test_err_ws_timers)
{
	struct pr_config *c;

	/* Named at the line of the key that was set. */
	ck_assert_int_eq(expect_error("[inbox]\nmax_limit = 10\n"
				      "ws_idle_timeout = 30\n",
				      ":3: [inbox] ws_idle_timeout: 30 is not "
				      "longer than ws_ping_interval (30)"),
			 1);
	expect_error("[inbox]\nws_ping_interval = 1h\n",
		     ":2: [inbox] ws_ping_interval: 3600 is not shorter than "
		     "ws_idle_timeout (120)");
	expect_error("[inbox]\nws_ping_interval = 60\n[log]\n[inbox]\n"
		     "ws_idle_timeout = 59\n",
		     ":5: [inbox] ws_idle_timeout: 59 is not longer than "
		     "ws_ping_interval (60)");
	expect_error("[inbox]\nws_idle_timeout = 1h\n"
		     "ws_ping_interval = 1h\n[inbox]\n",
		     ":2: [inbox] ws_idle_timeout: 3600 is not longer than "
		     "ws_ping_interval (3600)");
	c = load_ok("[inbox]\nws_ping_interval = 119\n");
	ck_assert_int_eq(c->ws_ping_interval, 119);
	pr_config_free(c);
	c = load_ok("[inbox]\nws_ping_interval = 5\nws_idle_timeout = 6\n");
	ck_assert_int_eq(c->ws_idle_timeout, 6);
	pr_config_free(c);
}
END_TEST

START_TEST(test_err_app_secrets)
{
	/* One byte short of each minimum. */
	ck_assert_int_eq(
	    expect_error("[app \"chat\"]\n"
			 "client_token_secret = Sekr1t-"
			 "0123456789abcdef01234567\n",
			 ":2: [app \"chat\"] client_token_secret: "
			 "must be at least 32 bytes (HS256 wants a "
			 "key as long as its hash)"),
	    1);
	expect_error("[app \"chat\"]\nclient_token_secret = x\n",
		     ":2: [app \"chat\"] client_token_secret: must be at "
		     "least 32 bytes");
	ck_assert_int_eq(
	    expect_error("[app \"chat\"]\n"
			 "webhook_url = https://chat.example.com/r\n"
			 "webhook_secret = Sekr1t-01234567\n",
			 ":3: [app \"chat\"] webhook_secret: must "
			 "be at least 16 bytes"),
	    2); /* and so no secret for the url */

	/* A webhook_url needs its secret, named at the url's line ... */
	ck_assert_int_eq(expect_error("[app \"chat\"]\npush_delay = 1\n"
				      "webhook_url = https://chat.example.com/"
				      "receipts\n",
				      ":3: [app \"chat\"] webhook_secret: "
				      "required with webhook_url (delivery "
				      "receipts)"),
			 1);
	/* ... per app, where each section ends ... */
	ck_assert_int_eq(expect_error("[app \"a\"]\n"
				      "webhook_url = http://127.0.0.1:1/r\n"
				      "webhook_secret = " SECRET16 "\n"
				      "[app \"b\"]\n"
				      "webhook_url = http://127.0.0.1:1/r\n"
				      "[log]\n",
				      ":5: [app \"b\"] webhook_secret: "
				      "required with webhook_url"),
			 1);
	/* ... and a secret without a url is a slip too. */
	expect_error("[app \"chat\"]\nwebhook_secret = " SECRET16 "\n",
		     ":2: [app \"chat\"] webhook_secret: needs webhook_url");

	/* The url is a whole http(s) URL, a path allowed. */
	expect_error("[app \"chat\"]\nwebhook_url = chat.example.com/r\n"
		     "webhook_secret = " SECRET16 "\n",
		     ":2: [app \"chat\"] webhook_url: must be an http:// or "
		     "https:// URL");
	expect_error("[app \"chat\"]\nwebhook_url = https://u:p@chat/r\n"
		     "webhook_secret = " SECRET16 "\n",
		     ":2: [app \"chat\"] webhook_url: must be an http:// or "
		     "https:// URL");
	expect_error("[app \"chat\"]\nwebhook_url = https://chat/r#x\n"
		     "webhook_secret = " SECRET16 "\n",
		     ":2: [app \"chat\"] webhook_url: must be an http:// or "
		     "https:// URL");
	/* App keys, in [app] sections only. */
	expect_error("[inbox]\nclient_token_secret = " SECRET32 "\n",
		     ":2: [inbox] client_token_secret: unknown key (it belongs "
		     "in [app \"NAME\"])");
}
END_TEST

/* No secret is in an error, whatever goes wrong around it. */
START_TEST(test_err_secrets_hidden)
{
	static const char *const texts[] = {
	    "[app \"chat\"]\nclient_token_secret = Sekr1t-short\n",
	    "[app \"chat\"]\nclient_token_secret = " SECRET32 "\n"
	    "client_token_secret = " SECRET32 "\n",
	    "[server]\nclient_token_secret = " SECRET32 "\n",
	    "client_token_secret = " SECRET32 "\n",
	    "[app \"chat\"]\nwebhook_secret = Sekr1t-short\n",
	    "[app \"chat\"]\nwebhook_secret = " SECRET16 "\n",
	    "[app \"chat\"]\nwebhook_url = https://x/r\n"
	    "webhook_secret = Sekr1t\n",
	    "[app \"chat\"]\nwebhook_secret = " SECRET16 "\n"
	    "webhook_secret = " SECRET16 "\n",
	};
	char err[ERRLEN], path[PATH_MAX];
	struct pr_config *c;

	for (size_t i = 0; i < PR_ARRAY_SIZE(texts); i++) {
		c = NULL;
		ck_assert_int_eq(load_text(texts[i], &c, err, path),
				 PR_ERR_CONFIG);
		ck_assert_msg(strstr(err, "client_token_secret") ||
				  strstr(err, "webhook_secret"),
			      "%s", err);
		ck_assert_msg(strstr(err, "Sekr1t") == NULL, "secret in:\n%s",
			      err);
	}
}
END_TEST

/* ---- reload ------------------------------------------------------------- */

START_TEST(test_apply_reload)
{
	struct pr_config *live = pr_config_new();
	struct pr_config *fresh;
	char note[1024];
	int n;

	ck_assert_ptr_nonnull(live);
	fresh = load_ok("[server]\n"
			"listen = 127.0.0.1:9999\n"
			"tls_cert = /c\n"
			"tls_key = /k\n"
			"max_connections = 5\n"
			"max_body_bytes = 2m\n"
			"header_timeout = 20\n"
			"[admin]\n"
			"socket_mode = 0660\n"
			"[log]\n"
			"level = debug\n"
			"target = /tmp/pushrelay-test.log\n"
			"access = yes\n");

	n = pr_config_apply_reload(live, fresh, note, sizeof(note));
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(count_lines(note), 4);
	ck_assert_ptr_nonnull(strstr(note, "[server] listen: changed; restart "
					   "to apply\n"));
	ck_assert_int_ne(note[strlen(note) - 1], '\n');
	ck_assert_ptr_nonnull(strstr(note, "[server] tls_cert: changed"));
	ck_assert_ptr_nonnull(strstr(note, "[server] tls_key: changed"));
	ck_assert_ptr_nonnull(strstr(note, "[admin] socket_mode: changed"));
	ck_assert_ptr_nonnull(strstr(note, fresh->path));
	/* Reloadable settings were copied ... */
	ck_assert_int_eq(live->max_connections, 5);
	ck_assert_int_eq(live->max_body_bytes, 2L << 20);
	ck_assert_int_eq(live->header_timeout, 20);
	ck_assert_int_eq(live->log_level, PR_LOG_DEBUG);
	ck_assert_str_eq(live->log_target, "/tmp/pushrelay-test.log");
	ck_assert_ptr_ne(live->log_target, fresh->log_target);
	ck_assert_int_eq(live->log_access, 1);
	/* ... the others left alone. */
	ck_assert_int_eq(live->listen[0].port, 8080);
	ck_assert_str_eq(live->tls_cert, "");
	ck_assert_int_eq(live->admin_socket_mode, 0600);

	/* Nothing differs now but the restart-only settings. */
	ck_assert_int_eq(
	    pr_config_apply_reload(live, fresh, note, sizeof(note)), 4);
	ck_assert_int_eq(
	    pr_config_apply_reload(fresh, fresh, note, sizeof(note)), 0);
	ck_assert_str_eq(note, "");
	pr_config_free(fresh);
	pr_config_free(live);
}
END_TEST

START_TEST(test_reload_storage_ingest_apps)
{
	struct pr_config *live, *fresh;
	char note[1024];
	int n;

	live = load_ok("[app \"chat\"]\npush_delay = 5\n[app \"old\"]\n");
	fresh = load_ok("[storage]\n"
			"path = /srv/relay.db\n"
			"history = 2d\n"
			"max_messages = 100\n"
			"[ingest]\n"
			"max_events = 10\n"
			"[app \"new\"]\n"
			"push_delay = 9\n"
			"[app \"chat\"]\n"
			"push_delay = 20\n"
			"push_mode = alert\n");

	n = pr_config_apply_reload(live, fresh, note, sizeof(note));
	ck_assert_msg(n == 4, "%d notes:\n%s", n, note);
	ck_assert_int_eq(count_lines(note), 4);
	ck_assert_ptr_nonnull(strstr(note, "[storage] path: changed; restart "
					   "to apply"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"] push_mode: changed; "
					   "restart to apply"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"old\"]: removed; restart "
					   "to apply"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"new\"]: added; restart to "
					   "apply"));
	/* Reloadable settings were copied, apps matched by name ... */
	ck_assert_int_eq(live->storage_history, 2 * 86400);
	ck_assert_int_eq(live->storage_max_messages, 100);
	ck_assert_int_eq(live->ingest_max_events, 10);
	ck_assert_int_eq(pr_config_app(live, "chat")->push_delay, 20);
	/* ... the others left alone, apps neither added nor removed. */
	ck_assert_str_eq(live->storage_path, "/var/lib/pushrelay/pushrelay.db");
	ck_assert_int_eq(pr_config_app(live, "chat")->push_mode,
			 PR_PUSH_WAKEUP);
	ck_assert_uint_eq(live->n_apps, 2);
	ck_assert_ptr_nonnull(pr_config_app(live, "old"));
	ck_assert_ptr_null(pr_config_app(live, "new"));
	pr_config_free(fresh);

	/* Only push_delay differs: applied silently. */
	fresh = load_ok("[app \"chat\"]\npush_delay = 0\n[app \"old\"]\n"
			"push_delay = 1m\n");
	ck_assert_int_eq(
	    pr_config_apply_reload(live, fresh, note, sizeof(note)), 0);
	ck_assert_str_eq(note, "");
	ck_assert_int_eq(pr_config_app(live, "chat")->push_delay, 0);
	ck_assert_int_eq(pr_config_app(live, "old")->push_delay, 60);
	pr_config_free(fresh);
	pr_config_free(live);

	/* Provider settings need a restart; the password is not shown. */
	live = load_ok("[app \"chat\"]\napns_topic = com.example.chat\n"
		       "apns_cert_file = /c.p12\n"
		       "apns_cert_password = Old-Sekr1t\n");
	fresh = load_ok("[app \"chat\"]\napns_topic = com.example.chat2\n"
			"apns_cert_file = /c.p12\n"
			"apns_cert_password = New-Sekr1t\n"
			"fcm_credentials = /sa.json\n"
			"ca_file = /ca.pem\n");
	n = pr_config_apply_reload(live, fresh, note, sizeof(note));
	ck_assert_msg(n == 4, "%d notes:\n%s", n, note);
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"] apns_topic: "
					   "changed; restart to apply"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"] apns_cert_password: "
					   "changed; restart to apply"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"] fcm_credentials: "
					   "changed"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"] ca_file: changed"));
	ck_assert_ptr_null(strstr(note, "Sekr1t"));
	ck_assert_str_eq(pr_config_app(live, "chat")->apns_cert_password,
			 "Old-Sekr1t");
	ck_assert_str_eq(pr_config_app(live, "chat")->apns_topic,
			 "com.example.chat");
	ck_assert_str_eq(pr_config_app(live, "chat")->fcm_credentials, "");
	pr_config_free(fresh);
	pr_config_free(live);

	/* From the implicit app to named ones. */
	live = pr_config_new();
	fresh = load_ok("[app \"chat\"]\n");
	ck_assert_int_eq(
	    pr_config_apply_reload(live, fresh, note, sizeof(note)), 2);
	ck_assert_ptr_nonnull(strstr(note, "[app \"default\"]: removed"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"]: added"));
	pr_config_free(fresh);
	pr_config_free(live);
}
END_TEST

START_TEST(test_reload_inbox_and_secrets)
{
	struct pr_config *live, *fresh;
	char note[1024];
	int n;

	live = load_ok("[app \"chat\"]\n"
		       "client_token_secret = Old-" SECRET32 "\n"
		       "webhook_url = https://chat.example.com/r\n"
		       "webhook_secret = Old-" SECRET16 "\n");
	fresh = load_ok("[inbox]\n"
			"max_wait = 30\n"
			"max_limit = 100\n"
			"token_leeway = 0\n"
			"max_waiters = 50\n"
			"ws_ping_interval = 10\n"
			"ws_idle_timeout = 1m\n"
			"ws_max_message = 1k\n"
			"ws_max_queued = 64k\n"
			"[app \"chat\"]\n"
			"client_token_secret = New-" SECRET32 "\n"
			"webhook_url = https://chat.example.com/r2\n"
			"webhook_secret = New-" SECRET16 "\n");

	/* The app's credentials need a restart, named without a value ... */
	n = pr_config_apply_reload(live, fresh, note, sizeof(note));
	ck_assert_msg(n == 3, "%d notes:\n%s", n, note);
	ck_assert_ptr_nonnull(strstr(note,
				     "[app \"chat\"] client_token_secret: "
				     "changed; restart to apply"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"] webhook_url: "
					   "changed; restart to apply"));
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"] webhook_secret: "
					   "changed; restart to apply"));
	ck_assert_ptr_null(strstr(note, "Sekr1t"));
	ck_assert_ptr_null(strstr(note, "example.com"));
	ck_assert_str_eq(pr_config_app(live, "chat")->client_token_secret,
			 "Old-" SECRET32);
	ck_assert_str_eq(pr_config_app(live, "chat")->webhook_secret,
			 "Old-" SECRET16);
	ck_assert_str_eq(pr_config_app(live, "chat")->webhook_url,
			 "https://chat.example.com/r");
	/* ... [inbox] applies at once. */
	ck_assert_int_eq(live->inbox_max_wait, 30);
	ck_assert_int_eq(live->inbox_max_limit, 100);
	ck_assert_int_eq(live->inbox_token_leeway, 0);
	ck_assert_int_eq(live->inbox_max_waiters, 50);
	ck_assert_int_eq(live->ws_ping_interval, 10);
	ck_assert_int_eq(live->ws_idle_timeout, 60);
	ck_assert_int_eq(live->ws_max_message, 1024);
	ck_assert_int_eq(live->ws_max_queued, 64 * 1024);
	pr_config_free(fresh);

	/* Receipts turned off: named, still without values; [inbox] back
	 * to its defaults silently. */
	fresh = load_ok("[app \"chat\"]\n"
			"client_token_secret = Old-" SECRET32 "\n");
	n = pr_config_apply_reload(live, fresh, note, sizeof(note));
	ck_assert_msg(n == 2, "%d notes:\n%s", n, note);
	ck_assert_ptr_nonnull(strstr(note, "[app \"chat\"] webhook_secret: "
					   "changed; restart to apply"));
	ck_assert_ptr_null(strstr(note, "Sekr1t"));
	ck_assert_int_eq(live->inbox_max_wait, 60);
	ck_assert_int_eq(live->ws_idle_timeout, 120);
	pr_config_free(fresh);
	pr_config_free(live);
}
END_TEST

START_TEST(test_reload_webhook)
{
	struct pr_config *live = pr_config_new();
	struct pr_config *fresh;
	char note[1024];

	ck_assert_ptr_nonnull(live);
	fresh = load_ok("[webhook]\nflush_interval = 5\nmax_batch = 10\n"
			"max_pending = 500\nbackoff_base = 2\n"
			"backoff_max = 1m\nmax_attempts = 3\ntimeout = 30\n");
	/* Every [webhook] setting applies at once, silently. */
	ck_assert_int_eq(
	    pr_config_apply_reload(live, fresh, note, sizeof(note)), 0);
	ck_assert_str_eq(note, "");
	ck_assert_int_eq(live->webhook_flush_interval, 5);
	ck_assert_int_eq(live->webhook_max_batch, 10);
	ck_assert_int_eq(live->webhook_max_pending, 500);
	ck_assert_int_eq(live->webhook_backoff_base, 2);
	ck_assert_int_eq(live->webhook_backoff_max, 60);
	ck_assert_int_eq(live->webhook_max_attempts, 3);
	ck_assert_int_eq(live->webhook_timeout, 30);
	pr_config_free(fresh);
	pr_config_free(live);
}
END_TEST

/* ---- the table, the example config and the man page --------------------- */

START_TEST(test_directive_table)
{
	const struct pr_directive_info *d;
	size_t i;
	int listens = 0, apps = 0, pushes = 0, inbox = 0, webhook = 0;

	for (i = 0; (d = pr_config_directive(i)) != NULL; i++) {
		ck_assert_ptr_nonnull(d->section);
		ck_assert_ptr_nonnull(d->name);
		ck_assert_ptr_nonnull(d->type);
		ck_assert_ptr_nonnull(d->def);
		ck_assert_msg(d->help && *d->help, "%s: no help", d->name);
		if (strcmp(d->name, "listen") == 0) {
			listens++;
			ck_assert(d->repeatable);
			ck_assert(!d->reloadable);
		}
		if (strcmp(d->section, "log") == 0 ||
		    strcmp(d->section, "ingest") == 0 ||
		    strcmp(d->section, "inbox") == 0 ||
		    strcmp(d->section, "webhook") == 0)
			ck_assert_msg(d->reloadable, "%s", d->name);
		if (strcmp(d->section, "inbox") == 0)
			inbox++;
		if (strcmp(d->section, "webhook") == 0)
			webhook++;
		if (strcmp(d->section, "push") == 0) {
			pushes++;
			ck_assert_msg(d->reloadable ==
					  (strcmp(d->name, "connections") &&
					   strcmp(d->name, "max_streams")),
				      "[push] %s", d->name);
		}
		if (strcmp(d->section, "app") == 0) {
			apps++;
			ck_assert_msg(d->reloadable ==
					  (strcmp(d->name, "push_delay") == 0),
				      "[app] %s", d->name);
		}
	}
	ck_assert_uint_eq(i, 84);
	ck_assert_int_eq(listens, 2);
	ck_assert_int_eq(pushes, 14);
	ck_assert_int_eq(inbox, 8);
	ck_assert_int_eq(webhook, 7);
	ck_assert_int_eq(apps, 20);
	ck_assert_ptr_null(pr_config_directive(1000));
}
END_TEST

START_TEST(test_example_roundtrip)
{
	char err[ERRLEN], path[PATH_MAX];
	struct pr_config *c = NULL;
	char *text = example_text(path, sizeof(path));
	int rv;

	rv = pr_config_load(path, &c, err, sizeof(err));
	unlink(path);
	ck_assert_msg(rv == PR_OK, "example does not load:\n%s", err);
	assert_defaults(c);
	pr_config_free(c);
	ck_assert_ptr_nonnull(strstr(text, "\n[server]\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nmax_header_bytes = 16k\n"));
	ck_assert_ptr_nonnull(strstr(text, "; integer, 1..1000000; "
					   "reloadable\nmax_connections"));
	free(text);
}
END_TEST

/*
 * Where directive d appears in `text` as sec[0] SECTION sec[1] ... name[0]
 * NAME name[1], inside its own section (before the next next_mark). The
 * per-app directives (section "app") are under sec[0] app_title sec[1].
 */
static const char *entry_in_section(const char *text, const char *const sec[2],
				    const char *app_title,
				    const char *next_mark,
				    const struct pr_directive_info *d,
				    const char *const name[2])
{
	char head[64], key[96];
	const char *start, *end, *hit;

	snprintf(head, sizeof(head), "%s%s%s", sec[0],
		 strcmp(d->section, "app") == 0 ? app_title : d->section,
		 sec[1]);
	start = strstr(text, head);
	ck_assert_msg(start != NULL, "no section '%s'", head);
	start += strlen(head);
	end = strstr(start, next_mark);
	if (!end)
		end = start + strlen(start);
	snprintf(key, sizeof(key), "%s%s%s", name[0], d->name, name[1]);
	hit = strstr(start, key);
	ck_assert_msg(hit && hit < end, "[%s] %s missing", d->section, d->name);
	return hit;
}

START_TEST(test_example_file_in_sync)
{
	static const char *const sec[2] = {"\n[", "]"};
	static const char *const key[2] = {"\n", " ="};
	char path[PATH_MAX], tmp[PATH_MAX];
	const struct pr_directive_info *d;
	char *file, *text;
	struct pr_config *c = NULL;
	char err[ERRLEN];

	src_file("etc/pushrelay.conf", path, sizeof(path));
	file = read_all(path);
	for (size_t i = 0; (d = pr_config_directive(i)) != NULL; i++)
		entry_in_section(file, sec, "app \"default\"", "\n[", d, key);
	text = example_text(tmp, sizeof(tmp));
	unlink(tmp);
	ck_assert_msg(strcmp(file, text) == 0,
		      "%s is not the output of pr_config_write_example(); "
		      "regenerate it (pushrelayd --print-config)",
		      path);
	ck_assert_int_eq(pr_config_load(path, &c, err, sizeof(err)), PR_OK);
	assert_defaults(c);
	pr_config_free(c);
	free(text);
	free(file);
}
END_TEST

START_TEST(test_man_page_in_sync)
{
	static const char *const sec[2] = {"\n.SS \"[", "]\""};
	static const char *const key[2] = {"\n.TP\n.B ", "\n"};
	char path[PATH_MAX], want[256];
	const struct pr_directive_info *d;
	const char *entry, *end;
	char *man;

	src_file("man/pushrelay.conf.5", path, sizeof(path));
	man = read_all(path);
	for (size_t i = 0; (d = pr_config_directive(i)) != NULL; i++) {
		entry = entry_in_section(man, sec, "app \\(dqNAME\\(dq",
					 "\n.SS", d, key);
		end = strstr(entry + 1, "\n.TP");
		if (!end)
			end = strstr(entry + 1, "\n.S");
		ck_assert_ptr_nonnull(end);
		if (d->def[0]) {
			snprintf(want, sizeof(want), "Default: \\fB%s\\fR",
				 d->def);
			ck_assert_msg(strstr(entry, want) &&
					  strstr(entry, want) < end,
				      "[%s] %s: man page lacks '%s'",
				      d->section, d->name, want);
		}
		snprintf(want, sizeof(want), "%s",
			 d->reloadable ? "Reloadable." : "Restart to change.");
		ck_assert_msg(strstr(entry, want) && strstr(entry, want) < end,
			      "[%s] %s: man page lacks '%s'", d->section,
			      d->name, want);
	}
	free(man);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("values");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_seconds);
	tcase_add_test(tc, test_bools);
	tcase_add_test(tc, test_log_and_mode);
	tcase_add_test(tc, test_listen_repeat);
	tcase_add_test(tc, test_comments_and_layout);
	tcase_add_test(tc, test_full_config);
	tcase_add_test(tc, test_storage_and_ingest);
	tcase_add_test(tc, test_apps);
	tcase_add_test(tc, test_implicit_default_app);
	tcase_add_test(tc, test_push_section);
	tcase_add_test(tc, test_app_token_auth);
	tcase_add_test(tc, test_app_cert_auth);
	tcase_add_test(tc, test_inbox_section);
	tcase_add_test(tc, test_webhook_section);
	tcase_add_test(tc, test_app_tokens_and_webhook);
	suite_add_tcase(s, tc);

	tc = tcase_create("listen");
	tcase_add_test(tc, test_listen_parse_ok);
	tcase_add_test(tc, test_listen_parse_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_err_unknown_section);
	tcase_add_test(tc, test_err_unknown_key);
	tcase_add_test(tc, test_err_syntax);
	tcase_add_test(tc, test_err_bad_int);
	tcase_add_test(tc, test_err_range);
	tcase_add_test(tc, test_err_suffix);
	tcase_add_test(tc, test_err_bool_level_mode_target);
	tcase_add_test(tc, test_err_listen);
	tcase_add_test(tc, test_err_duplicate);
	tcase_add_test(tc, test_err_long_line);
	tcase_add_test(tc, test_err_nul_byte);
	tcase_add_test(tc, test_err_missing_file);
	tcase_add_test(tc, test_err_tls);
	tcase_add_test(tc, test_err_same_address);
	tcase_add_test(tc, test_err_several);
	tcase_add_test(tc, test_err_buffer_bounded);
	tcase_add_test(tc, test_err_storage_ingest);
	tcase_add_test(tc, test_err_app_section);
	tcase_add_test(tc, test_err_app_keys);
	tcase_add_test(tc, test_err_app_ttl);
	tcase_add_test(tc, test_err_push);
	tcase_add_test(tc, test_err_push_backoff);
	tcase_add_test(tc, test_err_webhook);
	tcase_add_test(tc, test_err_app_strings);
	tcase_add_test(tc, test_err_app_auth);
	tcase_add_test(tc, test_err_password_hidden);
	tcase_add_test(tc, test_err_inbox);
	tcase_add_test(tc, test_err_ws_timers);
	tcase_add_test(tc, test_err_app_secrets);
	tcase_add_test(tc, test_err_secrets_hidden);
	suite_add_tcase(s, tc);

	tc = tcase_create("reload");
	tcase_add_test(tc, test_apply_reload);
	tcase_add_test(tc, test_reload_storage_ingest_apps);
	tcase_add_test(tc, test_reload_inbox_and_secrets);
	tcase_add_test(tc, test_reload_webhook);
	suite_add_tcase(s, tc);

	tc = tcase_create("docs");
	tcase_add_test(tc, test_directive_table);
	tcase_add_test(tc, test_example_roundtrip);
	tcase_add_test(tc, test_example_file_in_sync);
	tcase_add_test(tc, test_man_page_in_sync);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

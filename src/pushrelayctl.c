/*
 * pushrelayctl.c - the admin CLI. It reads the daemon's config to find the
 * admin listener (the first [admin] listen; a Unix socket by default),
 * sends one HTTP request per command through libcurl and prints a table,
 * or the daemon's JSON with --json.
 *
 * Exit codes: 0 success, 1 the daemon answered with an error, 2 usage or
 * config error, 3 the daemon cannot be reached.
 */
#include "autoconf.h"

#include <curl/curl.h>
#include <ctype.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "pushrelay.h"

#define DEFAULT_CONFIG SYSCONFDIR "/pushrelay.conf"
#define MAX_REPLY      (16u << 20)

enum { EXIT_OK = 0, EXIT_REPLY = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct ctl {
	char socket_path[108];
	char base[128];
	char key[128]; /* admin key for TCP admin listeners ($PUSHRELAY_KEY) */
	int json;
};

static void usage(FILE *fp)
{
	fprintf(
	    fp,
	    "Usage: pushrelayctl [-c FILE] [-s SOCKET] [--json] COMMAND\n"
	    "Commands:\n"
	    "  health     is the daemon up (GET /healthz)\n"
	    "  ready      is it ready for traffic (GET /readyz)\n"
	    "  version    daemon and library versions\n"
	    "  metrics    the Prometheus metrics text\n"
	    "  keys list                         API keys\n"
	    "  keys create NAME [--scope S]      a new key (ingest|admin),\n"
	    "                                    shown once\n"
	    "  keys revoke ID|NAME               revoke a key\n"
	    "  providers list                    push counts, paused or not\n"
	    "  providers pause|resume apns|fcm [--app NAME]\n"
	    "  status                            queue depth by state,\n"
	    "                                    providers, oldest pending\n"
	    "  queue list [--user U] [--state S] [--provider apns|fcm]\n"
	    "             [--since T] [--until T] [--limit N] [--before C]\n"
	    "                                    messages, newest first\n"
	    "  queue show ID [--app NAME]        a message, its deliveries,\n"
	    "                                    pushes and attempts\n"
	    "  queue retry JOB_ID | --dead [--limit N]\n"
	    "                                    send a push again\n"
	    "  queue purge ID [--app NAME]       delete a message\n"
	    "  devices list --user U [--app NAME]\n"
	    "                                    a user's devices\n"
	    "  devices delete ID [--app NAME]    remove a device\n"
	    "Options:\n"
	    "  -c, --config FILE   the daemon's config (default %s)\n"
	    "  -s, --socket PATH   admin socket, overriding the config\n"
	    "  -u, --url URL       admin base URL (http://host:port)\n"
	    "  -j, --json          print JSON instead of a table\n",
	    DEFAULT_CONFIG);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct pr_buf *b = arg;

	return pr_buf_append(b, p, size * n) == PR_OK ? size * n : 0;
}

/* Send one request to the admin listener. Returns the HTTP status, or -1
 * when the daemon cannot be reached (the reason goes to stderr). */
static long request(const struct ctl *ctl, const char *method, const char *path,
		    const char *body, struct pr_buf *out)
{
	char url[1024], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	long status = -1;
	CURL *h = curl_easy_init();
	CURLcode rc;

	if (!h)
		return -1;
	snprintf(url, sizeof(url), "%s%s", ctl->base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		hdrs =
		    curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	if (ctl->key[0]) {
		char auth[192];

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
			 ctl->key);
		hdrs = curl_slist_append(hdrs, auth);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	}
	if (ctl->socket_path[0])
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, ctl->socket_path);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	} else {
		fprintf(stderr,
			"pushrelayctl: cannot reach the daemon at %s: %s\n",
			ctl->socket_path[0] ? ctl->socket_path : ctl->base,
			errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return status;
}

/* Find the admin endpoint from the config file. */
static int locate(struct ctl *ctl, const char *path)
{
	struct pr_config *cfg = NULL;
	char err[4096];
	const struct pr_listen_spec *l;

	if (pr_config_load(path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "pushrelayctl: %s", err);
		return EXIT_USAGE;
	}
	if (cfg->n_admin_listen == 0) {
		fprintf(stderr, "pushrelayctl: %s has no [admin] listen\n",
			path);
		pr_config_free(cfg);
		return EXIT_USAGE;
	}
	l = &cfg->admin_listen[0];
	if (l->family == AF_UNIX) {
		snprintf(ctl->socket_path, sizeof(ctl->socket_path), "%s",
			 l->path);
		snprintf(ctl->base, sizeof(ctl->base), "http://localhost");
	} else {
		const char *host = l->host;

		if (strcmp(host, "0.0.0.0") == 0)
			host = "127.0.0.1";
		else if (strcmp(host, "::") == 0)
			host = "::1";
		snprintf(ctl->base, sizeof(ctl->base),
			 strchr(host, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
			 l->tls ? "https" : "http", host, l->port);
	}
	pr_config_free(cfg);
	return EXIT_OK;
}

/* One cell of a table: strings as they are, null as "-", others as JSON. */
static void cell(json_t *v, char *out, size_t outlen)
{
	if (!v || json_is_null(v)) {
		snprintf(out, outlen, "-");
	} else if (json_is_string(v)) {
		snprintf(out, outlen, "%s", json_string_value(v));
	} else if (json_is_boolean(v)) {
		snprintf(out, outlen, "%s", json_is_true(v) ? "yes" : "no");
	} else {
		char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

		snprintf(out, outlen, "%s", t ? t : "?");
		free(t);
	}
}

/* Columns sized to their widest cell, upper-case headers. */
static void print_table(json_t *rows, const char *const *columns)
{
	size_t ncol = 0, width[16] = {0}, i;
	char buf[256];
	json_t *row;

	while (columns[ncol] && ncol < 16)
		ncol++;
	for (size_t c = 0; c < ncol; c++)
		width[c] = strlen(columns[c]);
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < ncol; c++) {
			cell(json_object_get(row, columns[c]), buf,
			     sizeof(buf));
			if (strlen(buf) > width[c])
				width[c] = strlen(buf);
		}
	}
	for (size_t c = 0; c < ncol; c++) {
		for (const char *p = columns[c]; *p; p++)
			putchar(*p == '_' ? ' ' : toupper((unsigned char)*p));
		printf("%*s", (int)(width[c] - strlen(columns[c]) + 2), "");
	}
	putchar('\n');
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < ncol; c++) {
			cell(json_object_get(row, columns[c]), buf,
			     sizeof(buf));
			printf("%-*s  ", (int)width[c], buf);
		}
		putchar('\n');
	}
	if (json_array_size(rows) == 0)
		printf("(none)\n");
}

static void print_pairs(json_t *obj, int depth)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
	{
		if (json_is_object(v)) {
			printf("%*s%s:\n", depth * 2, "", k);
			print_pairs(v, depth + 1);
			continue;
		}
		if (json_is_string(v))
			printf("%*s%-14s %s\n", depth * 2, "", k,
			       json_string_value(v));
		else {
			char *t = json_dumps(v, JSON_ENCODE_ANY);

			printf("%*s%-14s %s\n", depth * 2, "", k, t ? t : "?");
			free(t);
		}
	}
}

/* Print the daemon's answer: JSON on request, a table for `columns`,
 * pairs otherwise. Returns the exit code for the status. */
static int show(const struct ctl *ctl, long status, struct pr_buf *out,
		const char *list_key, const char *const *columns)
{
	json_t *doc = json_loadb(pr_buf_peek(out), pr_buf_avail(out), 0, NULL);
	int rv = status >= 200 && status < 300 ? EXIT_OK : EXIT_REPLY;

	if (!doc || ctl->json) {
		fwrite(pr_buf_peek(out), 1, pr_buf_avail(out), stdout);
		if (pr_buf_avail(out) &&
		    pr_buf_peek(out)[pr_buf_avail(out) - 1] != '\n')
			putchar('\n');
	} else if (json_is_object(json_object_get(doc, "error"))) {
		json_t *e = json_object_get(doc, "error");

		fprintf(stderr, "pushrelayctl: %ld %s: %s\n", status,
			json_string_value(json_object_get(e, "code")),
			json_string_value(json_object_get(e, "message")));
	} else if (list_key && json_is_array(json_object_get(doc, list_key))) {
		print_table(json_object_get(doc, list_key), columns);
	} else {
		print_pairs(doc, 0);
	}
	json_decref(doc);
	return rv;
}

/* Percent-encode one path segment. */
static void encode_segment(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s && o + 4 < outlen; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' ||
		    c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

static int call(const struct ctl *ctl, const char *method, const char *path,
		const char *body, const char *list_key,
		const char *const *columns)
{
	struct pr_buf out;
	long status;
	int rv;

	pr_buf_init(&out, MAX_REPLY);
	status = request(ctl, method, path, body, &out);
	if (status < 0) {
		pr_buf_cleanup(&out);
		return EXIT_UNREACHABLE;
	}
	rv = show(ctl, status, &out, list_key, columns);
	pr_buf_cleanup(&out);
	return rv;
}

static int cmd_keys(const struct ctl *ctl, int argc, char **argv)
{
	static const char *const cols[] = {
	    "id",	  "name",	  "scope",   "prefix",
	    "created_at", "last_used_at", "revoked", NULL};
	char path[512], seg[400];

	if (argc >= 1 && strcmp(argv[0], "list") == 0 && argc == 1)
		return call(ctl, "GET", "/v1/admin/keys", NULL, "keys", cols);
	if (argc >= 2 && strcmp(argv[0], "create") == 0) {
		const char *scope = "ingest";
		json_t *body;
		char *text;
		int rv;

		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc)
				scope = argv[++i];
			else if (strncmp(argv[i], "--scope=", 8) == 0)
				scope = argv[i] + 8;
			else
				goto usage;
		}
		body = json_pack("{s:s, s:s}", "name", argv[1], "scope", scope);
		text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		if (!text)
			return EXIT_USAGE;
		rv = call(ctl, "POST", "/v1/admin/keys", text, NULL, NULL);
		free(text);
		if (rv == EXIT_OK && !ctl->json)
			fprintf(stderr, "pushrelayctl: the key is shown only "
					"once; store it now.\n");
		return rv;
	}
	if (argc == 2 && strcmp(argv[0], "revoke") == 0) {
		encode_segment(argv[1], seg, sizeof(seg));
		snprintf(path, sizeof(path), "/v1/admin/keys/%s", seg);
		return call(ctl, "DELETE", path, NULL, NULL, NULL);
	}
usage:
	fprintf(stderr, "usage: pushrelayctl keys list | create NAME "
			"[--scope ingest|admin] | revoke ID|NAME\n");
	return EXIT_USAGE;
}

static int cmd_providers(const struct ctl *ctl, int argc, char **argv)
{
	char path[256], seg[64];

	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return call(ctl, "GET", "/v1/admin/providers", NULL, NULL,
			    NULL);
	if ((argc == 2 || argc == 4) &&
	    (strcmp(argv[0], "pause") == 0 || strcmp(argv[0], "resume") == 0)) {
		encode_segment(argv[1], seg, sizeof(seg));
		if (argc == 4 && strcmp(argv[2], "--app") == 0) {
			char app[160];

			encode_segment(argv[3], app, sizeof(app));
			snprintf(path, sizeof(path),
				 "/v1/admin/providers/%s/%s?app=%s", seg,
				 argv[0], app);
		} else if (argc == 2) {
			snprintf(path, sizeof(path),
				 "/v1/admin/providers/%s/%s", seg, argv[0]);
		} else {
			goto usage;
		}
		return call(ctl, "POST", path, "{}", NULL, NULL);
	}
usage:
	fprintf(stderr, "usage: pushrelayctl providers list | pause|resume "
			"apns|fcm [--app NAME]\n");
	return EXIT_USAGE;
}

/* A request whose answer the caller prints: the document (NULL when it is
 * not JSON) and the exit code; on an error or with --json, it is printed
 * here already and *doc is NULL. */
static int fetch(const struct ctl *ctl, const char *method, const char *path,
		 const char *body, json_t **doc)
{
	struct pr_buf out;
	long status;
	int rv;

	*doc = NULL;
	pr_buf_init(&out, MAX_REPLY);
	status = request(ctl, method, path, body, &out);
	if (status < 0) {
		pr_buf_cleanup(&out);
		return EXIT_UNREACHABLE;
	}
	if (!ctl->json && status >= 200 && status < 300)
		*doc =
		    json_loadb(pr_buf_peek(&out), pr_buf_avail(&out), 0, NULL);
	if (!*doc) {
		rv = show(ctl, status, &out, NULL, NULL);
	} else {
		rv = EXIT_OK;
	}
	pr_buf_cleanup(&out);
	return rv;
}

/* Append "&key=value" (percent-encoded) to a query string. */
static void add_query(char *q, size_t qlen, const char *key, const char *v)
{
	char enc[400];
	size_t n = strlen(q);

	encode_segment(v, enc, sizeof(enc));
	snprintf(q + n, qlen - n, "%s%s=%s", n ? "&" : "", key, enc);
}

static int cmd_status(const struct ctl *ctl, int argc, char **argv)
{
	static const char *const cols[] = {"provider", "sent",	 "failed",
					   "retrying", "paused", NULL};
	json_t *doc, *rows, *v, *row;
	const char *k;
	int rv;

	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: pushrelayctl status\n");
		return EXIT_USAGE;
	}
	rv = fetch(ctl, "GET", "/v1/admin/stats", NULL, &doc);
	if (!doc)
		return rv;
	printf("messages        %lld\n",
	       (long long)json_integer_value(json_object_get(doc, "messages")));
	printf("devices         %lld\n",
	       (long long)json_integer_value(json_object_get(doc, "devices")));
	printf("oldest pending  %llds\n",
	       (long long)json_integer_value(
		   json_object_get(doc, "oldest_pending_age")));
	printf("queue:\n");
	json_object_foreach(json_object_get(doc, "queue"), k, v)
	    printf("  %-14s %lld\n", k, (long long)json_integer_value(v));
	rows = json_array();
	json_object_foreach(json_object_get(doc, "providers"), k, v)
	{
		if (!json_is_object(v))
			continue;
		row = json_deep_copy(v);
		json_object_set_new(row, "provider", json_string(k));
		json_array_append_new(rows, row);
	}
	putchar('\n');
	print_table(rows, cols);
	json_decref(rows);
	json_decref(doc);
	return EXIT_OK;
}

static int queue_list(const struct ctl *ctl, int argc, char **argv)
{
	static const char *const cols[] = {
	    "id",      "app",	     "user",	 "created_at",
	    "devices", "push_state", "attempts", NULL};
	static const char *const flags[] = {"user",  "state",  "provider",
					    "limit", "before", "since",
					    "until", NULL};
	char q[1500] = "", path[1600];
	json_t *doc, *next;
	int rv, ok;

	for (int i = 0; i < argc; i++) {
		ok = 0;
		for (size_t f = 0; flags[f]; f++) {
			if (strncmp(argv[i], "--", 2) == 0 &&
			    strcmp(argv[i] + 2, flags[f]) == 0 &&
			    i + 1 < argc) {
				add_query(q, sizeof(q), flags[f], argv[++i]);
				ok = 1;
				break;
			}
		}
		if (!ok)
			return -1;
	}
	snprintf(path, sizeof(path), "/v1/admin/messages%s%s", *q ? "?" : "",
		 q);
	rv = fetch(ctl, "GET", path, NULL, &doc);
	if (!doc)
		return rv;
	print_table(json_object_get(doc, "messages"), cols);
	next = json_object_get(doc, "next");
	if (json_is_integer(next))
		printf("more: --before %lld\n",
		       (long long)json_integer_value(next));
	json_decref(doc);
	return EXIT_OK;
}

static int queue_show(const struct ctl *ctl, const char *id, const char *app)
{
	static const char *const dcols[] = {"device_id", "user",  "platform",
					    "seq",	 "acked", NULL};
	static const char *const pcols[] = {"job_id",	   "device_id",
					    "platform",	   "state",
					    "attempts",	   "next_attempt_at",
					    "last_status", "last_reason",
					    "apns_id",	   NULL};
	static const char *const hcols[] = {"job_id",  "at",	 "provider",
					    "status",  "reason", "latency_ms",
					    "apns_id", NULL};
	char seg[400], path[600], a[200];
	json_t *doc, *p, *h, *hist, *rows;
	size_t i, j;
	int rv;

	encode_segment(id, seg, sizeof(seg));
	snprintf(path, sizeof(path), "/v1/admin/messages/%s", seg);
	if (app) {
		encode_segment(app, a, sizeof(a));
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
			 "?app=%s", a);
	}
	rv = fetch(ctl, "GET", path, NULL, &doc);
	if (!doc)
		return rv;
	{
		static const char *const keys[] = {
		    "id",	  "app",     "user", "created_at",
		    "expires_at", "payload", "push", NULL};
		char buf[256];

		for (i = 0; keys[i]; i++) {
			cell(json_object_get(doc, keys[i]), buf, sizeof(buf));
			printf("%-11s %s\n", keys[i], buf);
		}
	}
	printf("\ndeliveries:\n");
	print_table(json_object_get(doc, "deliveries"), dcols);
	printf("\npushes:\n");
	print_table(json_object_get(doc, "pushes"), pcols);
	rows = json_array();
	json_array_foreach(json_object_get(doc, "pushes"), i, p)
	{
		hist = json_object_get(p, "history");
		json_array_foreach(hist, j, h)
		{
			json_t *row = json_deep_copy(h);

			json_object_set(row, "job_id",
					json_object_get(p, "job_id"));
			json_array_append_new(rows, row);
		}
	}
	printf("\nattempts:\n");
	print_table(rows, hcols);
	json_decref(rows);
	json_decref(doc);
	return EXIT_OK;
}

static int cmd_queue(const struct ctl *ctl, int argc, char **argv)
{
	char path[600], seg[400], a[200];
	const char *app = NULL;
	int rv;

	if (argc >= 1 && strcmp(argv[0], "list") == 0) {
		rv = queue_list(ctl, argc - 1, argv + 1);
		if (rv >= 0)
			return rv;
		goto usage;
	}
	if ((argc == 2 || argc == 4) &&
	    (strcmp(argv[0], "show") == 0 || strcmp(argv[0], "purge") == 0)) {
		if (argc == 4) {
			if (strcmp(argv[2], "--app") != 0)
				goto usage;
			app = argv[3];
		}
		if (strcmp(argv[0], "show") == 0)
			return queue_show(ctl, argv[1], app);
		encode_segment(argv[1], seg, sizeof(seg));
		snprintf(path, sizeof(path), "/v1/admin/messages/%s", seg);
		if (app) {
			encode_segment(app, a, sizeof(a));
			snprintf(path + strlen(path),
				 sizeof(path) - strlen(path), "?app=%s", a);
		}
		return call(ctl, "DELETE", path, NULL, NULL, NULL);
	}
	if (argc >= 2 && strcmp(argv[0], "retry") == 0) {
		if (strcmp(argv[1], "--dead") == 0) {
			if (argc == 2)
				return call(ctl, "POST",
					    "/v1/admin/pushes/retry?state=dead",
					    "{}", NULL, NULL);
			if (argc == 4 && strcmp(argv[2], "--limit") == 0) {
				encode_segment(argv[3], seg, sizeof(seg));
				snprintf(path, sizeof(path),
					 "/v1/admin/pushes/retry?state=dead"
					 "&limit=%s",
					 seg);
				return call(ctl, "POST", path, "{}", NULL,
					    NULL);
			}
			goto usage;
		}
		if (argc != 2)
			goto usage;
		encode_segment(argv[1], seg, sizeof(seg));
		snprintf(path, sizeof(path), "/v1/admin/pushes/%s/retry", seg);
		return call(ctl, "POST", path, "{}", NULL, NULL);
	}
usage:
	fprintf(stderr,
		"usage: pushrelayctl queue list [--user U] [--state S]"
		" [--provider apns|fcm] [--since T] [--until T] [--limit N]"
		" [--before CURSOR]\n"
		"       pushrelayctl queue show ID [--app NAME]\n"
		"       pushrelayctl queue retry JOB_ID | --dead [--limit N]\n"
		"       pushrelayctl queue purge ID [--app NAME]\n");
	return EXIT_USAGE;
}

static int cmd_devices(const struct ctl *ctl, int argc, char **argv)
{
	static const char *const cols[] = {
	    "device_id", "user",	 "platform", "environment",
	    "push",	 "last_seen_at", NULL};
	char q[1200] = "", path[1600], seg[400];
	const char *user = NULL, *app = NULL;
	int i;

	if (argc < 1)
		goto usage;
	i = strcmp(argv[0], "delete") == 0 ? 2 : 1;
	if (i == 2 && argc < 2)
		goto usage;
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
			app = argv[++i];
		else
			goto usage;
	}
	if (strcmp(argv[0], "list") == 0) {
		if (!user)
			goto usage;
		add_query(q, sizeof(q), "user", user);
		if (app)
			add_query(q, sizeof(q), "app", app);
		snprintf(path, sizeof(path), "/v1/admin/devices?%s", q);
		return call(ctl, "GET", path, NULL, "devices", cols);
	}
	if (strcmp(argv[0], "delete") == 0 && !user) {
		encode_segment(argv[1], seg, sizeof(seg));
		if (app)
			add_query(q, sizeof(q), "app", app);
		snprintf(path, sizeof(path), "/v1/admin/devices/%s%s%s", seg,
			 *q ? "?" : "", q);
		return call(ctl, "DELETE", path, NULL, NULL, NULL);
	}
usage:
	fprintf(stderr, "usage: pushrelayctl devices list --user U "
			"[--app NAME]\n"
			"       pushrelayctl devices delete ID [--app NAME]\n");
	return EXIT_USAGE;
}

static int run(const struct ctl *ctl, int argc, char **argv)
{
	static const struct {
		const char *name, *path;
	} simple[] = {
	    {"health", "/healthz"},
	    {"ready", "/readyz"},
	    {"version", "/v1/version"},
	    {"metrics", "/metrics"},
	};
	const char *cmd = argv[0];

	for (size_t i = 0; i < PR_ARRAY_SIZE(simple); i++)
		if (strcmp(cmd, simple[i].name) == 0 && argc == 1)
			return call(ctl, "GET", simple[i].path, NULL, NULL,
				    NULL);
	if (strcmp(cmd, "keys") == 0)
		return cmd_keys(ctl, argc - 1, argv + 1);
	if (strcmp(cmd, "providers") == 0)
		return cmd_providers(ctl, argc - 1, argv + 1);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(ctl, argc - 1, argv + 1);
	if (strcmp(cmd, "queue") == 0)
		return cmd_queue(ctl, argc - 1, argv + 1);
	if (strcmp(cmd, "devices") == 0)
		return cmd_devices(ctl, argc - 1, argv + 1);
	fprintf(stderr, "pushrelayctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"socket", required_argument, NULL, 's'},
	    {"url", required_argument, NULL, 'u'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = getenv("PUSHRELAY_CONFIG");
	const char *key = getenv("PUSHRELAY_KEY");
	const char *sock = NULL, *url = NULL;
	struct ctl ctl;
	int opt, rv;

	memset(&ctl, 0, sizeof(ctl));
	if (key)
		snprintf(ctl.key, sizeof(ctl.key), "%s", key);
	if (!config)
		config = DEFAULT_CONFIG;
	while ((opt = getopt_long(argc, argv, "+c:s:u:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 's': sock = optarg; break;
		case 'u': url = optarg; break;
		case 'j': ctl.json = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (sock) {
		if (strlen(sock) >= sizeof(ctl.socket_path)) {
			fprintf(stderr, "pushrelayctl: socket path too long\n");
			return EXIT_USAGE;
		}
		snprintf(ctl.socket_path, sizeof(ctl.socket_path), "%s", sock);
		snprintf(ctl.base, sizeof(ctl.base), "http://localhost");
	} else if (url) {
		snprintf(ctl.base, sizeof(ctl.base), "%s", url);
	} else {
		rv = locate(&ctl, config);
		if (rv)
			return rv;
	}
	/* --json may also follow the command ("keys list --json"). */
	{
		int n = 0;

		for (int i = optind; i < argc; i++) {
			if (strcmp(argv[i], "--json") == 0 ||
			    strcmp(argv[i], "-j") == 0)
				ctl.json = 1;
			else
				argv[optind + n++] = argv[i];
		}
		argc = optind + n;
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* --json is taken after the command too. */
	{
		int o = optind;

		for (int i = optind; i < argc; i++) {
			if (strcmp(argv[i], "--json") == 0 ||
			    strcmp(argv[i], "-j") == 0)
				ctl.json = 1;
			else
				argv[o++] = argv[i];
		}
		argc = o;
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	rv = run(&ctl, argc - optind, argv + optind);
	curl_global_cleanup();
	return rv;
}

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
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "pushrelay.h"

#define DEFAULT_CONFIG SYSCONFDIR "/pushrelay.conf"
#define MAX_REPLY (16u << 20)

enum { EXIT_OK = 0, EXIT_REPLY = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct ctl {
	char socket_path[108];
	char base[128];
	int json;
};

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: pushrelayctl [-c FILE] [-s SOCKET] [--json] COMMAND\n"
		"Commands:\n"
		"  health     is the daemon up (GET /healthz)\n"
		"  ready      is it ready for traffic (GET /readyz)\n"
		"  version    daemon and library versions\n"
		"  metrics    the Prometheus metrics text\n"
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

/* GET path from the admin listener. Returns the HTTP status, or -1 when
 * the daemon cannot be reached (the reason goes to stderr). */
static long get(const struct ctl *ctl, const char *path, struct pr_buf *out)
{
	char url[512], errbuf[CURL_ERROR_SIZE] = "";
	long status = -1;
	CURL *h = curl_easy_init();
	CURLcode rc;

	if (!h)
		return -1;
	snprintf(url, sizeof(url), "%s%s", ctl->base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
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

static void print_pairs(json_t *obj, int depth)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
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

static int run(const struct ctl *ctl, const char *cmd)
{
	static const struct {
		const char *name, *path;
	} cmds[] = {
		{"health", "/healthz"},
		{"ready", "/readyz"},
		{"version", "/v1/version"},
		{"metrics", "/metrics"},
	};
	const char *path = NULL;
	struct pr_buf out;
	json_t *doc;
	long status;
	int rv;

	for (size_t i = 0; i < PR_ARRAY_SIZE(cmds); i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			path = cmds[i].path;
	if (!path) {
		fprintf(stderr, "pushrelayctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	pr_buf_init(&out, MAX_REPLY);
	status = get(ctl, path, &out);
	if (status < 0) {
		pr_buf_cleanup(&out);
		return EXIT_UNREACHABLE;
	}
	rv = status >= 200 && status < 300 ? EXIT_OK : EXIT_REPLY;
	doc = json_loadb(pr_buf_peek(&out), pr_buf_avail(&out), 0, NULL);
	if (!doc || ctl->json) {
		fwrite(pr_buf_peek(&out), 1, pr_buf_avail(&out), stdout);
		if (pr_buf_avail(&out) &&
		    pr_buf_peek(&out)[pr_buf_avail(&out) - 1] != '\n')
			putchar('\n');
	} else if (json_is_object(json_object_get(doc, "error"))) {
		json_t *e = json_object_get(doc, "error");

		fprintf(stderr, "pushrelayctl: %ld %s: %s\n", status,
			json_string_value(json_object_get(e, "code")),
			json_string_value(json_object_get(e, "message")));
	} else {
		print_pairs(doc, 0);
	}
	json_decref(doc);
	pr_buf_cleanup(&out);
	return rv;
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
	const char *sock = NULL, *url = NULL;
	struct ctl ctl;
	int opt, rv;

	memset(&ctl, 0, sizeof(ctl));
	if (!config)
		config = DEFAULT_CONFIG;
	while ((opt = getopt_long(argc, argv, "c:s:u:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
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
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rv = run(&ctl, argv[optind]);
	curl_global_cleanup();
	return rv;
}

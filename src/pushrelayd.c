/*
 * pushrelayd.c - the daemon's entry point: options, config, logging, the
 * event loop. It runs in the foreground and logs to stderr (or what
 * [log] target says); systemd's Type=notify is answered when
 * NOTIFY_SOCKET is set.
 */
#include "autoconf.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pushrelay.h"
#include "server.h"
#include "version.h"

#define DEFAULT_CONFIG SYSCONFDIR "/pushrelay.conf"

static void usage(FILE *fp)
{
	fprintf(
	    fp,
	    "Usage: pushrelayd [-c FILE] [-t] [-V] [-h] [--print-config]\n"
	    "  -c, --config FILE   configuration file (default %s)\n"
	    "  -t, --test          check the config and the files it names\n"
	    "  -V, --version       print the version and linked libraries\n"
	    "  -h, --help          this help\n"
	    "      --print-config  print the example configuration with "
	    "every default\n"
	    "Signals: TERM/INT drain and stop, HUP reloads and reopens "
	    "the log.\n",
	    DEFAULT_CONFIG);
}

static void print_version(void)
{
	json_t *libs = pr_version_libraries();
	const char *k;
	json_t *v;

	printf("pushrelayd %s\n", pr_version());
	json_object_foreach(libs, k, v)
	    printf("  %-12s %s\n", k, json_string_value(v));
	json_decref(libs);
}

/* Tell systemd we are ready (Type=notify), without libsystemd. */
static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) <
	    0)
		pr_log_errno(PR_LOG_WARN, NULL, "sd_notify");
	close(fd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"test", no_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"print-config", no_argument, NULL, 'P'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG;
	struct pr_config *cfg = NULL;
	struct pr_server *s;
	char err[8192];
	int test = 0, opt, rv;

	while ((opt = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': test = 1; break;
		case 'V': print_version(); return 0;
		case 'h': usage(stdout); return 0;
		case 'P': pr_config_write_example(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	rv = pr_config_load(path, &cfg, err, sizeof(err));
	if (rv) {
		fprintf(stderr, "pushrelayd: configuration invalid:\n%s%s", err,
			err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
		return 1;
	}
	if (test) {
		/* Like nginx -t: also load the files the config names. */
		if (pr_server_check_files(cfg, err, sizeof(err))) {
			fprintf(stderr, "pushrelayd: %s: %s\n", path, err);
			pr_config_free(cfg);
			return 1;
		}
		printf("%s: configuration OK\n", path);
		pr_config_free(cfg);
		return 0;
	}

	pr_log_set_level((enum pr_log_level)cfg->log_level);
	if (pr_log_open(cfg->log_target)) {
		fprintf(stderr, "pushrelayd: cannot open log %s: %s\n",
			cfg->log_target, strerror(errno));
		pr_config_free(cfg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	s = pr_server_new(EV_DEFAULT, cfg, err, sizeof(err));
	if (!s) {
		pr_log(PR_LOG_ERROR, NULL, "%s", err);
		rv = 1;
		goto out;
	}
	if (pr_server_start(s, err, sizeof(err))) {
		pr_log(PR_LOG_ERROR, NULL, "%s", err);
		rv = 1;
		goto out;
	}
	pr_log(PR_LOG_INFO, NULL, "pushrelayd %s started (config %s)",
	       pr_version(), path);
	notify_ready();
	ev_run(s->loop, 0);
	pr_log(PR_LOG_INFO, NULL, "pushrelayd stopped");
	rv = s->exit_code;
out:
	pr_server_free(s);
	ev_loop_destroy(EV_DEFAULT);
	curl_global_cleanup();
	pr_log_close();
	return rv;
}

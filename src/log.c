/*
 * log.c - the process-wide log sink. One line per call, written with a
 * single write(2) so concurrent writers (the store thread) never interleave
 * halves of lines.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pushrelay.h"

enum pr_log_level pr_log_level_current = PR_LOG_INFO;

static int log_fd = 2;
static int log_syslog;
static char log_path[4096];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int pr_log_level_parse(const char *s)
{
	for (size_t i = 0; i < PR_ARRAY_SIZE(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *pr_log_level_name(enum pr_log_level level)
{
	if ((unsigned)level < PR_ARRAY_SIZE(level_names))
		return level_names[level];
	return "?";
}

void pr_log_set_level(enum pr_log_level level)
{
	pr_log_level_current = level;
}

enum pr_log_level pr_log_get_level(void)
{
	return pr_log_level_current;
}

static int open_file(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int pr_log_open(const char *target)
{
	int fd;

	if (!target || strcmp(target, "stderr") == 0) {
		pr_log_close();
		return PR_OK;
	}
	if (strcmp(target, "syslog") == 0) {
		pr_log_close();
		openlog("pushrelayd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog = 1;
		return PR_OK;
	}
	if (strlen(target) >= sizeof(log_path))
		return PR_ERR_INVAL;
	fd = open_file(target);
	if (fd < 0)
		return PR_ERR_IO;
	pr_log_close();
	log_fd = fd;
	snprintf(log_path, sizeof(log_path), "%s", target);
	return PR_OK;
}

int pr_log_reopen(void)
{
	int fd;

	if (!log_path[0])
		return PR_OK;
	fd = open_file(log_path);
	if (fd < 0)
		return PR_ERR_IO;
	dup2(fd, log_fd);
	close(fd);
	return PR_OK;
}

void pr_log_close(void)
{
	if (log_syslog)
		closelog();
	log_syslog = 0;
	if (log_fd != 2)
		close(log_fd);
	log_fd = 2;
	log_path[0] = '\0';
}

void pr_log_write(enum pr_log_level level, const char *id, int errnum,
		  const char *fmt, ...)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[2048];
	size_t n = 0, cap = sizeof(line) - 2;
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int w;

	if (!log_syslog) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, cap, "%Y-%m-%dT%H:%M:%S", &tm);
		w = snprintf(line + n, cap - n, ".%03ldZ %-5s ",
			     ts.tv_nsec / 1000000L, pr_log_level_name(level));
		n += w > 0 ? (size_t)w : 0;
	}
	if (id && *id && n < cap) {
		w = snprintf(line + n, cap - n, "[%s] ", id);
		n += w > 0 ? (size_t)w : 0;
	}
	if (n < cap) {
		va_start(ap, fmt);
		w = vsnprintf(line + n, cap - n, fmt, ap);
		va_end(ap);
		n += w > 0 ? (size_t)w : 0;
	}
	if (errnum && n < cap) {
		w = snprintf(line + n, cap - n, ": %s",
			     errnum > 0 ? strerror(errnum) : "unknown error");
		n += w > 0 ? (size_t)w : 0;
	}
	if (n > cap)
		n = cap;
	if (log_syslog) {
		line[n] = '\0';
		syslog(prio[level], "%s", line);
		return;
	}
	line[n++] = '\n';
	/* A failed log write has nowhere to be reported. */
	if (write(log_fd, line, n) < 0)
		return;
}

const char *pr_log_redact_token(const char *token, char *out, size_t outlen)
{
	size_t n = token ? strlen(token) : 0;

	if (outlen == 0)
		return "";
	if (n > 8)
		n = 8;
	snprintf(out, outlen, "%.*s…", (int)n, token ? token : "");
	return out;
}

/*
 * log.c - the process-wide log sink. One line per call, written with a
 * single write(2) so concurrent writers (the store thread) never interleave
 * halves of lines. The loop thread switches the target (a reload, a
 * reopen) while the store thread may be writing, so the descriptor
 * writers use is never closed under them, and the level and the syslog
 * flag are atomics.
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

_Atomic int pr_log_level_current = PR_LOG_INFO;

/* The descriptor every thread writes to: 2 until a file is opened, then
 * that file's descriptor, which stays open for the life of the process:
 * a later file (a reload, a reopen after logrotate) is dup2()'d onto it,
 * and stderr too, so a writer on another thread never writes to a closed
 * or reused number. */
static _Atomic int log_fd = 2;
static _Atomic int log_syslog;
static char log_path[4096]; /* loop thread only */

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
	atomic_store_explicit(&pr_log_level_current, (int)level,
			      memory_order_relaxed);
}

enum pr_log_level pr_log_get_level(void)
{
	return (enum pr_log_level)atomic_load_explicit(&pr_log_level_current,
						       memory_order_relaxed);
}

static int open_file(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

/* Make fd (a new file, or 2) what the writers' descriptor refers to. The
 * caller keeps fd. */
static int point_at(int fd)
{
	int cur = atomic_load_explicit(&log_fd, memory_order_relaxed);

	if (cur == 2) {
		if (fd == 2)
			return PR_OK;
		/* The first file: a descriptor of its own from now on. */
		fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return PR_ERR_IO;
		atomic_store_explicit(&log_fd, fd, memory_order_release);
		return PR_OK;
	}
	return dup3(fd, cur, O_CLOEXEC) < 0 ? PR_ERR_IO : PR_OK;
}

int pr_log_open(const char *target)
{
	int fd, rv;

	if (!target || strcmp(target, "stderr") == 0) {
		rv = point_at(2);
		if (rv)
			return rv;
		/* A writer that saw the flag may still call syslog(): the
		 * connection stays open (closelog() only at exit). */
		atomic_store(&log_syslog, 0);
		log_path[0] = '\0';
		return PR_OK;
	}
	if (strcmp(target, "syslog") == 0) {
		openlog("pushrelayd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		atomic_store(&log_syslog, 1);
		log_path[0] = '\0';
		return PR_OK;
	}
	if (strlen(target) >= sizeof(log_path))
		return PR_ERR_INVAL;
	fd = open_file(target);
	if (fd < 0)
		return PR_ERR_IO;
	rv = point_at(fd);
	close(fd);
	if (rv)
		return rv;
	atomic_store(&log_syslog, 0);
	snprintf(log_path, sizeof(log_path), "%s", target);
	return PR_OK;
}

int pr_log_reopen(void)
{
	int fd, rv;

	if (!log_path[0])
		return PR_OK;
	fd = open_file(log_path);
	if (fd < 0)
		return PR_ERR_IO;
	rv = point_at(fd);
	close(fd);
	return rv;
}

void pr_log_close(void)
{
	int fd = atomic_exchange(&log_fd, 2);

	if (atomic_exchange(&log_syslog, 0))
		closelog();
	if (fd != 2)
		close(fd);
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
	int w, to_syslog = atomic_load(&log_syslog);

	if (!to_syslog) {
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
	if (to_syslog) {
		line[n] = '\0';
		syslog(prio[level], "%s", line);
		return;
	}
	line[n++] = '\n';
	/* A failed log write has nowhere to be reported. */
	if (write(atomic_load_explicit(&log_fd, memory_order_acquire), line,
		  n) < 0)
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

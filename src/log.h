/*
 * log.h - levelled logging to stderr, a file or syslog. The level is
 * checked before anything is formatted. Lines carry an id (request,
 * message or connection) when the caller has one. Never pass secrets:
 * keys, JWTs and full device tokens must not reach a log line; use
 * pr_log_redact_token() for tokens.
 */
#ifndef PR_LOG_H
#define PR_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

enum pr_log_level {
	PR_LOG_ERROR = 0,
	PR_LOG_WARN = 1,
	PR_LOG_INFO = 2,
	PR_LOG_DEBUG = 3,
};

/*
 * Threads: pr_log_write() and pr_log_enabled() may run on any thread (the
 * store thread logs) at any time. pr_log_open(), pr_log_reopen() and
 * pr_log_set_level() run on the loop thread, also while others log: a
 * file is switched with dup2() onto the descriptor the writers use, which
 * is never closed under them. pr_log_close() only when no other thread
 * logs any more (at exit).
 */
/* Where lines go. "stderr", "syslog" or a file path. */
int pr_log_open(const char *target);
/* Reopen a file target (after logrotate moved it); no-op otherwise. */
int pr_log_reopen(void);
void pr_log_close(void);
void pr_log_set_level(enum pr_log_level level);
enum pr_log_level pr_log_get_level(void);
/* Parse "error" / "warn" / "info" / "debug"; -1 when unknown. */
int pr_log_level_parse(const char *s);
const char *pr_log_level_name(enum pr_log_level level);

/* An enum pr_log_level; read by every thread, set on reload. */
extern _Atomic int pr_log_level_current;
#define pr_log_enabled(lvl)                                                    \
	((int)(lvl) <=                                                         \
	 atomic_load_explicit(&pr_log_level_current, memory_order_relaxed))

void pr_log_write(enum pr_log_level level, const char *id, int errnum,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* id may be NULL. The _errno variants append ": strerror(errno)". */
#define pr_log(lvl, id, ...)                                                   \
	do {                                                                   \
		if (pr_log_enabled(lvl))                                       \
			pr_log_write((lvl), (id), 0, __VA_ARGS__);             \
	} while (0)
#define pr_log_errno(lvl, id, ...)                                             \
	do {                                                                   \
		if (pr_log_enabled(lvl))                                       \
			pr_log_write((lvl), (id), errno ? errno : -1,          \
				     __VA_ARGS__);                             \
	} while (0)

#define pr_err(...)   pr_log(PR_LOG_ERROR, NULL, __VA_ARGS__)
#define pr_warn(...)  pr_log(PR_LOG_WARN, NULL, __VA_ARGS__)
#define pr_info(...)  pr_log(PR_LOG_INFO, NULL, __VA_ARGS__)
#define pr_debug(...) pr_log(PR_LOG_DEBUG, NULL, __VA_ARGS__)

/* Copy the first 8 characters of a device token plus "…" into out. */
const char *pr_log_redact_token(const char *token, char *out, size_t outlen);

#endif

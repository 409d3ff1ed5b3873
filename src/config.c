/*
 * config.c - the directive table and everything it drives: the defaults,
 * loading an INI file over them (every problem collected with its file,
 * line and key), the cross-field checks, reload on SIGHUP and the example
 * config. A directive is declared once, in `directives` below; apart from
 * the cross checks nothing else in this file names a particular setting.
 *
 * inih does the INI syntax, but it reads through our own line reader: inih
 * is built without line numbers in its handler and silently splits lines
 * longer than its buffer, so the reader counts lines, rejects overlong ones
 * and hands inih only lines it will accept, which lets every error be
 * reported instead of just the first.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"
#include "log.h"
#include "pushrelay.h"

#define MAX_LISTEN 16  /* listeners per list ([server] and [admin]) */
#define REASON_MAX 256 /* one reason, before file/line/key are added */
#define K 1024L
#define M (1024L * 1024L)

enum dtype {
	T_INT,
	T_SECONDS, /* integer, optional s/m/h suffix */
	T_SIZE,	   /* bytes, optional k/m/g suffix (powers of 1024) */
	T_BOOL,	   /* int field */
	T_PATH,	   /* char * field, never NULL, may be "" */
	T_MODE,	   /* octal */
	T_LEVEL,   /* int field, enum pr_log_level */
	T_TARGET,  /* char *: "stderr", "syslog" or an absolute path */
	T_LISTEN,  /* struct pr_listen_spec * plus a size_t count */
};

/* Public type names, spelled once per type for the table macros. */
#define TN_INT "integer"
#define TN_SECONDS "seconds"
#define TN_SIZE "size"
#define TN_BOOL "boolean"
#define TN_PATH "path"
#define TN_MODE "mode"
#define TN_LEVEL "level"
#define TN_TARGET "log target"
#define TN_LISTEN "listen"

enum { F_RELOAD = 1, F_REPEAT = 2 };

struct directive {
	struct pr_directive_info info; /* what pr_config_directive() shows */
	enum dtype type;
	size_t off;   /* the field in struct pr_config */
	size_t n_off; /* T_LISTEN: the count that goes with it */
	long min, max;
};

#define DIRECTIVE(sec, key, ty, field, lo, hi, dflt, flags, text)              \
	{                                                                      \
		.info = {.section = (sec),                                     \
			 .name = (key),                                        \
			 .type = TN_##ty,                                      \
			 .def = (dflt),                                        \
			 .reloadable = !!((flags)&F_RELOAD),                   \
			 .repeatable = 0,                                      \
			 .help = (text)},                                      \
		.type = T_##ty, .off = offsetof(struct pr_config, field),      \
		.n_off = 0, .min = (lo), .max = (hi),                          \
	}

/* Listen lists are repeatable and never reloadable: sockets bind once. */
#define LISTEN(sec, field, dflt, text)                                         \
	{                                                                      \
		.info = {.section = (sec),                                     \
			 .name = "listen",                                     \
			 .type = TN_LISTEN,                                    \
			 .def = (dflt),                                        \
			 .reloadable = 0,                                      \
			 .repeatable = 1,                                      \
			 .help = (text)},                                      \
		.type = T_LISTEN, .off = offsetof(struct pr_config, field),    \
		.n_off = offsetof(struct pr_config, n_##field), .min = 0,      \
		.max = MAX_LISTEN,                                             \
	}

static const struct directive directives[] = {
	LISTEN("server", listen, "127.0.0.1:8080",
	       "Address the HTTP API listens on; repeat the key for more."),
	DIRECTIVE("server", "tls_cert", PATH, tls_cert, 0, 0, "", 0,
		  "PEM certificate chain for \"tls\" listeners."),
	DIRECTIVE("server", "tls_key", PATH, tls_key, 0, 0, "", 0,
		  "PEM private key that goes with tls_cert."),
	DIRECTIVE("server", "max_connections", INT, max_connections, 1, 1000000,
		  "10000", F_RELOAD, "Most client connections open at once."),
	DIRECTIVE("server", "max_header_bytes", SIZE, max_header_bytes, 1 * K,
		  1 * M, "16k", F_RELOAD,
		  "Largest request line plus header block, in bytes."),
	DIRECTIVE("server", "max_headers", INT, max_headers, 8, 1000, "100",
		  F_RELOAD, "Most header fields in one request."),
	DIRECTIVE("server", "max_body_bytes", SIZE, max_body_bytes, 1 * K,
		  64 * M, "1m", F_RELOAD, "Largest request body, in bytes."),
	DIRECTIVE("server", "max_streams", INT, max_streams, 1, 1000, "100",
		  F_RELOAD, "HTTP/2 concurrent streams per connection."),
	DIRECTIVE("server", "output_buffer_bytes", SIZE, output_buffer_bytes,
		  64 * K, 256 * M, "4m", F_RELOAD,
		  "Unsent response bytes a connection may hold."),
	DIRECTIVE("server", "header_timeout", SECONDS, header_timeout, 1, 300,
		  "10", F_RELOAD,
		  "Time a client has to send the request headers."),
	DIRECTIVE("server", "body_timeout", SECONDS, body_timeout, 1, 600, "30",
		  F_RELOAD, "Time a client has to send the request body."),
	DIRECTIVE("server", "idle_timeout", SECONDS, idle_timeout, 1, 3600,
		  "60", F_RELOAD,
		  "Time an idle keep-alive connection is kept open."),
	DIRECTIVE("server", "drain_timeout", SECONDS, drain_timeout, 0, 600,
		  "10", F_RELOAD,
		  "Time open requests get to finish on SIGTERM or SIGINT."),

	LISTEN("admin", admin_listen, "unix:/var/lib/pushrelay/admin.sock",
	       "Address of the admin API (pushrelayctl); repeatable."),
	DIRECTIVE("admin", "socket_mode", MODE, admin_socket_mode, 0, 0777,
		  "0600", 0, "File mode of admin unix sockets."),

	DIRECTIVE("log", "level", LEVEL, log_level, 0, 0, "info", F_RELOAD,
		  "Least severe level that is logged."),
	DIRECTIVE("log", "target", TARGET, log_target, 0, 0, "stderr", F_RELOAD,
		  "Where log lines go; a file is reopened on SIGHUP."),
	DIRECTIVE("log", "access", BOOL, log_access, 0, 0, "no", F_RELOAD,
		  "Log one line per HTTP request."),
};

#define N_DIRECTIVES PR_ARRAY_SIZE(directives)

/* ---- bounded message lists (the err and note buffers) ------------------ */

/*
 * Messages in a caller's buffer, one per line: separated by '\n', with no
 * newline after the last, so the text can go into a log line as is. Once
 * the buffer is full, "..." ends it and later messages are only counted.
 */
struct msgs {
	char *buf;
	size_t cap;
	size_t len;
	int count;
	int full;
};

static void msgs_init(struct msgs *m, char *buf, size_t cap)
{
	m->buf = buf && cap ? buf : NULL;
	m->cap = m->buf ? cap : 0;
	m->len = 0;
	m->count = 0;
	m->full = 0;
	if (m->buf)
		m->buf[0] = '\0';
}

static void msgs_add(struct msgs *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void msgs_add(struct msgs *m, const char *fmt, ...)
{
	static const char more[] = "...";
	char line[512], *msg;
	size_t n, room;
	va_list ap;
	int w;

	m->count++;
	if (!m->buf || m->full)
		return;
	line[0] = '\n';
	va_start(ap, fmt);
	w = vsnprintf(line + 1, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	msg = m->len ? line : line + 1;
	n = strlen(msg);
	room = m->cap - m->len; /* counts the terminator's byte */
	if (n < room) {
		memcpy(m->buf + m->len, msg, n + 1);
		m->len += n;
		return;
	}
	/* Keep what fits of this message, then mark the cut. */
	m->full = 1;
	if (room < sizeof(more))
		return;
	n = room - sizeof(more);
	memcpy(m->buf + m->len, msg, n);
	memcpy(m->buf + m->len + n, more, sizeof(more));
	m->len += n + sizeof(more) - 1;
}

static void reason(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reason(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* ---- fields ------------------------------------------------------------- */

static void *field(struct pr_config *c, const struct directive *d)
{
	return (char *)c + d->off;
}

static const void *cfield(const struct pr_config *c, const struct directive *d)
{
	return (const char *)c + d->off;
}

static size_t *count_field(struct pr_config *c, const struct directive *d)
{
	return (size_t *)(void *)((char *)c + d->n_off);
}

static size_t ccount(const struct pr_config *c, const struct directive *d)
{
	return *(const size_t *)(const void *)((const char *)c + d->n_off);
}

static void listen_list_clear(struct pr_config *c, const struct directive *d)
{
	struct pr_listen_spec **v = field(c, d);
	size_t *n = count_field(c, d);

	for (size_t i = 0; i < *n; i++)
		free((*v)[i].text);
	free(*v);
	*v = NULL;
	*n = 0;
}

/* Replace a string field with a copy of s. */
static int set_string(char **slot, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return PR_ERR_NOMEM;
	free(*slot);
	*slot = copy;
	return PR_OK;
}

/* ---- value parsers ------------------------------------------------------ */

/* A number as the table shows it: sizes with a suffix, modes in octal. */
static void fmt_num(const struct directive *d, long v, char *out, size_t len)
{
	if (d->type == T_MODE)
		snprintf(out, len, "%04lo", (unsigned long)v);
	else if (d->type == T_SIZE && v && v % (1024 * M) == 0)
		snprintf(out, len, "%ldg", v / (1024 * M));
	else if (d->type == T_SIZE && v && v % M == 0)
		snprintf(out, len, "%ldm", v / M);
	else if (d->type == T_SIZE && v && v % K == 0)
		snprintf(out, len, "%ldk", v / K);
	else
		snprintf(out, len, "%ld", v);
}

static int suffix_mult(const struct directive *d, const char *sfx, long *mult,
		       char *why, size_t whylen)
{
	*mult = 1;
	if (!*sfx)
		return PR_OK;
	if (!isalpha((unsigned char)*sfx))
		goto not_number;
	if (d->type == T_SIZE && !sfx[1]) {
		switch (tolower((unsigned char)*sfx)) {
		case 'k':
			*mult = K;
			return PR_OK;
		case 'm':
			*mult = M;
			return PR_OK;
		case 'g':
			*mult = 1024 * M;
			return PR_OK;
		}
	}
	if (d->type == T_SECONDS && !sfx[1]) {
		switch (tolower((unsigned char)*sfx)) {
		case 's':
			return PR_OK;
		case 'm':
			*mult = 60;
			return PR_OK;
		case 'h':
			*mult = 3600;
			return PR_OK;
		}
	}
	if (d->type == T_SIZE) {
		reason(why, whylen, "bad size suffix '%s' (k, m or g)", sfx);
		return PR_ERR_CONFIG;
	}
	if (d->type == T_SECONDS) {
		reason(why, whylen, "bad time suffix '%s' (s, m or h)", sfx);
		return PR_ERR_CONFIG;
	}
not_number:
	reason(why, whylen,
	       d->type == T_MODE ? "not an octal number" : "not a number");
	return PR_ERR_CONFIG;
}

static int parse_number(const struct directive *d, const char *s, long *out,
			char *why, size_t whylen)
{
	char lo[32], hi[32];
	long v, mult;
	char *end;
	int rv;

	if (!isdigit((unsigned char)*s) && *s != '-') {
		reason(why, whylen,
		       d->type == T_MODE ? "not an octal number"
					 : "not a number");
		return PR_ERR_CONFIG;
	}
	errno = 0;
	v = strtol(s, &end, d->type == T_MODE ? 8 : 10);
	if (end == s) {
		reason(why, whylen, "not a number");
		return PR_ERR_CONFIG;
	}
	rv = suffix_mult(d, end, &mult, why, whylen);
	if (rv)
		return rv;
	if (errno == ERANGE || v > LONG_MAX / mult || v < LONG_MIN / mult)
		goto range;
	v *= mult;
	if (v < d->min || v > d->max)
		goto range;
	*out = v;
	return PR_OK;
range:
	fmt_num(d, d->min, lo, sizeof(lo));
	fmt_num(d, d->max, hi, sizeof(hi));
	reason(why, whylen, "out of range %s..%s", lo, hi);
	return PR_ERR_CONFIG;
}

static int parse_bool(const char *s, int *out, char *why, size_t whylen)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < PR_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return PR_OK;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return PR_OK;
		}
	}
	reason(why, whylen, "not a boolean '%s' (yes|no|true|false|on|off|1|0)",
	       s);
	return PR_ERR_CONFIG;
}

static int parse_flags(const char *s, struct pr_listen_spec *spec, char *err,
		       size_t errlen)
{
	size_t n;

	for (;;) {
		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			return PR_OK;
		n = strcspn(s, " \t");
		if (n == 3 && strncmp(s, "tls", 3) == 0) {
			spec->tls = 1;
		} else {
			reason(err, errlen, "unknown flag '%.*s' (only 'tls')",
			       (int)n, s);
			return PR_ERR_CONFIG;
		}
		s += n;
	}
}

static int parse_unix(const char *path, struct pr_listen_spec *spec, char *err,
		      size_t errlen)
{
	size_t n = strlen(path);

	if (!n) {
		reason(err, errlen, "missing socket path after 'unix:'");
		return PR_ERR_CONFIG;
	}
	if (path[0] != '/') {
		reason(err, errlen, "unix socket path '%s' is not absolute",
		       path);
		return PR_ERR_CONFIG;
	}
	if (n >= sizeof(spec->path)) {
		reason(err, errlen,
		       "unix socket path too long (%zu bytes, at most %zu)", n,
		       sizeof(spec->path) - 1);
		return PR_ERR_CONFIG;
	}
	memcpy(spec->path, path, n + 1);
	spec->family = AF_UNIX;
	return PR_OK;
}

static int has_alpha(const char *s)
{
	for (; *s; s++)
		if (isalpha((unsigned char)*s))
			return 1;
	return 0;
}

static int parse_port(const char *s, int *port, char *err, size_t errlen)
{
	long v = 0;
	size_t i;

	for (i = 0; s[i] && i < 6; i++) {
		if (!isdigit((unsigned char)s[i]))
			break;
		v = v * 10 + (s[i] - '0');
	}
	if (!*s || s[i] || v > 65535) {
		reason(err, errlen, "bad port '%s' (0..65535)", s);
		return PR_ERR_CONFIG;
	}
	*port = (int)v;
	return PR_OK;
}

static int parse_inet(const char *addr, struct pr_listen_spec *spec, char *err,
		      size_t errlen)
{
	unsigned char bin[sizeof(struct in6_addr)];
	const char *host, *port, *p;
	char hbuf[INET6_ADDRSTRLEN + 1];
	size_t hlen;
	int family;

	if (addr[0] == '[') {
		p = strchr(addr, ']');
		if (!p) {
			reason(err, errlen, "missing ']' after IPv6 address");
			return PR_ERR_CONFIG;
		}
		if (p[1] != ':') {
			reason(err, errlen,
			       p[1] ? "expected ':' after ']'"
				    : "missing port (expected "
				      "[IPV6]:PORT)");
			return PR_ERR_CONFIG;
		}
		family = AF_INET6;
		host = addr + 1;
		hlen = (size_t)(p - host);
		port = p + 2;
	} else {
		p = strchr(addr, ':');
		if (!p) {
			reason(err, errlen,
			       "missing port (expected HOST:PORT)");
			return PR_ERR_CONFIG;
		}
		if (strchr(p + 1, ':')) {
			reason(err, errlen,
			       "an IPv6 address needs brackets, "
			       "as in [::1]:8080");
			return PR_ERR_CONFIG;
		}
		family = AF_INET;
		host = addr;
		hlen = (size_t)(p - addr);
		port = p + 1;
	}
	if (!hlen) {
		reason(err, errlen,
		       "missing address (0.0.0.0 or [::] for all)");
		return PR_ERR_CONFIG;
	}
	if (hlen >= sizeof(hbuf)) {
		reason(err, errlen, "address too long");
		return PR_ERR_CONFIG;
	}
	memcpy(hbuf, host, hlen);
	hbuf[hlen] = '\0';
	if (inet_pton(family, hbuf, bin) != 1) {
		if (family == AF_INET && has_alpha(hbuf))
			reason(err, errlen,
			       "'%s' is not a numeric IP address (host names "
			       "are not resolved)",
			       hbuf);
		else
			reason(err, errlen, "bad IPv%d address '%s'",
			       family == AF_INET ? 4 : 6, hbuf);
		return PR_ERR_CONFIG;
	}
	if (parse_port(port, &spec->port, err, errlen))
		return PR_ERR_CONFIG;
	/* Canonical text, so "[::0]" and "[::]" compare equal. */
	if (!inet_ntop(family, bin, spec->host, sizeof(spec->host))) {
		reason(err, errlen, "bad address '%s'", hbuf);
		return PR_ERR_CONFIG;
	}
	spec->family = family;
	return PR_OK;
}

/*
 * Listen values: "ADDR [tls]" with ADDR one of "A.B.C.D:PORT",
 * "[IPV6]:PORT" or "unix:/ABSOLUTE/PATH". "tls" is allowed on unix sockets
 * too (a TLS-terminating proxy may well sit behind one). spec->text is
 * malloc'd: the caller frees it.
 */
int pr_config_parse_listen(const char *text, struct pr_listen_spec *spec,
			   char *err, size_t errlen)
{
	char addr[256];
	size_t n;
	int rv;

	memset(spec, 0, sizeof(*spec));
	reason(err, errlen, "%s", "");
	while (isspace((unsigned char)*text))
		text++;
	n = strcspn(text, " \t");
	if (!n) {
		reason(err, errlen, "empty value");
		return PR_ERR_CONFIG;
	}
	if (n >= sizeof(addr)) {
		reason(err, errlen, "address too long");
		return PR_ERR_CONFIG;
	}
	memcpy(addr, text, n);
	addr[n] = '\0';
	rv = parse_flags(text + n, spec, err, errlen);
	if (rv)
		goto out;
	if (strncmp(addr, "unix:", 5) == 0)
		rv = parse_unix(addr + 5, spec, err, errlen);
	else
		rv = parse_inet(addr, spec, err, errlen);
	if (rv)
		goto out;
	spec->text = strdup(text);
	if (!spec->text)
		rv = PR_ERR_NOMEM;
out:
	if (rv)
		memset(spec, 0, sizeof(*spec));
	return rv;
}

static int add_listen(struct pr_config *c, const struct directive *d,
		      const char *value, char *why, size_t whylen)
{
	struct pr_listen_spec **v = field(c, d);
	size_t *n = count_field(c, d);
	struct pr_listen_spec spec, *grown;
	int rv;

	if (*n >= (size_t)d->max) {
		reason(why, whylen, "too many listeners (at most %ld)", d->max);
		return PR_ERR_CONFIG;
	}
	rv = pr_config_parse_listen(value, &spec, why, whylen);
	if (rv)
		return rv;
	grown = realloc(*v, (*n + 1) * sizeof(**v));
	if (!grown) {
		free(spec.text);
		return PR_ERR_NOMEM;
	}
	grown[*n] = spec;
	*v = grown;
	(*n)++;
	return PR_OK;
}

/*
 * Parse value for d into c; a repeatable directive appends. On failure c
 * is unchanged and why says what is wrong with the value.
 */
static int set_value(struct pr_config *c, const struct directive *d,
		     const char *value, char *why, size_t whylen)
{
	long num;
	int i, rv;

	switch (d->type) {
	case T_INT:
	case T_SECONDS:
	case T_SIZE:
	case T_MODE:
		if (!*value) {
			reason(why, whylen, "empty value");
			return PR_ERR_CONFIG;
		}
		rv = parse_number(d, value, &num, why, whylen);
		if (!rv)
			*(long *)field(c, d) = num;
		return rv;
	case T_BOOL:
		rv = parse_bool(value, &i, why, whylen);
		if (!rv)
			*(int *)field(c, d) = i;
		return rv;
	case T_LEVEL:
		i = pr_log_level_parse(value);
		if (i < 0) {
			reason(why, whylen,
			       "unknown level '%s' (error|warn|info|debug)",
			       value);
			return PR_ERR_CONFIG;
		}
		*(int *)field(c, d) = i;
		return PR_OK;
	case T_TARGET:
		if (strcmp(value, "stderr") != 0 &&
		    strcmp(value, "syslog") != 0 && value[0] != '/') {
			reason(why, whylen,
			       "'%s' is not stderr, syslog or an "
			       "absolute file path",
			       value);
			return PR_ERR_CONFIG;
		}
		/* fall through */
	case T_PATH:
		if (strlen(value) >= PATH_MAX) {
			reason(why, whylen, "path too long");
			return PR_ERR_CONFIG;
		}
		return set_string(field(c, d), value);
	case T_LISTEN:
		return add_listen(c, d, value, why, whylen);
	}
	reason(why, whylen, "unknown directive type");
	return PR_ERR_CONFIG;
}

/* ---- lifecycle ---------------------------------------------------------- */

struct pr_config *pr_config_new(void)
{
	struct pr_config *cfg = calloc(1, sizeof(*cfg));
	char why[REASON_MAX];

	if (!cfg)
		return NULL;
	/* Defaults go through the parser, so a bad one cannot hide. */
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		if (set_value(cfg, &directives[i], directives[i].info.def, why,
			      sizeof(why))) {
			pr_config_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

void pr_config_free(struct pr_config *cfg)
{
	const struct directive *d;

	if (!cfg)
		return;
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		d = &directives[i];
		if (d->type == T_PATH || d->type == T_TARGET)
			free(*(char **)field(cfg, d));
		else if (d->type == T_LISTEN)
			listen_list_clear(cfg, d);
	}
	free(cfg->path);
	free(cfg);
}

const struct pr_directive_info *pr_config_directive(size_t i)
{
	return i < N_DIRECTIVES ? &directives[i].info : NULL;
}

/* ---- loading ------------------------------------------------------------ */

enum sec_state { SEC_NONE, SEC_KNOWN, SEC_UNKNOWN };

struct parse {
	FILE *fp;
	const char *path;
	struct pr_config *cfg;
	int lineno;
	enum sec_state sec;
	int seen[N_DIRECTIVES]; /* line of the first occurrence, or 0 */
	int nomem;
	struct msgs errs;
};

static int section_known(const char *name)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++)
		if (strcmp(directives[i].info.section, name) == 0)
			return 1;
	return 0;
}

/* "server|admin|log", from the table. */
static void section_list(char *out, size_t len)
{
	const char *prev = NULL;
	size_t n = 0;
	int w;

	out[0] = '\0';
	for (size_t i = 0; i < N_DIRECTIVES && n < len; i++) {
		if (prev && strcmp(prev, directives[i].info.section) == 0)
			continue;
		prev = directives[i].info.section;
		w = snprintf(out + n, len - n, "%s%s", n ? "|" : "", prev);
		n += w > 0 ? (size_t)w : 0;
	}
}

/* inih's scan: stop at a char of `chars` or at a ';' after whitespace. */
static const char *find_or_comment(const char *s, const char *chars)
{
	int was_space = 0;

	while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

/*
 * Strip leading whitespace (so inih never takes an indented line for a
 * continuation of the previous value), follow section headers, and blank
 * out any line inih would reject, reporting it here with its number.
 */
static void check_line(struct parse *p, char *line)
{
	char names[64], name[256], *s = line;
	const char *e;
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	if (s != line)
		memmove(line, s, strlen(s) + 1);
	if (!line[0] || line[0] == ';' || line[0] == '#')
		return;
	if (line[0] == '[') {
		e = find_or_comment(line + 1, "]");
		if (*e != ']') {
			msgs_add(&p->errs,
				 "%s:%d: missing ']' in section header",
				 p->path, p->lineno);
			p->sec = SEC_UNKNOWN;
			line[0] = '\0';
			return;
		}
		n = (size_t)(e - line - 1);
		snprintf(name, sizeof(name), "%.*s", (int)n, line + 1);
		e++;
		while (isspace((unsigned char)*e))
			e++;
		if (*e && *e != ';' && *e != '#')
			msgs_add(&p->errs, "%s:%d: unexpected text after ']'",
				 p->path, p->lineno);
		p->sec = section_known(name) ? SEC_KNOWN : SEC_UNKNOWN;
		if (p->sec == SEC_UNKNOWN) {
			section_list(names, sizeof(names));
			msgs_add(&p->errs, "%s:%d: [%s]: unknown section (%s)",
				 p->path, p->lineno, name, names);
		}
		return;
	}
	e = find_or_comment(line, "=:");
	if (*e != '=' && *e != ':') {
		msgs_add(&p->errs,
			 "%s:%d: syntax error: expected 'key = value'", p->path,
			 p->lineno);
		line[0] = '\0';
		return;
	}
	if (e == line) {
		msgs_add(&p->errs,
			 "%s:%d: syntax error: missing key before '%c'",
			 p->path, p->lineno, *e);
		line[0] = '\0';
	}
}

/*
 * inih's fgets: one whole line per call (num - 1 bytes at most, without
 * the line end), the rest of an overlong line consumed and the line
 * reported and handed over blank so numbering stays right.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	size_t max, n = 0, total = 0;
	int c, last = 0, nul = 0;

	if (num < 2)
		return NULL;
	max = (size_t)num - 1;
	c = getc(p->fp);
	if (c == EOF)
		return NULL;
	for (; c != EOF && c != '\n'; c = getc(p->fp)) {
		if (c == '\0')
			nul = 1;
		if (n < max)
			str[n++] = (char)c;
		total++;
		last = c;
	}
	if (last == '\r') {
		total--;
		if (n > total)
			n = total;
	}
	str[n] = '\0';
	p->lineno++;
	if (p->lineno == 1 && n >= 3 && memcmp(str, "\xEF\xBB\xBF", 3) == 0) {
		memmove(str, str + 3, n - 2);
		n -= 3;
		total -= 3;
	}
	if (total > max) {
		msgs_add(&p->errs,
			 "%s:%d: line too long (%zu bytes, at most %zu)",
			 p->path, p->lineno, total, max);
		str[0] = '\0';
	} else if (nul) {
		msgs_add(&p->errs, "%s:%d: NUL byte in line", p->path,
			 p->lineno);
		str[0] = '\0';
	} else {
		check_line(p, str);
	}
	return str;
}

static int find_directive(const char *section, const char *name)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++)
		if (strcmp(directives[i].info.section, section) == 0 &&
		    strcmp(directives[i].info.name, name) == 0)
			return (int)i;
	return -1;
}

static void unknown_key(struct parse *p, const char *section, const char *name)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		if (strcmp(directives[i].info.name, name) == 0) {
			msgs_add(&p->errs,
				 "%s:%d: [%s] %s: unknown key (it belongs in "
				 "[%s])",
				 p->path, p->lineno, section, name,
				 directives[i].info.section);
			return;
		}
	}
	msgs_add(&p->errs, "%s:%d: [%s] %s: unknown key", p->path, p->lineno,
		 section, name);
}

/* inih calls this for each key; errors are collected, parsing goes on. */
static int handle_key(void *user, const char *section, const char *name,
		      const char *value)
{
	struct parse *p = user;
	const struct directive *d;
	char why[REASON_MAX];
	int i, rv;

	if (p->sec == SEC_UNKNOWN)
		return 1; /* reported once, at the section header */
	if (p->sec == SEC_NONE) {
		msgs_add(&p->errs, "%s:%d: %s: key before any [section]",
			 p->path, p->lineno, name);
		return 1;
	}
	i = find_directive(section, name);
	if (i < 0) {
		unknown_key(p, section, name);
		return 1;
	}
	d = &directives[i];
	if (p->seen[i] && !d->info.repeatable) {
		msgs_add(&p->errs,
			 "%s:%d: [%s] %s: duplicate key (first set on line %d)",
			 p->path, p->lineno, section, name, p->seen[i]);
		return 1;
	}
	/* A repeatable key's first occurrence replaces the default list. */
	if (!p->seen[i] && d->type == T_LISTEN)
		listen_list_clear(p->cfg, d);
	if (!p->seen[i])
		p->seen[i] = p->lineno;
	rv = set_value(p->cfg, d, value, why, sizeof(why));
	if (rv == PR_ERR_NOMEM)
		p->nomem = 1;
	else if (rv)
		msgs_add(&p->errs, "%s:%d: [%s] %s: %s", p->path, p->lineno,
			 section, name, why);
	return 1;
}

static int listen_same_address(const struct pr_listen_spec *a,
			       const struct pr_listen_spec *b)
{
	if (a->family != b->family)
		return 0;
	if (a->family == AF_UNIX)
		return strcmp(a->path, b->path) == 0;
	return a->port && a->port == b->port && strcmp(a->host, b->host) == 0;
}

static const struct directive *directive_of(const char *section,
					    const char *name)
{
	int i = find_directive(section, name);

	return i < 0 ? NULL : &directives[i];
}

/* Settings that are fine alone but not together. */
static void cross_check(struct parse *p, const struct pr_config *c)
{
	const struct directive *lists[] = {directive_of("server", "listen"),
					   directive_of("admin", "listen")};
	const struct pr_listen_spec *a, *b;
	size_t na, nb;
	int need_tls = 0;

	for (size_t l = 0; l < PR_ARRAY_SIZE(lists); l++) {
		a = *(struct pr_listen_spec *const *)cfield(c, lists[l]);
		na = ccount(c, lists[l]);
		for (size_t i = 0; i < na && !need_tls; i++) {
			if (!a[i].tls)
				continue;
			need_tls = 1;
			if (!c->tls_cert[0])
				msgs_add(&p->errs,
					 "%s: [server] tls_cert: required by "
					 "the tls listener '%s'",
					 p->path, a[i].text);
			if (!c->tls_key[0])
				msgs_add(&p->errs,
					 "%s: [server] tls_key: required by "
					 "the tls listener '%s'",
					 p->path, a[i].text);
		}
	}
	if (!need_tls && c->tls_cert[0] && !c->tls_key[0])
		msgs_add(&p->errs,
			 "%s: [server] tls_key: required with tls_cert",
			 p->path);
	if (!need_tls && c->tls_key[0] && !c->tls_cert[0])
		msgs_add(&p->errs,
			 "%s: [server] tls_cert: required with tls_key",
			 p->path);

	/* Two listeners on one address would fail only at bind time. */
	for (size_t l = 0; l < PR_ARRAY_SIZE(lists); l++) {
		a = *(struct pr_listen_spec *const *)cfield(c, lists[l]);
		na = ccount(c, lists[l]);
		for (size_t i = 0; i < na; i++) {
			for (size_t m = 0; m <= l; m++) {
				b = *(struct pr_listen_spec *const *)cfield(
					c, lists[m]);
				nb = m == l ? i : ccount(c, lists[m]);
				for (size_t j = 0; j < nb; j++) {
					if (!listen_same_address(&a[i], &b[j]))
						continue;
					msgs_add(&p->errs,
						 "%s: [%s] listen: '%s' uses "
						 "the address of [%s] listen "
						 "'%s'",
						 p->path,
						 lists[l]->info.section,
						 a[i].text,
						 lists[m]->info.section,
						 b[j].text);
				}
			}
		}
	}
}

int pr_config_load(const char *path, struct pr_config **out, char *err,
		   size_t errlen)
{
	struct parse p;
	FILE *fp = NULL;
	int rv;

	memset(&p, 0, sizeof(p));
	msgs_init(&p.errs, err, errlen);
	p.path = path;
	*out = NULL;
	p.cfg = pr_config_new();
	if (!p.cfg) {
		rv = PR_ERR_NOMEM;
		goto out;
	}
	p.cfg->path = strdup(path);
	if (!p.cfg->path) {
		rv = PR_ERR_NOMEM;
		goto out;
	}
	fp = fopen(path, "re");
	if (!fp) {
		msgs_add(&p.errs, "%s: cannot open: %s", path, strerror(errno));
		rv = PR_ERR_IO;
		goto out;
	}
	p.fp = fp;
	errno = 0;
	rv = ini_parse_stream(read_line, &p, handle_key, &p);
	if (ferror(fp)) {
		msgs_add(&p.errs, "%s: read error: %s", path,
			 strerror(errno ? errno : EIO));
		rv = PR_ERR_IO;
		goto out;
	}
	if (rv == -2 || p.nomem) {
		rv = PR_ERR_NOMEM;
		goto out;
	}
	/* check_line blanks what inih rejects; this is a safety net. */
	if (rv > 0 && !p.errs.count)
		msgs_add(&p.errs, "%s:%d: syntax error", path, rv);
	cross_check(&p, p.cfg);
	rv = p.errs.count ? PR_ERR_CONFIG : PR_OK;
out:
	if (fp)
		fclose(fp);
	if (rv == PR_ERR_NOMEM && !p.errs.count)
		msgs_add(&p.errs, "%s: out of memory", path);
	if (rv) {
		pr_config_free(p.cfg);
		return rv;
	}
	*out = p.cfg;
	return PR_OK;
}

/* ---- reload ------------------------------------------------------------- */

static int listen_equal(const struct pr_listen_spec *a, size_t na,
			const struct pr_listen_spec *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (a[i].family != b[i].family || a[i].port != b[i].port ||
		    a[i].tls != b[i].tls || strcmp(a[i].host, b[i].host) ||
		    strcmp(a[i].path, b[i].path))
			return 0;
	return 1;
}

static int field_equal(const struct directive *d, const struct pr_config *a,
		       const struct pr_config *b)
{
	switch (d->type) {
	case T_INT:
	case T_SECONDS:
	case T_SIZE:
	case T_MODE:
		return *(const long *)cfield(a, d) ==
		       *(const long *)cfield(b, d);
	case T_BOOL:
	case T_LEVEL:
		return *(const int *)cfield(a, d) == *(const int *)cfield(b, d);
	case T_PATH:
	case T_TARGET:
		return strcmp(*(char *const *)cfield(a, d),
			      *(char *const *)cfield(b, d)) == 0;
	case T_LISTEN:
		return listen_equal(
			*(struct pr_listen_spec *const *)cfield(a, d),
			ccount(a, d),
			*(struct pr_listen_spec *const *)cfield(b, d),
			ccount(b, d));
	}
	return 0;
}

static int copy_field(const struct directive *d, struct pr_config *dst,
		      const struct pr_config *src)
{
	switch (d->type) {
	case T_INT:
	case T_SECONDS:
	case T_SIZE:
	case T_MODE:
		*(long *)field(dst, d) = *(const long *)cfield(src, d);
		return PR_OK;
	case T_BOOL:
	case T_LEVEL:
		*(int *)field(dst, d) = *(const int *)cfield(src, d);
		return PR_OK;
	case T_PATH:
	case T_TARGET:
		return set_string(field(dst, d),
				  *(char *const *)cfield(src, d));
	case T_LISTEN:
		break; /* never reloadable: listeners are bound once */
	}
	return PR_ERR_INVAL;
}

int pr_config_apply_reload(struct pr_config *live,
			   const struct pr_config *fresh, char *note,
			   size_t notelen)
{
	const char *path = fresh->path ? fresh->path : "config";
	const struct directive *d;
	struct msgs m;

	msgs_init(&m, note, notelen);
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		d = &directives[i];
		if (field_equal(d, live, fresh))
			continue;
		if (!d->info.reloadable)
			msgs_add(&m, "%s: [%s] %s: changed; restart to apply",
				 path, d->info.section, d->info.name);
		else if (copy_field(d, live, fresh))
			msgs_add(&m, "%s: [%s] %s: not applied (out of memory)",
				 path, d->info.section, d->info.name);
	}
	return m.count;
}

/* ---- the example config ------------------------------------------------- */

static void describe(const struct directive *d, char *out, size_t len)
{
	char lo[32], hi[32];

	fmt_num(d, d->min, lo, sizeof(lo));
	fmt_num(d, d->max, hi, sizeof(hi));
	switch (d->type) {
	case T_INT:
		snprintf(out, len, "integer, %s..%s", lo, hi);
		return;
	case T_SECONDS:
		snprintf(out, len, "seconds (or with s, m, h), %s..%s", lo, hi);
		return;
	case T_SIZE:
		snprintf(out, len, "bytes (or with k, m, g), %s..%s", lo, hi);
		return;
	case T_MODE:
		snprintf(out, len, "octal file mode, %s..%s", lo, hi);
		return;
	case T_BOOL:
		snprintf(out, len, "yes or no");
		return;
	case T_LEVEL:
		snprintf(out, len, "error, warn, info or debug");
		return;
	case T_PATH:
		snprintf(out, len, "file path, empty for none");
		return;
	case T_TARGET:
		snprintf(out, len, "stderr, syslog or an absolute file path");
		return;
	case T_LISTEN:
		snprintf(out, len,
			 "HOST:PORT, [IPV6]:PORT or unix:/PATH, optional tls "
			 "flag; repeatable, at most %ld",
			 d->max);
		return;
	}
	snprintf(out, len, "?");
}

void pr_config_write_example(FILE *fp)
{
	const struct directive *d;
	const char *section = NULL;
	char desc[160];

	fputs("; pushrelay.conf - configuration of pushrelayd(8); see "
	      "pushrelay.conf(5).\n"
	      ";\n"
	      "; Written by `pushrelayd --print-config` from the directive "
	      "table in\n"
	      "; src/config.c. Every directive is set to its default, so this "
	      "file is\n"
	      "; both the reference and a valid config (`pushrelayd -t -c "
	      "FILE`).\n"
	      "; \"reloadable\" settings take effect on SIGHUP; the others "
	      "need a restart.\n"
	      "; A repeatable key replaces its default list where it first "
	      "appears.\n",
	      fp);
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		d = &directives[i];
		if (!section || strcmp(section, d->info.section) != 0) {
			section = d->info.section;
			fprintf(fp, "\n[%s]\n", section);
		}
		describe(d, desc, sizeof(desc));
		fprintf(fp, "\n; %s\n; %s; %s\n", d->info.help, desc,
			d->info.reloadable ? "reloadable"
					   : "restart to change");
		if (d->info.def[0])
			fprintf(fp, "%s = %s\n", d->info.name, d->info.def);
		else
			fprintf(fp, "%s =\n", d->info.name);
	}
}

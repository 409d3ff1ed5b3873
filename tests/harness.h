/*
 * harness.h - helpers for the integration tests: temporary directories,
 * a throwaway TLS certificate, starting and stopping pushrelayd on
 * ephemeral loopback ports, and small HTTP clients (libcurl for real
 * protocol use, raw sockets for malformed input).
 */
#ifndef PR_HARNESS_H
#define PR_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct th_daemon {
	pid_t pid;
	int port;      /* plain HTTP/1.1 + h2c on 127.0.0.1 */
	int tls_port;  /* TLS (h2 + http/1.1 by ALPN) on 127.0.0.1 */
	int port6;     /* plain on [::1], 0 when IPv6 is unavailable */
	char dir[256]; /* temporary directory, removed by th_daemon_cleanup */
	char conf[300];
	char log[300];
	char cert[300];
	char key[300];
	char admin_sock[300];
};

/* A new temporary directory (mkdtemp) under $TMPDIR or /tmp. */
int th_tmpdir(char *out, size_t outlen);
/* Write a whole file; 0 on success. */
int th_write_file(const char *path, const char *text);
/* Read a whole file into a malloc'd NUL-terminated string, or NULL. */
char *th_read_file(const char *path);
/* A free TCP port on 127.0.0.1 (or ::1 with v6), 0 on failure. */
int th_free_port(int v6);
/* Make a self-signed P-256 certificate for localhost into two PEM files. */
int th_make_cert(const char *cert, const char *key);

/*
 * Write a config (listeners as above, the admin socket, the log file,
 * plus `extra` appended verbatim: sections to override defaults) and
 * start the daemon; waits until /healthz answers. 0 on success.
 * extra_server is placed inside [server] (may be NULL).
 */
int th_daemon_start(struct th_daemon *d, const char *extra_server,
		    const char *extra);
/* Start the daemon again on the same directory and config. */
int th_daemon_restart(struct th_daemon *d);
/* Send sig and wait up to `timeout` s. Returns the exit status, or -1. */
int th_daemon_stop(struct th_daemon *d, int sig, double timeout);
/* Record a secret for tests/check_logs.sh (see harness.c); the harness
 * already records API keys it makes and the secrets in daemon configs. */
void th_note_secret(const char *secret, size_t len);
/* Remove the temporary directory (after keeping a copy of the log). */
void th_daemon_cleanup(struct th_daemon *d);
/* Resident memory of a process in KiB (from /proc), -1 on failure. */
long th_rss_kb(pid_t pid);
/* Is the process still running? */
int th_alive(pid_t pid);

/* Result of a libcurl request. */
struct th_resp {
	long status;  /* 0 when the transfer failed */
	long version; /* CURL_HTTP_VERSION_1_1 / _2_0 as curl reports it */
	char *body;   /* malloc'd, NUL-terminated */
	size_t len;
	char *headers; /* malloc'd raw response headers */
};

enum th_mode { TH_H1 = 1, TH_H2C = 2, TH_H2TLS = 3, TH_H1TLS = 4 };

/*
 * Make one request. url is a path ("/healthz"); the daemon's port is
 * picked from mode. method "GET"/"POST"/...; body may be NULL. unix_sock
 * non-NULL sends over that socket. Returns 0 when a response arrived.
 */
int th_request(const struct th_daemon *d, enum th_mode mode, const char *method,
	       const char *path, const char *body, const char *const *headers,
	       struct th_resp *r);
void th_resp_free(struct th_resp *r);
int th_request_unix(const char *sock, const char *path, struct th_resp *r);

/* Make an API key with pushrelayctl over the daemon's admin socket;
 * copies the key into out. 0 on success. */
int th_make_key(const struct th_daemon *d, const char *name, const char *scope,
		char *out, size_t outlen);

/* Raw sockets: connect to 127.0.0.1:port (blocking, with timeouts). */
int th_connect(int port);
int th_send(int fd, const void *data, size_t len);
/* Read until EOF or `timeout` s; returns bytes read into buf (NUL-
 * terminated, truncated to cap-1); *eof set when the peer closed. */
size_t th_recv_all(int fd, char *buf, size_t cap, double timeout, int *eof);
/* Read until `needle` appears or timeout; returns bytes read. */
size_t th_recv_until(int fd, char *buf, size_t cap, const char *needle,
		     double timeout);
/* Count occurrences of needle in haystack. */
int th_count(const char *haystack, const char *needle);

struct pr_config;
struct pr_server;
struct pr_conn;
struct pr_proto;
/* A server object for in-memory tests: cfg (taken; NULL = defaults), the
 * built-in routes, no listeners. */
struct pr_server *th_mem_server(struct pr_config *cfg);
/* Everything c->out holds, as a string (then consumed). Caller frees. */
char *th_take_output(struct pr_conn *c);

/* An HS256 JWT of header and claims (JSON text) signed with secret; an
 * empty secret leaves the signature empty (for forgery tests). */
void th_jwt_hs256(char *out, size_t outlen, const char *header,
		  const char *claims, const char *secret);
/* A client token for user/device expiring exp_in seconds from now. */
void th_client_token(char *out, size_t outlen, const char *secret,
		     const char *user, const char *device, long exp_in);

/* The mock APNs/FCM server (tests/mock/pr-mock, from $PR_MOCK). */
struct th_mock {
	pid_t pid;
	int port;
	char dir[256]; /* credentials: tls.crt, AuthKey_*.p8,
			  service-account.json */
	char cert[300];
	char p8[300];
	char sa[300];
	char key_id[16];
	char team_id[16];
	char log[300];
};

/* Make credentials in dir (created by the caller) and start the mock. */
int th_mock_start(struct th_mock *m, const char *dir);
void th_mock_stop(struct th_mock *m);
/* Stop the mock (if running) and remove dir, its credentials directory,
 * unless TH_KEEP is set; dir is emptied. */
void th_mock_cleanup(struct th_mock *m, char *dir);
/* POST /mock/script with a JSON rule; 0 on 2xx. */
int th_mock_script(const struct th_mock *m, const char *rule);
/* GET /mock/requests?after=N: the parsed document, or NULL. */
void *th_mock_requests(const struct th_mock *m, long after);
/* Wait until the mock has recorded at least n sends of kind ("apns",
 * "fcm", "oauth"); returns how many it has. */
int th_mock_wait(const struct th_mock *m, const char *kind, int n,
		 double timeout);
/* The [app] lines that point an app at this mock. */
void th_mock_app_conf(const struct th_mock *m, char *out, size_t outlen);
/*
 * Start the daemon again like th_daemon_restart, with env ("NAME=value",
 * NULL-terminated; may be NULL) added to its environment and wrap (an
 * argv prefix such as an unshare command; may be NULL) before
 * "pushrelayd -c conf". wait: wait until /healthz answers (0 on success);
 * otherwise return 0 once the process is forked.
 */
int th_daemon_spawn(struct th_daemon *d, const char *const *env,
		    const char *const *wrap, int wait);
/* Start the mock again after th_mock_stop, on the same port with the same
 * credentials (rules, records and counters start empty). 0 on success. */
int th_mock_restart(struct th_mock *m);
/* GET /mock/stats: the parsed document, or NULL. */
void *th_mock_stats(const struct th_mock *m);
#endif

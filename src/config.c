/*
 * config.c - the directive table and everything it drives: the defaults,
 * loading an INI file over them (every problem collected with its file,
 * line and key), the cross-field checks, reload on SIGHUP and the example
 * config. A directive is declared once, in `directives` below; apart from
 * the cross checks nothing else in this file names a particular setting.
 *
 * Most directives set a field of struct pr_config. The [app "NAME"]
 * section can appear once per app, so its directives (section "app",
 * scope S_APP) hold offsets into struct pr_app_config instead and are
 * applied to the app whose section is open; every helper below takes the
 * base the offset is relative to.
 *
 * inih does the INI syntax, but it reads through our own line reader: inih
 * is built without line numbers in its handler and silently splits lines
 * longer than its buffer, so the reader counts lines, rejects overlong ones
 * and hands inih only lines it will accept, which lets every error be
 * reported instead of just the first. The reader also follows the section
 * headers, app names included (inih would truncate a long one).
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
#include "store.h"

#define MAX_LISTEN   16 /* listeners per list ([server] and [admin]) */
#define MAX_APPS     64 /* [app "NAME"] sections */
#define MAX_APP_NAME 64 /* bytes of an app name */
#define DEFAULT_APP  "default"
#define REASON_MAX   256  /* one reason, before file/line/key are added */
#define MAX_STRING   1024 /* bytes of a T_STRING value */
#define K	     1024L
#define M	     (1024L * 1024L)
#define G	     (1024L * M)
#define DAY	     86400L

/* The database size ceiling is 1t where a long holds it. */
#if LONG_MAX / 1024 >= G
#define HAVE_TERA   1
#define MAX_DB_SIZE (1024L * G)
#else
#define HAVE_TERA   0
#define MAX_DB_SIZE LONG_MAX
#endif

enum dtype {
	T_INT,
	T_SECONDS, /* integer, optional s/m/h/d suffix */
	T_SIZE,	   /* bytes, optional k/m/g/t suffix (powers of 1024) */
	T_BOOL,	   /* int field */
	T_PATH,	   /* char * field, never NULL, may be "" */
	T_MODE,	   /* octal */
	T_LEVEL,   /* int field, enum pr_log_level */
	T_TARGET,  /* char *: "stderr", "syslog" or an absolute path */
	T_LISTEN,  /* struct pr_listen_spec * plus a size_t count */
	T_ENUM,	   /* int field, one of the directive's choices */
	T_STRING,  /* char * field, never NULL, may be "": see enum strcheck */
};

/* Public type names, spelled once per type for the table macros. */
#define TN_INT	   "integer"
#define TN_SECONDS "seconds"
#define TN_SIZE	   "size"
#define TN_BOOL	   "boolean"
#define TN_PATH	   "path"
#define TN_MODE	   "mode"
#define TN_LEVEL   "level"
#define TN_TARGET  "log target"
#define TN_LISTEN  "listen"
#define TN_ENUM	   "choice"
#define TN_STRING  "string"

/*
 * F_NONEMPTY: a T_PATH or T_STRING that may not be "". F_SECRET: a
 * password; the example config says so. No message ever shows it: the
 * reasons a T_STRING is refused never quote the value, and reload notes
 * quote no values at all.
 */
enum { F_RELOAD = 1, F_NONEMPTY = 2, F_SECRET = 4 };

/*
 * The shape a T_STRING value must have; "" (unset) passes every check,
 * F_NONEMPTY is what forbids it. Each check has its own reason, so an
 * error says what is wanted.
 */
enum strcheck {
	CK_NONE,
	CK_KEYID,    /* an Apple key id or team id: 10 of A-Z 0-9 */
	CK_TOPIC,    /* a bundle id: 1..255 of A-Z a-z 0-9 . - */
	CK_URL,	     /* http(s)://HOST[:PORT], no path: a base URL */
	CK_URL_PATH, /* http(s)://HOST[:PORT][/PATH]: a whole URL */
};

/* What a directive's offset is relative to. */
enum scope {
	S_CONFIG, /* struct pr_config */
	S_APP,	  /* struct pr_app_config of the open [app "NAME"] */
};

/* One word a T_ENUM accepts; a list ends with a NULL name. */
struct choice {
	const char *name;
	int value;
};

static const struct choice sync_choices[] = {
    {"full", 2},
    {"normal", 1},
    {NULL, 0},
};

static const struct choice startup_check_choices[] = {
    {"quick", 1},
    {"full", 2},
    {"none", 0},
    {NULL, 0},
};

static const struct choice push_mode_choices[] = {
    {"wakeup", PR_PUSH_WAKEUP},
    {"alert", PR_PUSH_ALERT},
    {NULL, 0},
};

struct directive {
	struct pr_directive_info info; /* what pr_config_directive() shows */
	enum dtype type;
	enum scope scope;
	int flags;
	size_t off;    /* the field in the scope's struct */
	size_t n_off;  /* T_LISTEN: the count that goes with it */
	long min, max; /* T_STRING: least bytes when set, and most */
	const struct choice *choices; /* T_ENUM */
	enum strcheck check;	      /* T_STRING */
	const char *example;	      /* for the example config, or NULL */
	const char *min_why;	      /* T_STRING: why min, for its error */
};

#define ENTRY_X(sec, key, ty, scp, base, fld, lo, hi, dflt, flg, ch, ck, ex,   \
		text)                                                          \
	{                                                                      \
		.info = {.section = (sec),                                     \
			 .name = (key),                                        \
			 .type = TN_##ty,                                      \
			 .def = (dflt),                                        \
			 .reloadable = !!((flg)&F_RELOAD),                     \
			 .repeatable = 0,                                      \
			 .help = (text)},                                      \
		.type = T_##ty, .scope = (scp), .flags = (flg),                \
		.off = offsetof(base, fld), .n_off = 0, .min = (lo),           \
		.max = (hi), .choices = (ch), .check = (ck), .example = (ex),  \
	}

#define ENTRY(sec, key, ty, scp, base, fld, lo, hi, dflt, flg, ch, text)       \
	ENTRY_X(sec, key, ty, scp, base, fld, lo, hi, dflt, flg, ch, CK_NONE,  \
		NULL, text)

#define DIRECTIVE(sec, key, ty, fld, lo, hi, dflt, flg, text)                  \
	ENTRY(sec, key, ty, S_CONFIG, struct pr_config, fld, lo, hi, dflt,     \
	      flg, NULL, text)

/* A path that is empty by default, with an example for the example config. */
#define PATH_EX(sec, key, scp, base, fld, ex, text)                            \
	ENTRY_X(sec, key, PATH, scp, base, fld, 0, 0, "", 0, NULL, CK_NONE,    \
		ex, text)

#define CHOICE(sec, key, fld, ch, dflt, flg, text)                             \
	ENTRY(sec, key, ENUM, S_CONFIG, struct pr_config, fld, 0, 0, dflt,     \
	      flg, ch, text)

/* A key of every [app "NAME"] section. */
#define APP(key, ty, fld, lo, hi, dflt, flg, text)                             \
	ENTRY("app", key, ty, S_APP, struct pr_app_config, fld, lo, hi, dflt,  \
	      flg, NULL, text)

#define APP_CHOICE(key, fld, ch, dflt, flg, text)                              \
	ENTRY("app", key, ENUM, S_APP, struct pr_app_config, fld, 0, 0, dflt,  \
	      flg, ch, text)

#define APP_PATH(key, fld, ex, text)                                           \
	PATH_EX("app", key, S_APP, struct pr_app_config, fld, ex, text)

/* A T_STRING of every [app] section, checked by ck, at most MAX_STRING. */
#define APP_STRING(key, fld, ck, dflt, flg, ex, text)                          \
	ENTRY_X("app", key, STRING, S_APP, struct pr_app_config, fld, 0,       \
		MAX_STRING, dflt, flg, NULL, ck, ex, text)

/*
 * A secret of every [app] section: never echoed, at least `least` bytes
 * when set (why says why, in the error), at most MAX_STRING.
 */
#define APP_SECRET(key, fld, least, why, ex, text)                             \
	{                                                                      \
		.info = {.section = "app",                                     \
			 .name = (key),                                        \
			 .type = TN_STRING,                                    \
			 .def = "",                                            \
			 .reloadable = 0,                                      \
			 .repeatable = 0,                                      \
			 .help = (text)},                                      \
		.type = T_STRING, .scope = S_APP, .flags = F_SECRET,           \
		.off = offsetof(struct pr_app_config, fld), .n_off = 0,        \
		.min = (least), .max = MAX_STRING, .choices = NULL,            \
		.check = CK_NONE, .example = (ex), .min_why = (why),           \
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
		.type = T_LISTEN, .scope = S_CONFIG, .flags = 0,               \
		.off = offsetof(struct pr_config, field),                      \
		.n_off = offsetof(struct pr_config, n_##field), .min = 0,      \
		.max = MAX_LISTEN, .choices = NULL,                            \
	}

/*
 * The order is the order of the example config and of pushrelay.conf(5);
 * a section's directives stay together.
 */
static const struct directive directives[] = {
    LISTEN("server", listen, "127.0.0.1:8080",
	   "Address the HTTP API listens on; repeat the key for more."),
    PATH_EX("server", "tls_cert", S_CONFIG, struct pr_config, tls_cert,
	    "/etc/pushrelay/tls.crt",
	    "PEM certificate chain for \"tls\" listeners."),
    PATH_EX("server", "tls_key", S_CONFIG, struct pr_config, tls_key,
	    "/etc/pushrelay/tls.key",
	    "PEM private key that goes with tls_cert."),
    DIRECTIVE("server", "max_connections", INT, max_connections, 1, 1000000,
	      "10000", F_RELOAD, "Most client connections open at once."),
    DIRECTIVE("server", "max_header_bytes", SIZE, max_header_bytes, 1 * K,
	      1 * M, "16k", F_RELOAD,
	      "Largest request line plus header block, in bytes."),
    DIRECTIVE("server", "max_headers", INT, max_headers, 8, 1000, "100",
	      F_RELOAD, "Most header fields in one request."),
    DIRECTIVE("server", "max_body_bytes", SIZE, max_body_bytes, 1 * K, 64 * M,
	      "1m", F_RELOAD, "Largest request body, in bytes."),
    DIRECTIVE("server", "max_streams", INT, max_streams, 1, 1000, "100",
	      F_RELOAD, "HTTP/2 concurrent streams per connection."),
    DIRECTIVE("server", "output_buffer_bytes", SIZE, output_buffer_bytes,
	      64 * K, 256 * M, "4m", F_RELOAD,
	      "Unsent response bytes a connection may hold."),
    DIRECTIVE("server", "header_timeout", SECONDS, header_timeout, 1, 300, "10",
	      F_RELOAD, "Time a client has to send the request headers."),
    DIRECTIVE("server", "body_timeout", SECONDS, body_timeout, 1, 600, "30",
	      F_RELOAD, "Time a client has to send the request body."),
    DIRECTIVE("server", "idle_timeout", SECONDS, idle_timeout, 1, 3600, "60",
	      F_RELOAD, "Time an idle keep-alive connection is kept open."),
    DIRECTIVE("server", "drain_timeout", SECONDS, drain_timeout, 0, 600, "10",
	      F_RELOAD,
	      "Time open requests get to finish on SIGTERM or SIGINT."),

    LISTEN("admin", admin_listen, "unix:/var/lib/pushrelay/admin.sock",
	   "Address of the admin API (pushrelayctl); repeatable."),
    DIRECTIVE("admin", "socket_mode", MODE, admin_socket_mode, 0, 0777, "0600",
	      0, "File mode of admin unix sockets."),
    DIRECTIVE("admin", "max_api_keys", INT, max_api_keys, 1, 100000, "1000", 0,
	      "Most live API keys."),

    DIRECTIVE("storage", "path", PATH, storage_path, 0, 0,
	      "/var/lib/pushrelay/pushrelay.db", F_NONEMPTY,
	      "SQLite database file; created when missing."),
    CHOICE("storage", "synchronous", storage_synchronous, sync_choices, "full",
	   0,
	   "normal is faster, but a power loss may undo the last "
	   "commits."),
    CHOICE("storage", "startup_check", storage_startup_check,
	   startup_check_choices, "quick", 0,
	   "Check the database at start-up; a damaged one stops the "
	   "daemon."),
    DIRECTIVE("storage", "busy_timeout", INT, storage_busy_timeout, 0, 60000,
	      "5000", 0, "Time to wait for a database lock, in milliseconds."),
    DIRECTIVE("storage", "commit_batch", INT, storage_commit_batch, 1, 100000,
	      "1024", 0,
	      "Most jobs committed in one transaction (group commit)."),
    DIRECTIVE("storage", "max_pending_jobs", INT, storage_max_pending_jobs, 16,
	      1000000, "65536", F_RELOAD,
	      "Most jobs waiting for the store thread; more are refused."),
    DIRECTIVE("storage", "max_messages", INT, storage_max_messages, 1,
	      1000000000, "10000000", F_RELOAD,
	      "Most messages stored at once; ingest answers 429 beyond."),
    DIRECTIVE("storage", "max_size", SIZE, storage_max_size, 0, MAX_DB_SIZE,
	      "0", F_RELOAD,
	      "Largest database file, in bytes; 0 for no limit."),
    DIRECTIVE("storage", "sweep_interval", SECONDS, storage_sweep_interval, 1,
	      DAY, "60", F_RELOAD,
	      "Time between sweeps that delete expired and old rows."),
    DIRECTIVE("storage", "sweep_batch", INT, storage_sweep_batch, 100, 1000000,
	      "5000", F_RELOAD, "Most rows one slice of a sweep deletes."),
    DIRECTIVE("storage", "checkpoint_interval", SECONDS,
	      storage_checkpoint_interval, 1, DAY, "300", F_RELOAD,
	      "Time between checkpoints of the write-ahead log."),
    DIRECTIVE("storage", "history", SECONDS, storage_history, 0, 365 * DAY,
	      "1d", F_RELOAD,
	      "How long finished messages and pushes are kept for the "
	      "admin API."),

    DIRECTIVE("ingest", "max_events", INT, ingest_max_events, 1, 10000, "100",
	      F_RELOAD, "Most events in one POST /v1/events."),
    DIRECTIVE("ingest", "max_payload_bytes", SIZE, ingest_max_payload_bytes, 64,
	      1 * M, "16k", F_RELOAD,
	      "Largest payload of one event, as JSON, in bytes."),
    DIRECTIVE("ingest", "max_devices", INT, ingest_max_devices, 1, 1000, "100",
	      F_RELOAD, "Most devices one event may name."),
    DIRECTIVE("ingest", "max_id_bytes", INT, ingest_max_id_bytes, 16, 1024,
	      "256", F_RELOAD,
	      "Longest event id, user name or device id, in bytes."),

    DIRECTIVE("push", "max_in_flight", INT, push_max_in_flight, 1, 100000,
	      "1000", F_RELOAD,
	      "Most pushes waiting for a provider's answer at once, over "
	      "all providers."),
    DIRECTIVE("push", "connections", INT, push_connections, 1, 64, "2", 0,
	      "Connections to each provider endpoint."),
    DIRECTIVE("push", "max_streams", INT, push_max_streams, 1, 10000, "1000", 0,
	      "Most HTTP/2 streams used per provider connection (the "
	      "provider may allow fewer)."),
    DIRECTIVE("push", "connect_timeout", SECONDS, push_connect_timeout, 1, 120,
	      "10", F_RELOAD,
	      "Time a connection to a provider has to be set up, TLS "
	      "included."),
    DIRECTIVE("push", "request_timeout", SECONDS, push_request_timeout, 1, 600,
	      "30", F_RELOAD,
	      "Time a provider has to answer a push before it is retried."),
    DIRECTIVE("push", "max_attempts", INT, push_max_attempts, 1, 1000, "12",
	      F_RELOAD, "Most attempts at one push; then it is dead."),
    DIRECTIVE("push", "max_age", SECONDS, push_max_age, 60, 28 * DAY, "1d",
	      F_RELOAD,
	      "Age at which a push the provider has not accepted is dead."),
    DIRECTIVE("push", "backoff_base", SECONDS, push_backoff_base, 1, 3600, "2",
	      F_RELOAD,
	      "Delay before the first retry; later retries wait longer."),
    DIRECTIVE("push", "backoff_max", SECONDS, push_backoff_max, 1, DAY, "900",
	      F_RELOAD,
	      "Longest delay before a retry (Apple: retry a 5xx after 15 "
	      "minutes)."),
    DIRECTIVE("push", "coalesce_window", SECONDS, push_coalesce_window, 0, 3600,
	      "0", F_RELOAD,
	      "Time after a push to a device in which it absorbs newer "
	      "ones; 0 sends each."),
    DIRECTIVE("push", "min_interval", SECONDS, push_min_interval, 0, 3600, "0",
	      F_RELOAD,
	      "Least time between two pushes to one device; 0 for no "
	      "limit."),
    DIRECTIVE("push", "jwt_refresh", SECONDS, push_jwt_refresh, 1200, 3600,
	      "3000", F_RELOAD,
	      "Time between APNs token (JWT) refreshes; Apple wants 20 to 60 "
	      "minutes."),
    DIRECTIVE("push", "ping_interval", SECONDS, push_ping_interval, 60, DAY,
	      "3600", F_RELOAD,
	      "Idle time after which a provider connection is checked with "
	      "an HTTP/2 PING."),
    DIRECTIVE("push", "claim_batch", INT, push_claim_batch, 1, 10000, "256",
	      F_RELOAD, "Most due pushes taken from the store at once."),

    DIRECTIVE("inbox", "max_wait", SECONDS, inbox_max_wait, 0, 300, "60",
	      F_RELOAD,
	      "Longest wait= a long poll may hold; a longer one is cut to "
	      "this."),
    DIRECTIVE("inbox", "max_limit", INT, inbox_max_limit, 1, 1000, "500",
	      F_RELOAD,
	      "Most messages in one inbox answer; a larger limit= is cut "
	      "to this."),
    DIRECTIVE("inbox", "token_leeway", SECONDS, inbox_token_leeway, 0, 300,
	      "30", F_RELOAD,
	      "Clock skew allowed when checking a client token's exp and "
	      "nbf."),
    DIRECTIVE("inbox", "max_waiters", INT, inbox_max_waiters, 1, 1000000,
	      "10000", F_RELOAD,
	      "Most long polls and WebSocket streams held at once; more "
	      "get 503."),
    DIRECTIVE("inbox", "ws_ping_interval", SECONDS, ws_ping_interval, 1, 3600,
	      "30", F_RELOAD,
	      "Time between pings the relay sends on a WebSocket stream."),
    DIRECTIVE("inbox", "ws_idle_timeout", SECONDS, ws_idle_timeout, 5, DAY,
	      "120", F_RELOAD,
	      "Time a stream may stay silent before it is closed; more than "
	      "ws_ping_interval."),
    DIRECTIVE("inbox", "ws_max_message", SIZE, ws_max_message, 128, 1 * M,
	      "64k", F_RELOAD,
	      "Largest message a client may send on a stream, in bytes."),
    DIRECTIVE("inbox", "ws_max_queued", SIZE, ws_max_queued, 4 * K, 64 * M,
	      "1m", F_RELOAD,
	      "Bytes queued to a slow stream reader before its stream is "
	      "closed."),

    DIRECTIVE("webhook", "flush_interval", SECONDS, webhook_flush_interval, 1,
	      60, "1", F_RELOAD,
	      "Longest time a receipt waits for others to share its POST."),
    DIRECTIVE("webhook", "max_batch", INT, webhook_max_batch, 1, 1000, "100",
	      F_RELOAD,
	      "Most receipts in one POST; a full batch is sent at once."),
    DIRECTIVE("webhook", "max_pending", INT, webhook_max_pending, 100, 1000000,
	      "10000", F_RELOAD,
	      "Most receipts held, unsent or retrying, over all apps; more "
	      "are dropped and counted."),
    DIRECTIVE("webhook", "backoff_base", SECONDS, webhook_backoff_base, 1, 3600,
	      "1", F_RELOAD,
	      "Delay before a failed POST is retried; later retries wait "
	      "longer."),
    DIRECTIVE("webhook", "backoff_max", SECONDS, webhook_backoff_max, 1, DAY,
	      "300", F_RELOAD,
	      "Longest delay before a retry, also when Retry-After asks for "
	      "more."),
    DIRECTIVE("webhook", "max_attempts", INT, webhook_max_attempts, 1, 100,
	      "10", F_RELOAD,
	      "Most attempts at one POST; then its receipts are dropped."),
    DIRECTIVE("webhook", "timeout", SECONDS, webhook_timeout, 1, 120, "10",
	      F_RELOAD,
	      "Time the chat server has to answer a POST, connecting "
	      "included."),

    DIRECTIVE("log", "level", LEVEL, log_level, 0, 0, "info", F_RELOAD,
	      "Least severe level that is logged."),
    DIRECTIVE("log", "target", TARGET, log_target, 0, 0, "stderr", F_RELOAD,
	      "Where log lines go; a file is reopened on SIGHUP."),
    DIRECTIVE("log", "access", BOOL, log_access, 0, 0, "no", F_RELOAD,
	      "Log one line per HTTP request."),

    APP_CHOICE("push_mode", push_mode, push_mode_choices, "wakeup", 0,
	       "Push sent for events that do not say: wakeup (silent) or "
	       "alert."),
    APP("default_ttl", SECONDS, default_ttl, 0, 28 * DAY, "28d", 0,
	"How long a message waits for a device when the event sets no "
	"ttl."),
    APP("max_ttl", SECONDS, max_ttl, 1, 28 * DAY, "28d", 0,
	"Longest ttl an event may set."),
    APP("push_delay", SECONDS, push_delay, 0, 3600, "0", F_RELOAD,
	"Time a push waits for the device to fetch the message first."),
    /* Credentials, as the provider ones below: read once, at start. */
    APP_SECRET("client_token_secret", client_token_secret, 32,
	       "HS256 wants a key as long as its hash",
	       "replace-with-32-or-more-random-bytes",
	       "HS256 key the chat server signs client tokens with; empty: "
	       "none accepted. A secret."),
    /* Provider credentials: not reloadable yet (providers load them once). */
    APP_PATH("apns_key_file", apns_key_file,
	     "/etc/pushrelay/AuthKey_ABC123DEFG.p8",
	     "APNs token auth: the .p8 signing key from the Apple developer "
	     "account."),
    APP_STRING("apns_key_id", apns_key_id, CK_KEYID, "", 0, "ABC123DEFG",
	       "Key ID of apns_key_file (the JWT kid)."),
    APP_STRING("apns_team_id", apns_team_id, CK_KEYID, "", 0, "DEF123GHIJ",
	       "Apple developer Team ID (the JWT iss)."),
    APP_PATH("apns_cert_file", apns_cert_file, "/etc/pushrelay/apns.pem",
	     "APNs certificate auth: the client certificate, PEM or "
	     "PKCS#12."),
    APP_PATH("apns_cert_key_file", apns_cert_key_file,
	     "/etc/pushrelay/apns.key",
	     "PEM private key of apns_cert_file; empty when that file holds "
	     "it."),
    APP_STRING("apns_cert_password", apns_cert_password, CK_NONE, "", F_SECRET,
	       NULL,
	       "Password of a PKCS#12 or encrypted key; a secret: let only "
	       "the daemon read this file."),
    APP_STRING("apns_topic", apns_topic, CK_TOPIC, "", 0, "com.example.chat",
	       "The app's bundle id (apns-topic); required for APNs."),
    APP_STRING("apns_url", apns_url, CK_URL, "https://api.push.apple.com",
	       F_NONEMPTY, NULL, "Base URL of APNs for production devices."),
    APP_STRING("apns_sandbox_url", apns_sandbox_url, CK_URL,
	       "https://api.sandbox.push.apple.com", F_NONEMPTY, NULL,
	       "Base URL of APNs for sandbox (development) devices."),
    APP_PATH("fcm_credentials", fcm_credentials,
	     "/etc/pushrelay/service-account.json",
	     "FCM HTTP v1: the service-account JSON key of the Firebase "
	     "project."),
    APP_STRING("fcm_url", fcm_url, CK_URL, "https://fcm.googleapis.com",
	       F_NONEMPTY, NULL, "Base URL of FCM."),
    APP_STRING("fcm_token_url", fcm_token_url, CK_URL_PATH, "", 0,
	       "https://oauth2.googleapis.com/token",
	       "OAuth 2.0 token URL for FCM; empty uses token_uri of "
	       "fcm_credentials."),
    APP_PATH("ca_file", ca_file, "/etc/ssl/certs/ca-certificates.crt",
	     "CA certificates to verify APNs and FCM with; empty uses the "
	     "system's."),
    /* Delivery receipts; read at start, like the credentials above. */
    APP_STRING("webhook_url", webhook_url, CK_URL_PATH, "", 0,
	       "https://chat.example.com/pushrelay/receipts",
	       "Where delivery receipts are POSTed; empty sends none."),
    APP_SECRET("webhook_secret", webhook_secret, 16, NULL,
	       "replace-with-16-or-more-random-bytes",
	       "HMAC-SHA256 key receipts are signed with; required with "
	       "webhook_url. A secret."),
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

/*
 * A directive's field in base: a struct pr_config for S_CONFIG, the
 * struct pr_app_config being set for S_APP.
 */
static void *field(void *base, const struct directive *d)
{
	return (char *)base + d->off;
}

static const void *cfield(const void *base, const struct directive *d)
{
	return (const char *)base + d->off;
}

static size_t *count_field(void *base, const struct directive *d)
{
	return (size_t *)(void *)((char *)base + d->n_off);
}

static size_t ccount(const void *base, const struct directive *d)
{
	return *(const size_t *)(const void *)((const char *)base + d->n_off);
}

static void listen_list_clear(void *base, const struct directive *d)
{
	struct pr_listen_spec **v = field(base, d);
	size_t *n = count_field(base, d);

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

/* Free what the directives of one scope own in base. */
static void free_fields(void *base, enum scope scope)
{
	const struct directive *d;

	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		d = &directives[i];
		if (d->scope != scope)
			continue;
		if (d->type == T_PATH || d->type == T_TARGET ||
		    d->type == T_STRING)
			free(*(char **)field(base, d));
		else if (d->type == T_LISTEN)
			listen_list_clear(base, d);
	}
}

/* ---- value parsers ------------------------------------------------------ */

struct suffix {
	char c;
	long mult;
};

/* Largest first: fmt_num() picks the first that divides a value. */
static const struct suffix size_suffixes[] = {
#if HAVE_TERA
    {'t', 1024L * G},
#endif
    {'g', G},
    {'m', M},
    {'k', K},
};

static const struct suffix time_suffixes[] = {
    {'d', DAY},
    {'h', 3600},
    {'m', 60},
    {'s', 1},
};

/* "k, m, g or t" (last = " or ") or "k, m, g, t" (last = ", "). */
static void suffix_list(const struct suffix *tab, size_t n, const char *last,
			char *out, size_t len)
{
	size_t used = 0;
	int w;

	out[0] = '\0';
	for (size_t i = n; i-- > 0 && used < len;) {
		w = snprintf(out + used, len - used, "%s%c",
			     i == n - 1 ? ""
			     : i == 0	? last
					: ", ",
			     tab[i].c);
		used += w > 0 ? (size_t)w : 0;
	}
}

/* "full|normal" */
static void choice_list(const struct directive *d, const char *sep,
			const char *last, char *out, size_t len)
{
	size_t used = 0;
	int w;

	out[0] = '\0';
	for (const struct choice *ch = d->choices; ch->name && used < len;
	     ch++) {
		w = snprintf(out + used, len - used, "%s%s",
			     ch == d->choices ? ""
			     : ch[1].name     ? sep
					      : last,
			     ch->name);
		used += w > 0 ? (size_t)w : 0;
	}
}

/*
 * A number as the table shows it: sizes with a suffix, modes in octal,
 * whole days of seconds in days (hours stay seconds: "3600" reads well).
 */
static void fmt_num(const struct directive *d, long v, char *out, size_t len)
{
	if (d->type == T_MODE) {
		snprintf(out, len, "%04lo", (unsigned long)v);
		return;
	}
	if (d->type == T_SIZE && v) {
		for (size_t i = 0; i < PR_ARRAY_SIZE(size_suffixes); i++) {
			if (v % size_suffixes[i].mult == 0) {
				snprintf(out, len, "%ld%c",
					 v / size_suffixes[i].mult,
					 size_suffixes[i].c);
				return;
			}
		}
	}
	if (d->type == T_SECONDS && v && v % DAY == 0) {
		snprintf(out, len, "%ldd", v / DAY);
		return;
	}
	snprintf(out, len, "%ld", v);
}

static int suffix_mult(const struct directive *d, const char *sfx, long *mult,
		       char *why, size_t whylen)
{
	const struct suffix *tab = NULL;
	char list[32];
	size_t n = 0;

	*mult = 1;
	if (!*sfx)
		return PR_OK;
	if (d->type == T_SIZE) {
		tab = size_suffixes;
		n = PR_ARRAY_SIZE(size_suffixes);
	} else if (d->type == T_SECONDS) {
		tab = time_suffixes;
		n = PR_ARRAY_SIZE(time_suffixes);
	}
	if (!tab || !isalpha((unsigned char)*sfx)) {
		reason(why, whylen,
		       d->type == T_MODE ? "not an octal number"
					 : "not a number");
		return PR_ERR_CONFIG;
	}
	for (size_t i = 0; i < n && !sfx[1]; i++) {
		if (tolower((unsigned char)*sfx) == tab[i].c) {
			*mult = tab[i].mult;
			return PR_OK;
		}
	}
	suffix_list(tab, n, " or ", list, sizeof(list));
	reason(why, whylen, "bad %s suffix '%s' (%s)",
	       d->type == T_SIZE ? "size" : "time", sfx, list);
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

static int add_listen(void *base, const struct directive *d, const char *value,
		      char *why, size_t whylen)
{
	struct pr_listen_spec **v = field(base, d);
	size_t *n = count_field(base, d);
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

static int parse_choice(const struct directive *d, const char *value, int *out,
			char *why, size_t whylen)
{
	char names[64];

	for (const struct choice *ch = d->choices; ch->name; ch++) {
		if (strcasecmp(value, ch->name) == 0) {
			*out = ch->value;
			return PR_OK;
		}
	}
	choice_list(d, "|", "|", names, sizeof(names));
	reason(why, whylen, "unknown value '%s' (%s)", value, names);
	return PR_ERR_CONFIG;
}

static int keyid_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isdigit((unsigned char)s[n]) &&
		    !(s[n] >= 'A' && s[n] <= 'Z'))
			return 0;
	return n == 10;
}

static int topic_ok(const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
			return 0;
	return n >= 1 && n <= 255;
}

/* ":PORT" with PORT 1..65535; returns what follows, or NULL. */
static const char *url_port(const char *s)
{
	long v = 0;
	size_t i;

	if (*s != ':')
		return s;
	for (i = 1; isdigit((unsigned char)s[i]) && i <= 5; i++)
		v = v * 10 + (s[i] - '0');
	return i > 1 && !isdigit((unsigned char)s[i]) && v >= 1 && v <= 65535
		   ? s + i
		   : NULL;
}

/*
 * "http://" or "https://", a host name or IPv4 address or [IPv6] address,
 * an optional port, and when with_path allows it an absolute path (query
 * included, fragment not). No user info: credentials go elsewhere.
 */
static int url_ok(const char *s, int with_path)
{
	const char *h, *e;
	size_t n;

	if (strncasecmp(s, "https://", 8) == 0)
		h = s + 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		h = s + 7;
	else
		return 0;
	if (*h == '[') {
		n = strspn(h + 1, "0123456789abcdefABCDEF:.");
		if (!n || h[1 + n] != ']')
			return 0;
		e = h + n + 2;
	} else {
		n = strspn(h, "abcdefghijklmnopqrstuvwxyz"
			      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
		if (!n || !isalnum((unsigned char)h[0]) ||
		    !isalnum((unsigned char)h[n - 1]))
			return 0;
		e = h + n;
	}
	e = url_port(e);
	if (!e)
		return 0;
	if (!*e)
		return 1;
	if (!with_path || *e != '/')
		return 0;
	for (; *e; e++)
		if ((unsigned char)*e <= ' ' || *e == 0x7f || *e == '#')
			return 0;
	return 1;
}

/*
 * A T_STRING value. The reasons never quote the value: one of these
 * directives is a password (F_SECRET), and a key id is no better for
 * being repeated back.
 */
static int check_string(const struct directive *d, const char *value, char *why,
			size_t whylen)
{
	const char *want = NULL;

	if (!*value) {
		if (!(d->flags & F_NONEMPTY))
			return PR_OK;
		reason(why, whylen, "empty value (%s is required)",
		       d->check == CK_URL || d->check == CK_URL_PATH
			   ? "a URL"
			   : "a value");
		return PR_ERR_CONFIG;
	}
	switch (d->check) {
	case CK_NONE: break;
	case CK_KEYID:
		if (!keyid_ok(value))
			want = "must be 10 characters A-Z 0-9";
		break;
	case CK_TOPIC:
		if (!topic_ok(value))
			want = "must be a bundle id: 1..255 characters A-Z "
			       "a-z 0-9 . -";
		break;
	case CK_URL:
		if (!url_ok(value, 0))
			want = "must be an http:// or https:// URL without a "
			       "path";
		break;
	case CK_URL_PATH:
		if (!url_ok(value, 1))
			want = "must be an http:// or https:// URL";
		break;
	}
	if (want) {
		reason(why, whylen, "%s", want);
		return PR_ERR_CONFIG;
	}
	if (strlen(value) < (size_t)d->min) {
		reason(why, whylen, "must be at least %ld bytes%s%s%s", d->min,
		       d->min_why ? " (" : "", d->min_why ? d->min_why : "",
		       d->min_why ? ")" : "");
		return PR_ERR_CONFIG;
	}
	if (strlen(value) > (size_t)d->max) {
		reason(why, whylen, "too long (at most %ld bytes)", d->max);
		return PR_ERR_CONFIG;
	}
	return PR_OK;
}

/*
 * Parse value for d into base (see field()); a repeatable directive
 * appends. On failure base is unchanged and why says what is wrong with
 * the value.
 */
static int set_value(void *base, const struct directive *d, const char *value,
		     char *why, size_t whylen)
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
			*(long *)field(base, d) = num;
		return rv;
	case T_BOOL:
		rv = parse_bool(value, &i, why, whylen);
		if (!rv)
			*(int *)field(base, d) = i;
		return rv;
	case T_ENUM:
		rv = parse_choice(d, value, &i, why, whylen);
		if (!rv)
			*(int *)field(base, d) = i;
		return rv;
	case T_LEVEL:
		i = pr_log_level_parse(value);
		if (i < 0) {
			reason(why, whylen,
			       "unknown level '%s' (error|warn|info|debug)",
			       value);
			return PR_ERR_CONFIG;
		}
		*(int *)field(base, d) = i;
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
		if (!*value && (d->flags & F_NONEMPTY)) {
			reason(why, whylen, "empty value (a path is required)");
			return PR_ERR_CONFIG;
		}
		if (strlen(value) >= PATH_MAX) {
			reason(why, whylen, "path too long");
			return PR_ERR_CONFIG;
		}
		return set_string(field(base, d), value);
	case T_STRING:
		rv = check_string(d, value, why, whylen);
		if (rv)
			return rv;
		return set_string(field(base, d), value);
	case T_LISTEN: return add_listen(base, d, value, why, whylen);
	}
	reason(why, whylen, "unknown directive type");
	return PR_ERR_CONFIG;
}

/* ---- lifecycle ---------------------------------------------------------- */

/* Set the directives of one scope in base to their defaults. */
static int set_defaults(void *base, enum scope scope)
{
	char why[REASON_MAX];
	int rv;

	/* Defaults go through the parser, so a bad one cannot hide. */
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		if (directives[i].scope != scope)
			continue;
		rv = set_value(base, &directives[i], directives[i].info.def,
			       why, sizeof(why));
		if (rv)
			return rv;
	}
	return PR_OK;
}

static void apps_clear(struct pr_config *c)
{
	for (size_t i = 0; i < c->n_apps; i++) {
		free_fields(&c->apps[i], S_APP);
		free(c->apps[i].name);
	}
	free(c->apps);
	c->apps = NULL;
	c->n_apps = 0;
}

/* Append an app with the defaults: 0, PR_ERR_LIMIT or PR_ERR_NOMEM. */
static int app_add(struct pr_config *c, const char *name)
{
	struct pr_app_config *grown, *app;
	int rv;

	if (c->n_apps >= MAX_APPS)
		return PR_ERR_LIMIT;
	grown = realloc(c->apps, (c->n_apps + 1) * sizeof(*grown));
	if (!grown)
		return PR_ERR_NOMEM;
	c->apps = grown;
	app = &grown[c->n_apps];
	memset(app, 0, sizeof(*app));
	app->name = strdup(name);
	if (!app->name)
		return PR_ERR_NOMEM;
	rv = set_defaults(app, S_APP);
	if (rv) {
		free_fields(app, S_APP);
		free(app->name);
		return rv;
	}
	c->n_apps++;
	return PR_OK;
}

static int app_index(const struct pr_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_apps; i++)
		if (strcmp(c->apps[i].name, name) == 0)
			return (int)i;
	return -1;
}

struct pr_config *pr_config_new(void)
{
	struct pr_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	if (set_defaults(cfg, S_CONFIG) || app_add(cfg, DEFAULT_APP)) {
		pr_config_free(cfg);
		return NULL;
	}
	return cfg;
}

void pr_config_free(struct pr_config *cfg)
{
	if (!cfg)
		return;
	free_fields(cfg, S_CONFIG);
	apps_clear(cfg);
	free(cfg->path);
	free(cfg);
}

const struct pr_app_config *pr_config_app(const struct pr_config *cfg,
					  const char *name)
{
	int i;

	if (!cfg || !name)
		return NULL;
	i = app_index(cfg, name);
	return i < 0 ? NULL : &cfg->apps[i];
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
	/* The open section as messages name it: "server", "app \"chat\"". */
	char label[MAX_APP_NAME + 8];
	int app;       /* the open [app] section's index in cfg->apps, or -1 */
	int file_apps; /* an [app] section was opened: no implicit app */
	int app_line[MAX_APPS]; /* line of each app's section header */
	/*
	 * Line of a directive's first occurrence, or 0; for S_APP
	 * directives, in the open [app] section (an app's section cannot
	 * be opened twice).
	 */
	int seen[N_DIRECTIVES];
	int nomem;
	struct msgs errs;
};

/* A section as the user writes it. */
static const char *section_title(const char *section)
{
	return strcmp(section, "app") == 0 ? "app \"NAME\"" : section;
}

static int section_known(const char *name)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++)
		if (directives[i].scope == S_CONFIG &&
		    strcmp(directives[i].info.section, name) == 0)
			return 1;
	return 0;
}

/* "server|admin|...|app \"NAME\"", from the table. */
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
		w = snprintf(out + n, len - n, "%s%s", n ? "|" : "",
			     section_title(prev));
		n += w > 0 ? (size_t)w : 0;
	}
}

static int app_name_ok(const char *s, size_t n)
{
	if (!n || n > MAX_APP_NAME)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

/*
 * The inside of an `[app "NAME"]` header (h starts with "app" and a blank
 * or the end) into name. The name must be quoted, which leaves room for
 * more words in the header later.
 */
static int app_header(const char *h, char *name, size_t len, char *why,
		      size_t whylen)
{
	const char *s = h + 3, *q, *rest;
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	if (!*s) {
		reason(why, whylen,
		       "section [app] needs a name: [app \"NAME\"]");
		return PR_ERR_CONFIG;
	}
	if (*s != '"') {
		reason(why, whylen,
		       "[%s]: the app name must be quoted: [app \"NAME\"]", h);
		return PR_ERR_CONFIG;
	}
	q = strchr(s + 1, '"');
	if (!q) {
		reason(why, whylen, "[%s]: missing '\"' after the app name", h);
		return PR_ERR_CONFIG;
	}
	for (rest = q + 1; isspace((unsigned char)*rest); rest++)
		;
	if (*rest) {
		reason(why, whylen, "[%s]: unexpected text after the app name",
		       h);
		return PR_ERR_CONFIG;
	}
	n = (size_t)(q - s - 1);
	if (!app_name_ok(s + 1, n) || n >= len) {
		reason(why, whylen,
		       "[%s]: bad app name '%.*s' (1..%d of A-Z a-z 0-9 . _ -)",
		       h, (int)n, s + 1, MAX_APP_NAME);
		return PR_ERR_CONFIG;
	}
	memcpy(name, s + 1, n);
	name[n] = '\0';
	return PR_OK;
}

static int directive_index(enum scope scope, const char *name)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++)
		if (directives[i].scope == scope &&
		    strcmp(directives[i].info.name, name) == 0)
			return (int)i;
	return -1;
}

/* The string an [app] directive holds in app. */
static const char *app_string(const struct pr_app_config *app, int d)
{
	return *(char *const *)cfield(app, &directives[d]);
}

/* The line an [app] directive was set on, else the app's header line. */
static int app_line(const struct parse *p, int ai, int d)
{
	return p->seen[d] ? p->seen[d] : p->app_line[ai];
}

static void check_app_ttl(struct parse *p, int ai)
{
	int dt = directive_index(S_APP, "default_ttl");
	int mt = directive_index(S_APP, "max_ttl");
	const struct pr_app_config *app = &p->cfg->apps[ai];
	char a[32], b[32];

	if (app->default_ttl <= app->max_ttl)
		return;
	fmt_num(&directives[dt], app->default_ttl, a, sizeof(a));
	fmt_num(&directives[mt], app->max_ttl, b, sizeof(b));
	if (p->seen[dt])
		msgs_add(&p->errs,
			 "%s:%d: [app \"%s\"] default_ttl: %s is longer than "
			 "max_ttl (%s)",
			 p->path, p->seen[dt], app->name, a, b);
	else
		msgs_add(&p->errs,
			 "%s:%d: [app \"%s\"] max_ttl: %s is shorter than "
			 "default_ttl (%s)",
			 p->path, p->seen[mt], app->name, b, a);
}

/* Each of names[] must be set where the directive `by` is. */
static void require_with(struct parse *p, int ai, const char *by,
			 const char *kind, const char *const *names, size_t n)
{
	const struct pr_app_config *app = &p->cfg->apps[ai];
	int b = directive_index(S_APP, by);

	for (size_t i = 0; i < n; i++)
		if (!app_string(app, directive_index(S_APP, names[i]))[0])
			msgs_add(&p->errs,
				 "%s:%d: [app \"%s\"] %s: required with %s "
				 "(%s)",
				 p->path, app_line(p, ai, b), app->name,
				 names[i], by, kind);
}

/* Each of names[] that is set needs the directive `what`. */
static void needs(struct parse *p, int ai, const char *what,
		  const char *const *names, size_t n)
{
	const struct pr_app_config *app = &p->cfg->apps[ai];
	int d;

	for (size_t i = 0; i < n; i++) {
		d = directive_index(S_APP, names[i]);
		if (app_string(app, d)[0])
			msgs_add(&p->errs, "%s:%d: [app \"%s\"] %s: needs %s",
				 p->path, app_line(p, ai, d), app->name,
				 names[i], what);
	}
}

/*
 * APNs takes token auth (apns_key_file and its ids) or certificate auth
 * (apns_cert_file), never both, and either needs the topic. An app with
 * neither is fine: no APNs push leaves for it.
 */
static void check_app_apns(struct parse *p, int ai)
{
	static const char *const token[] = {"apns_key_id", "apns_team_id",
					    "apns_topic"};
	static const char *const token_parts[] = {"apns_key_id",
						  "apns_team_id"};
	static const char *const cert[] = {"apns_topic"};
	static const char *const cert_parts[] = {"apns_cert_key_file",
						 "apns_cert_password"};
	const struct pr_app_config *app = &p->cfg->apps[ai];
	int kf = directive_index(S_APP, "apns_key_file");
	int cf = directive_index(S_APP, "apns_cert_file");
	int later;

	if (app->apns_key_file[0] && app->apns_cert_file[0]) {
		later = app_line(p, ai, kf) > app_line(p, ai, cf) ? kf : cf;
		msgs_add(&p->errs,
			 "%s:%d: [app \"%s\"] %s: choose token auth "
			 "(apns_key_file) or certificate auth (apns_cert_file)",
			 p->path, app_line(p, ai, later), app->name,
			 directives[later].info.name);
		return;
	}
	if (app->apns_key_file[0])
		require_with(p, ai, "apns_key_file", "token auth", token,
			     PR_ARRAY_SIZE(token));
	else
		needs(p, ai, "apns_key_file", token_parts,
		      PR_ARRAY_SIZE(token_parts));
	if (app->apns_cert_file[0])
		require_with(p, ai, "apns_cert_file", "certificate auth", cert,
			     PR_ARRAY_SIZE(cert));
	else
		needs(p, ai, "apns_cert_file", cert_parts,
		      PR_ARRAY_SIZE(cert_parts));
}

/* Receipts are signed: a webhook_url needs its secret, and back. */
static void check_app_webhook(struct parse *p, int ai)
{
	static const char *const secret[] = {"webhook_secret"};

	if (p->cfg->apps[ai].webhook_url[0])
		require_with(p, ai, "webhook_url", "delivery receipts", secret,
			     PR_ARRAY_SIZE(secret));
	else
		needs(p, ai, "webhook_url", secret, PR_ARRAY_SIZE(secret));
}

/*
 * Leaving an [app] section: its settings that are fine alone but not
 * together, reported at the line of the key that was set.
 */
static void close_app(struct parse *p)
{
	int ai = p->app;

	if (ai < 0)
		return;
	p->app = -1;
	check_app_ttl(p, ai);
	check_app_apns(p, ai);
	check_app_webhook(p, ai);
}

/*
 * `[app "NAME"]`: a new app, set to the defaults before its keys are
 * read. The first one drops the implicit app "default".
 */
static void open_app(struct parse *p, const char *header)
{
	char name[MAX_APP_NAME + 1], why[REASON_MAX];
	int i, rv;

	p->sec = SEC_UNKNOWN; /* until the app is open, its keys are skipped */
	if (app_header(header, name, sizeof(name), why, sizeof(why))) {
		msgs_add(&p->errs, "%s:%d: %s", p->path, p->lineno, why);
		return;
	}
	i = p->file_apps ? app_index(p->cfg, name) : -1;
	if (i >= 0) {
		msgs_add(&p->errs,
			 "%s:%d: [app \"%s\"]: duplicate app (first on line "
			 "%d)",
			 p->path, p->lineno, name, p->app_line[i]);
		return;
	}
	if (!p->file_apps) {
		apps_clear(p->cfg);
		p->file_apps = 1;
	}
	rv = app_add(p->cfg, name);
	if (rv == PR_ERR_LIMIT) {
		msgs_add(&p->errs,
			 "%s:%d: [app \"%s\"]: too many apps (at most %d)",
			 p->path, p->lineno, name, MAX_APPS);
		return;
	}
	if (rv) {
		p->nomem = 1;
		return;
	}
	p->app = (int)p->cfg->n_apps - 1;
	p->app_line[p->app] = p->lineno;
	p->sec = SEC_KNOWN;
	snprintf(p->label, sizeof(p->label), "app \"%s\"", name);
	for (size_t k = 0; k < N_DIRECTIVES; k++)
		if (directives[k].scope == S_APP)
			p->seen[k] = 0;
}

static void open_section(struct parse *p, const char *name)
{
	char names[128];

	close_app(p);
	p->label[0] = '\0';
	if (strncmp(name, "app", 3) == 0 &&
	    (!name[3] || isspace((unsigned char)name[3]))) {
		open_app(p, name);
		return;
	}
	if (!section_known(name)) {
		p->sec = SEC_UNKNOWN;
		section_list(names, sizeof(names));
		msgs_add(&p->errs, "%s:%d: [%s]: unknown section (%s)", p->path,
			 p->lineno, name, names);
		return;
	}
	p->sec = SEC_KNOWN;
	/* A table section name: short, never cut. */
	snprintf(p->label, sizeof(p->label), "%.*s", (int)sizeof(p->label) - 1,
		 name);
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
	char name[256], *s = line;
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
			close_app(p);
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
		open_section(p, name);
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

static void unknown_key(struct parse *p, const char *name)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		if (strcmp(directives[i].info.name, name) == 0) {
			msgs_add(&p->errs,
				 "%s:%d: [%s] %s: unknown key (it belongs in "
				 "[%s])",
				 p->path, p->lineno, p->label, name,
				 section_title(directives[i].info.section));
			return;
		}
	}
	msgs_add(&p->errs, "%s:%d: [%s] %s: unknown key", p->path, p->lineno,
		 p->label, name);
}

/*
 * inih calls this for each key; errors are collected, parsing goes on.
 * The section is the one read_line() followed (inih's copy of a long
 * [app "NAME"] header may be cut short).
 */
static int handle_key(void *user, const char *section, const char *name,
		      const char *value)
{
	struct parse *p = user;
	const struct directive *d;
	char why[REASON_MAX];
	void *base;
	int i, rv;

	(void)section;
	if (p->sec == SEC_UNKNOWN)
		return 1; /* reported once, at the section header */
	if (p->sec == SEC_NONE) {
		msgs_add(&p->errs, "%s:%d: %s: key before any [section]",
			 p->path, p->lineno, name);
		return 1;
	}
	if (p->app >= 0) {
		i = find_directive("app", name);
		base = &p->cfg->apps[p->app];
	} else {
		i = find_directive(p->label, name);
		base = p->cfg;
	}
	if (i < 0) {
		unknown_key(p, name);
		return 1;
	}
	d = &directives[i];
	if (p->seen[i] && !d->info.repeatable) {
		msgs_add(&p->errs,
			 "%s:%d: [%s] %s: duplicate key (first set on line %d)",
			 p->path, p->lineno, p->label, name, p->seen[i]);
		return 1;
	}
	/* A repeatable key's first occurrence replaces the default list. */
	if (!p->seen[i] && d->type == T_LISTEN)
		listen_list_clear(base, d);
	if (!p->seen[i])
		p->seen[i] = p->lineno;
	rv = set_value(base, d, value, why, sizeof(why));
	if (rv == PR_ERR_NOMEM)
		p->nomem = 1;
	else if (rv)
		msgs_add(&p->errs, "%s:%d: [%s] %s: %s", p->path, p->lineno,
			 p->label, name, why);
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

/*
 * The first retry may not wait longer than the longest; named at the line
 * of the key that was set, as the ttl check does. section is "push" or
 * "webhook"; base and max are its values.
 */
static void check_backoff(struct parse *p, const char *section, long base,
			  long max)
{
	int bb = find_directive(section, "backoff_base");
	int bm = find_directive(section, "backoff_max");
	char a[32], b[32];

	if (base <= max)
		return;
	fmt_num(&directives[bb], base, a, sizeof(a));
	fmt_num(&directives[bm], max, b, sizeof(b));
	if (p->seen[bb])
		msgs_add(&p->errs,
			 "%s:%d: [%s] backoff_base: %s is longer than "
			 "backoff_max (%s)",
			 p->path, p->seen[bb], section, a, b);
	else
		msgs_add(&p->errs,
			 "%s:%d: [%s] backoff_max: %s is shorter than "
			 "backoff_base (%s)",
			 p->path, p->seen[bm], section, b, a);
}

/*
 * A stream must outlive a ping interval, or an idle but healthy client is
 * closed before it was ever asked for a pong.
 */
static void check_ws_timers(struct parse *p, const struct pr_config *c)
{
	int pi = find_directive("inbox", "ws_ping_interval");
	int it = find_directive("inbox", "ws_idle_timeout");
	char a[32], b[32];

	if (c->ws_idle_timeout > c->ws_ping_interval)
		return;
	fmt_num(&directives[it], c->ws_idle_timeout, a, sizeof(a));
	fmt_num(&directives[pi], c->ws_ping_interval, b, sizeof(b));
	if (p->seen[it])
		msgs_add(&p->errs,
			 "%s:%d: [inbox] ws_idle_timeout: %s is not longer "
			 "than ws_ping_interval (%s)",
			 p->path, p->seen[it], a, b);
	else
		msgs_add(&p->errs,
			 "%s:%d: [inbox] ws_ping_interval: %s is not shorter "
			 "than ws_idle_timeout (%s)",
			 p->path, p->seen[pi], b, a);
}

/* Settings that are fine alone but not together (apps: close_app()). */
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
	check_backoff(p, "push", c->push_backoff_base, c->push_backoff_max);
	check_backoff(p, "webhook", c->webhook_backoff_base,
		      c->webhook_backoff_max);
	check_ws_timers(p, c);

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
					msgs_add(
					    &p->errs,
					    "%s: [%s] listen: '%s' uses "
					    "the address of [%s] listen "
					    "'%s'",
					    p->path, lists[l]->info.section,
					    a[i].text, lists[m]->info.section,
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
	p.app = -1;
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
	close_app(&p);
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

static int field_equal(const struct directive *d, const void *a, const void *b)
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
	case T_ENUM:
		return *(const int *)cfield(a, d) == *(const int *)cfield(b, d);
	case T_PATH:
	case T_TARGET:
	case T_STRING:
		return strcmp(*(char *const *)cfield(a, d),
			      *(char *const *)cfield(b, d)) == 0;
	case T_LISTEN:
		return listen_equal(
		    *(struct pr_listen_spec *const *)cfield(a, d), ccount(a, d),
		    *(struct pr_listen_spec *const *)cfield(b, d),
		    ccount(b, d));
	}
	return 0;
}

static int copy_field(const struct directive *d, void *dst, const void *src)
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
	case T_ENUM:
		*(int *)field(dst, d) = *(const int *)cfield(src, d);
		return PR_OK;
	case T_PATH:
	case T_TARGET:
	case T_STRING:
		return set_string(field(dst, d),
				  *(char *const *)cfield(src, d));
	case T_LISTEN: break; /* never reloadable: listeners are bound once */
	}
	return PR_ERR_INVAL;
}

/*
 * Copy the reloadable directives of one scope from fresh to live and note
 * the others that differ. app is the app's name for S_APP, else NULL.
 */
static void reload_scope(struct msgs *m, const char *path, enum scope scope,
			 const char *app, void *live, const void *fresh)
{
	const struct directive *d;
	const char *what;

	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		d = &directives[i];
		if (d->scope != scope || field_equal(d, live, fresh))
			continue;
		if (!d->info.reloadable)
			what = "changed; restart to apply";
		else if (copy_field(d, live, fresh))
			what = "not applied (out of memory)";
		else
			continue;
		if (app)
			msgs_add(m, "%s: [app \"%s\"] %s: %s", path, app,
				 d->info.name, what);
		else
			msgs_add(m, "%s: [%s] %s: %s", path, d->info.section,
				 d->info.name, what);
	}
}

/*
 * Apps are matched by name. An app added or removed needs a restart (the
 * store and the providers are set up per app at start).
 */
int pr_config_apply_reload(struct pr_config *live,
			   const struct pr_config *fresh, char *note,
			   size_t notelen)
{
	const char *path = fresh->path ? fresh->path : "config";
	struct pr_app_config *app;
	struct msgs m;
	int j;

	msgs_init(&m, note, notelen);
	reload_scope(&m, path, S_CONFIG, NULL, live, fresh);
	for (size_t i = 0; i < live->n_apps; i++) {
		app = &live->apps[i];
		j = app_index(fresh, app->name);
		if (j < 0)
			msgs_add(&m,
				 "%s: [app \"%s\"]: removed; restart to apply",
				 path, app->name);
		else
			reload_scope(&m, path, S_APP, app->name, app,
				     &fresh->apps[j]);
	}
	for (size_t i = 0; i < fresh->n_apps; i++)
		if (app_index(live, fresh->apps[i].name) < 0)
			msgs_add(&m,
				 "%s: [app \"%s\"]: added; restart to apply",
				 path, fresh->apps[i].name);
	return m.count;
}

/* ---- the example config ------------------------------------------------- */

/* The shape a T_STRING's check wants, for the example config. */
static const char *string_shape(const struct directive *d)
{
	switch (d->check) {
	case CK_NONE: break;
	case CK_KEYID: return "10 characters A-Z 0-9";
	case CK_TOPIC: return "bundle id, 1..255 characters A-Z a-z 0-9 . -";
	case CK_URL: return "http:// or https:// URL without a path";
	case CK_URL_PATH: return "http:// or https:// URL";
	}
	return "text";
}

static void describe(const struct directive *d, char *out, size_t len)
{
	char lo[32], hi[32], list[64];

	fmt_num(d, d->min, lo, sizeof(lo));
	fmt_num(d, d->max, hi, sizeof(hi));
	switch (d->type) {
	case T_INT: snprintf(out, len, "integer, %s..%s", lo, hi); return;
	case T_SECONDS:
		suffix_list(time_suffixes, PR_ARRAY_SIZE(time_suffixes), ", ",
			    list, sizeof(list));
		snprintf(out, len, "seconds (or with %s), %s..%s", list, lo,
			 hi);
		return;
	case T_SIZE:
		suffix_list(size_suffixes, PR_ARRAY_SIZE(size_suffixes), ", ",
			    list, sizeof(list));
		snprintf(out, len, "bytes (or with %s), %s..%s", list, lo, hi);
		return;
	case T_MODE:
		snprintf(out, len, "octal file mode, %s..%s", lo, hi);
		return;
	case T_BOOL: snprintf(out, len, "yes or no"); return;
	case T_ENUM:
		choice_list(d, ", ", " or ", list, sizeof(list));
		snprintf(out, len, "%s", list);
		return;
	case T_LEVEL: snprintf(out, len, "error, warn, info or debug"); return;
	case T_PATH:
		snprintf(out, len, "%s",
			 d->flags & F_NONEMPTY ? "file path"
					       : "file path, empty for none");
		return;
	case T_STRING:
		list[0] = '\0';
		if (d->min)
			snprintf(list, sizeof(list),
				 ", else at least %ld bytes", d->min);
		snprintf(out, len, "%s%s%s%s", string_shape(d),
			 d->flags & F_NONEMPTY ? "" : ", empty for none", list,
			 d->flags & F_SECRET ? ", secret" : "");
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

static void section_header(FILE *fp, const struct directive *d)
{
	if (d->scope != S_APP) {
		fprintf(fp, "\n[%s]\n", d->info.section);
		return;
	}
	fprintf(fp,
		"\n; One [app \"NAME\"] section per mobile app, at most %d; "
		"NAME is 1..%d of\n"
		"; A-Z a-z 0-9 . _ -. Without any, there is one app \"%s\" "
		"set as below.\n"
		"[app \"%s\"]\n",
		MAX_APPS, MAX_APP_NAME, DEFAULT_APP, DEFAULT_APP);
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
			section_header(fp, d);
		}
		describe(d, desc, sizeof(desc));
		fprintf(fp, "\n; %s\n; %s; %s\n", d->info.help, desc,
			d->info.reloadable ? "reloadable"
					   : "restart to change");
		/* Not as a commented-out key: uncommented, it would be a
		 * duplicate of the line below. */
		if (d->example)
			fprintf(fp, "; e.g. %s = %s\n", d->info.name,
				d->example);
		if (d->info.def[0])
			fprintf(fp, "%s = %s\n", d->info.name, d->info.def);
		else
			fprintf(fp, "%s =\n", d->info.name);
	}
}

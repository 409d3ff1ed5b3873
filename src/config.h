/*
 * config.h - the daemon's configuration: one table of directives (type,
 * bounds, default, reloadable) drives parsing, `pushrelayd -t`, reload on
 * SIGHUP and the example config (`pushrelayd --print-config`).
 *
 * The file format is INI, read with inih. Sections are [server], [admin],
 * [storage], [ingest], [push], [inbox], [webhook], [log] and any number
 * of [app "NAME"].
 * Unknown sections or keys and bad values are errors that name the file,
 * the line and the key.
 */
#ifndef PR_CONFIG_H
#define PR_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

/* One `listen =` value, parsed. */
struct pr_listen_spec {
	char *text;    /* as written, for log lines */
	int family;    /* AF_INET, AF_INET6 or AF_UNIX */
	char host[64]; /* numeric address for TCP ("127.0.0.1", "::") */
	int port;      /* TCP port, 0..65535; 0 picks an ephemeral port */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* AF_UNIX */
	int tls; /* "tls" flag: TLS with ALPN h2 and http/1.1 */
};

/* One [app "name"] section: a mobile app whose devices we serve. */
struct pr_app_config {
	char *name;	  /* the quoted name; [a-zA-Z0-9._-], 1..64 chars */
	int push_mode;	  /* enum pr_push_mode: for events that do not say */
	long default_ttl; /* seconds a message lives when the event says not */
	long max_ttl;	  /* longest ttl an event may ask for */
	long push_delay;  /* seconds a push waits for an inbox ack first */

	/* APNs: token auth (.p8) or certificate auth; "" when unset. */
	char *apns_key_file;	  /* .p8 ES256 key */
	char *apns_key_id;	  /* 10-character key id (kid) */
	char *apns_team_id;	  /* 10-character team id (iss) */
	char *apns_cert_file;	  /* PEM or PKCS#12 client certificate */
	char *apns_cert_key_file; /* its PEM key ("" with PKCS#12) */
	char *apns_cert_password; /* PKCS#12 password ("" for none) */
	char *apns_topic;	  /* bundle id */
	char *apns_url;		  /* production base URL */
	char *apns_sandbox_url;	  /* sandbox base URL */
	/* FCM HTTP v1. */
	char *fcm_credentials; /* service-account JSON */
	char *fcm_url;	       /* base URL (https://fcm.googleapis.com) */
	char *fcm_token_url;   /* OAuth token URL; "" = the JSON's token_uri */
	char *ca_file;	       /* trust store for provider connections */
	/* Mobile apps' client tokens (HS256 JWTs the chat server signs). */
	char *client_token_secret; /* "" = client tokens are refused */
	/* Delivery receipts (optional): POSTed, HMAC-SHA256 signed. */
	char *webhook_url;
	char *webhook_secret;
};

struct pr_config {
	char *path; /* file this was loaded from; NULL for defaults */

	/* [server] */
	struct pr_listen_spec *listen;
	size_t n_listen;
	char *tls_cert;
	char *tls_key;
	long max_connections;
	long max_header_bytes;
	long max_headers;
	long max_body_bytes;
	long max_streams;
	long output_buffer_bytes;
	long header_timeout; /* seconds */
	long body_timeout;   /* seconds */
	long idle_timeout;   /* seconds */
	long drain_timeout;  /* seconds */

	/* [admin] */
	struct pr_listen_spec *admin_listen;
	size_t n_admin_listen;
	long admin_socket_mode;
	long max_api_keys; /* live API keys */

	/* [storage] */
	char *storage_path;
	int storage_synchronous;       /* 1 = NORMAL, 2 = FULL */
	int storage_startup_check;     /* 0 none, 1 quick_check, 2 integrity */
	long storage_busy_timeout;     /* milliseconds */
	long storage_commit_batch;     /* jobs per group-commit transaction */
	long storage_max_pending_jobs; /* jobs waiting for the store thread */
	long storage_max_messages;     /* stored messages; 429 beyond */
	long storage_max_size;	       /* database bytes; 0 = no limit */
	long storage_sweep_interval;   /* seconds between retention sweeps */
	long storage_sweep_batch;      /* rows one sweep slice may delete */
	long storage_checkpoint_interval; /* seconds between WAL checkpoints */
	long storage_history;		  /* seconds finished work is kept */

	/* [ingest] */
	long ingest_max_events;	       /* events in one POST /v1/events */
	long ingest_max_payload_bytes; /* one event's payload, as JSON */
	long ingest_max_devices;       /* explicit device targets per event */
	long ingest_max_id_bytes;      /* ids, user names, device ids */

	/* [push] */
	long push_max_in_flight;   /* pushes claimed and unanswered, in total */
	long push_connections;	   /* connections per provider endpoint */
	long push_max_streams;	   /* HTTP/2 streams used per connection */
	long push_connect_timeout; /* seconds */
	long push_request_timeout; /* seconds */
	long push_max_attempts;	   /* then dead */
	long push_max_age;	/* seconds since the job was made; then dead */
	long push_backoff_base; /* seconds: first retry delay */
	long push_backoff_max;	/* seconds: longest retry delay */
	long push_coalesce_window; /* seconds a sent push absorbs newer ones */
	long push_min_interval;	   /* seconds between pushes to one device */
	long push_jwt_refresh;	   /* seconds between APNs JWT refreshes */
	long push_ping_interval;   /* seconds idle before an HTTP/2 PING */
	long push_claim_batch;	   /* jobs taken from the store at once */

	/* [inbox] */
	long inbox_max_wait;	 /* seconds a long poll may wait */
	long inbox_max_limit;	 /* messages in one inbox answer */
	long inbox_token_leeway; /* seconds of clock skew for exp/nbf */
	long inbox_max_waiters;	 /* long polls + streams held at once */
	long ws_ping_interval;	 /* seconds between pings on a stream */
	long ws_idle_timeout;	 /* seconds without a frame: close */
	long ws_max_message;	 /* bytes of one message from a client */
	long ws_max_queued;	 /* bytes queued to a slow reader: close */

	/* [webhook]: delivery receipts, for apps with a webhook_url */
	long webhook_flush_interval; /* seconds a receipt waits for company */
	long webhook_max_batch;	     /* receipts in one POST */
	long webhook_max_pending;    /* receipts held at once, all apps */
	long webhook_backoff_base;   /* seconds: first retry delay */
	long webhook_backoff_max;    /* seconds: longest retry delay */
	long webhook_max_attempts;   /* then the batch is dropped */
	long webhook_timeout;	     /* seconds one POST may take */

	/* [app "name"] sections; when none is given, one app "default" with
	 * the defaults exists. */
	struct pr_app_config *apps;
	size_t n_apps;

	/* [log] */
	int log_level; /* enum pr_log_level */
	char *log_target;
	int log_access;
};

/*
 * Allocate a config holding every default. Returns NULL on allocation
 * failure. Free with pr_config_free().
 */
struct pr_config *pr_config_new(void);
void pr_config_free(struct pr_config *cfg);

/*
 * Load `path` over the defaults into a fresh config. On success returns 0
 * and stores it in *out (the caller frees it). On failure returns
 * PR_ERR_CONFIG (or PR_ERR_IO when the file cannot be read), stores NULL
 * in *out and writes one message per problem, each "FILE:LINE: [section]
 * key: reason", into err (a caller-owned buffer of errlen bytes, always
 * NUL-terminated).
 */
int pr_config_load(const char *path, struct pr_config **out, char *err,
		   size_t errlen);

/*
 * After a reload: copy the reloadable settings of `fresh` into `live`.
 * Settings that differ but cannot be reloaded are left alone and each one
 * is named in a warning line written into note (caller-owned, errlen
 * bytes). Returns the number of such settings.
 */
int pr_config_apply_reload(struct pr_config *live,
			   const struct pr_config *fresh, char *note,
			   size_t notelen);

/* The app called name, or NULL. The pointer stays valid across
 * pr_config_apply_reload() (a reload never adds or removes apps) until the
 * config is freed. */
const struct pr_app_config *pr_config_app(const struct pr_config *cfg,
					  const char *name);

/*
 * Parse one listen value into spec; 0 or PR_ERR_CONFIG with a reason.
 * On success spec->text is malloc'd (the caller frees it); on failure it
 * is NULL.
 */
int pr_config_parse_listen(const char *text, struct pr_listen_spec *spec,
			   char *err, size_t errlen);

/*
 * Write the commented example config: every directive, its default, its
 * bounds and whether it is reloadable. etc/pushrelay.conf is this output.
 */
void pr_config_write_example(FILE *fp);

/* Iterate the directive table (for tests and docs). NULL past the end. */
struct pr_directive_info {
	const char *section;
	const char *name;
	const char *type;
	const char *def;
	int reloadable;
	int repeatable;
	const char *help;
};
const struct pr_directive_info *pr_config_directive(size_t i);

#endif

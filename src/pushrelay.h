/*
 * pushrelay.h - the error codes every module returns, and forward
 * declarations of the objects that cross module boundaries. Nothing else
 * belongs here: each module has its own header.
 */
#ifndef PR_PUSHRELAY_H
#define PR_PUSHRELAY_H

/* 0 is success; failures are negative values of this enum. */
enum pr_error {
	PR_OK = 0,
	PR_ERR_NOMEM = -1,    /* allocation failed */
	PR_ERR_INVAL = -2,    /* bad argument or input */
	PR_ERR_IO = -3,	      /* system call failed; errno says why */
	PR_ERR_LIMIT = -4,    /* a configured bound was reached */
	PR_ERR_PROTO = -5,    /* peer broke the protocol */
	PR_ERR_CONFIG = -6,   /* configuration is invalid */
	PR_ERR_TLS = -7,      /* TLS library failure */
	PR_ERR_NOTFOUND = -8, /* no such object */
	PR_ERR_STORE = -9,    /* storage failed */
	PR_ERR_BUSY = -10,    /* try again later */
	PR_ERR_CLOSED = -11,  /* peer or object already gone */
};

/* A static, human-readable description of an enum pr_error value. */
const char *pr_strerror(int err);

struct pr_buf;
struct pr_config;
struct pr_conn;
struct pr_listener;
struct pr_metrics;
struct pr_request;
struct pr_router;
struct pr_server;

#define PR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif

/*
 * fuzz_common.h - small helpers shared by the libFuzzer targets (built
 * only by `make fuzz`, see tests/fuzz/README.md).
 */
#ifndef PR_FUZZ_COMMON_H
#define PR_FUZZ_COMMON_H

#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "router.h"
#include "server.h"

/* A server with the built-in routes and no listeners, like th_mem_server.
 * cfg is taken. Exits on failure: the harness itself is broken then. */
static inline struct pr_server *fz_server(struct pr_config *cfg)
{
	char err[512];
	struct pr_server *s;

	pr_log_set_level(PR_LOG_ERROR);
	if (!cfg)
		cfg = pr_config_new();
	if (!cfg) {
		fprintf(stderr, "fuzz: pr_config_new failed\n");
		exit(1);
	}
	cfg->log_level = PR_LOG_ERROR;
	s = pr_server_new(EV_DEFAULT, cfg, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "fuzz: pr_server_new: %s\n", err);
		exit(1);
	}
	return s;
}

/* Throw away what the connection wrote. */
static inline void fz_drain(struct pr_conn *c)
{
	pr_buf_consume(&c->out, pr_buf_avail(&c->out));
}

/* Feed data to c in pieces whose sizes come from `split` (0 = at once),
 * discarding output as it goes. */
static inline void fz_feed(struct pr_conn *c, const uint8_t *data, size_t len,
			   unsigned split)
{
	size_t off = 0, step;

	while (off < len) {
		step = split ? 1 + (split * (off + 7)) % 97 : len - off;
		if (step > len - off)
			step = len - off;
		if (pr_conn_feed(c, data + off, step) != 0)
			break;
		fz_drain(c);
		off += step;
	}
	fz_drain(c);
}

/* A private temporary directory (under /dev/shm when it exists). */
static inline void fz_tmpdir(char *out, size_t outlen)
{
	const char *base = getenv("TMPDIR");

	if (!base || !*base)
		base = "/tmp";
	snprintf(out, outlen, "%s/prfuzz.XXXXXX", base);
	if (!mkdtemp(out)) {
		perror("fuzz: mkdtemp");
		exit(1);
	}
}
#endif

/*
 * fuzz_event_json.c - the event JSON decoder and validator: the input is
 * the body of POST /v1/events, sent through the HTTP/1.1 session with a
 * valid ingest key. The server has a real SQLite store (in a temporary
 * directory) so valid events are stored too; without one the handler
 * would call pr_store_submit(NULL). Each input runs the loop until the
 * store has answered.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz_common.h"
#include "store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY "prk_fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuz"

static struct pr_server *srv;
static char dir[256];
static char db[300];

static void cleanup(void)
{
	if (srv)
		pr_server_free(srv);
	unlink(db);
	snprintf(db + strlen(db), sizeof(db) - strlen(db), "-wal");
	unlink(db);
	db[strlen(db) - 4] = '\0';
	snprintf(db + strlen(db), sizeof(db) - strlen(db), "-shm");
	unlink(db);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pr_config *cfg = pr_config_new();
	unsigned char hash[32];
	char err[512];

	fz_tmpdir(dir, sizeof(dir));
	snprintf(db, sizeof(db), "%s/fuzz.db", dir);
	free(cfg->storage_path);
	cfg->storage_path = strdup(db);
	cfg->storage_synchronous = 1;
	srv = fz_server(cfg);
	srv->store = pr_store_new(srv->loop, srv->cfg, err, sizeof(err));
	if (!srv->store) {
		fprintf(stderr, "fuzz: pr_store_new: %s\n", err);
		exit(1);
	}
	pr_auth_hash(KEY, strlen(KEY), hash);
	if (pr_auth_add(srv->auth, 1, PR_SCOPE_INGEST, hash) != 0) {
		fprintf(stderr, "fuzz: pr_auth_add failed\n");
		exit(1);
	}
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pr_conn *c;
	char head[512];
	int n, i;

	c = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, &pr_http1_proto);
	if (!c)
		return 0;
	n = snprintf(head, sizeof(head),
		     "POST /v1/events HTTP/1.1\r\nHost: x\r\n"
		     "Authorization: Bearer " KEY "\r\n"
		     "Content-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     size);
	pr_conn_feed(c, head, (size_t)n);
	if (size)
		pr_conn_feed(c, data, size);
	/* A valid batch waits for the store thread: run the loop until the
	 * answer is written (bounded, in case it never comes). */
	for (i = 0; i < 20000 && !pr_buf_avail(&c->out); i++) {
		ev_run(srv->loop, EVRUN_NOWAIT);
		if (!pr_buf_avail(&c->out))
			usleep(50);
	}
	if (getenv("FUZZ_DEBUG")) /* show the answer when reproducing */
		fwrite(pr_buf_peek(&c->out), 1, pr_buf_avail(&c->out), stderr);
	fz_drain(c);
	pr_conn_free(c);
	return 0;
}

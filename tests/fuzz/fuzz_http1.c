/*
 * fuzz_http1.c - the HTTP/1.1 request path: bytes from the fuzzer go
 * into an in-memory connection of a server with the built-in routes
 * (healthz, the API, which answers 401 without a key) and an echo route.
 * The first byte picks how the input is split into reads.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "http.h"
#include "router.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pr_server *srv;

static void echo(struct pr_request *req, void *arg)
{
	pr_respond(req, 200, "application/octet-stream",
		   pr_buf_peek(&req->body), pr_buf_avail(&req->body));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pr_config *cfg = pr_config_new();

	cfg->max_header_bytes = 4096;
	cfg->max_body_bytes = 8192;
	srv = fz_server(cfg);
	pr_router_add(srv->router, "POST", "/echo", echo, NULL,
		      PR_ROUTE_PUBLIC);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pr_conn *c;

	if (size < 1)
		return 0;
	c = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, &pr_http1_proto);
	if (!c)
		return 0;
	fz_feed(c, data + 1, size - 1, data[0] & 0x80 ? 0 : data[0]);
	pr_conn_free(c);
	return 0;
}

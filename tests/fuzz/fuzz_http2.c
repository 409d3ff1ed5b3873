/*
 * fuzz_http2.c - the HTTP/2 server session: frames from the fuzzer go
 * into an in-memory h2 connection of a server with the built-in routes
 * and an echo route. Byte 0: bit 7 set = send the client preface first
 * (so the input is frames only), low bits pick how input is split.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "http.h"
#include "http2.h"

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
	cfg->max_streams = 8;
	srv = fz_server(cfg);
	pr_router_add(srv->router, "POST", "/echo", echo, NULL,
		      PR_ROUTE_PUBLIC);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	struct pr_conn *c;

	if (size < 1)
		return 0;
	c = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, &pr_http2_proto);
	if (!c)
		return 0;
	if (data[0] & 0x80) {
		pr_conn_feed(c, preface, sizeof(preface) - 1);
		fz_drain(c);
	}
	fz_feed(c, data + 1, size - 1, data[0] & 0x40 ? data[0] & 0x3f : 0);
	pr_conn_free(c);
	return 0;
}

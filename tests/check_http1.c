/*
 * check_http1.c - the HTTP/1.1 session fed from memory: pipelining,
 * chunked bodies, a request one byte at a time, Expect: 100-continue,
 * every limit, deferred answers and aborts. No sockets.
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "harness.h"
#include "http.h"
#include "router.h"
#include "server.h"

static struct pr_server *srv;
static struct pr_conn *conn;
static struct pr_request *held; /* a deferred request */
static int aborted;

static void echo(struct pr_request *req, void *arg)
{
	pr_respond(req, 200, "application/octet-stream",
		   pr_buf_peek(&req->body), pr_buf_avail(&req->body));
}

static void on_abort(struct pr_request *req, void *arg)
{
	aborted++;
	held = NULL;
}

static void later(struct pr_request *req, void *arg)
{
	held = req;
	pr_request_defer(req, on_abort, NULL);
}

static void on_abort_answers(struct pr_request *req, void *arg)
{
	aborted++;
	/* Not allowed to answer; must be ignored, not crash. */
	pr_respond_error(req, 500, "late", NULL, "too late");
}

static void later_rude(struct pr_request *req, void *arg)
{
	held = req;
	pr_request_defer(req, on_abort_answers, NULL);
}

static void show_auth(struct pr_request *req, void *arg)
{
	const char *v = pr_request_header(req, "authorization");

	v = v ? v : "none";
	pr_respond(req, 200, "text/plain", v, strlen(v));
}

static void big(struct pr_request *req, void *arg)
{
	static char body[40000];

	memset(body, 'b', sizeof(body));
	pr_respond(req, 200, "text/plain", body, sizeof(body));
}

static void make(long max_header, long max_body)
{
	struct pr_config *cfg = pr_config_new();

	ck_assert_ptr_nonnull(cfg);
	if (max_header)
		cfg->max_header_bytes = max_header;
	if (max_body)
		cfg->max_body_bytes = max_body;
	srv = th_mem_server(cfg);
	ck_assert_ptr_nonnull(srv);
	pr_router_add(srv->router, "POST", "/echo", echo, NULL,
		      PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "GET", "/later", later, NULL,
		      PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "GET", "/rude", later_rude, NULL,
		      PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "POST", "/auth", show_auth, NULL,
		      PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "GET", "/big", big, NULL, PR_ROUTE_PUBLIC);
	conn = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, &pr_http1_proto);
	ck_assert_ptr_nonnull(conn);
	held = NULL;
	aborted = 0;
}

static void setup(void)
{
	make(0, 0);
}

static void teardown(void)
{
	if (conn)
		pr_conn_free(conn);
	pr_server_free(srv);
	conn = NULL;
}

static void feed(const char *s)
{
	ck_assert_int_eq(pr_conn_feed(conn, s, strlen(s)), 0);
}

START_TEST(test_get_healthz)
{
	char *out;

	feed("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "Content-Type: application/json"));
	ck_assert_ptr_nonnull(strstr(out, "X-Request-Id: "));
	ck_assert_ptr_nonnull(strstr(out, "\r\n\r\n{\"status\":\"ok\"}"));
	ck_assert_ptr_null(strstr(out, "Connection: close"));
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
	free(out);
}
END_TEST

START_TEST(test_pipelined_in_order)
{
	char *out, *a, *b, *c;

	feed("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	     "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
	     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
	     "hello");
	out = th_take_output(conn);
	a = strstr(out, "HTTP/1.1 200 OK");
	b = strstr(out, "HTTP/1.1 404 Not Found");
	c = a ? strstr(a + 1, "HTTP/1.1 200 OK") : NULL;
	ck_assert_msg(a && b && c, "%s", out);
	ck_assert(a < b && b < c);
	ck_assert_ptr_nonnull(strstr(c, "\r\n\r\nhello"));
	ck_assert_int_eq(th_count(out, "HTTP/1.1 "), 3);
	free(out);
}
END_TEST

START_TEST(test_one_byte_at_a_time_chunked)
{
	const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\n"
			  "Transfer-Encoding: chunked\r\n\r\n"
			  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
	char *out;

	for (size_t i = 0; req[i]; i++) {
		ck_assert_int_eq(pr_conn_feed(conn, req + i, 1), 0);
		if (req[i + 1])
			ck_assert_uint_eq(pr_buf_avail(&conn->out), 0);
	}
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK", 15) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "Content-Length: 11\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "\r\n\r\nhello world"));
	free(out);
}
END_TEST

START_TEST(test_header_too_large)
{
	char req[4096];
	char *out;

	teardown();
	make(1024, 0);
	memset(req, 0, sizeof(req));
	strcpy(req, "GET /healthz HTTP/1.1\r\nX-Big: ");
	memset(req + strlen(req), 'a', 2000);
	strcat(req, "\r\n\r\n");
	feed(req);
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 431 ", 13) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "\"code\":\"headers_too_large\""));
	ck_assert_ptr_nonnull(strstr(out, "Connection: close"));
	ck_assert(conn->flags & PR_CONN_CLOSING);
	free(out);
}
END_TEST

START_TEST(test_too_many_headers)
{
	char req[8192] = "GET /healthz HTTP/1.1\r\n";
	char *out;

	for (int i = 0; i < 150; i++) {
		char line[32];

		snprintf(line, sizeof(line), "X-H%d: v\r\n", i);
		strcat(req, line);
	}
	strcat(req, "\r\n");
	feed(req);
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 431 ", 13) == 0, "%s", out);
	free(out);
}
END_TEST

START_TEST(test_uri_too_long)
{
	char req[4096] = "GET /";
	char *out;

	teardown();
	make(1024, 0);
	memset(req + 5, 'a', 2000);
	strcat(req, " HTTP/1.1\r\n\r\n");
	feed(req);
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 414 ", 13) == 0, "%s", out);
	free(out);
}
END_TEST

START_TEST(test_body_too_large_content_length)
{
	char *out;

	teardown();
	make(0, 1024);
	feed("POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 413 ", 13) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "\"code\":\"body_too_large\""));
	ck_assert(conn->flags & PR_CONN_CLOSING);
	free(out);
}
END_TEST

START_TEST(test_body_too_large_chunked)
{
	char chunk[700];
	char *out;

	teardown();
	make(0, 1024);
	feed("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	memset(chunk, 'z', sizeof(chunk));
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(pr_conn_feed(conn, "2bc\r\n", 5), 0);
		ck_assert_int_eq(pr_conn_feed(conn, chunk, sizeof(chunk)), 0);
		ck_assert_int_eq(pr_conn_feed(conn, "\r\n", 2), 0);
	}
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 413 ", 13) == 0, "%s", out);
	ck_assert_int_eq(th_count(out, "HTTP/1.1 "), 1);
	free(out);
}
END_TEST

START_TEST(test_expect_continue)
{
	char *out;

	feed("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
	     "Expect: 100-continue\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_str_eq(out, "HTTP/1.1 100 Continue\r\n\r\n");
	free(out);
	feed("abc");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK", 15) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "\r\n\r\nabc"));
	free(out);
}
END_TEST

START_TEST(test_expect_unknown)
{
	char *out;

	feed("POST /echo HTTP/1.1\r\nContent-Length: 3\r\n"
	     "Expect: something-else\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 417 ", 13) == 0, "%s", out);
	free(out);
}
END_TEST

START_TEST(test_http10_closes)
{
	char *out;

	feed("GET /healthz HTTP/1.0\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK", 15) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "Connection: close"));
	ck_assert(conn->flags & PR_CONN_CLOSING);
	free(out);
}
END_TEST

START_TEST(test_garbage_is_400)
{
	char *out;

	feed("\x01\x02garbage that is not http\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "\"code\":\"bad_request\""));
	ck_assert(conn->flags & PR_CONN_CLOSING);
	free(out);
}
END_TEST

START_TEST(test_head_has_no_body)
{
	char *out;

	feed("HEAD /healthz HTTP/1.1\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK", 15) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "Content-Length: 15\r\n"));
	ck_assert_ptr_null(strstr(out, "{\"status\""));
	free(out);
}
END_TEST

START_TEST(test_request_id_taken_from_client)
{
	char *out;

	feed("GET /healthz HTTP/1.1\r\nX-Request-Id: abc-123\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_ptr_nonnull(strstr(out, "X-Request-Id: abc-123\r\n"));
	free(out);
	/* Unsafe ids are replaced. */
	feed("GET /healthz HTTP/1.1\r\nX-Request-Id: a b\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_ptr_null(strstr(out, "X-Request-Id: a b"));
	ck_assert_ptr_nonnull(strstr(out, "X-Request-Id: "));
	free(out);
}
END_TEST

START_TEST(test_deferred_keeps_order)
{
	char *out;

	feed("GET /later HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
	ck_assert_ptr_nonnull(held);
	ck_assert_uint_eq(pr_buf_avail(&conn->out), 0);
	/* The pipelined request waits, unparsed. */
	ck_assert_uint_gt(pr_buf_avail(&conn->in), 0);
	pr_respond(held, 202, "text/plain", "late", 4);
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 202 Accepted", 21) == 0, "%s",
		      out);
	ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 200 OK"));
	ck_assert(strstr(out, "late") < strstr(out, "HTTP/1.1 200 OK"));
	free(out);
}
END_TEST

START_TEST(test_deferred_abort_on_close)
{
	feed("GET /later HTTP/1.1\r\n\r\n");
	ck_assert_ptr_nonnull(held);
	pr_conn_free(conn);
	conn = NULL;
	ck_assert_int_eq(aborted, 1);
}
END_TEST

START_TEST(test_upgrade_h2c_ignored)
{
	char *out;

	feed("GET /healthz HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
	     "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
	     "GET /healthz HTTP/1.1\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_int_eq(th_count(out, "HTTP/1.1 200 OK"), 2);
	free(out);
}
END_TEST

START_TEST(test_backpressure_pauses_parsing)
{
	struct pr_config *cfg = pr_config_new();
	const char *one = "GET /healthz HTTP/1.1\r\n\r\n";
	size_t olen = strlen(one), n = 0, fed = 0, before;
	char *req;
	int answers;

	teardown();
	cfg->output_buffer_bytes = 65536;
	srv = th_mem_server(cfg);
	conn = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, &pr_http1_proto);
	/* 4000 pipelined requests whose answers are not read. */
	req = malloc(olen * 4000);
	for (int i = 0; i < 4000; i++, n += olen)
		memcpy(req + n, one, olen);
	/* Feed like the socket does: 16 KiB reads, stopping once the
	 * session leaves input unconsumed. */
	while (fed < n && pr_buf_avail(&conn->in) == 0) {
		size_t take = n - fed < 16384 ? n - fed : 16384;

		ck_assert_int_eq(pr_conn_feed(conn, req + fed, take), 0);
		fed += take;
	}
	ck_assert_uint_lt(fed, n);
	ck_assert_uint_gt(pr_buf_avail(&conn->in), 0);
	/* Output stopped near the high-water mark (half the buffer). */
	ck_assert_uint_le(pr_buf_avail(&conn->out), 65536);
	answers = th_count(pr_buf_peek(&conn->out), "HTTP/1.1 200");
	ck_assert_int_gt(answers, 0);
	/* The peer reads; parsing resumes and more answers come. */
	before = pr_buf_avail(&conn->in);
	pr_buf_consume(&conn->out, pr_buf_avail(&conn->out));
	pr_conn_kick(conn);
	ck_assert_uint_lt(pr_buf_avail(&conn->in), before);
	ck_assert_int_gt(th_count(pr_buf_peek(&conn->out), "HTTP/1.1 200"), 0);
	free(req);
}
END_TEST

/* Regressions from review. */
START_TEST(test_first_byte_alone_does_not_stall)
{
	struct pr_conn *c2 = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, NULL);
	char *out;

	ck_assert_int_eq(pr_conn_feed(c2, "P", 1), 0);
	ck_assert_ptr_null(c2->proto);
	ck_assert_int_eq(pr_conn_feed(c2,
				      "OST /echo HTTP/1.1\r\n"
				      "Content-Length: 2\r\n\r\nhi",
				      strlen("OST /echo HTTP/1.1\r\nContent-"
					     "Length: 2\r\n\r\nhi")),
			 0);
	out = th_take_output(c2);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK", 15) == 0, "%s", out);
	free(out);
	pr_conn_free(c2);
}
END_TEST

START_TEST(test_upgrade_then_pause_keeps_next_request)
{
	char *out;

	feed("GET /later HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
	     "\r\nGET /healthz HTTP/1.1\r\nHo");
	ck_assert_ptr_nonnull(held);
	pr_respond(held, 200, "text/plain", "x", 1);
	feed("st: x\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_int_eq(th_count(out, "HTTP/1.1 200 OK"), 2);
	/* A status line, not any "400": request ids are random hex. */
	ck_assert_ptr_null(strstr(out, "HTTP/1.1 400"));
	free(out);
}
END_TEST

START_TEST(test_trailers_are_not_headers)
{
	char *out;

	feed("POST /auth HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "1\r\na\r\n0\r\nAuthorization: Bearer evil\r\nX-T: 1\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strstr(out, "\r\n\r\nnone") != NULL, "%s", out);
	free(out);
}
END_TEST

START_TEST(test_oversize_answer_is_500_not_truncated)
{
	struct pr_config *cfg = pr_config_new();
	char *out;

	teardown();
	cfg->output_buffer_bytes = 65536;
	srv = th_mem_server(cfg);
	pr_router_add(srv->router, "GET", "/big", big, NULL, PR_ROUTE_PUBLIC);
	conn = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, &pr_http1_proto);
	feed("GET /big HTTP/1.1\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 500 ", 13) == 0, "%s", out);
	ck_assert_ptr_null(strstr(out, "Content-Length: 40000"));
	free(out);
}
END_TEST

START_TEST(test_head_flag_not_stale)
{
	char *out;

	feed("HEAD /healthz HTTP/1.1\r\n\r\n");
	free(th_take_output(conn));
	feed("\x01"
	     "bad\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "\r\n\r\n{\"error\""));
	free(out);
}
END_TEST

START_TEST(test_http10_keepalive_said)
{
	char *out;

	feed("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_ptr_nonnull(strstr(out, "Connection: keep-alive\r\n"));
	ck_assert(!(conn->flags & PR_CONN_CLOSING));
	free(out);
}
END_TEST

START_TEST(test_no_continue_without_body)
{
	char *out;

	feed("GET /healthz HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_ptr_null(strstr(out, "100 Continue"));
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK", 15) == 0, "%s", out);
	free(out);
}
END_TEST

START_TEST(test_abort_callback_cannot_answer)
{
	feed("GET /rude HTTP/1.1\r\n\r\n");
	ck_assert_ptr_nonnull(held);
	pr_conn_free(conn);
	conn = NULL;
	ck_assert_int_eq(aborted, 1);
}
END_TEST

START_TEST(test_non_ascii_target_is_400)
{
	char *out;

	feed("GET /\x80\xff HTTP/1.1\r\n\r\n");
	out = th_take_output(conn);
	ck_assert_msg(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http1");
	TCase *tc = tcase_create("session");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_get_healthz);
	tcase_add_test(tc, test_pipelined_in_order);
	tcase_add_test(tc, test_one_byte_at_a_time_chunked);
	tcase_add_test(tc, test_header_too_large);
	tcase_add_test(tc, test_too_many_headers);
	tcase_add_test(tc, test_uri_too_long);
	tcase_add_test(tc, test_body_too_large_content_length);
	tcase_add_test(tc, test_body_too_large_chunked);
	tcase_add_test(tc, test_expect_continue);
	tcase_add_test(tc, test_expect_unknown);
	tcase_add_test(tc, test_http10_closes);
	tcase_add_test(tc, test_garbage_is_400);
	tcase_add_test(tc, test_head_has_no_body);
	tcase_add_test(tc, test_request_id_taken_from_client);
	tcase_add_test(tc, test_deferred_keeps_order);
	tcase_add_test(tc, test_deferred_abort_on_close);
	tcase_add_test(tc, test_upgrade_h2c_ignored);
	tcase_add_test(tc, test_backpressure_pauses_parsing);
	tcase_add_test(tc, test_first_byte_alone_does_not_stall);
	tcase_add_test(tc, test_upgrade_then_pause_keeps_next_request);
	tcase_add_test(tc, test_trailers_are_not_headers);
	tcase_add_test(tc, test_oversize_answer_is_500_not_truncated);
	tcase_add_test(tc, test_head_flag_not_stale);
	tcase_add_test(tc, test_http10_keepalive_said);
	tcase_add_test(tc, test_no_continue_without_body);
	tcase_add_test(tc, test_abort_callback_cannot_answer);
	tcase_add_test(tc, test_non_ascii_target_is_400);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

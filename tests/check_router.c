/* check_router.c - path patterns, parameters, 404 and 405 with Allow, and
 * listener separation (admin-only routes). */
#include "autoconf.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "harness.h"
#include "pushrelay.h"
#include "http.h"
#include "metrics.h"
#include "router.h"
#include "server.h"

static struct pr_server *srv;
static struct pr_conn *conn;
static int answered;

static void record(struct pr_request *req)
{
	answered++;
}

static const struct pr_request_ops ops = {.respond = record};

static void echo_param(struct pr_request *req, void *arg)
{
	char text[256];

	snprintf(text, sizeof(text), "%s|%s", req->params[0],
		 req->n_params > 1 ? req->params[1] : "");
	pr_respond(req, 200, "text/plain", text, strlen(text));
}

static void setup(void)
{
	srv = th_mem_server(NULL);
	ck_assert_ptr_nonnull(srv);
	pr_router_add(srv->router, "GET", "/v1/users/{user}/devices/{id}",
		      echo_param, NULL, PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "PUT", "/v1/devices/{id}", echo_param, NULL,
		      PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "DELETE", "/v1/devices/{id}", echo_param,
		      NULL, PR_ROUTE_PUBLIC);
	pr_router_add(srv->router, "GET", "/v1/admin/test-only", echo_param,
		      NULL, PR_ROUTE_ADMIN);
	conn = pr_conn_new_mem(srv, PR_ROUTE_PUBLIC, NULL);
	answered = 0;
}

static void teardown(void)
{
	pr_conn_free(conn);
	pr_server_free(srv);
}

/* Build and dispatch a request; returns it (caller cleans up). */
static struct pr_request *go(const char *method, const char *target,
			     unsigned flags)
{
	struct pr_request *req = calloc(1, sizeof(*req));

	pr_request_init(req, conn, PR_PROTO_HTTP1, &ops, NULL);
	ck_assert_int_eq(pr_request_set_method(req, method, strlen(method)), 0);
	ck_assert_int_eq(pr_request_set_target(req, target, strlen(target)), 0);
	pr_router_dispatch(srv->router, req, flags);
	return req;
}

static void done(struct pr_request *req)
{
	pr_request_cleanup(req);
	free(req);
}

START_TEST(test_params_decoded)
{
	struct pr_request *req = go(
	    "GET", "/v1/users/al%20ice/devices/phone-1?x=1", PR_ROUTE_PUBLIC);

	ck_assert_int_eq(req->status, 200);
	ck_assert_uint_eq(req->n_params, 2);
	ck_assert_str_eq(req->params[0], "al ice");
	ck_assert_str_eq(req->params[1], "phone-1");
	ck_assert_int_eq(answered, 1);
	done(req);
}
END_TEST

START_TEST(test_not_found)
{
	struct pr_request *req = go("GET", "/v1/nothing", PR_ROUTE_PUBLIC);
	json_t *doc;

	ck_assert_int_eq(req->status, 404);
	doc = json_loadb(req->resp_body, req->resp_len, 0, NULL);
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(doc, "error"), "code")),
			 "not_found");
	json_decref(doc);
	done(req);
	/* An empty segment does not match a {param}. */
	req = go("PUT", "/v1/devices/", PR_ROUTE_PUBLIC);
	ck_assert_int_eq(req->status, 404);
	done(req);
}
END_TEST

START_TEST(test_method_not_allowed_lists_allow)
{
	struct pr_request *req = go("POST", "/v1/devices/x", PR_ROUTE_PUBLIC);
	const char *allow = NULL;

	ck_assert_int_eq(req->status, 405);
	for (size_t i = 0; i < req->n_resp_headers; i++)
		if (strcmp(req->resp_headers[i].name, "Allow") == 0)
			allow = req->resp_headers[i].value;
	ck_assert_ptr_nonnull(allow);
	ck_assert_str_eq(allow, "PUT, DELETE");
	done(req);
}
END_TEST

START_TEST(test_head_uses_get)
{
	struct pr_request *req = go("HEAD", "/healthz", PR_ROUTE_PUBLIC);

	ck_assert_int_eq(req->status, 200);
	done(req);
}
END_TEST

START_TEST(test_admin_route_hidden_from_public)
{
	struct pr_request *req =
	    go("GET", "/v1/admin/test-only", PR_ROUTE_PUBLIC);

	ck_assert_int_eq(req->status, 404);
	done(req);
	req = go("GET", "/v1/admin/test-only", PR_ROUTE_ADMIN);
	ck_assert_int_eq(req->status, 200);
	done(req);
}
END_TEST

START_TEST(test_bad_percent_encoding)
{
	struct pr_request *req = go("PUT", "/v1/devices/a%zz", PR_ROUTE_PUBLIC);

	ck_assert_int_eq(req->status, 400);
	done(req);
	req = go("PUT", "/v1/devices/a%00b", PR_ROUTE_PUBLIC);
	ck_assert_int_eq(req->status, 400);
	done(req);
}
END_TEST

START_TEST(test_query_lookup)
{
	struct pr_request *req =
	    go("GET", "/healthz?after=12&u=a%2Bb+c&e", PR_ROUTE_PUBLIC);
	char v[16];

	ck_assert_int_eq(pr_request_query(req, "after", v, sizeof(v)), 2);
	ck_assert_str_eq(v, "12");
	ck_assert_int_eq(pr_request_query(req, "u", v, sizeof(v)), 5);
	ck_assert_str_eq(v, "a+b c");
	ck_assert_int_eq(pr_request_query(req, "e", v, sizeof(v)), 0);
	ck_assert_int_eq(pr_request_query(req, "missing", v, sizeof(v)), -1);
	ck_assert_int_eq(pr_request_query(req, "u", v, 3), PR_ERR_INVAL);
	done(req);
}
END_TEST

static const char *metric_route(void *ctx, size_t i, const char **method)
{
	*method = "GET";
	return "/r";
}

START_TEST(test_metrics_overflow_by_class)
{
	struct pr_metrics *m = pr_metrics_new(1);
	struct pr_buf out;

	for (int st = 200; st < 216; st++)
		pr_metrics_request(m, 0, st, 0.001);
	for (int i = 0; i < 10; i++)
		pr_metrics_request(m, 0, 429, 0.001);
	pr_metrics_request(m, 0, 503, 0.001);
	pr_buf_init(&out, 1 << 20);
	ck_assert_int_eq(pr_metrics_render(m, &out, metric_route, NULL), 0);
	ck_assert_ptr_nonnull(
	    strstr(pr_buf_peek(&out), "status=\"4xx\"} 10\n"));
	ck_assert_ptr_nonnull(strstr(pr_buf_peek(&out), "status=\"5xx\"} 1\n"));
	pr_buf_cleanup(&out);
	pr_metrics_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("dispatch");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_params_decoded);
	tcase_add_test(tc, test_not_found);
	tcase_add_test(tc, test_method_not_allowed_lists_allow);
	tcase_add_test(tc, test_head_uses_get);
	tcase_add_test(tc, test_admin_route_hidden_from_public);
	tcase_add_test(tc, test_bad_percent_encoding);
	tcase_add_test(tc, test_query_lookup);
	tcase_add_test(tc, test_metrics_overflow_by_class);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

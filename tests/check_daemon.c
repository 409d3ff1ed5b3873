/*
 * check_daemon.c - integration tests against a real pushrelayd on
 * ephemeral loopback ports: HTTP/1.1, h2c and TLS h2 through libcurl, the
 * admin Unix socket, every limit, signals (graceful stop, reload) and a
 * barrage of malformed input after which the daemon still serves with
 * flat memory.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct th_daemon d;

static void start(const char *extra_server, const char *extra)
{
	ck_assert_msg(th_daemon_start(&d, extra_server, extra) == 0,
		      "pushrelayd did not start; log: %s", d.log);
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
}

static json_t *body_json(const struct th_resp *r)
{
	json_t *doc = json_loadb(r->body, r->len, 0, NULL);

	ck_assert_msg(doc != NULL, "not JSON: %s", r->body);
	return doc;
}

static const char *error_code(json_t *doc)
{
	return json_string_value(
	    json_object_get(json_object_get(doc, "error"), "code"));
}

START_TEST(test_healthz_all_protocols)
{
	static const enum th_mode modes[] = {TH_H1, TH_H2C, TH_H2TLS, TH_H1TLS};
	static const long want[] = {
	    CURL_HTTP_VERSION_1_1, CURL_HTTP_VERSION_2_0, CURL_HTTP_VERSION_2_0,
	    CURL_HTTP_VERSION_1_1};
	struct th_resp r;

	start(NULL, NULL);
	for (size_t i = 0; i < 4; i++) {
		json_t *doc;

		ck_assert_int_eq(
		    th_request(&d, modes[i], "GET", "/healthz", NULL, NULL, &r),
		    0);
		ck_assert_int_eq(r.status, 200);
		ck_assert_msg(r.version == want[i], "mode %zu: version %ld", i,
			      r.version);
		ck_assert_ptr_nonnull(strcasestr(r.headers, "x-request-id: "));
		doc = body_json(&r);
		ck_assert_str_eq(
		    json_string_value(json_object_get(doc, "status")), "ok");
		json_decref(doc);
		th_resp_free(&r);
	}
}
END_TEST

START_TEST(test_ipv6_and_unix_listeners)
{
	struct th_resp r;

	start(NULL, NULL);
	ck_assert_int_eq(th_request_unix(d.admin_sock, "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	if (d.port6) {
		char url[64];
		CURL *h = curl_easy_init();
		long status = 0;

		snprintf(url, sizeof(url), "http://[::1]:%d/healthz", d.port6);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		ck_assert_int_eq(status, 200);
		curl_easy_cleanup(h);
	}
}
END_TEST

START_TEST(test_errors_are_json)
{
	struct th_resp r;
	json_t *doc;

	start(NULL, NULL);
	ck_assert_int_eq(th_request(&d, TH_H2C, "GET", "/nope", NULL, NULL, &r),
			 0);
	ck_assert_int_eq(r.status, 404);
	doc = body_json(&r);
	ck_assert_str_eq(error_code(doc), "not_found");
	json_decref(doc);
	th_resp_free(&r);

	ck_assert_int_eq(
	    th_request(&d, TH_H1, "DELETE", "/healthz", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 405);
	ck_assert_ptr_nonnull(strcasestr(r.headers, "allow: GET"));
	doc = body_json(&r);
	ck_assert_str_eq(error_code(doc), "method_not_allowed");
	json_decref(doc);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_metrics_and_version)
{
	struct th_resp r;
	json_t *doc;

	start(NULL, NULL);
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/v1/version", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	doc = body_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "version")),
			 PACKAGE_VERSION);
	ck_assert_ptr_nonnull(
	    json_object_get(json_object_get(doc, "libraries"), "nghttp2"));
	json_decref(doc);
	th_resp_free(&r);

	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\npushrelay_connections 1\n"));
	/* The readiness probe of the harness hit /healthz at least once. */
	ck_assert_ptr_nonnull(
	    strstr(r.body, "pushrelay_http_requests_total{route=\"/healthz\","
			   "method=\"GET\",status=\"200\"} "));
	ck_assert_ptr_nonnull(strstr(r.body, "pushrelay_http_requests_total{"
					     "route=\"/v1/version\",method="
					     "\"GET\",status=\"200\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "process_resident_memory_bytes "));
	th_resp_free(&r);
}
END_TEST

START_TEST(test_limits_header_and_body)
{
	char big[4096];
	const char *hdrs[] = {big, NULL};
	char *body;
	struct th_resp r;
	json_t *doc;

	start("max_header_bytes = 2k\nmax_body_bytes = 1k\n", NULL);
	snprintf(big, sizeof(big), "X-Big: %03000d", 7);
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/healthz", NULL, hdrs, &r), 0);
	ck_assert_int_eq(r.status, 431);
	doc = body_json(&r);
	ck_assert_str_eq(error_code(doc), "headers_too_large");
	json_decref(doc);
	th_resp_free(&r);

	ck_assert_int_eq(
	    th_request(&d, TH_H2C, "GET", "/healthz", NULL, hdrs, &r), 0);
	ck_assert_int_eq(r.status, 431);
	th_resp_free(&r);

	body = malloc(5000);
	memset(body, 'b', 4999);
	body[4999] = '\0';
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "POST", "/healthz", body, NULL, &r), 0);
	ck_assert_int_eq(r.status, 413);
	th_resp_free(&r);
	ck_assert_int_eq(
	    th_request(&d, TH_H2C, "POST", "/healthz", body, NULL, &r), 0);
	ck_assert_int_eq(r.status, 413);
	th_resp_free(&r);
	free(body);

	/* Still serving. */
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/healthz", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_chunked_and_pipelined_over_socket)
{
	char buf[8192];
	int fd, eof;

	start(NULL, NULL);
	fd = th_connect(d.port);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(
	    th_send(
		fd,
		"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST /healthz HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
		"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		strlen("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
		       "POST /healthz HTTP/1.1\r\nHost: a\r\n"
		       "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
		       "0\r\n\r\n"
		       "GET /readyz HTTP/1.1\r\nHost: a\r\n"
		       "Connection: close\r\n\r\n")),
	    0);
	th_recv_all(fd, buf, sizeof(buf), 5.0, &eof);
	close(fd);
	ck_assert_int_eq(eof, 1);
	ck_assert_int_eq(th_count(buf, "HTTP/1.1 "), 3);
	ck_assert(strstr(buf, "HTTP/1.1 200") < strstr(buf, "HTTP/1.1 405"));
	ck_assert_ptr_nonnull(strstr(buf, "{\"status\":\"ready\"}"));
}
END_TEST

START_TEST(test_expect_continue_over_socket)
{
	char buf[4096];
	int fd, eof;

	start(NULL, NULL);
	fd = th_connect(d.port);
	ck_assert_int_ge(fd, 0);
	th_send(
	    fd,
	    "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
	    "Expect: 100-continue\r\n\r\n",
	    strlen("POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
		   "Expect: 100-continue\r\n\r\n"));
	th_recv_until(fd, buf, sizeof(buf), "\r\n\r\n", 5.0);
	ck_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
	th_send(fd, "data", 4);
	th_recv_until(fd, buf, sizeof(buf), "}}", 5.0);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 405", 12) == 0, "%s", buf);
	close(fd);
	(void)eof;
}
END_TEST

START_TEST(test_slowloris_gets_408)
{
	char buf[4096];
	int fd, eof;

	start("header_timeout = 1\n", NULL);
	fd = th_connect(d.port);
	ck_assert_int_ge(fd, 0);
	/* A header trickles in, never finishing within header_timeout. */
	th_send(fd, "GET /healthz HTTP/1.1\r\nX-Slow: ", 31);
	for (int i = 0; i < 5; i++) {
		usleep(300000);
		if (th_send(fd, "a", 1))
			break;
	}
	th_recv_all(fd, buf, sizeof(buf), 5.0, &eof);
	close(fd);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "request_timeout"));
	ck_assert_int_eq(eof, 1);

	/* A connection that says nothing is closed silently. */
	fd = th_connect(d.port);
	th_recv_all(fd, buf, sizeof(buf), 4.0, &eof);
	close(fd);
	ck_assert_int_eq(eof, 1);
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_connection_limit_503)
{
	int fds[4];
	char buf[2048];
	int fd, eof;
	struct th_resp r;

	start("max_connections = 4\n", NULL);
	/* Let the harness's readiness probe connection close first. */
	usleep(300000);
	for (int i = 0; i < 4; i++) {
		fds[i] = th_connect(d.port);
		ck_assert_int_ge(fds[i], 0);
	}
	usleep(200000);
	/* All four were taken: none was answered 503 and closed. */
	for (int i = 0; i < 4; i++) {
		struct pollfd p = {fds[i], POLLIN, 0};

		ck_assert_int_eq(poll(&p, 1, 0), 0);
	}
	fd = th_connect(d.port);
	ck_assert_int_ge(fd, 0);
	th_recv_all(fd, buf, sizeof(buf), 5.0, &eof);
	close(fd);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "Retry-After: "));
	ck_assert_ptr_nonnull(strstr(buf, "\"code\":\"overloaded\""));
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	usleep(200000);
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/metrics", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(
	    strstr(r.body, "pushrelay_connections_rejected_total 1\n"));
	th_resp_free(&r);
}
END_TEST

START_TEST(test_graceful_stop_finishes_in_flight)
{
	char buf[4096];
	int fd, eof, st;

	start("drain_timeout = 10\n", NULL);
	fd = th_connect(d.port);
	ck_assert_int_ge(fd, 0);
	/* A request in flight: headers and half the body. */
	th_send(fd,
		"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
		"\r\n12345",
		strlen("POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: "
		       "10\r\n\r\n12345"));
	usleep(100000);
	kill(d.pid, SIGTERM);
	usleep(300000);
	ck_assert(th_alive(d.pid));
	/* No new connections are taken while draining. */
	ck_assert_int_lt(th_connect(d.port), 0);
	th_send(fd, "67890", 5);
	th_recv_all(fd, buf, sizeof(buf), 5.0, &eof);
	close(fd);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 405 ", 13) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "Connection: close"));
	ck_assert_int_eq(eof, 1);
	st = th_daemon_stop(&d, 0, 5.0);
	ck_assert_int_eq(st, 0);
}
END_TEST

START_TEST(test_drain_timeout_bounds_stop)
{
	int fd, st;

	start("drain_timeout = 1\nbody_timeout = 60\n", NULL);
	fd = th_connect(d.port);
	th_send(fd, "POST /healthz HTTP/1.1\r\nContent-Length: 10\r\n\r\n1",
		47);
	usleep(100000);
	st = th_daemon_stop(&d, SIGTERM, 5.0);
	ck_assert_int_eq(st, 0);
	close(fd);
}
END_TEST

START_TEST(test_h2_graceful_stop)
{
	struct th_resp r;
	int st;

	start(NULL, NULL);
	ck_assert_int_eq(
	    th_request(&d, TH_H2C, "GET", "/readyz", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	st = th_daemon_stop(&d, SIGINT, 5.0);
	ck_assert_int_eq(st, 0);
}
END_TEST

START_TEST(test_reload_changes_log_level)
{
	char conf_extra[512], *log, *conf, *p;
	struct th_resp r;

	start(NULL, NULL);
	/* At info, a 404 is not logged. */
	th_request(&d, TH_H1, "GET", "/quiet-path", NULL, NULL, &r);
	th_resp_free(&r);
	conf = th_read_file(d.conf);
	ck_assert_ptr_nonnull(conf);
	p = strstr(conf, "level = info");
	ck_assert_ptr_nonnull(p);
	memcpy(p, "level =debug", 12);
	ck_assert_int_eq(th_write_file(d.conf, conf), 0);
	free(conf);
	kill(d.pid, SIGHUP);
	usleep(300000);
	th_request(&d, TH_H1, "GET", "/loud-path", NULL, NULL, &r);
	th_resp_free(&r);
	usleep(100000);
	log = th_read_file(d.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_ptr_null(strstr(log, "/quiet-path"));
	ck_assert_msg(strstr(log, "/loud-path") != NULL, "%s", log);
	ck_assert_ptr_nonnull(strstr(log, "configuration reloaded"));
	free(log);

	/* A broken config on reload keeps the old one running. */
	snprintf(conf_extra, sizeof(conf_extra), "[server]\nbogus = 1\n");
	ck_assert_int_eq(th_write_file(d.conf, conf_extra), 0);
	kill(d.pid, SIGHUP);
	usleep(300000);
	ck_assert(th_alive(d.pid));
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/healthz", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	log = th_read_file(d.log);
	ck_assert_ptr_nonnull(strstr(log, "reload failed"));
	ck_assert_ptr_nonnull(strstr(log, "bogus"));
	free(log);
}
END_TEST

static int run_cmd(const char *cmd, char *out, size_t outlen)
{
	FILE *fp = popen(cmd, "r");
	size_t n;
	int st;

	ck_assert_ptr_nonnull(fp);
	n = fread(out, 1, outlen - 1, fp);
	out[n] = '\0';
	st = pclose(fp);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_config_check_flag)
{
	char dir[256], path[300], cmd[1024], out[4096];
	const char *bin = getenv("PUSHRELAYD");

	ck_assert_ptr_nonnull(bin);
	ck_assert_int_eq(th_tmpdir(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/ok.conf", dir);
	th_write_file(path, "[server]\nlisten = 127.0.0.1:0\n[admin]\n"
			    "listen = 127.0.0.1:0\n");
	snprintf(cmd, sizeof(cmd), "%s -t -c %s 2>&1", bin, path);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "configuration OK"));

	th_write_file(path, "[server]\nlisten = 127.0.0.1:0\n\n"
			    "max_body_bytes = lots\n");
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "ok.conf:4") && strstr(out, "max_body_bytes"),
		      "%s", out);
	unlink(path);

	snprintf(cmd, sizeof(cmd), "%s -V 2>&1", bin);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "pushrelayd " PACKAGE_VERSION));
	ck_assert_ptr_nonnull(strstr(out, "nghttp2"));
	rmdir(dir);
}
END_TEST

START_TEST(test_ctl_health)
{
	char cmd[1024], out[4096];
	const char *ctl = getenv("PUSHRELAYCTL");

	ck_assert_ptr_nonnull(ctl);
	start(NULL, NULL);
	snprintf(cmd, sizeof(cmd), "%s -c %s health 2>&1", ctl, d.conf);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "status") && strstr(out, "ok"), "%s", out);
	snprintf(cmd, sizeof(cmd), "%s -c %s --json version 2>&1", ctl, d.conf);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"version\":\"" PACKAGE_VERSION));
	th_daemon_stop(&d, SIGTERM, 5.0);
	snprintf(cmd, sizeof(cmd), "%s -c %s health 2>&1", ctl, d.conf);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 3);
	ck_assert_ptr_nonnull(strstr(out, "cannot reach the daemon"));
}
END_TEST

/* Kinds of bad input for the barrage; each is sent on its own connection. */
static void send_bad(int port, int kind, int i)
{
	static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	char buf[20000];
	size_t n = 0;
	int fd = th_connect(port), eof;

	if (fd < 0)
		return;
	switch (kind) {
	case 0: /* garbage */
		for (n = 0; n < 512; n++)
			buf[n] = (char)((i * 131 + (int)n * 7) & 0xff);
		break;
	case 1: /* oversize header */
		n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
		memset(buf + n, 'x', 18000);
		n += 18000;
		break;
	case 2: /* truncated request, then close */
		n = (size_t)snprintf(buf, sizeof(buf),
				     "POST /healthz HTTP/1.1\r\n"
				     "Content-Length: 100\r\n\r\nab");
		break;
	case 3: /* invalid HTTP/2 frames after the preface */
		memcpy(buf, h2_preface, sizeof(h2_preface) - 1);
		n = sizeof(h2_preface) - 1;
		/* A frame header claiming 16 MiB, type 0xff, on stream 0. */
		memcpy(buf + n, "\xff\xff\xff\x01\x00\x00\x00\x00\x00", 9);
		n += 9;
		for (int k = 0; k < 64; k++)
			buf[n++] = (char)k;
		break;
	case 4: /* a bad chunk size */
		n = (size_t)snprintf(
		    buf, sizeof(buf),
		    "POST /healthz HTTP/1.1\r\nTransfer-Encoding: "
		    "chunked\r\n\r\nzz\r\n");
		break;
	}
	th_send(fd, buf, n);
	if (kind != 2)
		th_recv_all(fd, buf, 4096, 0.2, &eof);
	close(fd);
}

START_TEST(test_malformed_barrage_memory_flat)
{
	struct th_resp r;
	long rss_warm, rss_end;
	int slow[8];

	start("header_timeout = 1\n", NULL);
	for (int i = 0; i < 100; i++)
		send_bad(d.port, i % 5, i);
	rss_warm = th_rss_kb(d.pid);
	ck_assert_int_gt(rss_warm, 0);
	/* A few slow clients hold connections while the rest arrive. */
	for (int i = 0; i < 8; i++) {
		slow[i] = th_connect(d.port);
		th_send(slow[i], "GET /healthz HTTP/1.1\r\nX-S", 26);
	}
	for (int i = 0; i < 1000; i++)
		send_bad(d.port, i % 5, i);
	for (int i = 0; i < 8; i++)
		close(slow[i]);
	ck_assert(th_alive(d.pid));
	ck_assert_int_eq(
	    th_request(&d, TH_H1, "GET", "/healthz", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	ck_assert_int_eq(
	    th_request(&d, TH_H2C, "GET", "/healthz", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	rss_end = th_rss_kb(d.pid);
	/* Flat: no growth with the number of bad requests (allow allocator
	 * noise; ASan's quarantine adds some). */
	ck_assert_msg(rss_end - rss_warm < 16 * 1024,
		      "RSS grew from %ld to %ld KiB", rss_warm, rss_end);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("integration");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_healthz_all_protocols);
	tcase_add_test(tc, test_ipv6_and_unix_listeners);
	tcase_add_test(tc, test_errors_are_json);
	tcase_add_test(tc, test_metrics_and_version);
	tcase_add_test(tc, test_limits_header_and_body);
	tcase_add_test(tc, test_chunked_and_pipelined_over_socket);
	tcase_add_test(tc, test_expect_continue_over_socket);
	tcase_add_test(tc, test_slowloris_gets_408);
	tcase_add_test(tc, test_connection_limit_503);
	tcase_add_test(tc, test_graceful_stop_finishes_in_flight);
	tcase_add_test(tc, test_drain_timeout_bounds_stop);
	tcase_add_test(tc, test_h2_graceful_stop);
	tcase_add_test(tc, test_reload_changes_log_level);
	tcase_add_test(tc, test_config_check_flag);
	tcase_add_test(tc, test_ctl_health);
	tcase_add_test(tc, test_malformed_barrage_memory_flat);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

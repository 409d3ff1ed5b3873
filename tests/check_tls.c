/*
 * check_tls.c - what the daemon's TLS listener accepts: TLS 1.2 only with
 * forward-secret AEAD suites, TLS 1.3, ALPN h2 then http/1.1; older
 * protocols and weak suites are refused at the handshake. A private key
 * that group or others can read stops the daemon at start with a message
 * naming the file.
 */
#include "autoconf.h"

#include <check.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct th_daemon d;

static void teardown(void)
{
	th_daemon_cleanup(&d);
}

static void start(void)
{
	ck_assert_msg(th_daemon_start(&d, NULL, NULL) == 0,
		      "pushrelayd did not start; log: %s", d.log);
}

/*
 * One handshake with the daemon's TLS port. version pins the protocol
 * (0 = any); ciphers, when set, is the TLS 1.2 cipher list. On success
 * the negotiated cipher and ALPN are copied out. 1 when the handshake
 * completed, 0 when the server refused it.
 */
static int handshake(int version, const char *ciphers, char *cipher,
		     size_t cipherlen, char *alpn, size_t alpnlen)
{
	static const unsigned char protos[] = "\x02h2\x08http/1.1";
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const unsigned char *sel = NULL;
	unsigned sellen = 0;
	SSL *ssl;
	int fd, ok;

	ck_assert_ptr_nonnull(ctx);
	/* Let the client offer what OpenSSL 3 refuses by default, so that
	 * the refusal tested is the server's. */
	SSL_CTX_set_security_level(ctx, 0);
	if (version) {
		SSL_CTX_set_min_proto_version(ctx, version);
		SSL_CTX_set_max_proto_version(ctx, version);
	}
	if (ciphers)
		ck_assert_int_eq(SSL_CTX_set_cipher_list(ctx, ciphers), 1);
	SSL_CTX_set_alpn_protos(ctx, protos, sizeof(protos) - 1);
	fd = th_connect(d.tls_port);
	ck_assert_int_ge(fd, 0);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	ok = SSL_connect(ssl) == 1;
	if (ok) {
		snprintf(cipher, cipherlen, "%s", SSL_get_cipher_name(ssl));
		SSL_get0_alpn_selected(ssl, &sel, &sellen);
		snprintf(alpn, alpnlen, "%.*s", (int)sellen, (const char *)sel);
		SSL_shutdown(ssl);
	}
	ERR_clear_error();
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return ok;
}

START_TEST(test_protocol_versions)
{
	char cipher[64], alpn[32];

	start();
	ck_assert_msg(!handshake(TLS1_VERSION, "ALL:@SECLEVEL=0", cipher,
				 sizeof(cipher), alpn, sizeof(alpn)),
		      "TLS 1.0 accepted");
	ck_assert_msg(!handshake(TLS1_1_VERSION, "ALL:@SECLEVEL=0", cipher,
				 sizeof(cipher), alpn, sizeof(alpn)),
		      "TLS 1.1 accepted");
	ck_assert(handshake(TLS1_2_VERSION, NULL, cipher, sizeof(cipher), alpn,
			    sizeof(alpn)));
	ck_assert_str_eq(alpn, "h2");
	ck_assert_msg(handshake(TLS1_3_VERSION, NULL, cipher, sizeof(cipher),
				alpn, sizeof(alpn)),
		      "TLS 1.3 refused");
	ck_assert_msg(strncmp(cipher, "TLS_", 4) == 0, "1.3 suite %s", cipher);
	ck_assert_str_eq(alpn, "h2");
}
END_TEST

/* TLS 1.2 offers that lack forward secrecy or an AEAD are refused; the
 * server picks an ECDHE AEAD suite from a mixed offer. */
START_TEST(test_tls12_suites)
{
	static const char *const weak[] = {
	    "AES128-SHA",			/* RSA kx, CBC */
	    "AES256-GCM-SHA384",		/* RSA kx, AEAD */
	    "ECDHE-ECDSA-AES128-SHA",		/* CBC */
	    "ECDHE-ECDSA-AES256-SHA384",	/* CBC */
	    "DHE-RSA-AES128-GCM-SHA256",	/* finite-field DH */
	    "ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0", /* no encryption */
	};
	char cipher[64], alpn[32];
	size_t i;

	start();
	for (i = 0; i < sizeof(weak) / sizeof(weak[0]); i++)
		ck_assert_msg(!handshake(TLS1_2_VERSION, weak[i], cipher,
					 sizeof(cipher), alpn, sizeof(alpn)),
			      "weak suite %s accepted (%s)", weak[i], cipher);
	ck_assert(handshake(TLS1_2_VERSION,
			    "AES128-SHA:ECDHE-ECDSA-AES128-SHA:"
			    "ECDHE-ECDSA-CHACHA20-POLY1305:"
			    "ECDHE-ECDSA-AES256-GCM-SHA384",
			    cipher, sizeof(cipher), alpn, sizeof(alpn)));
	ck_assert_msg(strncmp(cipher, "ECDHE-", 6) == 0 &&
			  (strstr(cipher, "GCM") || strstr(cipher, "CHACHA20")),
		      "negotiated %s", cipher);
}
END_TEST

/* A TLS key readable by group or others: pushrelayd -t and a real start
 * both refuse, naming the file and the fix; 0600 starts. */
START_TEST(test_readable_key_refused)
{
	const char *bin = getenv("PUSHRELAYD");
	char cmd[1024], *log;
	int st;

	start();
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM, 10), 0);
	ck_assert_int_eq(chmod(d.key, 0640), 0);

	snprintf(cmd, sizeof(cmd), "%s -t -c %s >%s/t.out 2>&1", bin, d.conf,
		 d.dir);
	st = system(cmd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0,
		      "pushrelayd -t accepted a 0640 key");
	snprintf(cmd, sizeof(cmd), "%s/t.out", d.dir);
	log = th_read_file(cmd);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, d.key) && strstr(log, "group or others") &&
			  strstr(log, "chmod 600"),
		      "unclear message: %s", log);
	free(log);

	/* The daemon itself does not start either. */
	ck_assert_int_ne(th_daemon_restart(&d), 0);
	th_daemon_stop(&d, SIGKILL, 5);
	log = th_read_file(d.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "group or others"), "log: %s", log);
	free(log);

	ck_assert_int_eq(chmod(d.key, 0600), 0);
	ck_assert_int_eq(th_daemon_restart(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_protocol_versions);
	tcase_add_test(tc, test_tls12_suites);
	tcase_add_test(tc, test_readable_key_refused);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * tls.c - server-side TLS setup with OpenSSL 3. Connections use the
 * context through SSL objects made by the listener; the handshake and
 * record I/O live in conn.c.
 */
#include "autoconf.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "pushrelay.h"
#include "tls.h"

static const unsigned char alpn_h2[] = "\x02h2";
static const unsigned char alpn_h1[] = "\x08http/1.1";

static int alpn_select_cb(SSL *ssl, const unsigned char **out,
			  unsigned char *outlen, const unsigned char *in,
			  unsigned int inlen, void *arg)
{
	/* Prefer h2, then http/1.1; anything else gets no ALPN (HTTP/1.1). */
	if (SSL_select_next_proto((unsigned char **)out, outlen, alpn_h2,
				  sizeof(alpn_h2) - 1, in,
				  inlen) == OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	if (SSL_select_next_proto((unsigned char **)out, outlen, alpn_h1,
				  sizeof(alpn_h1) - 1, in,
				  inlen) == OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK;
}

static void ssl_reason(char *err, size_t errlen, const char *what,
		       const char *path)
{
	unsigned long e = ERR_get_error();
	char buf[200] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s %s: %s", what, path, buf);
	ERR_clear_error();
}

int pr_tls_check_private_file(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return PR_ERR_CONFIG;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen,
			 "%s: key file is accessible by group or others "
			 "(mode %03o); run chmod 600 on it",
			 path, (unsigned)(st.st_mode & 0777));
		return PR_ERR_CONFIG;
	}
	return PR_OK;
}

SSL_CTX *pr_tls_server_ctx(const char *cert, const char *key, char *err,
			   size_t errlen)
{
	SSL_CTX *ctx;

	if (pr_tls_check_private_file(key, err, errlen))
		return NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_reason(err, errlen, "cannot create a TLS context for",
			   cert);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
				     SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* TLS 1.2: forward-secret AEAD suites only (TLS 1.3 suites are all
	 * AEAD and stay at OpenSSL's defaults). */
	if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20")) {
		ssl_reason(err, errlen, "cannot set ciphers for", cert);
		goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				  SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_reason(err, errlen, "cannot load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ssl_reason(err, errlen, "cannot load private key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_reason(err, errlen, "key does not match certificate", cert);
		goto fail;
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

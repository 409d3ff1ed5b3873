/*
 * tls.h - the server TLS context: TLS 1.2 or later, modern ciphers, ALPN
 * offering "h2" then "http/1.1". Key files readable by group or others
 * are refused.
 */
#ifndef PR_TLS_H
#define PR_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* Build a context from PEM files. NULL with a reason in err on failure.
 * Free with SSL_CTX_free(). */
SSL_CTX *pr_tls_server_ctx(const char *cert, const char *key, char *err,
			   size_t errlen);

/* Check that a secret file is not readable by group or others. 0 when
 * it is private, PR_ERR_CONFIG (reason in err) otherwise. */
int pr_tls_check_private_file(const char *path, char *err, size_t errlen);

#endif

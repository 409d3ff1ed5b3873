/*
 * jwt.h - what the APNs and FCM providers share: base64url, compact JWS
 * signing (ES256 for the APNs provider token, RS256 for Google's OAuth2
 * assertion), loading PEM private keys, and fitting a JSON payload under
 * a provider's size limit by shortening display text on a UTF-8
 * boundary. Only providers include this header.
 *
 * Keys and signed tokens are secrets: nothing here logs, and error
 * strings name files and reasons, never contents.
 */
#ifndef PR_JWT_H
#define PR_JWT_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

enum pr_jwt_alg {
	PR_JWT_ES256, /* ECDSA P-256 + SHA-256, signature raw R||S (RFC 7518) */
	PR_JWT_RS256, /* RSASSA-PKCS1-v1_5 + SHA-256 */
};

/* Largest key file or PEM text accepted. */
#define PR_JWT_MAX_KEY_BYTES 16384

/*
 * base64url (RFC 4648 section 5) without padding. Returns a new
 * NUL-terminated string the caller frees, or NULL when out of memory.
 */
char *pr_jwt_b64url(const void *data, size_t len);

/*
 * Decode base64url (padding optional). Returns a new buffer of *outlen
 * bytes (plus a NUL the length does not count) the caller frees, or NULL
 * on bad input or when out of memory.
 */
unsigned char *pr_jwt_b64url_decode(const char *s, size_t len, size_t *outlen);

/*
 * Load a PEM private key (PKCS#8 such as an APNs .p8, or a traditional
 * form) that suits alg: ES256 needs an EC P-256 key, RS256 an RSA key of
 * at least 2048 bits. Encrypted keys are refused, never prompted for.
 *
 * _file first refuses a file readable by group or others
 * (pr_tls_check_private_file) or larger than PR_JWT_MAX_KEY_BYTES; the
 * file's bytes are wiped after parsing. _pem reads len bytes of text;
 * `what` names its origin in error messages.
 *
 * NULL with a reason in err on failure. Free with EVP_PKEY_free().
 */
EVP_PKEY *pr_jwt_key_load_file(const char *path, enum pr_jwt_alg alg, char *err,
			       size_t errlen);
EVP_PKEY *pr_jwt_key_load_pem(const char *pem, size_t len, enum pr_jwt_alg alg,
			      const char *what, char *err, size_t errlen);

/*
 * Sign a JWT: base64url(header) "." base64url(claims) "."
 * base64url(signature), the JSON dumped compactly in insertion order.
 * On success *out is a new string the caller frees (ideally with
 * pr_jwt_free_secret). 0, PR_ERR_NOMEM, PR_ERR_INVAL or PR_ERR_TLS.
 */
int pr_jwt_sign(EVP_PKEY *key, enum pr_jwt_alg alg, const json_t *header,
		const json_t *claims, char **out);

/*
 * Convert a DER ECDSA-Sig-Value to JWS form: R and S, each 32 bytes
 * big-endian, left-padded with zeros. 0, or PR_ERR_INVAL when the DER is
 * malformed or a value does not fit 32 bytes.
 */
int pr_jwt_ecdsa_der_to_raw(const unsigned char *der, size_t len,
			    unsigned char raw[64]);

/* Wipe a NUL-terminated heap string, then free it. NULL is fine. */
void pr_jwt_free_secret(char *s);

/*
 * Dump root compactly into at most max bytes. While it is too long, the
 * string members keys[0], keys[1], ... of the object `text` (a part of
 * root, may be NULL) are shortened in turn, each to the longest prefix
 * that ends on a UTF-8 character boundary and makes the whole fit (with
 * "..." as U+2026 appended when anything is left), down to "" before the
 * next key is touched. JSON escaping is accounted for because every
 * candidate is re-serialised.
 *
 * On success *out is a new string of *outlen bytes the caller frees;
 * root may have been modified. PR_ERR_LIMIT when it cannot fit even with
 * every key emptied, PR_ERR_NOMEM.
 */
int pr_jwt_fit_json(json_t *root, json_t *text, const char *const *keys,
		    size_t nkeys, size_t max, char **out, size_t *outlen);

/* Copy a string from an untrusted peer into dst (dstlen bytes, always
 * NUL-terminated), keeping printable ASCII only and replacing anything
 * else with '?'. For reasons and error codes that reach logs. */
void pr_jwt_copy_printable(char *dst, size_t dstlen, const char *src);

#endif

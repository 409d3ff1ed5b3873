/*
 * jwt.h - the pieces of JWS compact serialisation the mock checks: base64url
 * (RFC 4648 section 5, no padding), splitting a token into its header,
 * claims and signature, and verifying ES256 (raw 64-byte R||S, RFC 7518
 * section 3.4) or RS256 signatures with OpenSSL. Nothing here allocates
 * anything the caller must free except through mock_jwt_cleanup().
 */
#ifndef PR_MOCK_JWT_H
#define PR_MOCK_JWT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

enum mock_jwt_alg { MOCK_JWT_ES256 = 1, MOCK_JWT_RS256 = 2 };

struct mock_jwt {
	json_t *header;	    /* owned; decoded JOSE header object */
	json_t *claims;	    /* owned; decoded claims object */
	unsigned char *sig; /* owned; decoded signature bytes */
	size_t siglen;
	size_t signed_len; /* bytes of "header.claims" at the token's start */
};

/*
 * Decode base64url without padding into out (cap bytes). Returns 0 and sets
 * *outlen, or -1 on a character outside the alphabet, padding, an
 * impossible length or a short buffer.
 */
int mock_b64url_decode(const char *in, size_t len, unsigned char *out,
		       size_t cap, size_t *outlen);

/*
 * Split and decode tok (len bytes, not necessarily NUL-terminated). Both
 * header and claims must be JSON objects. 0 on success; on failure j is
 * left empty (cleanup is still safe).
 */
int mock_jwt_parse(struct mock_jwt *j, const char *tok, size_t len);

/*
 * Verify j's signature over the first j->signed_len bytes of tok with the
 * public half of key. The header's "alg" must name alg. 0 when valid.
 */
int mock_jwt_verify(const struct mock_jwt *j, const char *tok,
		    enum mock_jwt_alg alg, EVP_PKEY *key);

/*
 * An APNs provider token {"alg":"ES256","kid":kid}.{"iss":iss,"iat":iat}
 * signed with key, for `pr-mock --print-jwt` (benchmarks feed it to
 * h2load). Returns a malloc'd string the caller frees, or NULL.
 */
char *mock_jwt_sign_es256(EVP_PKEY *key, const char *kid, const char *iss,
			  long long iat);

/* A string claim or header field, NULL when absent or not a string. */
const char *mock_jwt_str(json_t *obj, const char *name);

void mock_jwt_cleanup(struct mock_jwt *j);

#endif

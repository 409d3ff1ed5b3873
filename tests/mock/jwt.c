/*
 * jwt.c - see jwt.h. Verification is what APNs and Google's token endpoint
 * do with the tokens the relay mints; the one signing function only serves
 * `pr-mock --print-jwt`, never a request.
 */
#include "autoconf.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int mock_b64url_decode(const char *in, size_t len, unsigned char *out,
		       size_t cap, size_t *outlen)
{
	unsigned long acc = 0;
	size_t n = 0;
	int bits = 0;

	if (len % 4 == 1)
		return -1;
	if (len * 6 / 8 > cap)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1UL << bits) - 1;
		}
	}
	/* Leftover bits must be zero (canonical encoding). */
	if (acc != 0)
		return -1;
	*outlen = n;
	return 0;
}

static json_t *decode_object(const char *in, size_t len)
{
	unsigned char *buf;
	size_t n;
	json_t *obj = NULL;

	if (len == 0 || len > 65536)
		return NULL;
	buf = malloc(len);
	if (!buf)
		return NULL;
	if (mock_b64url_decode(in, len, buf, len, &n) == 0)
		obj = json_loadb((const char *)buf, n, 0, NULL);
	free(buf);
	if (obj && !json_is_object(obj)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

void mock_jwt_cleanup(struct mock_jwt *j)
{
	json_decref(j->header);
	json_decref(j->claims);
	free(j->sig);
	memset(j, 0, sizeof(*j));
}

int mock_jwt_parse(struct mock_jwt *j, const char *tok, size_t len)
{
	const char *dot1, *dot2, *end = tok + len;

	memset(j, 0, sizeof(*j));
	dot1 = memchr(tok, '.', len);
	if (!dot1)
		return -1;
	dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
	if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
		return -1;
	j->header = decode_object(tok, (size_t)(dot1 - tok));
	j->claims = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	j->siglen = (size_t)(end - dot2 - 1);
	j->sig = malloc(j->siglen + 1);
	if (!j->header || !j->claims || !j->sig || j->siglen == 0 ||
	    mock_b64url_decode(dot2 + 1, j->siglen, j->sig, j->siglen,
			       &j->siglen)) {
		mock_jwt_cleanup(j);
		return -1;
	}
	j->signed_len = (size_t)(dot2 - tok);
	return 0;
}

const char *mock_jwt_str(json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

/* JWS R||S (32 + 32 bytes) to the DER ECDSA-Sig-Value OpenSSL verifies. */
static unsigned char *es256_to_der(const unsigned char *rs, int *derlen)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);
	unsigned char *der = NULL;

	*derlen = 0;
	if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return NULL;
	}
	*derlen = i2d_ECDSA_SIG(sig, &der); /* sig owns r and s now */
	ECDSA_SIG_free(sig);
	if (*derlen <= 0) {
		OPENSSL_free(der);
		return NULL;
	}
	return der;
}

int mock_jwt_verify(const struct mock_jwt *j, const char *tok,
		    enum mock_jwt_alg alg, EVP_PKEY *key)
{
	const char *want = alg == MOCK_JWT_ES256 ? "ES256" : "RS256";
	const char *got = mock_jwt_str(j->header, "alg");
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	const unsigned char *sig = j->sig;
	size_t siglen = j->siglen;
	int rv = -1;

	if (!key || !got || strcmp(got, want) != 0)
		return -1;
	if (alg == MOCK_JWT_ES256) {
		int derlen;

		if (j->siglen != 64 || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
			return -1;
		der = es256_to_der(j->sig, &derlen);
		if (!der)
			return -1;
		sig = der;
		siglen = (size_t)derlen;
	} else if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		return -1;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	if (EVP_DigestVerify(md, sig, siglen, (const unsigned char *)tok,
			     j->signed_len) == 1)
		rv = 0;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	/* A failed verification leaves errors queued; SSL_get_error() would
	 * later read them as a TLS failure. */
	ERR_clear_error();
	return rv;
}

static size_t b64url_encode(const unsigned char *in, size_t len, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789-_";
	size_t n = 0;

	for (size_t i = 0; i < len; i += 3) {
		unsigned long v = (unsigned long)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned long)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[n++] = abc[(v >> 18) & 63];
		out[n++] = abc[(v >> 12) & 63];
		if (i + 1 < len)
			out[n++] = abc[(v >> 6) & 63];
		if (i + 2 < len)
			out[n++] = abc[v & 63];
	}
	out[n] = '\0';
	return n;
}

char *mock_jwt_sign_es256(EVP_PKEY *key, const char *kid, const char *iss,
			  long long iat)
{
	char hdr[256], claims[256], *tok = NULL;
	unsigned char der[128], rs[64];
	const unsigned char *p = der;
	size_t derlen = sizeof(der), n;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *sig = NULL;
	int hl, cl;

	hl = snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}",
		      kid);
	cl = snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"iat\":%lld}",
		      iss, iat);
	if (!md || hl <= 0 || cl <= 0 || (size_t)hl >= sizeof(hdr) ||
	    (size_t)cl >= sizeof(claims))
		goto out;
	tok = malloc(2 * (sizeof(hdr) + sizeof(claims)) + 100);
	if (!tok)
		goto out;
	n = b64url_encode((const unsigned char *)hdr, (size_t)hl, tok);
	tok[n++] = '.';
	n += b64url_encode((const unsigned char *)claims, (size_t)cl, tok + n);
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &derlen, (const unsigned char *)tok, n) !=
		1)
		goto fail;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (!sig || BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32) != 32 ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32) != 32)
		goto fail;
	tok[n++] = '.';
	b64url_encode(rs, sizeof(rs), tok + n);
	goto out;
fail:
	free(tok);
	tok = NULL;
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return tok;
}

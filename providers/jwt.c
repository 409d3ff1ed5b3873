/*
 * jwt.c - base64url, JWS signing with OpenSSL 3 EVP, PEM key loading and
 * payload fitting for the APNs and FCM providers. ES256 signatures come
 * out of OpenSSL as DER and are converted to the raw R||S form JWS wants
 * (RFC 7518 section 3.4); getting that wrong is the classic cause of
 * APNs' InvalidProviderToken.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "jwt.h"
#include "pushrelay.h"
#include "tls.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *pr_jwt_b64url(const void *data, size_t len)
{
	const unsigned char *in = data;
	size_t outlen = (len / 3) * 4 + 4;
	char *out = malloc(outlen + 1);
	size_t o = 0, i = 0;

	if (!out)
		return NULL;
	for (; i + 3 <= len; i += 3) {
		unsigned long v = ((unsigned long)in[i] << 16) |
				  ((unsigned long)in[i + 1] << 8) | in[i + 2];
		out[o++] = b64url_alphabet[(v >> 18) & 63];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		unsigned long v = (unsigned long)in[i] << 16;
		out[o++] = b64url_alphabet[(v >> 18) & 63];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		unsigned long v = ((unsigned long)in[i] << 16) |
				  ((unsigned long)in[i + 1] << 8);
		out[o++] = b64url_alphabet[(v >> 18) & 63];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return out;
}

static int b64url_value(char c)
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

unsigned char *pr_jwt_b64url_decode(const char *s, size_t len, size_t *outlen)
{
	unsigned char *out;
	unsigned long acc = 0;
	size_t o = 0;
	int bits = 0;

	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return NULL;
	out = malloc(len / 4 * 3 + 3);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value(s[i]);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* Never prompt on a terminal for an encrypted key: refuse it. */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

static int key_suits(EVP_PKEY *key, enum pr_jwt_alg alg, const char *what,
		     char *err, size_t errlen)
{
	char group[64];
	size_t glen = 0;

	if (alg == PR_JWT_ES256) {
		if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
		    !EVP_PKEY_get_group_name(key, group, sizeof(group),
					     &glen) ||
		    OBJ_sn2nid(group) != NID_X9_62_prime256v1) {
			snprintf(err, errlen,
				 "%s: not an EC P-256 private key (ES256)",
				 what);
			return PR_ERR_CONFIG;
		}
		return PR_OK;
	}
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "%s: not an RSA private key (RS256)",
			 what);
		return PR_ERR_CONFIG;
	}
	if (EVP_PKEY_get_bits(key) < 2048) {
		snprintf(err, errlen,
			 "%s: RSA key of %d bits is too short (need 2048)",
			 what, EVP_PKEY_get_bits(key));
		return PR_ERR_CONFIG;
	}
	return PR_OK;
}

EVP_PKEY *pr_jwt_key_load_pem(const char *pem, size_t len, enum pr_jwt_alg alg,
			      const char *what, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	BIO *bio;

	if (len == 0 || len > PR_JWT_MAX_KEY_BYTES) {
		snprintf(err, errlen, "%s: private key is empty or too large",
			 what);
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		snprintf(err, errlen, "%s: out of memory", what);
		return NULL;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, no_password_cb, NULL);
	BIO_free(bio);
	/* Don't let OpenSSL's error queue carry anything about the key. */
	ERR_clear_error();
	if (!key) {
		snprintf(err, errlen,
			 "%s: not a PEM private key (or it is encrypted)",
			 what);
		return NULL;
	}
	if (key_suits(key, alg, what, err, errlen)) {
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

EVP_PKEY *pr_jwt_key_load_file(const char *path, enum pr_jwt_alg alg, char *err,
			       size_t errlen)
{
	EVP_PKEY *key = NULL;
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd = -1;

	if (pr_tls_check_private_file(path, err, errlen))
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > PR_JWT_MAX_KEY_BYTES) {
		snprintf(err, errlen, "%s: not a regular file of 1..%d bytes",
			 path, PR_JWT_MAX_KEY_BYTES);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", path,
				 n < 0 ? strerror(errno) : "short read");
			goto out;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	key = pr_jwt_key_load_pem(buf, len, alg, path, err, errlen);
out:
	if (buf) {
		OPENSSL_cleanse(buf, (size_t)st.st_size + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return key;
}

int pr_jwt_ecdsa_der_to_raw(const unsigned char *der, size_t len,
			    unsigned char raw[64])
{
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int rv = PR_ERR_INVAL;

	if (len > 256)
		return PR_ERR_INVAL;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (!sig)
		return PR_ERR_INVAL;
	if (p != der + len)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	/* BN_bn2binpad fails when the value needs more than 32 bytes and
	 * keeps leading zeros otherwise. */
	if (BN_bn2binpad(r, raw, 32) != 32 ||
	    BN_bn2binpad(s, raw + 32, 32) != 32)
		goto out;
	rv = PR_OK;
out:
	ECDSA_SIG_free(sig);
	return rv;
}

void pr_jwt_free_secret(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static char *b64url_json(const json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);
	char *enc;

	if (!text)
		return NULL;
	enc = pr_jwt_b64url(text, strlen(text));
	free(text);
	return enc;
}

int pr_jwt_sign(EVP_PKEY *key, enum pr_jwt_alg alg, const json_t *header,
		const json_t *claims, char **out)
{
	unsigned char *sig = NULL, raw[64];
	char *h = NULL, *c = NULL, *input = NULL, *s = NULL;
	EVP_MD_CTX *md = NULL;
	size_t siglen = 0, hlen, clen;
	int rv = PR_ERR_NOMEM;

	*out = NULL;
	if (!key || !json_is_object(header) || !json_is_object(claims))
		return PR_ERR_INVAL;
	h = b64url_json(header);
	c = b64url_json(claims);
	if (!h || !c)
		goto out;
	hlen = strlen(h);
	clen = strlen(c);
	input = malloc(hlen + clen + 2);
	if (!input)
		goto out;
	memcpy(input, h, hlen);
	input[hlen] = '.';
	memcpy(input + hlen + 1, c, clen + 1);

	rv = PR_ERR_TLS;
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	if (EVP_DigestSign(md, NULL, &siglen, (unsigned char *)input,
			   hlen + 1 + clen) != 1)
		goto out;
	sig = malloc(siglen);
	if (!sig) {
		rv = PR_ERR_NOMEM;
		goto out;
	}
	if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)input,
			   hlen + 1 + clen) != 1)
		goto out;
	if (alg == PR_JWT_ES256) {
		if (pr_jwt_ecdsa_der_to_raw(sig, siglen, raw))
			goto out;
		s = pr_jwt_b64url(raw, sizeof(raw));
	} else {
		s = pr_jwt_b64url(sig, siglen);
	}
	rv = PR_ERR_NOMEM;
	if (!s)
		goto out;
	{
		size_t slen = strlen(s), ilen = hlen + 1 + clen;
		char *jwt = malloc(ilen + 1 + slen + 1);

		if (!jwt)
			goto out;
		memcpy(jwt, input, ilen);
		jwt[ilen] = '.';
		memcpy(jwt + ilen + 1, s, slen + 1);
		*out = jwt;
	}
	rv = PR_OK;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	free(sig);
	free(h);
	free(c);
	free(input);
	free(s);
	return rv;
}

/* Largest n' <= n such that s[n'] does not sit inside a UTF-8 sequence. */
static size_t utf8_floor(const char *s, size_t n)
{
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

#define ELLIPSIS "\xE2\x80\xA6" /* U+2026 */

/* Set text[key] to the first n bytes of full (plus an ellipsis when
 * n > 0), dump root, and report whether it fits in max. The dump is kept
 * in *dump (replacing an older one) so the last good one can be used. */
static int try_prefix(json_t *root, json_t *text, const char *key,
		      const char *full, size_t n, size_t max, char **dump,
		      int *fits)
{
	char *v = malloc(n + sizeof(ELLIPSIS));
	char *d;

	if (!v)
		return PR_ERR_NOMEM;
	memcpy(v, full, n);
	if (n > 0)
		memcpy(v + n, ELLIPSIS, sizeof(ELLIPSIS));
	else
		v[0] = '\0';
	if (json_object_set_new(text, key, json_string(v))) {
		free(v);
		return PR_ERR_NOMEM;
	}
	free(v);
	d = json_dumps(root, JSON_COMPACT);
	if (!d)
		return PR_ERR_NOMEM;
	free(*dump);
	*dump = d;
	*fits = strlen(d) <= max;
	return PR_OK;
}

int pr_jwt_fit_json(json_t *root, json_t *text, const char *const *keys,
		    size_t nkeys, size_t max, char **out, size_t *outlen)
{
	char *dump = json_dumps(root, JSON_COMPACT), *full = NULL;
	int rv = PR_ERR_NOMEM, fits;

	*out = NULL;
	if (!dump)
		return PR_ERR_NOMEM;
	if (strlen(dump) <= max)
		goto done;
	for (size_t k = 0; k < nkeys && text; k++) {
		json_t *v = json_object_get(text, keys[k]);
		size_t lo, hi;

		if (!json_is_string(v))
			continue;
		full = strdup(json_string_value(v));
		if (!full)
			goto fail;
		/* The whole string does not fit (else we'd be done). Does
		 * the empty one? If not, go on to the next key. */
		hi = strlen(full);
		if (try_prefix(root, text, keys[k], full, 0, max, &dump, &fits))
			goto fail;
		if (!fits) {
			free(full);
			full = NULL;
			continue;
		}
		/* Invariant: floor(lo) fits, floor(hi) is known not to (hi
		 * being the full length). Output length grows with the
		 * prefix, so bisect. */
		lo = 0;
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;

			if (try_prefix(root, text, keys[k], full,
				       utf8_floor(full, mid), max, &dump,
				       &fits))
				goto fail;
			if (fits)
				lo = mid;
			else
				hi = mid;
		}
		if (try_prefix(root, text, keys[k], full, utf8_floor(full, lo),
			       max, &dump, &fits))
			goto fail;
		free(full);
		full = NULL;
		goto done;
	}
	rv = PR_ERR_LIMIT;
	goto fail;
done:
	*out = dump;
	*outlen = strlen(dump);
	return PR_OK;
fail:
	free(full);
	free(dump);
	return rv;
}

void pr_jwt_copy_printable(char *dst, size_t dstlen, const char *src)
{
	size_t i = 0;

	if (dstlen == 0)
		return;
	for (; src && src[i] && i + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

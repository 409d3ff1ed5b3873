/*
 * fuzz_client_token.c - the client JWT verifier, pr_client_token_verify().
 * The server's app has a client_token_secret. The first byte picks the
 * mode: even = the rest is the token as sent; odd = the rest is
 * "header JSON\nclaims JSON", which the harness encodes and signs with
 * the right secret so the claim checks behind the signature are reached.
 */
#include "autoconf.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <stdint.h>

#include "client_auth.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-secret-0123456789abcdef0123456789"

static struct pr_server *srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pr_config *cfg = pr_config_new();

	free(cfg->apps[0].client_token_secret);
	cfg->apps[0].client_token_secret = strdup(SECRET);
	srv = fz_server(cfg);
	return 0;
}

static size_t b64url(char *out, const uint8_t *in, size_t len)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
				"wxyz0123456789-_";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | in[i + 1] << 8 | in[i + 2];
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = t[v >> 6 & 63];
		out[o++] = t[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | in[i + 1] << 8;
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = t[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pr_client client;
	char why[128], *tok;
	const uint8_t *nl;
	size_t n;

	if (size < 1 || size > 8192)
		return 0;
	tok = malloc(2 * size + 64);
	if (!tok)
		return 0;
	if (!(data[0] & 1)) {
		memcpy(tok, data + 1, size - 1);
		tok[size - 1] = '\0';
	} else {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;

		nl = memchr(data + 1, '\n', size - 1);
		if (!nl)
			nl = data + size;
		n = b64url(tok, data + 1, (size_t)(nl - data - 1));
		tok[n++] = '.';
		if (nl < data + size)
			n += b64url(tok + n, nl + 1,
				    (size_t)(data + size - nl - 1));
		HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET),
		     (unsigned char *)tok, n, mac, &maclen);
		tok[n++] = '.';
		b64url(tok + n, mac, maclen);
	}
	memset(&client, 0, sizeof(client));
	pr_client_token_verify(srv, tok, 1800000000, &client, why,
			       sizeof(why));
	free(tok);
	return 0;
}

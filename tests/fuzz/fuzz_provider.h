/*
 * fuzz_provider.h - shared part of fuzz_apns_response.c and
 * fuzz_fcm_response.c: writing a private key file, and turning fuzz
 * input into an HTTP response.
 *
 * Input: byte 0 flags (bit 0: a second call path where the target has
 * one, bit 1: status 0 / transport failure, bit 2: an apns-id header),
 * bytes 1-2 the status (big-endian, mod 1000), byte 3 Retry-After
 * (255 = absent), the rest the body.
 */
#ifndef PR_FUZZ_PROVIDER_H
#define PR_FUZZ_PROVIDER_H

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provider.h"

static inline void fzp_write_private(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t len = strlen(text);

	if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
		perror(path);
		exit(1);
	}
	close(fd);
}

/* The key as PKCS#8 PEM, malloc'd. */
static inline char *fzp_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (!bio || !key ||
	    !PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL,
					   NULL)) {
		fprintf(stderr, "fuzz: cannot make a key\n");
		exit(1);
	}
	n = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)n);
	BIO_free(bio);
	return out;
}

static inline void fzp_push(struct pr_push *p, const char *platform)
{
	memset(p, 0, sizeof(*p));
	p->job_id = 7;
	p->app = "chat";
	p->platform = platform;
	p->token =
	    "aa01bb02cc03dd04ee05ff06aa01bb02cc03dd04ee05ff06aa01bb02cc03dd04";
	p->environment = "production";
	p->message_id = "m-1";
	p->seq = 1;
	p->expires_at = 1800086400;
	p->apns_id = "0a9bd2d9-5a06-4a3b-8e9c-5b0c1f5ac2f1";
	p->attempt = 1;
}

/* Fill r from the input; returns 0 when it is too short. The body is a
 * malloc'd copy (exactly body_len bytes, no NUL) so ASan sees overreads;
 * free *copy after. */
static inline int fzp_response(const uint8_t *data, size_t size,
			       struct pr_http_response *r, char **copy)
{
	if (size < 4)
		return 0;
	memset(r, 0, sizeof(*r));
	r->status = data[0] & 2 ? 0 : ((long)data[1] << 8 | data[2]) % 1000;
	r->retry_after = data[3] == 255 ? -1 : data[3];
	r->apns_id =
	    data[0] & 4 ? "0a9bd2d9-5a06-4a3b-8e9c-5b0c1f5ac2f1" : NULL;
	r->transport = r->status ? NULL : "Connection reset by peer";
	r->latency = 0.01;
	*copy = malloc(size - 4 ? size - 4 : 1);
	if (!*copy)
		return 0;
	memcpy(*copy, data + 4, size - 4);
	r->body = *copy;
	r->body_len = size - 4;
	return 1;
}
#endif

/*
 * check_apns.c - the APNs provider in memory: requests it builds (URL,
 * every header, payloads, the 4096-byte limit), the provider JWT (its
 * signature checked with OpenSSL, its refresh schedule against a test
 * clock), key file checks, and every row of the response table. Also the
 * shared pieces: base64url, DER to R||S, the registry and the request
 * helpers.
 */
#include "autoconf.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "apns_internal.h"
#include "config.h"
#include "harness.h"
#include "jwt.h"
#include "provider.h"
#include "pushrelay.h"
#include "store.h"

#define T0	   1700000000
#define EXPIRES_AT 1700086400
#define APNS_ID	   "123e4567-e89b-12d3-a456-426614174000"
#define DEV_TOKEN                                                              \
	"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define FULL_PUSH                                                              \
	"{\"mode\":\"alert\",\"title\":\"Bob\",\"body\":\"hi\","               \
	"\"sound\":\"default\",\"badge\":\"unread\",\"collapse_id\":"          \
	"\"conv-9\",\"priority\":\"high\",\"ttl\":86400,\"thread_id\":"        \
	"\"conv-9\",\"category\":\"MSG\"}"

struct ctx {
	char dir[256];
	char keyfile[320];
	char certfile[320];
	char certkey[320];
	EVP_PKEY *key;
	struct pr_app_config app;
	struct pr_provider_env env;
	void *inst;
	char err[512];
};

static int write_private(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t len = strlen(text);
	int rv = 0;

	if (fd < 0)
		return -1;
	if (write(fd, text, len) != (ssize_t)len)
		rv = -1;
	if (fchmod(fd, mode) != 0)
		rv = -1;
	close(fd);
	return rv;
}

static char *pem_pkcs8(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	ck_assert_ptr_nonnull(bio);
	ck_assert_int_eq(
	    PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL),
	    1);
	n = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)n);
	BIO_free(bio);
	return out;
}

static void ctx_init(struct ctx *c)
{
	char *pem;

	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(th_tmpdir(c->dir, sizeof(c->dir)), 0);
	snprintf(c->keyfile, sizeof(c->keyfile), "%s/AuthKey_ABC123DEFG.p8",
		 c->dir);
	c->key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(c->key);
	pem = pem_pkcs8(c->key);
	ck_assert_str_eq(strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0
			     ? "pkcs8"
			     : pem,
			 "pkcs8");
	ck_assert_int_eq(write_private(c->keyfile, pem, 0600), 0);
	free(pem);
	c->app.name = (char *)"chat";
	c->app.apns_key_file = c->keyfile;
	c->app.apns_key_id = (char *)"ABC123DEFG";
	c->app.apns_team_id = (char *)"DEF123GHIJ";
	c->app.apns_cert_file = (char *)"";
	c->app.apns_cert_key_file = (char *)"";
	c->app.apns_cert_password = (char *)"";
	c->app.apns_topic = (char *)"com.example.chat";
	c->app.apns_url = (char *)"https://api.push.apple.com";
	c->app.apns_sandbox_url = (char *)"https://api.sandbox.push.apple.com/";
	c->app.fcm_credentials = (char *)"";
	c->app.fcm_url = (char *)"";
	c->app.fcm_token_url = (char *)"";
	c->app.ca_file = (char *)"";
	c->env.jwt_refresh = 3000;
	c->env.oauth_margin = 300;
}

static void ctx_create(struct ctx *c)
{
	int rv = pr_apns_provider.create(&c->inst, &c->app, &c->env, c->err,
					 sizeof(c->err));

	ck_assert_msg(rv == 0, "create: %s", c->err);
	ck_assert_ptr_nonnull(c->inst);
}

static void ctx_cleanup(struct ctx *c)
{
	if (c->inst)
		pr_apns_provider.destroy(c->inst);
	EVP_PKEY_free(c->key);
	unlink(c->keyfile);
	if (c->certfile[0])
		unlink(c->certfile);
	if (c->certkey[0])
		unlink(c->certkey);
	rmdir(c->dir);
}

static struct pr_push mkpush(int mode, const char *json)
{
	struct pr_push p;

	memset(&p, 0, sizeof(p));
	p.job_id = 7;
	p.app = "chat";
	p.platform = "apns";
	p.token = DEV_TOKEN;
	p.environment = "production";
	p.message_id = "m-8f1c";
	p.seq = 42;
	p.mode = mode;
	p.push_json = json;
	p.unread = 7;
	p.expires_at = EXPIRES_AT;
	p.apns_id = APNS_ID;
	p.attempt = 1;
	return p;
}

/* The value of header `name`, or NULL; fails on duplicates. */
static const char *hdr(const struct pr_http_request *r, const char *name)
{
	const char *found = NULL;
	size_t n = strlen(name);

	for (size_t i = 0; i < r->n_headers; i++) {
		if (strncmp(r->headers[i], name, n) == 0 &&
		    r->headers[i][n] == ':') {
			ck_assert_msg(!found, "duplicate header %s", name);
			found = r->headers[i] + n + 2;
		}
	}
	ck_assert_ptr_null(r->headers[r->n_headers]);
	return found;
}

static json_t *body_json(const struct pr_http_request *r)
{
	json_error_t e;
	json_t *j;

	ck_assert_uint_eq(strlen(r->body), r->body_len);
	j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
	ck_assert_msg(j != NULL, "payload is not JSON: %s", e.text);
	return j;
}

static void build_ok(struct ctx *c, const struct pr_push *p, time_t now,
		     struct pr_http_request *r)
{
	int rv =
	    pr_apns_provider.build(c->inst, p, now, r, c->err, sizeof(c->err));

	ck_assert_msg(rv == 0, "build: %s", c->err);
}

/* Test-local base64url decoding through OpenSSL's base64, so the
 * module's encoder is checked against something independent. */
static unsigned char *b64url_dec(const char *s, size_t len, size_t *outlen)
{
	char *std = malloc(len + 4);
	unsigned char *out = malloc(len + 4);
	size_t n = len;
	int got;

	for (size_t i = 0; i < len; i++)
		std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (n % 4)
		std[n++] = '=';
	got = EVP_DecodeBlock(out, (unsigned char *)std, (int)n);
	ck_assert_int_ge(got, 0);
	while (n > len) { /* EVP_DecodeBlock counts padding as zeros */
		got--;
		n--;
	}
	free(std);
	*outlen = (size_t)got;
	return out;
}

static json_t *jwt_part(const char *s, size_t len)
{
	size_t n;
	unsigned char *raw = b64url_dec(s, len, &n);
	json_t *j = json_loadb((char *)raw, n, JSON_REJECT_DUPLICATES, NULL);

	free(raw);
	ck_assert_ptr_nonnull(j);
	return j;
}

/* Verify an ES256 JWT with OpenSSL: R||S back to DER, EVP_DigestVerify. */
static void verify_es256(EVP_PKEY *key, const char *jwt, json_t **header,
			 json_t **claims)
{
	const char *d1 = strchr(jwt, '.'),
		   *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char *sig, *der = NULL;
	ECDSA_SIG *es;
	EVP_MD_CTX *md;
	size_t siglen;
	int derlen;

	ck_assert_ptr_nonnull(d2);
	ck_assert_ptr_null(strchr(d2 + 1, '.'));
	ck_assert_ptr_null(strchr(jwt, '='));
	*header = jwt_part(jwt, (size_t)(d1 - jwt));
	*claims = jwt_part(d1 + 1, (size_t)(d2 - d1 - 1));
	sig = b64url_dec(d2 + 1, strlen(d2 + 1), &siglen);
	ck_assert_uint_eq(siglen, 64);
	es = ECDSA_SIG_new();
	ck_assert_int_eq(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL),
					BN_bin2bn(sig + 32, 32, NULL)),
			 1);
	derlen = i2d_ECDSA_SIG(es, &der);
	ck_assert_int_gt(derlen, 0);
	md = EVP_MD_CTX_new();
	ck_assert_int_eq(
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
	ck_assert_int_eq(EVP_DigestVerify(md, der, (size_t)derlen,
					  (const unsigned char *)jwt,
					  (size_t)(d2 - jwt)),
			 1);
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	free(sig);
}

/* The bearer JWT of a built request (a copy, caller frees). */
static char *bearer(const struct pr_http_request *r)
{
	const char *a = hdr(r, "authorization");

	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(strncmp(a, "bearer ", 7), 0);
	return strdup(a + 7);
}

static char *jwt_at(struct ctx *c, time_t now)
{
	struct pr_push p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	struct pr_http_request r;
	char *jwt;

	build_ok(c, &p, now, &r);
	jwt = bearer(&r);
	pr_http_request_cleanup(&r);
	return jwt;
}

/* --- create ------------------------------------------------------------- */

START_TEST(test_create_notfound)
{
	struct ctx c;

	ctx_init(&c);
	c.app.apns_key_file = (char *)"";
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_NOTFOUND);
	ck_assert_ptr_null(c.inst);
	c.app.apns_key_file = NULL;
	c.app.apns_cert_file = NULL;
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_NOTFOUND);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_create_refuses_readable_key)
{
	struct ctx c;

	ctx_init(&c);
	ck_assert_int_eq(chmod(c.keyfile, 0644), 0);
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_null(c.inst);
	ck_assert_ptr_nonnull(strstr(c.err, c.keyfile));
	ck_assert_ptr_nonnull(strstr(c.err, "group or others"));
	ck_assert_ptr_null(strstr(c.err, "BEGIN"));
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_create_checks_config)
{
	struct ctx c;

	ctx_init(&c);
	c.app.apns_topic = (char *)"";
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, "apns_topic"));
	c.app.apns_topic = (char *)"com.example.chat";
	c.app.apns_key_id = (char *)"";
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, "apns_key_id"));
	c.app.apns_key_id = (char *)"ABC123DEFG";
	c.app.apns_cert_file = c.keyfile;
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, "not both"));
	ck_assert_ptr_null(c.inst);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_create_refuses_wrong_key)
{
	struct ctx c;
	EVP_PKEY *rsa;
	char *pem;

	ctx_init(&c);
	rsa = EVP_RSA_gen(2048);
	pem = pem_pkcs8(rsa);
	ck_assert_int_eq(write_private(c.keyfile, pem, 0600), 0);
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, "P-256"));
	ck_assert_int_eq(write_private(c.keyfile, "not a key\n", 0600), 0);
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, c.keyfile));
	free(pem);
	EVP_PKEY_free(rsa);
	ctx_cleanup(&c);
}
END_TEST

/* --- requests ----------------------------------------------------------- */

START_TEST(test_build_alert)
{
	struct ctx c;
	struct pr_push p;
	struct pr_http_request r;
	json_t *j, *aps, *alert;

	ctx_init(&c);
	ctx_create(&c);
	p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	build_ok(&c, &p, T0, &r);
	ck_assert_str_eq(r.method, "POST");
	ck_assert_str_eq(r.url,
			 "https://api.push.apple.com/3/device/" DEV_TOKEN);
	ck_assert_str_eq(hdr(&r, "apns-push-type"), "alert");
	ck_assert_str_eq(hdr(&r, "apns-topic"), "com.example.chat");
	ck_assert_str_eq(hdr(&r, "apns-priority"), "10");
	ck_assert_str_eq(hdr(&r, "apns-expiration"), "1700086400");
	ck_assert_str_eq(hdr(&r, "apns-collapse-id"), "conv-9");
	ck_assert_str_eq(hdr(&r, "apns-id"), APNS_ID);
	ck_assert_ptr_nonnull(hdr(&r, "authorization"));
	ck_assert_uint_eq(r.n_headers, 7);

	j = body_json(&r);
	aps = json_object_get(j, "aps");
	alert = json_object_get(aps, "alert");
	ck_assert_str_eq(json_string_value(json_object_get(alert, "title")),
			 "Bob");
	ck_assert_str_eq(json_string_value(json_object_get(alert, "body")),
			 "hi");
	ck_assert_str_eq(json_string_value(json_object_get(aps, "sound")),
			 "default");
	ck_assert_int_eq(json_integer_value(json_object_get(aps, "badge")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(aps, "thread-id")),
			 "conv-9");
	ck_assert_str_eq(json_string_value(json_object_get(aps, "category")),
			 "MSG");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(aps, "mutable-content")), 1);
	ck_assert_ptr_null(json_object_get(aps, "content-available"));
	/* Custom keys beside aps, not inside. */
	ck_assert_str_eq(json_string_value(json_object_get(j, "message_id")),
			 "m-8f1c");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "seq")), 42);
	ck_assert_ptr_null(json_object_get(aps, "message_id"));
	ck_assert_uint_eq(json_object_size(j), 3);
	json_decref(j);
	pr_http_request_cleanup(&r);
	ck_assert_ptr_null(r.url);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_build_sandbox_and_badge)
{
	struct ctx c;
	struct pr_push p;
	struct pr_http_request r;
	json_t *j;

	ctx_init(&c);
	ctx_create(&c);
	p = mkpush(PR_PUSH_ALERT, "{\"title\":\"t\",\"badge\":3,"
				  "\"priority\":\"normal\"}");
	p.environment = "sandbox";
	build_ok(&c, &p, T0, &r);
	/* The trailing slash of the configured URL is not doubled. */
	ck_assert_str_eq(
	    r.url, "https://api.sandbox.push.apple.com/3/device/" DEV_TOKEN);
	ck_assert_str_eq(hdr(&r, "apns-priority"), "5");
	ck_assert_ptr_null(hdr(&r, "apns-collapse-id"));
	j = body_json(&r);
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(j, "aps"), "badge")),
			 3);
	ck_assert_ptr_null(json_object_get(json_object_get(j, "aps"), "sound"));
	json_decref(j);
	pr_http_request_cleanup(&r);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_build_wakeup)
{
	struct ctx c;
	struct pr_push p;
	struct pr_http_request r;
	json_t *j, *aps;

	ctx_init(&c);
	ctx_create(&c);
	p = mkpush(PR_PUSH_WAKEUP, FULL_PUSH);
	build_ok(&c, &p, T0, &r);
	ck_assert_str_eq(hdr(&r, "apns-push-type"), "background");
	/* priority 10 is an error for background pushes, even if asked. */
	ck_assert_str_eq(hdr(&r, "apns-priority"), "5");
	ck_assert_str_eq(hdr(&r, "apns-topic"), "com.example.chat");
	j = body_json(&r);
	aps = json_object_get(j, "aps");
	ck_assert_uint_eq(json_object_size(aps), 1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(aps, "content-available")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "message_id")),
			 "m-8f1c");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "seq")), 42);
	json_decref(j);
	pr_http_request_cleanup(&r);

	/* No push object at all is fine too. */
	p = mkpush(PR_PUSH_WAKEUP, NULL);
	build_ok(&c, &p, T0, &r);
	pr_http_request_cleanup(&r);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_build_refuses)
{
	struct ctx c;
	struct pr_push p;
	struct pr_http_request r;

	ctx_init(&c);
	ctx_create(&c);
	p = mkpush(PR_PUSH_NONE, FULL_PUSH);
	ck_assert_int_ne(
	    pr_apns_provider.build(c.inst, &p, T0, &r, c.err, sizeof(c.err)),
	    0);
	ck_assert_ptr_null(r.url);
	p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	p.token = "abc/../x";
	ck_assert_int_ne(
	    pr_apns_provider.build(c.inst, &p, T0, &r, c.err, sizeof(c.err)),
	    0);
	p = mkpush(PR_PUSH_ALERT, "[not an object");
	ck_assert_int_ne(
	    pr_apns_provider.build(c.inst, &p, T0, &r, c.err, sizeof(c.err)),
	    0);
	ck_assert_ptr_null(r.body);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_collapse_id_bound_and_apns_id)
{
	struct ctx c;
	struct pr_push p;
	struct pr_http_request r;
	char json[256];

	ctx_init(&c);
	ctx_create(&c);
	/* 64 bytes is the maximum: kept. */
	snprintf(json, sizeof(json), "{\"collapse_id\":\"%064d\"}", 0);
	p = mkpush(PR_PUSH_ALERT, json);
	build_ok(&c, &p, T0, &r);
	ck_assert_uint_eq(strlen(hdr(&r, "apns-collapse-id")), 64);
	pr_http_request_cleanup(&r);
	/* 65 would be 400 BadCollapseId: dropped. */
	snprintf(json, sizeof(json), "{\"collapse_id\":\"%065d\"}", 0);
	p = mkpush(PR_PUSH_ALERT, json);
	p.apns_id = "not-a-uuid";
	build_ok(&c, &p, T0, &r);
	ck_assert_ptr_null(hdr(&r, "apns-collapse-id"));
	ck_assert_ptr_null(hdr(&r, "apns-id"));
	pr_http_request_cleanup(&r);
	ctx_cleanup(&c);
}
END_TEST

/* --- JWT ---------------------------------------------------------------- */

START_TEST(test_jwt_signature_and_claims)
{
	struct ctx c;
	json_t *h, *cl;
	char *jwt;

	ctx_init(&c);
	ctx_create(&c);
	jwt = jwt_at(&c, T0);
	verify_es256(c.key, jwt, &h, &cl);
	ck_assert_uint_eq(json_object_size(h), 2);
	ck_assert_str_eq(json_string_value(json_object_get(h, "alg")), "ES256");
	ck_assert_str_eq(json_string_value(json_object_get(h, "kid")),
			 "ABC123DEFG");
	ck_assert_uint_eq(json_object_size(cl), 2);
	ck_assert_str_eq(json_string_value(json_object_get(cl, "iss")),
			 "DEF123GHIJ");
	ck_assert_int_eq(json_integer_value(json_object_get(cl, "iat")), T0);
	json_decref(h);
	json_decref(cl);
	free(jwt);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_jwt_many_signatures_verify)
{
	/* Each signature has ~1/128 chance of an R or S with a leading zero
	 * byte; over many mints the fixed-width conversion is exercised. */
	EVP_PKEY *key = EVP_EC_gen("P-256");
	json_t *h = json_pack("{s:s}", "alg", "ES256");

	for (int i = 0; i < 200; i++) {
		json_t *c = json_pack("{s:i}", "n", i), *hh, *cc;
		char *jwt = NULL;

		ck_assert_int_eq(pr_jwt_sign(key, PR_JWT_ES256, h, c, &jwt), 0);
		verify_es256(key, jwt, &hh, &cc);
		json_decref(hh);
		json_decref(cc);
		json_decref(c);
		pr_jwt_free_secret(jwt);
	}
	json_decref(h);
	EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_jwt_refresh_schedule)
{
	struct ctx c;
	char *a, *b, *d;

	ctx_init(&c);
	c.env.jwt_refresh = 1800;
	ctx_create(&c);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 0); /* minted lazily */
	a = jwt_at(&c, T0);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 1);
	/* Shared by every request: the same token for 20 minutes... */
	for (int t = 1; t < 1200; t += 97) {
		b = jwt_at(&c, T0 + t);
		ck_assert_str_eq(a, b);
		free(b);
	}
	/* ...and up to jwt_refresh. */
	b = jwt_at(&c, T0 + 1799);
	ck_assert_str_eq(a, b);
	free(b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 1);
	b = jwt_at(&c, T0 + 1800);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 2);
	d = jwt_at(&c, T0 + 1801);
	ck_assert_str_eq(b, d);
	free(a);
	free(b);
	free(d);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_jwt_refresh_bounds)
{
	struct ctx c;
	char *a, *b;

	/* A jwt_refresh outside 1200..3600 is clamped to it. */
	ctx_init(&c);
	c.env.jwt_refresh = 60;
	ctx_create(&c);
	a = jwt_at(&c, T0);
	b = jwt_at(&c, T0 + 1199);
	ck_assert_str_eq(a, b);
	free(b);
	b = jwt_at(&c, T0 + 1200);
	ck_assert_str_ne(a, b);
	free(a);
	free(b);
	pr_apns_provider.destroy(c.inst);
	c.env.jwt_refresh = 86400;
	ctx_create(&c);
	a = jwt_at(&c, T0);
	b = jwt_at(&c, T0 + 3599);
	ck_assert_str_eq(a, b);
	free(b);
	b = jwt_at(&c, T0 + 3600);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 2);
	free(a);
	free(b);
	ctx_cleanup(&c);
}
END_TEST

static void classify_body(struct ctx *c, long status, const char *body,
			  time_t now, struct pr_push_verdict *v)
{
	struct pr_push p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	struct pr_http_response resp;

	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	resp.body = body;
	resp.body_len = body ? strlen(body) : 0;
	resp.retry_after = -1;
	resp.latency = 0.2;
	pr_apns_provider.classify(c->inst, &p, &resp, now, v);
}

START_TEST(test_jwt_expired_provider_token)
{
	struct ctx c;
	struct pr_push_verdict v;
	char *a, *b;

	ctx_init(&c);
	c.env.jwt_refresh = 3000;
	ctx_create(&c);
	a = jwt_at(&c, T0);
	/* APNs says the token expired 100 s after we minted it (clock
	 * skew): REAUTH, but a new token must wait for 20 minutes. */
	classify_body(&c, 403, "{\"reason\":\"ExpiredProviderToken\"}",
		      T0 + 100, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_REAUTH);
	ck_assert_str_eq(v.reason, "ExpiredProviderToken");
	b = jwt_at(&c, T0 + 101);
	ck_assert_str_eq(a, b);
	free(b);
	b = jwt_at(&c, T0 + 1199);
	ck_assert_str_eq(a, b);
	free(b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 1);
	/* 20 minutes after the last mint: refreshed at the next build, well
	 * before jwt_refresh. */
	b = jwt_at(&c, T0 + 1200);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 2);
	free(a);
	a = jwt_at(&c, T0 + 2500);
	ck_assert_str_eq(a, b); /* the request is satisfied: no more mints */
	free(b);

	/* An Expired verdict long after the mint refreshes at once. */
	classify_body(&c, 403, "{\"reason\":\"ExpiredProviderToken\"}",
		      T0 + 2500, &v);
	b = jwt_at(&c, T0 + 2500);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 3);
	free(a);
	free(b);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_jwt_too_many_updates)
{
	struct ctx c;
	struct pr_push_verdict v;
	char *a, *b;

	ctx_init(&c);
	c.env.jwt_refresh = 3000;
	ctx_create(&c);
	a = jwt_at(&c, T0);
	classify_body(&c, 403, "{\"reason\":\"ExpiredProviderToken\"}", T0 + 10,
		      &v);
	classify_body(&c, 429, "{\"reason\":\"TooManyProviderTokenUpdates\"}",
		      T0 + 20, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_RETRY);
	ck_assert_str_eq(v.reason, "TooManyProviderTokenUpdates");
	/* No mint: neither now nor at 20 minutes (the pending refresh was
	 * cancelled); only the regular schedule replaces the token. */
	b = jwt_at(&c, T0 + 30);
	ck_assert_str_eq(a, b);
	free(b);
	b = jwt_at(&c, T0 + 1300);
	ck_assert_str_eq(a, b);
	free(b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 1);
	b = jwt_at(&c, T0 + 3000);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 2);
	free(a);
	free(b);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_jwt_late_expired_answer)
{
	struct ctx c;
	struct pr_push p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	struct pr_http_response resp;
	struct pr_push_verdict v;
	char *a, *b;

	ctx_init(&c);
	ctx_create(&c);
	a = jwt_at(&c, T0);
	b = jwt_at(&c, T0 + 3000); /* regular refresh */
	free(a);
	/* An answer to a request sent 30 s ago, before that mint, says
	 * nothing about the new token. */
	memset(&resp, 0, sizeof(resp));
	resp.status = 403;
	resp.body = "{\"reason\":\"ExpiredProviderToken\"}";
	resp.body_len = strlen(resp.body);
	resp.retry_after = -1;
	resp.latency = 30;
	pr_apns_provider.classify(c.inst, &p, &resp, T0 + 3010, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_REAUTH);
	a = jwt_at(&c, T0 + 3000 + 1200);
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 2);
	free(a);
	free(b);
	ctx_cleanup(&c);
}
END_TEST

/* --- payload limit ------------------------------------------------------ */

static int valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = s[i] < 0x80	     ? 1
			     : (s[i] & 0xE0) == 0xC0 ? 2
			     : (s[i] & 0xF0) == 0xE0 ? 3
			     : (s[i] & 0xF8) == 0xF0 ? 4
						     : 0;

		if (len == 0 || i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

/* ~10 KB of text mixing 1-, 2-, 3- and 4-byte characters and characters
 * JSON must escape. */
static char *big_text(size_t approx)
{
	static const char *const pieces[] = {
	    "a",  "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\"",
	    "\\", "\n"};
	char *s = malloc(approx + 8);
	size_t n = 0;

	for (size_t i = 0; n < approx; i++) {
		const char *p = pieces[i % PR_ARRAY_SIZE(pieces)];

		memcpy(s + n, p, strlen(p));
		n += strlen(p);
	}
	s[n] = '\0';
	return s;
}

static char *push_with(const char *title, const char *body)
{
	json_t *j = json_pack("{s:s, s:s, s:s}", "title", title, "body", body,
			      "badge", "unread");
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return s;
}

START_TEST(test_truncation)
{
	struct ctx c;
	struct pr_push p;
	struct pr_http_request r;
	char *text = big_text(10240), *json = push_with("Bob", text);
	const char *body;
	json_t *j, *alert;
	size_t blen;

	ctx_init(&c);
	ctx_create(&c);
	p = mkpush(PR_PUSH_ALERT, json);
	build_ok(&c, &p, T0, &r);
	ck_assert_uint_le(r.body_len, PR_APNS_MAX_PAYLOAD);
	ck_assert_uint_gt(r.body_len, PR_APNS_MAX_PAYLOAD - 16);
	ck_assert(valid_utf8((unsigned char *)r.body, r.body_len));
	j = body_json(&r);
	alert = json_object_get(json_object_get(j, "aps"), "alert");
	ck_assert_str_eq(json_string_value(json_object_get(alert, "title")),
			 "Bob");
	body = json_string_value(json_object_get(alert, "body"));
	blen = strlen(body);
	/* A prefix of the original on a character boundary, then U+2026. */
	ck_assert_uint_gt(blen, 3);
	ck_assert_str_eq(body + blen - 3, "\xE2\x80\xA6");
	ck_assert_int_eq(memcmp(body, text, blen - 3), 0);
	ck_assert((text[blen - 3] & 0xC0) != 0x80);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "seq")), 42);
	json_decref(j);
	pr_http_request_cleanup(&r);
	free(json);

	/* A huge title too: the body goes first, then the title. */
	json = push_with(text, text);
	p = mkpush(PR_PUSH_ALERT, json);
	build_ok(&c, &p, T0, &r);
	ck_assert_uint_le(r.body_len, PR_APNS_MAX_PAYLOAD);
	j = body_json(&r);
	alert = json_object_get(json_object_get(j, "aps"), "alert");
	ck_assert_str_eq(json_string_value(json_object_get(alert, "body")), "");
	ck_assert_uint_gt(
	    strlen(json_string_value(json_object_get(alert, "title"))), 1000);
	json_decref(j);
	pr_http_request_cleanup(&r);
	free(json);
	free(text);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_truncation_impossible)
{
	struct ctx c;
	struct pr_push p;
	struct pr_http_request r;
	char *id = malloc(5000);

	memset(id, 'x', 4999);
	id[4999] = '\0';
	ctx_init(&c);
	ctx_create(&c);
	p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	p.message_id = id;
	ck_assert_int_eq(
	    pr_apns_provider.build(c.inst, &p, T0, &r, c.err, sizeof(c.err)),
	    PR_ERR_LIMIT);
	ck_assert_ptr_nonnull(strstr(c.err, "4096"));
	ck_assert_ptr_null(r.body);
	free(id);
	ctx_cleanup(&c);
}
END_TEST

/* --- classify ----------------------------------------------------------- */

struct row {
	long status;
	const char *reason; /* NULL: no body */
	enum pr_outcome outcome;
};

static const struct row rows[] = {
    {410, "Unregistered", PR_OUTCOME_INVALID_TOKEN},
    {410, "ExpiredToken", PR_OUTCOME_INVALID_TOKEN},
    {400, "BadDeviceToken", PR_OUTCOME_INVALID_TOKEN},
    {400, "DeviceTokenNotForTopic", PR_OUTCOME_INVALID_TOKEN},
    {400, "TopicDisallowed", PR_OUTCOME_AUTH},
    {400, "BadTopic", PR_OUTCOME_AUTH},
    {403, "BadCertificate", PR_OUTCOME_AUTH},
    {403, "BadCertificateEnvironment", PR_OUTCOME_AUTH},
    {403, "InvalidProviderToken", PR_OUTCOME_AUTH},
    {403, "MissingProviderToken", PR_OUTCOME_AUTH},
    {403, "BadEnvironmentKeyIdInToken", PR_OUTCOME_AUTH},
    {403, "Forbidden", PR_OUTCOME_AUTH},
    {403, "ExpiredProviderToken", PR_OUTCOME_REAUTH},
    {403, "UnrelatedKeyIdInToken", PR_OUTCOME_RETRY},
    {429, "TooManyProviderTokenUpdates", PR_OUTCOME_RETRY},
    {429, "TooManyRequests", PR_OUTCOME_RETRY},
    {500, "InternalServerError", PR_OUTCOME_RETRY},
    {503, "ServiceUnavailable", PR_OUTCOME_RETRY},
    {503, "Shutdown", PR_OUTCOME_RETRY},
    {400, "IdleTimeout", PR_OUTCOME_RETRY},
    {413, "PayloadTooLarge", PR_OUTCOME_REJECTED},
    {400, "BadCollapseId", PR_OUTCOME_REJECTED},
    {400, "BadExpirationDate", PR_OUTCOME_REJECTED},
    {400, "BadMessageId", PR_OUTCOME_REJECTED},
    {400, "BadPriority", PR_OUTCOME_REJECTED},
    {400, "DuplicateHeaders", PR_OUTCOME_REJECTED},
    {400, "InvalidPushType", PR_OUTCOME_REJECTED},
    {400, "MissingDeviceToken", PR_OUTCOME_REJECTED},
    {400, "MissingTopic", PR_OUTCOME_REJECTED},
    {400, "PayloadEmpty", PR_OUTCOME_REJECTED},
    {404, "BadPath", PR_OUTCOME_REJECTED},
    {405, "MethodNotAllowed", PR_OUTCOME_REJECTED},
    {400, NULL, PR_OUTCOME_REJECTED},
    {403, NULL, PR_OUTCOME_AUTH},
    {502, NULL, PR_OUTCOME_RETRY},
    {0, NULL, PR_OUTCOME_RETRY},
};

START_TEST(test_classify_row)
{
	const struct row *w = &rows[_i];
	struct pr_push p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	struct pr_http_response resp;
	struct pr_push_verdict v;
	char body[256];
	struct ctx c;

	ctx_init(&c);
	ctx_create(&c);
	memset(&resp, 0, sizeof(resp));
	resp.status = w->status;
	resp.retry_after = 30;
	if (w->status == 0)
		resp.transport = "Connection reset by peer";
	if (w->reason) {
		if (w->status == 410)
			snprintf(body, sizeof(body),
				 "{\"reason\":\"%s\",\"timestamp\":"
				 "1700000000123}",
				 w->reason);
		else
			snprintf(body, sizeof(body), "{\"reason\":\"%s\"}",
				 w->reason);
		resp.body = body;
		resp.body_len = strlen(body);
	}
	pr_apns_provider.classify(c.inst, &p, &resp, T0, &v);
	ck_assert_msg(v.outcome == w->outcome, "%ld %s: %s, want %s", w->status,
		      w->reason ? w->reason : "-", pr_outcome_name(v.outcome),
		      pr_outcome_name(w->outcome));
	ck_assert_int_eq(v.retry_after, 30);
	if (w->reason)
		ck_assert_str_eq(v.reason, w->reason);
	else if (w->status)
		ck_assert_int_eq(strncmp(v.reason, "http_", 5), 0);
	else
		ck_assert_str_eq(v.reason, "Connection reset by peer");
	ck_assert_int_eq(v.invalid_since, w->status == 410 ? 1700000000123 : 0);
	ck_assert_str_eq(v.provider_id, "");
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_classify_success_and_untrusted)
{
	struct ctx c;
	struct pr_push p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	struct pr_http_response resp;
	struct pr_push_verdict v;
	char *huge;

	ctx_init(&c);
	ctx_create(&c);
	memset(&resp, 0, sizeof(resp));
	resp.status = 200;
	resp.retry_after = -1;
	resp.apns_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
	pr_apns_provider.classify(c.inst, &p, &resp, T0, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_SENT);
	ck_assert_str_eq(v.provider_id, resp.apns_id);
	ck_assert_int_eq(v.retry_after, -1);
	resp.apns_id = NULL;
	pr_apns_provider.classify(c.inst, &p, &resp, T0, &v);
	ck_assert_str_eq(v.provider_id, APNS_ID);

	/* Garbage, control characters and a huge reason stay bounded. */
	resp.status = 400;
	resp.body =
	    "{\"reason\":\"Bad\\nThing\\u0001xxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
	resp.body_len = strlen(resp.body);
	pr_apns_provider.classify(c.inst, &p, &resp, T0, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_REJECTED);
	ck_assert_uint_eq(strlen(v.reason), sizeof(v.reason) - 1);
	ck_assert_int_eq(strncmp(v.reason, "Bad?Thing?x", 11), 0);
	resp.body = "{\"reason\":";
	resp.body_len = strlen(resp.body);
	pr_apns_provider.classify(c.inst, &p, &resp, T0, &v);
	ck_assert_str_eq(v.reason, "http_400");
	/* A body too large to be APNs' is not parsed at all. */
	huge = malloc(100000);
	memset(huge, ' ', 99999);
	memcpy(huge, "{\"reason\":\"BadDeviceToken\"}", 27);
	huge[99999] = '\0';
	resp.body = huge;
	resp.body_len = strlen(huge);
	pr_apns_provider.classify(c.inst, &p, &resp, T0, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_REJECTED);
	free(huge);
	ctx_cleanup(&c);
}
END_TEST

/* --- certificate auth --------------------------------------------------- */

static X509 *self_signed(EVP_PKEY *key)
{
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"com.example.chat",
				   -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	return x;
}

START_TEST(test_cert_auth_pem)
{
	struct ctx c;
	struct pr_push p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	struct pr_http_request r;
	struct pr_push_verdict v;
	const char *cert, *key, *type, *pw;
	X509 *x;
	FILE *fp;
	char *pem;

	ctx_init(&c);
	snprintf(c.certfile, sizeof(c.certfile), "%s/push.crt", c.dir);
	snprintf(c.certkey, sizeof(c.certkey), "%s/push.key", c.dir);
	x = self_signed(c.key);
	fp = fopen(c.certfile, "w");
	PEM_write_X509(fp, x);
	fclose(fp);
	X509_free(x);
	pem = pem_pkcs8(c.key);
	ck_assert_int_eq(write_private(c.certkey, pem, 0644), 0);
	free(pem);
	c.app.apns_key_file = (char *)"";
	c.app.apns_cert_file = c.certfile;
	c.app.apns_cert_key_file = c.certkey;
	c.app.ca_file = (char *)"/etc/ssl/certs/ca-certificates.crt";
	/* The key file must be private. */
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, c.certkey));
	ck_assert_int_eq(chmod(c.certkey, 0600), 0);
	ctx_create(&c);
	pr_apns_provider.client_cert(c.inst, &cert, &key, &type, &pw);
	ck_assert_str_eq(cert, c.certfile);
	ck_assert_str_eq(key, c.certkey);
	ck_assert_str_eq(type, "PEM");
	ck_assert_ptr_null(pw);
	ck_assert_str_eq(pr_apns_provider.ca_file(c.inst),
			 "/etc/ssl/certs/ca-certificates.crt");
	build_ok(&c, &p, T0, &r);
	ck_assert_ptr_null(hdr(&r, "authorization"));
	ck_assert_str_eq(hdr(&r, "apns-topic"), "com.example.chat");
	pr_http_request_cleanup(&r);
	ck_assert_int_eq(pr_apns_jwt_mints(c.inst), 0);
	/* No token to refresh with certificates: ExpiredProviderToken is a
	 * configuration problem. */
	classify_body(&c, 403, "{\"reason\":\"ExpiredProviderToken\"}", T0, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_AUTH);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_cert_auth_p12)
{
	struct ctx c;
	const char *cert, *key, *type, *pw;
	PKCS12 *p12;
	X509 *x;
	FILE *fp;

	ctx_init(&c);
	snprintf(c.certfile, sizeof(c.certfile), "%s/push.P12", c.dir);
	x = self_signed(c.key);
	p12 = PKCS12_create("s3cret", "push", c.key, x, NULL, 0, 0, 0, 0, 0);
	ck_assert_ptr_nonnull(p12);
	fp = fopen(c.certfile, "wb");
	i2d_PKCS12_fp(fp, p12);
	fclose(fp);
	PKCS12_free(p12);
	X509_free(x);
	ck_assert_int_eq(chmod(c.certfile, 0600), 0);
	c.app.apns_key_file = (char *)"";
	c.app.apns_cert_file = c.certfile;
	c.app.apns_cert_password = (char *)"hunter2-bad";
	ck_assert_int_eq(pr_apns_provider.create(&c.inst, &c.app, &c.env, c.err,
						 sizeof(c.err)),
			 PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, "password"));
	ck_assert_ptr_null(strstr(c.err, "hunter2"));
	c.app.apns_cert_password = (char *)"s3cret";
	ctx_create(&c);
	pr_apns_provider.client_cert(c.inst, &cert, &key, &type, &pw);
	ck_assert_str_eq(cert, c.certfile);
	ck_assert_ptr_null(key);
	ck_assert_str_eq(type, "P12");
	ck_assert_str_eq(pw, "s3cret");
	ck_assert_ptr_null(pr_apns_provider.ca_file(c.inst));
	ctx_cleanup(&c);
}
END_TEST

/* --- shared pieces ------------------------------------------------------ */

START_TEST(test_b64url)
{
	static const unsigned char bin[] = {0xfb, 0xff, 0xbf};
	char *s;
	unsigned char *d;
	size_t n;

	s = pr_jwt_b64url("f", 1);
	ck_assert_str_eq(s, "Zg");
	free(s);
	s = pr_jwt_b64url("fo", 2);
	ck_assert_str_eq(s, "Zm8");
	free(s);
	s = pr_jwt_b64url("foo", 3);
	ck_assert_str_eq(s, "Zm9v");
	free(s);
	s = pr_jwt_b64url("", 0);
	ck_assert_str_eq(s, "");
	free(s);
	s = pr_jwt_b64url(bin, sizeof(bin));
	ck_assert_str_eq(s, "-_-_");
	d = pr_jwt_b64url_decode(s, strlen(s), &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(memcmp(d, bin, 3), 0);
	free(d);
	free(s);
	d = pr_jwt_b64url_decode("Zm8=", 4, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq((char *)d, "fo");
	free(d);
	ck_assert_ptr_null(pr_jwt_b64url_decode("Z", 1, &n));
	ck_assert_ptr_null(pr_jwt_b64url_decode("Zm+v", 4, &n));
}
END_TEST

START_TEST(test_der_to_raw_keeps_leading_zeros)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_new(), *s = NULL;
	unsigned char *der = NULL, raw[64], expect[64];
	int len;

	BN_set_word(r, 1);
	/* s: 32 bytes with the top bit set (DER adds a 0x00 sign byte). */
	memset(expect, 0, sizeof(expect));
	expect[31] = 1;
	memset(expect + 32, 0xff, 32);
	s = BN_bin2bn(expect + 32, 32, NULL);
	ECDSA_SIG_set0(sig, r, s);
	len = i2d_ECDSA_SIG(sig, &der);
	ck_assert_int_eq(pr_jwt_ecdsa_der_to_raw(der, (size_t)len, raw), 0);
	ck_assert_int_eq(memcmp(raw, expect, 64), 0);
	ck_assert_int_eq(pr_jwt_ecdsa_der_to_raw(der, (size_t)len - 1, raw),
			 PR_ERR_INVAL);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
}
END_TEST

START_TEST(test_registry_and_request_helpers)
{
	struct pr_http_request r;
	void *inst = NULL;
	struct pr_app_config app;
	struct pr_provider_env env = {1800, 300};
	struct pr_push p = mkpush(PR_PUSH_ALERT, NULL);
	struct pr_http_response resp;
	struct pr_push_verdict v;
	char err[128];

	ck_assert_ptr_eq(pr_provider_find("apns"), &pr_apns_provider);
	ck_assert_ptr_eq(pr_provider_find("fcm"), &pr_fcm_provider);
	ck_assert_ptr_eq(pr_provider_find("null"), &pr_null_provider);
	ck_assert_ptr_null(pr_provider_find("webpush"));
	ck_assert_str_eq(pr_outcome_name(PR_OUTCOME_REAUTH), "reauth");
	ck_assert_str_eq(pr_outcome_name(PR_OUTCOME_INVALID_TOKEN),
			 "invalid_token");

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < PR_HTTP_MAX_HEADERS - 1; i++)
		ck_assert_int_eq(pr_http_request_header(&r, "x-h%d: %d", i, i),
				 0);
	ck_assert_int_eq(pr_http_request_header(&r, "x-more: 1"), PR_ERR_LIMIT);
	ck_assert_ptr_null(r.headers[r.n_headers]);
	ck_assert_str_eq(r.headers[3], "x-h3: 3");
	pr_http_request_cleanup(&r);
	ck_assert_uint_eq(r.n_headers, 0);
	ck_assert_int_eq(pr_http_request_header(&r, "x-evil: a\r\nx-b: c"),
			 PR_ERR_INVAL);
	ck_assert_uint_eq(r.n_headers, 0);
	pr_http_request_cleanup(&r);

	/* The null provider: always there, never sends. */
	memset(&app, 0, sizeof(app));
	ck_assert_int_eq(
	    pr_null_provider.create(&inst, &app, &env, err, sizeof(err)), 0);
	ck_assert_int_eq(pr_null_provider.needs_auth(inst, T0), 0);
	ck_assert_int_ne(
	    pr_null_provider.build(inst, &p, T0, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "the null provider sends nothing");
	memset(&resp, 0, sizeof(resp));
	resp.status = 503;
	resp.retry_after = 5;
	pr_null_provider.classify(inst, &p, &resp, T0, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_RETRY);
	ck_assert_int_eq(v.retry_after, 5);
	resp.status = 204;
	pr_null_provider.classify(inst, &p, &resp, T0, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_SENT);
	pr_null_provider.destroy(inst);
}
END_TEST

static Suite *apns_suite(void)
{
	Suite *s = suite_create("apns");
	TCase *tc = tcase_create("create");

	tcase_add_test(tc, test_create_notfound);
	tcase_add_test(tc, test_create_refuses_readable_key);
	tcase_add_test(tc, test_create_checks_config);
	tcase_add_test(tc, test_create_refuses_wrong_key);
	tcase_add_test(tc, test_cert_auth_pem);
	tcase_add_test(tc, test_cert_auth_p12);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, test_build_alert);
	tcase_add_test(tc, test_build_sandbox_and_badge);
	tcase_add_test(tc, test_build_wakeup);
	tcase_add_test(tc, test_build_refuses);
	tcase_add_test(tc, test_collapse_id_bound_and_apns_id);
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_truncation_impossible);
	suite_add_tcase(s, tc);

	tc = tcase_create("jwt");
	tcase_add_test(tc, test_jwt_signature_and_claims);
	tcase_add_test(tc, test_jwt_many_signatures_verify);
	tcase_add_test(tc, test_jwt_refresh_schedule);
	tcase_add_test(tc, test_jwt_refresh_bounds);
	tcase_add_test(tc, test_jwt_expired_provider_token);
	tcase_add_test(tc, test_jwt_too_many_updates);
	tcase_add_test(tc, test_jwt_late_expired_answer);
	tcase_add_test(tc, test_b64url);
	tcase_add_test(tc, test_der_to_raw_keeps_leading_zeros);
	suite_add_tcase(s, tc);

	tc = tcase_create("classify");
	tcase_add_loop_test(tc, test_classify_row, 0, (int)PR_ARRAY_SIZE(rows));
	tcase_add_test(tc, test_classify_success_and_untrusted);
	suite_add_tcase(s, tc);

	tc = tcase_create("common");
	tcase_add_test(tc, test_registry_and_request_helpers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(apns_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

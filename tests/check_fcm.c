/*
 * check_fcm.c - the FCM HTTP v1 provider in memory: the service-account
 * checks, the OAuth2 assertion (RS256 verified with OpenSSL), the cached
 * access token and when it is refreshed, the messages:send request, the
 * 4096-byte limit, and every row of the error table.
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
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "config.h"
#include "harness.h"
#include "jwt.h"
#include "provider.h"
#include "pushrelay.h"
#include "store.h"

#define T0	   1700000000
#define EXPIRES_AT 1700086400
#define TOKEN_URI  "https://oauth2.googleapis.com/token"
#define EMAIL	   "relay@chat-prod.iam.gserviceaccount.com"
#define ACCESS	   "ya29.c.b0AXv0zTPtest-access-token"
#define FCM_TOKEN                                                              \
	"dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"                     \
	"7Ar8-NlP2z5R8sNq0nKWYcJf1FZ6v9tKZbFf3m_0X"
#define FULL_PUSH                                                              \
	"{\"mode\":\"alert\",\"title\":\"Bob\",\"body\":\"hi\","               \
	"\"sound\":\"default\",\"badge\":\"unread\",\"collapse_id\":"          \
	"\"conv-9\",\"priority\":\"high\",\"ttl\":86400,\"thread_id\":"        \
	"\"conv-9\",\"category\":\"MSG\"}"

struct ctx {
	char dir[256];
	char sa[320];
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

	ck_assert_int_eq(
	    PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL),
	    1);
	n = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)n);
	BIO_free(bio);
	return out;
}

/* A service-account JSON like Google's, minus `drop`, plus `extra`. */
static void write_sa(struct ctx *c, const char *drop, const char *type,
		     mode_t mode)
{
	char *pem = pem_pkcs8(c->key), *text;
	json_t *j = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type", type,
	    "project_id", "chat-prod", "private_key_id",
	    "8c0bdd7f1e5b4a3c9d2e1f0a7b6c5d4e3f2a1b0c", "private_key", pem,
	    "client_email", EMAIL, "client_id", "112233445566778899",
	    "auth_uri", "https://accounts.google.com/o/oauth2/auth",
	    "token_uri", TOKEN_URI);

	if (drop)
		json_object_del(j, drop);
	text = json_dumps(j, JSON_INDENT(2));
	ck_assert_int_eq(write_private(c->sa, text, mode), 0);
	free(text);
	free(pem);
	json_decref(j);
}

static void ctx_init(struct ctx *c)
{
	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(th_tmpdir(c->dir, sizeof(c->dir)), 0);
	snprintf(c->sa, sizeof(c->sa), "%s/service-account.json", c->dir);
	c->key = EVP_RSA_gen(2048);
	ck_assert_ptr_nonnull(c->key);
	write_sa(c, NULL, "service_account", 0600);
	c->app.name = (char *)"chat";
	c->app.apns_key_file = (char *)"";
	c->app.apns_cert_file = (char *)"";
	c->app.fcm_credentials = c->sa;
	c->app.fcm_url = (char *)"https://fcm.googleapis.com/";
	c->app.fcm_token_url = (char *)"";
	c->app.ca_file = (char *)"";
	c->env.jwt_refresh = 3000;
	c->env.oauth_margin = 300;
}

static void ctx_create(struct ctx *c)
{
	int rv = pr_fcm_provider.create(&c->inst, &c->app, &c->env, c->err,
					sizeof(c->err));

	ck_assert_msg(rv == 0, "create: %s", c->err);
}

static void ctx_cleanup(struct ctx *c)
{
	if (c->inst)
		pr_fcm_provider.destroy(c->inst);
	EVP_PKEY_free(c->key);
	unlink(c->sa);
	rmdir(c->dir);
}

static int create_rv(struct ctx *c)
{
	return pr_fcm_provider.create(&c->inst, &c->app, &c->env, c->err,
				      sizeof(c->err));
}

static struct pr_http_response mkresp(long status, const char *body)
{
	struct pr_http_response r;

	memset(&r, 0, sizeof(r));
	r.status = status;
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.retry_after = -1;
	r.latency = 0.1;
	return r;
}

/* Give the instance an access token valid for `life` seconds from now. */
static void authorise(struct ctx *c, time_t now, long life)
{
	char body[256];
	struct pr_http_response r;

	snprintf(body, sizeof(body),
		 "{\"access_token\":\"" ACCESS "\",\"expires_in\":%ld,"
		 "\"token_type\":\"Bearer\"}",
		 life);
	r = mkresp(200, body);
	ck_assert_int_eq(pr_fcm_provider.handle_auth(c->inst, now, &r, c->err,
						     sizeof(c->err)),
			 0);
}

static struct pr_push mkpush(int mode, const char *json)
{
	struct pr_push p;

	memset(&p, 0, sizeof(p));
	p.job_id = 9;
	p.app = "chat";
	p.platform = "fcm";
	p.token = FCM_TOKEN;
	p.message_id = "m-8f1c";
	p.seq = 42;
	p.mode = mode;
	p.push_json = json;
	p.unread = 3;
	p.expires_at = EXPIRES_AT;
	p.attempt = 1;
	return p;
}

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
	return found;
}

static json_t *body_json(const struct pr_http_request *r)
{
	json_error_t e;
	json_t *j =
	    json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);

	ck_assert_msg(j != NULL, "body is not JSON: %s", e.text);
	return j;
}

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
	while (n > len) {
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

static void verify_rs256(EVP_PKEY *key, const char *jwt, json_t **header,
			 json_t **claims)
{
	const char *d1 = strchr(jwt, '.'),
		   *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char *sig;
	EVP_MD_CTX *md;
	size_t siglen;

	ck_assert_ptr_nonnull(d2);
	*header = jwt_part(jwt, (size_t)(d1 - jwt));
	*claims = jwt_part(d1 + 1, (size_t)(d2 - d1 - 1));
	sig = b64url_dec(d2 + 1, strlen(d2 + 1), &siglen);
	ck_assert_uint_eq(siglen, 256);
	md = EVP_MD_CTX_new();
	ck_assert_int_eq(
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
	ck_assert_int_eq(EVP_DigestVerify(md, sig, siglen,
					  (const unsigned char *)jwt,
					  (size_t)(d2 - jwt)),
			 1);
	EVP_MD_CTX_free(md);
	free(sig);
}

/* --- create ------------------------------------------------------------- */

START_TEST(test_create_checks)
{
	struct ctx c;

	ctx_init(&c);
	c.app.fcm_credentials = (char *)"";
	ck_assert_int_eq(create_rv(&c), PR_ERR_NOTFOUND);
	c.app.fcm_credentials = NULL;
	ck_assert_int_eq(create_rv(&c), PR_ERR_NOTFOUND);
	c.app.fcm_credentials = c.sa;

	ck_assert_int_eq(chmod(c.sa, 0644), 0);
	ck_assert_int_eq(create_rv(&c), PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, c.sa));
	ck_assert_ptr_nonnull(strstr(c.err, "group or others"));
	ck_assert_int_eq(chmod(c.sa, 0600), 0);

	write_sa(&c, NULL, "authorized_user", 0600);
	ck_assert_int_eq(create_rv(&c), PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, "service_account"));
	write_sa(&c, "private_key", "service_account", 0600);
	ck_assert_int_eq(create_rv(&c), PR_ERR_CONFIG);
	write_sa(&c, "project_id", "service_account", 0600);
	ck_assert_int_eq(create_rv(&c), PR_ERR_CONFIG);
	write_sa(&c, "client_email", "service_account", 0600);
	ck_assert_int_eq(create_rv(&c), PR_ERR_CONFIG);
	write_sa(&c, "token_uri", "service_account", 0600);
	ck_assert_int_eq(create_rv(&c), PR_ERR_CONFIG);
	ck_assert_ptr_null(strstr(c.err, "BEGIN"));
	ck_assert_int_eq(write_private(c.sa, "{\"type\":", 0600), 0);
	ck_assert_int_eq(create_rv(&c), PR_ERR_CONFIG);
	ck_assert_ptr_null(c.inst);

	write_sa(&c, NULL, "service_account", 0600);
	ctx_create(&c);
	ck_assert_ptr_null(pr_fcm_provider.ca_file(c.inst));
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_create_refuses_ec_key)
{
	struct ctx c;

	ctx_init(&c);
	EVP_PKEY_free(c.key);
	c.key = EVP_EC_gen("P-256");
	write_sa(&c, NULL, "service_account", 0600);
	ck_assert_int_eq(create_rv(&c), PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, "RSA"));
	ctx_cleanup(&c);
}
END_TEST

/* --- OAuth2 ------------------------------------------------------------- */

static const char grant[] =
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    "&assertion=";

START_TEST(test_build_auth_assertion)
{
	struct ctx c;
	struct pr_http_request r;
	json_t *h, *cl;

	ctx_init(&c);
	ctx_create(&c);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0), 1);
	ck_assert_int_eq(pr_fcm_provider.build_auth(c.inst, T0, &r), 0);
	ck_assert_str_eq(r.method, "POST");
	ck_assert_str_eq(r.url, TOKEN_URI);
	ck_assert_str_eq(hdr(&r, "content-type"),
			 "application/x-www-form-urlencoded");
	ck_assert_uint_eq(strlen(r.body), r.body_len);
	ck_assert_int_eq(strncmp(r.body, grant, strlen(grant)), 0);
	/* One parameter after the grant: nothing else in the form. */
	ck_assert_ptr_null(strchr(r.body + strlen(grant), '&'));
	verify_rs256(c.key, r.body + strlen(grant), &h, &cl);
	ck_assert_str_eq(json_string_value(json_object_get(h, "alg")), "RS256");
	ck_assert_str_eq(json_string_value(json_object_get(h, "typ")), "JWT");
	ck_assert_str_eq(json_string_value(json_object_get(h, "kid")),
			 "8c0bdd7f1e5b4a3c9d2e1f0a7b6c5d4e3f2a1b0c");
	ck_assert_str_eq(json_string_value(json_object_get(cl, "iss")), EMAIL);
	ck_assert_str_eq(json_string_value(json_object_get(cl, "scope")),
			 "https://www.googleapis.com/auth/firebase.messaging");
	ck_assert_str_eq(json_string_value(json_object_get(cl, "aud")),
			 TOKEN_URI);
	ck_assert_int_eq(json_integer_value(json_object_get(cl, "iat")), T0);
	ck_assert_int_eq(json_integer_value(json_object_get(cl, "exp")),
			 T0 + 3600);
	json_decref(h);
	json_decref(cl);
	pr_http_request_cleanup(&r);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_token_url_override)
{
	struct ctx c;
	struct pr_http_request r;
	json_t *h, *cl;

	ctx_init(&c);
	c.app.fcm_token_url = (char *)"http://127.0.0.1:8999/token";
	ctx_create(&c);
	ck_assert_int_eq(pr_fcm_provider.build_auth(c.inst, T0, &r), 0);
	ck_assert_str_eq(r.url, "http://127.0.0.1:8999/token");
	verify_rs256(c.key, r.body + strlen(grant), &h, &cl);
	ck_assert_str_eq(json_string_value(json_object_get(cl, "aud")),
			 "http://127.0.0.1:8999/token");
	json_decref(h);
	json_decref(cl);
	pr_http_request_cleanup(&r);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_handle_auth_caches)
{
	struct ctx c;
	struct pr_http_response r;

	ctx_init(&c);
	ctx_create(&c);
	authorise(&c, T0, 3599);
	/* Ready until oauth_margin (300 s) before expiry. */
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0), 0);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 3298), 0);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 3299), 1);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 4000), 1);

	/* Without expires_in: an hour. */
	r = mkresp(200, "{\"access_token\":\"" ACCESS "\"}");
	ck_assert_int_eq(
	    pr_fcm_provider.handle_auth(c.inst, T0, &r, c.err, sizeof(c.err)),
	    0);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 3299), 0);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 3300), 1);

	/* A short-lived token is not refetched the moment it arrives. */
	authorise(&c, T0, 200);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0), 0);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 100), 1);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_handle_auth_errors)
{
	struct ctx c;
	struct pr_http_response r;
	struct pr_http_request q;

	ctx_init(&c);
	ctx_create(&c);
	ck_assert_int_eq(pr_fcm_provider.build_auth(c.inst, T0, &q), 0);
	r = mkresp(400, "{\"error\":\"invalid_grant\",\"error_description\":"
			"\"Invalid JWT Signature.\"}");
	ck_assert_int_eq(
	    pr_fcm_provider.handle_auth(c.inst, T0, &r, c.err, sizeof(c.err)),
	    PR_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(c.err, "invalid_grant"));
	ck_assert_ptr_nonnull(strstr(c.err, "400"));
	ck_assert_ptr_null(strstr(c.err, "Signature"));
	ck_assert_ptr_null(strstr(c.err, q.body + strlen(grant)));
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0), 1);
	pr_http_request_cleanup(&q);

	r = mkresp(503, "<html>busy</html>");
	ck_assert_int_eq(
	    pr_fcm_provider.handle_auth(c.inst, T0, &r, c.err, sizeof(c.err)),
	    PR_ERR_BUSY);
	r = mkresp(0, NULL);
	r.transport = "Could not resolve host";
	ck_assert_int_eq(
	    pr_fcm_provider.handle_auth(c.inst, T0, &r, c.err, sizeof(c.err)),
	    PR_ERR_BUSY);
	ck_assert_ptr_nonnull(strstr(c.err, "Could not resolve host"));
	r = mkresp(200, "{\"access_token\":\"a\\r\\nx-evil: 1\"}");
	ck_assert_int_eq(
	    pr_fcm_provider.handle_auth(c.inst, T0, &r, c.err, sizeof(c.err)),
	    PR_ERR_PROTO);
	r = mkresp(200, "{\"expires_in\":3600}");
	ck_assert_int_eq(
	    pr_fcm_provider.handle_auth(c.inst, T0, &r, c.err, sizeof(c.err)),
	    PR_ERR_PROTO);
	r = mkresp(200, "{\"access_token\":\"x\",\"expires_in\":-5}");
	ck_assert_int_eq(
	    pr_fcm_provider.handle_auth(c.inst, T0, &r, c.err, sizeof(c.err)),
	    PR_ERR_PROTO);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0), 1);
	ctx_cleanup(&c);
}
END_TEST

/* --- messages:send ------------------------------------------------------ */

static void build_ok(struct ctx *c, const struct pr_push *p, time_t now,
		     struct pr_http_request *r)
{
	int rv =
	    pr_fcm_provider.build(c->inst, p, now, r, c->err, sizeof(c->err));

	ck_assert_msg(rv == 0, "build: %s", c->err);
}

START_TEST(test_build_alert)
{
	struct ctx c;
	struct pr_push p = mkpush(PR_PUSH_ALERT, FULL_PUSH);
	struct pr_http_request r;
	json_t *j, *m, *data, *android, *n;

	ctx_init(&c);
	ctx_create(&c);
	ck_assert_int_eq(
	    pr_fcm_provider.build(c.inst, &p, T0, &r, c.err, sizeof(c.err)),
	    PR_ERR_BUSY);
	authorise(&c, T0, 3600);
	build_ok(&c, &p, T0, &r);
	ck_assert_str_eq(r.method, "POST");
	ck_assert_str_eq(r.url, "https://fcm.googleapis.com/v1/projects/"
				"chat-prod/messages:send");
	ck_assert_str_eq(hdr(&r, "authorization"), "Bearer " ACCESS);
	ck_assert_str_eq(hdr(&r, "content-type"), "application/json");
	j = body_json(&r);
	ck_assert_uint_eq(json_object_size(j), 1);
	m = json_object_get(j, "message");
	ck_assert_str_eq(json_string_value(json_object_get(m, "token")),
			 FCM_TOKEN);
	data = json_object_get(m, "data");
	ck_assert_str_eq(json_string_value(json_object_get(data, "message_id")),
			 "m-8f1c");
	ck_assert_str_eq(json_string_value(json_object_get(data, "seq")), "42");
	{
		const char *k;
		json_t *v;

		json_object_foreach(data, k, v)
		    ck_assert_msg(json_is_string(v), "data.%s is no string", k);
	}
	android = json_object_get(m, "android");
	ck_assert_str_eq(
	    json_string_value(json_object_get(android, "priority")), "HIGH");
	ck_assert_str_eq(json_string_value(json_object_get(android, "ttl")),
			 "86400s");
	ck_assert_str_eq(
	    json_string_value(json_object_get(android, "collapse_key")),
	    "conv-9");
	n = json_object_get(m, "notification");
	ck_assert_str_eq(json_string_value(json_object_get(n, "title")), "Bob");
	ck_assert_str_eq(json_string_value(json_object_get(n, "body")), "hi");
	json_decref(j);
	pr_http_request_cleanup(&r);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_build_wakeup_and_ttl)
{
	struct ctx c;
	struct pr_push p = mkpush(PR_PUSH_WAKEUP, FULL_PUSH);
	struct pr_http_request r;
	json_t *j, *m, *android;

	ctx_init(&c);
	ctx_create(&c);
	authorise(&c, T0, 3600);
	build_ok(&c, &p, T0 + 400, &r);
	j = body_json(&r);
	m = json_object_get(j, "message");
	ck_assert_ptr_null(json_object_get(m, "notification"));
	android = json_object_get(m, "android");
	ck_assert_str_eq(
	    json_string_value(json_object_get(android, "priority")), "HIGH");
	ck_assert_str_eq(json_string_value(json_object_get(android, "ttl")),
			 "86000s");
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(m, "data"), "seq")),
			 "42");
	json_decref(j);
	pr_http_request_cleanup(&r);

	/* priority normal -> NORMAL; TTL clamped to 0..4 weeks. */
	p = mkpush(PR_PUSH_WAKEUP, "{\"priority\":\"normal\"}");
	p.expires_at = T0 - 5;
	build_ok(&c, &p, T0, &r);
	j = body_json(&r);
	android = json_object_get(json_object_get(j, "message"), "android");
	ck_assert_str_eq(
	    json_string_value(json_object_get(android, "priority")), "NORMAL");
	ck_assert_str_eq(json_string_value(json_object_get(android, "ttl")),
			 "0s");
	ck_assert_ptr_null(json_object_get(android, "collapse_key"));
	json_decref(j);
	pr_http_request_cleanup(&r);
	p = mkpush(PR_PUSH_ALERT, NULL);
	p.expires_at = T0 + 10000000;
	build_ok(&c, &p, T0, &r);
	j = body_json(&r);
	android = json_object_get(json_object_get(j, "message"), "android");
	ck_assert_str_eq(json_string_value(json_object_get(android, "ttl")),
			 "2419200s");
	json_decref(j);
	pr_http_request_cleanup(&r);

	p = mkpush(PR_PUSH_NONE, NULL);
	ck_assert_int_ne(
	    pr_fcm_provider.build(c.inst, &p, T0, &r, c.err, sizeof(c.err)), 0);
	ck_assert_ptr_null(r.url);
	/* An expired access token is not used. */
	p = mkpush(PR_PUSH_ALERT, NULL);
	ck_assert_int_eq(pr_fcm_provider.build(c.inst, &p, T0 + 3600, &r, c.err,
					       sizeof(c.err)),
			 PR_ERR_BUSY);
	ctx_cleanup(&c);
}
END_TEST

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

START_TEST(test_truncation)
{
	static const char *const pieces[] = {
	    "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\"", "\x01", "z"};
	struct ctx c;
	struct pr_push p;
	struct pr_http_request r;
	char *text = malloc(10300), *json;
	const char *body;
	json_t *j, *n;
	size_t len = 0, blen;

	for (size_t i = 0; len < 10240; i++) {
		const char *s = pieces[i % PR_ARRAY_SIZE(pieces)];

		memcpy(text + len, s, strlen(s));
		len += strlen(s);
	}
	text[len] = '\0';
	j = json_pack("{s:s, s:s}", "title", "Bob", "body", text);
	json = json_dumps(j, JSON_COMPACT);
	json_decref(j);

	ctx_init(&c);
	ctx_create(&c);
	authorise(&c, T0, 3600);
	p = mkpush(PR_PUSH_ALERT, json);
	build_ok(&c, &p, T0, &r);
	ck_assert_uint_le(r.body_len, 4096);
	ck_assert_uint_gt(r.body_len, 4096 - 16);
	ck_assert(valid_utf8((unsigned char *)r.body, r.body_len));
	j = body_json(&r);
	n = json_object_get(json_object_get(j, "message"), "notification");
	ck_assert_str_eq(json_string_value(json_object_get(n, "title")), "Bob");
	body = json_string_value(json_object_get(n, "body"));
	blen = strlen(body);
	ck_assert_str_eq(body + blen - 3, "\xE2\x80\xA6");
	ck_assert_int_eq(memcmp(body, text, blen - 3), 0);
	json_decref(j);
	pr_http_request_cleanup(&r);
	free(json);
	free(text);
	ctx_cleanup(&c);
}
END_TEST

/* --- classify ----------------------------------------------------------- */

#define FCM_ERR(code, http, status, msg)                                       \
	"{\"error\":{\"code\":" #http ",\"message\":\"" msg                    \
	"\",\"status\":\"" status "\",\"details\":[{\"@type\":"                \
	"\"type.googleapis.com/google.firebase.fcm.v1.FcmError\","             \
	"\"errorCode\":\"" code "\"}]}}"

struct row {
	long status;
	const char *body;
	long retry_after; /* in the response */
	enum pr_outcome outcome;
	const char *reason;
	long want_retry_after;
};

static const struct row rows[] = {
    {404,
     FCM_ERR("UNREGISTERED", 404, "NOT_FOUND",
	     "Requested entity was not found."),
     -1, PR_OUTCOME_INVALID_TOKEN, "UNREGISTERED", -1},
    /* INVALID_ARGUMENT about the token: a field violation on it... */
    {400,
     "{\"error\":{\"code\":400,\"message\":\"Invalid value\",\"status\":"
     "\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/"
     "google.firebase.fcm.v1.FcmError\",\"errorCode\":\"INVALID_ARGUMENT\""
     "},{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\","
     "\"fieldViolations\":[{\"field\":\"message.token\",\"description\":"
     "\"Invalid registration token\"}]}]}}",
     -1, PR_OUTCOME_INVALID_TOKEN, "INVALID_ARGUMENT", -1},
    /* ...or the message says so. */
    {400,
     FCM_ERR("INVALID_ARGUMENT", 400, "INVALID_ARGUMENT",
	     "The registration token is not a valid FCM "
	     "registration token"),
     -1, PR_OUTCOME_INVALID_TOKEN, "INVALID_ARGUMENT", -1},
    /* About the message: rejected, the token stays. */
    {400,
     "{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload "
     "received.\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
     "\"type.googleapis.com/google.firebase.fcm.v1.FcmError\","
     "\"errorCode\":\"INVALID_ARGUMENT\"},{\"@type\":\"type.googleapis."
     "com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":"
     "\"message.data[0].value\",\"description\":\"not a string\"}]}]}}",
     -1, PR_OUTCOME_REJECTED, "INVALID_ARGUMENT", -1},
    {400,
     FCM_ERR("INVALID_ARGUMENT", 400, "INVALID_ARGUMENT", "Message is too big"),
     -1, PR_OUTCOME_REJECTED, "INVALID_ARGUMENT", -1},
    {403,
     FCM_ERR("SENDER_ID_MISMATCH", 403, "PERMISSION_DENIED",
	     "SenderId mismatch"),
     -1, PR_OUTCOME_INVALID_TOKEN, "SENDER_ID_MISMATCH", -1},
    {401,
     FCM_ERR("THIRD_PARTY_AUTH_ERROR", 401, "UNAUTHENTICATED",
	     "Auth error from APNS or Web Push Service"),
     -1, PR_OUTCOME_AUTH, "THIRD_PARTY_AUTH_ERROR", -1},
    {401,
     "{\"error\":{\"code\":401,\"message\":\"Request had invalid "
     "authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
     -1, PR_OUTCOME_REAUTH, "UNAUTHENTICATED", -1},
    {429,
     FCM_ERR("QUOTA_EXCEEDED", 429, "RESOURCE_EXHAUSTED", "Quota exceeded"), -1,
     PR_OUTCOME_RETRY, "QUOTA_EXCEEDED", 60},
    {429,
     FCM_ERR("QUOTA_EXCEEDED", 429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
     120, PR_OUTCOME_RETRY, "QUOTA_EXCEEDED", 120},
    {503, FCM_ERR("UNAVAILABLE", 503, "UNAVAILABLE", "busy"), 10,
     PR_OUTCOME_RETRY, "UNAVAILABLE", 10},
    {500, FCM_ERR("INTERNAL", 500, "INTERNAL", "oops"), -1, PR_OUTCOME_RETRY,
     "INTERNAL", -1},
    {0, NULL, 5, PR_OUTCOME_RETRY, "transport", 5},
    /* No FcmError: the HTTP status decides. */
    {503, "<html>Service Unavailable</html>", 7, PR_OUTCOME_RETRY, "http_503",
     7},
    {429, NULL, -1, PR_OUTCOME_RETRY, "http_429", 60},
    {403,
     "{\"error\":{\"code\":403,\"message\":\"Permission denied\","
     "\"status\":\"PERMISSION_DENIED\"}}",
     -1, PR_OUTCOME_AUTH, "PERMISSION_DENIED", -1},
    {404, "Not Found", -1, PR_OUTCOME_AUTH, "http_404", -1},
    {400, "{}", -1, PR_OUTCOME_REJECTED, "http_400", -1},
    {400,
     "{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":"
     "\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/"
     "google.firebase.fcm.v1.FcmError\",\"errorCode\":"
     "\"UNSPECIFIED_ERROR\"}]}}",
     -1, PR_OUTCOME_REJECTED, "UNSPECIFIED_ERROR", -1},
};

START_TEST(test_classify_row)
{
	const struct row *w = &rows[_i];
	struct pr_push p = mkpush(PR_PUSH_ALERT, NULL);
	struct pr_http_response r = mkresp(w->status, w->body);
	struct pr_push_verdict v;
	struct ctx c;
	struct pr_http_request q;

	ctx_init(&c);
	ctx_create(&c);
	authorise(&c, T0, 3600);
	/* The answer to a request made with the current token. */
	memset(&q, 0, sizeof(q));
	ck_assert_int_eq(pr_fcm_provider.build(c.inst, &p, T0 + 10, &q, c.err,
					       sizeof(c.err)),
			 0);
	r.credential = q.credential;
	pr_http_request_cleanup(&q);
	r.retry_after = w->retry_after;
	pr_fcm_provider.classify(c.inst, &p, &r, T0 + 10, &v);
	ck_assert_msg(v.outcome == w->outcome, "row %d: %s, want %s", _i,
		      pr_outcome_name(v.outcome), pr_outcome_name(w->outcome));
	ck_assert_str_eq(v.reason, w->reason);
	ck_assert_int_eq(v.retry_after, w->want_retry_after);
	ck_assert_str_eq(v.provider_id, "");
	/* Only our token being refused drops it. */
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 10),
			 w->outcome == PR_OUTCOME_REAUTH);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_classify_sent)
{
	struct ctx c;
	struct pr_push p = mkpush(PR_PUSH_ALERT, NULL);
	struct pr_http_response r =
	    mkresp(200, "{\"name\":\"projects/chat-prod/messages/"
			"0:1700000000000000%31bd1c9ef9fd7ecd\"}");
	struct pr_push_verdict v;

	ctx_init(&c);
	ctx_create(&c);
	authorise(&c, T0, 3600);
	pr_fcm_provider.classify(c.inst, &p, &r, T0, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_SENT);
	ck_assert_str_eq(v.provider_id, "projects/chat-prod/messages/"
					"0:1700000000000000%31bd1c9ef9fd7ecd");
	ck_assert_int_eq(v.retry_after, -1);
	ctx_cleanup(&c);
}
END_TEST

START_TEST(test_unauthenticated_drops_token)
{
	struct ctx c;
	struct pr_push p = mkpush(PR_PUSH_ALERT, NULL);
	struct pr_http_response r = mkresp(
	    401, "{\"error\":{\"code\":401,\"status\":\"UNAUTHENTICATED\"}}");
	struct pr_http_request q;
	struct pr_push_verdict v;

	ctx_init(&c);
	ctx_create(&c);
	authorise(&c, T0, 3600);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 100), 0);
	memset(&q, 0, sizeof(q));
	ck_assert_int_eq(pr_fcm_provider.build(c.inst, &p, T0 + 100, &q, c.err,
					       sizeof(c.err)),
			 0);
	ck_assert_uint_ne(q.credential, 0);
	r.credential = q.credential; /* the dispatcher hands it back */
	pr_http_request_cleanup(&q);
	pr_fcm_provider.classify(c.inst, &p, &r, T0 + 100, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_REAUTH);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 100), 1);
	memset(&q, 0, sizeof(q));
	ck_assert_int_eq(pr_fcm_provider.build(c.inst, &p, T0 + 100, &q, c.err,
					       sizeof(c.err)),
			 PR_ERR_BUSY);

	/* A token fetched after the refused request left is kept, even
	 * within the same second (the old request's 401 arrives late). */
	authorise(&c, T0 + 200, 3600);
	pr_fcm_provider.classify(c.inst, &p, &r, T0 + 200, &v);
	ck_assert_int_eq(v.outcome, PR_OUTCOME_REAUTH);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 200), 0);
	/* The new token's own 401, in that same second, drops it. */
	memset(&q, 0, sizeof(q));
	ck_assert_int_eq(pr_fcm_provider.build(c.inst, &p, T0 + 200, &q, c.err,
					       sizeof(c.err)),
			 0);
	ck_assert_uint_ne(q.credential, r.credential);
	r.credential = q.credential;
	pr_http_request_cleanup(&q);
	pr_fcm_provider.classify(c.inst, &p, &r, T0 + 200, &v);
	ck_assert_int_eq(pr_fcm_provider.needs_auth(c.inst, T0 + 200), 1);
	ctx_cleanup(&c);
}
END_TEST

static Suite *fcm_suite(void)
{
	Suite *s = suite_create("fcm");
	TCase *tc = tcase_create("create");

	tcase_add_test(tc, test_create_checks);
	tcase_add_test(tc, test_create_refuses_ec_key);
	suite_add_tcase(s, tc);

	tc = tcase_create("oauth");
	tcase_add_test(tc, test_build_auth_assertion);
	tcase_add_test(tc, test_token_url_override);
	tcase_add_test(tc, test_handle_auth_caches);
	tcase_add_test(tc, test_handle_auth_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, test_build_alert);
	tcase_add_test(tc, test_build_wakeup_and_ttl);
	tcase_add_test(tc, test_truncation);
	suite_add_tcase(s, tc);

	tc = tcase_create("classify");
	tcase_add_loop_test(tc, test_classify_row, 0, (int)PR_ARRAY_SIZE(rows));
	tcase_add_test(tc, test_classify_sent);
	tcase_add_test(tc, test_unauthenticated_drops_token);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fcm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

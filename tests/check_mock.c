/*
 * check_mock.c - tests for tests/mock/pr-mock, the APNs / FCM / OAuth
 * stand-in the relay is checked against. One mock (from $PR_MOCK) runs per
 * test case on an ephemeral loopback port with credentials it made itself;
 * the tests sign their own JWTs with OpenSSL (ES256 with the .p8, RS256
 * with the service-account key) and talk to it with libcurl over TLS h2.
 */
#include "autoconf.h"

#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define TEAM   "TESTTEAM01"
#define KEY_ID "TESTKEY001"
#define TOPIC  "com.example.app"
#define DEV    "0123456789abcdef0123456789abcdef"
#define BODY   "{\"aps\":{\"alert\":\"hi\"}}"

struct mock {
	pid_t pid;
	int port;
	char dir[256], cert[300], p8[300], sa[300], out[300];
	EVP_PKEY *apns_key, *sa_key;
	char email[256], token_uri[256], sa_kid[64], project[64];
};

static struct mock m;

struct resp {
	CURLcode rc;
	long status;
	char *body, *headers;
	size_t len;
	double secs;
	long connects;
};

/* --- the mock process ------------------------------------------------- */

static const char *mock_bin(void)
{
	const char *bin = getenv("PR_MOCK");

	return bin && *bin ? bin : "./tests/mock/pr-mock";
}

static int run_wait(char *const argv[])
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			dup2(fd, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void load_sa(struct mock *mk)
{
	char *text = th_read_file(mk->sa);
	json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
	const char *pem;
	BIO *b;

	ck_assert_msg(doc != NULL, "service-account.json unreadable");
	pem = json_string_value(json_object_get(doc, "private_key"));
	ck_assert_ptr_nonnull(pem);
	b = BIO_new_mem_buf(pem, -1);
	mk->sa_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	ck_assert_ptr_nonnull(mk->sa_key);
	snprintf(mk->email, sizeof(mk->email), "%s",
		 json_string_value(json_object_get(doc, "client_email")));
	snprintf(mk->token_uri, sizeof(mk->token_uri), "%s",
		 json_string_value(json_object_get(doc, "token_uri")));
	snprintf(mk->sa_kid, sizeof(mk->sa_kid), "%s",
		 json_string_value(json_object_get(doc, "private_key_id")));
	snprintf(mk->project, sizeof(mk->project), "%s",
		 json_string_value(json_object_get(doc, "project_id")));
	json_decref(doc);
	free(text);
}

/* Make credentials and start a mock with extra options (NULL-ended). */
static void mock_start(struct mock *mk, ...)
{
	char portfile[300], key[300], *argv[40];
	const char *bin = mock_bin();
	char *make[] = {(char *)bin, "--make-credentials", mk->dir, NULL};
	FILE *fp;
	va_list ap;
	int n = 0;

	memset(mk, 0, sizeof(*mk));
	ck_assert_int_eq(th_tmpdir(mk->dir, sizeof(mk->dir)), 0);
	ck_assert_msg(run_wait(make) == 0, "%s --make-credentials failed", bin);
	snprintf(mk->cert, sizeof(mk->cert), "%s/tls.crt", mk->dir);
	snprintf(key, sizeof(key), "%s/tls.key", mk->dir);
	snprintf(mk->p8, sizeof(mk->p8), "%s/AuthKey_" KEY_ID ".p8", mk->dir);
	snprintf(mk->sa, sizeof(mk->sa), "%s/service-account.json", mk->dir);
	snprintf(mk->out, sizeof(mk->out), "%s/mock.out", mk->dir);
	snprintf(portfile, sizeof(portfile), "%s/port", mk->dir);
	fp = fopen(mk->p8, "r");
	ck_assert_ptr_nonnull(fp);
	mk->apns_key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	ck_assert_ptr_nonnull(mk->apns_key);
	load_sa(mk);

	argv[n++] = (char *)bin;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--cert";
	argv[n++] = mk->cert;
	argv[n++] = "--key";
	argv[n++] = key;
	argv[n++] = "--port-file";
	argv[n++] = portfile;
	argv[n++] = "--apns-key";
	argv[n++] = mk->p8;
	argv[n++] = "--apns-key-id";
	argv[n++] = KEY_ID;
	argv[n++] = "--apns-team-id";
	argv[n++] = TEAM;
	argv[n++] = "--fcm-credentials";
	argv[n++] = mk->sa;
	va_start(ap, mk);
	for (char *a = va_arg(ap, char *); a && n < 38; a = va_arg(ap, char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;

	mk->pid = fork();
	ck_assert_int_ge(mk->pid, 0);
	if (mk->pid == 0) {
		int fd = open(mk->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		/* Never outlive the test process, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(bin, argv);
		_exit(127);
	}
	for (int i = 0; i < 1000 && !mk->port; i++) {
		char *text = th_read_file(portfile);

		if (text)
			mk->port = (int)strtol(text, NULL, 10);
		free(text);
		if (!mk->port)
			usleep(10000);
	}
	ck_assert_msg(mk->port > 0, "pr-mock did not start; see %s", mk->out);
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	return remove(path);
}

/* SIGTERM the mock; its exit status (-1 if it had to be killed). */
static int mock_stop(struct mock *mk)
{
	int st = 0, rv = -1;

	if (mk->pid > 0) {
		kill(mk->pid, SIGTERM);
		for (int i = 0; i < 1000; i++) {
			if (waitpid(mk->pid, &st, WNOHANG) == mk->pid) {
				rv = WIFEXITED(st) ? WEXITSTATUS(st) : -2;
				break;
			}
			usleep(10000);
		}
		if (rv == -1 && waitpid(mk->pid, &st, WNOHANG) == 0) {
			kill(mk->pid, SIGKILL);
			waitpid(mk->pid, &st, 0);
		}
		mk->pid = 0;
	}
	return rv;
}

static void mock_cleanup(struct mock *mk)
{
	mock_stop(mk);
	EVP_PKEY_free(mk->apns_key);
	EVP_PKEY_free(mk->sa_key);
	mk->apns_key = mk->sa_key = NULL;
	if (mk->dir[0] && !getenv("TH_KEEP"))
		nftw(mk->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- HTTP ------------------------------------------------------------- */

static size_t sink_cb(char *p, size_t size, size_t n, void *arg)
{
	struct {
		char **p;
		size_t *len;
	} *s = arg;
	size_t add = size * n;
	char *q = realloc(*s->p, *s->len + add + 1);

	if (!q)
		return 0;
	memcpy(q + *s->len, p, add);
	*s->len += add;
	q[*s->len] = '\0';
	*s->p = q;
	return add;
}

static size_t discard_cb(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

/* Set up h for one request; hl (may be NULL) is the header list. */
static void prepare(CURL *h, const char *method, const char *path,
		    const char *body, long blen, struct curl_slist *hl,
		    const struct mock *mk)
{
	char url[512];

	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", mk->port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_CAINFO, mk->cert);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE,
				 blen >= 0 ? blen : (long)strlen(body));
	} else {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
}

/* One request on h (NULL = a fresh handle, so a fresh connection). */
static void request_on(CURL *h, const char *method, const char *path,
		       const char *body, struct curl_slist *hl, struct resp *r)
{
	CURL *own = h ? NULL : curl_easy_init();
	struct {
		char **p;
		size_t *len;
	} bs = {&r->body, &r->len}, hs;
	size_t hlen = 0;

	memset(r, 0, sizeof(*r));
	hs.p = &r->headers;
	hs.len = &hlen;
	if (!h)
		h = own;
	ck_assert_ptr_nonnull(h);
	prepare(h, method, path, body, -1, hl, &m);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &bs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, sink_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &hs);
	r->rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &r->secs);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
	if (!r->body)
		r->body = strdup("");
	if (!r->headers)
		r->headers = strdup("");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
	if (own)
		curl_easy_cleanup(own);
}

static void request(const char *method, const char *path, const char *body,
		    struct resp *r)
{
	struct curl_slist *hl =
	    body ? curl_slist_append(NULL, "content-type: application/json")
		 : NULL;

	request_on(NULL, method, path, body, hl, r);
	curl_slist_free_all(hl);
}

static json_t *resp_json(const struct resp *r)
{
	json_t *doc = json_loadb(r->body, r->len, 0, NULL);

	ck_assert_msg(doc != NULL, "not JSON (%ld): %s", r->status, r->body);
	return doc;
}

/* GET a control endpoint as JSON. */
static json_t *get_json(const char *path)
{
	struct resp r;
	json_t *doc;

	request("GET", path, NULL, &r);
	ck_assert_int_eq(r.rc, CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	doc = resp_json(&r);
	resp_free(&r);
	return doc;
}

static void script(const char *rule)
{
	struct resp r;

	request("POST", "/mock/script", rule, &r);
	ck_assert_msg(r.rc == CURLE_OK && r.status == 200, "rule %s: %ld %s",
		      rule, r.status, r.body);
	resp_free(&r);
}

static long long stat_of(const char *name)
{
	json_t *doc = get_json("/mock/stats");
	long long v = json_integer_value(json_object_get(doc, name));

	json_decref(doc);
	return v;
}

static const char *header_of(const struct resp *r, const char *name, char *out,
			     size_t outlen)
{
	const char *p = strcasestr(r->headers, name);
	size_t n;

	if (!p)
		return NULL;
	p += strlen(name);
	while (*p == ':' || *p == ' ')
		p++;
	n = strcspn(p, "\r\n");
	snprintf(out, outlen, "%.*s", (int)n, p);
	return out;
}

/* --- JWTs ------------------------------------------------------------- */

static char *b64url(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (int i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return out;
}

/* header.claims signed with key: ES256 (raw R||S) for EC keys, else RS256. */
static char *sign(EVP_PKEY *key, const char *header, const char *claims)
{
	char *h = b64url((const unsigned char *)header, strlen(header));
	char *c = b64url((const unsigned char *)claims, strlen(claims));
	size_t inlen = strlen(h) + strlen(c) + 1, siglen = 0;
	char *input = malloc(inlen + 1), *s, *tok;
	unsigned char *sig;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	snprintf(input, inlen + 1, "%s.%s", h, c);
	ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key),
			 1);
	ck_assert_int_eq(
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)input, inlen),
	    1);
	sig = malloc(siglen);
	ck_assert_int_eq(
	    EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, inlen), 1);
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
		unsigned char rs[64];

		ck_assert_ptr_nonnull(es);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
		ECDSA_SIG_free(es);
		s = b64url(rs, 64);
	} else {
		s = b64url(sig, siglen);
	}
	tok = malloc(inlen + strlen(s) + 2);
	snprintf(tok, inlen + strlen(s) + 2, "%s.%s", input, s);
	free(h);
	free(c);
	free(input);
	free(sig);
	free(s);
	EVP_MD_CTX_free(md);
	return tok;
}

static char *apns_jwt_full(EVP_PKEY *key, const char *kid, const char *iss,
			   long long iat)
{
	char header[128], claims[128];

	snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"kid\":\"%s\"}",
		 kid);
	snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"iat\":%lld}", iss,
		 iat);
	return sign(key, header, claims);
}

static char *apns_jwt(long long iat)
{
	return apns_jwt_full(m.apns_key, KEY_ID, TEAM, iat);
}

static long long now_s(void)
{
	return (long long)time(NULL);
}

/*
 * POST /3/device/<token> on h (NULL = fresh connection) with jwt (NULL =
 * no authorization) and extra headers (NULL-ended). "apns-topic" is added
 * unless an extra header sets it; the extra "-apns-topic" leaves it out.
 */
static void apns_on(CURL *h, struct resp *r, const char *token, const char *jwt,
		    const char *body, ...)
{
	struct curl_slist *hl = NULL;
	char path[512], auth[1024];
	int topic = 1;
	va_list ap;

	va_start(ap, body);
	for (const char *a = va_arg(ap, const char *); a;
	     a = va_arg(ap, const char *)) {
		if (strncmp(a, "apns-topic", 10) == 0 ||
		    strcmp(a, "-apns-topic") == 0)
			topic = 0;
		if (a[0] != '-')
			hl = curl_slist_append(hl, a);
	}
	va_end(ap);
	if (topic)
		hl = curl_slist_append(hl, "apns-topic: " TOPIC);
	if (jwt) {
		snprintf(auth, sizeof(auth), "authorization: bearer %s", jwt);
		hl = curl_slist_append(hl, auth);
	}
	snprintf(path, sizeof(path), "/3/device/%s", token);
	request_on(h, "POST", path, body, hl, r);
	curl_slist_free_all(hl);
}

static char *reason_of(const struct resp *r)
{
	json_t *doc = json_loadb(r->body, r->len, 0, NULL);
	const char *s = json_string_value(json_object_get(doc, "reason"));
	char *copy = strdup(s ? s : "");

	json_decref(doc);
	return copy;
}

#define ck_reason(r, want_status, want_reason)                                 \
	do {                                                                   \
		char *got_ = reason_of(r);                                     \
		ck_assert_msg((r)->rc == CURLE_OK &&                           \
				  (r)->status == (want_status) &&              \
				  strcmp(got_, want_reason) == 0,              \
			      "line %d: want %d %s, got rc %d %ld %s",         \
			      __LINE__, want_status, want_reason,              \
			      (int)(r)->rc, (r)->status, (r)->body);           \
		free(got_);                                                    \
	} while (0)

/* --- fixtures --------------------------------------------------------- */

static void case_setup(void)
{
	mock_start(&m, NULL);
}

static void case_teardown(void)
{
	int rv = mock_stop(&m);
	char *log = rv ? th_read_file(m.out) : NULL;

	/* Under ASan a leak makes the exit status non-zero. */
	ck_assert_msg(rv == 0, "pr-mock exited %d: %s", rv, log ? log : "");
	free(log);
	mock_cleanup(&m);
}

static void each_setup(void)
{
	struct resp r;

	request("POST", "/mock/reset", "", &r);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
}

/* --- tests: credentials and transport ---------------------------------- */

START_TEST(test_make_credentials)
{
	const char *files[] = {"tls.crt", "tls.key", "AuthKey_" KEY_ID ".p8",
			       "service-account.json"};
	char path[512], *text;
	json_t *doc;

	for (size_t i = 0; i < 4; i++) {
		struct stat sb;

		snprintf(path, sizeof(path), "%s/%s", m.dir, files[i]);
		ck_assert_int_eq(stat(path, &sb), 0);
		ck_assert_int_eq(sb.st_mode & 0777, 0600);
	}
	text = th_read_file(m.p8);
	ck_assert_ptr_nonnull(strstr(text, "-----BEGIN PRIVATE KEY-----"));
	free(text);
	ck_assert_int_eq(EVP_PKEY_get_base_id(m.apns_key), EVP_PKEY_EC);
	ck_assert_int_eq(EVP_PKEY_get_bits(m.sa_key), 2048);
	text = th_read_file(m.sa);
	doc = json_loads(text, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "type")),
			 "service_account");
	ck_assert_str_eq(m.project, "pr-mock-project");
	ck_assert_str_eq(m.token_uri, "https://127.0.0.1:PORT/token");
	ck_assert_ptr_nonnull(strstr(m.email, "@pr-mock-project.iam."));
	ck_assert_int_eq(strlen(m.sa_kid), 40);
	ck_assert_ptr_nonnull(json_object_get(doc, "client_id"));
	ck_assert_ptr_nonnull(json_object_get(doc, "auth_uri"));
	json_decref(doc);
	free(text);
	/* The banner, flushed before anything else happened. */
	text = th_read_file(m.out);
	snprintf(path, sizeof(path), "pr-mock listening on 127.0.0.1:%d\n",
		 m.port);
	ck_assert_msg(strstr(text, path) != NULL, "banner: %s", text);
	free(text);
}
END_TEST

START_TEST(test_h2_only)
{
	CURL *h = curl_easy_init();
	char url[128];
	long version = 0;
	struct resp r;

	/* The certificate is trusted by CAINFO for IP 127.0.0.1 and for
	 * localhost (SANs), and only h2 is offered by ALPN. */
	snprintf(url, sizeof(url), "https://localhost:%d/mock/stats", m.port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, m.cert);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
	ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &version);
	ck_assert_int_eq(version, CURL_HTTP_VERSION_2_0);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
	ck_assert_int_ne(curl_easy_perform(h), CURLE_OK);
	curl_easy_cleanup(h);

	request("GET", "/nothing/here", NULL, &r);
	ck_reason(&r, 404, "BadPath");
	resp_free(&r);
}
END_TEST

/* --- tests: APNs ------------------------------------------------------- */

START_TEST(test_apns_success)
{
	char *jwt = apns_jwt(now_s()), id[64];
	struct resp r;

	apns_on(NULL, &r, DEV, jwt, BODY,
		"apns-id: 123E4567-E89B-12D3-A456-426614174000",
		"apns-push-type: alert", "apns-priority: 10",
		"apns-expiration: 0", "apns-collapse-id: c1", NULL);
	ck_assert_int_eq(r.rc, CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.len, 0);
	ck_assert_str_eq(header_of(&r, "apns-id", id, sizeof(id)),
			 "123E4567-E89B-12D3-A456-426614174000");
	resp_free(&r);

	/* Without apns-id the mock makes one up. */
	apns_on(NULL, &r, DEV, jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(header_of(&r, "apns-id", id, sizeof(id)));
	ck_assert_int_eq(strlen(id), 36);
	ck_assert_int_eq(id[8], '-');
	resp_free(&r);

	/* Background at priority 5, VoIP up to 5120 bytes, collapse id of
	 * exactly 64 bytes, location without "aps". */
	apns_on(NULL, &r, DEV, jwt, "{\"aps\":{\"content-available\":1}}",
		"apns-push-type: background", "apns-priority: 5", NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	{
		char big[5200];

		memset(big, ' ', sizeof(big));
		memcpy(big, "{\"aps\":{}", 9);
		big[5000] = '}';
		big[5001] = '\0';
		apns_on(NULL, &r, DEV, jwt, big, "apns-push-type: voip",
			"apns-topic: " TOPIC ".voip", NULL);
		ck_assert_int_eq(r.status, 200);
		resp_free(&r);
	}
	apns_on(
	    NULL, &r, DEV, jwt, BODY,
	    "apns-collapse-id: "
	    "0123456789012345678901234567890123456789012345678901234567890123",
	    NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, "{}", "apns-push-type: location",
		"apns-topic: " TOPIC ".location-query", NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	free(jwt);
}
END_TEST

START_TEST(test_apns_validation)
{
	char *jwt = apns_jwt(now_s()), big[4200], voip[5300];
	struct curl_slist *hl = NULL;
	char auth[1024];
	struct resp r;

	snprintf(auth, sizeof(auth), "authorization: bearer %s", jwt);
	hl = curl_slist_append(hl, auth);
	hl = curl_slist_append(hl, "apns-topic: " TOPIC);
	request_on(NULL, "GET", "/3/device/" DEV, NULL, hl, &r);
	ck_reason(&r, 405, "MethodNotAllowed");
	resp_free(&r);
	request_on(NULL, "POST", "/3/device/", BODY, hl, &r);
	ck_reason(&r, 400, "MissingDeviceToken");
	resp_free(&r);
	request_on(NULL, "POST", "/3/devices/" DEV, BODY, hl, &r);
	ck_reason(&r, 404, "BadPath");
	resp_free(&r);
	curl_slist_free_all(hl);

	apns_on(NULL, &r, "not-hex", jwt, BODY, NULL);
	ck_reason(&r, 400, "BadDeviceToken");
	resp_free(&r);
	apns_on(NULL, &r, "abc", jwt, BODY, NULL); /* odd length */
	ck_reason(&r, 400, "BadDeviceToken");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "-apns-topic", NULL);
	ck_reason(&r, 400, "MissingTopic");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "apns-push-type: banana", NULL);
	ck_reason(&r, 400, "InvalidPushType");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "apns-push-type: voip", NULL);
	ck_reason(&r, 400, "BadTopic"); /* voip wants <bundle>.voip */
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "apns-priority: 7", NULL);
	ck_reason(&r, 400, "BadPriority");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "apns-push-type: background",
		"apns-priority: 10", NULL);
	ck_reason(&r, 400, "BadPriority");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "apns-push-type: background", NULL);
	ck_reason(&r, 400, "BadPriority"); /* omitted means 10 */
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "apns-expiration: soon", NULL);
	ck_reason(&r, 400, "BadExpirationDate");
	resp_free(&r);
	apns_on(
	    NULL, &r, DEV, jwt, BODY,
	    "apns-collapse-id: "
	    "01234567890123456789012345678901234567890123456789012345678901234",
	    NULL);
	ck_reason(&r, 400, "BadCollapseId");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "apns-id: not-a-uuid", NULL);
	ck_reason(&r, 400, "BadMessageId");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY,
		"apns-id: 123e4567e89b12d3a456426614174000", NULL);
	ck_reason(&r, 400, "BadMessageId");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, BODY, "apns-topic: " TOPIC,
		"apns-topic: " TOPIC, NULL);
	ck_reason(&r, 400, "DuplicateHeaders");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, "", NULL);
	ck_reason(&r, 400, "PayloadEmpty");
	resp_free(&r);
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"aps\":{}", 9);
	big[4096] = '}';
	big[4097] = '\0'; /* 4097 bytes */
	apns_on(NULL, &r, DEV, jwt, big, NULL);
	ck_reason(&r, 413, "PayloadTooLarge");
	resp_free(&r);
	memset(voip, ' ', sizeof(voip));
	memcpy(voip, "{\"aps\":{}", 9);
	voip[5120] = '}';
	voip[5121] = '\0';
	apns_on(NULL, &r, DEV, jwt, voip, "apns-push-type: voip",
		"apns-topic: " TOPIC ".voip", NULL);
	ck_reason(&r, 413, "PayloadTooLarge");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, "[1,2]", NULL);
	ck_reason(&r, 400, "BadPayload");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, "{\"alert\":\"no aps\"}", NULL);
	ck_reason(&r, 400, "BadPayload");
	resp_free(&r);
	apns_on(NULL, &r, DEV, jwt, "{\"aps\":", NULL);
	ck_reason(&r, 400, "BadPayload");
	resp_free(&r);
	free(jwt);
}
END_TEST

START_TEST(test_apns_provider_token)
{
	EVP_PKEY *other = EVP_EC_gen("P-256");
	char *good = apns_jwt(now_s()), *bad;
	struct resp r;

	apns_on(NULL, &r, DEV, NULL, BODY, NULL);
	ck_reason(&r, 403, "MissingProviderToken");
	resp_free(&r);
	apns_on(NULL, &r, DEV, NULL, BODY, "authorization: bearer", NULL);
	ck_reason(&r, 403, "MissingProviderToken");
	resp_free(&r);

	/* Signed by another key. */
	bad = apns_jwt_full(other, KEY_ID, TEAM, now_s());
	apns_on(NULL, &r, DEV, bad, BODY, NULL);
	ck_reason(&r, 403, "InvalidProviderToken");
	resp_free(&r);
	free(bad);
	/* A flipped signature bit. */
	bad = strdup(good);
	bad[strlen(bad) - 5] = bad[strlen(bad) - 5] == 'A' ? 'B' : 'A';
	apns_on(NULL, &r, DEV, bad, BODY, NULL);
	ck_reason(&r, 403, "InvalidProviderToken");
	resp_free(&r);
	free(bad);
	/* Wrong key id, wrong team, garbage, RS256. */
	bad = apns_jwt_full(m.apns_key, "OTHERKEY01", TEAM, now_s());
	apns_on(NULL, &r, DEV, bad, BODY, NULL);
	ck_reason(&r, 403, "InvalidProviderToken");
	resp_free(&r);
	free(bad);
	bad = apns_jwt_full(m.apns_key, KEY_ID, "OTHERTEAM1", now_s());
	apns_on(NULL, &r, DEV, bad, BODY, NULL);
	ck_reason(&r, 403, "InvalidProviderToken");
	resp_free(&r);
	free(bad);
	apns_on(NULL, &r, DEV, "not.a.jwt", BODY, NULL);
	ck_reason(&r, 403, "InvalidProviderToken");
	resp_free(&r);
	bad = sign(m.sa_key, "{\"alg\":\"RS256\",\"kid\":\"" KEY_ID "\"}",
		   "{\"iss\":\"" TEAM "\",\"iat\":1}");
	apns_on(NULL, &r, DEV, bad, BODY, NULL);
	ck_reason(&r, 403, "InvalidProviderToken");
	resp_free(&r);
	free(bad);
	/* iat in milliseconds by mistake. */
	bad = apns_jwt(now_s() * 1000);
	apns_on(NULL, &r, DEV, bad, BODY, NULL);
	ck_reason(&r, 403, "InvalidProviderToken");
	resp_free(&r);
	free(bad);

	/* Stale: iat more than an hour old. */
	bad = apns_jwt(now_s() - 3700);
	apns_on(NULL, &r, DEV, bad, BODY, NULL);
	ck_reason(&r, 403, "ExpiredProviderToken");
	resp_free(&r);
	free(bad);
	bad = apns_jwt(now_s() - 3500); /* old but within the hour */
	apns_on(NULL, &r, DEV, bad, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	free(bad);
	free(good);
	EVP_PKEY_free(other);
}
END_TEST

START_TEST(test_apns_token_updates)
{
	CURL *h = curl_easy_init();
	char *a = apns_jwt(now_s()), *b = apns_jwt(now_s() - 1);
	long long seen0 = stat_of("jwt_tokens_seen");
	struct resp r;

	/* One connection: the first token, a second one within 20 minutes
	 * (refused, the connection keeps the first), the first again. */
	apns_on(h, &r, DEV, a, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.connects, 1);
	resp_free(&r);
	for (int i = 0; i < 3; i++) {
		apns_on(h, &r, DEV, a, BODY, NULL);
		ck_assert_int_eq(r.status, 200);
		ck_assert_int_eq(r.connects, 0); /* same connection */
		resp_free(&r);
	}
	apns_on(h, &r, DEV, b, BODY, NULL);
	ck_reason(&r, 429, "TooManyProviderTokenUpdates");
	ck_assert_int_eq(r.connects, 0);
	resp_free(&r);
	apns_on(h, &r, DEV, a, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	curl_easy_cleanup(h);
	/* A new connection takes the second token. */
	apns_on(NULL, &r, DEV, b, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	/* Each connection verified each new token once. */
	ck_assert_int_eq(stat_of("jwt_tokens_seen") - seen0, 3);
	free(a);
	free(b);
}
END_TEST

/* --- tests: scripting --------------------------------------------------- */

START_TEST(test_script_unregistered)
{
	char *jwt = apns_jwt(now_s()), ra[32];
	struct resp r;
	json_t *doc;
	long long ts;

	script("{\"token\":\"" DEV "\",\"status\":410,"
	       "\"reason\":\"Unregistered\",\"times\":1}");
	apns_on(NULL, &r, DEV, jwt, BODY, NULL);
	ck_reason(&r, 410, "Unregistered");
	doc = resp_json(&r);
	ts = json_integer_value(json_object_get(doc, "timestamp"));
	ck_assert_msg(ts > (now_s() - 60) * 1000 && ts < (now_s() + 60) * 1000,
		      "timestamp %lld is not now in ms", ts);
	json_decref(doc);
	resp_free(&r);
	/* "times":1 has expired. */
	apns_on(NULL, &r, DEV, jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);

	/* Newest rule first; "*" matches every token; retry-after. */
	script("{\"token\":\"*\",\"status\":429,\"reason\":\"TooManyRequests\","
	       "\"retry_after\":7}");
	script("{\"token\":\"" DEV "\",\"status\":400,"
	       "\"reason\":\"DeviceTokenNotForTopic\"}");
	apns_on(NULL, &r, DEV, jwt, BODY, NULL);
	ck_reason(&r, 400, "DeviceTokenNotForTopic");
	resp_free(&r);
	apns_on(NULL, &r, "aabbcc", jwt, BODY, NULL);
	ck_reason(&r, 429, "TooManyRequests");
	ck_assert_str_eq(header_of(&r, "retry-after", ra, sizeof(ra)), "7");
	resp_free(&r);
	/* Validation still comes first. */
	apns_on(NULL, &r, "aabbcc", NULL, BODY, NULL);
	ck_reason(&r, 403, "MissingProviderToken");
	resp_free(&r);
	doc = get_json("/mock/script");
	ck_assert_int_eq(json_array_size(json_object_get(doc, "rules")), 2);
	json_decref(doc);
	request("DELETE", "/mock/script", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	apns_on(NULL, &r, "aabbcc", jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);

	/* A status without a reason gets Apple's usual one. */
	script("{\"token\":\"*\",\"status\":503,\"times\":1}");
	apns_on(NULL, &r, DEV, jwt, BODY, NULL);
	ck_reason(&r, 503, "ServiceUnavailable");
	resp_free(&r);
	free(jwt);
}
END_TEST

START_TEST(test_script_bad_rules)
{
	static const char *const bad[] = {
	    "not json",
	    "{}",
	    "{\"token\":\"\"}",
	    "{\"token\":\"*\",\"status\":42}",
	    "{\"token\":\"*\",\"action\":\"explode\"}",
	    "{\"token\":\"*\",\"times\":0}",
	    "{\"token\":\"*\",\"delay_ms\":-1}",
	    "{\"token\":\"*\",\"colour\":\"red\"}",
	    "{\"token\":\"*\",\"kind\":\"smtp\"}",
	    "{\"token\":\"*\",\"reason\":\"with \\\"quotes\\\"\"}",
	    "{\"token\":\"*\",\"for_ms\":0}",
	    "{\"token\":\"*\",\"kind\":\"tls\"}",
	    "{\"token\":\"*\",\"action\":\"fail\"}",
	    "{\"token\":\"aaaa\",\"kind\":\"tls\",\"action\":\"fail\"}",
	    "{\"token\":\"*\",\"kind\":\"tls\",\"action\":\"fail\","
	    "\"status\":503}",
	    /* Forever would lock the control API out. */
	    "{\"token\":\"*\",\"kind\":\"tls\",\"action\":\"fail\"}",
	};
	struct resp r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		request("POST", "/mock/script", bad[i], &r);
		ck_assert_msg(r.status == 400, "%s: %ld", bad[i], r.status);
		resp_free(&r);
	}
	request("PUT", "/mock/stats", "{}", &r);
	ck_assert_int_eq(r.status, 405);
	resp_free(&r);
	request("GET", "/mock/nope", NULL, &r);
	ck_assert_int_eq(r.status, 404);
	resp_free(&r);
	ck_assert_int_eq(stat_of("rules"), 0);
	/* Control requests are not counted as sends. */
	ck_assert_int_eq(stat_of("requests"), 0);
}
END_TEST

struct pending {
	CURL *h;
	struct curl_slist *hl;
	double done;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_script_delay)
{
	char *jwt = apns_jwt(now_s()), auth[1024];
	struct pending p[2];
	CURLM *multi = curl_multi_init();
	const char *paths[2] = {"/3/device/aaaa", "/3/device/bbbb"};
	double start;
	int running = 1;

	script("{\"token\":\"aaaa\",\"delay_ms\":1000}");
	snprintf(auth, sizeof(auth), "authorization: bearer %s", jwt);
	for (int i = 0; i < 2; i++) {
		p[i].h = curl_easy_init();
		p[i].hl = curl_slist_append(NULL, auth);
		p[i].hl = curl_slist_append(p[i].hl, "apns-topic: " TOPIC);
		p[i].done = 0;
		prepare(p[i].h, "POST", paths[i], BODY, -1, p[i].hl, &m);
		curl_easy_setopt(p[i].h, CURLOPT_WRITEFUNCTION, discard_cb);
		curl_easy_setopt(p[i].h, CURLOPT_PRIVATE, &p[i]);
		curl_multi_add_handle(multi, p[i].h);
	}
	start = mono();
	while (running) {
		CURLMsg *msg;
		int left;

		curl_multi_perform(multi, &running);
		for (msg = curl_multi_info_read(multi, &left); msg;
		     msg = curl_multi_info_read(multi, &left)) {
			struct pending *q;
			long status = 0;

			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&q);
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_RESPONSE_CODE, &status);
			ck_assert_int_eq(msg->data.result, CURLE_OK);
			ck_assert_int_eq(status, 200);
			q->done = mono() - start;
		}
		if (running)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
		ck_assert_msg(mono() - start < 10, "stuck");
	}
	/* The undelayed request was not held up by the delayed one. */
	ck_assert_msg(p[0].done >= 0.95, "delayed took %.3f s", p[0].done);
	ck_assert_msg(p[1].done < p[0].done - 0.5,
		      "undelayed took %.3f s, delayed %.3f s", p[1].done,
		      p[0].done);
	for (int i = 0; i < 2; i++) {
		curl_multi_remove_handle(multi, p[i].h);
		curl_easy_cleanup(p[i].h);
		curl_slist_free_all(p[i].hl);
	}
	curl_multi_cleanup(multi);
	free(jwt);
}
END_TEST

/* The action recorded for the newest request of a token. */
static char *last_action(const char *token)
{
	json_t *doc = get_json("/mock/requests?kind=apns"), *reqs, *e;
	char *out = NULL;
	size_t i;

	reqs = json_object_get(doc, "requests");
	json_array_foreach(reqs, i, e)
	{
		const char *t = json_string_value(json_object_get(e, "token"));

		if (t && strcmp(t, token) == 0) {
			free(out);
			out = strdup(
			    json_string_value(json_object_get(e, "action")));
		}
	}
	json_decref(doc);
	return out ? out : strdup("");
}

START_TEST(test_script_goaway)
{
	char *jwt = apns_jwt(now_s()), *act;
	CURL *h = curl_easy_init();
	long long conns0;
	struct resp r;

	/* GOAWAY below the stream: the stream is refused. libcurl retries a
	 * refused stream on a new connection, so the client sees either a
	 * failure or an answer that needed a second connection. */
	script("{\"token\":\"aaaa\",\"action\":\"goaway\",\"times\":1}");
	conns0 = stat_of("connections");
	apns_on(NULL, &r, "aaaa", jwt, BODY, NULL);
	ck_assert_msg(
	    r.rc != CURLE_OK ||
		(r.status == 200 && stat_of("connections") - conns0 >= 3),
	    "rc %d status %ld", (int)r.rc, r.status);
	resp_free(&r);
	{
		json_t *doc = get_json("/mock/requests?kind=apns"), *e;

		e = json_array_get(json_object_get(doc, "requests"), 0);
		ck_assert_str_eq(
		    json_string_value(json_object_get(e, "action")), "goaway");
		ck_assert_int_eq(
		    json_integer_value(json_object_get(e, "status")), 0);
		ck_assert_str_eq(
		    json_string_value(json_object_get(e, "reason")),
		    "Shutdown");
		json_decref(doc);
	}

	/* GOAWAY covering the stream, then its answer; the connection is
	 * gone afterwards, so the next request on the handle reconnects. */
	script("{\"token\":\"bbbb\",\"action\":\"goaway\",\"status\":200,"
	       "\"times\":1}");
	apns_on(h, &r, "bbbb", jwt, BODY, NULL);
	ck_assert_int_eq(r.rc, CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	act = last_action("bbbb");
	ck_assert_str_eq(act, "goaway");
	free(act);
	usleep(100000);
	apns_on(h, &r, "bbbb", jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.connects, 1);
	resp_free(&r);
	curl_easy_cleanup(h);
	free(jwt);
}
END_TEST

START_TEST(test_script_rst_and_drop)
{
	char *jwt = apns_jwt(now_s()), *act;
	struct resp r;

	script("{\"token\":\"aaaa\",\"action\":\"rst\",\"times\":1}");
	apns_on(NULL, &r, "aaaa", jwt, BODY, NULL);
	ck_assert_int_ne(r.rc, CURLE_OK);
	resp_free(&r);
	act = last_action("aaaa");
	ck_assert_str_eq(act, "rst");
	free(act);

	script("{\"token\":\"bbbb\",\"action\":\"drop\",\"times\":1}");
	apns_on(NULL, &r, "bbbb", jwt, BODY, NULL);
	ck_assert_int_ne(r.rc, CURLE_OK);
	resp_free(&r);
	act = last_action("bbbb");
	ck_assert_str_eq(act, "drop");
	free(act);

	/* The server carries on; rules with "times" have expired. */
	apns_on(NULL, &r, "aaaa", jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	apns_on(NULL, &r, "bbbb", jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	free(jwt);
}
END_TEST

START_TEST(test_script_tls_fail)
{
	char *jwt = apns_jwt(now_s());
	CURL *h = curl_easy_init();
	struct resp r;
	json_t *doc;

	/* A connection made before the rule is not touched by it. */
	apns_on(h, &r, "aaaa", jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	script("{\"token\":\"*\",\"kind\":\"tls\",\"action\":\"fail\","
	       "\"times\":2}");
	for (int i = 0; i < 2; i++) {
		request("GET", "/mock/stats", NULL, &r);
		ck_assert_msg(r.rc == CURLE_SSL_CONNECT_ERROR,
			      "handshake %d: rc %d", i, (int)r.rc);
		resp_free(&r);
	}
	apns_on(h, &r, "aaaa", jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.connects, 0);
	resp_free(&r);
	curl_easy_cleanup(h);
	/* Counted, not recorded; the third handshake went through. */
	doc = get_json("/mock/stats");
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "tls_failed")),
			 2);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "records")),
			 2);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "rules")), 0);
	json_decref(doc);

	/* for_ms: every handshake fails until the time is up. */
	script("{\"token\":\"*\",\"kind\":\"tls\",\"action\":\"fail\","
	       "\"for_ms\":1500}");
	request("GET", "/mock/stats", NULL, &r);
	ck_assert_int_eq(r.rc, CURLE_SSL_CONNECT_ERROR);
	resp_free(&r);
	apns_on(NULL, &r, "aaaa", jwt, BODY, NULL);
	ck_assert_int_ne(r.rc, CURLE_OK);
	resp_free(&r);
	usleep(1600000);
	ck_assert_int_eq(stat_of("tls_failed"), 4);
	ck_assert_int_eq(stat_of("rules"), 0);
	/* The same for a request rule. */
	script("{\"token\":\"*\",\"status\":503,\"for_ms\":1000}");
	apns_on(NULL, &r, "aaaa", jwt, BODY, NULL);
	ck_reason(&r, 503, "ServiceUnavailable");
	resp_free(&r);
	usleep(1100000);
	apns_on(NULL, &r, "aaaa", jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	free(jwt);
}
END_TEST

/* --- tests: OAuth and FCM ----------------------------------------------- */

static char *assertion(EVP_PKEY *key, const char *iss, const char *aud,
		       const char *scope, long long iat, long long exp)
{
	char header[128], claims[1024];

	snprintf(header, sizeof(header),
		 "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		 m.sa_kid);
	snprintf(claims, sizeof(claims),
		 "{\"iss\":\"%s\",\"scope\":\"%s\",\"aud\":\"%s\","
		 "\"iat\":%lld,\"exp\":%lld}",
		 iss, scope, aud, iat, exp);
	return sign(key, header, claims);
}

#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"

static void token_request(const char *form, struct resp *r)
{
	struct curl_slist *hl = curl_slist_append(
	    NULL, "content-type: application/x-www-form-urlencoded");

	request_on(NULL, "POST", "/token", form, hl, r);
	curl_slist_free_all(hl);
}

static void oauth(const char *jwt, struct resp *r)
{
	char form[4096];

	snprintf(form, sizeof(form),
		 "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3A"
		 "jwt-bearer&assertion=%s",
		 jwt);
	token_request(form, r);
}

static char *access_token(void)
{
	char aud[128], *jwt, *tok;
	struct resp r;
	json_t *doc;

	snprintf(aud, sizeof(aud), "https://127.0.0.1:%d/token", m.port);
	jwt = assertion(m.sa_key, m.email, aud, FCM_SCOPE, now_s(),
			now_s() + 3600);
	oauth(jwt, &r);
	ck_assert_msg(r.status == 200, "token: %ld %s", r.status, r.body);
	doc = resp_json(&r);
	tok = strdup(json_string_value(json_object_get(doc, "access_token")));
	json_decref(doc);
	resp_free(&r);
	free(jwt);
	return tok;
}

static void fcm(const char *tok, const char *project, const char *body,
		struct resp *r)
{
	struct curl_slist *hl =
	    curl_slist_append(NULL, "content-type: application/json");
	char auth[256], path[256];

	if (tok) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
		hl = curl_slist_append(hl, auth);
	}
	snprintf(path, sizeof(path), "/v1/projects/%s/messages:send",
		 project ? project : m.project);
	request_on(NULL, "POST", path, body, hl, r);
	curl_slist_free_all(hl);
}

/* The google error's status and the first detail's errorCode or @type. */
static void ck_google(const struct resp *r, long status, const char *gstatus,
		      const char *detail)
{
	json_t *doc = resp_json(r), *err = json_object_get(doc, "error");
	json_t *d = json_array_get(json_object_get(err, "details"), 0);
	const char *code = json_string_value(json_object_get(d, "errorCode"));
	const char *type = json_string_value(json_object_get(d, "@type"));

	ck_assert_msg(r->status == status, "want %ld got %ld: %s", status,
		      r->status, r->body);
	ck_assert_int_eq(json_integer_value(json_object_get(err, "code")),
			 status);
	ck_assert_str_eq(json_string_value(json_object_get(err, "status")),
			 gstatus);
	if (detail)
		ck_assert_msg((code && strcmp(code, detail) == 0) ||
				  (type && strstr(type, detail)),
			      "detail %s not in %s", detail, r->body);
	json_decref(doc);
}

START_TEST(test_oauth_and_fcm_success)
{
	char aud[128], *jwt;
	char *tok;
	struct resp r;
	json_t *doc;

	snprintf(aud, sizeof(aud), "https://127.0.0.1:%d/token", m.port);
	jwt = assertion(m.sa_key, m.email, aud, FCM_SCOPE, now_s(),
			now_s() + 3600);
	oauth(jwt, &r);
	ck_assert_int_eq(r.status, 200);
	doc = resp_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "token_type")),
			 "Bearer");
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "expires_in")),
			 3600);
	tok = strdup(json_string_value(json_object_get(doc, "access_token")));
	ck_assert_int_eq(strncmp(tok, "ya29.mock-", 10), 0);
	json_decref(doc);
	resp_free(&r);
	free(jwt);
	/* The token_uri of the JSON is an accepted audience too. */
	jwt = assertion(m.sa_key, m.email, m.token_uri, FCM_SCOPE, now_s(),
			now_s() + 1800);
	oauth(jwt, &r);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	free(jwt);

	fcm(tok, NULL,
	    "{\"message\":{\"token\":\"fcm-token-1\",\"data\":{\"k\":\"v\"},"
	    "\"notification\":{\"title\":\"t\"},\"android\":{\"priority\":"
	    "\"HIGH\",\"ttl\":\"3.5s\"},\"apns\":{\"headers\":{"
	    "\"apns-priority\":\"5\"}}}}",
	    &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	doc = resp_json(&r);
	ck_assert_int_eq(
	    strncmp(json_string_value(json_object_get(doc, "name")),
		    "projects/pr-mock-project/messages/", 34),
	    0);
	json_decref(doc);
	resp_free(&r);
	fcm(tok, NULL,
	    "{\"validate_only\":true,\"message\":{\"topic\":\"news\"}}", &r);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);

	/* A scripted FCM error carries its errorCode. */
	script("{\"token\":\"fcm-gone\",\"status\":404,"
	       "\"reason\":\"UNREGISTERED\"}");
	fcm(tok, NULL, "{\"message\":{\"token\":\"fcm-gone\"}}", &r);
	ck_google(&r, 404, "NOT_FOUND", "UNREGISTERED");
	resp_free(&r);
	script("{\"token\":\"fcm-busy\",\"status\":503,\"retry_after\":30}");
	fcm(tok, NULL, "{\"message\":{\"token\":\"fcm-busy\"}}", &r);
	ck_google(&r, 503, "UNAVAILABLE", "UNAVAILABLE");
	ck_assert_ptr_nonnull(strcasestr(r.headers, "retry-after: 30"));
	resp_free(&r);
	free(tok);
}
END_TEST

START_TEST(test_fcm_errors)
{
	char *tok = access_token();
	struct resp r;

	fcm(NULL, NULL, "{\"message\":{\"token\":\"t\"}}", &r);
	ck_google(&r, 401, "UNAUTHENTICATED", NULL);
	resp_free(&r);
	fcm("ya29.made-up", NULL, "{\"message\":{\"token\":\"t\"}}", &r);
	ck_google(&r, 401, "UNAUTHENTICATED", NULL);
	resp_free(&r);
	fcm(tok, "other-project", "{\"message\":{\"token\":\"t\"}}", &r);
	ck_google(&r, 403, "PERMISSION_DENIED", NULL);
	resp_free(&r);
	fcm(tok, NULL, "{\"message\":{\"token\":\"t\",\"data\":{\"n\":1}}}",
	    &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", "google.rpc.BadRequest");
	ck_assert_ptr_nonnull(strstr(r.body, "fieldViolations"));
	ck_assert_ptr_nonnull(strstr(r.body, "message.data[0].value"));
	resp_free(&r);
	fcm(tok, NULL, "{\"message\":{\"token\":\"t\",\"topic\":\"x\"}}", &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	resp_free(&r);
	fcm(tok, NULL, "{\"message\":{\"data\":{\"a\":\"b\"}}}", &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	resp_free(&r);
	fcm(tok, NULL,
	    "{\"message\":{\"token\":\"t\",\"android\":{\"ttl\":\"10\"}}}", &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", "google.rpc.BadRequest");
	resp_free(&r);
	fcm(tok, NULL,
	    "{\"message\":{\"token\":\"t\",\"android\":{\"ttl\":"
	    "\"2419201s\"}}}",
	    &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	resp_free(&r);
	fcm(tok, NULL,
	    "{\"message\":{\"token\":\"t\",\"android\":{\"ttl\":"
	    "\"2419200s\",\"priority\":\"NORMAL\"}}}",
	    &r);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	fcm(tok, NULL,
	    "{\"message\":{\"token\":\"t\",\"android\":{\"priority\":"
	    "\"URGENT\"}}}",
	    &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", "google.rpc.BadRequest");
	resp_free(&r);
	fcm(tok, NULL, "{\"message\":{\"token\":\"t\",\"colour\":1}}", &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", "google.rpc.BadRequest");
	resp_free(&r);
	fcm(tok, NULL,
	    "{\"message\":{\"token\":\"t\",\"data\":{\"from\":\"x\"}}}", &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	resp_free(&r);
	{
		char big[5000];

		snprintf(big, sizeof(big),
			 "{\"message\":{\"token\":\"t\",\"data\":{\"k\":\"%0*d"
			 "\"}}}",
			 4100, 0);
		fcm(tok, NULL, big, &r);
		ck_google(&r, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
		resp_free(&r);
	}
	fcm(tok, NULL, "not json", &r);
	ck_google(&r, 400, "INVALID_ARGUMENT", NULL);
	resp_free(&r);
	free(tok);
}
END_TEST

START_TEST(test_oauth_invalid_grant)
{
	EVP_PKEY *other = EVP_RSA_gen(2048);
	char aud[128], *jwt;
	long long t = now_s();
	struct resp r;
	json_t *doc;
	struct {
		EVP_PKEY *key;
		const char *iss, *aud, *scope;
		long long iat, exp;
		const char *error;
	} cases[] = {
	    {other, m.email, aud, FCM_SCOPE, t, t + 3600, "invalid_grant"},
	    {m.sa_key, "x@y.iam.gserviceaccount.com", aud, FCM_SCOPE, t,
	     t + 3600, "invalid_grant"},
	    {m.sa_key, m.email, "https://oauth2.googleapis.com/token",
	     FCM_SCOPE, t, t + 3600, "invalid_grant"},
	    {m.sa_key, m.email, aud, FCM_SCOPE, t, t + 7200, "invalid_grant"},
	    {m.sa_key, m.email, aud, FCM_SCOPE, t - 1000, t + 2000,
	     "invalid_grant"},
	    {m.sa_key, m.email, aud, FCM_SCOPE, t + 1000, t + 2000,
	     "invalid_grant"},
	    {m.sa_key, m.email, aud, "https://www.googleapis.com/auth/drive", t,
	     t + 3600, "invalid_scope"},
	};

	snprintf(aud, sizeof(aud), "https://127.0.0.1:%d/token", m.port);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		jwt = assertion(cases[i].key, cases[i].iss, cases[i].aud,
				cases[i].scope, cases[i].iat, cases[i].exp);
		oauth(jwt, &r);
		ck_assert_msg(r.status == 400, "case %zu: %ld %s", i, r.status,
			      r.body);
		doc = resp_json(&r);
		ck_assert_str_eq(
		    json_string_value(json_object_get(doc, "error")),
		    cases[i].error);
		ck_assert_ptr_nonnull(json_string_value(
		    json_object_get(doc, "error_description")));
		json_decref(doc);
		resp_free(&r);
		free(jwt);
	}
	token_request("grant_type=client_credentials&assertion=x", &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "unsupported_grant_type"));
	resp_free(&r);
	oauth("garbage", &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "invalid_grant"));
	resp_free(&r);
	/* OAuth failures can be scripted too. */
	script("{\"token\":\"*\",\"kind\":\"oauth\",\"status\":503,"
	       "\"times\":1}");
	jwt = assertion(m.sa_key, m.email, aud, FCM_SCOPE, t, t + 3600);
	oauth(jwt, &r);
	ck_assert_int_eq(r.status, 503);
	ck_assert_ptr_nonnull(strstr(r.body, "temporarily_unavailable"));
	resp_free(&r);
	oauth(jwt, &r);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	free(jwt);
	EVP_PKEY_free(other);
}
END_TEST

/* --- tests: records and stats ------------------------------------------- */

START_TEST(test_records)
{
	char *jwt = apns_jwt(now_s()), expect[1024];
	json_t *doc, *reqs, *e, *h;
	struct resp r;

	apns_on(NULL, &r, DEV, jwt, BODY, "apns-push-type: alert",
		"x-custom: hello", NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	apns_on(NULL, &r, DEV, NULL, BODY, NULL);
	resp_free(&r);
	fcm("nope", NULL, "{\"message\":{\"token\":\"t\"}}", &r);
	resp_free(&r);

	doc = get_json("/mock/requests?after=0");
	reqs = json_object_get(doc, "requests");
	ck_assert_int_eq(json_array_size(reqs), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "next")), 3);
	e = json_array_get(reqs, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(e, "n")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(e, "kind")), "apns");
	ck_assert_str_eq(json_string_value(json_object_get(e, "path")),
			 "/3/device/" DEV);
	ck_assert_str_eq(json_string_value(json_object_get(e, "token")), DEV);
	ck_assert_str_eq(json_string_value(json_object_get(e, "body")), BODY);
	ck_assert_int_eq(json_integer_value(json_object_get(e, "status")), 200);
	ck_assert(json_is_null(json_object_get(e, "reason")));
	ck_assert_int_eq(json_integer_value(json_object_get(e, "stream")), 1);
	ck_assert_int_gt(json_integer_value(json_object_get(e, "conn")), 0);
	ck_assert_int_gt(json_integer_value(json_object_get(e, "at")),
			 (now_s() - 60) * 1000);
	h = json_object_get(e, "headers");
	snprintf(expect, sizeof(expect), "bearer %s", jwt);
	ck_assert_str_eq(json_string_value(json_object_get(h, "authorization")),
			 expect);
	ck_assert_str_eq(json_string_value(json_object_get(h, "apns-topic")),
			 TOPIC);
	ck_assert_str_eq(json_string_value(json_object_get(h, "x-custom")),
			 "hello");
	e = json_array_get(reqs, 1);
	ck_assert_int_eq(json_integer_value(json_object_get(e, "status")), 403);
	ck_assert_str_eq(json_string_value(json_object_get(e, "reason")),
			 "MissingProviderToken");
	e = json_array_get(reqs, 2);
	ck_assert_str_eq(json_string_value(json_object_get(e, "kind")), "fcm");
	ck_assert_int_eq(json_integer_value(json_object_get(e, "status")), 401);
	json_decref(doc);

	/* Paging and the kind filter. */
	doc = get_json("/mock/requests?after=1&limit=1");
	reqs = json_object_get(doc, "requests");
	ck_assert_int_eq(json_array_size(reqs), 1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(json_array_get(reqs, 0), "n")),
	    2);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "next")), 2);
	json_decref(doc);
	doc = get_json("/mock/requests?after=3");
	ck_assert_int_eq(json_array_size(json_object_get(doc, "requests")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "next")), 3);
	json_decref(doc);
	doc = get_json("/mock/requests?kind=fcm");
	ck_assert_int_eq(json_array_size(json_object_get(doc, "requests")), 1);
	json_decref(doc);
	request("GET", "/mock/requests?limit=zero", NULL, &r);
	ck_assert_int_eq(r.status, 400);
	resp_free(&r);
	free(jwt);
}
END_TEST

START_TEST(test_stats)
{
	char *jwt = apns_jwt(now_s()), *tok;
	json_t *doc, *status;
	struct resp r;

	for (int i = 0; i < 3; i++) {
		apns_on(NULL, &r, DEV, jwt, BODY, NULL);
		resp_free(&r);
	}
	apns_on(NULL, &r, DEV, jwt, "", NULL);
	resp_free(&r);
	tok = access_token();
	fcm(tok, NULL, "{\"message\":{\"token\":\"t\"}}", &r);
	resp_free(&r);
	request("GET", "/favicon.ico", NULL, &r);
	resp_free(&r);

	doc = get_json("/mock/stats");
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "requests")),
			 7);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "apns")), 4);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "fcm")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "oauth")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "other")), 1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(doc, "jwt_tokens_seen")), 4);
	/* 7 sends plus this GET, one connection each. */
	ck_assert_int_eq(
	    json_integer_value(json_object_get(doc, "connections")), 8);
	ck_assert_int_ge(
	    json_integer_value(json_object_get(doc, "connections_open")), 1);
	status = json_object_get(doc, "status");
	ck_assert_int_eq(json_integer_value(json_object_get(status, "200")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(status, "400")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(status, "404")), 1);
	json_decref(doc);
	free(tok);
	free(jwt);
}
END_TEST

/* --- a mock of its own: options and shutdown ----------------------------- */

START_TEST(test_lifetime_and_no_records)
{
	char *jwt, *tok, *text;
	json_t *doc;
	struct resp r;

	mock_start(&m, "--token-lifetime", "1", "--max-record", "0", NULL);
	jwt = apns_jwt(now_s());
	apns_on(NULL, &r, DEV, jwt, BODY, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	doc = get_json("/mock/requests");
	ck_assert_int_eq(json_array_size(json_object_get(doc, "requests")), 0);
	json_decref(doc);
	ck_assert_int_eq(stat_of("apns"), 1);

	tok = access_token();
	fcm(tok, NULL, "{\"message\":{\"token\":\"t\"}}", &r);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	usleep(1300000); /* the access token lives one second */
	fcm(tok, NULL, "{\"message\":{\"token\":\"t\"}}", &r);
	ck_google(&r, 401, "UNAUTHENTICATED", NULL);
	resp_free(&r);

	/* SIGTERM: a clean exit (and, under ASan, no leaks). */
	ck_assert_int_eq(mock_stop(&m), 0);
	text = th_read_file(m.out);
	ck_assert_msg(strstr(text, "ERROR") == NULL, "%s", text);
	free(text);
	free(tok);
	free(jwt);
	mock_cleanup(&m);
}
END_TEST

static Suite *mock_suite(void)
{
	Suite *s = suite_create("mock");
	TCase *tc = tcase_create("mock");

	tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
	tcase_add_checked_fixture(tc, each_setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_make_credentials);
	tcase_add_test(tc, test_h2_only);
	tcase_add_test(tc, test_apns_success);
	tcase_add_test(tc, test_apns_validation);
	tcase_add_test(tc, test_apns_provider_token);
	tcase_add_test(tc, test_apns_token_updates);
	tcase_add_test(tc, test_script_unregistered);
	tcase_add_test(tc, test_script_bad_rules);
	tcase_add_test(tc, test_script_delay);
	tcase_add_test(tc, test_script_goaway);
	tcase_add_test(tc, test_script_rst_and_drop);
	tcase_add_test(tc, test_script_tls_fail);
	tcase_add_test(tc, test_oauth_and_fcm_success);
	tcase_add_test(tc, test_fcm_errors);
	tcase_add_test(tc, test_oauth_invalid_grant);
	tcase_add_test(tc, test_records);
	tcase_add_test(tc, test_stats);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_lifetime_and_no_records);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	sr = srunner_create(mock_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

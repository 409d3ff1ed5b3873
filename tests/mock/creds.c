/*
 * creds.c - see creds.h. Keys are generated fresh on every call and never
 * leave the directory they are written to; nothing here is secret beyond
 * the test run that made it.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "creds.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Open path for writing with mode 0600, whatever the umask says. */
static FILE *open_private(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *fp;

	if (fd < 0)
		return NULL;
	if (fchmod(fd, 0600) != 0) {
		close(fd);
		return NULL;
	}
	fp = fdopen(fd, "w");
	if (!fp)
		close(fd);
	return fp;
}

/* Close fp; -1 unless it was opened, written (ok) and closed cleanly. */
static int finish(FILE *fp, int ok)
{
	if (!fp)
		return -1;
	if (fclose(fp) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/*
 * Self-signed P-256 certificate usable both as the server's certificate and
 * as the trust anchor clients load with CAINFO/--cacert. Like
 * `openssl req -x509` it is marked CA; keyCertSign keeps OpenSSL treating
 * it as self-signed.
 */
static int write_tls(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	FILE *fp;
	int rv = -1;

	if (!pk || !x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto out;
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
	X509_set_pubkey(x, pk);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
				   (const unsigned char *)"pr-mock", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
	    add_ext(x, NID_key_usage,
		    "critical,digitalSignature,keyCertSign") ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") ||
	    add_ext(x, NID_subject_key_identifier, "hash") ||
	    add_ext(x, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"))
		goto out;
	if (!X509_sign(x, pk, EVP_sha256()))
		goto out;
	snprintf(path, sizeof(path), "%s/tls.crt", dir);
	fp = open_private(path);
	if (finish(fp, fp && PEM_write_X509(fp, x))) {
		set_err(err, errlen, "cannot write %s", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/tls.key", dir);
	fp = open_private(path);
	if (finish(fp, fp && PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL,
						  NULL))) {
		set_err(err, errlen, "cannot write %s", path);
		goto out;
	}
	rv = 0;
out:
	if (rv && !err[0])
		set_err(err, errlen, "cannot make the TLS certificate");
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pk);
	return rv;
}

/* The APNs signing key: PKCS#8 PEM, like the .p8 Apple hands out. */
static int write_p8(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	FILE *fp;
	int rv;

	snprintf(path, sizeof(path), "%s/AuthKey_%s.p8", dir, MOCK_APNS_KEY_ID);
	fp = pk ? open_private(path) : NULL;
	rv = finish(fp, fp && PEM_write_PKCS8PrivateKey(fp, pk, NULL, NULL, 0,
							NULL, NULL) == 1);
	if (rv)
		set_err(err, errlen, "cannot write %s", path);
	EVP_PKEY_free(pk);
	return rv;
}

static void random_hex(char *out, size_t bytes)
{
	unsigned char raw[64];

	if (bytes > sizeof(raw))
		bytes = sizeof(raw);
	RAND_bytes(raw, (int)bytes);
	for (size_t i = 0; i < bytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static char *pem_of(EVP_PKEY *pk)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *copy = NULL;
	long n;

	if (!b)
		return NULL;
	if (PEM_write_bio_PKCS8PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) ==
	    1) {
		n = BIO_get_mem_data(b, &data);
		if (n > 0)
			copy = strndup(data, (size_t)n);
	}
	BIO_free(b);
	return copy;
}

static int write_sa(const char *dir, const char *project, const char *token_uri,
		    char *err, size_t errlen)
{
	char path[4096], kid[41], email[256], cert_url[512];
	char client_id[22];
	unsigned char digits[21];
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	char *pem = pk ? pem_of(pk) : NULL;
	json_t *doc = NULL;
	FILE *fp;
	int rv = -1;

	if (!pem) {
		set_err(err, errlen, "cannot make the RSA key");
		goto out;
	}
	random_hex(kid, 20);
	RAND_bytes(digits, sizeof(digits));
	client_id[0] = '1';
	for (size_t i = 1; i < 21; i++)
		client_id[i] = (char)('0' + digits[i] % 10);
	client_id[21] = '\0';
	snprintf(email, sizeof(email), "pr-mock@%s.iam.gserviceaccount.com",
		 project);
	snprintf(cert_url, sizeof(cert_url),
		 "https://www.googleapis.com/robot/v1/metadata/x509/"
		 "pr-mock%%40%s.iam.gserviceaccount.com",
		 project);
	doc = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type",
	    "service_account", "project_id", project, "private_key_id", kid,
	    "private_key", pem, "client_email", email, "client_id", client_id,
	    "auth_uri", "https://accounts.google.com/o/oauth2/auth",
	    "token_uri", token_uri, "auth_provider_x509_cert_url",
	    "https://www.googleapis.com/oauth2/v1/certs",
	    "client_x509_cert_url", cert_url, "universe_domain",
	    "googleapis.com");
	snprintf(path, sizeof(path), "%s/service-account.json", dir);
	fp = doc ? open_private(path) : NULL;
	rv = finish(fp, fp && json_dumpf(doc, fp, JSON_INDENT(2)) == 0 &&
			    fputc('\n', fp) != EOF);
	if (rv)
		set_err(err, errlen, "cannot write %s", path);
out:
	json_decref(doc);
	free(pem);
	EVP_PKEY_free(pk);
	return rv;
}

int mock_creds_make(const char *dir, const char *project, const char *token_uri,
		    char *err, size_t errlen)
{
	err[0] = '\0';
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		set_err(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!project)
		project = "pr-mock-project";
	if (!token_uri)
		token_uri = "https://127.0.0.1:PORT/token";
	if (write_tls(dir, err, errlen) || write_p8(dir, err, errlen) ||
	    write_sa(dir, project, token_uri, err, errlen)) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

EVP_PKEY *mock_creds_load_key(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	EVP_PKEY *pk;

	if (!fp) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	pk = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!pk)
		set_err(err, errlen, "%s: not a PEM private key", path);
	ERR_clear_error();
	return pk;
}

static char *dup_field(json_t *doc, const char *name)
{
	const char *v = json_string_value(json_object_get(doc, name));

	return v ? strdup(v) : NULL;
}

int mock_sa_load(struct mock_sa *sa, const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, 0, &jerr);
	const char *pem;
	BIO *b = NULL;
	int rv = -1;

	memset(sa, 0, sizeof(*sa));
	if (!doc) {
		set_err(err, errlen, "%s: %s", path, jerr.text);
		return -1;
	}
	pem = json_string_value(json_object_get(doc, "private_key"));
	sa->project_id = dup_field(doc, "project_id");
	sa->client_email = dup_field(doc, "client_email");
	sa->token_uri = dup_field(doc, "token_uri");
	sa->private_key_id = dup_field(doc, "private_key_id");
	if (!pem || !sa->project_id || !sa->client_email || !sa->token_uri) {
		set_err(err, errlen,
			"%s: needs private_key, project_id, client_email and "
			"token_uri",
			path);
		goto out;
	}
	b = BIO_new_mem_buf(pem, -1);
	sa->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	if (!sa->key || EVP_PKEY_get_base_id(sa->key) != EVP_PKEY_RSA) {
		set_err(err, errlen, "%s: private_key is not an RSA PEM key",
			path);
		goto out;
	}
	rv = 0;
out:
	BIO_free(b);
	json_decref(doc);
	ERR_clear_error();
	if (rv)
		mock_sa_cleanup(sa);
	return rv;
}

void mock_sa_cleanup(struct mock_sa *sa)
{
	free(sa->project_id);
	free(sa->client_email);
	free(sa->token_uri);
	free(sa->private_key_id);
	EVP_PKEY_free(sa->key);
	memset(sa, 0, sizeof(*sa));
}

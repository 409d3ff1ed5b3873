/*
 * fuzz_apns_response.c - APNs response handling: pr_apns_provider's
 * classify() on a fuzzed status, Retry-After and JSON body (see
 * fuzz_provider.h for the input layout). The instance is made once, with
 * a generated P-256 key in a temporary directory.
 */
#include "autoconf.h"

#include <stddef.h>

#include "config.h"
#include "fuzz_common.h"
#include "fuzz_provider.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *inst;
static char dir[256], keyfile[320];
static struct pr_app_config app;
static struct pr_provider_env env;

static void cleanup(void)
{
	pr_apns_provider.destroy(inst);
	unlink(keyfile);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char err[512], *pem = fzp_pem(key);

	pr_log_set_level(PR_LOG_ERROR);
	fz_tmpdir(dir, sizeof(dir));
	snprintf(keyfile, sizeof(keyfile), "%s/AuthKey_ABC123DEFG.p8", dir);
	fzp_write_private(keyfile, pem);
	free(pem);
	EVP_PKEY_free(key);
	app.name = (char *)"chat";
	app.apns_key_file = keyfile;
	app.apns_key_id = (char *)"ABC123DEFG";
	app.apns_team_id = (char *)"DEF123GHIJ";
	app.apns_cert_file = (char *)"";
	app.apns_cert_key_file = (char *)"";
	app.apns_cert_password = (char *)"";
	app.apns_topic = (char *)"com.example.chat";
	app.apns_url = (char *)"https://api.push.apple.com";
	app.apns_sandbox_url = (char *)"https://api.sandbox.push.apple.com/";
	app.fcm_credentials = (char *)"";
	app.fcm_url = (char *)"";
	app.fcm_token_url = (char *)"";
	app.ca_file = (char *)"";
	env.jwt_refresh = 3000;
	env.oauth_margin = 300;
	if (pr_apns_provider.create(&inst, &app, &env, err, sizeof(err))) {
		fprintf(stderr, "fuzz: apns create: %s\n", err);
		exit(1);
	}
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pr_http_response r;
	struct pr_push_verdict v;
	struct pr_push p;
	char *copy;

	if (!fzp_response(data, size, &r, &copy))
		return 0;
	fzp_push(&p, "apns");
	if (data[0] & 1)
		p.environment = "sandbox";
	pr_apns_provider.classify(inst, &p, &r, 1800000000, &v);
	/* The verdict's strings must be terminated. */
	if (strlen(v.reason) >= sizeof(v.reason) ||
	    strlen(v.provider_id) >= sizeof(v.provider_id))
		abort();
	free(copy);
	return 0;
}

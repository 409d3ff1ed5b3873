/*
 * fuzz_fcm_response.c - FCM response handling: pr_fcm_provider's
 * classify() on a fuzzed send response, or (flag bit 0) handle_auth() on
 * a fuzzed OAuth2 token response. See fuzz_provider.h for the input
 * layout. The instance is made once from a service-account JSON with a
 * generated RSA key.
 */
#include "autoconf.h"

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "fuzz_common.h"
#include "fuzz_provider.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *inst;
static char dir[256], sa[320];
static struct pr_app_config app;
static struct pr_provider_env env;

static void cleanup(void)
{
	pr_fcm_provider.destroy(inst);
	unlink(sa);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	char err[512], *pem = fzp_pem(key), *text;
	json_t *j;

	pr_log_set_level(PR_LOG_ERROR);
	fz_tmpdir(dir, sizeof(dir));
	snprintf(sa, sizeof(sa), "%s/service-account.json", dir);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type",
		      "service_account", "project_id", "chat-prod",
		      "private_key_id", "8c0bdd7f1e5b4a3c", "private_key", pem,
		      "client_email", "relay@chat-prod.iam.gserviceaccount.com",
		      "token_uri", "https://oauth2.googleapis.com/token");
	text = json_dumps(j, JSON_INDENT(2));
	fzp_write_private(sa, text);
	free(text);
	json_decref(j);
	free(pem);
	EVP_PKEY_free(key);
	app.name = (char *)"chat";
	app.apns_key_file = (char *)"";
	app.apns_cert_file = (char *)"";
	app.fcm_credentials = sa;
	app.fcm_url = (char *)"https://fcm.googleapis.com/";
	app.fcm_token_url = (char *)"";
	app.ca_file = (char *)"";
	env.jwt_refresh = 3000;
	env.oauth_margin = 300;
	if (pr_fcm_provider.create(&inst, &app, &env, err, sizeof(err))) {
		fprintf(stderr, "fuzz: fcm create: %s\n", err);
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
	char *copy, err[256];

	if (!fzp_response(data, size, &r, &copy))
		return 0;
	if (data[0] & 1) {
		err[0] = '\0';
		pr_fcm_provider.handle_auth(inst, 1800000000, &r, err,
					    sizeof(err));
		if (memchr(err, '\0', sizeof(err)) == NULL)
			abort();
	} else {
		fzp_push(&p, "fcm");
		p.token = "fcm-token:APA91bHPRgkF";
		pr_fcm_provider.classify(inst, &p, &r, 1800000000, &v);
		if (strlen(v.reason) >= sizeof(v.reason) ||
		    strlen(v.provider_id) >= sizeof(v.provider_id))
			abort();
	}
	free(copy);
	return 0;
}

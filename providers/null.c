/*
 * null.c - a provider that sends nowhere. create() always succeeds, it
 * needs no credential, and build() refuses every push (the push is then
 * rejected with "the null provider sends nothing"); classify() reads a
 * response generically: 2xx is "sent", 429, 5xx and transport failures
 * are retried, anything else is rejected. Tests and dry runs use it; it
 * also pins down the minimum a provider must implement.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "pushrelay.h"

struct null_provider {
	int unused;
};

static int null_create(void **inst, const struct pr_app_config *app,
		       const struct pr_provider_env *env, char *err,
		       size_t errlen)
{
	(void)app;
	(void)env;
	*inst = calloc(1, sizeof(struct null_provider));
	if (!*inst) {
		snprintf(err, errlen, "null provider: out of memory");
		return PR_ERR_NOMEM;
	}
	return PR_OK;
}

static void null_destroy(void *inst)
{
	free(inst);
}

static int null_needs_auth(void *inst, time_t now)
{
	(void)inst;
	(void)now;
	return 0;
}

static int null_build(void *inst, const struct pr_push *push, time_t now,
		      struct pr_http_request *out, char *err, size_t errlen)
{
	(void)inst;
	(void)push;
	(void)now;
	memset(out, 0, sizeof(*out));
	snprintf(err, errlen, "the null provider sends nothing");
	return PR_ERR_NOTFOUND;
}

static void null_classify(void *inst, const struct pr_push *push,
			  const struct pr_http_response *resp, time_t now,
			  struct pr_push_verdict *v)
{
	(void)inst;
	(void)push;
	(void)now;
	memset(v, 0, sizeof(*v));
	v->retry_after = resp->retry_after >= 0 ? resp->retry_after : -1;
	if (resp->status >= 200 && resp->status < 300)
		v->outcome = PR_OUTCOME_SENT;
	else if (resp->status == 0 || resp->status == 429 ||
		 resp->status >= 500)
		v->outcome = PR_OUTCOME_RETRY;
	else
		v->outcome = PR_OUTCOME_REJECTED;
	snprintf(v->reason, sizeof(v->reason), "http_%ld", resp->status);
}

static void null_client_cert(void *inst, const char **cert, const char **key,
			     const char **type, const char **password)
{
	(void)inst;
	*cert = *key = *type = *password = NULL;
}

static const char *null_ca_file(void *inst)
{
	(void)inst;
	return NULL;
}

const struct pr_provider_ops pr_null_provider = {
    .name = "null",
    .create = null_create,
    .destroy = null_destroy,
    .needs_auth = null_needs_auth,
    .build_auth = NULL,
    .handle_auth = NULL,
    .build = null_build,
    .classify = null_classify,
    .client_cert = null_client_cert,
    .ca_file = null_ca_file,
};

/*
 * null.c - a provider that sends nowhere: every 2xx is "sent", 429 and
 * 5xx are retried, anything else is rejected. Tests and dry runs use it;
 * it also pins down the minimum a provider must implement.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "provider.h"

static void null_classify(const struct pr_push_response *resp,
			  struct pr_push_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (resp->status >= 200 && resp->status < 300)
		v->outcome = PR_OUTCOME_SENT;
	else if (resp->status == 0 || resp->status == 429 ||
		 resp->status >= 500)
		v->outcome = PR_OUTCOME_RETRY;
	else
		v->outcome = PR_OUTCOME_REJECTED;
	snprintf(v->reason, sizeof(v->reason), "http_%d", resp->status);
}

const struct pr_provider_ops pr_null_provider = {
	.name = "null",
	.classify = null_classify,
};

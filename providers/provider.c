/* provider.c - the table of compiled-in providers and outcome names. */
#include "autoconf.h"

#include <string.h>

#include "provider.h"
#include "pushrelay.h"

static const struct pr_provider_ops *const providers[] = {
	&pr_null_provider,
};

const struct pr_provider_ops *pr_provider_find(const char *name)
{
	for (size_t i = 0; i < PR_ARRAY_SIZE(providers); i++)
		if (strcmp(providers[i]->name, name) == 0)
			return providers[i];
	return NULL;
}

const char *pr_outcome_name(enum pr_outcome o)
{
	switch (o) {
	case PR_OUTCOME_SENT:
		return "sent";
	case PR_OUTCOME_RETRY:
		return "retry";
	case PR_OUTCOME_INVALID_TOKEN:
		return "invalid_token";
	case PR_OUTCOME_REJECTED:
		return "rejected";
	case PR_OUTCOME_AUTH:
		return "auth";
	}
	return "unknown";
}

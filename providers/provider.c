/*
 * provider.c - the table of compiled-in providers, outcome names, and the
 * request-description helpers every provider builds its HTTP requests
 * with.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "config.h"
#include "provider.h"
#include "pushrelay.h"

static const struct pr_provider_ops *const providers[] = {
    &pr_apns_provider,
    &pr_fcm_provider,
    &pr_null_provider,
};

const struct pr_provider_ops *pr_provider_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < PR_ARRAY_SIZE(providers); i++)
		if (strcmp(providers[i]->name, name) == 0)
			return providers[i];
	return NULL;
}

const char *const pr_push_platforms[] = {"apns", "fcm", NULL};

int pr_provider_create(const char *platform, const struct pr_app_config *app,
		       const struct pr_provider_env *env,
		       const struct pr_provider_ops **ops, void **inst,
		       char *err, size_t errlen)
{
	char why[512] = "";
	int rv;

	*inst = NULL;
	*ops = pr_provider_find(platform);
	if (!*ops)
		return PR_ERR_NOTFOUND;
	rv = (*ops)->create(inst, app, env, why, sizeof(why));
	if (rv && rv != PR_ERR_NOTFOUND)
		snprintf(err, errlen, "[app \"%s\"] %s: %s", app->name,
			 platform, why);
	return rv;
}

const char *pr_outcome_name(enum pr_outcome o)
{
	switch (o) {
	case PR_OUTCOME_SENT: return "sent";
	case PR_OUTCOME_RETRY: return "retry";
	case PR_OUTCOME_INVALID_TOKEN: return "invalid_token";
	case PR_OUTCOME_REJECTED: return "rejected";
	case PR_OUTCOME_AUTH: return "auth";
	case PR_OUTCOME_REAUTH: return "reauth";
	case PR_OUTCOME_CANCELLED: return "cancelled";
	}
	return "unknown";
}

/* Free a heap string after wiping it: headers carry bearer tokens and
 * bodies carry signed assertions. */
static void free_wiped(char *s, size_t len)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, len);
	free(s);
}

void pr_http_request_cleanup(struct pr_http_request *r)
{
	if (!r)
		return;
	if (r->url)
		free_wiped(r->url, strlen(r->url));
	for (size_t i = 0; i < PR_HTTP_MAX_HEADERS; i++)
		if (r->headers[i])
			free_wiped(r->headers[i], strlen(r->headers[i]));
	if (r->body)
		free_wiped(r->body, r->body_len);
	memset(r, 0, sizeof(*r));
}

/*
 * The array always keeps a NULL after the last header, so at most
 * PR_HTTP_MAX_HEADERS - 1 fit. A header with CR, LF or NUL in it would
 * let a value smuggle another header: refused with PR_ERR_INVAL.
 */
int pr_http_request_header(struct pr_http_request *r, const char *fmt, ...)
{
	va_list ap;
	char *h;
	int n;

	if (r->n_headers >= PR_HTTP_MAX_HEADERS - 1)
		return PR_ERR_LIMIT;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return PR_ERR_INVAL;
	h = malloc((size_t)n + 1);
	if (!h)
		return PR_ERR_NOMEM;
	va_start(ap, fmt);
	vsnprintf(h, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (strlen(h) != (size_t)n || strpbrk(h, "\r\n") || !strchr(h, ':')) {
		free_wiped(h, (size_t)n);
		return PR_ERR_INVAL;
	}
	r->headers[r->n_headers++] = h;
	r->headers[r->n_headers] = NULL;
	return PR_OK;
}

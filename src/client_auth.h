/*
 * client_auth.h - mobile apps' client tokens: JWTs the chat server signs
 * with the app's client_token_secret (HS256). The algorithm is pinned:
 * a header naming anything but HS256 ("none", RS256, ...) is refused, so
 * no key confusion is possible. exp is required, nbf honoured, both with
 * [inbox] token_leeway of clock skew. sub is the user and device the
 * device id; a client reaches only its own device.
 *
 * libjwt is not used here: its 1.x decoder picks the algorithm from the
 * token's own header, and pinning it is the whole point.
 */
#ifndef PR_CLIENT_AUTH_H
#define PR_CLIENT_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct pr_request;
struct pr_server;
struct pr_app_config;

#define PR_CLIENT_ID_MAX 1024

struct pr_client {
	const struct pr_app_config *app;
	char user[PR_CLIENT_ID_MAX + 1];
	char device[PR_CLIENT_ID_MAX + 1];
	int64_t exp;
};

/* Does the bearer credential look like a client token (a JWT) rather
 * than an API key? */
int pr_client_auth_is_token(const struct pr_request *req);

/*
 * Check req's client token (Authorization: Bearer, or, when query_ok,
 * ?access_token= for WebSocket clients that cannot set headers). On
 * success fills *out and returns 1; otherwise answers 401 and returns 0.
 */
int pr_client_auth(struct pr_server *s, struct pr_request *req, int query_ok,
		   struct pr_client *out);

/*
 * The verification itself, for tests: token against the apps of the
 * config at time now. Returns 0, or a negative enum pr_error with a
 * reason in why (no secrets, no token text).
 */
int pr_client_token_verify(const struct pr_server *s, const char *token,
			   time_t now, struct pr_client *out, char *why,
			   size_t whylen);

#endif

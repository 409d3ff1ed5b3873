/* ops_api.h - the operational endpoints: /healthz, /readyz, /metrics and
 * /v1/version, served on both API and admin listeners. */
#ifndef PR_OPS_API_H
#define PR_OPS_API_H

struct pr_server;

int pr_ops_api_register(struct pr_server *s);

#endif

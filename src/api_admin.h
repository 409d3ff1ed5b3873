/* api_admin.h - the admin API (keys today; the queue console follows). */
#ifndef PR_API_ADMIN_H
#define PR_API_ADMIN_H

struct pr_server;

int pr_api_admin_register(struct pr_server *s);

#endif

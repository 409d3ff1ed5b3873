/* dashboard.h - the admin dashboard: one self-contained page at GET /admin/. */
#ifndef PR_DASHBOARD_H
#define PR_DASHBOARD_H

struct pr_server;

/* Register GET /admin/ (and /admin, redirected) on admin listeners. */
int pr_dashboard_register(struct pr_server *s);

#endif

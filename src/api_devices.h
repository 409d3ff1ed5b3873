/* api_devices.h - device registration, listing, removal, and the feed of
 * tokens the providers reported dead. */
#ifndef PR_API_DEVICES_H
#define PR_API_DEVICES_H

struct pr_server;

int pr_api_devices_register(struct pr_server *s);

#endif

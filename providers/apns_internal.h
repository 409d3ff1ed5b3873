/*
 * apns_internal.h - what tests may see of an APNs provider instance
 * beyond the ops table. The core never includes this.
 */
#ifndef PR_APNS_INTERNAL_H
#define PR_APNS_INTERNAL_H

/* The instance's payload limit (bytes of JSON). */
#define PR_APNS_MAX_PAYLOAD 4096

/* How many provider JWTs the instance (made by pr_apns_provider.create)
 * has signed so far; 0 with certificate auth. */
long pr_apns_jwt_mints(void *inst);

#endif

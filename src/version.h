/* version.h - the relay's version and the versions of the libraries it
 * runs with (for `pushrelayd -V` and GET /v1/version). */
#ifndef PR_VERSION_H
#define PR_VERSION_H

#include <jansson.h>

const char *pr_version(void);
/* A new JSON object {"libev":"4.33", ...}; the caller owns it. */
json_t *pr_version_libraries(void);

#endif

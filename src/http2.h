/*
 * http2.h - the HTTP/2 server session (nghttp2). Everything it offers is
 * the protocol table the connection drives; see conn.h for the contract
 * and http2.c for how streams map to pr_request.
 */
#ifndef PR_HTTP2_H
#define PR_HTTP2_H

#include "conn.h"

/* Also declared in conn.h; repeated so this header names its module. */
extern const struct pr_proto pr_http2_proto;

#endif

/* error.c - descriptions for enum pr_error. */
#include "pushrelay.h"

const char *pr_strerror(int err)
{
	switch (err) {
	case PR_OK: return "success";
	case PR_ERR_NOMEM: return "out of memory";
	case PR_ERR_INVAL: return "invalid argument";
	case PR_ERR_IO: return "I/O error";
	case PR_ERR_LIMIT: return "limit reached";
	case PR_ERR_PROTO: return "protocol error";
	case PR_ERR_CONFIG: return "configuration error";
	case PR_ERR_TLS: return "TLS error";
	case PR_ERR_NOTFOUND: return "not found";
	case PR_ERR_STORE: return "storage error";
	case PR_ERR_BUSY: return "busy";
	case PR_ERR_CLOSED: return "closed";
	}
	return "unknown error";
}

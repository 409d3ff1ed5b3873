/*
 * buf.h - a growable byte buffer with a hard maximum (curl's dynbuf idea).
 * Every append past the maximum fails with PR_ERR_LIMIT and leaves the
 * buffer as it was, so callers turn "too big" into a protocol answer.
 */
#ifndef PR_BUF_H
#define PR_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct pr_buf {
	char *data;  /* always NUL-terminated when non-NULL */
	size_t len;  /* bytes in use, not counting the terminator */
	size_t cap;  /* bytes allocated */
	size_t max;  /* len never exceeds this */
	size_t head; /* bytes already consumed at the front */
};

/* Embedded lifecycle: init sets the bound, cleanup frees the storage. */
void pr_buf_init(struct pr_buf *b, size_t max);
void pr_buf_cleanup(struct pr_buf *b);

int pr_buf_append(struct pr_buf *b, const void *p, size_t n);
int pr_buf_appends(struct pr_buf *b, const char *s);
int pr_buf_printf(struct pr_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int pr_buf_vprintf(struct pr_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Unread bytes start at pr_buf_peek(b) and run for pr_buf_avail(b). */
static inline const char *pr_buf_peek(const struct pr_buf *b)
{
	return b->data ? b->data + b->head : "";
}
static inline size_t pr_buf_avail(const struct pr_buf *b)
{
	return b->len - b->head;
}
/* Mark n unread bytes as consumed; the storage is compacted lazily. */
void pr_buf_consume(struct pr_buf *b, size_t n);
/* Forget the contents but keep the allocation. */
void pr_buf_reset(struct pr_buf *b);

#endif

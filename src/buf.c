/*
 * buf.c - bounded byte buffers. The maximum counts live bytes (consumed
 * bytes at the front are reclaimed before growing), so a connection that
 * keeps its peer's input flowing never hits the bound by accident.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pushrelay.h"

void pr_buf_init(struct pr_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void pr_buf_cleanup(struct pr_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = b->head = 0;
}

void pr_buf_reset(struct pr_buf *b)
{
	b->len = b->head = 0;
	if (b->data)
		b->data[0] = '\0';
}

static void compact(struct pr_buf *b)
{
	if (b->head == 0)
		return;
	memmove(b->data, b->data + b->head, b->len - b->head);
	b->len -= b->head;
	b->head = 0;
	b->data[b->len] = '\0';
}

/* Make room for n more live bytes plus the terminator. */
static int reserve(struct pr_buf *b, size_t n)
{
	size_t live = b->len - b->head;
	size_t need, cap;
	char *p;

	if (n > b->max || live > b->max - n)
		return PR_ERR_LIMIT;
	if (b->len + n + 1 <= b->cap)
		return PR_OK;
	compact(b);
	need = b->len + n + 1;
	if (need <= b->cap)
		return PR_OK;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	p = realloc(b->data, cap);
	if (!p)
		return PR_ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return PR_OK;
}

int pr_buf_append(struct pr_buf *b, const void *p, size_t n)
{
	int rv = reserve(b, n);

	if (rv)
		return rv;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return PR_OK;
}

int pr_buf_appends(struct pr_buf *b, const char *s)
{
	return pr_buf_append(b, s, strlen(s));
}

int pr_buf_vprintf(struct pr_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, rv;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return PR_ERR_INVAL;
	rv = reserve(b, (size_t)n);
	if (rv)
		return rv;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return PR_OK;
}

int pr_buf_printf(struct pr_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rv;

	va_start(ap, fmt);
	rv = pr_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rv;
}

void pr_buf_consume(struct pr_buf *b, size_t n)
{
	if (n >= b->len - b->head) {
		pr_buf_reset(b);
		return;
	}
	b->head += n;
	/* Reclaim once the dead prefix dominates, to keep memmove cheap. */
	if (b->head > 4096 && b->head > (b->len - b->head))
		compact(b);
}

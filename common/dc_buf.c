/* dc_buf.c - the growable byte buffer with a hard maximum; see dc_buf.h. */
#include "dc_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DC_BUF_FIRST 256 /* first allocation, doubled from there */

void
dc_buf_init(dc_buf *b, size_t max)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->code = DC_OK;
}

void
dc_buf_free(dc_buf *b)
{
	if (b == NULL)
		return;
	free(b->p);
	dc_buf_init(b, b->max);
}

void
dc_buf_reset(dc_buf *b)
{
	b->len = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
	b->code = DC_OK;
}

char *
dc_buf_room(dc_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->code != DC_OK)
		return NULL;
	if (n > b->max || b->len > b->max - n) {
		b->code = DC_ETOOLONG;
		return NULL;
	}
	if (b->cap - b->len > n) /* room for n bytes and the NUL */
		return b->p + b->len;
	cap = b->cap ? b->cap : DC_BUF_FIRST;
	while (cap - b->len <= n) {
		if (cap > SIZE_MAX / 2) {
			cap = b->len + n + 1;
			break;
		}
		cap *= 2;
	}
	if (cap > b->max + 1)
		cap = b->max + 1; /* never allocate past the maximum */
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->code = DC_ENOMEM;
		return NULL;
	}
	b->p = p;
	b->cap = cap;
	return b->p + b->len;
}

void
dc_buf_commit(dc_buf *b, size_t n)
{
	b->len += n;
	b->p[b->len] = '\0';
}

dc_code
dc_buf_add(dc_buf *b, const void *p, size_t n)
{
	char *d = dc_buf_room(b, n);

	if (d == NULL)
		return b->code;
	if (n > 0)
		memcpy(d, p, n);
	dc_buf_commit(b, n);
	return DC_OK;
}

dc_code
dc_buf_adds(dc_buf *b, const char *s)
{
	return dc_buf_add(b, s, strlen(s));
}

dc_code
dc_buf_addc(dc_buf *b, char c)
{
	return dc_buf_add(b, &c, 1);
}

dc_code
dc_buf_addf(dc_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *d;

	if (b->code != DC_OK)
		return b->code;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->code = DC_ENOMEM;
		return b->code;
	}
	d = dc_buf_room(b, (size_t)n);
	if (d == NULL)
		return b->code;
	va_start(ap, fmt);
	vsnprintf(d, (size_t)n + 1, fmt, ap);
	va_end(ap);
	dc_buf_commit(b, (size_t)n);
	return DC_OK;
}

void
dc_buf_truncate(dc_buf *b, size_t len)
{
	if (b->p != NULL && len <= b->len) {
		b->len = len;
		b->p[len] = '\0';
	}
}

const char *
dc_buf_str(const dc_buf *b)
{
	return b->p != NULL ? b->p : "";
}

size_t
dc_buf_len(const dc_buf *b)
{
	return b->len;
}

dc_code
dc_buf_code(const dc_buf *b)
{
	return b->code;
}

char *
dc_buf_take(dc_buf *b, size_t *len)
{
	char *p = b->code == DC_OK ? b->p : NULL;

	if (len != NULL)
		*len = p != NULL ? b->len : 0;
	if (p == NULL)
		free(b->p);
	dc_buf_init(b, b->max);
	return p;
}

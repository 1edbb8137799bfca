/* dc_utf8.c - the UTF-8 validator and sanitiser; see dc_utf8.h. */
#include "dc_utf8.h"

#include <stdlib.h>
#include <string.h>

#include "dc_buf.h"

int
dc_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xBF;
	uint32_t v;
	int need;

	if (c < 0x80) {
		if (cp != NULL)
			*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		v = c & 0x0F;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		v = c & 0x07;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		return 0;
	}
	for (int i = 1; i < need; i++) {
		if ((size_t)i >= n)
			return -1;
		if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
			return 0;
		v = v << 6 | (s[i] & 0x3F);
	}
	if (cp != NULL)
		*cp = v;
	return need;
}

size_t
dc_utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp >= 0xD800 && cp <= 0xDFFF)
		return 0;
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	if (cp > 0x10FFFF)
		return 0;
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

bool
dc_utf8_valid(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	while (i < n) {
		int l = dc_utf8_seq(p + i, n - i, NULL);

		if (l <= 0)
			return false;
		i += (size_t)l;
	}
	return true;
}

char *
dc_utf8_sanitize(const char *s, size_t n, const char *repl, unsigned flags, size_t *nbad)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t rl = strlen(repl), bad = 0, i = 0;
	dc_buf b;

	/* the result is at most n * max(rl, 1) bytes; the buffer's maximum is
	 * only a guard against overflow of that product */
	dc_buf_init(&b,
		n > 0 && rl > 1 && n > ((size_t)-1 / 2) / rl ? (size_t)-1 / 2 : n * (rl > 1 ? rl : 1) + 1);
	dc_buf_add(&b, "", 0);
	while (i < n) {
		int l = dc_utf8_seq(p + i, n - i, NULL);

		if (l > 0 && (flags & DC_UTF8_NO_CONTROLS) && l == 1 && (p[i] < 0x20 || p[i] == 0x7F))
			l = 0;
		if (l <= 0) {
			dc_buf_add(&b, repl, rl);
			bad++;
			i++;
			continue;
		}
		dc_buf_add(&b, p + i, (size_t)l);
		i += (size_t)l;
	}
	if (nbad != NULL)
		*nbad = bad;
	return dc_buf_take(&b, NULL);
}

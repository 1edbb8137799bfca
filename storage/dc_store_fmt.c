/*
 * dc_store_fmt.c - the text and binary forms storage sends, appended to a
 * dc_buf: COPY text format (PostgreSQL docs, "COPY", File Formats), JSON
 * strings and keys (RFC 8259) for json_populate_recordset, bytea hex input
 * inside JSON, and PostgreSQL's binary array format (array_send) for the
 * batch's originals.
 *
 * Deliberately not here: array literals in text syntax (dc_pg.c), the rows
 * themselves (dc_writer.c, dc_batch.c).  The buffer is common/dc_buf.h; the
 * inline appenders are in dc_store_int.h.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "dc_store_int.h"

#define STORE_ARRAY_HEADER 20

bool
store_copy_text(dc_buf *b, const char *s)
{
	size_t n;
	char *o, *start;

	if (s == NULL)
		return store_add(b, "\\N", 2);
	n = strlen(s);
	if (n > SIZE_MAX / 2 || (start = dc_buf_room(b, 2 * n)) == NULL)
		return false;
	o = start;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '\\':
			*o++ = '\\';
			*o++ = '\\';
			break;
		case '\n':
			*o++ = '\\';
			*o++ = 'n';
			break;
		case '\r':
			*o++ = '\\';
			*o++ = 'r';
			break;
		case '\t':
			*o++ = '\\';
			*o++ = 't';
			break;
		default: *o++ = (char)*p; break;
		}
	}
	dc_buf_commit(b, (size_t)(o - start));
	return true;
}

bool
store_i64(dc_buf *b, int64_t v)
{
	char tmp[24];
	char *e = tmp + sizeof(tmp), *p = e;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return store_add(b, p, (size_t)(e - p));
}

bool
store_json_bytea(dc_buf *b, const uint8_t *data, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *o, *start;

	if (n > (SIZE_MAX - 8) / 2 || (start = dc_buf_room(b, 2 * n + 8)) == NULL)
		return false;
	o = start;
	memcpy(o, "\"\\\\x", 4);
	o += 4;
	for (size_t i = 0; i < n; i++) {
		*o++ = hex[data[i] >> 4];
		*o++ = hex[data[i] & 15];
	}
	*o++ = '"';
	dc_buf_commit(b, (size_t)(o - start));
	return true;
}

bool
store_json_string(dc_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (s == NULL)
		return store_add(b, "null", 4);
	if (!store_addc(b, '"'))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool ok;
		if (*p == '"' || *p == '\\') {
			char e[2] = { '\\', (char)*p };
			ok = store_add(b, e, 2);
		} else if (*p < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
			ok = store_add(b, e, 6);
		} else {
			ok = store_addc(b, (char)*p);
		}
		if (!ok)
			return false;
	}
	return store_addc(b, '"');
}

bool
store_json_key(dc_buf *b, const char *name, bool first)
{
	return (first || store_addc(b, ',')) && store_addc(b, '"') && store_add(b, name, strlen(name)) &&
		store_add(b, "\":", 2);
}

bool
store_json_open(dc_buf *b)
{
	return (b->len == 1 || store_addc(b, ',')) && store_addc(b, '{');
}

bool
store_json_array_start(dc_buf *b)
{
	dc_buf_reset(b);
	return store_addc(b, '[');
}

bool
store_arr_start(dc_buf *b)
{
	char *h;

	dc_buf_reset(b);
	if ((h = dc_buf_room(b, STORE_ARRAY_HEADER)) == NULL)
		return false;
	memset(h, 0, STORE_ARRAY_HEADER);
	dc_buf_commit(b, STORE_ARRAY_HEADER);
	return true;
}

bool
store_arr_add(dc_buf *b, const void *p, size_t n)
{
	uint32_t l = htonl(p ? (uint32_t)n : UINT32_MAX);

	return store_add(b, &l, 4) && (p == NULL || store_add(b, p, n));
}

void
store_arr_finish(dc_buf *b, uint32_t n, uint32_t oid, bool nulls)
{
	uint32_t h[5] = { htonl(1), htonl(nulls ? 1 : 0), htonl(oid), htonl(n), htonl(1) };

	memcpy(b->p, h, sizeof(h));
}

/*
 * dc_imap_folder.c - IMAP folder names, pure: UTF-8 "/"-separated names to
 * quoted modified UTF-7 (RFC 3501 section 5.1.3) for commands, the server's
 * names back to UTF-8, and folder comparison (INBOX in any case, RFC 3501
 * section 5.1).  See dc_imap_folder.h.
 *
 * Deliberately not here: the session, LIST parsing, any I/O (dc_imap.c);
 * UTF-8 decoding and encoding rules (dc_utf8, the one validator).
 */
#include "dc_imap_folder.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dc_limits.h"
#include "dc_utf8.h"

/* Appends modified base64 of the UTF-16 units in u[0..n) to s at *len. */
static void
mutf7_run(char *s, size_t *len, const uint16_t *u, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
	uint32_t bits = 0;
	int nbits = 0;

	s[(*len)++] = '&';
	for (size_t i = 0; i < n; i++) {
		bits = (bits << 16) | u[i];
		nbits += 16;
		while (nbits >= 6) {
			nbits -= 6;
			s[(*len)++] = b64[(bits >> nbits) & 0x3f];
		}
	}
	if (nbits > 0)
		s[(*len)++] = b64[(bits << (6 - nbits)) & 0x3f];
	s[(*len)++] = '-';
}

/* Returns a new quoted, modified-UTF-7 folder name; see dc_imap.h. */
char *
dc_imap_quote_folder(const char *folder, char sep, dc_err *err)
{
	size_t n = strlen(folder), len = 0;
	/* worst case: every byte a 4-byte sequence -> 2 UTF-16 units -> ~6 chars, plus quotes */
	char *mutf7 = malloc(n * 3 + 8), *q = NULL;
	uint16_t *run = malloc((n + 1) * sizeof(uint16_t));
	const unsigned char *p = (const unsigned char *)folder;
	size_t nrun = 0;

	if (mutf7 == NULL || run == NULL) {
		dc_err_set(err, DC_ENOMEM, "out of memory");
		goto fail;
	}
	if (n == 0) {
		dc_err_set(err, DC_ECONFIG, "empty folder name");
		goto fail;
	}
	while (*p) {
		uint32_t cp;
		int k = dc_utf8_seq(p, n - (size_t)(p - (const unsigned char *)folder), &cp);

		if (k <= 0) {
			dc_err_set(err, DC_ECONFIG, "folder name '%s' is not valid UTF-8", folder);
			goto fail;
		}
		if (cp < 0x20 || cp == 0x7f) {
			dc_err_set(err, DC_ECONFIG, "folder name '%s' holds a control character", folder);
			goto fail;
		}
		if (cp >= 0x80) {
			if (cp >= 0x10000) {
				cp -= 0x10000;
				run[nrun++] = (uint16_t)(0xd800 | (cp >> 10));
				run[nrun++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
			} else {
				run[nrun++] = (uint16_t)cp;
			}
		} else {
			if (nrun) {
				mutf7_run(mutf7, &len, run, nrun);
				nrun = 0;
			}
			if (cp == '&') {
				mutf7[len++] = '&';
				mutf7[len++] = '-';
			} else if (cp == '/' && sep != '\0') {
				mutf7[len++] = sep;
			} else {
				mutf7[len++] = (char)cp;
			}
		}
		p += k;
	}
	if (nrun)
		mutf7_run(mutf7, &len, run, nrun);
	q = malloc(2 * len + 3);
	if (q == NULL) {
		dc_err_set(err, DC_ENOMEM, "out of memory");
		goto fail;
	}
	{
		size_t j = 0;
		q[j++] = '"';
		for (size_t i = 0; i < len; i++) {
			if (mutf7[i] == '"' || mutf7[i] == '\\')
				q[j++] = '\\';
			q[j++] = mutf7[i];
		}
		q[j++] = '"';
		q[j] = '\0';
	}
fail:
	free(mutf7);
	free(run);
	return q;
}

/* The value of a modified base64 character, or -1 (RFC 3501 5.1.3: "," for "/"). */
static int
mb64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == ',' ? 63 : -1;
}

/*
 * Decodes the base64 run at in[*i] (after "&", up to "-") as UTF-16 into
 * UTF-8 at out (length *len); *i ends after the "-".  False when the run is
 * malformed: a character outside modified base64, no "-", a lone surrogate,
 * bits left over, an encoded printable ASCII or control character.
 */
static bool
mutf7_decode_run(const char *in, size_t n, size_t *i, char *out, size_t *len)
{
	uint32_t bits = 0, hi = 0;
	int nbits = 0;
	size_t units = 0;

	for (; *i < n && in[*i] != '-'; (*i)++) {
		int v = mb64_value(in[*i]);

		if (v < 0)
			return false;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		units++;
		if (hi != 0) {
			if (u < 0xdc00 || u > 0xdfff)
				return false;
			*len += dc_utf8_put(out + *len, 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00));
			hi = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			hi = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return false;
		} else if (u < 0xa0) {
			return false; /* ASCII is never encoded; no control characters */
		} else {
			*len += dc_utf8_put(out + *len, u);
		}
	}
	if (*i == n || units == 0 || hi != 0 || nbits >= 6 || bits != 0)
		return false;
	(*i)++;
	return true;
}

/* Returns a new UTF-8 folder name decoded from modified UTF-7; see dc_imap.h. */
char *
dc_imap_decode_folder(const char *name, char sep, dc_err *err)
{
	size_t n = strlen(name), len = 0;
	char *out = NULL;
	bool after_run = false;

	if (n == 0 || n > DC_MAX_IMAP_LINE) {
		dc_err_set(err, DC_EIMAP, "folder name of %zu bytes from the IMAP server", n);
		return NULL;
	}
	/* a run of k characters decodes to at most 9k/8 bytes of UTF-8 */
	out = malloc(2 * n + 1);
	if (out == NULL) {
		dc_err_set(err, DC_ENOMEM, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c > 0x7e)
			goto bad;
		if (c != '&') {
			out[len++] = (sep != '\0' && (char)c == sep) ? '/' : (char)c;
			after_run = false;
			i++;
		} else if (i + 1 < n && name[i + 1] == '-') {
			out[len++] = '&';
			after_run = false;
			i += 2;
		} else {
			/* RFC 3501: "&U,BTFw-&ZeVnLIqe-" holds a superfluous shift */
			if (after_run)
				goto bad;
			i++;
			if (!mutf7_decode_run(name, n, &i, out, &len))
				goto bad;
			after_run = true;
		}
	}
	out[len] = '\0';
	return out;
bad:
	free(out);
	dc_err_set(err, DC_EIMAP, "folder name '%.200s' from the IMAP server is not modified UTF-7", name);
	return NULL;
}

/* True when folder names a and b (UTF-8, "/" levels) are the same; INBOX in
 * any case (RFC 3501 5.1), the rest exactly. */
bool
dc_imap_same_folder(const char *a, const char *b)
{
	if (strncasecmp(a, "INBOX", 5) == 0 && strncasecmp(b, "INBOX", 5) == 0 &&
		(a[5] == '\0' || a[5] == '/') && (b[5] == '\0' || b[5] == '/'))
		return strcmp(a + 5, b + 5) == 0;
	return strcmp(a, b) == 0;
}

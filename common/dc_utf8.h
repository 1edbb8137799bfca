/*
 * dc_utf8.h - the one UTF-8 validator and sanitiser.
 *
 * Well-formed means RFC 3629 and Table 3-7 of the Unicode standard, which is
 * also what PostgreSQL accepts in a UTF8 database: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF.  Each caller picks
 * its own policy on top (replace with '?' or U+FFFD, refuse control
 * characters); the decoding rule is this one.
 *
 * Deliberately not here: normalisation, case folding, other encodings.
 */
#ifndef DC_UTF8_H
#define DC_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length (1-4) of the well-formed UTF-8 sequence at s[0..n), 0 when the
 * bytes there are not one, -1 when s[0..n) is a well-formed but incomplete
 * prefix (a streaming caller waits for more bytes).  n > 0.  When cp is not
 * NULL and the result is positive, *cp gets the code point. */
int dc_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp);

/* Writes cp as UTF-8 at out (room for 4 bytes); returns the length, 0 when
 * cp is not a Unicode scalar value (a surrogate or above U+10FFFF). */
size_t dc_utf8_put(char *out, uint32_t cp);

/* True when s[0..n) is well-formed UTF-8 (NUL bytes count as well-formed). */
bool dc_utf8_valid(const char *s, size_t n);

/* Flags of dc_utf8_sanitize. */
enum {
	DC_UTF8_NO_CONTROLS = 1 << 0, /* replace C0 controls and DEL too */
};

/* A new NUL-terminated copy of s[0..n) in which every byte that does not
 * begin a well-formed sequence (and, with DC_UTF8_NO_CONTROLS, every control
 * character) is replaced by the string repl ("?" or "\xEF\xBF\xBD"); a
 * sequence cut by the end of s is replaced byte by byte.  *nbad (may be
 * NULL) gets the number of replacements.  NULL when out of memory; the
 * caller frees. */
char *dc_utf8_sanitize(const char *s, size_t n, const char *repl, unsigned flags, size_t *nbad);

#endif

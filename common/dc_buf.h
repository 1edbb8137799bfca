/*
 * dc_buf.h - the one growable byte buffer, with a hard maximum per buffer.
 *
 * Modelled on curl's lib/curlx/dynbuf.h: every buffer is created with the
 * largest length it may ever reach, so a buffer fed by untrusted input
 * cannot grow without bound; the maxima are named in dc_limits.h.  The
 * contents are always NUL-terminated (after the first add), so a buffer of
 * text can be read as a C string; binary contents are fine too (dc_buf_len).
 *
 * Failures are sticky: after an add fails (DC_ETOOLONG over the maximum,
 * DC_ENOMEM out of memory), every later add returns the same code and
 * changes nothing, so a run of appends can be checked once at the end
 * (dc_buf_code); that is why the adds are not warn-unused-result.
 * dc_buf_reset clears the contents and the failure.
 *
 * Deliberately not here: formatting helpers for one consumer (COPY text,
 * JSON, array literals live with their writers in storage/).
 */
#ifndef DC_BUF_H
#define DC_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "dc_error.h"

typedef struct dc_buf {
	char *p;      /* contents, NUL-terminated; NULL until the first add */
	size_t len;   /* bytes used, not counting the NUL */
	size_t cap;   /* bytes allocated */
	size_t max;   /* hard maximum of len */
	dc_code code; /* DC_OK, or the first failure (sticky) */
} dc_buf;

/* Initialises b, empty, allowing at most max bytes of contents (max > 0).
 * Allocates nothing. */
void dc_buf_init(dc_buf *b, size_t max);

/* Frees b's memory and returns it to the state dc_buf_init left (same max).
 * Accepts a zeroed or freed buffer. */
void dc_buf_free(dc_buf *b);

/* Empties b, keeping its memory, and clears a sticky failure. */
void dc_buf_reset(dc_buf *b);

/* Appends n bytes at p.  DC_OK, DC_ETOOLONG (len would pass max) or
 * DC_ENOMEM; on failure b keeps its contents and the failure sticks. */
dc_code dc_buf_add(dc_buf *b, const void *p, size_t n);

/* Appends the C string s (without its NUL); as dc_buf_add. */
dc_code dc_buf_adds(dc_buf *b, const char *s);

/* Appends one byte; as dc_buf_add. */
dc_code dc_buf_addc(dc_buf *b, char c);

/* Appends printf-formatted text; as dc_buf_add. */
dc_code dc_buf_addf(dc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Makes room for n more bytes and returns a pointer to them (the caller
 * writes up to n bytes there, then calls dc_buf_commit), or NULL on failure
 * (as dc_buf_add; dc_buf_code says which). */
char *dc_buf_room(dc_buf *b, size_t n);

/* Adds n bytes (at most what dc_buf_room made room for) to the length and
 * NUL-terminates. */
void dc_buf_commit(dc_buf *b, size_t n);

/* Shortens the contents to len bytes (len <= dc_buf_len). */
void dc_buf_truncate(dc_buf *b, size_t len);

/* The contents (NUL-terminated; "" while empty; owned by b), their length,
 * and the sticky failure code (DC_OK when every add succeeded). */
const char *dc_buf_str(const dc_buf *b);
size_t dc_buf_len(const dc_buf *b);
dc_code dc_buf_code(const dc_buf *b);

/* Hands the contents to the caller (free() them; NULL when nothing was
 * added, or on a sticky failure) and resets b to empty. *len (may be NULL)
 * gets their length. */
char *dc_buf_take(dc_buf *b, size_t *len);

#endif

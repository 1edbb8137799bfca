/*
 * dc_unpack.h - what a unit of bytes is (classification by its first bytes,
 * never by name or Content-Type), and the walk that opens zip, gzip and raw
 * zlib containers, nested, and hands every XML stream it finds to a callback
 * as a pull stream (dc_read_fn), decompressing as the XML reader pulls.
 *
 * Formats: zip (PKWARE APPNOTE, via libzip, from memory), gzip (RFC 1952,
 * multi-member, via zlib), zlib (RFC 1950), XML (W3C XML 1.0 section 4.3.3
 * byte-order marks), JSON (RFC 8259: an object, buffered whole for the
 * TLS report parser, dc_tlsrpt.h), RFC 5322 messages (handed back to the caller, which owns
 * MIME; see dc_mime.h).
 *
 * Not here: MIME, XML parsing, what a failure becomes (the caller decides).
 * Limits (dc_limits): decompressed bytes per stream, decompression ratio per
 * layer, over a chain of nested layers and over the whole unit (which stops
 * the walk), and per input (dc_unpack_tally, shared by every unit of one
 * input): archive nesting (max_nesting), zip members (max_members) and
 * decompressed bytes (max_unpacked_bytes).
 */
#ifndef DC_UNPACK_H
#define DC_UNPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_limits.h"
#include "dc_report.h"
#include "dc_libversion.h"

/* Bytes a stream is peeked for before it is classified. */
#define DC_UNPACK_SNIFF_BYTES 4096
/* DC_UNPACK_PATH_MAX and DC_UNPACK_NOTES_MAX are in dc_limits.h. */

typedef enum dc_kind {
	DC_KIND_EMPTY = 0,
	DC_KIND_ZIP,
	DC_KIND_GZIP,
	DC_KIND_ZLIB,
	DC_KIND_XML,
	DC_KIND_MESSAGE,
	DC_KIND_OTHER,
	DC_KIND_JSON, /* a JSON object (SMTP TLS reports, RFC 8460) */
} dc_kind;

/* Returns what the first n bytes at p are (n may be a prefix of the unit). */
dc_kind dc_unpack_sniff(const uint8_t *p, size_t n);

/* Returns a static name for k ("zip", "gzip", ...). */
const char *dc_unpack_kind_name(dc_kind k);

/*
 * Writes a factual description of bytes that are not a report into buf
 * ("PNG image, 13670 bytes", "binary, 512 bytes", "text starting 'Test zip
 * file'", "empty (0 bytes)"); p[0..n) is a prefix of a unit of total bytes.
 */
void dc_unpack_describe(const uint8_t *p, size_t n, uint64_t total, char *buf, size_t cap);

/*
 * Copies the local name of the first element of the XML prefix p[0..n) into
 * buf (after BOM, whitespace, declarations, comments, DOCTYPE).  Returns
 * false when the prefix ends before an element starts or is UTF-16.
 */
bool dc_unpack_xml_root(const uint8_t *p, size_t n, char *buf, size_t cap);

/* One XML stream found by the walk. */
typedef struct dc_unpack_xml {
	dc_read_fn rd; /* the decompressed XML, pulled on demand */
	void *rctx;
	const char *path;         /* "zip:a.xml > gzip"; "" for the unit itself */
	const char *notes;        /* repairs, "; "-joined, "" when none: a live buffer,
	                              * later repairs (bytes after the end of a gzip)
	                              * are appended while the stream is read */
	const dc_err *stream_err; /* after reading: code != DC_OK when the stream
	                              * itself failed (corrupt, limits); then use this
	                              * as the reason rather than the reader's view */
} dc_unpack_xml;

/*
 * What one input has used so far, shared by the walks of all its units (the
 * caller keeps one per input, zeroed): checked against the per-input caps of
 * dc_limits.  Once a cap is exceeded, over says which (code DC_EINPUT_LIMIT)
 * and every walk sharing the tally stops with DC_EINPUT_LIMIT, without
 * handing the parts it did not examine to cb->failure: the caller rejects
 * the input as a whole, once.
 */
typedef struct dc_unpack_tally {
	uint64_t members;  /* zip members (and what the caller counts: MIME parts) */
	uint64_t unpacked; /* decompressed bytes out of every layer */
	dc_err over;       /* the first cap exceeded, code DC_OK until then */
} dc_unpack_tally;

/* Marks t over a cap with the printf-formatted reason (the first reason
 * stays), copies it to err; returns DC_EINPUT_LIMIT. */
dc_code dc_unpack_tally_over(dc_unpack_tally *t, dc_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The effective archive nesting cap of lim (0 or too large: the ceiling). */
uint64_t dc_unpack_max_nesting(const dc_limits *lim);

/*
 * What the walk calls.  Every callback returns DC_OK to go on; any other code
 * stops the walk, which returns it unchanged (callers return only fatal codes).
 * Pointers passed in are valid only during the call.
 */
typedef struct dc_unpack_cb {
	void *ctx;
	const char *notes; /* repairs the caller made around the unit (or NULL):
	                              * every stream's notes start with them */
	/* An XML stream; read it (or not) before returning. */
	dc_code (*xml)(void *ctx, const dc_unpack_xml *x, dc_err *err);
	/* An RFC 5322 message inside an archive (buffered, at most
	 * limits.max_message_bytes); depth = archive layers above it. */
	dc_code (*message)(
		void *ctx, const uint8_t *data, size_t len, const char *path, int depth, dc_err *err);
	/* One part of the unit could not be read: path says which ("" = the unit),
	 * why the code and reason. */
	dc_code (*failure)(void *ctx, const char *path, const dc_err *why, dc_err *err);
	/* The input's tally (NULL: caps per walk only, parts over a cap fail
	 * one by one through cb->failure). */
	dc_unpack_tally *tally;
	/* A JSON document, decompressed and buffered whole (at most
	 * dc_tlsrpt_max_bytes(lim)); notes as for XML.  NULL: JSON is no report
	 * (a failure). */
	dc_code (*json)(
		void *ctx, const uint8_t *data, size_t len, const char *path, const char *notes, dc_err *err);
} dc_unpack_cb;

/*
 * Walks data[0..len) (one unit: an attachment or a file, in memory, owned by
 * the caller), depth = archive layers already above it (0 at the top).
 * Every XML stream goes to cb->xml, every embedded message to cb->message,
 * every unreadable part (corrupt, not a report, over a limit) to cb->failure.
 * Returns DC_OK when the unit was walked to its end, DC_ENOMEM,
 * DC_EINPUT_LIMIT (err set) when the input's tally went over a cap, or the
 * first non-OK code a callback returned.
 */
dc_code dc_unpack_walk(const uint8_t *data, size_t len, int depth, const dc_limits *lim,
	const dc_unpack_cb *cb, dc_err *err) DC_WUR;

/* libzip and zlib as loaded (zip_libzip_version, zlibVersion);
 * dc_libversion.h. */
size_t dc_unpack_libversions(dc_libversion *v, size_t max);

#endif

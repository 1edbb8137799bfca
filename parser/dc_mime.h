/*
 * dc_mime.h - every leaf part of an RFC 5322 message, transfer-decoded, with
 * its decoded file name, walked with GMime 3.
 *
 * Follows RFC 5322 (message), RFC 2045/2046 (MIME, multipart of any
 * subtype, base64, quoted-printable), RFC 2047/2231 (encoded file names),
 * RFC 6522 (multipart/report is walked like any multipart).  message/rfc822
 * parts are walked recursively; nesting (multipart and message) is capped at
 * DC_MAX_MIME_DEPTH.
 *
 * Not here: what a leaf holds (dc_unpack classifies it by its bytes), limits
 * on the message size (dc_extract checks them first), charsets (leaf bytes
 * are handed on as they were after transfer decoding).
 */
#ifndef DC_MIME_H
#define DC_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_limits.h" /* DC_MIME_NOTES_MAX, DC_MIME_MAX_BOUNDARIES */
#include "dc_libversion.h"

/* One leaf part; everything is valid only during the callback. */
typedef struct dc_mime_leaf {
	const uint8_t *data; /* body after transfer decoding */
	size_t len;
	const char *content_type; /* "application/zip", lower-case, never NULL */
	const char *filename;     /* RFC 2047/2231 decoded, NULL when none */
	const char *section;      /* IMAP-style part number: "1", "2", "2.1" */
	int depth;                /* container parts above it (0 = the message body) */
} dc_mime_leaf;

/* Called for each leaf in document order; DC_OK goes on, any other code stops
 * the walk, which returns it. */
typedef dc_code (*dc_mime_leaf_fn)(void *ctx, const dc_mime_leaf *leaf, dc_err *err);

typedef struct dc_mime_info {
	unsigned leaves;               /* leaves handed to the callback */
	unsigned too_deep;             /* container parts not walked (deeper than DC_MAX_MIME_DEPTH) */
	char notes[DC_MIME_NOTES_MAX]; /* repairs made, "; "-joined, "" if none */
} dc_mime_info;

/* The fields of the message's own header block that the store keeps (RFC
 * 5322 3.6.4), read from the same parse as its leaves; valid only during
 * the callback. */
typedef struct dc_mime_head {
	/* The first Message-ID field: its value unfolded, with every byte that
	 * is not printable ASCII (space, tab, CR, LF, controls, 8-bit) left
	 * out, so "<a\r\n b@c>" gives "<ab@c>" (a msg-id holds no white space),
	 * angle brackets kept, at most DC_MAX_MESSAGE_ID bytes; NULL when there
	 * is none or nothing is left of it. */
	const char *message_id;
} dc_mime_head;

/* Called once, after the message is parsed and before its first leaf;
 * DC_OK goes on, any other code stops the walk, which returns it. */
typedef dc_code (*dc_mime_head_fn)(void *ctx, const dc_mime_head *head, dc_err *err);

/* Initialises GMime once per process (thread-safe); dc_mime_walk calls it. */
void dc_mime_init(void);

/*
 * Parses data[0..len) (owned by the caller) as a message and calls fn for
 * every leaf.  Leading whitespace before the first header line and an mbox
 * "From " line are skipped.  info (required) is filled.  Returns DC_OK,
 * DC_EMIME when GMime cannot make a message of it, DC_ETOODEEP for more than
 * DC_MIME_MAX_BOUNDARIES boundaries, DC_ENOMEM, or fn's code.
 */
dc_code dc_mime_walk(const uint8_t *data, size_t len, dc_mime_leaf_fn fn, void *ctx, dc_mime_info *info,
	dc_err *err) DC_WUR;

/* dc_mime_walk, but head (may be NULL) is told the message's header fields
 * first, and a message of more than max_leaves leaves (counted in the
 * parsed tree, as the walk would find them) is refused with DC_EINPUT_LIMIT
 * before any leaf is handed on.  UINT64_MAX: no cap. */
dc_code dc_mime_walk_capped(const uint8_t *data, size_t len, uint64_t max_leaves, dc_mime_head_fn head,
	dc_mime_leaf_fn fn, void *ctx, dc_mime_info *info, dc_err *err) DC_WUR;

/* GMime as loaded (gmime_*_version); dc_libversion.h. */
size_t dc_mime_libversions(dc_libversion *v, size_t max);

#endif

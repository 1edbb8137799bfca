/*
 * dc_xml_input.h - the byte-level input stage of the DMARC XML reader
 * (dc_xml.c): a dc_read_fn pull stream turned into libxml2's input
 * callback, with the repairs that must happen before libxml2 sees a byte.
 *
 * Internal to parser/: only dc_xml.c includes it.  The state is a plain
 * struct so that dc_xml_parse can keep it on its stack (see there).
 */
#ifndef DC_XML_INPUT_H
#define DC_XML_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_limits.h"
#include "dc_report.h"

#define DC_XML_RAW_BYTES 65536 /* the read buffer: bytes of rd held at once */

enum dc_xml_lexer_state {
	LX_TEXT,
	LX_LT,
	LX_BANG,
	LX_COMMENT,
	LX_CDATA,
	LX_PI,
	LX_STAG,
	LX_STAG_ATTR,
	LX_ETAG,
	LX_ETAG_TAIL,
	LX_PASS,
	LX_CUT
};

typedef struct dc_xml_input {
	dc_read_fn rd;
	void *rctx;
	dc_err rerr; /* error of rd, returned instead of libxml2's */
	bool failed;
	bool eof;
	bool started;         /* prefix handled */
	bool utf8_filter;     /* replace invalid UTF-8 */
	bool lead_stripped;   /* whitespace before <?xml removed */
	bool wrapper_removed; /* <xs:schema> start tag removed */
	bool trailing;        /* non-whitespace after </feedback> */
	bool second_report;   /* ... and it holds another <feedback> */
	bool doctype;         /* stream ended before a <!DOCTYPE */
	uint64_t n_bad_utf8;  /* sequences replaced */
	uint64_t n_ctrl;      /* control characters replaced */
	uint64_t n_amp;       /* bare '&' escaped */
	/* lexer */
	int lx;       /* enum dc_xml_lexer_state */
	int lx_depth; /* open <feedback> elements */
	int lx_count; /* dashes, brackets, '?' seen, or chars matched */
	uint8_t lx_quote, lx_last;
	bool lx_fb;
	size_t lx_name_len;
	char lx_name[DC_MAX_XML_NAME + 1];
	size_t pos, len; /* unread bytes are raw[pos..len) */
	size_t scan;     /* the lexer has looked at raw[..scan) */
	size_t limit;    /* once cut: the stream ends at raw[limit] */
	uint8_t raw[DC_XML_RAW_BYTES];
} dc_xml_input;

/* Prepares in to read from rd (rctx passed through).  Zeroes only the
 * bookkeeping; raw[] is written before it is read. */
void dc_xml_input_init(dc_xml_input *in, dc_read_fn rd, void *rctx);

/* libxml2's input callback (ctx is a dc_xml_input): returns the bytes
 * written to buf, 0 at the end of the document, -1 on a read error (kept in
 * in->rerr, in->failed set). */
int dc_xml_input_read(void *ctx, char *buf, int cap);

/* True once the lexer ended the document at the root's end tag (or before
 * a DOCTYPE): the rest of the stream is for dc_xml_input_drain. */
static inline bool
dc_xml_input_cut(const dc_xml_input *in)
{
	return in->lx == LX_CUT;
}

/* After </feedback> (dc_xml_input_cut): reads the rest of the stream, so
 * that read errors surface, and sets in->trailing when it held anything but
 * whitespace, comments and PIs, in->second_report when it held another
 * <feedback>.  Returns false on a read error (in->rerr). */
bool dc_xml_input_drain(dc_xml_input *in);

/* XML's white space (production S). */
static inline bool
dc_xml_is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

#endif

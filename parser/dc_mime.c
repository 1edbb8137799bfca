/*
 * dc_mime.c - the leaves of a message, walked with GMime 3 (RFC 5322, RFC
 * 2045-2047, RFC 2231, RFC 6522).
 *
 * GMime parses the whole message from a memory stream; the walk then visits
 * multipart children in order and message/rfc822 bodies recursively, numbers
 * parts the way IMAP does (RFC 3501 6.4.5: "2.1" is the first part of the
 * second part; the body of a message/rfc822 part N is N.1..), decodes each
 * leaf's transfer encoding and hands it on.
 *
 * Speed (small report e-mails, docs/README-parse-speed.md): when the top
 * header block is plain, GMime parses only the message's body part
 * (construct_part, no GMimeMessage) from a copy in which the header fields
 * we never read (all but Content-* and Message-ID) are overwritten by lines
 * it skips; base64 and
 * quoted-printable leaves are decoded straight from GMime's buffer.  Each of
 * these gives the same part tree and bytes as the plain way (see
 * first_line_is_field, content_headers, decode_leaf).
 *
 * The message's own header fields that the store keeps (its Message-ID)
 * are read from this same parse and handed to the head callback before the
 * first leaf, so every caller (import, poll, reparse) gets the same value.
 *
 * Not here: deciding what a leaf is (bytes decide, in dc_unpack), charset
 * conversion, signatures.  Repairs: whitespace before the first header line
 * (seen in the wild) is dropped and noted; an mbox "From " line is dropped.
 */
#include "dc_mime.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

/* Longest part number kept: DC_MAX_MIME_DEPTH levels of up to 6 digits. */
#define SECTION_MAX (DC_MAX_MIME_DEPTH * 8 + 8)

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;

static void
mime_init_once(void)
{
	g_mime_init();
}

void
dc_mime_init(void)
{
	pthread_once(&mime_once, mime_init_once);
}

typedef struct mwalk {
	dc_mime_leaf_fn fn;
	void *ctx;
	dc_mime_info *info;
	dc_err *err;
} mwalk;

static void
note(dc_mime_info *info, const char *text)
{
	size_t l = strlen(info->notes);

	snprintf(info->notes + l, sizeof(info->notes) - l, "%s%s", l ? "; " : "", text);
}

/* "prefix.n", or "n" when prefix is empty, into out (SECTION_MAX bytes).
 * Returns false when it does not fit (only a part numbered in the millions
 * deep down could): the caller skips that part and counts it with the parts
 * nested too deep, so no two parts are ever given the same cut number. */
static bool
section_join(char *out, const char *prefix, int n)
{
	int k = *prefix ? snprintf(out, SECTION_MAX, "%s.%d", prefix, n) :
			  snprintf(out, SECTION_MAX, "%d", n);

	return k >= 0 && k < SECTION_MAX;
}

/*
 * The part's transfer-encoded bytes as GMime holds them: a slice of the
 * message buffer (the parser gives each part a bounded memory substream of
 * its input).  Returns false when the content is not such a stream.
 */
static bool
raw_slice(GMimeDataWrapper *dw, const uint8_t **p, size_t *n)
{
	/* GMime 3: transfer none, the wrapper keeps its reference */
	GMimeStream *s = dw != NULL ? g_mime_data_wrapper_get_stream(dw) : NULL;
	GByteArray *ba;
	gint64 start, len;

	if (s == NULL)
		return false;
	if (GMIME_IS_STREAM_MEM(s) && (ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s))) != NULL &&
		g_mime_stream_reset(s) == 0 && (start = g_mime_stream_tell(s)) >= 0 &&
		(len = g_mime_stream_length(s)) >= 0 && (guint64)start <= ba->len &&
		(guint64)len <= ba->len - (guint64)start) {
		*p = ba->data + start;
		*n = (size_t)len;
		return true;
	}
	return false;
}

/*
 * Transfer-decodes a leaf into *data and *len: base64 and quoted-printable with
 * GMime's decoders straight into one buffer (*owned, to free()), other
 * encodings handed on as they are; uuencode, and content GMime does not hold
 * in memory, through g_mime_data_wrapper_write_to_stream into *stream.
 * The bytes are those the data wrapper would write (its basic filter runs
 * the same decoder steps).  An undecodable part is handed on empty.
 * Returns DC_OK or DC_ENOMEM.
 */
static dc_code
decode_leaf(mwalk *mw, GMimeDataWrapper *dw, const uint8_t **data, size_t *len, uint8_t **owned,
	GMimeStream **stream)
{
	GMimeContentEncoding enc = dw != NULL ? g_mime_data_wrapper_get_encoding(dw) :
						GMIME_CONTENT_ENCODING_DEFAULT;
	const uint8_t *raw;
	size_t n;
	GByteArray *ba;

	*data = (const uint8_t *)"";
	*len = 0;
	if (dw != NULL && enc != GMIME_CONTENT_ENCODING_UUENCODE && raw_slice(dw, &raw, &n)) {
		GMimeEncoding state;
		size_t out;

		if (enc != GMIME_CONTENT_ENCODING_BASE64 && enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) {
			*data = n ? raw : (const uint8_t *)"";
			*len = n;
			return DC_OK;
		}
		g_mime_encoding_init_decode(&state, enc);
		if ((*owned = malloc(g_mime_encoding_outlen(&state, n) + 1)) == NULL)
			return dc_err_set(mw->err, DC_ENOMEM, "out of memory decoding a MIME part");
		out = g_mime_encoding_step(&state, (const char *)raw, n, (char *)*owned);
		out += g_mime_encoding_flush(&state, "", 0, (char *)*owned + out);
		*data = out ? *owned : (const uint8_t *)"";
		*len = out;
		return DC_OK;
	}
	if ((*stream = g_mime_stream_mem_new()) == NULL)
		return dc_err_set(mw->err, DC_ENOMEM, "out of memory decoding a MIME part");
	if (dw != NULL && g_mime_data_wrapper_write_to_stream(dw, *stream) < 0)
		g_mime_stream_reset(*stream);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(*stream));
	*data = ba && ba->len ? ba->data : (const uint8_t *)"";
	*len = ba ? ba->len : 0;
	return DC_OK;
}

/* Decodes one leaf and calls the callback; returns its code or DC_ENOMEM. */
static dc_code
walk_leaf(mwalk *mw, GMimePart *part, const char *section, int depth)
{
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeStream *out = NULL;
	uint8_t *owned = NULL;
	char *type = NULL;
	dc_mime_leaf leaf;
	dc_code rc;

	type = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
	if (type != NULL)
		for (char *c = type; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	if ((rc = decode_leaf(mw, dw, &leaf.data, &leaf.len, &owned, &out)) != DC_OK)
		goto out;
	leaf.content_type = type ? type : "application/octet-stream";
	leaf.filename = g_mime_part_get_filename(part);
	leaf.section = section;
	leaf.depth = depth;
	mw->info->leaves++;
	rc = mw->fn ? mw->fn(mw->ctx, &leaf, mw->err) : DC_OK;
out:
	if (out != NULL)
		g_object_unref(out);
	free(owned);
	g_free(type);
	return rc;
}

static dc_code walk_part(mwalk *mw, GMimeObject *obj, const char *section, int depth);

/* The body of a message (top level or message/rfc822) numbered below prefix. */
static dc_code
walk_body(mwalk *mw, GMimeObject *body, const char *prefix, int depth)
{
	char sec[SECTION_MAX];

	if (body == NULL)
		return DC_OK;
	if (GMIME_IS_MULTIPART(body))
		return walk_part(mw, body, prefix, depth);
	if (!section_join(sec, prefix, 1)) {
		mw->info->too_deep++;
		return DC_OK;
	}
	return walk_part(mw, body, sec, depth);
}

/* One part: multipart children in order, message/rfc822 recursively, leaves
 * to the callback.  Returns DC_OK or the callback's code. */
static dc_code
walk_part(mwalk *mw, GMimeObject *obj, const char *section, int depth)
{
	char sec[SECTION_MAX];
	dc_code rc = DC_OK;

	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);

		if (depth >= DC_MAX_MIME_DEPTH) {
			mw->info->too_deep++;
			return DC_OK;
		}
		for (int i = 0; i < n && rc == DC_OK; i++) {
			if (!section_join(sec, section, i + 1)) {
				mw->info->too_deep++;
				break; /* the next numbers are no shorter */
			}
			rc = walk_part(mw, g_mime_multipart_get_part(mp, i), sec, depth + 1);
		}
		return rc;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		if (depth >= DC_MAX_MIME_DEPTH) {
			mw->info->too_deep++;
			return DC_OK;
		}
		if (inner == NULL)
			return DC_OK;
		return walk_body(mw, g_mime_message_get_mime_part(inner), section, depth + 1);
	}
	if (GMIME_IS_PART(obj))
		return walk_leaf(mw, GMIME_PART(obj), section, depth);
	return DC_OK;
}

/* Leaves the walk would hand on below obj (containers deeper than
 * DC_MAX_MIME_DEPTH not), counting up to stop + 1. */
static uint64_t
count_leaves(GMimeObject *obj, int depth, uint64_t stop)
{
	uint64_t n = 0;

	if (obj == NULL)
		return 0;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int k = g_mime_multipart_get_count(mp);

		if (depth >= DC_MAX_MIME_DEPTH)
			return 0;
		for (int i = 0; i < k && n <= stop; i++)
			n += count_leaves(g_mime_multipart_get_part(mp, i), depth + 1, stop - n);
		return n;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		if (depth >= DC_MAX_MIME_DEPTH || inner == NULL)
			return 0;
		return count_leaves(g_mime_message_get_mime_part(inner), depth + 1, stop);
	}
	return GMIME_IS_PART(obj) ? 1 : 0;
}

/* Number of case-insensitive "boundary=" in p[0..n), counting up to max + 1. */
static unsigned
count_boundaries(const uint8_t *p, size_t n, unsigned max)
{
	unsigned c = 0;
	const uint8_t *e = p + 8, *end = p + n;

	/* memchr to each '=', then the 8 bytes before it */
	while (n >= 9 && c <= max && e < end && (e = memchr(e, '=', (size_t)(end - e))) != NULL) {
		if (strncasecmp((const char *)e - 8, "boundary", 8) == 0)
			c++;
		e++;
	}
	return c;
}

/*
 * True when the first line of p[0..n) is a header field that GMime's
 * header scanner accepts the same way whether it reads a message's headers
 * or a part's: a name of printable ASCII other than ':' right before a ':'.
 * Then g_mime_parser_construct_part() yields exactly the object that
 * g_mime_parser_construct_message() would hang below the message (the two
 * differ only in how a first line that is no field is treated: an mbox
 * "From " line is skipped by one and fails the other), without building the
 * GMimeMessage, whose address, subject and date parsing we never use (about
 * 17 us of 155 per small report e-mail).  The message's non-Content
 * headers then sit on the top part too, where nothing reads them.
 */
static bool
first_line_is_field(const uint8_t *p, size_t n)
{
	size_t k = 0;

	while (k < n && p[k] > ' ' && p[k] < 127 && p[k] != ':')
		k++;
	return k > 0 && k < n && p[k] == ':';
}

/*
 * A copy of the message p[0..n) in which every field of the top header
 * block but the first, the Content-* ones and Message-ID is overwritten, byte for byte,
 * by a line that is no header field ("X XXX..."), which GMime skips; or
 * NULL when the block is not plain enough to be sure of what GMime makes of
 * it: every line a field (first_line_is_field) or a fold, ending in an
 * empty line.  GMime hangs only the Content-* fields on the top part either
 * way (the others belong to the GMimeMessage, which we never build), and
 * every offset stays the same (GMime's reading of a broken message can
 * depend on where its 4 KB reads fall), so the part tree is the same,
 * minus a GMimeHeader object per field we never read.
 */
static GByteArray *
content_headers(const uint8_t *p, size_t n)
{
	GByteArray *out;
	size_t pos = 0;
	bool blank = false;

	if (n >= G_MAXUINT)
		return NULL;
	out = g_byte_array_sized_new((guint)n);
	g_byte_array_append(out, p, (guint)n);
	while (pos < n) {
		const uint8_t *eol = memchr(p + pos, '\n', n - pos);
		size_t len, text;

		if (eol == NULL)
			break; /* the headers end with the input: not plain */
		len = (size_t)(eol - (p + pos));
		if (len == 0 || (len == 1 && p[pos] == '\r'))
			return out;
		if (p[pos] == ' ' || p[pos] == '\t') {
			if (pos == 0)
				break;
		} else if (first_line_is_field(p + pos, len)) {
			blank = pos > 0 &&
				!(len >= 8 &&
					g_ascii_strncasecmp((const char *)p + pos, "Content-", 8) == 0) &&
				!(len >= 11 &&
					g_ascii_strncasecmp((const char *)p + pos, "Message-ID:", 11) == 0);
		} else {
			break;
		}
		text = p[pos + len - 1] == '\r' ? len - 1 : len;
		if (blank && text > 0) {
			memset(out->data + pos, 'X', text);
			if (text > 1)
				out->data[pos + 1] = ' ';
		}
		pos += len + 1;
	}
	g_byte_array_free(out, TRUE);
	return NULL;
}

/*
 * Tells head the header fields of obj (the message, or its top part when
 * only that was parsed: the message's fields then sit on it) that the store
 * keeps; returns head's code.  GMime's raw value is the field as received,
 * folds included; keeping only the bytes 0x21..0x7e unfolds it and drops
 * what a msg-id cannot hold (see dc_mime_head).
 */
static dc_code
tell_head(GMimeObject *obj, dc_mime_head_fn head, void *ctx, dc_err *err)
{
	GMimeHeaderList *list = obj != NULL ? g_mime_object_get_header_list(obj) : NULL;
	GMimeHeader *h = list != NULL ? g_mime_header_list_get_header(list, "Message-ID") : NULL;
	const char *raw = h != NULL ? g_mime_header_get_raw_value(h) : NULL;
	char id[DC_MAX_MESSAGE_ID + 1];
	size_t n = 0;
	dc_mime_head hd = { NULL };

	for (const unsigned char *c = (const unsigned char *)raw; c != NULL && *c && n < DC_MAX_MESSAGE_ID;
		c++)
		if (*c > ' ' && *c <= '~')
			id[n++] = (char)*c;
	id[n] = '\0';
	if (n > 0)
		hd.message_id = id;
	return head(ctx, &hd, err);
}

dc_code
dc_mime_walk(const uint8_t *data, size_t len, dc_mime_leaf_fn fn, void *ctx, dc_mime_info *info, dc_err *err)
{
	return dc_mime_walk_capped(data, len, UINT64_MAX, NULL, fn, ctx, info, err);
}

dc_code
dc_mime_walk_capped(const uint8_t *data, size_t len, uint64_t max_leaves, dc_mime_head_fn head,
	dc_mime_leaf_fn fn, void *ctx, dc_mime_info *info, dc_err *err)
{
	uint64_t leaves;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *msg = NULL;
	GMimeObject *top = NULL;
	GByteArray *only = NULL;
	size_t i = 0;
	mwalk mw = { fn, ctx, info, err };
	dc_code rc = DC_OK;

	memset(info, 0, sizeof(*info));
	dc_mime_init();
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
		i++;
	if (i > 0)
		note(info, "whitespace before the first header line removed");
	if (len - i >= 5 && memcmp(data + i, "From ", 5) == 0) {
		while (i < len && data[i] != '\n')
			i++;
		if (i < len)
			i++;
	}
	if (count_boundaries(data + i, len - i, DC_MIME_MAX_BOUNDARIES) > DC_MIME_MAX_BOUNDARIES) {
		rc = dc_err_set(err, DC_ETOODEEP, "message declares more than %d multipart boundaries",
			DC_MIME_MAX_BOUNDARIES);
		goto out;
	}
	if (first_line_is_field(data + i, len - i) && (only = content_headers(data + i, len - i)) != NULL)
		stream = g_mime_stream_mem_new_with_byte_array(only);
	else
		stream = g_mime_stream_mem_new_with_buffer((const char *)data + i, len - i);
	if (stream == NULL) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory reading the message");
		goto out;
	}
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	if (first_line_is_field(data + i, len - i)) {
		/* the body alone: what the message's walk would see, without the
		 * message object (see first_line_is_field) */
		top = g_mime_parser_construct_part(parser, NULL);
	} else {
		msg = g_mime_parser_construct_message(parser, NULL);
		top = msg != NULL ? g_mime_message_get_mime_part(msg) : NULL;
		if (top != NULL)
			g_object_ref(top);
	}
	if (top == NULL && msg == NULL) {
		rc = dc_err_set(err, DC_EMIME, "not a MIME message: GMime found no header block");
		goto out;
	}
	if (head != NULL && (rc = tell_head(msg != NULL ? GMIME_OBJECT(msg) : top, head, ctx, err)) != DC_OK)
		goto out;
	if (max_leaves != UINT64_MAX && (leaves = count_leaves(top, 0, max_leaves)) > max_leaves) {
		rc = dc_err_set(err, DC_EINPUT_LIMIT, "message has more than %llu parts",
			(unsigned long long)max_leaves);
		goto out;
	}
	rc = walk_body(&mw, top, "", 0);
out:
	if (top != NULL)
		g_object_unref(top);
	if (msg != NULL)
		g_object_unref(msg);
	if (parser != NULL)
		g_object_unref(parser);
	if (stream != NULL)
		g_object_unref(stream);
	return rc;
}

size_t
dc_mime_libversions(dc_libversion *v, size_t max)
{
	if (max < 1)
		return 0;
	v[0].name = "GMime";
	snprintf(v[0].version, sizeof(v[0].version), "%u.%u.%u", gmime_major_version, gmime_minor_version,
		gmime_micro_version);
	return 1;
}

/*
 * dc_xml_input.c - the input stage of the DMARC XML reader: the bytes of a
 * dc_read_fn stream, repaired where a sender plainly meant something else,
 * handed to libxml2 through its input callback (see dc_xml_input.h).
 *
 * Deliberately not here: anything libxml2 parses (elements, records,
 * errors of the document: dc_xml.c), and any decoding beyond checking that
 * UTF-8 is well-formed (dc_utf8_seq, the one validator).  The repairs are
 * counted in dc_xml_input; dc_xml.c turns the counts into report notes.
 */
#include "dc_xml_input.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "dc_utf8.h"

#define XSD_NS "http://www.w3.org/2001/XMLSchema"

/* ------------------------------------------------------------------------
 * Read filter: dc_read_fn -> libxml2 input callback.  Three jobs, all on the
 * byte stream before libxml2 sees it:
 *  - the prefix: a UTF-8 BOM and whitespace before the XML declaration, and
 *    an <xs:schema ...> start tag wrapped around <feedback>, are removed;
 *  - UTF-8 documents (declared or undeclared) get invalid byte sequences
 *    replaced with U+FFFD, so one bad byte in a header_from does not lose a
 *    report;
 *  - a small lexer finds the end tag that closes the root <feedback> and ends
 *    the stream there: what follows is drained and noted, never parsed
 *    (libxml2's reader would otherwise fail before handing us </feedback>).
 * The lexer relies on '<' always starting markup outside comments, CDATA
 * and processing instructions; it stops (LX_PASS) at a DOCTYPE or for
 * UTF-16/32 input.
 * ---------------------------------------------------------------------- */

#define PREFIX_SNIFF 4096 /* bytes looked at for the declaration and root tag */

/* Reads more bytes from rd into raw, keeping raw[pos..len); returns false on
 * error (in->failed set).  Sets eof when rd has no more. */
static bool
input_fill(dc_xml_input *in)
{
	size_t got = 0;

	if (in->eof)
		return true;
	if (in->pos > 0) {
		memmove(in->raw, in->raw + in->pos, in->len - in->pos);
		in->len -= in->pos;
		in->scan = in->scan > in->pos ? in->scan - in->pos : 0;
		in->limit = in->limit > in->pos ? in->limit - in->pos : 0;
		in->pos = 0;
	}
	if (in->len == DC_XML_RAW_BYTES)
		return true;
	if (in->rd(in->rctx, in->raw + in->len, DC_XML_RAW_BYTES - in->len, &got, &in->rerr) != DC_OK) {
		in->failed = true;
		if (in->rerr.code == DC_OK)
			dc_err_set(&in->rerr, DC_EIO, "read failed");
		return false;
	}
	if (got == 0)
		in->eof = true;
	in->len += got;
	return true;
}

/* Position of needle in raw[from..len), or len. */
static size_t
raw_find(const dc_xml_input *in, size_t from, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = from; i + n <= in->len; i++)
		if (memcmp(in->raw + i, needle, n) == 0)
			return i;
	return in->len;
}

/* The encoding named in the XML declaration at raw[q..decl_end): decides
 * whether the UTF-8 filter applies (UTF-8, ASCII or no encoding given). */
static bool
decl_is_utf8(const dc_xml_input *in, size_t q, size_t decl_end)
{
	size_t e = raw_find(in, q, "encoding");
	char name[32];
	size_t n = 0;
	uint8_t quote;

	if (e >= decl_end)
		return true;
	for (e += 8; e < decl_end && (dc_xml_is_space(in->raw[e]) || in->raw[e] == '='); e++)
		;
	if (e >= decl_end || (in->raw[e] != '"' && in->raw[e] != '\''))
		return true;
	quote = in->raw[e++];
	while (e < decl_end && in->raw[e] != quote && n < sizeof(name) - 1)
		name[n++] = (char)in->raw[e++];
	name[n] = '\0';
	return strcasecmp(name, "utf-8") == 0 || strcasecmp(name, "utf8") == 0 ||
		strcasecmp(name, "us-ascii") == 0 || strcasecmp(name, "ascii") == 0;
}

/* Removes a root <xs:schema ...> start tag (XML Schema namespace) found at
 * raw[q] after the prolog, so that the <feedback> inside becomes the root. */
static void
strip_schema_wrapper(dc_xml_input *in, size_t q)
{
	size_t i = q, name_end, end;
	uint8_t quote = 0;

	for (;;) { /* skip whitespace, comments and PIs of the prolog */
		while (i < in->len && dc_xml_is_space(in->raw[i]))
			i++;
		if (in->len - i >= 4 && memcmp(in->raw + i, "<!--", 4) == 0)
			i = raw_find(in, i + 4, "-->") + 3;
		else if (in->len - i >= 2 && memcmp(in->raw + i, "<?", 2) == 0)
			i = raw_find(in, i + 2, "?>") + 2;
		else
			break;
		if (i > in->len)
			return;
	}
	if (i >= in->len || in->raw[i] != '<')
		return;
	for (name_end = i + 1; name_end < in->len && !dc_xml_is_space(in->raw[name_end]) &&
		in->raw[name_end] != '>' && in->raw[name_end] != '/';
		name_end++)
		;
	{
		size_t local = name_end;
		while (local > i + 1 && in->raw[local - 1] != ':')
			local--;
		if (name_end - local != 6 || memcmp(in->raw + local, "schema", 6) != 0)
			return;
	}
	for (end = name_end; end < in->len; end++) {
		uint8_t c = in->raw[end];
		if (quote) {
			if (c == quote)
				quote = 0;
		} else if (c == '"' || c == '\'')
			quote = c;
		else if (c == '>')
			break;
	}
	if (end >= in->len || in->raw[end - 1] == '/')
		return;
	end++;
	{
		bool xsd = false;
		for (size_t k = i; k + sizeof(XSD_NS) - 1 <= end; k++)
			if (memcmp(in->raw + k, XSD_NS, sizeof(XSD_NS) - 1) == 0)
				xsd = true;
		if (!xsd)
			return;
	}
	memmove(in->raw + i, in->raw + end, in->len - end);
	in->len -= end - i;
	in->wrapper_removed = true;
}

/* Looks at the first bytes: strips a UTF-8 BOM and leading whitespace,
 * decides whether the UTF-8 filter and the lexer apply (not for UTF-16/32)
 * and removes a schema wrapper.  Returns false on read error. */
static bool
input_start(dc_xml_input *in)
{
	size_t p = 0, q;

	in->started = true;
	while (!in->eof && in->len < PREFIX_SNIFF)
		if (!input_fill(in))
			return false;
	if (in->len >= 2 &&
		((in->raw[0] == 0xFE && in->raw[1] == 0xFF) || (in->raw[0] == 0xFF && in->raw[1] == 0xFE) ||
			in->raw[0] == 0 || in->raw[1] == 0)) {
		in->lx = LX_PASS; /* UTF-16/32: libxml2 detects it, we leave it alone */
		return true;
	}
	if (in->len >= 3 && in->raw[0] == 0xEF && in->raw[1] == 0xBB && in->raw[2] == 0xBF)
		p = 3;
	for (q = p; q < in->len && dc_xml_is_space(in->raw[q]); q++)
		;
	in->pos = q;
	in->utf8_filter = true;
	if (in->len - q >= 5 && memcmp(in->raw + q, "<?xml", 5) == 0) {
		size_t decl_end = raw_find(in, q, "?>");
		if (q > p)
			in->lead_stripped = true;
		if (decl_end == in->len) {
			in->utf8_filter = false; /* no declaration end in sight: leave it to libxml2 */
			in->lx = LX_PASS;
			return true;
		}
		in->utf8_filter = decl_is_utf8(in, q, decl_end);
		q = decl_end + 2;
	}
	strip_schema_wrapper(in, q);
	in->scan = in->pos;
	return true;
}

/* Bytes copied as they are in a UTF-8 document: printable ASCII but '&',
 * and the three whitespace controls. */
static const bool plain_byte[256] = {
	['\t'] = true,
	['\n'] = true,
	['\r'] = true,
	[0x20 ... 0x25] = true,
	[0x27 ... 0x7F] = true,
};

/* Is s[0..n) (s[0] == '&') a reference libxml2 accepts without a DTD: one of
 * the five predefined entities or a character reference?  Returns 1 yes, 0
 * no (a bare '&', e.g. "AT&T"), -1 cannot tell yet (need more bytes). */
static int
ref_check(const uint8_t *s, size_t n, bool eof)
{
	static const char *const predefined[] = { "amp;", "lt;", "gt;", "quot;", "apos;" };
	size_t i = 1;

	if (n > 12)
		n = 12;
	if (i < n && s[i] == '#') {
		bool hex = i + 1 < n && s[i + 1] == 'x';
		size_t d0 = i = i + 1 + hex;
		while (i < n && (hex ? isxdigit(s[i]) : isdigit(s[i])))
			i++;
		if (i < n)
			return (s[i] == ';' && i > d0) ? 1 : 0;
		return (eof || n == 12) ? 0 : -1;
	}
	for (size_t k = 0; k < sizeof(predefined) / sizeof(predefined[0]); k++) {
		size_t l = strlen(predefined[k]);
		size_t m = n - 1 < l ? n - 1 : l;
		if (memcmp(s + 1, predefined[k], m) == 0)
			return m == l ? 1 : (eof ? 0 : -1);
	}
	return 0;
}

static bool
lx_local_is_feedback(const dc_xml_input *in)
{
	const char *colon = memchr(in->lx_name, ':', in->lx_name_len);
	const char *local = colon ? colon + 1 : in->lx_name;
	size_t n = in->lx_name_len - (size_t)(local - in->lx_name);

	return n == 8 && memcmp(local, "feedback", 8) == 0;
}

/* Runs the lexer over b[0..n); returns how many bytes belong to the
 * document: n, or fewer once the root's end tag (or a DOCTYPE) was seen.
 * It looks at raw bytes: the repairs of input_copy never add or remove the
 * ASCII characters it cares about. */
static size_t
lexer_scan(dc_xml_input *in, const uint8_t *b, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = b[i];

		switch (in->lx) {
		case LX_PASS: return n;
		case LX_CUT: return i;
		case LX_TEXT: /* text runs are short: a plain loop beats memchr */
			while (i < n && b[i] != '<')
				i++;
			if (i == n)
				return n;
			i++;
			in->lx = LX_LT;
			continue;
		case LX_LT:
			if (c == '!') {
				in->lx = LX_BANG;
				in->lx_count = 0;
			} else if (c == '?') {
				in->lx = LX_PI;
				in->lx_count = 0;
			} else if (c == '/') {
				in->lx = LX_ETAG;
				in->lx_name_len = 0;
			} else {
				in->lx = LX_STAG;
				in->lx_name_len = 0;
				continue; /* c is the name's first character */
			}
			break;
		case LX_BANG: { /* "--" starts a comment, "[CDATA[" a CDATA section */
			static const char cdata[] = "[CDATA[";
			if (in->lx_count == 0 && c == '-')
				in->lx_count = -1;
			else if (in->lx_count == -1 && c == '-') {
				in->lx = LX_COMMENT;
				in->lx_count = 0;
			} else if (in->lx_count >= 0 && in->lx_count < 7 &&
				c == (uint8_t)cdata[in->lx_count]) {
				if (++in->lx_count == 7) {
					in->lx = LX_CDATA;
					in->lx_count = 0;
				}
			} else if (in->lx_count == 0 && c == 'D') {
				in->doctype = true; /* libxml2 never sees a DTD */
				in->lx = LX_CUT;
				return i;
			} else
				in->lx = LX_PASS; /* not well-formed: libxml2 says why */
			break;
		}
		case LX_COMMENT: /* ends at "-->" */
		case LX_CDATA:   /* ends at "]]>" */
			if (c == (in->lx == LX_COMMENT ? '-' : ']'))
				in->lx_count++;
			else if (c == '>' && in->lx_count >= 2)
				in->lx = LX_TEXT;
			else
				in->lx_count = 0;
			break;
		case LX_PI:
			if (c == '>' && in->lx_count)
				in->lx = LX_TEXT;
			in->lx_count = c == '?';
			break;
		case LX_STAG:
		case LX_ETAG:
			while (i < n && !dc_xml_is_space(b[i]) && b[i] != '/' && b[i] != '>') {
				if (in->lx_name_len < DC_MAX_XML_NAME)
					in->lx_name[in->lx_name_len++] = (char)b[i];
				i++;
			}
			if (i == n)
				return n;
			c = b[i];
			in->lx_fb = lx_local_is_feedback(in);
			if (!in->lx_fb) {
				/* '<' cannot occur inside a tag, so the next '<' starts the
				 * next markup: no need to find this tag's '>' */
				in->lx = LX_TEXT;
			} else if (in->lx == LX_ETAG) {
				in->lx = LX_ETAG_TAIL;
				continue; /* look at c again */
			} else if (c == '>') {
				in->lx_depth++;
				in->lx = LX_TEXT;
			} else {
				in->lx = LX_STAG_ATTR;
				in->lx_quote = 0;
				in->lx_last = c;
			}
			break;
		case LX_STAG_ATTR: /* a <feedback ...> start tag: is it <feedback/>? */
			if (in->lx_quote) {
				if (c == in->lx_quote)
					in->lx_quote = 0;
			} else if (c == '"' || c == '\'')
				in->lx_quote = c;
			else if (c == '>') {
				if (in->lx_last != '/')
					in->lx_depth++;
				in->lx = LX_TEXT;
			}
			if (!dc_xml_is_space(c))
				in->lx_last = c;
			break;
		case LX_ETAG_TAIL:
			if (c == '>') {
				in->lx = LX_TEXT;
				if (in->lx_fb && --in->lx_depth <= 0) {
					in->lx = LX_CUT;
					return i + 1;
				}
			}
			break;
		default: return n;
		}
		i++;
	}
	return n;
}

/* Copies bytes from raw into out[0..room), up to the lexer's cut; for UTF-8
 * documents repairs bare '&', control characters and invalid sequences on
 * the way.  Returns the count (0 at the end), or -1 on read error. */
static int
input_copy(dc_xml_input *in, uint8_t *out, size_t room)
{
	size_t o = 0;

	while (o < room) {
		size_t end;
		bool final;

		if (in->lx != LX_CUT && in->scan < in->len) {
			in->scan += lexer_scan(in, in->raw + in->scan, in->len - in->scan);
			if (in->lx == LX_CUT)
				in->limit = in->scan;
		}
		end = in->lx == LX_CUT ? in->limit : in->len;
		final = in->lx == LX_CUT || in->eof;
		if (in->pos >= end) {
			if (final || o > 0)
				break;
			if (!input_fill(in))
				return -1;
			continue;
		}
		if (!in->utf8_filter) {
			size_t n = end - in->pos;
			if (n > room - o)
				n = room - o;
			memcpy(out + o, in->raw + in->pos, n);
			o += n;
			in->pos += n;
			continue;
		}
		{ /* fast path: a run of plain ASCII */
			const uint8_t *s = in->raw + in->pos;
			size_t n = end - in->pos, k = 0;
			if (n > room - o)
				n = room - o;
			while (k < n && plain_byte[s[k]])
				k++;
			if (k > 0) {
				memcpy(out + o, s, k);
				o += k;
				in->pos += k;
				continue;
			}
			if (s[0] == '&') {
				int r = ref_check(s, end - in->pos, final);
				if (r < 0) {
					if (o > 0)
						break;
					if (!input_fill(in))
						return -1;
					continue;
				}
				if (r > 0) {
					out[o++] = '&';
					in->pos++;
					continue;
				}
				if (room - o < 5)
					break;
				memcpy(out + o, "&amp;", 5);
				o += 5;
				in->pos++;
				in->n_amp++;
				continue;
			}
			if (s[0] < 0x20) {
				if (room - o < 3)
					break;
				memcpy(out + o, "\xEF\xBF\xBD", 3);
				o += 3;
				in->pos++;
				in->n_ctrl++;
				continue;
			}
		}
		{
			int l = dc_utf8_seq(in->raw + in->pos, end - in->pos, NULL);
			if (l < 0 && !final) {
				if (o > 0)
					break; /* hand over what we have; the tail waits for more bytes */
				if (!input_fill(in))
					return -1;
				continue;
			}
			if (l > 0) {
				if ((size_t)l > room - o)
					break;
				memcpy(out + o, in->raw + in->pos, (size_t)l);
				o += (size_t)l;
				in->pos += (size_t)l;
				continue;
			}
			/* invalid (or cut off by the end): one U+FFFD per bad sequence */
			if (room - o < 3)
				break;
			out[o++] = 0xEF;
			out[o++] = 0xBF;
			out[o++] = 0xBD;
			in->pos++;
			while (in->pos < end && in->raw[in->pos] >= 0x80 && in->raw[in->pos] <= 0xBF)
				in->pos++; /* stray continuation bytes belong to the same bad sequence */
			in->n_bad_utf8++;
		}
	}
	return (int)o;
}

void
dc_xml_input_init(dc_xml_input *in, dc_read_fn rd, void *rctx)
{
	memset(in, 0, offsetof(dc_xml_input, raw));
	in->rd = rd;
	in->rctx = rctx;
}

int
dc_xml_input_read(void *ctx, char *buf, int cap)
{
	dc_xml_input *in = ctx;

	if (in->failed)
		return -1;
	if (!in->started && !input_start(in))
		return -1;
	if (cap <= 0)
		return 0;
	return input_copy(in, (uint8_t *)buf, (size_t)cap);
}

bool
dc_xml_input_drain(dc_xml_input *in)
{
	enum { T_OUT, T_LT, T_BANG, T_BANG_DASH, T_COMMENT, T_PI } t = T_OUT;
	static const char tag[] = "<feedback"; /* '<' also matches ':' (a prefix) */
	int count = 0;
	size_t from, match = 0;

	if (in->lx != LX_CUT)
		return true;
	from = in->limit > in->pos ? in->limit : in->pos;
	for (;;) {
		for (size_t i = from; i < in->len && !in->second_report; i++) {
			uint8_t c = in->raw[i];
			if (c == (uint8_t)tag[match] || (match == 0 && c == ':'))
				match++;
			else
				match = (c == '<' || c == ':') ? 1 : 0;
			if (match == sizeof(tag) - 1)
				in->second_report = true;
			if (in->trailing)
				continue;
			switch (t) {
			case T_OUT:
				if (c == '<')
					t = T_LT;
				else if (!dc_xml_is_space(c))
					in->trailing = true;
				break;
			case T_LT:
				t = c == '!' ? T_BANG : c == '?' ? T_PI : T_OUT;
				in->trailing = t == T_OUT;
				count = 0;
				break;
			case T_BANG:
			case T_BANG_DASH:
				if (c != '-')
					in->trailing = true;
				t = t == T_BANG ? T_BANG_DASH : T_COMMENT;
				break;
			case T_COMMENT:
				if (c == '>' && count >= 2)
					t = T_OUT;
				count = c == '-' ? count + 1 : 0;
				break;
			case T_PI:
				if (c == '>' && count)
					t = T_OUT;
				count = c == '?';
				break;
			}
		}
		in->pos = in->scan = in->limit = in->len;
		if (in->eof) {
			if (t != T_OUT)
				in->trailing = true;
			return true;
		}
		if (!input_fill(in))
			return false;
		from = 0;
	}
}

/*
 * dc_arf.c - DMARC failure reports (RFC 5965 ARF, RFC 6591, RFC 9991) found
 * in a message with GMime 3.
 *
 * The message is parsed whole (dc_extract calls this only for a message that
 * names "feedback-report", so aggregate report e-mails never pay for a second
 * parse).  The walk visits multipart children and message/rfc822 bodies like
 * dc_mime's; a multipart that is a failure report (multipart/report with
 * report-type=feedback-report, or any multipart with a
 * message/feedback-report child) is read as one and not walked further.
 *
 * The feedback part is a block of header fields (RFC 5965 3.1): read here
 * line by line (folds undone), since its content type is not one GMime
 * parses into headers.  The reported message is a message/rfc822 part (GMime
 * parses it: its header block is written back as GMime keeps it, i.e. as
 * received, and its body as sent, transfer encoding and all) or a
 * text/rfc822-headers part (RFC 6522 3.1: headers only).
 *
 * Not here: whether an original shows server-generated mail (the SQL view),
 * UTF-8 checks (the store), storage.
 */
#include "dc_arf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "dc_limits.h"
#include "dc_mime.h"

#define SECTION_MAX (DC_MAX_MIME_DEPTH * 8 + 8)

bool
dc_arf_maybe(const uint8_t *data, size_t len)
{
	static const char needle[] = "feedback-report"; /* "-" at offset 8 */
	const uint8_t *p = data, *end = data + len;

	/* memchr to each '-', then the bytes around it */
	for (; p < end && (p = memchr(p, '-', (size_t)(end - p))) != NULL; p++)
		if (p - data >= 8 && end - p >= 7 && strncasecmp((const char *)p - 8, needle, 15) == 0)
			return true;
	return false;
}

/* ---- header blocks */

typedef struct field {
	char *name;
	char *value;
} field;

/* One header block, parsed: the fields in order (names as sent). */
typedef struct block {
	field *f;
	size_t n, cap;
	unsigned skipped; /* lines that were no field, fields past DC_ARF_MAX_FIELDS */
} block;

static void
block_free(block *b)
{
	for (size_t i = 0; i < b->n; i++) {
		g_free(b->f[i].name);
		g_free(b->f[i].value);
	}
	g_free(b->f);
	memset(b, 0, sizeof(*b));
}

/* s[0..n) with white space at both ends removed, as a new string. */
static char *
trimmed(const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	return g_strndup(s, n);
}

/*
 * Reads the header fields of p[0..n) up to the first empty line into b:
 * "Name: value" lines, a line starting with white space continuing the one
 * before (the line break is dropped, RFC 5322 2.2.3).  Lines that are no
 * field are skipped and counted.
 */
static void
block_parse(block *b, const char *p, size_t n)
{
	GString *val = NULL;
	char *name = NULL;
	size_t pos = 0;

	memset(b, 0, sizeof(*b));
	for (;;) {
		const char *eol = pos < n ? memchr(p + pos, '\n', n - pos) : NULL;
		size_t len = pos >= n ? 0 : eol ? (size_t)(eol - (p + pos)) : n - pos;
		const char *line = p + pos;
		bool fold = pos < n && len > 0 && (line[0] == ' ' || line[0] == '\t');
		bool blank = pos >= n || len == 0 || (len == 1 && line[0] == '\r');

		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (fold && name != NULL) {
			g_string_append_len(val, line, (gssize)len);
		} else {
			if (name != NULL) {
				if (b->n < DC_ARF_MAX_FIELDS) {
					if (b->n == b->cap) {
						b->cap = b->cap ? b->cap * 2 : 16;
						b->f = g_renew(field, b->f, b->cap);
					}
					b->f[b->n].name = name;
					b->f[b->n].value = trimmed(val->str, val->len);
					b->n++;
				} else {
					b->skipped++;
					g_free(name);
				}
				name = NULL;
				g_string_free(val, TRUE);
				val = NULL;
			}
			if (blank)
				break;
			if (!fold) {
				const char *colon = memchr(line, ':', len);
				size_t k = 0;

				while (colon != NULL && k < (size_t)(colon - line) && line[k] > ' ' &&
					line[k] < 127)
					k++;
				if (colon != NULL && k > 0 && k == (size_t)(colon - line)) {
					name = g_strndup(line, k);
					val = g_string_new_len(colon + 1, (gssize)(len - k - 1));
				} else {
					b->skipped++;
				}
			} else {
				b->skipped++;
			}
		}
		/* after the last line, once more as if at an empty line: the
		 * field in hand is kept (a part's body ends without a line break
		 * before the next boundary, RFC 2046 5.1.1) */
		pos = eol != NULL ? pos + (size_t)(eol - (p + pos)) + 1 : n;
	}
}

/* The value of the first field called name, or NULL. */
static const char *
block_get(const block *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcasecmp(b->f[i].name, name) == 0)
			return b->f[i].value;
	return NULL;
}

char *
dc_arf_header(const char *hdr, const char *name)
{
	block b;
	const char *v;
	char *out = NULL;

	if (hdr == NULL)
		return NULL;
	block_parse(&b, hdr, strlen(hdr));
	if ((v = block_get(&b, name)) != NULL)
		out = g_strdup(v);
	block_free(&b);
	return out;
}

/* ---- one report */

typedef struct awalk {
	bool keep_body;
	dc_arf_fn fn;
	dc_arf_bad_fn bad;
	void *ctx;
	unsigned found;
	dc_err *err;
} awalk;

/* What one report owns while its callback runs. */
typedef struct areport {
	dc_arf_report r;
	block fb;
	GPtrArray *owned; /* strings and byte arrays to free */
	GString *notes;
	GString *types;
	const char **rcpt;
} areport;

static void note(areport *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(areport *a, const char *fmt, ...)
{
	va_list ap;

	if (a->notes->len > 0)
		g_string_append(a->notes, "; ");
	va_start(ap, fmt);
	g_string_append_vprintf(a->notes, fmt, ap);
	va_end(ap);
}

static char *
own(areport *a, char *s)
{
	if (s != NULL)
		g_ptr_array_add(a->owned, s);
	return s;
}

/* The content type of obj as "type/subtype", lower-case (g_free). */
static char *
mime_type(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *t = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;

	if (t == NULL)
		return g_strdup("text/plain");
	for (char *c = t; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return t;
}

/* A leaf's content after transfer decoding, as a new NUL-terminated string
 * (g_free); *n its length. */
static char *
part_text(GMimePart *part, size_t *n)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeStream *s = g_mime_stream_mem_new();
	GByteArray *ba;
	char *out;

	if (dw != NULL && g_mime_data_wrapper_write_to_stream(dw, s) < 0)
		g_mime_stream_reset(s);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
	*n = ba != NULL ? ba->len : 0;
	out = g_malloc(*n + 1);
	if (*n > 0)
		memcpy(out, ba->data, *n);
	out[*n] = '\0';
	g_object_unref(s);
	return out;
}

/* Keeps a value of the feedback part, lower-cased when lower. */
static const char *
fb(areport *a, const char *name, bool lower)
{
	const char *v = block_get(&a->fb, name);
	char *c;

	if (v == NULL || !lower)
		return v;
	c = own(a, g_ascii_strdown(v, -1));
	return c;
}

/* Source-IP: the address alone ("192.0.2.1 (name)", "[2001:db8::1]",
 * "IPv6:2001:db8::1" all give the address), NULL and a note when it is
 * none. */
static const char *
source_ip(areport *a)
{
	const char *v = block_get(&a->fb, "Source-IP");
	unsigned char buf[sizeof(struct in6_addr)];
	size_t k = 0;
	char *ip;

	if (v == NULL)
		return NULL;
	if (*v == '[')
		v++;
	if (strncasecmp(v, "IPv6:", 5) == 0)
		v += 5;
	while (v[k] != '\0' && v[k] != ' ' && v[k] != '\t' && v[k] != ']' && v[k] != '(' && v[k] != ';')
		k++;
	ip = own(a, g_strndup(v, k));
	if (inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1)
		return ip;
	note(a, "Source-IP is no IP address");
	return NULL;
}

/* The reported message of a message/rfc822 part. */
static void
original_message(awalk *w, areport *a, GMimeMessagePart *mp)
{
	GMimeMessage *msg = g_mime_message_part_get_message(mp);
	GMimeObject *body;

	if (msg == NULL)
		return;
	a->r.headers = own(a, g_mime_object_get_headers(GMIME_OBJECT(msg), NULL));
	body = g_mime_message_get_mime_part(msg);
	if (body != NULL) {
		GMimeStream *s = g_mime_stream_mem_new();
		GByteArray *ba;

		if (g_mime_object_write_content_to_stream(body, NULL, s) < 0)
			g_mime_stream_reset(s);
		ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
		a->r.body_present = ba != NULL && ba->len > 0;
		if (w->keep_body && a->r.body_present) {
			char *copy = own(a, g_malloc(ba->len + 1));

			memcpy(copy, ba->data, ba->len);
			copy[ba->len] = '\0';
			a->r.body = (const uint8_t *)copy;
			a->r.body_len = ba->len;
		}
		g_object_unref(s);
	}
}

/* The fields of the original's header block that dc_arf_report names. */
static void
original_fields(areport *a)
{
	block h;
	const char *v;

	block_parse(&h, a->r.headers, strlen(a->r.headers));
	if ((v = block_get(&h, "Return-Path")) != NULL)
		a->r.orig_return_path = own(a, g_strdup(v));
	if ((v = block_get(&h, "Auto-Submitted")) != NULL)
		a->r.orig_auto_submitted = own(a, g_strdup(v));
	if ((v = block_get(&h, "Content-Type")) != NULL)
		a->r.orig_content_type = own(a, g_strdup(v));
	if ((v = block_get(&h, "Message-ID")) != NULL)
		a->r.orig_message_id = own(a, g_strdup(v));
	if ((v = block_get(&h, "From")) != NULL)
		a->r.orig_from = own(a, g_mime_utils_header_decode_text(NULL, v));
	if ((v = block_get(&h, "Subject")) != NULL)
		a->r.orig_subject = own(a, g_mime_utils_header_decode_text(NULL, v));
	block_free(&h);
}

static bool
is_headers_type(const char *t)
{
	return strcmp(t, "text/rfc822-headers") == 0 || strcmp(t, "message/rfc822-headers") == 0 ||
		strcmp(t, "message/global-headers") == 0 || strcmp(t, "text/rfc822-header") == 0;
}

/* Reads the report mp (section names it) and hands it to fn, or why it is
 * none to bad. */
static dc_code
one_report(awalk *w, GMimeMultipart *mp, const char *section)
{
	areport a;
	int n = g_mime_multipart_get_count(mp);
	bool have_fb = false, have_orig = false;
	char *fbtext = NULL;
	dc_err why;
	dc_code rc = DC_OK;

	memset(&a, 0, sizeof(a));
	a.owned = g_ptr_array_new_with_free_func(g_free);
	a.notes = g_string_new(NULL);
	a.types = g_string_new(NULL);
	w->found++;
	for (int i = 0; i < n; i++) {
		GMimeObject *part = g_mime_multipart_get_part(mp, i);
		char *t = mime_type(part);

		g_string_append_printf(a.types, "%s%s", i ? ", " : "", t);
		if (strcmp(t, "message/feedback-report") == 0) {
			if (have_fb) {
				note(&a, "a second message/feedback-report part ignored");
			} else if (GMIME_IS_PART(part)) {
				size_t len;

				fbtext = part_text(GMIME_PART(part), &len);
				block_parse(&a.fb, fbtext, len);
				have_fb = true;
			} else if (GMIME_IS_MESSAGE_PART(part)) {
				GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(part));

				fbtext = m != NULL ? g_mime_object_get_headers(GMIME_OBJECT(m), NULL) :
						     g_strdup("");
				block_parse(&a.fb, fbtext, strlen(fbtext));
				have_fb = true;
			}
		} else if (!have_orig && GMIME_IS_MESSAGE_PART(part)) {
			original_message(w, &a, GMIME_MESSAGE_PART(part));
			have_orig = a.r.headers != NULL;
		} else if (!have_orig && GMIME_IS_PART(part) && is_headers_type(t)) {
			size_t len;

			a.r.headers = own(&a, part_text(GMIME_PART(part), &len));
			have_orig = true;
		}
		g_free(t);
	}
	if (!have_fb) {
		dc_err_set(&why, DC_ESCHEMA, "failure report (%s) without a message/feedback-report part",
			a.types->str);
		rc = w->bad != NULL ? w->bad(w->ctx, &why, section, w->err) : DC_OK;
		goto out;
	}
	if (block_get(&a.fb, "Feedback-Type") == NULL) {
		dc_err_set(&why, DC_ESCHEMA,
			"failure report: its message/feedback-report part has no Feedback-Type field (%zu fields, "
			"%u lines that are none)",
			a.fb.n, a.fb.skipped);
		rc = w->bad != NULL ? w->bad(w->ctx, &why, section, w->err) : DC_OK;
		goto out;
	}
	if (a.fb.skipped > 0)
		note(&a, "%u line(s) of the feedback part were no field", a.fb.skipped);
	if (!have_orig)
		note(&a, "no reported message (message/rfc822 or text/rfc822-headers) part");
	a.r.feedback_type = fb(&a, "Feedback-Type", true);
	a.r.version = fb(&a, "Version", false);
	a.r.user_agent = fb(&a, "User-Agent", false);
	a.r.arrival_date = fb(&a, "Arrival-Date", false);
	if (a.r.arrival_date == NULL)
		a.r.arrival_date = fb(&a, "Received-Date", false); /* RFC 5965 3.3: an older name */
	a.r.source_ip = source_ip(&a);
	a.r.reported_domain = fb(&a, "Reported-Domain", false);
	a.r.original_mail_from = fb(&a, "Original-Mail-From", false);
	a.r.original_envelope_id = fb(&a, "Original-Envelope-Id", false);
	a.r.reporting_mta = fb(&a, "Reporting-MTA", false);
	a.r.authentication_results = fb(&a, "Authentication-Results", false);
	a.r.auth_failure = fb(&a, "Auth-Failure", true);
	a.r.delivery_result = fb(&a, "Delivery-Result", true);
	a.r.dkim_domain = fb(&a, "DKIM-Domain", false);
	a.r.dkim_identity = fb(&a, "DKIM-Identity", false);
	a.r.dkim_selector = fb(&a, "DKIM-Selector", false);
	a.r.dkim_canonicalized_header = fb(&a, "DKIM-Canonicalized-Header", false);
	a.r.dkim_canonicalized_body = fb(&a, "DKIM-Canonicalized-Body", false);
	a.r.spf_dns = fb(&a, "SPF-DNS", false);
	a.r.identity_alignment = fb(&a, "Identity-Alignment", true);
	a.r.arrival_time = INT64_MIN;
	if (a.r.arrival_date != NULL) {
		GDateTime *dt = g_mime_utils_header_decode_date(a.r.arrival_date);

		if (dt != NULL) {
			a.r.arrival_time = g_date_time_to_unix(dt);
			g_date_time_unref(dt);
		} else {
			note(&a, "Arrival-Date is no date");
		}
	}
	if (a.r.headers != NULL)
		original_fields(&a);
	a.rcpt = g_new0(const char *, DC_ARF_MAX_RCPT + 1);
	for (size_t i = 0, dropped = 0; i < a.fb.n; i++) {
		if (strcasecmp(a.fb.f[i].name, "Original-Rcpt-To") != 0)
			continue;
		if (a.r.n_original_rcpt_to < DC_ARF_MAX_RCPT)
			a.rcpt[a.r.n_original_rcpt_to++] = a.fb.f[i].value;
		else if (++dropped == 1)
			note(&a, "more than %d Original-Rcpt-To fields: the first %d kept", DC_ARF_MAX_RCPT,
				DC_ARF_MAX_RCPT);
	}
	a.r.original_rcpt_to = a.rcpt;
	a.r.part_types = a.types->str;
	a.r.notes = a.notes->len > 0 ? a.notes->str : NULL;
	rc = w->fn != NULL ? w->fn(w->ctx, &a.r, section, w->err) : DC_OK;
out:
	g_free(a.rcpt);
	block_free(&a.fb);
	g_free(fbtext);
	g_ptr_array_free(a.owned, TRUE);
	g_string_free(a.notes, TRUE);
	g_string_free(a.types, TRUE);
	return rc;
}

/* ---- the walk */

/* True when the multipart mp is a failure report. */
static bool
is_report(GMimeMultipart *mp)
{
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(mp));
	const char *rt = ct != NULL ? g_mime_content_type_get_parameter(ct, "report-type") : NULL;
	int n = g_mime_multipart_get_count(mp);

	if (ct != NULL && g_mime_content_type_is_type(ct, "multipart", "report") && rt != NULL &&
		g_ascii_strcasecmp(rt, "feedback-report") == 0)
		return true;
	for (int i = 0; i < n; i++) {
		GMimeContentType *c = g_mime_object_get_content_type(g_mime_multipart_get_part(mp, i));

		if (c != NULL && g_mime_content_type_is_type(c, "message", "feedback-report"))
			return true;
	}
	return false;
}

static bool
join(char *out, const char *prefix, int n)
{
	int k = *prefix ? snprintf(out, SECTION_MAX, "%s.%d", prefix, n) :
			  snprintf(out, SECTION_MAX, "%d", n);

	return k >= 0 && k < SECTION_MAX;
}

static dc_code
walk(awalk *w, GMimeObject *obj, const char *section, int depth)
{
	char sec[SECTION_MAX];
	dc_code rc = DC_OK;

	if (obj == NULL || depth > DC_MAX_MIME_DEPTH)
		return DC_OK;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);

		if (is_report(mp))
			return one_report(w, mp, section);
		for (int i = 0; i < n && rc == DC_OK; i++)
			if (join(sec, section, i + 1))
				rc = walk(w, g_mime_multipart_get_part(mp, i), sec, depth + 1);
		return rc;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		return inner != NULL ? walk(w, g_mime_message_get_mime_part(inner), section, depth + 1) :
				       DC_OK;
	}
	return DC_OK;
}

dc_code
dc_arf_walk(const uint8_t *data, size_t len, bool keep_body, dc_arf_fn fn, dc_arf_bad_fn bad, void *ctx,
	unsigned *found, dc_err *err)
{
	awalk w = { keep_body, fn, bad, ctx, 0, err };
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *msg = NULL;
	size_t i = 0;
	dc_code rc = DC_OK;

	dc_mime_init();
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
		i++;
	stream = g_mime_stream_mem_new_with_buffer((const char *)data + i, len - i);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, NULL);
	if (msg == NULL) {
		rc = dc_err_set(err, DC_EMIME, "not a MIME message: GMime found no header block");
		goto out;
	}
	rc = walk(&w, g_mime_message_get_mime_part(msg), "", 0);
out:
	if (found != NULL)
		*found = w.found;
	if (msg != NULL)
		g_object_unref(msg);
	g_object_unref(parser);
	g_object_unref(stream);
	return rc;
}

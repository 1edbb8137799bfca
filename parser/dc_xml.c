/*
 * dc_xml.c - one DMARC aggregate report read with libxml2's streaming
 * xmlReader from a pull stream and handed to a dc_sink record by record.
 *
 * Follows RFC 7489 appendix C and RFC 9990 (namespace
 * urn:ietf:params:xml:ns:dmarc-2.0); elements are matched by local name, so
 * no namespace, the RFC 9990 one, the old http://dmarc.org/dmarc-xml/0.2 or
 * any other is accepted.  Elements are dispatched through one declarative
 * table keyed by their parent (elems[] below); unknown elements (RFC 9990
 * <extensions>, vendor additions) are skipped with their subtree.
 *
 * Memory does not grow with the number of records: a record's strings live
 * in an arena (a dc_buf) that is reset after each record, and every value is
 * capped at DC_MAX_FIELD_BYTES, so a record can never hold more than a
 * bounded amount (DC_MAX_XML_STRINGS).
 *
 * The bytes reach libxml2 through the input stage in dc_xml_input.c (the
 * declaration sniffing, the UTF-8 filter, bare '&' and control-character
 * repair, the small lexer that ends the document at </feedback>); this file
 * is the xmlReader loop, the element table and the assembly of records.
 *
 * Safety: XML_PARSE_NONET, never NOENT/DTDLOAD/DTDATTR/HUGE; the read
 * filter ends the stream at "<!DOCTYPE" (rejected), so libxml2 never parses
 * a DTD and nothing is ever fetched or expanded; a bare '&' or an undeclared
 * entity is escaped.  libxml2's error printing is replaced by the reader's
 * structured handler and, for the duration of a call, by our per-thread
 * handlers (encoding errors bypass the reader's); the first error becomes
 * one dc_err line.
 *
 * Repairs of what a sender plainly meant (each noted in the report's errors,
 * see docs/README-xml.md): leading whitespace/BOM before the XML
 * declaration, invalid UTF-8 and control characters (U+FFFD), bare '&',
 * content after </feedback>, an <xs:schema> wrapper around <feedback>, dates
 * written as integral decimals ("1337270400.0"), upper-case vocabulary, SPF
 * result "hardfail" (= "fail").  What is ambiguous is rejected: missing or
 * non-numeric dates, a missing report_id, a non-numeric <count>, a
 * source_ip that is not an IP address, an element given twice, a second
 * <feedback> after the first.
 *
 * Deliberately not here: the byte-level repairs (dc_xml_input.c),
 * decompression and its size limits (dc_unpack), storage, report_abort (the
 * caller's job).
 */
#include "dc_xml.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/encoding.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlreader.h>

#include "dc_buf.h"
#include "dc_xml_input.h"

/* Sanity bounds: a date must fit PostgreSQL's timestamptz comfortably
 * (9999-12-31T23:59:59Z), a count must leave room for sums over
 * limits.max_records records in 64 bits. */
#define MAX_DATE  INT64_C(253402300799)
#define MAX_COUNT INT64_C(1000000000000)


/* ------------------------------------------------------------------------
 * Arena of NUL-terminated strings in a dc_buf, addressed by offset (+1, 0 =
 * absent) so growth may move it.  Its maximum, DC_MAX_XML_STRINGS, is never
 * reached by a well-formed record: each value is at most DC_MAX_FIELD_BYTES
 * and each slot is filled once (see the check after the element table).
 * ---------------------------------------------------------------------- */

typedef uint32_t slot; /* 0 = absent, else offset + 1 */

/* Copies s[0..n) plus NUL into a; returns its slot, 0 on failure (the
 * failure sticks in a until dc_buf_reset). */
static slot
arena_put(dc_buf *a, const char *s, size_t n)
{
	char *p = dc_buf_room(a, n + 1);

	if (p == NULL)
		return 0;
	memcpy(p, s, n);
	p[n] = '\0';
	dc_buf_commit(a, n + 1);
	return (slot)(a->len - n - 1 + 1);
}

static const char *
arena_get(const dc_buf *a, slot s)
{
	return s == 0 ? NULL : a->p + (s - 1);
}

/* ------------------------------------------------------------------------
 * The element table.
 * ---------------------------------------------------------------------- */

/* (grouped as in the report, by hand) */
/* clang-format off */
enum report_field {
	RF_VERSION, RF_ORG, RF_EMAIL, RF_EXTRA, RF_REPORT_ID, RF_BEGIN, RF_END, RF_GENERATOR,
	RF_DOMAIN, RF_ADKIM, RF_ASPF, RF_P, RF_SP, RF_NP, RF_PCT, RF_FO, RF_TESTING, RF_DISCOVERY,
	RF__N
};
enum record_field {
	RC_SOURCE_IP, RC_COUNT, RC_DISPOSITION, RC_DKIM, RC_SPF, RC_HEADER_FROM, RC_ENV_FROM,
	RC_ENV_TO, RC__N
};
/* clang-format on */
enum dkim_field { DK_DOMAIN, DK_SELECTOR, DK_RESULT, DK_HUMAN, DK__N };
enum spf_field { SP_DOMAIN, SP_SCOPE, SP_RESULT, SP_HUMAN, SP__N };
enum reason_field { RS_TYPE, RS_COMMENT, RS__N };

/* Where a text value goes. */
enum scope { S_NONE, S_REPORT, S_RECORD, S_DKIM, S_SPF, S_REASON, S_ERROR };

/* What an element does at its start/end besides holding text. */
enum action { A_NONE, A_META, A_RECORD, A_DKIM, A_SPF, A_REASON };

#define F_LOWER   0x01 /* fixed vocabulary: lower-case the value */
#define F_SPF_RES 0x02 /* SPF result: "hardfail" means "fail" */

/* (grouped as in the report, by hand) */
/* clang-format off */
enum elem_id {
	E_FEEDBACK, E_VERSION,
	E_RM, E_RM_ORG, E_RM_EMAIL, E_RM_EXTRA, E_RM_ID, E_RM_RANGE, E_RM_BEGIN, E_RM_END,
	E_RM_ERROR, E_RM_GENERATOR,
	E_PP, E_PP_DOMAIN, E_PP_ADKIM, E_PP_ASPF, E_PP_P, E_PP_SP, E_PP_NP, E_PP_PCT, E_PP_FO,
	E_PP_TESTING, E_PP_DISCOVERY,
	E_REC, E_ROW, E_ROW_IP, E_ROW_COUNT, E_PE, E_PE_DISP, E_PE_DKIM, E_PE_SPF, E_PE_REASON,
	E_RS_TYPE, E_RS_COMMENT,
	E_ID, E_ID_HFROM, E_ID_EFROM, E_ID_ETO,
	E_AR, E_AR_DKIM, E_DK_DOMAIN, E_DK_SELECTOR, E_DK_RESULT, E_DK_HUMAN,
	E_AR_SPF, E_SP_DOMAIN, E_SP_SCOPE, E_SP_RESULT, E_SP_HUMAN,
	E__N,
	E_SKIP = E__N,     /* unknown element, skipped with its subtree */
};
/* clang-format on */

typedef struct elem_def {
	int parent;       /* enum elem_id of the parent */
	const char *name; /* local name */
	uint8_t scope;    /* enum scope: where its text goes; S_NONE = container */
	uint8_t field;    /* index within that scope */
	uint8_t action;   /* enum action */
	uint8_t flags;    /* F_* */
	const char *path; /* for messages */
} elem_def;

#define C(id, par, nm, act, p)         [id] = { par, nm, S_NONE, 0, act, 0, p }
#define T(id, par, nm, sc, fld, fl, p) [id] = { par, nm, sc, fld, A_NONE, fl, p }

static const elem_def elems[E__N] = {
	C(E_FEEDBACK, -1, "feedback", A_NONE, "feedback"),
	T(E_VERSION, E_FEEDBACK, "version", S_REPORT, RF_VERSION, 0, "version"),
	C(E_RM, E_FEEDBACK, "report_metadata", A_META, "report_metadata"),
	T(E_RM_ORG, E_RM, "org_name", S_REPORT, RF_ORG, 0, "report_metadata/org_name"),
	T(E_RM_EMAIL, E_RM, "email", S_REPORT, RF_EMAIL, 0, "report_metadata/email"),
	T(E_RM_EXTRA, E_RM, "extra_contact_info", S_REPORT, RF_EXTRA, 0,
		"report_metadata/extra_contact_info"),
	T(E_RM_ID, E_RM, "report_id", S_REPORT, RF_REPORT_ID, 0, "report_metadata/report_id"),
	C(E_RM_RANGE, E_RM, "date_range", A_NONE, "report_metadata/date_range"),
	T(E_RM_BEGIN, E_RM_RANGE, "begin", S_REPORT, RF_BEGIN, 0, "report_metadata/date_range/begin"),
	T(E_RM_END, E_RM_RANGE, "end", S_REPORT, RF_END, 0, "report_metadata/date_range/end"),
	T(E_RM_ERROR, E_RM, "error", S_ERROR, 0, 0, "report_metadata/error"),
	T(E_RM_GENERATOR, E_RM, "generator", S_REPORT, RF_GENERATOR, 0, "report_metadata/generator"),
	C(E_PP, E_FEEDBACK, "policy_published", A_META, "policy_published"),
	T(E_PP_DOMAIN, E_PP, "domain", S_REPORT, RF_DOMAIN, 0, "policy_published/domain"),
	T(E_PP_ADKIM, E_PP, "adkim", S_REPORT, RF_ADKIM, F_LOWER, "policy_published/adkim"),
	T(E_PP_ASPF, E_PP, "aspf", S_REPORT, RF_ASPF, F_LOWER, "policy_published/aspf"),
	T(E_PP_P, E_PP, "p", S_REPORT, RF_P, F_LOWER, "policy_published/p"),
	T(E_PP_SP, E_PP, "sp", S_REPORT, RF_SP, F_LOWER, "policy_published/sp"),
	T(E_PP_NP, E_PP, "np", S_REPORT, RF_NP, F_LOWER, "policy_published/np"),
	T(E_PP_PCT, E_PP, "pct", S_REPORT, RF_PCT, 0, "policy_published/pct"),
	T(E_PP_FO, E_PP, "fo", S_REPORT, RF_FO, 0, "policy_published/fo"),
	T(E_PP_TESTING, E_PP, "testing", S_REPORT, RF_TESTING, F_LOWER, "policy_published/testing"),
	T(E_PP_DISCOVERY, E_PP, "discovery_method", S_REPORT, RF_DISCOVERY, F_LOWER,
		"policy_published/discovery_method"),
	C(E_REC, E_FEEDBACK, "record", A_RECORD, "record"),
	C(E_ROW, E_REC, "row", A_NONE, "record/row"),
	T(E_ROW_IP, E_ROW, "source_ip", S_RECORD, RC_SOURCE_IP, 0, "record/row/source_ip"),
	T(E_ROW_COUNT, E_ROW, "count", S_RECORD, RC_COUNT, 0, "record/row/count"),
	C(E_PE, E_ROW, "policy_evaluated", A_NONE, "record/row/policy_evaluated"),
	T(E_PE_DISP, E_PE, "disposition", S_RECORD, RC_DISPOSITION, F_LOWER,
		"record/row/policy_evaluated/disposition"),
	T(E_PE_DKIM, E_PE, "dkim", S_RECORD, RC_DKIM, F_LOWER, "record/row/policy_evaluated/dkim"),
	T(E_PE_SPF, E_PE, "spf", S_RECORD, RC_SPF, F_LOWER, "record/row/policy_evaluated/spf"),
	C(E_PE_REASON, E_PE, "reason", A_REASON, "record/row/policy_evaluated/reason"),
	T(E_RS_TYPE, E_PE_REASON, "type", S_REASON, RS_TYPE, F_LOWER,
		"record/row/policy_evaluated/reason/type"),
	T(E_RS_COMMENT, E_PE_REASON, "comment", S_REASON, RS_COMMENT, 0,
		"record/row/policy_evaluated/reason/comment"),
	C(E_ID, E_REC, "identifiers", A_NONE, "record/identifiers"),
	T(E_ID_HFROM, E_ID, "header_from", S_RECORD, RC_HEADER_FROM, 0, "record/identifiers/header_from"),
	T(E_ID_EFROM, E_ID, "envelope_from", S_RECORD, RC_ENV_FROM, 0, "record/identifiers/envelope_from"),
	T(E_ID_ETO, E_ID, "envelope_to", S_RECORD, RC_ENV_TO, 0, "record/identifiers/envelope_to"),
	C(E_AR, E_REC, "auth_results", A_NONE, "record/auth_results"),
	C(E_AR_DKIM, E_AR, "dkim", A_DKIM, "record/auth_results/dkim"),
	T(E_DK_DOMAIN, E_AR_DKIM, "domain", S_DKIM, DK_DOMAIN, 0, "record/auth_results/dkim/domain"),
	T(E_DK_SELECTOR, E_AR_DKIM, "selector", S_DKIM, DK_SELECTOR, 0, "record/auth_results/dkim/selector"),
	T(E_DK_RESULT, E_AR_DKIM, "result", S_DKIM, DK_RESULT, F_LOWER, "record/auth_results/dkim/result"),
	T(E_DK_HUMAN, E_AR_DKIM, "human_result", S_DKIM, DK_HUMAN, 0,
		"record/auth_results/dkim/human_result"),
	C(E_AR_SPF, E_AR, "spf", A_SPF, "record/auth_results/spf"),
	T(E_SP_DOMAIN, E_AR_SPF, "domain", S_SPF, SP_DOMAIN, 0, "record/auth_results/spf/domain"),
	T(E_SP_SCOPE, E_AR_SPF, "scope", S_SPF, SP_SCOPE, F_LOWER, "record/auth_results/spf/scope"),
	T(E_SP_RESULT, E_AR_SPF, "result", S_SPF, SP_RESULT, F_LOWER | F_SPF_RES,
		"record/auth_results/spf/result"),
	T(E_SP_HUMAN, E_AR_SPF, "human_result", S_SPF, SP_HUMAN, 0, "record/auth_results/spf/human_result"),
};

#undef C
#undef T

/* A record's strings (and the report's) fit in DC_MAX_XML_STRINGS: every
 * slot holds at most one value of at most DC_MAX_FIELD_BYTES (an element
 * given twice is rejected), and a slot is a 32-bit offset. */
_Static_assert(
	(RC__N + DC_MAX_AUTH_RESULTS * (DK__N + SP__N) + DC_MAX_REASONS * RS__N) * (DC_MAX_FIELD_BYTES + 1) <=
		DC_MAX_XML_STRINGS,
	"DC_MAX_XML_STRINGS too small for a record");
_Static_assert((RF__N + 2) * (DC_MAX_FIELD_BYTES + 1) <= DC_MAX_XML_STRINGS,
	"DC_MAX_XML_STRINGS too small for a report's metadata");
_Static_assert(DC_MAX_XML_STRINGS < UINT32_MAX, "slot is a 32-bit offset");

/* ------------------------------------------------------------------------
 * Parser state.
 * ---------------------------------------------------------------------- */

#define NOTES_CAP DC_MAX_REPORT_ERRORS

typedef struct xml_state {
	xmlTextReaderPtr reader;
	const xmlChar *names[E__N]; /* elems[].name interned in the reader's dictionary */
	int8_t first_child[E__N];   /* elems[] as a tree: first child, -1 if none */
	int8_t next_sibling[E__N];  /* next child of the same parent, -1 if none */
	const dc_limits *lim;
	const dc_blob *origin;
	const dc_sink *sink;
	dc_err *err;

	/* first libxml2 error */
	bool have_xml_err;
	bool oom; /* libxml2 reported an allocation failure */
	int xml_err_line;

	/* element stack */
	int stack[DC_MAX_XML_DEPTH + 1];
	int skip_depth; /* >= 0: inside an unknown subtree rooted there */

	/* text of the leaf element being read (in text[] below) */
	int text_elem; /* elem id, -1 when not collecting */
	size_t text_len;

	/* report */
	dc_buf rarena;
	slot rf[RF__N];
	bool has_xmlns;
	size_t error_len; /* of error_texts[] */
	size_t notes_len; /* of notes[] */
	dc_report rep;
	bool begun;

	/* per-record observations, summarised in one note each at the end */
	uint64_t n_hardfail, n_no_count, n_decimal_count, n_no_ip, n_upper;

	/* record */
	dc_buf carena;
	uint64_t n_records;
	bool in_record;
	slot rc[RC__N];
	size_t n_dk, n_sp, n_rs;

	/* Buffers from here on are not zeroed at the start (about 24 KB): each is
	 * written before it is read (texts up to their lengths above, the
	 * per-result slots as each result begins, the result arrays at
	 * record_end, xmlns and xml_err_msg with their flags). */
	char unzeroed[1];
	char xml_err_msg[256];
	char text[DC_MAX_FIELD_BYTES + 1];
	char xmlns[512];
	char error_texts[NOTES_CAP]; /* <error> elements, "; "-joined */
	char notes[NOTES_CAP];       /* our repair notes, "; "-joined */
	char errors[NOTES_CAP];      /* what dc_report.errors points to */
	slot dk[DC_MAX_AUTH_RESULTS][DK__N];
	slot sp[DC_MAX_AUTH_RESULTS][SP__N];
	slot rs[DC_MAX_REASONS][RS__N];
	dc_dkim_result dkim[DC_MAX_AUTH_RESULTS];
	dc_spf_result spf[DC_MAX_AUTH_RESULTS];
	dc_reason reasons[DC_MAX_REASONS];
} xml_state;

/* Appends s to a "; "-joined buffer of capacity NOTES_CAP; text that does not
 * fit is cut and marked with "...". */
static void
join_append(char *buf, size_t *len, const char *s)
{
	size_t n = strlen(s), sep = *len > 0 ? 2 : 0;

	if (*len >= NOTES_CAP - 1)
		return;
	if (*len + sep + n >= NOTES_CAP) {
		size_t room = NOTES_CAP - 1 - *len;
		if (room < sep + 4) {
			return;
		}
		memcpy(buf + *len, "; ", sep);
		*len += sep;
		room -= sep;
		memcpy(buf + *len, s, room - 3);
		memcpy(buf + *len + room - 3, "...", 3);
		*len += room;
		buf[*len] = '\0';
		return;
	}
	memcpy(buf + *len, "; ", sep);
	memcpy(buf + *len + sep, s, n);
	*len += sep + n;
	buf[*len] = '\0';
}

static void note(xml_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Adds one repair note to the report's errors. */
static void
note(xml_state *st, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	join_append(st->notes, &st->notes_len, line);
}

/* Rebuilds st->errors: <error> texts, then our notes (with the per-record
 * summaries and the read filter's counts when final), then origin's notes. */
static void
compose_errors(xml_state *st, bool final, const dc_xml_input *in)
{
	size_t len = 0;
	char line[160];

	st->errors[0] = '\0';
	if (st->error_len)
		join_append(st->errors, &len, st->error_texts);
	if (in->lead_stripped)
		join_append(st->errors, &len, "leading whitespace before the XML declaration removed");
	if (in->wrapper_removed)
		join_append(st->errors, &len, "<xs:schema> start tag around <feedback> removed");
	if (final && in->trailing)
		join_append(st->errors, &len, "content after </feedback> ignored");
	if (st->notes_len)
		join_append(st->errors, &len, st->notes);
	if (final) {
		const struct {
			uint64_t n;
			const char *what;
		} counted[] = {
			{ in->n_amp, "bare '&' escaped" },
			{ in->n_ctrl, "control character(s) replaced with U+FFFD" },
			{ in->n_bad_utf8, "invalid UTF-8 sequence(s) replaced with U+FFFD" },
			{ st->n_upper, "upper-case value(s) lower-cased" },
			{ st->n_hardfail, "SPF result(s) 'hardfail' read as 'fail'" },
			{ st->n_no_count, "record(s) without <count>" },
			{ st->n_decimal_count, "<count> value(s) written as decimals read as integers" },
			{ st->n_no_ip, "record(s) without source_ip" },
		};
		for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++) {
			if (counted[i].n == 0)
				continue;
			snprintf(line, sizeof(line), "%" PRIu64 " %s", counted[i].n, counted[i].what);
			join_append(st->errors, &len, line);
		}
	} else if (in->n_bad_utf8 || in->n_amp || in->n_ctrl) {
		join_append(
			st->errors, &len, "bytes repaired (bare '&', control characters or invalid UTF-8)");
	}
	if (st->origin != NULL && st->origin->notes != NULL && st->origin->notes[0])
		join_append(st->errors, &len, st->origin->notes);
	st->rep.errors = len ? st->errors : NULL;
}

/* Parses a non-negative integer, also written as an integral decimal
 * ("1337270400.0"); returns 1 for plain, 2 for decimal, 0 if not a number. */
static int
parse_int(const char *s, int64_t *out)
{
	int64_t v = 0;
	const char *p = s;
	int kind = 1;

	if (*p == '+')
		p++;
	if (!isdigit((unsigned char)*p))
		return 0;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return 0;
		v = v * 10 + (*p - '0');
	}
	if (*p == '.') {
		p++;
		kind = 2;
		for (; *p == '0'; p++)
			;
	}
	if (*p != '\0')
		return 0;
	*out = v;
	return kind;
}

/* libxml2 structured error handler: keeps the first error, prints nothing. */
static void
on_xml_error(void *ctx, xmlErrorPtr e)
{
	xml_state *st = ctx;
	size_t n;

	if (e != NULL && e->code == XML_ERR_NO_MEMORY)
		st->oom = true; /* whatever else it said: the input is not to blame */
	if (e != NULL && e->code == XML_ERR_UNSUPPORTED_ENCODING && e->str1 != NULL) {
		/* libxml2 2.9 returns "no such encoding" when an allocation of its
		 * iconv handler fails, and says nothing else: if the encoding can be
		 * opened now, that is what happened */
		xmlCharEncodingHandlerPtr h = xmlFindCharEncodingHandler(e->str1);

		if (h != NULL) {
			st->oom = true;
			xmlCharEncCloseFunc(h);
		}
	}
	if (e == NULL || e->level < XML_ERR_ERROR || st->have_xml_err)
		return;
	st->have_xml_err = true;
	st->xml_err_line = e->line;
	snprintf(st->xml_err_msg, sizeof(st->xml_err_msg), "%s", e->message ? e->message : "unknown error");
	n = strlen(st->xml_err_msg);
	while (n > 0 && (st->xml_err_msg[n - 1] == '\n' || st->xml_err_msg[n - 1] == ' '))
		st->xml_err_msg[--n] = '\0';
}

/* libxml2's generic (printf-style) channel: silenced. */
static void silent_error(void *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
silent_error(void *ctx, const char *fmt, ...)
{
	(void)ctx;
	(void)fmt;
}

/* Validates the metadata and calls sink.report_begin.  Returns DC_OK,
 * DC_SKIP, DC_ESCHEMA or what the sink returned. */
static dc_code
report_begin(xml_state *st, const dc_xml_input *in)
{
	dc_report *r = &st->rep;
	const char *begin = arena_get(&st->rarena, st->rf[RF_BEGIN]);
	const char *end = arena_get(&st->rarena, st->rf[RF_END]);
	const char *pct = arena_get(&st->rarena, st->rf[RF_PCT]);
	int k;
	int64_t v;

	st->begun = true;
	if (begin == NULL || end == NULL)
		return dc_err_set(st->err, DC_ESCHEMA, "report has no report_metadata/date_range/%s",
			begin == NULL ? "begin" : "end");
	k = parse_int(begin, &r->date_begin);
	if (k == 0)
		return dc_err_set(st->err, DC_ESCHEMA, "date_range begin '%.64s' is not a number", begin);
	if (k == 2)
		note(st, "date_range begin '%.64s' read as %" PRId64, begin, r->date_begin);
	k = parse_int(end, &r->date_end);
	if (k == 0)
		return dc_err_set(st->err, DC_ESCHEMA, "date_range end '%.64s' is not a number", end);
	if (k == 2)
		note(st, "date_range end '%.64s' read as %" PRId64, end, r->date_end);
	if (r->date_begin > MAX_DATE || r->date_end > MAX_DATE)
		return dc_err_set(st->err, DC_ESCHEMA,
			"date_range %" PRId64 "-%" PRId64 " is beyond the year 9999", r->date_begin,
			r->date_end);
	if (st->rf[RF_REPORT_ID] == 0)
		return dc_err_set(st->err, DC_ESCHEMA, "report has no report_metadata/report_id");
	if (st->rf[RF_ORG] == 0) {
		st->rf[RF_ORG] = arena_put(&st->rarena, "", 0);
		note(st, "no report_metadata/org_name, stored as ''");
	}
	if (st->rf[RF_DOMAIN] == 0) {
		st->rf[RF_DOMAIN] = arena_put(&st->rarena, "", 0);
		note(st, "no policy_published/domain, stored as ''");
	}
	if (st->rf[RF_ORG] == 0 || st->rf[RF_DOMAIN] == 0)
		return dc_err_set(st->err, DC_ENOMEM, "out of memory");
	r->policy_pct = -1;
	if (pct != NULL && pct[0] != '\0') {
		k = parse_int(pct, &v);
		if (k == 0 || v > 100)
			note(st, "policy_published/pct '%.64s' is not 0-100, ignored", pct);
		else
			r->policy_pct = (int)v;
	}
	r->xmlns = st->has_xmlns ? st->xmlns : NULL;
	r->version = arena_get(&st->rarena, st->rf[RF_VERSION]);
	r->org_name = arena_get(&st->rarena, st->rf[RF_ORG]);
	r->org_email = arena_get(&st->rarena, st->rf[RF_EMAIL]);
	r->extra_contact_info = arena_get(&st->rarena, st->rf[RF_EXTRA]);
	r->report_id = arena_get(&st->rarena, st->rf[RF_REPORT_ID]);
	r->generator = arena_get(&st->rarena, st->rf[RF_GENERATOR]);
	r->policy_domain = arena_get(&st->rarena, st->rf[RF_DOMAIN]);
	r->policy_adkim = arena_get(&st->rarena, st->rf[RF_ADKIM]);
	r->policy_aspf = arena_get(&st->rarena, st->rf[RF_ASPF]);
	r->policy_p = arena_get(&st->rarena, st->rf[RF_P]);
	r->policy_sp = arena_get(&st->rarena, st->rf[RF_SP]);
	r->policy_np = arena_get(&st->rarena, st->rf[RF_NP]);
	r->policy_testing = arena_get(&st->rarena, st->rf[RF_TESTING]);
	r->policy_discovery_method = arena_get(&st->rarena, st->rf[RF_DISCOVERY]);
	r->policy_fo = arena_get(&st->rarena, st->rf[RF_FO]);
	compose_errors(st, false, in);
	if (st->sink->report_begin == NULL)
		return DC_OK;
	return st->sink->report_begin(st->sink->ctx, r, st->origin, st->err);
}

/* Starts a new record: report_begin first when this is the first one. */
static dc_code
record_start(xml_state *st, const dc_xml_input *in)
{
	dc_code rc;
	uint64_t max = st->lim ? st->lim->max_records : DC_DEFAULT_MAX_RECORDS;

	if (!st->begun && (rc = report_begin(st, in)) != DC_OK)
		return rc;
	if (st->n_records >= max)
		return dc_err_set(
			st->err, DC_ETOOMANY_RECORDS, "report has more than %" PRIu64 " records", max);
	st->n_records++;
	st->in_record = true;
	dc_buf_reset(&st->carena);
	memset(st->rc, 0, sizeof(st->rc));
	st->n_dk = st->n_sp = st->n_rs = 0;
	return DC_OK;
}

/* Checks and hands one finished record to the sink. */
static dc_code
record_end(xml_state *st)
{
	dc_record rec;
	const dc_buf *a = &st->carena;
	const char *ip = arena_get(a, st->rc[RC_SOURCE_IP]);
	const char *count = arena_get(a, st->rc[RC_COUNT]);
	int k;

	st->in_record = false;
	memset(&rec, 0, sizeof(rec));
	rec.ordinal = st->n_records;
	if (ip != NULL && ip[0] != '\0') {
		unsigned char buf[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1)
			return dc_err_set(st->err, DC_ESCHEMA,
				"record %" PRIu64 ": source_ip '%.64s' is not an IP address", rec.ordinal,
				ip);
	} else
		st->n_no_ip++;
	rec.source_ip = ip;
	rec.message_count = -1;
	if (count == NULL || count[0] == '\0')
		st->n_no_count++;
	else {
		k = parse_int(count, &rec.message_count);
		if (k == 0)
			return dc_err_set(st->err, DC_ESCHEMA,
				"record %" PRIu64 ": count '%.64s' is not a number", rec.ordinal, count);
		if (rec.message_count > MAX_COUNT)
			return dc_err_set(st->err, DC_ESCHEMA,
				"record %" PRIu64 ": count %" PRId64 " is implausibly large", rec.ordinal,
				rec.message_count);
		if (k == 2)
			st->n_decimal_count++;
	}
	rec.disposition = arena_get(a, st->rc[RC_DISPOSITION]);
	rec.dkim_aligned = arena_get(a, st->rc[RC_DKIM]);
	rec.spf_aligned = arena_get(a, st->rc[RC_SPF]);
	rec.header_from = arena_get(a, st->rc[RC_HEADER_FROM]);
	rec.envelope_from = arena_get(a, st->rc[RC_ENV_FROM]);
	rec.envelope_to = arena_get(a, st->rc[RC_ENV_TO]);
	for (size_t i = 0; i < st->n_rs; i++) {
		st->reasons[i].type = arena_get(a, st->rs[i][RS_TYPE]);
		st->reasons[i].comment = arena_get(a, st->rs[i][RS_COMMENT]);
	}
	for (size_t i = 0; i < st->n_dk; i++) {
		st->dkim[i].domain = arena_get(a, st->dk[i][DK_DOMAIN]);
		st->dkim[i].selector = arena_get(a, st->dk[i][DK_SELECTOR]);
		st->dkim[i].result = arena_get(a, st->dk[i][DK_RESULT]);
		st->dkim[i].human_result = arena_get(a, st->dk[i][DK_HUMAN]);
	}
	for (size_t i = 0; i < st->n_sp; i++) {
		st->spf[i].domain = arena_get(a, st->sp[i][SP_DOMAIN]);
		st->spf[i].scope = arena_get(a, st->sp[i][SP_SCOPE]);
		st->spf[i].result = arena_get(a, st->sp[i][SP_RESULT]);
		st->spf[i].human_result = arena_get(a, st->sp[i][SP_HUMAN]);
	}
	rec.reasons = st->reasons;
	rec.n_reasons = st->n_rs;
	rec.dkim = st->dkim;
	rec.n_dkim = st->n_dk;
	rec.spf = st->spf;
	rec.n_spf = st->n_sp;
	if (st->sink->record == NULL)
		return DC_OK;
	return st->sink->record(st->sink->ctx, &st->rep, &rec, st->err);
}

/* The slot a leaf element's value goes to, NULL for <error>. */
static slot *
leaf_slot(xml_state *st, const elem_def *d)
{
	switch (d->scope) {
	case S_REPORT: return &st->rf[d->field];
	case S_RECORD: return &st->rc[d->field];
	case S_DKIM: return &st->dk[st->n_dk - 1][d->field];
	case S_SPF: return &st->sp[st->n_sp - 1][d->field];
	case S_REASON: return &st->rs[st->n_rs - 1][d->field];
	default: return NULL;
	}
}

/* An element of the table begins.  Returns DC_OK or an error with err set. */
static dc_code
elem_start(xml_state *st, int id, const dc_xml_input *in)
{
	const elem_def *d = &elems[id];
	dc_code rc = DC_OK;

	switch (d->action) {
	case A_META:
		if (st->begun)
			return dc_err_set(st->err, DC_ESCHEMA, "<%s> after the first <record>", d->name);
		break;
	case A_RECORD:
		if ((rc = record_start(st, in)) != DC_OK)
			return rc;
		break;
	case A_DKIM:
		if (st->n_dk == DC_MAX_AUTH_RESULTS)
			return dc_err_set(st->err, DC_ETOOLONG,
				"record %" PRIu64 " has more than %d dkim results", st->n_records,
				DC_MAX_AUTH_RESULTS);
		memset(st->dk[st->n_dk++], 0, sizeof(st->dk[0]));
		break;
	case A_SPF:
		if (st->n_sp == DC_MAX_AUTH_RESULTS)
			return dc_err_set(st->err, DC_ETOOLONG,
				"record %" PRIu64 " has more than %d spf results", st->n_records,
				DC_MAX_AUTH_RESULTS);
		memset(st->sp[st->n_sp++], 0, sizeof(st->sp[0]));
		break;
	case A_REASON:
		if (st->n_rs == DC_MAX_REASONS)
			return dc_err_set(st->err, DC_ETOOLONG, "record %" PRIu64 " has more than %d reasons",
				st->n_records, DC_MAX_REASONS);
		memset(st->rs[st->n_rs++], 0, sizeof(st->rs[0]));
		break;
	default: break;
	}
	if (d->scope != S_NONE) {
		if (d->scope == S_REPORT && st->begun)
			return dc_err_set(st->err, DC_ESCHEMA, "<%s> after the first <record>", d->name);
		if (d->scope != S_ERROR && *leaf_slot(st, d) != 0)
			return dc_err_set(st->err, DC_ESCHEMA, "%s given twice%s", d->path,
				d->scope == S_REPORT ? "" : " in one record");
		st->text_elem = id;
		st->text_len = 0;
	}
	return DC_OK;
}

/* An element of the table ends: stores its text or finishes a record. */
static dc_code
elem_end(xml_state *st, int id)
{
	const elem_def *d = &elems[id];
	char *s = st->text;
	size_t n = st->text_len;
	dc_buf *a;
	slot v;

	if (d->action == A_RECORD)
		return record_end(st);
	if (d->scope == S_NONE)
		return DC_OK;
	st->text_elem = -1;
	s[n] = '\0';
	while (n > 0 && dc_xml_is_space((uint8_t)s[n - 1]))
		s[--n] = '\0';
	/* leading space was never stored (see on_text) */
	if (d->scope == S_ERROR) {
		if (n > 0)
			join_append(st->error_texts, &st->error_len, s);
		return DC_OK;
	}
	if (d->flags & F_LOWER) {
		bool upper = false;
		for (size_t i = 0; i < n; i++)
			if (s[i] >= 'A' && s[i] <= 'Z') {
				s[i] = (char)(s[i] - 'A' + 'a');
				upper = true;
			}
		if (upper)
			st->n_upper++;
	}
	if ((d->flags & F_SPF_RES) && strcmp(s, "hardfail") == 0) {
		memcpy(s, "fail", 5);
		n = 4;
		st->n_hardfail++;
	}
	a = d->scope == S_REPORT ? &st->rarena : &st->carena;
	v = arena_put(a, s, n);
	if (v == 0)
		return dc_buf_code(a) == DC_ENOMEM ?
			dc_err_set(st->err, DC_ENOMEM, "out of memory") :
			dc_err_set(st->err, dc_buf_code(a), "%s: strings over %d bytes", d->path,
				DC_MAX_XML_STRINGS);
	*leaf_slot(st, d) = v;
	return DC_OK;
}

/* Text inside a leaf element: appended, leading whitespace dropped. */
static dc_code
on_text(xml_state *st)
{
	const char *t = (const char *)xmlTextReaderConstValue(st->reader);
	size_t n;

	if (t == NULL)
		return DC_OK;
	if (st->text_len == 0)
		while (dc_xml_is_space((uint8_t)*t))
			t++;
	n = strlen(t);
	if (n == 0)
		return DC_OK;
	if (st->text_len + n > DC_MAX_FIELD_BYTES)
		return dc_err_set(st->err, DC_ETOOLONG, "%s longer than %d bytes", elems[st->text_elem].path,
			DC_MAX_FIELD_BYTES);
	memcpy(st->text + st->text_len, t, n);
	st->text_len += n;
	return DC_OK;
}

/* The child of parent called name (an interned pointer), or E_SKIP. */
static int
find_child(const xml_state *st, int parent, const xmlChar *name)
{
	for (int i = st->first_child[parent]; i >= 0; i = st->next_sibling[i])
		if (st->names[i] == name)
			return i;
	return E_SKIP;
}

/* name without a prefix libxml2 could not bind (it then stays in the
 * local name: <d:feedback> without xmlns:d), interned; or name itself. */
static const xmlChar *
unprefixed(const xml_state *st, const xmlChar *name)
{
	const char *colon = strchr((const char *)name, ':');

	if (colon == NULL)
		return name;
	return xmlTextReaderConstString(st->reader, (const xmlChar *)colon + 1);
}

/* A start tag at depth; handles the root and dispatches through the table. */
static dc_code
on_element(xml_state *st, int depth, bool empty, const dc_xml_input *in)
{
	const xmlChar *name = xmlTextReaderConstLocalName(st->reader);
	int id, parent;
	dc_code rc;

	if (name != NULL && name != st->names[E_FEEDBACK] && depth == 0)
		name = unprefixed(st, name);

	if (depth == 0) {
		const xmlChar *ns = xmlTextReaderConstNamespaceUri(st->reader);
		if (name != st->names[E_FEEDBACK])
			return dc_err_set(st->err, DC_ESCHEMA, "root element is <%.64s>, not <feedback>",
				name ? (const char *)name : "?");
		id = E_FEEDBACK;
		if (ns != NULL) {
			snprintf(st->xmlns, sizeof(st->xmlns), "%s", (const char *)ns);
			st->has_xmlns = true;
		}
	} else {
		parent = st->stack[depth - 1];
		if (parent >= E__N || elems[parent].scope != S_NONE)
			id = E_SKIP; /* inside a leaf: markup in a value is ignored */
		else if ((id = find_child(st, parent, name)) == E_SKIP && name != NULL)
			id = find_child(st, parent, unprefixed(st, name));
	}
	if (id == E_SKIP) {
		if (!empty)
			st->skip_depth = depth;
		return DC_OK;
	}
	st->stack[depth] = id;
	if (id < E__N && (rc = elem_start(st, id, in)) != DC_OK)
		return rc;
	if (empty)
		return id < E__N ? elem_end(st, id) : DC_OK;
	return DC_OK;
}

/* After </feedback>: the read filter ended the stream there; drain the rest
 * (UTF-16/32 input, where the filter does not look, is read on by libxml2,
 * which fails on anything but comments and whitespace).  Returns DC_OK or a
 * read error of rd. */
static dc_code
check_trailing(xml_state *st, dc_xml_input *in)
{
	int ret;

	if (dc_xml_input_cut(in)) {
		if (!dc_xml_input_drain(in))
			return dc_err_set(st->err, in->rerr.code, "%s", in->rerr.msg);
		return DC_OK;
	}
	while ((ret = xmlTextReaderRead(st->reader)) == 1) {
		int t = xmlTextReaderNodeType(st->reader);
		if (t == XML_READER_TYPE_COMMENT || t == XML_READER_TYPE_PROCESSING_INSTRUCTION ||
			t == XML_READER_TYPE_WHITESPACE || t == XML_READER_TYPE_SIGNIFICANT_WHITESPACE)
			continue;
		break;
	}
	if (in->failed)
		return dc_err_set(st->err, in->rerr.code, "%s", in->rerr.msg);
	if (ret != 0)
		in->trailing = true;
	return DC_OK;
}

static const int reader_options = XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOBLANKS |
	XML_PARSE_COMPACT | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;

/* The reader loop.  Returns DC_OK after report_end, or the first error. */
static dc_code
run(xml_state *st, dc_xml_input *in)
{
	dc_code rc = DC_OK;
	int ret, open = 0;

	while ((ret = xmlTextReaderRead(st->reader)) == 1) {
		int type = xmlTextReaderNodeType(st->reader);
		int depth;
		bool empty;

		switch (type) {
		case XML_READER_TYPE_ELEMENT:
			depth = xmlTextReaderDepth(st->reader);
			if (depth < 0 || depth >= DC_MAX_XML_DEPTH)
				return dc_err_set(st->err, DC_ETOODEEP, "XML nested deeper than %d elements",
					DC_MAX_XML_DEPTH);
			empty = xmlTextReaderIsEmptyElement(st->reader) == 1;
			open = empty ? depth : depth + 1;
			if (st->skip_depth >= 0)
				break;
			if ((rc = on_element(st, depth, empty, in)) != DC_OK)
				return rc;
			if (depth == 0 && empty)
				goto done; /* <feedback/> */
			break;
		case XML_READER_TYPE_END_ELEMENT:
			depth = xmlTextReaderDepth(st->reader);
			open = depth;
			if (st->skip_depth >= 0) {
				if (depth == st->skip_depth)
					st->skip_depth = -1;
				break;
			}
			if (depth < 0 || depth >= DC_MAX_XML_DEPTH)
				break;
			if (st->stack[depth] < E__N && (rc = elem_end(st, st->stack[depth])) != DC_OK)
				return rc;
			if (depth == 0)
				goto done;
			break;
		case XML_READER_TYPE_TEXT:
		case XML_READER_TYPE_CDATA:
		case XML_READER_TYPE_WHITESPACE:
		case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
			if (st->text_elem >= 0 && st->skip_depth < 0 && (rc = on_text(st)) != DC_OK)
				return rc;
			break;
		case XML_READER_TYPE_DOCUMENT_TYPE:
			return dc_err_set(st->err, DC_ESCHEMA,
				"DOCTYPE not allowed in a report (no DTDs, no entities)");
		case XML_READER_TYPE_ENTITY_REFERENCE:
		case XML_READER_TYPE_ENTITY:
			return dc_err_set(st->err, DC_ESCHEMA,
				"entity reference &%.64s; not allowed in a report",
				(const char *)xmlTextReaderConstName(st->reader));
		default: break;
		}
	}
	if (st->oom)
		return dc_err_set(st->err, DC_ENOMEM, "out of memory in the XML reader");
	if (in->failed)
		return dc_err_set(st->err, in->rerr.code, "%s", in->rerr.msg);
	if (in->doctype)
		return dc_err_set(
			st->err, DC_ESCHEMA, "DOCTYPE not allowed in a report (no DTDs, no entities)");
	if (open > 0 && in->eof && in->pos == in->len && st->have_xml_err &&
		strstr(st->xml_err_msg, "Extra content at the end") != NULL)
		/* libxml2's reader calls a truncated document "Extra content at the end" */
		return dc_err_set(st->err, DC_EXML,
			"XML not well-formed at line %d: document ends inside <feedback> "
			"(truncated)",
			st->xml_err_line);
	if (st->have_xml_err && st->xml_err_line > 0)
		return dc_err_set(st->err, DC_EXML, "XML not well-formed at line %d: %s", st->xml_err_line,
			st->xml_err_msg);
	if (st->have_xml_err)
		return dc_err_set(st->err, DC_EXML, "XML not well-formed: %s", st->xml_err_msg);
	return dc_err_set(st->err, DC_EXML, "XML not well-formed: document ends before </feedback>");
done:
	if ((rc = check_trailing(st, in)) != DC_OK)
		return rc;
	/* libxml2 goes on after some allocation failures (a text node dropped):
	 * what it handed us may be incomplete */
	if (st->oom)
		return dc_err_set(st->err, DC_ENOMEM, "out of memory in the XML reader");
	if (in->second_report)
		return dc_err_set(st->err, DC_ESCHEMA,
			"another <feedback> follows </feedback>: "
			"one XML stream must hold one report");
	if (!st->begun && (rc = report_begin(st, in)) != DC_OK)
		return rc;
	compose_errors(st, true, in);
	if (st->sink->report_end == NULL)
		return DC_OK;
	return st->sink->report_end(st->sink->ctx, &st->rep, st->err);
}

dc_code
dc_xml_parse(dc_read_fn rd, void *rctx, const dc_limits *lim, const dc_blob *origin, const dc_sink *sink,
	dc_err *err)
{
	/* on the stack (about 90 KB, most of it raw[]): a heap block this size
	 * per report makes malloc grow and trim the heap top around every small
	 * report when little else is allocated (two brk calls and fresh pages,
	 * ~15 us a report) */
	xml_state st_buf;
	dc_xml_input in_buf;
	xml_state *st = &st_buf;
	dc_xml_input *in = &in_buf;
	static const dc_sink no_sink;
	dc_code rc = DC_OK;
	/* libxml2 reports encoding and I/O errors through its per-thread
	 * handlers, not the reader's: ours are installed for the duration of
	 * this call and the caller's put back on every path. */
	xmlStructuredErrorFunc saved_serror = xmlStructuredError;
	void *saved_sctx = xmlStructuredErrorContext;
	xmlGenericErrorFunc saved_generic = xmlGenericError;
	void *saved_gctx = xmlGenericErrorContext;

	/* only the bookkeeping is zeroed: the byte and text buffers behind it
	 * (raw[] alone is 64 KB) are written before they are read */
	memset(st, 0, offsetof(xml_state, unzeroed));
	dc_buf_init(&st->rarena, DC_MAX_XML_STRINGS);
	dc_buf_init(&st->carena, DC_MAX_XML_STRINGS);
	dc_xml_input_init(in, rd, rctx);
	st->lim = lim;
	st->origin = origin;
	st->sink = sink ? sink : &no_sink;
	st->err = err;
	st->text_elem = -1;
	st->skip_depth = -1;
	st->rep.policy_pct = -1;
	xmlSetStructuredErrorFunc(st, on_xml_error);
	xmlSetGenericErrorFunc(NULL, silent_error);
	st->reader = xmlReaderForIO(dc_xml_input_read, NULL, in, NULL, NULL, reader_options);
	if (st->reader == NULL) {
		rc = in->failed ? dc_err_set(err, in->rerr.code, "%s", in->rerr.msg) :
				  dc_err_set(err, DC_ENOMEM, "cannot create XML reader");
		goto out;
	}
	xmlTextReaderSetStructuredErrorHandler(st->reader, on_xml_error, st);
	memset(st->first_child, -1, sizeof(st->first_child));
	for (int i = E__N - 1; i >= 0; i--) {
		st->next_sibling[i] = -1;
		if (elems[i].parent >= 0) {
			st->next_sibling[i] = st->first_child[elems[i].parent];
			st->first_child[elems[i].parent] = (int8_t)i;
		}
	}
	for (int i = 0; i < E__N; i++) {
		st->names[i] = xmlTextReaderConstString(st->reader, (const xmlChar *)elems[i].name);
		if (st->names[i] == NULL) {
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
	rc = run(st, in);
out:
	xmlSetStructuredErrorFunc(saved_sctx, saved_serror);
	xmlSetGenericErrorFunc(saved_gctx, saved_generic);
	if (st->reader != NULL)
		xmlFreeTextReader(st->reader);
	dc_buf_free(&st->rarena);
	dc_buf_free(&st->carena);
	return rc;
}

void
dc_xml_init(void)
{
	xmlInitParser();
}

size_t
dc_xml_libversions(dc_libversion *v, size_t max)
{
	const char *s = xmlParserVersion; /* the loaded library's; LIBXML_VERSION is the headers' */
	long n = s ? strtol(s, NULL, 10) : 0;

	if (max < 1)
		return 0;
	v[0].name = "libxml2";
	snprintf(v[0].version, sizeof(v[0].version), "%ld.%ld.%ld", n / 10000, n / 100 % 100, n % 100);
	return 1;
}

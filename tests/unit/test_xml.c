/*
 * test_xml.c - dc_xml_parse, table-driven.
 *
 * Each case is a small inline XML document, the expected return code, a
 * substring of the error message, the expected sequence of sink calls
 * (B = report_begin, R = record, E = report_end) and lines that must appear
 * in a flat dump of everything the sink saw ("B org_name=...",
 * "R2 envelope_from=(null)", "E errors=...").  Every case runs three times:
 * the document handed over whole, in 7-byte pieces and byte by byte, so the
 * read filter's state machines are tested across every boundary.
 *
 * Then: the corpus (every bare .xml report with manifest rows, counted and
 * compared with manifest.tsv except the files in
 * tests/data/xml/differences.tsv), DC_SKIP, sink and reader errors, the
 * record limit on a generated stream, and that libxml2 prints nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <inttypes.h>
#include <cmocka.h>

#include "dc_xml.h"

/* ------------------------------------------------------------ readers */

typedef struct mem_reader {
	const char *data;
	size_t len, pos, piece; /* piece 0: as much as asked */
	size_t fail_at;         /* > 0: fail with DC_EGZIP once pos reaches it */
} mem_reader;

static dc_code
mem_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err)
{
	mem_reader *m = ctx;
	size_t n = m->len - m->pos;

	if (m->fail_at > 0 && m->pos >= m->fail_at)
		return dc_err_set(err, DC_EGZIP, "gzip stream corrupt (test)");
	if (n > cap)
		n = cap;
	if (m->piece > 0 && n > m->piece)
		n = m->piece;
	if (m->fail_at > 0 && m->pos + n > m->fail_at)
		n = m->fail_at - m->pos;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	*got = n;
	return DC_OK;
}

static dc_code
file_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err)
{
	FILE *f = ctx;

	*got = fread(buf, 1, cap, f);
	if (*got == 0 && ferror(f))
		return dc_err_set(err, DC_EIO, "read error");
	return DC_OK;
}

/* A generated report: header, n records, footer, produced on the fly. */
typedef struct gen_reader {
	uint64_t n, done;
	int stage; /* 0 header, 1 records, 2 footer, 3 end */
	char pending[1024];
	size_t plen, ppos;
} gen_reader;

static dc_code
gen_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err)
{
	gen_reader *g = ctx;
	(void)err;

	*got = 0;
	while (*got < cap) {
		size_t n;
		if (g->ppos == g->plen) {
			if (g->stage == 0) {
				g->plen = (size_t)snprintf(g->pending, sizeof(g->pending), "%s",
					"<feedback><report_metadata><org_name>gen</org_name><report_id>g1</report_id>"
					"<date_range><begin>1700000000</begin><end>1700086399</end></date_range>"
					"</report_metadata><policy_published><domain>example.com</domain><p>none</p>"
					"</policy_published>\n");
				g->stage = 1;
			} else if (g->stage == 1 && g->done < g->n) {
				g->done++;
				g->plen = (size_t)snprintf(g->pending, sizeof(g->pending),
					"<record><row><source_ip>10.%u.%u.%u</source_ip><count>%" PRIu64
					"</count>"
					"<policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>"
					"</policy_evaluated></row><identifiers><header_from>example.com</header_from>"
					"<envelope_from></envelope_from></identifiers><auth_results><dkim>"
					"<domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>"
					"<spf><domain>host.example.net</domain><scope>helo</scope><result>pass</result></spf>"
					"</auth_results></record>\n",
					(unsigned)(g->done >> 16) & 255, (unsigned)(g->done >> 8) & 255,
					(unsigned)g->done & 255, g->done % 7 + 1);
			} else if (g->stage <= 1) {
				g->plen = (size_t)snprintf(g->pending, sizeof(g->pending), "</feedback>\n");
				g->stage = 2;
			} else
				return DC_OK;
			g->ppos = 0;
		}
		n = g->plen - g->ppos;
		if (n > cap - *got)
			n = cap - *got;
		memcpy((char *)buf + *got, g->pending + g->ppos, n);
		g->ppos += n;
		*got += n;
	}
	return DC_OK;
}

/* ------------------------------------------------------------ dumping sink */

typedef struct dump {
	char *buf;
	size_t len, cap;
	char calls[64];
	size_t ncalls;
	dc_code begin_rc, record_rc; /* what the callbacks return */
	uint64_t fail_record;        /* record_rc from this ordinal on */
} dump;

static void dump_line(dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
dump_line(dump *d, const char *fmt, ...)
{
	va_list ap;
	char line[8192];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(line));
	if (d->len + (size_t)n + 2 > d->cap) {
		d->cap = (d->len + (size_t)n + 2) * 2;
		d->buf = realloc(d->buf, d->cap);
		assert_non_null(d->buf);
	}
	memcpy(d->buf + d->len, line, (size_t)n);
	d->len += (size_t)n;
	d->buf[d->len++] = '\n';
	d->buf[d->len] = '\0';
}

static void
dump_call(dump *d, char c)
{
	if (d->ncalls < sizeof(d->calls) - 1)
		d->calls[d->ncalls++] = c;
	d->calls[d->ncalls] = '\0';
}

#define S(x) ((x) ? (x) : "(null)")

static void
dump_report(dump *d, char tag, const dc_report *r)
{
	dump_line(d, "%c xmlns=%s", tag, S(r->xmlns));
	dump_line(d, "%c version=%s", tag, S(r->version));
	dump_line(d, "%c org_name=%s", tag, S(r->org_name));
	dump_line(d, "%c org_email=%s", tag, S(r->org_email));
	dump_line(d, "%c extra_contact_info=%s", tag, S(r->extra_contact_info));
	dump_line(d, "%c report_id=%s", tag, S(r->report_id));
	dump_line(d, "%c date_begin=%" PRId64, tag, r->date_begin);
	dump_line(d, "%c date_end=%" PRId64, tag, r->date_end);
	dump_line(d, "%c generator=%s", tag, S(r->generator));
	dump_line(d, "%c errors=%s", tag, S(r->errors));
	dump_line(d, "%c policy_domain=%s", tag, S(r->policy_domain));
	dump_line(d, "%c adkim=%s", tag, S(r->policy_adkim));
	dump_line(d, "%c aspf=%s", tag, S(r->policy_aspf));
	dump_line(d, "%c p=%s", tag, S(r->policy_p));
	dump_line(d, "%c sp=%s", tag, S(r->policy_sp));
	dump_line(d, "%c np=%s", tag, S(r->policy_np));
	dump_line(d, "%c testing=%s", tag, S(r->policy_testing));
	dump_line(d, "%c discovery_method=%s", tag, S(r->policy_discovery_method));
	dump_line(d, "%c fo=%s", tag, S(r->policy_fo));
	dump_line(d, "%c pct=%d", tag, r->policy_pct);
}

static dc_code
dump_begin(void *ctx, const dc_report *r, const dc_blob *origin, dc_err *err)
{
	dump *d = ctx;
	(void)origin;
	dump_call(d, 'B');
	dump_report(d, 'B', r);
	if (d->begin_rc != DC_OK)
		return dc_err_set(err, d->begin_rc, "begin says no");
	return DC_OK;
}

static dc_code
dump_record(void *ctx, const dc_report *r, const dc_record *c, dc_err *err)
{
	dump *d = ctx;
	uint64_t k = c->ordinal;
	(void)r;

	dump_call(d, 'R');
	dump_line(d, "R%" PRIu64 " source_ip=%s", k, S(c->source_ip));
	dump_line(d, "R%" PRIu64 " count=%" PRId64, k, c->message_count);
	dump_line(d, "R%" PRIu64 " disposition=%s", k, S(c->disposition));
	dump_line(d, "R%" PRIu64 " dkim_aligned=%s", k, S(c->dkim_aligned));
	dump_line(d, "R%" PRIu64 " spf_aligned=%s", k, S(c->spf_aligned));
	dump_line(d, "R%" PRIu64 " header_from=%s", k, S(c->header_from));
	dump_line(d, "R%" PRIu64 " envelope_from=%s", k, S(c->envelope_from));
	dump_line(d, "R%" PRIu64 " envelope_to=%s", k, S(c->envelope_to));
	dump_line(d, "R%" PRIu64 " n_reasons=%zu n_dkim=%zu n_spf=%zu", k, c->n_reasons, c->n_dkim, c->n_spf);
	for (size_t i = 0; i < c->n_reasons; i++)
		dump_line(d, "R%" PRIu64 " reason%zu=%s|%s", k, i + 1, S(c->reasons[i].type),
			S(c->reasons[i].comment));
	for (size_t i = 0; i < c->n_dkim; i++)
		dump_line(d, "R%" PRIu64 " dkim%zu=%s|%s|%s|%s", k, i + 1, S(c->dkim[i].domain),
			S(c->dkim[i].selector), S(c->dkim[i].result), S(c->dkim[i].human_result));
	for (size_t i = 0; i < c->n_spf; i++)
		dump_line(d, "R%" PRIu64 " spf%zu=%s|%s|%s|%s", k, i + 1, S(c->spf[i].domain),
			S(c->spf[i].scope), S(c->spf[i].result), S(c->spf[i].human_result));
	if (d->record_rc != DC_OK && k >= d->fail_record)
		return dc_err_set(err, d->record_rc, "record sink failed");
	return DC_OK;
}

static dc_code
dump_end(void *ctx, const dc_report *r, dc_err *err)
{
	dump *d = ctx;
	(void)err;
	dump_call(d, 'E');
	dump_report(d, 'E', r);
	return DC_OK;
}

static const dc_sink dump_sink_proto = { NULL, dump_begin, dump_record, dump_end, NULL, NULL, NULL };

/* ------------------------------------------------------------ the table */

#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define META \
	"<report_metadata><org_name>Example Org</org_name><email>dmarc@example.org</email>" \
	"<report_id>r-1</report_id><date_range><begin>1700000000</begin><end>1700086399</end>" \
	"</date_range></report_metadata>"
#define POLICY "<policy_published><domain>example.com</domain><p>none</p></policy_published>"
#define REC(ip, n) \
	"<record><row><source_ip>" ip "</source_ip><count>" #n "</count><policy_evaluated>" \
	"<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>" \
	"<identifiers><header_from>example.com</header_from></identifiers><auth_results><spf>" \
	"<domain>example.com</domain><result>pass</result></spf></auth_results></record>"
/* 1024 bytes, so that what follows is beyond libxml2's read-ahead */
#define PAD16     "                "
#define PAD128    PAD16 PAD16 PAD16 PAD16 PAD16 PAD16 PAD16 PAD16
#define PAD       PAD128 PAD128 PAD128 PAD128 PAD128 PAD128 PAD128 PAD128
#define DOC(body) DECL "<feedback>" META POLICY body "</feedback>\n"

typedef struct xml_case {
	const char *name;
	const char *xml;
	size_t len; /* 0: strlen(xml) */
	bool utf16; /* hand over as UTF-16LE with a BOM (xml is ASCII) */
	dc_code rc;
	const char *msg;       /* substring of the error message, NULL: any */
	const char *calls;     /* expected sink calls, e.g. "BRRE" */
	const char *lines[24]; /* lines the dump must hold */
	uint64_t max_records;  /* 0: default */
	const char *origin_notes;
} xml_case;

static const xml_case cases[] = {
	{
		.name = "RFC 7489 report, every field",
		.xml = DECL
		"<feedback>\n <version>1.0</version>\n"
		" <report_metadata>\n  <org_name> google.com </org_name>\n  <email>noreply-dmarc-support@google.com</email>\n"
		"  <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>\n"
		"  <report_id>123456789</report_id>\n  <date_range><begin>1700000000</begin><end>1700086399</end></date_range>\n"
		"  <error>first problem</error><error> second problem </error>\n </report_metadata>\n"
		" <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>s</aspf><p>reject</p>"
		"<sp>quarantine</sp><pct>50</pct><fo>1</fo></policy_published>\n"
		" <record><row><source_ip>192.0.2.1</source_ip><count>12</count><policy_evaluated>"
		"<disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf>"
		"<reason><type>forwarded</type><comment>list</comment></reason><reason><type>other</type></reason>"
		"</policy_evaluated></row>"
		"<identifiers><envelope_to>example.net</envelope_to><envelope_from>bounce.example.com</envelope_from>"
		"<header_from>example.com</header_from></identifiers>"
		"<auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>fail</result>"
		"<human_result>bad sig</human_result></dkim><dkim><domain>esp.example</domain><result>pass</result></dkim>"
		"<spf><domain>bounce.example.com</domain><scope>mfrom</scope><result>softfail</result></spf>"
		"<spf><domain>mx.example.com</domain><scope>helo</scope><result>pass</result></spf></auth_results></record>\n"
		" <record><row><source_ip>2001:db8::1</source_ip><count>3</count><policy_evaluated>"
		"<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>"
		"<identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim>"
		"<domain>example.com</domain><result>pass</result></dkim><spf><domain>example.com</domain>"
		"<result>pass</result></spf></auth_results></record>\n</feedback>\n",
		.rc = DC_OK,
		.calls = "BRRE",
		.lines = { "B xmlns=(null)", "B version=1.0", "B org_name=google.com",
			"B org_email=noreply-dmarc-support@google.com",
			"B extra_contact_info=https://support.google.com/a/answer/2466580",
			"B report_id=123456789", "B date_begin=1700000000", "B date_end=1700086399",
			"B errors=first problem; second problem", "B policy_domain=example.com", "B adkim=r",
			"B aspf=s", "B p=reject", "B sp=quarantine", "B pct=50", "B fo=1", "B np=(null)",
			"R1 source_ip=192.0.2.1", "R1 count=12", "R1 reason1=forwarded|list",
			"R1 reason2=other|(null)", "R1 dkim1=example.com|s1|fail|bad sig",
			"R1 spf2=mx.example.com|helo|pass|(null)", "R2 source_ip=2001:db8::1" },
	},
	{
		.name = "RFC 7489 record details",
		.xml = DOC(
			"<record><row><source_ip>192.0.2.1</source_ip><count>12</count><policy_evaluated>"
			"<disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>"
			"<identifiers><envelope_to>example.net</envelope_to><envelope_from>bounce.example.com</envelope_from>"
			"<header_from>example.com</header_from></identifiers>"
			"<auth_results><dkim><domain>example.com</domain><result>fail</result></dkim>"
			"<spf><domain>bounce.example.com</domain><scope>mfrom</scope><result>softfail</result></spf>"
			"</auth_results></record>"),
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "R1 disposition=reject", "R1 dkim_aligned=fail", "R1 spf_aligned=fail",
			"R1 header_from=example.com", "R1 envelope_from=bounce.example.com",
			"R1 envelope_to=example.net", "R1 n_reasons=0 n_dkim=1 n_spf=1",
			"R1 dkim1=example.com|(null)|fail|(null)",
			"R1 spf1=bounce.example.com|mfrom|softfail|(null)", "E errors=(null)" },
	},
	{
		.name = "RFC 9990 report with namespace and extensions",
		.xml = "<?xml version=\"1.0\"?>\n<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">\n"
		       "<version>1.0</version><report_metadata><org_name>Sample Reporter</org_name>"
		       "<email>r@example-reporter.com</email><report_id>3v98</report_id>"
		       "<date_range><begin>302832000</begin><end>302918399</end></date_range>"
		       "<generator>Example Reporter v1.2</generator></report_metadata>"
		       "<policy_published><domain>example.com</domain><p>quarantine</p><sp>none</sp><np>none</np>"
		       "<testing>N</testing><discovery_method>treewalk</discovery_method></policy_published>"
		       "<extensions><ext xmlns=\"urn:example:ext\"><deep><deeper>x</deeper></deep></ext></extensions>"
		       "<record><row><source_ip>192.0.2.123</source_ip><count>123</count><policy_evaluated>"
		       "<disposition>pass</disposition><dkim>pass</dkim><spf>fail</spf>"
		       "<reason><type>policy_test_mode</type></reason></policy_evaluated></row>"
		       "<identifiers><envelope_from>example.com</envelope_from><header_from>example.com</header_from>"
		       "</identifiers><auth_results><dkim><domain>example.com</domain><selector>abc123</selector>"
		       "<result>pass</result><human_result>good</human_result></dkim><spf><domain>example.com</domain>"
		       "<scope>mfrom</scope><result>fail</result><human_result>no</human_result></spf></auth_results>"
		       "<extensions><x>1</x></extensions></record></feedback>",
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "B xmlns=urn:ietf:params:xml:ns:dmarc-2.0", "B generator=Example Reporter v1.2",
			"B np=none", "B testing=n", "B discovery_method=treewalk", "B pct=-1",
			"B adkim=(null)", "R1 disposition=pass", "R1 reason1=policy_test_mode|(null)",
			"R1 dkim1=example.com|abc123|pass|good", "R1 spf1=example.com|mfrom|fail|no" },
	},
	{
		.name = "old dmarc-xml/0.2 namespace with a prefix",
		.xml = "<d:feedback xmlns:d=\"http://dmarc.org/dmarc-xml/0.2\"><d:report_metadata>"
		       "<d:org_name>o</d:org_name><d:report_id>i</d:report_id><d:date_range><d:begin>1</d:begin>"
		       "<d:end>2</d:end></d:date_range></d:report_metadata><d:policy_published><d:domain>example.com"
		       "</d:domain></d:policy_published><d:record><d:row><d:source_ip>192.0.2.9</d:source_ip>"
		       "<d:count>4</d:count></d:row></d:record></d:feedback>",
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "B xmlns=http://dmarc.org/dmarc-xml/0.2", "B org_name=o", "B date_begin=1",
			"B date_end=2", "R1 source_ip=192.0.2.9", "R1 count=4", "R1 disposition=(null)" },
	},
	{
		.name = "unbound prefix: names still match",
		.xml = "<d:feedback><d:report_metadata><d:report_id>i</d:report_id><d:date_range><d:begin>1</d:begin>"
		       "<d:end>2</d:end></d:date_range></d:report_metadata></d:feedback>",
		.rc = DC_OK,
		.calls = "BE",
		.lines = { "B report_id=i",
			"E errors=no report_metadata/org_name, stored as ''; "
			"no policy_published/domain, stored as ''" },
	},
	{
		.name = "envelope_from absent, empty, whitespace, <>",
		.xml = DOC(
			"<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row>"
			"<identifiers><header_from>example.com</header_from></identifiers></record>"
			"<record><row><source_ip>192.0.2.2</source_ip><count>1</count></row>"
			"<identifiers><envelope_from/><header_from>example.com</header_from></identifiers></record>"
			"<record><row><source_ip>192.0.2.3</source_ip><count>1</count></row>"
			"<identifiers><envelope_from> \n </envelope_from></identifiers></record>"
			"<record><row><source_ip>192.0.2.4</source_ip><count>1</count></row>"
			"<identifiers><envelope_from>&lt;&gt;</envelope_from></identifiers></record>"
			"<record><row><source_ip>192.0.2.5</source_ip><count>1</count></row>"
			"<identifiers><envelope_from><![CDATA[<>]]></envelope_from></identifiers></record>"),
		.rc = DC_OK,
		.calls = "BRRRRRE",
		.lines = { "R1 envelope_from=(null)", "R2 envelope_from=", "R3 envelope_from=",
			"R4 envelope_from=<>", "R5 envelope_from=<>", "R3 header_from=(null)" },
	},
	{
		.name = "fixed vocabularies lower-cased, hardfail read as fail",
		.xml = DECL
		"<feedback>" META
		"<policy_published><domain>Example.COM</domain><adkim>R</adkim><aspf>S</aspf><p> Reject </p>"
		"<sp>Quarantine</sp><np>NONE</np><testing>Y</testing><discovery_method>PSL</discovery_method>"
		"</policy_published><record><row><source_ip>192.0.2.1</source_ip><count>1</count>"
		"<policy_evaluated><disposition>None</disposition><dkim>Pass</dkim><spf>FAIL</spf>"
		"<reason><type>Local_Policy</type><comment>Keep Case</comment></reason></policy_evaluated></row>"
		"<identifiers><header_from>Example.COM</header_from></identifiers><auth_results><dkim>"
		"<domain>Example.COM</domain><selector>SeL</selector><result>Pass</result><human_result>OK Then"
		"</human_result></dkim><spf><domain>Example.COM</domain><scope>HELO</scope><result>HardFail</result>"
		"</spf></auth_results></record></feedback>",
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "B policy_domain=Example.COM", "B adkim=r", "B aspf=s", "B p=reject",
			"B sp=quarantine", "B np=none", "B testing=y", "B discovery_method=psl",
			"R1 disposition=none", "R1 dkim_aligned=pass", "R1 spf_aligned=fail",
			"R1 reason1=local_policy|Keep Case", "R1 header_from=Example.COM",
			"R1 dkim1=Example.COM|SeL|pass|OK Then", "R1 spf1=Example.COM|helo|fail|(null)",
			"E errors=14 upper-case value(s) lower-cased; 1 SPF result(s) 'hardfail' read as 'fail'" },
	},
	{
		.name = "no records: report_begin at </feedback>",
		.xml = DOC(""),
		.rc = DC_OK,
		.calls = "BE",
		.lines = { "B org_name=Example Org", "E errors=(null)" },
	},
	{
		.name = "repair: leading whitespace and BOM before the declaration",
		.xml = "\xEF\xBB\xBF \r\n  " DOC(REC("192.0.2.1", 1)),
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "B errors=leading whitespace before the XML declaration removed",
			"E errors=leading whitespace before the XML declaration removed" },
	},
	{
		.name = "a BOM alone is no repair",
		.xml = "\xEF\xBB\xBF" DOC(REC("192.0.2.1", 1)),
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "E errors=(null)" },
	},
	{
		.name = "repair: invalid UTF-8 replaced (declared UTF-8)",
		.xml = DOC(
			"<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row>"
			"<identifiers><header_from>bad\x91x\xC3\xA9\xE2\x82</header_from><envelope_to>\xED\xA0\x80"
			"</envelope_to></identifiers></record>"),
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "R1 header_from=bad\xEF\xBF\xBDx\xC3\xA9\xEF\xBF\xBD",
			"R1 envelope_to=\xEF\xBF\xBD",
			"E errors=3 invalid UTF-8 sequence(s) replaced with U+FFFD" },
	},
	{
		.name = "repair: invalid UTF-8 replaced (no declaration)",
		.xml = "<feedback>" META
		       "<policy_published><domain>ex\xFF.com</domain></policy_published></feedback>",
		.rc = DC_OK,
		.calls = "BE",
		.lines = { "B policy_domain=ex\xEF\xBF\xBD.com",
			"E errors=1 invalid UTF-8 sequence(s) replaced with U+FFFD" },
	},
	{
		.name = "ISO-8859-1 declared: converted, not repaired",
		.xml = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><feedback>" META
		       "<policy_published><domain>caf\xE9.example</domain></policy_published></feedback>",
		.rc = DC_OK,
		.calls = "BE",
		.lines = { "B policy_domain=caf\xC3\xA9.example", "E errors=(null)" },
	},
	{
		.name = "UTF-16 document",
		.xml = "<feedback><report_metadata><report_id>x</report_id><date_range><begin>5</begin>"
		       "<end>6</end></date_range></report_metadata></feedback>",
		.utf16 = true,
		.rc = DC_OK,
		.calls = "BE",
		.lines = { "B report_id=x", "B date_begin=5", "B date_end=6" },
	},
	{
		.name = "repair: content after </feedback> ignored",
		.xml = DOC(REC("192.0.2.1", 1)) "garbage <b>more</c> \x01\xFF",
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "E errors=content after </feedback> ignored" },
	},
	{
		.name = "reject: a second report after </feedback>",
		.xml = DOC(REC("192.0.2.1", 1)) "\n" DOC(REC("192.0.2.2", 1)),
		.rc = DC_ESCHEMA,
		.msg = "another <feedback> follows </feedback>",
		.calls = "BR",
	},
	{
		.name = "reject: a second prefixed report after </feedback>",
		.xml = DOC(REC("192.0.2.1", 1)) "junk <x:feedback xmlns:x='u'/>",
		.rc = DC_ESCHEMA,
		.msg = "another <feedback> follows </feedback>",
		.calls = "BR",
	},
	{
		.name = "whitespace and comments after </feedback> are fine",
		.xml = DOC(REC("192.0.2.1", 1)) "\n<!-- end -->\n",
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "E errors=(null)" },
	},
	{
		.name = "</feedback> inside comments, CDATA and PIs does not end the report",
		.xml = DECL "<!-- </feedback> --><feedback><?pi </feedback> ?>" META
			    "<policy_published><domain><![CDATA[a</feedback>b]]></domain></policy_published>"
			    "<!-- <feedback> -->" REC("192.0.2.1", 1) "</feedback >",
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "B policy_domain=a</feedback>b", "R1 source_ip=192.0.2.1", "E errors=(null)" },
	},
	{
		.name = "a nested <feedback> in an extension does not end the report",
		.xml = DOC("<extensions><feedback a='>'><x/></feedback><feedback/></extensions>" REC(
			"192.0.2.1", 1)),
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "E errors=(null)" },
	},
	{
		.name = "repair: <xs:schema> wrapper around <feedback> (ikea.com)",
		.xml = "<?xml version=\"1.0\"?> <xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" "
		       "targetNamespace=\"http://dmarc.org/dmarc-xml/0.1\">\n<feedback>" META POLICY REC(
			       "192.0.2.1", 1) "</feedback>",
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "E errors=<xs:schema> start tag around <feedback> removed" },
	},
	{
		.name = "repair: dates written as integral decimals",
		.xml = DECL
		"<feedback><report_metadata><org_name>163.com</org_name><report_id>x</report_id>"
		"<date_range><begin>1337270400.0</begin><end> 1337356799.00 </end></date_range></report_metadata>" POLICY
		"</feedback>",
		.rc = DC_OK,
		.calls = "BE",
		.lines = { "B date_begin=1337270400", "B date_end=1337356799",
			"E errors=date_range begin '1337270400.0' read as 1337270400; "
			"date_range end '1337356799.00' read as 1337356799" },
	},
	{
		.name = "repair: missing count, missing source_ip, bad pct, bare & and a control character",
		.xml = DECL
		"<feedback><report_metadata><org_name>AT&T</org_name><report_id>x&#65;&amp;</report_id>"
		"<date_range><begin>1</begin><end>2</end></date_range><error>bad\x01 thing</error></report_metadata>"
		"<policy_published><domain>example.com</domain><pct>150</pct></policy_published>"
		"<record><row><source_ip>192.0.2.1</source_ip></row></record>"
		"<record><row><source_ip/><count>0</count></row></record>"
		"<record><row><count>2.0</count></row></record></feedback>",
		.rc = DC_OK,
		.calls = "BRRRE",
		.origin_notes = "gzip member 2 ignored",
		.lines = { "B org_name=AT&T", "B report_id=xA&", "B pct=-1", "R1 count=-1",
			"R2 source_ip=", "R2 count=0", "R3 source_ip=(null)", "R3 count=2",
			"E errors=bad\xEF\xBF\xBD thing; policy_published/pct '150' is not 0-100, ignored; 1 bare '&' escaped; "
			"1 control character(s) replaced with U+FFFD; 1 record(s) without <count>; "
			"1 <count> value(s) written as decimals read as integers; 2 record(s) without source_ip; "
			"gzip member 2 ignored" },
	},
	{
		.name = "unknown elements skipped, markup inside a value ignored",
		.xml = DOC(
			"<record><row><source_ip>192.0.2.1<!-- c --></source_ip><count>7</count><vendor>"
			"<source_ip>10.0.0.1</source_ip></vendor></row><identifiers><header_from>a<b>zzz</b>b"
			"</header_from></identifiers></record>"),
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "R1 source_ip=192.0.2.1", "R1 count=7", "R1 header_from=ab" },
	},
	/* rejections */
	{
		.name = "reject: root is not <feedback>",
		.xml = DECL "<report>" META "</report>",
		.rc = DC_ESCHEMA,
		.msg = "root element is <report>, not <feedback>",
		.calls = "",
	},
	{
		.name = "reject: DOCTYPE",
		.xml = DECL "<!DOCTYPE feedback>\n<feedback>" META POLICY "</feedback>",
		.rc = DC_ESCHEMA,
		.msg = "DOCTYPE not allowed",
		.calls = "",
	},
	{
		.name = "reject: external entities are never fetched",
		.xml = DECL
		"<!DOCTYPE feedback [ <!ENTITY x SYSTEM \"file:///etc/passwd\"> "
		"<!ENTITY y SYSTEM \"http://127.0.0.1:9/x\"> ]>\n<feedback><report_metadata><org_name>&x;&y;"
		"</org_name></report_metadata></feedback>",
		.rc = DC_ESCHEMA,
		.msg = "DOCTYPE",
		.calls = "",
	},
	{
		.name = "reject: external DTD",
		.xml = DECL "<!DOCTYPE feedback SYSTEM \"http://127.0.0.1:9/evil.dtd\"><feedback/>",
		.rc = DC_ESCHEMA,
		.msg = "DOCTYPE",
		.calls = "",
	},
	{
		.name = "reject: billion laughs",
		.xml = DECL
		"<!DOCTYPE lolz [<!ENTITY lol \"lol\">"
		"<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
		"<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
		"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
		"<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
		"<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
		"<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
		"<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
		"<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
		"<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"
		"<feedback a=\"&lol9;\"><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>",
		.rc = DC_ESCHEMA,
		.msg = "DOCTYPE",
		.calls = "",
	},
	{
		.name = "reject: undeclared entity reference is escaped, not expanded",
		.xml = DOC("<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row><identifiers>"
			   "<header_from>&xxe;</header_from></identifiers></record>"),
		.rc = DC_OK,
		.calls = "BRE",
		.lines = { "R1 header_from=&xxe;", "E errors=1 bare '&' escaped" },
	},
	{
		.name = "reject: broken after two good records",
		.xml = DECL "<feedback>" META POLICY REC("192.0.2.1", 1) REC("192.0.2.2",
			2) "\n" PAD PAD "<record><row><source_ip>192.0.2.3</row></record></feedback>",
		.rc = DC_EXML,
		.msg = "XML not well-formed at line 3: Opening and ending tag mismatch",
		.calls = "BRR",
		.lines = { "R2 source_ip=192.0.2.2" },
	},
	{
		.name = "reject: truncated",
		.xml = DECL "<feedback>" META POLICY REC("192.0.2.1", 1) PAD PAD "<record><row>",
		.rc = DC_EXML,
		.msg = "document ends inside <feedback> (truncated)",
		.calls = "BR",
	},
	{
		.name = "reject: <feedback/>",
		.xml = DECL "<feedback/>\n",
		.rc = DC_ESCHEMA,
		.msg = "report has no report_metadata/date_range/begin",
		.calls = "",
	},
	{
		.name = "reject: empty input",
		.xml = "",
		.rc = DC_EXML,
		.msg = "XML not well-formed",
		.calls = "",
	},
	{
		.name = "reject: not XML",
		.xml = "This is not XML at all\n",
		.rc = DC_EXML,
		.msg = "XML not well-formed at line 1",
		.calls = "",
	},
	{
		.name = "reject: too many records",
		.xml = DOC(REC("192.0.2.1", 1) REC("192.0.2.2", 1) REC("192.0.2.3", 1)),
		.max_records = 2,
		.rc = DC_ETOOMANY_RECORDS,
		.msg = "more than 2 records",
		.calls = "BRR",
	},
	{
		.name = "reject: too deep",
		.xml = DOC(
			"<a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>"
			"<a><a><a><a><a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a>"
			"</a></a></a></a></a></a></a></a></a></a></a></a></a></a></a>"),
		.rc = DC_ETOODEEP,
		.msg = "deeper than 32",
		.calls = "",
	},
	{
		.name = "reject: missing date_range",
		.xml = DECL "<feedback><report_metadata><org_name>o</org_name><report_id>i</report_id>"
			    "</report_metadata>" POLICY REC("192.0.2.1", 1) "</feedback>",
		.rc = DC_ESCHEMA,
		.msg = "no report_metadata/date_range/begin",
		.calls = "",
	},
	{
		.name = "reject: non-numeric date",
		.xml = DECL "<feedback><report_metadata><report_id>i</report_id><date_range><begin>1</begin>"
			    "<end>tomorrow</end></date_range></report_metadata></feedback>",
		.rc = DC_ESCHEMA,
		.msg = "date_range end 'tomorrow' is not a number",
		.calls = "",
	},
	{
		.name = "reject: fractional date",
		.xml = DECL
		"<feedback><report_metadata><report_id>i</report_id><date_range><begin>1.5</begin>"
		"<end>2</end></date_range></report_metadata></feedback>",
		.rc = DC_ESCHEMA,
		.msg = "date_range begin '1.5' is not a number",
		.calls = "",
	},
	{
		.name = "reject: date beyond the year 9999",
		.xml = DECL "<feedback><report_metadata><report_id>i</report_id><date_range><begin>1</begin>"
			    "<end>9223372036854775807</end></date_range></report_metadata></feedback>",
		.rc = DC_ESCHEMA,
		.msg = "is beyond the year 9999",
		.calls = "",
	},
	{
		.name = "reject: date that overflows",
		.xml = DECL "<feedback><report_metadata><report_id>i</report_id><date_range><begin>1</begin>"
			    "<end>9223372036854775808</end></date_range></report_metadata></feedback>",
		.rc = DC_ESCHEMA,
		.msg = "is not a number",
		.calls = "",
	},
	{
		.name = "reject: implausible count",
		.xml = DOC(REC("192.0.2.1", 1000000000001)),
		.rc = DC_ESCHEMA,
		.msg = "record 1: count 1000000000001 is implausibly large",
		.calls = "B",
	},
	{
		.name = "reject: missing report_id",
		.xml = DECL "<feedback><report_metadata><org_name>o</org_name><date_range><begin>1</begin>"
			    "<end>2</end></date_range></report_metadata></feedback>",
		.rc = DC_ESCHEMA,
		.msg = "no report_metadata/report_id",
		.calls = "",
	},
	{
		.name = "reject: non-numeric count",
		.xml = DOC("<record><row><source_ip>192.0.2.1</source_ip><count>many</count></row></record>"),
		.rc = DC_ESCHEMA,
		.msg = "record 1: count 'many' is not a number",
		.calls = "B",
	},
	{
		.name = "reject: source_ip not an address",
		.xml = DOC(REC("192.0.2.1", 1) REC("not-an-ip", 1)),
		.rc = DC_ESCHEMA,
		.msg = "record 2: source_ip 'not-an-ip' is not an IP address",
		.calls = "BR",
	},
	{
		.name = "reject: element given twice",
		.xml = DOC(
			"<record><row><source_ip>192.0.2.1</source_ip><source_ip>192.0.2.2</source_ip></row></record>"),
		.rc = DC_ESCHEMA,
		.msg = "record/row/source_ip given twice",
		.calls = "B",
	},
	{
		.name = "reject: metadata after the first record",
		.xml = DOC(REC("192.0.2.1", 1) POLICY),
		.rc = DC_ESCHEMA,
		.msg = "<policy_published> after the first <record>",
		.calls = "BR",
	},
	{
		.name = "reject: too many reasons",
		.xml = DOC("<record><row><policy_evaluated>"
			   "<reason/><reason/><reason/><reason/><reason/><reason/><reason/><reason/>"
			   "<reason/><reason/><reason/><reason/><reason/><reason/><reason/><reason/><reason/>"
			   "</policy_evaluated></row></record>"),
		.rc = DC_ETOOLONG,
		.msg = "more than 16 reasons",
		.calls = "B",
	},
};

/* A field of DC_MAX_FIELD_BYTES + 1 bytes, built at run time. */
static char *
long_field_doc(size_t n)
{
	const char *head = DECL "<feedback>" META POLICY "<record><row><source_ip>192.0.2.1</source_ip></row>"
				"<identifiers><header_from>";
	const char *tail = "</header_from></identifiers></record></feedback>";
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = malloc(hl + n + tl + 1);

	assert_non_null(s);
	memcpy(s, head, hl);
	memset(s + hl, 'a', n);
	memcpy(s + hl + n, tail, tl + 1);
	return s;
}

static char *
many_auth_doc(int n)
{
	size_t cap = 4096 + (size_t)n * 64, len;
	char *s = malloc(cap);

	assert_non_null(s);
	len = (size_t)snprintf(s, cap, "%s", DECL "<feedback>" META POLICY "<record><auth_results>");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "<dkim><domain>d%d</domain></dkim>", i);
	snprintf(s + len, cap - len, "</auth_results></record></feedback>");
	return s;
}

/* Runs one document through dc_xml_parse in pieces of `piece` bytes. */
static dc_code
run_doc(const char *xml, size_t len, size_t piece, uint64_t max_records, const char *origin_notes, dump *d,
	dc_err *err)
{
	mem_reader m = { xml, len, 0, piece, 0 };
	dc_limits lim;
	dc_blob origin = { (const uint8_t *)xml, len, "test.xml", NULL, origin_notes, NULL };
	dc_sink sink = dump_sink_proto;

	dc_limits_default(&lim);
	if (max_records)
		lim.max_records = max_records;
	sink.ctx = d;
	dc_err_clear(err);
	return dc_xml_parse(mem_read, &m, &lim, &origin, &sink, err);
}

static bool
has_line(const dump *d, const char *line)
{
	size_t n = strlen(line);
	const char *p = d->buf;

	while (p != NULL && *p) {
		if (strncmp(p, line, n) == 0 && p[n] == '\n')
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static void
test_cases(void **state)
{
	static const size_t pieces[] = { 0, 7, 1 };
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const xml_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->xml);
		char *wide = NULL;
		const char *xml = c->xml;

		if (c->utf16) {
			wide = malloc(2 * len + 2);
			assert_non_null(wide);
			wide[0] = (char)0xFF;
			wide[1] = (char)0xFE;
			for (size_t k = 0; k < len; k++) {
				wide[2 + 2 * k] = c->xml[k];
				wide[3 + 2 * k] = 0;
			}
			xml = wide;
			len = 2 * len + 2;
		}

		for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
			dump d = { 0 };
			dc_err err;
			dc_code rc = run_doc(xml, len, pieces[p], c->max_records, c->origin_notes, &d, &err);

			if (rc != c->rc || (c->msg && strstr(err.msg, c->msg) == NULL) ||
				strcmp(d.calls, c->calls) != 0) {
				print_error(
					"case '%s' (piece %zu): rc %d (want %d), calls '%s' (want '%s'), msg '%s'\n%s",
					c->name, pieces[p], rc, c->rc, d.calls, c->calls, err.msg,
					d.buf ? d.buf : "");
				fail();
			}
			for (size_t l = 0; l < sizeof(c->lines) / sizeof(c->lines[0]) && c->lines[l]; l++)
				if (!has_line(&d, c->lines[l])) {
					print_error("case '%s' (piece %zu): missing line '%s' in\n%s",
						c->name, pieces[p], c->lines[l], d.buf ? d.buf : "");
					fail();
				}
			free(d.buf);
		}
		free(wide);
	}
}

/* Field length and auth-result caps at their edges. */
static void
test_caps(void **state)
{
	struct {
		char *doc;
		dc_code rc;
		const char *msg;
	} t[4];
	(void)state;

	t[0].doc = long_field_doc(DC_MAX_FIELD_BYTES);
	t[0].rc = DC_OK;
	t[0].msg = NULL;
	t[1].doc = long_field_doc(DC_MAX_FIELD_BYTES + 1);
	t[1].rc = DC_ETOOLONG;
	t[1].msg = "record/identifiers/header_from longer than 4096 bytes";
	t[2].doc = many_auth_doc(DC_MAX_AUTH_RESULTS);
	t[2].rc = DC_OK;
	t[2].msg = NULL;
	t[3].doc = many_auth_doc(DC_MAX_AUTH_RESULTS + 1);
	t[3].rc = DC_ETOOLONG;
	t[3].msg = "more than 64 dkim results";
	for (size_t i = 0; i < 4; i++) {
		dump d = { 0 };
		dc_err err;
		dc_code rc = run_doc(t[i].doc, strlen(t[i].doc), 0, 0, NULL, &d, &err);
		assert_int_equal(rc, t[i].rc);
		if (t[i].msg)
			assert_non_null(strstr(err.msg, t[i].msg));
		free(d.buf);
		free(t[i].doc);
	}
}

/* report_begin returning DC_SKIP stops the parse: no records, DC_SKIP back. */
static void
test_skip(void **state)
{
	const char *xml = DOC(REC("192.0.2.1", 1) REC("192.0.2.2", 1));
	dump d = { 0 };
	dc_err err;
	(void)state;

	d.begin_rc = DC_SKIP;
	assert_int_equal(run_doc(xml, strlen(xml), 0, 0, NULL, &d, &err), DC_SKIP);
	assert_string_equal(d.calls, "B");
	free(d.buf);
}

/* A sink error comes back unchanged, with the sink's message. */
static void
test_sink_error(void **state)
{
	const char *xml = DOC(REC("192.0.2.1", 1) REC("192.0.2.2", 1) REC("192.0.2.3", 1));
	dump d = { 0 };
	dc_err err;
	(void)state;

	d.record_rc = DC_EDB;
	d.fail_record = 2;
	assert_int_equal(run_doc(xml, strlen(xml), 0, 0, NULL, &d, &err), DC_EDB);
	assert_string_equal(err.msg, "record sink failed");
	assert_string_equal(d.calls, "BRR");
	free(d.buf);
}

/* A read error of the stream (e.g. corrupt gzip) is returned as is, also
 * when it happens after </feedback>. */
static void
test_read_error(void **state)
{
	const char *xml = DOC(
		REC("192.0.2.1", 1) REC("192.0.2.2", 1)) "                                     ";
	size_t len = strlen(xml);
	size_t at[] = { 10, len / 2, len - 5 };
	(void)state;

	for (size_t i = 0; i < 3; i++) {
		mem_reader m = { xml, len, 0, 0, at[i] };
		dump d = { 0 };
		dc_sink sink = dump_sink_proto;
		dc_err err;
		dc_limits lim;

		dc_limits_default(&lim);
		sink.ctx = &d;
		assert_int_equal(dc_xml_parse(mem_read, &m, &lim, NULL, &sink, &err), DC_EGZIP);
		assert_string_equal(err.msg, "gzip stream corrupt (test)");
		assert_null(strchr(d.calls, 'E'));
		free(d.buf);
	}
}

/* The record limit on a generated stream; records stream through without
 * being kept (the sink sees each once, in order). */
static void
test_generated(void **state)
{
	gen_reader g = { .n = 5000 };
	dump d = { 0 };
	dc_sink sink = { &d, NULL, NULL, NULL, NULL, NULL, NULL };
	dc_limits lim;
	dc_err err;
	(void)state;

	dc_limits_default(&lim);
	assert_int_equal(dc_xml_parse(gen_read, &g, &lim, NULL, &sink, &err), DC_OK);
	memset(&g, 0, sizeof(g));
	g.n = 5000;
	lim.max_records = 4999;
	assert_int_equal(dc_xml_parse(gen_read, &g, &lim, NULL, &sink, &err), DC_ETOOMANY_RECORDS);
	assert_non_null(strstr(err.msg, "more than 4999 records"));
}

/* libxml2 prints nothing of its own, whatever the input. */
static void
test_silent(void **state)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	long size;
	(void)state;

	assert_non_null(tmp);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_true(dup2(fileno(tmp), 2) >= 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dump d = { 0 };
		dc_err err;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].xml);
		(void)run_doc(cases[i].xml, len, 0, cases[i].max_records, NULL, &d, &err);
		free(d.buf);
	}
	{
		static const char *const more[] = {
			"<?xml version=\"1.0\" encoding=\"no-such-charset\"?><feedback/>",
			"<?xml version=\"1.0\" encoding=\"UTF-16\"?><feedback/>",
			"<feedback xmlns:a=\"\"><a:x/></feedback>",
			"<feedback><x xmlns=\"not a uri\"/></feedback>",
			"<feedback>&#1;</feedback>",
			"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><feedback>\x8D</a></feedback>",
			"<?xml version=\"1.0\" encoding=\"EUC-JP\"?><feedback>\xFF\xFF\xFF\n</feedback>",
			"\xFE\xFF\xFF\xD9<feedback/>",
		};
		for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
			dump d = { 0 };
			dc_err err;
			(void)run_doc(more[i], strlen(more[i]), 0, 0, NULL, &d, &err);
			free(d.buf);
		}
	}
	fflush(stderr);
	assert_true(dup2(saved, 2) >= 0);
	close(saved);
	size = ftell(tmp) >= 0 ? (fseek(tmp, 0, SEEK_END), ftell(tmp)) : -1;
	fclose(tmp);
	assert_int_equal(size, 0);
}

/* ------------------------------------------------------------ the corpus */

typedef struct counts {
	uint64_t n_records, total_count, n_empty_envelope_from, n_spf_scope_helo;
} counts;

static dc_code
count_record(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err)
{
	counts *k = ctx;
	(void)r;
	(void)err;
	k->n_records++;
	if (rec->message_count > 0)
		k->total_count += (uint64_t)rec->message_count;
	if (rec->envelope_from == NULL || rec->envelope_from[0] == '\0')
		k->n_empty_envelope_from++;
	for (size_t i = 0; i < rec->n_spf; i++)
		if (rec->spf[i].scope != NULL && strcmp(rec->spf[i].scope, "helo") == 0)
			k->n_spf_scope_helo++;
	return DC_OK;
}

/* Splits a tab-separated line in place; returns the number of fields. */
static size_t
split_tabs(char *line, char **f, size_t max)
{
	size_t n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	while (n < max) {
		f[n++] = line;
		line = strchr(line, '\t');
		if (line == NULL)
			break;
		*line++ = '\0';
	}
	return n;
}

typedef struct expect {
	char file[512];
	char code[32]; /* "ok" or "error" */
	counts k;
	bool from_differences;
	bool seen_manifest;
} expect;

static uint64_t
num(const char *s)
{
	return strtoull(s, NULL, 10);
}

static void
test_corpus(void **state)
{
	char line[8192], *f[16];
	FILE *fp;
	expect *ex = NULL;
	size_t n_ex = 0, checked = 0, differing = 0;
	(void)state;

	/* every bare XML file of the aggregate corpus */
	fp = fopen(DC_TEST_DATA "/corpus/files.tsv", "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		size_t n = split_tabs(line, f, 16);
		if (n < 3 || strcmp(f[2], "xml") != 0 || f[0][0] == '_')
			continue;
		ex = realloc(ex, (n_ex + 1) * sizeof(*ex));
		assert_non_null(ex);
		memset(&ex[n_ex], 0, sizeof(*ex));
		assert_true((size_t)snprintf(ex[n_ex].file, sizeof(ex[n_ex].file), "%s", f[0]) <
			sizeof(ex[n_ex].file));
		n_ex++;
	}
	fclose(fp);
	assert_true(n_ex > 50);

	/* what the manifest found */
	fp = fopen(DC_TEST_DATA "/corpus/manifest.tsv", "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		size_t n = split_tabs(line, f, 16);
		if (n < 12)
			continue;
		for (size_t i = 0; i < n_ex; i++) {
			if (strcmp(ex[i].file, f[0]) != 0)
				continue;
			ex[i].seen_manifest = true;
			snprintf(ex[i].code, sizeof(ex[i].code), "%s", f[7][0] ? "ok" : "error");
			ex[i].k.n_records = num(f[7]);
			ex[i].k.total_count = num(f[8]);
			ex[i].k.n_empty_envelope_from = num(f[9]);
			ex[i].k.n_spf_scope_helo = num(f[10]);
		}
	}
	fclose(fp);

	/* where we knowingly differ, and why (docs/README-xml.md) */
	fp = fopen(DC_TEST_DATA "/xml/differences.tsv", "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		size_t n = split_tabs(line, f, 16);
		bool found = false;
		if (line[0] == '#' || n < 7 || strcmp(f[0], "file") == 0)
			continue;
		for (size_t i = 0; i < n_ex; i++) {
			if (strcmp(ex[i].file, f[0]) != 0)
				continue;
			found = true;
			ex[i].from_differences = true;
			snprintf(ex[i].code, sizeof(ex[i].code), "%s", f[1]);
			ex[i].k.n_records = num(f[2]);
			ex[i].k.total_count = num(f[3]);
			ex[i].k.n_empty_envelope_from = num(f[4]);
			ex[i].k.n_spf_scope_helo = num(f[5]);
			differing++;
		}
		if (!found) {
			print_error("differences.tsv names %s, which is no bare XML corpus file\n", f[0]);
			fail();
		}
	}
	fclose(fp);

	for (size_t i = 0; i < n_ex; i++) {
		char path[1024];
		counts k = { 0 };
		dc_sink sink = { &k, NULL, count_record, NULL, NULL, NULL, NULL };
		dc_limits lim;
		dc_err err;
		dc_code rc;
		FILE *in;
		bool ok;

		if (!ex[i].seen_manifest)
			continue;
		snprintf(path, sizeof(path), "%s/corpus/%s", DC_TEST_DATA, ex[i].file);
		in = fopen(path, "rb");
		assert_non_null(in);
		dc_limits_default(&lim);
		rc = dc_xml_parse(file_read, in, &lim, NULL, &sink, &err);
		fclose(in);
		if (rc != DC_OK)
			memset(&k, 0, sizeof(k)); /* a rejected report stores nothing */
		ok = strcmp(ex[i].code, rc == DC_OK ? "ok" : "error") == 0 &&
			k.n_records == ex[i].k.n_records && k.total_count == ex[i].k.total_count &&
			k.n_empty_envelope_from == ex[i].k.n_empty_envelope_from &&
			k.n_spf_scope_helo == ex[i].k.n_spf_scope_helo;
		if (!ok) {
			print_error("%s: got %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
				    " (%s), want %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " (%s)\n",
				ex[i].file, rc == DC_OK ? "ok" : "error", k.n_records, k.total_count,
				k.n_empty_envelope_from, k.n_spf_scope_helo, rc == DC_OK ? "" : err.msg,
				ex[i].code, ex[i].k.n_records, ex[i].k.total_count,
				ex[i].k.n_empty_envelope_from, ex[i].k.n_spf_scope_helo,
				ex[i].from_differences ? "differences.tsv" : "manifest.tsv");
			fail();
		}
		checked++;
	}
	free(ex);
	assert_true(checked > 50);
	assert_true(differing > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_skip),
		cmocka_unit_test(test_sink_error),
		cmocka_unit_test(test_read_error),
		cmocka_unit_test(test_generated),
		cmocka_unit_test(test_silent),
		cmocka_unit_test(test_corpus),
	};

	dc_xml_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

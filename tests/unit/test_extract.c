/*
 * test_extract.c - dc_extract end to end with a counting sink:
 *  - every non-.xml file of the real corpus (e-mails, .gz, .zip, .zlib, .txt)
 *    gives the report, record and message totals of corpus/manifest.tsv,
 *    except the files listed with a reason in unpack/differences.tsv;
 *  - forensic (ARF) files give no report and a failure; every SMTP TLS
 *    report file gives one TLS report to sink.tls_report and no failure;
 *  - TLS reports: gzip, JSON that is no TLS report, a gzip bomb of JSON;
 *  - failure routing: a message with no report, a zip with a good and a bad
 *    member, duplicates (DC_SKIP), a sink's non-fatal and fatal (DC_EDB)
 *    errors, a failing failure callback, the message-size limit, a bomb;
 *  - the message's Message-ID (folded, missing, overlong, garbage), told
 *    once, before anything of the message, and only for a message input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <cmocka.h>

#include <zlib.h>

#include "dc_extract.h"
#include "dc_tlsrpt.h"

/* ------------------------------------------------------------ a counting sink */

typedef struct counter {
	uint64_t begun, records, messages, ended, aborted;
	/* failures seen */
	int n_fail;
	char stage[8][16];
	dc_code code[8];
	char why[8][512];
	char path[8][256];
	size_t unit_len[8];
	const uint8_t *unit[8];
	/* the origin of the last report begun */
	char o_name[256], o_path[256], o_notes[256];
	char end_errors[512]; /* the report's errors at report_end */
	size_t o_len;
	uint8_t o_head[4];
	/* behaviour */
	bool dedup; /* DC_SKIP for a report_id seen before */
	char seen[16][64];
	int n_seen;
	uint64_t fail_record_at; /* record callback fails at this record (1-based, 0 never) */
	dc_code fail_record_code;
	dc_code begin_code;   /* report_begin returns this when not DC_OK */
	dc_code failure_code; /* the failure callback returns this */
	/* SMTP TLS reports */
	uint64_t tls, tls_policies, tls_failures, tls_sessions;
	dc_code tls_code; /* tls_report returns this when not DC_OK */
	char tls_path[256];
} counter;

static dc_code
c_begin(void *ctx, const dc_report *r, const dc_blob *o, dc_err *err)
{
	counter *c = ctx;

	if (c->begin_code != DC_OK)
		return dc_err_set(err, c->begin_code, "sink refuses");
	if (c->dedup && r->report_id) {
		for (int i = 0; i < c->n_seen; i++)
			if (strcmp(c->seen[i], r->report_id) == 0)
				return DC_SKIP;
		if (c->n_seen < 16)
			snprintf(c->seen[c->n_seen++], 64, "%s", r->report_id);
	}
	c->begun++;
	snprintf(c->o_name, sizeof(c->o_name), "%s", o->name ? o->name : "(null)");
	snprintf(c->o_path, sizeof(c->o_path), "%s", o->path ? o->path : "(null)");
	snprintf(c->o_notes, sizeof(c->o_notes), "%s", o->notes ? o->notes : "(null)");
	c->o_len = o->len;
	memcpy(c->o_head, o->data, o->len < 4 ? o->len : 4);
	return DC_OK;
}

static dc_code
c_record(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err)
{
	counter *c = ctx;

	(void)r;
	c->records++;
	if (c->fail_record_at && c->records == c->fail_record_at)
		return dc_err_set(err, c->fail_record_code, "sink fails at record %llu",
			(unsigned long long)c->records);
	if (rec->message_count > 0)
		c->messages += (uint64_t)rec->message_count;
	return DC_OK;
}

static dc_code
c_end(void *ctx, const dc_report *r, dc_err *err)
{
	counter *c = ctx;

	(void)err;
	c->ended++;
	snprintf(c->end_errors, sizeof(c->end_errors), "%s", r->errors ? r->errors : "");
	return DC_OK;
}

static dc_code
c_tls(void *ctx, const dc_tls_report *r, const dc_blob *o, dc_err *err)
{
	counter *c = ctx;

	if (c->tls_code != DC_OK)
		return c->tls_code == DC_SKIP ? DC_SKIP : dc_err_set(err, c->tls_code, "sink refuses");
	c->tls++;
	c->tls_policies += r->n_policies;
	c->tls_failures += r->n_failures;
	for (size_t i = 0; i < r->n_policies; i++)
		c->tls_sessions += (uint64_t)(r->policies[i].successful_sessions > 0 ?
						   r->policies[i].successful_sessions :
						   0) +
			(uint64_t)(r->policies[i].failed_sessions > 0 ? r->policies[i].failed_sessions : 0);
	snprintf(c->tls_path, sizeof(c->tls_path), "%s", o->path ? o->path : "(null)");
	return DC_OK;
}

static void
c_abort(void *ctx)
{
	((counter *)ctx)->aborted++;
}

static dc_code
c_failure(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	counter *c = ctx;
	int i = c->n_fail++;

	if (i < 8) {
		snprintf(c->stage[i], sizeof(c->stage[i]), "%s", stage);
		c->code[i] = why->code;
		snprintf(c->why[i], sizeof(c->why[i]), "%s", why->msg);
		snprintf(c->path[i], sizeof(c->path[i]), "%s", unit->path ? unit->path : "(null)");
		c->unit_len[i] = unit->len;
		c->unit[i] = unit->data;
	}
	if (c->failure_code != DC_OK)
		return dc_err_set(err, c->failure_code, "cannot record the failure");
	return DC_OK;
}

static dc_code
run(const uint8_t *data, size_t len, const char *name, const dc_limits *lim, counter *c, dc_extract_stats *st,
	dc_err *err)
{
	dc_extract_cb cb = { { c, c_begin, c_record, c_end, c_abort, c_tls, NULL }, c_failure, c, NULL,
		NULL };
	dc_limits d;

	dc_limits_default(&d);
	memset(st, 0, sizeof(*st));
	return dc_extract(data, len, name, lim ? lim : &d, &cb, st, err);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	b[n] = '\0'; /* callers may use it as a string */
	*len = (size_t)n;
	return b;
}

static uint8_t *
data_file(const char *rel, size_t *len)
{
	char path[2048];

	snprintf(path, sizeof(path), "%s/%s", DC_TEST_DATA, rel);
	return slurp(path, len);
}

/* ------------------------------------------------------------ the corpus */

typedef struct expect {
	char file[512];
	uint64_t reports, records, messages, failures;
	bool difference;
} expect;

#define MAX_FILES 256

/* Splits a tab-separated line in place; returns the number of fields. */
static int
split(char *line, char **f, int max)
{
	int n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	f[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == '\t') {
			*p = '\0';
			f[n++] = p + 1;
		}
	return n;
}

static expect *
find(expect *e, int n, const char *file)
{
	for (int i = 0; i < n; i++)
		if (strcmp(e[i].file, file) == 0)
			return &e[i];
	return NULL;
}

static bool
is_xml_name(const char *f)
{
	size_t l = strlen(f);

	return l >= 4 && strcmp(f + l - 4, ".xml") == 0;
}

/* The manifest's totals per non-.xml file, overridden by differences.tsv. */
static int
load_expectations(expect *e)
{
	char path[1024], line[8192], *f[16];
	FILE *fp;
	int n = 0;

	snprintf(path, sizeof(path), "%s/corpus/manifest.tsv", DC_TEST_DATA);
	assert_non_null(fp = fopen(path, "r"));
	while (fgets(line, sizeof(line), fp)) {
		expect *x;

		if (split(line, f, 16) < 12 || strcmp(f[0], "file") == 0 || is_xml_name(f[0]))
			continue;
		if ((x = find(e, n, f[0])) == NULL) {
			assert_true(n < MAX_FILES);
			x = &e[n++];
			memset(x, 0, sizeof(*x));
			snprintf(x->file, sizeof(x->file), "%s", f[0]);
		}
		if (strcmp(f[11], "ok") == 0 || strstr(f[11], "recovered") != NULL) {
			x->reports++;
			x->records += strtoull(f[7], NULL, 10);
			x->messages += strtoull(f[8], NULL, 10);
		} else {
			x->failures++;
		}
	}
	fclose(fp);
	snprintf(path, sizeof(path), "%s/unpack/differences.tsv", DC_TEST_DATA);
	assert_non_null(fp = fopen(path, "r"));
	while (fgets(line, sizeof(line), fp)) {
		expect *x;

		if (split(line, f, 16) < 6 || strcmp(f[0], "file") == 0)
			continue;
		if ((x = find(e, n, f[0])) == NULL)
			fail_msg("differences.tsv names %s, which the manifest does not list", f[0]);
		if (strlen(f[5]) < 10)
			fail_msg("differences.tsv: %s needs a reason", f[0]);
		x->reports = strtoull(f[1], NULL, 10);
		x->records = strtoull(f[2], NULL, 10);
		x->messages = strtoull(f[3], NULL, 10);
		x->failures = strtoull(f[4], NULL, 10);
		x->difference = true;
	}
	fclose(fp);
	return n;
}

static void
test_corpus_manifest(void **state)
{
	static expect e[MAX_FILES];
	int n = load_expectations(e), bad = 0, diffs = 0;
	uint64_t reports = 0;

	(void)state;
	assert_true(n > 80);
	for (int i = 0; i < n; i++) {
		char path[2048];
		counter c;
		dc_extract_stats st;
		dc_err err;
		size_t len;
		uint8_t *b;

		if (snprintf(path, sizeof(path), "%s/corpus/%s", DC_TEST_DATA, e[i].file) >=
			(int)sizeof(path))
			fail_msg("path too long: %s", e[i].file);
		b = slurp(path, &len);
		memset(&c, 0, sizeof(c));
		assert_int_equal(run(b, len, e[i].file, NULL, &c, &st, &err), DC_OK);
		/* the counting sink and the stats agree, and nothing was left open */
		assert_int_equal(st.reports, c.ended);
		assert_int_equal(st.records, c.records);
		assert_int_equal(st.failures, (uint64_t)c.n_fail);
		assert_int_equal(c.begun, c.ended + c.aborted);
		if (st.reports != e[i].reports || st.records != e[i].records || c.messages != e[i].messages ||
			st.failures != e[i].failures) {
			print_error("%s: reports/records/messages/failures %llu/%llu/%llu/%llu, expected "
				    "%llu/%llu/%llu/%llu%s\n",
				e[i].file, (unsigned long long)st.reports, (unsigned long long)st.records,
				(unsigned long long)c.messages, (unsigned long long)st.failures,
				(unsigned long long)e[i].reports, (unsigned long long)e[i].records,
				(unsigned long long)e[i].messages, (unsigned long long)e[i].failures,
				e[i].difference ? " (differences.tsv)" : "");
			bad++;
		}
		reports += st.reports;
		diffs += e[i].difference;
		free(b);
	}
	print_message("%d corpus files, %llu reports, %d listed differences\n", n,
		(unsigned long long)reports, diffs);
	assert_int_equal(bad, 0);
}

static int n_negative, n_negative_bad;

static int
negative(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	counter c;
	dc_extract_stats st;
	dc_err err;
	size_t len;
	uint8_t *b;
	bool want_arf;

	(void)sb;
	(void)ftw;
	if (type != FTW_F)
		return 0;
	b = slurp(path, &len);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(b, len, path, NULL, &c, &st, &err), DC_OK);
	n_negative++;
	/* _forensic: DMARC failure reports, each one report of its own, except
	 * the sample its source names as having no ARF part at all */
	want_arf = strstr(path, "/_forensic/") != NULL && strstr(path, "no_arf_part") == NULL;
	if (st.reports != 0 || st.failures != (want_arf ? 0 : 1) ||
		st.failure_reports != (want_arf ? 1 : 0)) {
		print_error("%s: %llu reports, %llu failures, %llu failure reports; want 0, %d and %d\n",
			path, (unsigned long long)st.reports, (unsigned long long)st.failures,
			(unsigned long long)st.failure_reports, want_arf ? 0 : 1, want_arf ? 1 : 0);
		n_negative_bad++;
	}
	free(b);
	return 0;
}

static int n_tls, n_tls_bad;

/* A real SMTP TLS report file: one TLS report, no aggregate report, no
 * failure (the integration test it_tls_reports compares the contents). */
static int
tls_file(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	counter c;
	dc_extract_stats st;
	dc_err err;
	size_t len;
	uint8_t *b;

	(void)sb;
	(void)ftw;
	if (type != FTW_F)
		return 0;
	b = slurp(path, &len);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(b, len, path, NULL, &c, &st, &err), DC_OK);
	n_tls++;
	if (st.reports != 0 || st.failures != 0 || st.tls_reports != 1 || c.tls != 1) {
		print_error("%s: %llu reports, %llu TLS reports, %llu failures (%s); want 0, 1, 0\n", path,
			(unsigned long long)st.reports, (unsigned long long)st.tls_reports,
			(unsigned long long)st.failures, c.n_fail ? c.why[0] : "");
		n_tls_bad++;
	}
	free(b);
	return 0;
}

static void
test_corpus_negatives(void **state)
{
	char path[1024];

	(void)state;
	n_negative = n_negative_bad = 0;
	snprintf(path, sizeof(path), "%s/corpus/_forensic", DC_TEST_DATA);
	assert_int_equal(nftw(path, negative, 8, FTW_PHYS), 0);
	assert_true(n_negative >= 10);
	assert_int_equal(n_negative_bad, 0);
}

static void
test_corpus_tls(void **state)
{
	char path[1024];

	(void)state;
	n_tls = n_tls_bad = 0;
	snprintf(path, sizeof(path), "%s/corpus/_smtp_tls", DC_TEST_DATA);
	assert_int_equal(nftw(path, tls_file, 8, FTW_PHYS), 0);
	assert_true(n_tls >= 30);
	assert_int_equal(n_tls_bad, 0);
}

/* ------------------------------------------------------------ routing */

static void
test_no_report_message(void **state)
{
	size_t len;
	uint8_t *m = data_file("unpack/no-report.eml", &len);
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(m, len, "no-report.eml", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 0);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage[0], "mime");
	assert_int_equal(c.code[0], DC_ENOREPORT);
	assert_string_equal(c.path[0], "(null)");
	assert_ptr_equal(c.unit[0], m);
	assert_int_equal(c.unit_len[0], len);
	assert_string_equal(c.why[0],
		"no aggregate report in message (3 parts: text/plain: text starting 'Just saying hello.', "
		"18 bytes, text/html: HTML document, 31 bytes, image/png \"cat.png\": PNG image, 108 bytes)");
	free(m);
}

static void
test_zip_good_and_bad(void **state)
{
	size_t len;
	uint8_t *z = data_file("unpack/good-and-bad.zip", &len);
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(z, len, "good-and-bad.zip", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 1);
	assert_int_equal(st.records, 1);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.o_path, "zip:good.xml");
	assert_string_equal(c.o_name, "good-and-bad.zip");
	assert_int_equal(c.o_len, len);
	assert_string_equal(c.stage[0], "unpack");
	assert_int_equal(c.code[0], DC_EFORMAT);
	assert_string_equal(c.path[0], "zip:bad.xml");
	assert_ptr_equal(c.unit[0], z);
	assert_int_equal(c.unit_len[0], len);
	free(z);
}

static void
test_messages_in_zip(void **state)
{
	size_t len;
	uint8_t *z = data_file("unpack/eml-in-zip.zip", &len);
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(z, len, "eml-in-zip.zip", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 1);
	assert_int_equal(st.failures, 1);
	/* the report's unit is the zip itself, not the (decompressed) attachment
	 * of the message inside it: no original is ever a decompressed copy */
	assert_string_equal(c.o_path, "zip:fwd.eml > part 2 > gzip");
	assert_string_equal(c.o_name, "eml-in-zip.zip");
	assert_memory_equal(c.o_head, "PK", 2);
	assert_int_equal(c.o_len, len);
	/* the inner message without a report fails as a whole, inside the zip */
	assert_string_equal(c.stage[0], "mime");
	assert_int_equal(c.code[0], DC_ENOREPORT);
	assert_string_equal(c.path[0], "zip:hello.eml");
	assert_ptr_equal(c.unit[0], z);
	free(z);
}

static void
test_origin_of_attachment(void **state)
{
	size_t len;
	uint8_t *m = data_file("unpack/leading-ws.eml", &len);
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(m, len, "leading-ws.eml", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 1);
	assert_string_equal(c.o_name, "w.xml.gz");
	assert_string_equal(c.o_path, "part 1 > gzip");
	assert_string_equal(c.o_notes, "whitespace before the first header line removed");
	assert_memory_equal(c.o_head, "\x1f\x8b", 2); /* the attachment as received, still compressed */
	assert_true(c.o_len < len);
	free(m);
}

/* Bytes after a gzip found only at its end (the report is larger than the
 * first read) still reach the report's errors by report_end. */
static void
test_late_repair_note(void **state)
{
	size_t len, cap = 1 << 20, o = 0;
	uint8_t *x = data_file("unpack/report.xml", &len);
	char *big = malloc(cap);
	uLongf zlen;
	uint8_t *gz;
	const char *rec = strstr((const char *)x, "  <record>"),
		   *end = strstr((const char *)x, "</feedback>");
	z_stream z;
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	assert_non_null(big);
	assert_non_null(rec);
	assert_non_null(end);
	memcpy(big, x, (size_t)(rec - (const char *)x));
	o = (size_t)(rec - (const char *)x);
	for (int i = 0; i < 200; i++) {
		memcpy(big + o, rec, (size_t)(end - rec));
		o += (size_t)(end - rec);
	}
	o += (size_t)sprintf(big + o, "</feedback>\n");
	assert_true(o > 3 * 4096);
	zlen = compressBound(o) + 64;
	gz = malloc(zlen + 2);
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)big;
	z.avail_in = (uInt)o;
	z.next_out = gz;
	z.avail_out = (uInt)zlen;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	zlen = z.total_out;
	deflateEnd(&z);
	memcpy(gz + zlen, "\r\n", 2);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(gz, zlen + 2, "big.xml.gz", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 1);
	assert_int_equal(st.records, 200);
	assert_non_null(strstr(c.end_errors, "gzip followed by 2 bytes of padding, ignored"));
	free(gz);
	free(big);
	free(x);
}

static void
test_duplicates(void **state)
{
	size_t len;
	uint8_t *m = data_file("unpack/twice.eml", &len);
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.dedup = true;
	assert_int_equal(run(m, len, "twice.eml", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 1);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.failures, 0);
	assert_int_equal(st.records, 1);
	assert_int_equal(c.aborted, 0);
	free(m);
}

static void
test_sink_errors(void **state)
{
	size_t len;
	uint8_t *m = data_file("unpack/several.eml", &len);
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	/* fatal: the second report's record hits a database error */
	memset(&c, 0, sizeof(c));
	c.fail_record_at = 2;
	c.fail_record_code = DC_EDB;
	assert_int_equal(run(m, len, "several.eml", NULL, &c, &st, &err), DC_EDB);
	assert_int_equal(err.code, DC_EDB);
	assert_string_equal(err.msg, "sink fails at record 2");
	assert_int_equal(st.reports, 1);
	assert_int_equal(st.failures, 0);
	assert_int_equal(c.aborted, 1);
	/* not fatal: the sink refuses one report; it becomes a "store" failure */
	memset(&c, 0, sizeof(c));
	c.fail_record_at = 2;
	c.fail_record_code = DC_ESCHEMA;
	assert_int_equal(run(m, len, "several.eml", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 2);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage[0], "store");
	assert_string_equal(c.path[0], "part 2 > zip:b.xml");
	assert_int_equal(c.aborted, 1);
	/* report_begin refuses: still aborted (a failing begin may have opened something) */
	memset(&c, 0, sizeof(c));
	c.begin_code = DC_ETOOLONG;
	assert_int_equal(run(m, len, "several.eml", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 0);
	assert_int_equal(st.failures, 3);
	assert_string_equal(c.stage[0], "store");
	assert_int_equal(c.aborted, 3);
	/* the failure callback itself fails: dc_extract stops with its error */
	memset(&c, 0, sizeof(c));
	c.begin_code = DC_ESCHEMA;
	c.failure_code = DC_EDB;
	assert_int_equal(run(m, len, "several.eml", NULL, &c, &st, &err), DC_EDB);
	assert_int_equal(c.n_fail, 1);
	assert_string_equal(err.msg, "cannot record the failure");
	free(m);
	/* the same for a failure found by the unpack layer and for a message with no report */
	m = data_file("unpack/good-and-bad.zip", &len);
	memset(&c, 0, sizeof(c));
	c.failure_code = DC_EDB;
	assert_int_equal(run(m, len, "good-and-bad.zip", NULL, &c, &st, &err), DC_EDB);
	assert_string_equal(err.msg, "cannot record the failure");
	free(m);
	m = data_file("unpack/no-report.eml", &len);
	memset(&c, 0, sizeof(c));
	c.failure_code = DC_EIO;
	assert_int_equal(run(m, len, "no-report.eml", NULL, &c, &st, &err), DC_EIO);
	assert_string_equal(err.msg, "cannot record the failure");
	free(m);
}

static void
test_limits(void **state)
{
	size_t len;
	uint8_t *m = data_file("unpack/several.eml", &len);
	dc_limits lim;
	counter c;
	dc_extract_stats st;
	dc_err err;
	uint8_t *zeros = calloc(1, 8 << 20);
	uLongf zlen = compressBound(8 << 20);
	uint8_t *bomb = malloc(zlen);

	(void)state;
	dc_limits_default(&lim);
	lim.max_message_bytes = 1000;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(m, len, "several.eml", &lim, &c, &st, &err), DC_OK);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage[0], "limits");
	assert_int_equal(c.code[0], DC_ETOOBIG_MESSAGE);
	assert_int_equal(c.unit_len[0], len);
	/* 8 MiB of zeros in a zlib stream: a bomb, stopped by the ratio */
	assert_non_null(zeros);
	assert_non_null(bomb);
	assert_int_equal(compress2(bomb, &zlen, zeros, 8 << 20, 9), Z_OK);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(bomb, zlen, "zeros.zlib", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage[0], "limits");
	assert_int_equal(c.code[0], DC_ERATIO);
	assert_string_equal(c.path[0], "zlib");
	free(zeros);
	free(bomb);
	free(m);
}

/* ---- SMTP TLS reports */

/* gzip (RFC 1952) of data[0..len) at level 9; caller frees, *out_len set. */
static uint8_t *
gz(const uint8_t *data, size_t len, size_t *out_len)
{
	z_stream z;
	size_t cap = len + len / 100 + 1024;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = z.total_out;
	deflateEnd(&z);
	return out;
}

#define TLS_JSON \
	"{\"organization-name\":\"Google Inc.\",\"date-range\":{\"start-datetime\":\"2024-05-01T00:00:00Z\"," \
	"\"end-datetime\":\"2024-05-01T23:59:59Z\"},\"contact-info\":\"smtp-tls-reporting@google.com\"," \
	"\"report-id\":\"2024-05-01T00:00:00Z_example.com\",\"policies\":[{\"policy\":{\"policy-type\":\"sts\"," \
	"\"policy-domain\":\"example.com\"},\"summary\":{\"total-successful-session-count\":10," \
	"\"total-failure-session-count\":2},\"failure-details\":[{\"result-type\":\"certificate-expired\"," \
	"\"failed-session-count\":2}]}]}"

static void
test_tls_reports(void **state)
{
	static const char json[] = TLS_JSON;
	static const char other[] = "{\"type\":\"FeatureCollection\",\"features\":[]}";
	static const char broken[] = "{\"report-id\":\"x\",\"policies\":[{\"policy\":{}}]}";
	char msg[8192];
	size_t zlen, blen, n;
	uint8_t *z = gz((const uint8_t *)json, strlen(json), &zlen), *bomb;
	char *big;
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	/* bare JSON, bare gzip */
	memset(&c, 0, sizeof(c));
	assert_int_equal(run((const uint8_t *)json, strlen(json), "r.json", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.tls_reports, 1);
	assert_int_equal(st.reports + st.failures, 0);
	assert_int_equal(c.tls_policies, 1);
	assert_int_equal(c.tls_failures, 1);
	assert_int_equal(c.tls_sessions, 12);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(z, zlen, "r.json.gz", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.tls_reports, 1);
	assert_int_equal(st.failures, 0);
	assert_string_equal(c.tls_path, "gzip");

	/* a message: the TLS report as application/tlsrpt+gzip, next to a
	 * JSON part that is no TLS report (skipped, not a failure) */
	n = (size_t)snprintf(msg, sizeof(msg),
		"From: tls@example.net\r\nTo: rua@example.com\r\nSubject: Report Domain: example.com\r\n"
		"Message-ID: <tls@example.net>\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/report; report-type=tlsrpt; boundary=\"b\"\r\n\r\n"
		"--b\r\nContent-Type: text/plain\r\n\r\nThis is a TLS report.\r\n"
		"--b\r\nContent-Type: application/json\r\n\r\n%s\r\n"
		"--b\r\nContent-Type: application/tlsrpt+json\r\n\r\n%s\r\n--b--\r\n",
		other, json);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run((const uint8_t *)msg, n, NULL, NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.tls_reports, 1);
	assert_int_equal(st.failures, 0);
	assert_string_equal(c.tls_path, "part 3");

	/* a message with only other JSON: no report in it */
	n = (size_t)snprintf(msg, sizeof(msg),
		"From: a@example.net\r\nMIME-Version: 1.0\r\nContent-Type: application/json\r\n\r\n%s\r\n",
		other);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run((const uint8_t *)msg, n, NULL, NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.tls_reports, 0);
	assert_int_equal(st.failures, 1);
	assert_int_equal(c.code[0], DC_ENOREPORT);

	/* bare JSON that is no TLS report; a broken TLS report */
	memset(&c, 0, sizeof(c));
	assert_int_equal(run((const uint8_t *)other, strlen(other), "o.json", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage[0], "unpack");
	assert_string_equal(c.why[0],
		"not a report (no \"report-id\" and \"policies\"): text starting "
		"'{\"type\":\"FeatureCollection\",\"features\":[]}', 42 bytes");
	memset(&c, 0, sizeof(c));
	assert_int_equal(run((const uint8_t *)broken, strlen(broken), "b.json", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.tls_reports, 0);
	assert_string_equal(c.stage[0], "report");
	assert_int_equal(c.code[0], DC_ESCHEMA);
	assert_int_equal(c.unit_len[0], strlen(broken));
	memset(&c, 0, sizeof(c));
	assert_int_equal(run((const uint8_t *)json, strlen(json) - 3, "t.json", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage[0], "json");
	assert_int_equal(c.code[0], DC_EFORMAT);

	/* a string over its cap: the report's fault, not the XML's */
	blen = (size_t)snprintf(
		msg, sizeof(msg), "{\"report-id\":\"r\",\"policies\":[],\"organization-name\":\"");
	memset(msg + blen, 'o', DC_MAX_FIELD_BYTES + 1);
	blen += DC_MAX_FIELD_BYTES + 1;
	blen += (size_t)snprintf(msg + blen, sizeof(msg) - blen, "\"}");
	memset(&c, 0, sizeof(c));
	assert_int_equal(run((const uint8_t *)msg, blen, "long.json", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.failures, 1);
	assert_int_equal(c.code[0], DC_ETOOLONG);
	assert_string_equal(c.stage[0], "report");

	/* the sink: a duplicate counts as stored, an error of the value is a
	 * "store" failure, a database error stops the walk */
	memset(&c, 0, sizeof(c));
	c.tls_code = DC_SKIP;
	assert_int_equal(run(z, zlen, "r.json.gz", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.tls_reports, 1);
	assert_int_equal(st.failures, 0);
	memset(&c, 0, sizeof(c));
	c.tls_code = DC_ESCHEMA;
	assert_int_equal(run(z, zlen, "r.json.gz", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.tls_reports, 0);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage[0], "store");
	memset(&c, 0, sizeof(c));
	c.tls_code = DC_EDB;
	assert_int_equal(run(z, zlen, "r.json.gz", NULL, &c, &st, &err), DC_EDB);
	assert_int_equal(st.failures, 0);

	/* a gzip bomb of JSON: a TLS report's start, then 64 MiB of spaces;
	 * the ratio stops it before the JSON cap would */
	blen = 64u << 20;
	big = malloc(blen);
	assert_non_null(big);
	memset(big, ' ', blen);
	memcpy(big, "{\"report-id\":\"x\",\"policies\":[", 30);
	bomb = gz((const uint8_t *)big, blen, &n);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(bomb, n, "bomb.json.gz", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.tls_reports, 0);
	assert_string_equal(c.stage[0], "limits");
	assert_int_equal(c.code[0], DC_ERATIO);
	assert_int_equal(c.unit_len[0], n);
	/* with the ratio out of the way, the size cap: refused at 16 MiB */
	{
		dc_limits lim;

		dc_limits_default(&lim);
		lim.max_ratio = 0;
		memset(&c, 0, sizeof(c));
		assert_int_equal(run(bomb, n, "bomb.json.gz", &lim, &c, &st, &err), DC_OK);
		assert_int_equal(st.failures, 1);
		assert_int_equal(c.code[0], DC_ETOOBIG_REPORT);
	}
	free(bomb);
	free(big);
	free(z);
}


/* ---- per-input caps (issue 9) */

/* A zip of n stored members, each data[0..len) under the name rNNN.xml
 * (caller frees; *zlen its size). */
static uint8_t *
make_zip(unsigned n, const uint8_t *data, size_t len, size_t *zlen)
{
	size_t cap = (size_t)n * (len + 120) + 64, o = 0, cd, cdlen;
	uint8_t *z = malloc(cap);
	uint32_t crc = (uint32_t)crc32(0, data, (uInt)len);
	uint32_t *off = calloc(n, sizeof(*off));
	char name[16];

	assert_non_null(z);
	assert_non_null(off);
#define PUT16(v) \
	do { \
		z[o++] = (uint8_t)(v); \
		z[o++] = (uint8_t)((v) >> 8); \
	} while (0)
#define PUT32(v) \
	do { \
		PUT16((v)&0xffff); \
		PUT16(((uint32_t)(v)) >> 16); \
	} while (0)
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "r%03u.xml", i);
		off[i] = (uint32_t)o;
		PUT32(0x04034b50);
		PUT16(20);
		PUT16(0);
		PUT16(0);
		PUT16(0);
		PUT16(0);
		PUT32(crc);
		PUT32(len);
		PUT32(len);
		PUT16(strlen(name));
		PUT16(0);
		memcpy(z + o, name, strlen(name));
		o += strlen(name);
		memcpy(z + o, data, len);
		o += len;
	}
	cd = o;
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "r%03u.xml", i);
		PUT32(0x02014b50);
		PUT16(20);
		PUT16(20);
		PUT16(0);
		PUT16(0);
		PUT16(0);
		PUT16(0);
		PUT32(crc);
		PUT32(len);
		PUT32(len);
		PUT16(strlen(name));
		PUT16(0);
		PUT16(0);
		PUT16(0);
		PUT16(0);
		PUT32(0);
		PUT32(off[i]);
		memcpy(z + o, name, strlen(name));
		o += strlen(name);
	}
	cdlen = o - cd;
	PUT32(0x06054b50);
	PUT16(0);
	PUT16(0);
	PUT16(n);
	PUT16(n);
	PUT32(cdlen);
	PUT32(cd);
	PUT16(0);
#undef PUT16
#undef PUT32
	assert_true(o <= cap);
	free(off);
	*zlen = o;
	return z;
}

/* data[0..len) gzipped (caller frees). */
static uint8_t *
gzip_of(const uint8_t *data, size_t len, size_t *glen)
{
	z_stream z;
	uint8_t *out = malloc(len + 1024);

	assert_non_null(out);
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)(len + 1024);
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*glen = z.total_out;
	deflateEnd(&z);
	return out;
}

static void
test_input_caps(void **state)
{
	size_t rlen, zlen, g1, g2;
	uint8_t *rep = data_file("unpack/report.xml", &rlen);
	uint8_t *z, *a, *b;
	dc_limits lim;
	counter c;
	dc_extract_stats st;
	dc_err err;

	(void)state;
	/* 60 good members, over the default max_members (50): rejected as a
	 * whole before any member is read, one failure of the zip */
	z = make_zip(60, rep, rlen, &zlen);
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(z, zlen, "many.zip", NULL, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 0);
	assert_int_equal(st.failures, 1);
	assert_int_equal(c.begun, 0);
	assert_string_equal(c.stage[0], "limits");
	assert_int_equal(c.code[0], DC_EINPUT_LIMIT);
	assert_non_null(strstr(c.why[0], "limits.max_members (50)"));
	assert_ptr_equal(c.unit[0], z);
	assert_int_equal(c.unit_len[0], zlen);

	/* members allowed, reports capped: the first 10 are stored, then one
	 * failure and nothing more */
	dc_limits_default(&lim);
	lim.max_members = 100;
	lim.max_reports = 10;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(z, zlen, "many.zip", &lim, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports + st.duplicates, 10);
	assert_int_equal(st.failures, 1);
	assert_int_equal(c.code[0], DC_EINPUT_LIMIT);
	assert_non_null(strstr(c.why[0], "limits.max_reports (10)"));

	/* decompressed bytes over the whole input */
	dc_limits_default(&lim);
	lim.max_members = 100;
	lim.max_reports = 100;
	lim.max_unpacked_bytes = 20 * rlen;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(z, zlen, "many.zip", &lim, &c, &st, &err), DC_OK);
	assert_int_equal(st.failures, 1);
	assert_int_equal(c.code[0], DC_EINPUT_LIMIT);
	assert_non_null(strstr(c.why[0], "limits.max_unpacked_bytes"));
	assert_true(st.reports + st.duplicates < 21);
	free(z);

	/* nesting: gzip in gzip (2 layers) passes max_nesting 2, not 1 */
	a = gzip_of(rep, rlen, &g1);
	b = gzip_of(a, g1, &g2);
	dc_limits_default(&lim);
	lim.max_nesting = 2;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(b, g2, "r.xml.gz.gz", &lim, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports + st.duplicates, 1);
	assert_int_equal(st.failures, 0);
	lim.max_nesting = 1;
	memset(&c, 0, sizeof(c));
	assert_int_equal(run(b, g2, "r.xml.gz.gz", &lim, &c, &st, &err), DC_OK);
	assert_int_equal(st.reports, 0);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage[0], "limits");
	assert_int_equal(c.code[0], DC_EINPUT_LIMIT);
	assert_non_null(strstr(c.why[0], "limits.max_nesting"));
	free(a);
	free(b);

	/* a message of 60 report parts: refused before any part is handled */
	{
		size_t cap = 60 * (rlen + 200) + 400, o = 0;
		char *msg = malloc(cap);

		assert_non_null(msg);
		o += (size_t)snprintf(msg + o, cap - o,
			"From: a@example.com\r\nSubject: r\r\nMIME-Version: 1.0\r\n"
			"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
		for (int i = 0; i < 60; i++) {
			o += (size_t)snprintf(
				msg + o, cap - o, "--b\r\nContent-Type: application/xml\r\n\r\n");
			memcpy(msg + o, rep, rlen);
			o += rlen;
			o += (size_t)snprintf(msg + o, cap - o, "\r\n");
		}
		o += (size_t)snprintf(msg + o, cap - o, "--b--\r\n");
		assert_true(o < cap);
		memset(&c, 0, sizeof(c));
		assert_int_equal(run((uint8_t *)msg, o, "parts.eml", NULL, &c, &st, &err), DC_OK);
		assert_int_equal(c.begun, 0);
		assert_int_equal(st.reports + st.duplicates, 0);
		assert_int_equal(st.failures, 1);
		assert_string_equal(c.stage[0], "limits");
		assert_int_equal(c.code[0], DC_EINPUT_LIMIT);
		assert_non_null(
			strstr(c.why[0], "message has more than 50 parts: over limits.max_members (50)"));
		assert_ptr_equal(c.unit[0], (uint8_t *)msg);
		/* with room for them, all 60 are read */
		dc_limits_default(&lim);
		lim.max_members = 60;
		lim.max_reports = 60;
		memset(&c, 0, sizeof(c));
		assert_int_equal(run((uint8_t *)msg, o, "parts.eml", &lim, &c, &st, &err), DC_OK);
		assert_int_equal(st.reports + st.duplicates, 60);
		assert_int_equal(st.failures, 0);
		free(msg);
	}
	free(rep);
}

/* ---- the message's own header fields (issue 10: one Message-ID for import and poll) */

typedef struct heads {
	counter c;
	int calls;
	bool early;    /* every call came before any report or failure */
	char id[1100]; /* "(none)" for NULL */
} heads;

static dc_code
h_message(void *ctx, const dc_mime_head *head, dc_err *err)
{
	heads *h = ctx;

	(void)err;
	h->calls++;
	h->early = h->early && h->c.begun == 0 && h->c.n_fail == 0;
	snprintf(h->id, sizeof(h->id), "%s", head->message_id ? head->message_id : "(none)");
	return DC_OK;
}

/* Runs dc_extract on data with the message callback; h is reset first. */
static void
run_heads(const uint8_t *data, size_t len, heads *h)
{
	dc_extract_cb cb = { { &h->c, c_begin, c_record, c_end, c_abort, c_tls, NULL }, c_failure, &h->c,
		h_message, h };
	dc_extract_stats st;
	dc_limits d;
	dc_err err;

	memset(h, 0, sizeof(*h));
	h->early = true;
	dc_limits_default(&d);
	memset(&st, 0, sizeof(st));
	assert_int_equal(dc_extract(data, len, NULL, &d, &cb, &st, &err), DC_OK);
}

static void
test_message_id(void **state)
{
	size_t xlen;
	uint8_t *xml = data_file("unpack/report.xml", &xlen);
	char big[1500];
	static const struct {
		const char *head; /* header fields before Content-Type (NULL: an overlong id) */
		const char *want;
	} t[] = {
		/* folded (RFC 5322 2.2.3): the fold is no part of the id */
		{ "From: a@b\r\nMessage-ID: <20251104\r\n 080000.42@mid.example>\r\n",
			"<20251104080000.42@mid.example>" },
		{ "From: a@b\nMessage-ID:\n\t<20251104\n\t080000.42@mid.example>\n",
			"<20251104080000.42@mid.example>" },
		/* the first field, and in lower case */
		{ "message-id: <first@x>\r\nFrom: a@b\r\n", "<first@x>" },
		/* the first of two */
		{ "From: a@b\r\nMessage-ID: <one@x>\r\nMessage-ID: <two@x>\r\n", "<one@x>" },
		{ "From: a@b\r\nSubject: no id\r\n", "(none)" },
		{ "From: a@b\r\nMessage-ID:   \r\n", "(none)" },
		/* garbage: controls, 8-bit bytes and blanks are left out */
		{ "From: a@b\r\nMessage-ID: \x01\xff junk (c) <a b>\t\r\n", "junk(c)<ab>" },
		/* overlong: cut at DC_MAX_MESSAGE_ID bytes */
		{ NULL, NULL },
	};
	heads h;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *m = NULL;
		char hd[2000];
		int n;

		if (t[i].head != NULL)
			snprintf(hd, sizeof(hd), "%s", t[i].head);
		else
			snprintf(hd, sizeof(hd), "From: a@b\r\nMessage-ID: <%s>\r\n", big);
		n = asprintf(&m, "%sMIME-Version: 1.0\r\nContent-Type: text/xml\r\n\r\n%.*s", hd, (int)xlen,
			(const char *)xml);
		assert_true(n > 0);
		run_heads((const uint8_t *)m, (size_t)n, &h);
		assert_int_equal(h.calls, 1);
		assert_true(h.early);
		assert_int_equal(h.c.ended, 1);
		if (t[i].want != NULL) {
			assert_string_equal(h.id, t[i].want);
		} else {
			assert_int_equal(strlen(h.id), DC_MAX_MESSAGE_ID);
			assert_memory_equal(h.id, "<xxxx", 5);
		}
		free(m);
	}
	/* a message without a report: told before its one failure */
	{
		size_t len;
		uint8_t *m = data_file("unpack/no-report.eml", &len);

		run_heads(m, len, &h);
		assert_int_equal(h.calls, 1);
		assert_true(h.early);
		assert_int_equal(h.c.n_fail, 1);
		free(m);
	}
	/* a forwarded message: the outer one's id, once */
	{
		char *m = NULL;
		int n = asprintf(&m,
			"From: a@b\r\nMessage-ID: <outer@x>\r\nContent-Type: message/rfc822\r\n\r\n"
			"From: c@d\r\nMessage-ID: <inner@x>\r\nContent-Type: text/xml\r\n\r\n%.*s",
			(int)xlen, (const char *)xml);

		assert_true(n > 0);
		run_heads((const uint8_t *)m, (size_t)n, &h);
		assert_int_equal(h.calls, 1);
		assert_string_equal(h.id, "<outer@x>");
		assert_int_equal(h.c.ended, 1);
		free(m);
	}
	/* not a message (a bare report, a zip holding a message): no call */
	run_heads(xml, xlen, &h);
	assert_int_equal(h.calls, 0);
	assert_int_equal(h.c.ended, 1);
	{
		size_t len;
		uint8_t *z = data_file("unpack/eml-in-zip.zip", &len);

		run_heads(z, len, &h);
		assert_int_equal(h.calls, 0);
		free(z);
	}
	free(xml);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_manifest),
		cmocka_unit_test(test_corpus_negatives),
		cmocka_unit_test(test_corpus_tls),
		cmocka_unit_test(test_no_report_message),
		cmocka_unit_test(test_zip_good_and_bad),
		cmocka_unit_test(test_messages_in_zip),
		cmocka_unit_test(test_origin_of_attachment),
		cmocka_unit_test(test_late_repair_note),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_sink_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_tls_reports),
		cmocka_unit_test(test_input_caps),
		cmocka_unit_test(test_message_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

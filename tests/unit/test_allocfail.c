/*
 * test_allocfail.c - allocation-failure mode (issue 9, item 5; curl's
 * "torture" idea): for a few real reports, count the allocations N of a
 * successful dc_extract, then run it N more times, failing the k-th
 * allocation (k = 1..N, only that one), and check that every run
 *  - returns DC_ENOMEM with err.code DC_ENOMEM (never a parse or format
 *    error that would record a good report as a failure),
 *  - stores no report and records no failure that the good run did not
 *    (an input of several units may have stored or rejected the ones before
 *    the failing allocation: the import stops there, and a retry finds
 *    those as duplicates; for a one-report input that means none at all,
 *    unless the allocation came after its report_end),
 *  - aborts every report it began (report_begin == report_end + report_abort),
 *  - does not crash, and leaks nothing (under -DDC_SANITIZE=ON, LeakSanitizer
 *    checks after each report's runs).
 *
 * Which allocations count (docs/README-fuzz.md says the same):
 *  - the project's own malloc/calloc/realloc/strdup/strndup calls: the test
 *    is linked with -Wl,--wrap=... (tests/CMakeLists.txt), which redirects
 *    the calls made from the objects of this link, i.e. this file and the
 *    static libraries (libdc_parser.a ...), to the __wrap_ functions below;
 *  - libxml2's, through xmlMemSetup (the parser installs no allocator of its
 *    own); zlib's, because dc_unpack hands inflate the project's allocator.
 * Not counted: json-c (a shared library, like libzip below), GLib/GMime
 * (g_malloc aborts by design when memory runs out,
 * so its allocations cannot fail), libzip (a shared library calling malloc
 * itself; --wrap does not reach into it), the probe inflate of
 * dc_unpack_sniff (zlib's default allocator, inside libz).
 */
/* dladdr: _GNU_SOURCE comes from the build */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <libxml/xmlmemory.h>

#include "dc_extract.h"
#include "dc_mime.h"
#include "dc_tlsrpt.h"
#include "dc_xml.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* ------------------------------------------------------- the allocation hook */

static struct {
	bool on;               /* counting (only around dc_extract) */
	unsigned long count;   /* allocations seen while on */
	unsigned long fail_at; /* fail this one (1-based), 0 = none */
	unsigned long failed;  /* allocations failed */
	unsigned long xml;     /* of count: libxml2's */
	void *caller;          /* who made the failed allocation */
	const char *spare;     /* libxml2's copies of this string are not failed */
} af;

/* True when the allocation being made (by caller) must fail. */
static bool
af_fail_by(void *caller)
{
	if (!af.on)
		return false;
	if (++af.count != af.fail_at)
		return false;
	af.failed++;
	af.caller = caller;
	return true;
}

#define af_fail() af_fail_by(__builtin_return_address(0))

/* "function (library)" of an address, for messages */
static const char *
where(void *addr, char *buf, size_t cap)
{
	Dl_info di;

	if (addr != NULL && dladdr(addr, &di) != 0)
		snprintf(buf, cap, "%s (%s)", di.dli_sname ? di.dli_sname : "?",
			di.dli_fname ? di.dli_fname : "?");
	else
		snprintf(buf, cap, "%p", addr);
	return buf;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

void *
__wrap_malloc(size_t n)
{
	return af_fail() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t k, size_t n)
{
	return af_fail() ? NULL : __real_calloc(k, n);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return af_fail() ? NULL : __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
	return af_fail() ? NULL : __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	return af_fail() ? NULL : __real_strndup(s, n);
}

/* libxml2's allocator (xmlMemSetup) */
static void *
x_malloc(size_t n)
{
	af.xml += af.on;
	return af_fail() ? NULL : __real_malloc(n);
}

static void *
x_realloc(void *p, size_t n)
{
	af.xml += af.on;
	return af_fail() ? NULL : __real_realloc(p, n);
}

static char *
x_strdup(const char *s)
{
	if (af.spare != NULL && strcmp(s, af.spare) == 0)
		return __real_strdup(s);
	af.xml += af.on;
	return af_fail() ? NULL : __real_strdup(s);
}

/* ---------------------------------------------------------------- the sink */

/* What a run handed over: counts, and a digest (FNV-1a) of every string and
 * number of the reports and records it stored, so that a run that absorbed
 * a failed allocation can be compared with the good run. */
typedef struct tally {
	uint64_t begun, records, ended, aborted, failures;
	uint64_t digest, cur; /* of stored reports; of the report being read */
} tally;

static void
mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		*h = (*h ^ c[i]) * 0x100000001b3ULL;
}

static void
mix_str(uint64_t *h, const char *s)
{
	mix(h, s ? s : "\x01(null)", s ? strlen(s) + 1 : 8);
}

static void
mix_report(uint64_t *h, const dc_report *r)
{
	const char *f[] = { r->xmlns, r->version, r->org_name, r->org_email, r->extra_contact_info,
		r->report_id, r->generator, r->errors, r->policy_domain, r->policy_adkim, r->policy_aspf,
		r->policy_p, r->policy_sp, r->policy_np, r->policy_testing, r->policy_discovery_method,
		r->policy_fo };

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		mix_str(h, f[i]);
	mix(h, &r->date_begin, sizeof(r->date_begin));
	mix(h, &r->date_end, sizeof(r->date_end));
	mix(h, &r->policy_pct, sizeof(r->policy_pct));
}

static dc_code
t_begin(void *ctx, const dc_report *r, const dc_blob *o, dc_err *err)
{
	tally *t = ctx;

	(void)err;
	t->begun++;
	t->cur = 0xcbf29ce484222325ULL;
	mix_report(&t->cur, r);
	mix_str(&t->cur, o->path);
	mix_str(&t->cur, o->notes);
	mix(&t->cur, o->data, o->len);
	return DC_OK;
}

static dc_code
t_record(void *ctx, const dc_report *r, const dc_record *c, dc_err *err)
{
	tally *t = ctx;

	(void)r;
	(void)err;
	t->records++;
	mix_str(&t->cur, c->source_ip);
	mix(&t->cur, &c->message_count, sizeof(c->message_count));
	mix(&t->cur, &c->ordinal, sizeof(c->ordinal));
	mix_str(&t->cur, c->disposition);
	mix_str(&t->cur, c->dkim_aligned);
	mix_str(&t->cur, c->spf_aligned);
	mix_str(&t->cur, c->header_from);
	mix_str(&t->cur, c->envelope_from);
	mix_str(&t->cur, c->envelope_to);
	for (size_t i = 0; i < c->n_reasons; i++) {
		mix_str(&t->cur, c->reasons[i].type);
		mix_str(&t->cur, c->reasons[i].comment);
	}
	for (size_t i = 0; i < c->n_dkim; i++) {
		mix_str(&t->cur, c->dkim[i].domain);
		mix_str(&t->cur, c->dkim[i].selector);
		mix_str(&t->cur, c->dkim[i].result);
		mix_str(&t->cur, c->dkim[i].human_result);
	}
	for (size_t i = 0; i < c->n_spf; i++) {
		mix_str(&t->cur, c->spf[i].domain);
		mix_str(&t->cur, c->spf[i].scope);
		mix_str(&t->cur, c->spf[i].result);
		mix_str(&t->cur, c->spf[i].human_result);
	}
	return DC_OK;
}

static dc_code
t_end(void *ctx, const dc_report *r, dc_err *err)
{
	tally *t = ctx;

	(void)err;
	t->ended++;
	mix_report(&t->cur, r); /* errors may have grown */
	t->digest = t->digest * 31 + t->cur;
	return DC_OK;
}

/* An SMTP TLS report counts as one report begun and ended; its policies
 * and failure details go into the digest. */
static dc_code
t_tls(void *ctx, const dc_tls_report *r, const dc_blob *origin, dc_err *err)
{
	tally *t = ctx;

	(void)origin;
	(void)err;
	t->begun++;
	t->ended++;
	t->cur = 0;
	mix_str(&t->cur, r->organization_name);
	mix_str(&t->cur, r->report_id);
	for (size_t i = 0; i < r->n_policies; i++) {
		mix_str(&t->cur, r->policies[i].policy_type);
		mix_str(&t->cur, r->policies[i].policy_domain);
		t->cur = t->cur * 31 + (uint64_t)r->policies[i].successful_sessions +
			(uint64_t)r->policies[i].failed_sessions + r->policies[i].n_failures;
		for (size_t j = 0; j < r->policies[i].n_failures; j++)
			mix_str(&t->cur, r->policies[i].failures[j].result_type);
	}
	t->digest = t->digest * 31 + t->cur;
	return DC_OK;
}

static void
t_abort(void *ctx)
{
	((tally *)ctx)->aborted++;
}

static dc_code
t_failure(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	(void)unit;
	(void)err;
	(void)stage;
	(void)why;
	((tally *)ctx)->failures++;
	return DC_OK;
}

/* One dc_extract run over data with the k-th allocation failing (0: none);
 * returns its code, fills t and err, and sets *allocs to the allocations
 * counted. */
static dc_code
run_once(const uint8_t *data, size_t len, unsigned long k, tally *t, dc_err *err, unsigned long *allocs)
{
	dc_extract_cb cb = { { t, t_begin, t_record, t_end, t_abort, t_tls, NULL }, t_failure, t, NULL,
		NULL };
	dc_extract_stats st = { 0 };
	dc_limits lim;
	dc_code rc;

	memset(t, 0, sizeof(*t));
	dc_limits_default(&lim);
	af.count = 0;
	af.failed = 0;
	af.xml = 0;
	af.fail_at = k;
	af.on = true;
	rc = dc_extract(data, len, "report", &lim, &cb, &st, err);
	af.on = false;
	*allocs = af.count;
	return rc;
}

static uint8_t *
slurp(const char *rel, size_t *len)
{
	char path[1024];
	FILE *f;
	uint8_t *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", DC_TEST_DATA, rel);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}


/* True when addr is inside libxml2. */
static bool
in_libxml2(void *addr)
{
	Dl_info di;

	return addr != NULL && dladdr(addr, &di) != 0 && di.dli_fname != NULL &&
		strstr(di.dli_fname, "libxml2") != NULL;
}

/*
 * The test of one report file (rel is relative to tests/data) that gives
 * want_reports reports and want_failures failures.  spare: a string that
 * libxml2 may strdup without the copy being failed (NULL: none), for a
 * known libxml2 defect (see test_zlib).
 */
static void
torture(const char *rel, uint64_t want_reports, uint64_t want_failures, const char *spare)
{
	size_t len;
	uint8_t *data = slurp(rel, &len);
	unsigned long n, allocs, bad = 0, late = 0, absorbed = 0;
	char wb[256];
	tally good, t;
	dc_err err;
	dc_code rc;
#ifdef HAVE_LSAN
	bool leak_each = getenv("DC_ALLOCFAIL_LEAK_EACH") != NULL;
#endif

	af.spare = spare;
	/* once, so that one-time initialisation in the libraries is not counted */
	rc = run_once(data, len, 0, &good, &err, &n);
	assert_int_equal(rc, DC_OK);
	rc = run_once(data, len, 0, &good, &err, &n);
	assert_int_equal(rc, DC_OK);
	assert_int_equal(good.ended, want_reports);
	assert_int_equal(good.failures, want_failures);
	assert_true(n > 0);
	print_message("%s: %lu allocations counted, %lu of them libxml2's\n", rel, n, af.xml);
#ifdef HAVE_LSAN
	if (__lsan_do_recoverable_leak_check() != 0) {
		free(data);
		fail_msg("%s: the successful run leaks", rel);
	}
#endif
	for (unsigned long k = 1; k <= n; k++) {
		rc = run_once(data, len, k, &t, &err, &allocs);
		if (rc == DC_ENOMEM && err.code == DC_ENOMEM && af.failed == 1 && t.ended <= good.ended &&
			t.failures <= good.failures && t.begun == t.ended + t.aborted) {
			/* the out-of-memory error, as it must be */
			late += t.ended > 0;
		} else if (rc == DC_OK && af.failed == 1 && in_libxml2(af.caller) && t.ended == good.ended &&
			t.records == good.records && t.failures == good.failures && t.digest == good.digest) {
			/* libxml2 went on without that allocation (a cache or hash
			 * table not grown) and the result is exactly the good run's */
			absorbed++;
			print_message("  %s: allocation %lu (in %s) absorbed by libxml2, same result\n", rel,
				k, where(af.caller, wb, sizeof(wb)));
		} else if (++bad <= 20) {
			print_message(
				"  %s: allocation %lu of %lu failing (in %s): %s, err %s '%s', %lu failed, "
				"%llu stored (%s), %llu failures, %llu begun, %llu aborted\n",
				rel, k, n, where(af.caller, wb, sizeof(wb)), dc_strerror(rc),
				dc_strerror(err.code), err.msg, af.failed, (unsigned long long)t.ended,
				t.digest == good.digest ? "same" : "different",
				(unsigned long long)t.failures, (unsigned long long)t.begun,
				(unsigned long long)t.aborted);
		}
#ifdef HAVE_LSAN
		/* slow: to find which k leaks (the first one reported) */
		if (leak_each && __lsan_do_recoverable_leak_check() != 0) {
			free(data);
			fail_msg("%s: allocation %lu of %lu failing leaks", rel, k, n);
		}
#endif
	}
	print_message("%s: %lu runs, %lu absorbed by libxml2, %lu with the failing allocation after a report "
		      "was stored\n",
		rel, n, absorbed, late);
	/* and it still works afterwards */
	rc = run_once(data, len, 0, &t, &err, &allocs);
	free(data);
	af.spare = NULL;
	if (bad > 0)
		fail_msg("%s: %lu of %lu allocation failures handled wrongly", rel, bad, n);
	assert_int_equal(rc, DC_OK);
	assert_int_equal(allocs, n);
	assert_true(t.digest == good.digest);
#ifdef HAVE_LSAN
	/* LeakSanitizer's report above shows where the leaked blocks came from
	 * (a leak stays reported by the checks of the reports after this one;
	 * DC_ALLOCFAIL_LEAK_EACH=1 checks after every run, to find the k) */
	if (__lsan_do_recoverable_leak_check() != 0)
		fail_msg("%s: runs with a failing allocation leak", rel);
#endif
}

#define REAL "corpus/"

/* google.com's e-mail, a zip attachment */
static void
test_eml_zip(void **state)
{
	(void)state;
	torture(REAL "freitagsrunde+dmarc-report-aggregator/tests/real_reports/google.eml", 1, 0, NULL);
}

/* fastmail.com's report, gzip */
static void
test_gzip(void **state)
{
	(void)state;
	torture(REAL "domainaware+parsedmarc/samples/aggregate/"
		     "fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz",
		1, 0, NULL);
}

/* zoho.com's report, plain XML */
static void
test_xml(void **state)
{
	(void)state;
	torture(REAL
		"domainaware+parsedmarc/samples/aggregate/zoho.com!example.com!1581753600!1581840000.xml",
		1, 0, NULL);
}

/* an RFC 9990 report (urn:ietf:params:xml:ns:dmarc-2.0) */
static void
test_rfc9990(void **state)
{
	(void)state;
	torture(REAL "domainaware+parsedmarc/samples/aggregate/rfc9990-sample.xml", 1, 0, NULL);
}

/* crafted: a forwarded message/rfc822 holding a zip (message in message) */
static void
test_nested(void **state)
{
	(void)state;
	torture("unpack/nested.eml", 1, 0, NULL);
}

/*
 * aol.com's report, raw zlib (RFC 1950), declared encoding="windows-1252",
 * which libxml2 converts with iconv.  libxml2 2.9.14's
 * xmlFindCharEncodingHandler has two out-of-memory defects on that path:
 * a failed allocation of the handler comes out as "Unsupported encoding"
 * (dc_xml now checks that and says DC_ENOMEM), and a failed copy of the
 * encoding name leaves a handler without a name, which xmlCharEncCloseFunc
 * then refuses to free: 56 bytes and two iconv descriptors leak (the parse
 * itself is correct).  Nothing outside libxml2 can free it, so that one
 * copy (the strdup of "windows-1252") is not failed here.
 */
static void
test_zlib(void **state)
{
	(void)state;
	torture(REAL
		"georgestarcher+dmarcgo/testdata/fixtures/aol.com!georgestarcher.com!1342497600!1342584000.zlib",
		1, 0, "windows-1252");
}

/* mimecast's e-mail, a gzip with bytes after its end (a repair) */
static void
test_weird_gzip(void **state)
{
	(void)state;
	torture(REAL "domainaware+parsedmarc/samples/aggregate/mimecast-weird-gzip.eml", 1, 0, NULL);
}

/* crafted: a zip with a report member and a text member (a failure) */
static void
test_good_and_bad(void **state)
{
	(void)state;
	torture("unpack/good-and-bad.zip", 1, 1, NULL);
}

/* crafted: two messages in a zip, one with a report (gzip, base64), one
 * without (a failure); a message buffered out of an archive */
static void
test_eml_in_zip(void **state)
{
	(void)state;
	torture("unpack/eml-in-zip.zip", 1, 1, NULL);
}

/* Microsoft's SMTP TLS report e-mail: JSON in a gzip attachment, parsed
 * by dc_tlsrpt (json-c's own allocations are not counted: a shared library) */
static void
test_tls_report(void **state)
{
	(void)state;
	torture(REAL "_smtp_tls/mjl-+mox/testdata/tlsreports/microsoft.eml", 1, 0, NULL);
}

static int
setup(void **state)
{
	(void)state;
	/* libxml2's allocations go through the hook (before it allocates) */
	if (xmlMemSetup(free, x_malloc, x_realloc, x_strdup) != 0)
		return -1;
	dc_xml_init();
	dc_mime_init();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eml_zip),
		cmocka_unit_test(test_tls_report),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_xml),
		cmocka_unit_test(test_rfc9990),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_eml_in_zip),
		cmocka_unit_test(test_zlib),
		cmocka_unit_test(test_weird_gzip),
		cmocka_unit_test(test_good_and_bad),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}

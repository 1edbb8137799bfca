/*
 * test_allocfail.c - allocation-failure mode (issue 9, item 5; curl's
 * "torture" idea): for a few real reports, count the allocations N of a
 * successful dc_extract, then run it N more times, failing the k-th
 * allocation (k = 1..N, only that one), and check that every run
 *  - returns DC_ENOMEM with err.code DC_ENOMEM (never a parse or format
 *    error that would record a good report as a failure),
 *  - stores no report and hands no failure to cb->failure,
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
 * Not counted: GLib/GMime (g_malloc aborts by design when memory runs out,
 * so its allocations cannot fail), libzip (a shared library calling malloc
 * itself; --wrap does not reach into it), the probe inflate of
 * dc_unpack_sniff (zlib's default allocator, inside libz).
 */
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
	bool on;              /* counting (only around dc_extract) */
	unsigned long count;  /* allocations seen while on */
	unsigned long fail_at; /* fail this one (1-based), 0 = none */
	unsigned long failed; /* allocations failed */
	unsigned long xml;    /* of count: libxml2's */
} af;

/* True when the allocation being made must fail. */
static bool
af_fail(void)
{
	if (!af.on)
		return false;
	if (++af.count != af.fail_at)
		return false;
	af.failed++;
	return true;
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
	af.xml += af.on;
	return af_fail() ? NULL : __real_strdup(s);
}

/* ---------------------------------------------------------------- the sink */

typedef struct tally {
	uint64_t begun, records, ended, aborted, failures;
} tally;

static dc_code
t_begin(void *ctx, const dc_report *r, const dc_blob *o, dc_err *err)
{
	(void)r;
	(void)o;
	(void)err;
	((tally *)ctx)->begun++;
	return DC_OK;
}

static dc_code
t_record(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err)
{
	(void)r;
	(void)rec;
	(void)err;
	((tally *)ctx)->records++;
	return DC_OK;
}

static dc_code
t_end(void *ctx, const dc_report *r, dc_err *err)
{
	(void)r;
	(void)err;
	((tally *)ctx)->ended++;
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
	((tally *)ctx)->failures++;
	print_message("  failure: %s: %s\n", stage, dc_err_text(why));
	return DC_OK;
}

/* One dc_extract run over data with the k-th allocation failing (0: none);
 * returns its code, fills t and err, and sets *allocs to the allocations
 * counted. */
static dc_code
run_once(const uint8_t *data, size_t len, unsigned long k, tally *t, dc_err *err, unsigned long *allocs)
{
	dc_extract_cb cb = { { t, t_begin, t_record, t_end, t_abort }, t_failure, t };
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


/* The test of one report file: rel is relative to tests/data. */
static void
torture(const char *rel, uint64_t want_reports)
{
	size_t len;
	uint8_t *data = slurp(rel, &len);
	unsigned long n, allocs, bad = 0;
	tally t;
	dc_err err;
	dc_code rc;

	/* once, so that one-time initialisation in the libraries is not counted */
	rc = run_once(data, len, 0, &t, &err, &n);
	assert_int_equal(rc, DC_OK);
	rc = run_once(data, len, 0, &t, &err, &n);
	assert_int_equal(rc, DC_OK);
	assert_int_equal(t.ended, want_reports);
	assert_int_equal(t.failures, 0);
	assert_true(n > 0);
	print_message("%s: %lu allocations counted, %lu of them libxml2's\n", rel, n, af.xml);
#ifdef HAVE_LSAN
	if (__lsan_do_recoverable_leak_check() != 0)
		fail_msg("the successful run leaks");
#endif
	for (unsigned long k = 1; k <= n; k++) {
		rc = run_once(data, len, k, &t, &err, &allocs);
		if (rc != DC_ENOMEM || err.code != DC_ENOMEM || af.failed != 1 || t.ended != 0 ||
			t.failures != 0 || t.begun != t.aborted) {
			if (++bad <= 20)
				print_message("  %s: allocation %lu of %lu failing: rc %s, err %s '%s', %lu failed, %llu stored, "
				 "%llu failures, %llu begun, %llu aborted\n",
				rel, k, n, dc_strerror(rc), dc_strerror(err.code), err.msg, af.failed,
				(unsigned long long)t.ended, (unsigned long long)t.failures,
				(unsigned long long)t.begun, (unsigned long long)t.aborted);
		}
	}
	if (bad > 0)
		fail_msg("%s: %lu of %lu allocation failures handled wrongly", rel, bad, n);
	/* and it still works afterwards */
	rc = run_once(data, len, 0, &t, &err, &allocs);
	assert_int_equal(rc, DC_OK);
	assert_int_equal(allocs, n);
#ifdef HAVE_LSAN
	/* LeakSanitizer's report above shows where the leaked blocks came from
	 * (a leak stays reported by the checks of the reports after this one) */
	if (__lsan_do_recoverable_leak_check() != 0)
		fail_msg("%s: runs with a failing allocation leak", rel);
#endif
	free(data);
}

#define REAL "corpus/"

/* google.com's e-mail, a zip attachment */
static void
test_eml_zip(void **state)
{
	(void)state;
	torture(REAL "freitagsrunde+dmarc-report-aggregator/tests/real_reports/google.eml", 1);
}

/* fastmail.com's report, gzip */
static void
test_gzip(void **state)
{
	(void)state;
	torture(REAL "domainaware+parsedmarc/samples/aggregate/"
		    "fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz", 1);
}

/* zoho.com's report, plain XML */
static void
test_xml(void **state)
{
	(void)state;
	torture(REAL "domainaware+parsedmarc/samples/aggregate/zoho.com!example.com!1581753600!1581840000.xml", 1);
}

/* an RFC 9990 report (urn:ietf:params:xml:ns:dmarc-2.0) */
static void
test_rfc9990(void **state)
{
	(void)state;
	torture(REAL "domainaware+parsedmarc/samples/aggregate/rfc9990-sample.xml", 1);
}

/* crafted: a forwarded message/rfc822 holding a zip (message in message) */
static void
test_nested(void **state)
{
	(void)state;
	torture("unpack/nested.eml", 1);
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
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_xml),
		cmocka_unit_test(test_rfc9990),
		cmocka_unit_test(test_nested),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}

/*
 * test_arf.c - DMARC failure reports (parser/dc_arf.c) in the messages of
 * tests/data/arf/ (written for the project) and the real ones of
 * tests/data/corpus/_forensic/: the feedback fields (folded, repeated,
 * lower-cased, Source-IP forms), the original's header block and fields,
 * keep_body, reports forwarded in a message, malformed reports, and how
 * dc_extract counts them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dc_arf.h"
#include "dc_extract.h"

/* What a walk found: the fields of the first report, copied. */
typedef struct seen {
	int reports, bad;
	char section[16];
	char bad_why[DC_ERR_MSG_MAX];
	char type[32], ip[64], domain[64], mail_from[64], auth_failure[32], delivery[32], align[32];
	char dkim_domain[64], selector[32], spf_dns[64], reporting_mta[64], arrival[64], version[16];
	char rcpt[3][32];
	size_t n_rcpt;
	int64_t arrival_time;
	char headers[2048];
	char return_path[32], auto_submitted[32], content_type[128], from[128], subject[128], message_id[64];
	char notes[256];
	size_t body_len;
	char body_head[32];
	bool body_present;
} seen;

static void
cp(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "(null)");
}

#define CP(f, v) cp(s->f, sizeof(s->f), v)

static dc_code
on_report(void *ctx, const dc_arf_report *r, const char *section, dc_err *err)
{
	seen *s = ctx;

	(void)err;
	if (s->reports++ > 0)
		return DC_OK;
	CP(section, section);
	CP(type, r->feedback_type);
	CP(ip, r->source_ip);
	CP(domain, r->reported_domain);
	CP(mail_from, r->original_mail_from);
	CP(auth_failure, r->auth_failure);
	CP(delivery, r->delivery_result);
	CP(align, r->identity_alignment);
	CP(dkim_domain, r->dkim_domain);
	CP(selector, r->dkim_selector);
	CP(spf_dns, r->spf_dns);
	CP(reporting_mta, r->reporting_mta);
	CP(arrival, r->arrival_date);
	CP(version, r->version);
	s->n_rcpt = r->n_original_rcpt_to;
	for (size_t i = 0; i < r->n_original_rcpt_to && i < 3; i++)
		CP(rcpt[i], r->original_rcpt_to[i]);
	s->arrival_time = r->arrival_time;
	CP(headers, r->headers);
	CP(return_path, r->orig_return_path);
	CP(auto_submitted, r->orig_auto_submitted);
	CP(content_type, r->orig_content_type);
	CP(from, r->orig_from);
	CP(subject, r->orig_subject);
	CP(message_id, r->orig_message_id);
	CP(notes, r->notes);
	s->body_len = r->body_len;
	s->body_present = r->body_present;
	if (r->body != NULL)
		snprintf(s->body_head, sizeof(s->body_head), "%.*s",
			(int)(r->body_len < 31 ? r->body_len : 31), (const char *)r->body);
	return DC_OK;
}

static dc_code
on_bad(void *ctx, const dc_err *why, const char *section, dc_err *err)
{
	seen *s = ctx;

	(void)err;
	(void)section;
	if (s->bad++ == 0)
		CP(bad_why, why->msg);
	return DC_OK;
}

static uint8_t *
slurp(const char *rel, size_t *len)
{
	char path[1024];
	FILE *f;
	uint8_t *b;
	long n;

	snprintf(path, sizeof(path), "%s/%s", DC_TEST_DATA, rel);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void
walk_file(const char *rel, bool keep_body, seen *s, unsigned *found)
{
	size_t len;
	uint8_t *b = slurp(rel, &len);
	dc_err err;

	memset(s, 0, sizeof(*s));
	assert_true(dc_arf_maybe(b, len));
	assert_int_equal(dc_arf_walk(b, len, keep_body, on_report, on_bad, s, found, &err), DC_OK);
	free(b);
}

static void
test_fields(void **state)
{
	seen s;
	unsigned found;

	(void)state;
	walk_file("arf/auth-failure.eml", false, &s, &found);
	assert_int_equal(found, 1);
	assert_int_equal(s.reports, 1);
	assert_int_equal(s.bad, 0);
	assert_string_equal(s.section, "");
	assert_string_equal(s.type, "auth-failure"); /* lower-cased */
	assert_string_equal(s.auth_failure, "dmarc");
	assert_string_equal(s.delivery, "reject");
	assert_string_equal(s.align, "none");
	assert_string_equal(s.ip, "198.51.100.7");    /* the comment dropped */
	assert_string_equal(s.domain, "example.com"); /* the first of two */
	assert_string_equal(s.mail_from, "<>");
	assert_string_equal(s.dkim_domain, "example.com");
	assert_string_equal(s.selector, "s1");
	assert_string_equal(s.spf_dns, "txt : example.com : \"v=spf1 -all\"");
	assert_string_equal(s.reporting_mta, "dns; mx.receiver.example");
	assert_string_equal(s.version, "1");
	assert_int_equal(s.n_rcpt, 3);
	assert_string_equal(s.rcpt[0], "<a@example.net>");
	assert_string_equal(s.rcpt[1], "<b@example.net>");
	assert_string_equal(s.rcpt[2], "<c@example.net>"); /* folded */
	assert_string_equal(s.arrival, "Mon, 02 Nov 2026 09:58:01 +0000");
	assert_int_equal(s.arrival_time, INT64_C(1793613481));
	/* the original's header block and the fields read from it */
	assert_non_null(strstr(s.headers, "Return-Path: <>"));
	assert_non_null(strstr(s.headers, "Received: from bounce.example.com"));
	assert_null(strstr(s.headers, "could not be delivered"));
	assert_string_equal(s.return_path, "<>");
	assert_string_equal(s.auto_submitted, "auto-replied");
	assert_non_null(strstr(s.content_type, "report-type=delivery-status"));
	assert_string_equal(s.from, "Mail Delivery System <MAILER-DAEMON@bounce.example.com>");
	assert_string_equal(s.subject, "Undelivered Mail Returned to Sender \xE2\x9C\x89"); /* RFC 2047 */
	assert_string_equal(s.message_id, "<dsn-1@bounce.example.com>");
	assert_string_equal(s.notes, "(null)");
	/* keep_body off: the body is known to exist but not handed on */
	assert_true(s.body_present);
	assert_int_equal(s.body_len, 0);
	assert_string_equal(s.body_head, "");
}

static void
test_keep_body(void **state)
{
	seen s;
	unsigned found;

	(void)state;
	walk_file("arf/auth-failure.eml", true, &s, &found);
	assert_int_equal(s.reports, 1);
	assert_true(s.body_present);
	assert_true(s.body_len > 0);
	assert_string_equal(s.body_head, "--inner\nContent-Type: text/plai");
}

static void
test_headers_only(void **state)
{
	seen s;
	unsigned found;

	(void)state;
	walk_file("arf/headers-only.eml", true, &s, &found);
	assert_int_equal(s.reports, 1);
	assert_string_equal(s.ip, "2001:db8::25");
	assert_string_equal(s.subject, "Hello");
	assert_string_equal(s.message_id, "<m2@example.com>");
	assert_false(s.body_present);
	assert_int_equal(s.body_len, 0);
	assert_int_equal(s.arrival_time, INT64_MIN);
	assert_non_null(strstr(s.notes, "Arrival-Date is no date"));
	assert_string_equal(s.rcpt[0], ""); /* none */
	assert_int_equal(s.n_rcpt, 0);
}

static void
test_malformed(void **state)
{
	seen s;
	unsigned found;

	(void)state;
	walk_file("arf/no-feedback-part.eml", false, &s, &found);
	assert_int_equal(found, 1);
	assert_int_equal(s.reports, 0);
	assert_int_equal(s.bad, 1);
	assert_non_null(strstr(s.bad_why, "without a message/feedback-report part"));
	walk_file("arf/no-feedback-type.eml", false, &s, &found);
	assert_int_equal(s.reports, 0);
	assert_int_equal(s.bad, 1);
	assert_non_null(strstr(s.bad_why, "no Feedback-Type field"));
}

static void
test_forwarded(void **state)
{
	seen s;
	unsigned found;

	(void)state;
	/* the report in part 2; the report inside its original is not one */
	walk_file("arf/forwarded.eml", false, &s, &found);
	assert_int_equal(found, 1);
	assert_int_equal(s.reports, 1);
	assert_string_equal(s.section, "2");
	assert_string_equal(s.ip, "192.0.2.44");
	assert_string_equal(s.subject, "the original holds a failure report itself");
}

/* The real reports: every one but the sample without an ARF part is found,
 * and its Source-IP is an address. */
static void
test_corpus(void **state)
{
	static const struct {
		const char *file, *ip, *type;
	} want[] = {
		{ "corpus/_forensic/sisimai+set-of-emails/maildir/bsd/arf-18.eml", "192.0.2.222",
			"auth-failure" },
		{ "corpus/_forensic/stalwartlabs+mail-auth/resources/arf/001.eml", "(null)", "abuse" },
		{ "corpus/_forensic/stalwartlabs+mail-auth/resources/arf/004.eml", "148.163.85.135",
			"auth-failure" },
		{ "corpus/_forensic/domainaware+parsedmarc/samples/failure/dmarc_ruf_report_linkedin.crlf.eml",
			"10.10.10.10", "auth-failure" },
	};
	seen s;
	unsigned found;
	size_t len;
	uint8_t *b;
	dc_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		walk_file(want[i].file, false, &s, &found);
		assert_int_equal(s.reports, 1);
		assert_string_equal(s.ip, want[i].ip);
		assert_string_equal(s.type, want[i].type);
	}
	/* the last field runs up to the boundary, without a line break */
	walk_file("corpus/_forensic/sisimai+set-of-emails/maildir/bsd/arf-19.eml", false, &s, &found);
	assert_string_equal(s.delivery, "delivered");
	assert_string_equal(s.dkim_domain, "ietf.org; example.net");
	/* CRLF: the same report as the LF copy */
	walk_file("corpus/_forensic/domainaware+parsedmarc/samples/failure/dmarc_ruf_report_linkedin.eml",
		false, &s, &found);
	assert_string_equal(s.mail_from, "");
	assert_string_equal(s.return_path, "<>");
	assert_string_equal(s.auto_submitted, "auto-generated");
	b = slurp(
		"corpus/_forensic/domainaware+parsedmarc/samples/failure/exim_plain_text_only_no_arf_part.eml",
		&len);
	memset(&s, 0, sizeof(s));
	assert_false(dc_arf_maybe(b, len));
	assert_int_equal(dc_arf_walk(b, len, false, on_report, on_bad, &s, &found, &err), DC_OK);
	assert_int_equal(found, 0);
	free(b);
}

static void
test_maybe(void **state)
{
	(void)state;
	assert_true(dc_arf_maybe((const uint8_t *)"x: Feedback-Report", 18));
	assert_true(dc_arf_maybe((const uint8_t *)"feedback-report", 15));
	assert_false(dc_arf_maybe((const uint8_t *)"feedback-repor", 14));
	assert_false(dc_arf_maybe((const uint8_t *)"-report", 7));
	assert_false(dc_arf_maybe((const uint8_t *)"", 0));
}

/* ---- through dc_extract */

typedef struct xcount {
	int arf, fail, dup_every;
	char stage[16], why[DC_ERR_MSG_MAX], path[64];
} xcount;

static dc_code
x_arf(void *ctx, const struct dc_arf_report *r, const dc_blob *origin, dc_err *err)
{
	xcount *c = ctx;

	(void)r;
	(void)err;
	(void)origin;
	c->arf++;
	snprintf(c->path, sizeof(c->path), "%s", origin->path ? origin->path : "(null)");
	return c->dup_every && c->arf % c->dup_every == 0 ? DC_SKIP : DC_OK;
}

static dc_code
x_failure(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	xcount *c = ctx;

	(void)unit;
	(void)err;
	if (c->fail++ == 0) {
		snprintf(c->stage, sizeof(c->stage), "%s", stage);
		snprintf(c->why, sizeof(c->why), "%s", why->msg);
	}
	return DC_OK;
}

static void
extract(const char *rel, xcount *c, dc_extract_stats *st)
{
	dc_extract_cb cb = {
		.sink = { .ctx = c, .failure_report = x_arf }, .failure = x_failure, .failure_ctx = c
	};
	dc_limits lim;
	size_t len;
	uint8_t *b = slurp(rel, &len);
	dc_err err;

	dc_limits_default(&lim);
	memset(st, 0, sizeof(*st));
	assert_int_equal(dc_extract(b, len, rel, &lim, &cb, st, &err), DC_OK);
	free(b);
}

static void
test_extract(void **state)
{
	xcount c = { 0 };
	dc_extract_stats st;

	(void)state;
	extract("arf/auth-failure.eml", &c, &st);
	assert_int_equal(c.arf, 1);
	assert_int_equal(st.failure_reports, 1);
	assert_int_equal(st.failures, 0);
	assert_int_equal(st.reports, 0);
	assert_string_equal(c.path, "(null)");
	/* a duplicate counts as stored */
	memset(&c, 0, sizeof(c));
	c.dup_every = 1;
	extract("arf/auth-failure.eml", &c, &st);
	assert_int_equal(st.failure_reports, 1);
	assert_int_equal(st.failures, 0);
	/* forwarded: the path names its part */
	memset(&c, 0, sizeof(c));
	extract("arf/forwarded.eml", &c, &st);
	assert_int_equal(st.failure_reports, 1);
	assert_string_equal(c.path, "part 2");
	/* malformed: one failure of stage report, and no "no aggregate report" besides */
	memset(&c, 0, sizeof(c));
	extract("arf/no-feedback-part.eml", &c, &st);
	assert_int_equal(st.failure_reports, 0);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage, "report");
	assert_non_null(strstr(c.why, "without a message/feedback-report part"));
	memset(&c, 0, sizeof(c));
	extract("arf/no-feedback-type.eml", &c, &st);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage, "report");
}

/* The message size limit applies to failure reports like any message. */
static void
test_extract_limits(void **state)
{
	xcount c = { 0 };
	dc_extract_cb cb = {
		.sink = { .ctx = &c, .failure_report = x_arf }, .failure = x_failure, .failure_ctx = &c
	};
	dc_extract_stats st = { 0 };
	dc_limits lim;
	size_t len;
	uint8_t *b = slurp("arf/auth-failure.eml", &len);
	dc_err err;

	(void)state;
	dc_limits_default(&lim);
	lim.max_message_bytes = len - 1;
	assert_int_equal(dc_extract(b, len, NULL, &lim, &cb, &st, &err), DC_OK);
	assert_int_equal(st.failure_reports, 0);
	assert_int_equal(c.arf, 0);
	assert_int_equal(st.failures, 1);
	assert_string_equal(c.stage, "limits");
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_keep_body),
		cmocka_unit_test(test_headers_only),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_forwarded),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_maybe),
		cmocka_unit_test(test_extract),
		cmocka_unit_test(test_extract_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

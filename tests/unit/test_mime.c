/*
 * test_mime.c - the leaves dc_mime_walk finds in the crafted messages of
 * tests/data/unpack/ (written by make.py there): part numbers, content
 * types, decoded file names (RFC 2047/2231), transfer decoding (base64,
 * quoted-printable), message/rfc822 recursion, leading whitespace, the mbox
 * From line, nesting and boundary caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dc_mime.h"

typedef struct want_leaf {
	const char *section;
	const char *type;
	const char *filename; /* NULL: none */
	const char *prefix;   /* first bytes of the decoded body */
	size_t prefix_len;
	const char *contains; /* a text the decoded body holds, or NULL */
} want_leaf;

typedef struct want_msg {
	const char *file;
	const char *notes;
	size_t n;
	want_leaf leaves[5];
} want_msg;

#define GZ   "\x1f\x8b", 2
#define ZIP  "PK\x03\x04", 4
#define XMLD "<?xml", 5

static const want_msg cases[] = {
	{ "base64.eml", "", 2,
		{ { "1", "text/plain", NULL, "Report attached.", 16, NULL },
			{ "2", "application/gzip", "r1.xml.gz", GZ, NULL } } },
	{ "qp.eml", "", 1,
		{ { "1", "text/xml", NULL, XMLD, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" } } },
	{ "nested.eml", "", 3,
		{ { "1", "text/plain", NULL, "Forwarding", 10, NULL },
			{ "2.1", "text/plain", NULL, "Original report.", 16, NULL },
			{ "2.2", "application/zip", "r.zip", ZIP, NULL } } },
	{ "rfc2231.eml", "", 3,
		{ { "1", "application/gzip", "r\xc3\xa9port 1.xml.gz", GZ, NULL },
			{ "2", "application/gzip", "r\xc3\xa9sum\xc3\xa9.xml.gz", GZ, NULL },
			{ "3", "application/octet-stream", "long name part two.xml", XMLD,
				"<report_id>NAME-3</report_id>" } } },
	{ "several.eml", "", 4,
		{ { "1", "text/plain", NULL, "Three", 5, NULL },
			{ "2", "application/gzip", "a.zip", ZIP, NULL },
			{ "3", "application/octet-stream", "c.xml", GZ, NULL },
			{ "4", "image/png", "logo.png", "\x89PNG", 4, NULL } } },
	{ "report-html.eml", "", 3,
		{ { "1.1", "text/plain", NULL, "This is", 7, NULL },
			{ "1.2", "text/html", NULL, "<!DOCTYPE html>", 15, "<p style=\"x\">" },
			{ "2", "application/gzip", "h.xml.gz", GZ, NULL } } },
	{ "leading-ws.eml", "whitespace before the first header line removed", 1,
		{ { "1", "application/gzip", "w.xml.gz", GZ, NULL } } },
	{ "mbox-from.eml", "", 1, { { "1", "application/zip", "m.zip", ZIP, NULL } } },
};

typedef struct seen {
	const want_msg *w;
	size_t i;
} seen;

static dc_code
check_leaf(void *ctx, const dc_mime_leaf *leaf, dc_err *err)
{
	seen *s = ctx;
	const want_leaf *wl;

	(void)err;
	if (s->i >= s->w->n)
		fail_msg("%s: unexpected leaf %s", s->w->file, leaf->section);
	wl = &s->w->leaves[s->i++];
	assert_string_equal(leaf->section, wl->section);
	assert_string_equal(leaf->content_type, wl->type);
	if (wl->filename == NULL)
		assert_null(leaf->filename);
	else
		assert_string_equal(leaf->filename, wl->filename);
	assert_true(leaf->len >= wl->prefix_len);
	assert_memory_equal(leaf->data, wl->prefix, wl->prefix_len);
	if (wl->contains != NULL && memmem(leaf->data, leaf->len, wl->contains, strlen(wl->contains)) == NULL)
		fail_msg("%s part %s lacks '%s'", s->w->file, leaf->section, wl->contains);
	return DC_OK;
}

static uint8_t *
slurp(const char *name, size_t *len)
{
	char path[1024];
	FILE *f;
	uint8_t *b;
	long n;

	snprintf(path, sizeof(path), "%s/unpack/%s", DC_TEST_DATA, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void
test_messages(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		seen s = { &cases[c], 0 };
		dc_mime_info info;
		dc_err err;
		size_t len;
		uint8_t *m = slurp(cases[c].file, &len);

		dc_err_clear(&err);
		assert_int_equal(dc_mime_walk(m, len, check_leaf, &s, &info, &err), DC_OK);
		if (s.i != cases[c].n)
			fail_msg("%s: %zu leaves, want %zu", cases[c].file, s.i, cases[c].n);
		assert_int_equal(info.leaves, cases[c].n);
		assert_int_equal(info.too_deep, 0);
		assert_string_equal(info.notes, cases[c].notes);
		free(m);
	}
}

/* A message nesting n multiparts, with one text leaf at the bottom. */
static char *
nested(int n, size_t *len)
{
	size_t cap = (size_t)n * 100 + 200, o = 0;
	char *m = malloc(cap);

	assert_non_null(m);
	o += (size_t)sprintf(m + o, "From: a@b\r\nMIME-Version: 1.0\r\n");
	for (int i = 0; i < n; i++)
		o += (size_t)sprintf(
			m + o, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
	o += (size_t)sprintf(m + o, "Content-Type: text/plain\r\n\r\nbottom\r\n");
	for (int i = n - 1; i >= 0; i--)
		o += (size_t)sprintf(m + o, "--b%d--\r\n", i);
	*len = o;
	return m;
}

static dc_code
count_leaf(void *ctx, const dc_mime_leaf *leaf, dc_err *err)
{
	(void)err;
	assert_int_equal(leaf->len, 6);
	assert_memory_equal(leaf->data, "bottom", 6);
	(*(int *)ctx)++;
	return DC_OK;
}

static void
test_nesting_caps(void **state)
{
	static const struct {
		int levels;
		dc_code rc;
		unsigned leaves, too_deep;
	} t[] = {
		{ DC_MAX_MIME_DEPTH, DC_OK, 1, 0 },
		{ DC_MAX_MIME_DEPTH + 1, DC_OK, 0, 1 },
		{ DC_MIME_MAX_BOUNDARIES + 1, DC_ETOODEEP, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len;
		char *m = nested(t[i].levels, &len);
		dc_mime_info info;
		dc_err err;
		int n = 0;

		assert_int_equal(dc_mime_walk((const uint8_t *)m, len, count_leaf, &n, &info, &err), t[i].rc);
		assert_int_equal(info.leaves, t[i].leaves);
		assert_int_equal((unsigned)n, t[i].leaves);
		assert_int_equal(info.too_deep, t[i].too_deep);
		free(m);
	}
}

static dc_code
stop_leaf(void *ctx, const dc_mime_leaf *leaf, dc_err *err)
{
	(void)ctx;
	(void)leaf;
	return dc_err_set(err, DC_EDB, "stop");
}

static void
test_not_a_message_and_stop(void **state)
{
	static const char *const junk[] = { "", "\r\n\r\n", "hello world" };
	dc_mime_info info;
	dc_err err;
	size_t len;
	uint8_t *m;

	(void)state;
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		assert_int_equal(
			dc_mime_walk((const uint8_t *)junk[i], strlen(junk[i]), NULL, NULL, &info, &err),
			DC_EMIME);
	/* a callback's error stops the walk and comes back unchanged */
	m = slurp("several.eml", &len);
	assert_int_equal(dc_mime_walk(m, len, stop_leaf, NULL, &info, &err), DC_EDB);
	assert_int_equal(info.leaves, 1);
	assert_string_equal(err.msg, "stop");
	free(m);
}

static dc_code
keep_leaf(void *ctx, const dc_mime_leaf *leaf, dc_err *err)
{
	char *out = ctx;
	size_t l = strlen(out);

	(void)err;
	snprintf(out + l, 256 - l, "%s%s %s %.*s", l ? "|" : "", leaf->section, leaf->content_type,
		(int)leaf->len, (const char *)leaf->data);
	return DC_OK;
}

/* The top part is parsed alone when the first line is a plain header field,
 * through a GMimeMessage otherwise: both must give the same leaves (an mbox
 * line GMime skips, a space before the colon, bodies single and multipart). */
static void
test_first_line(void **state)
{
	static const struct {
		const char *msg;
		dc_code rc;
		const char *leaves;
	} t[] = {
		{ "Content-Type: text/plain\n\nbody\n", DC_OK, "1 text/plain body\n" },
		{ "X-A: 1\nContent-Type: text/html\n\n<p>\n", DC_OK, "1 text/html <p>\n" },
		{ "Subject : spaced\nContent-Type: text/plain\n\nbody\n", DC_OK, "1 text/plain body\n" },
		{ "From a@b Mon\nFrom c@d Tue\nContent-Type: text/plain\n\nbody\n", DC_OK,
			"1 text/plain body\n" },
		{ "From a@b Mon\n: no name\nContent-Type: text/plain\n\nbody\n", DC_EMIME, "" },
		{ "To: a@b\nContent-Type: multipart/mixed; boundary=b\n\npre\n--b\nContent-Type: text/plain\n\nx\n"
		  "--b\n\ny\n--b--\n",
			DC_OK, "1 text/plain x|2 text/plain y" },
		{ "Content-Transfer-Encoding: base64\nContent-Type: application/gzip\n\naGVsbG8=\n", DC_OK,
			"1 application/gzip hello" },
		/* folded fields the walk never reads, around folded Content-* ones */
		{ "From: a@b\r\nSubject: x\r\n y\r\nContent-Type: text/csv;\r\n charset=us-ascii\r\nX-B: 2\r\n"
		  "Content-Transfer-Encoding:\r\n\tbase64\r\n\r\naGVsbG8=\r\n",
			DC_OK, "1 text/csv hello" },
		{ "Received: from x\n\tby y\nContent-Type: multipart/mixed;\n boundary=\"b\"\nDate: now\n\n--b\n"
		  "Content-Type: text/plain\n\nx\n--b--\n",
			DC_OK, "1 text/plain x" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char got[256] = "";
		dc_mime_info info;
		dc_err err;

		assert_int_equal(dc_mime_walk((const uint8_t *)t[i].msg, strlen(t[i].msg), keep_leaf, got,
					 &info, &err),
			t[i].rc);
		assert_string_equal(got, t[i].leaves);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_nesting_caps),
		cmocka_unit_test(test_not_a_message_and_stop),
		cmocka_unit_test(test_first_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

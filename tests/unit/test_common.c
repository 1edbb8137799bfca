/*
 * test_common.c - the shared plumbing in common/: the capped buffer (dc_buf)
 * and the UTF-8 validator and sanitiser (dc_utf8), table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dc_buf.h"
#include "dc_utf8.h"

/* Appends stay NUL-terminated; the maximum is exact and the failure sticks. */
static void
test_buf_cap(void **state)
{
	dc_buf b;
	(void)state;
	dc_buf_init(&b, 10);
	assert_string_equal(dc_buf_str(&b), "");
	assert_int_equal(dc_buf_adds(&b, "hello"), DC_OK);
	assert_int_equal(dc_buf_addf(&b, "%d%c", 42, '!'), DC_OK);
	assert_string_equal(dc_buf_str(&b), "hello42!");
	assert_int_equal(dc_buf_add(&b, "ab", 2), DC_OK); /* exactly 10 */
	assert_int_equal(dc_buf_len(&b), 10);
	assert_int_equal(dc_buf_addc(&b, 'x'), DC_ETOOLONG);
	assert_int_equal(dc_buf_adds(&b, ""), DC_ETOOLONG); /* sticky */
	assert_int_equal(dc_buf_code(&b), DC_ETOOLONG);
	assert_string_equal(dc_buf_str(&b), "hello42!ab"); /* unchanged */
	assert_null(dc_buf_take(&b, NULL));                /* a failed buffer hands out nothing */
	assert_int_equal(dc_buf_addf(&b, "%s", "0123456789"), DC_OK);
	assert_int_equal(dc_buf_addf(&b, "%s", "x"), DC_ETOOLONG);
	dc_buf_reset(&b);
	assert_int_equal(dc_buf_code(&b), DC_OK);
	assert_int_equal(dc_buf_len(&b), 0);
	dc_buf_free(&b);
	dc_buf_free(&b); /* twice is fine */
}

/* Growth past the first allocation keeps the contents; room/commit/take. */
static void
test_buf_grow_take(void **state)
{
	dc_buf b;
	size_t len;
	char *p;
	(void)state;
	dc_buf_init(&b, 1 << 20);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(dc_buf_addc(&b, (char)('a' + i % 26)), DC_OK);
	assert_int_equal(dc_buf_len(&b), 10000);
	assert_int_equal(dc_buf_str(&b)[9999], 'a' + 9999 % 26);
	p = dc_buf_room(&b, 3);
	assert_non_null(p);
	memcpy(p, "xyz", 3);
	dc_buf_commit(&b, 2);
	assert_int_equal(dc_buf_len(&b), 10002);
	dc_buf_truncate(&b, 3);
	assert_string_equal(dc_buf_str(&b), "abc");
	p = dc_buf_take(&b, &len);
	assert_int_equal(len, 3);
	assert_string_equal(p, "abc");
	free(p);
	assert_int_equal(dc_buf_len(&b), 0);
	assert_null(dc_buf_room(&b, (1 << 20) + 1));
	assert_int_equal(dc_buf_code(&b), DC_ETOOLONG);
	dc_buf_free(&b);
}

/* dc_utf8_seq: Table 3-7 of the Unicode standard, byte by byte. */
static void
test_utf8_seq(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		int want;
		uint32_t cp;
	} cases[] = {
		{ "A", 1, 1, 0x41 },
		{ "\xC3\xA9", 2, 2, 0xE9 },
		{ "\xE2\x82\xAC", 3, 3, 0x20AC },
		{ "\xF0\x9F\x98\x80", 4, 4, 0x1F600 },
		{ "\xF4\x8F\xBF\xBF", 4, 4, 0x10FFFF },
		{ "\xC0\xAF", 2, 0, 0 },         /* overlong '/' */
		{ "\xC1\xBF", 2, 0, 0 },         /* overlong */
		{ "\xE0\x9F\xBF", 3, 0, 0 },     /* overlong 3-byte */
		{ "\xED\xA0\x80", 3, 0, 0 },     /* surrogate U+D800 */
		{ "\xF0\x8F\xBF\xBF", 4, 0, 0 }, /* overlong 4-byte */
		{ "\xF4\x90\x80\x80", 4, 0, 0 }, /* above U+10FFFF */
		{ "\xF5\x80\x80\x80", 4, 0, 0 },
		{ "\x80", 1, 0, 0 }, /* lone continuation */
		{ "\xC3(", 2, 0, 0 },
		{ "\xE2\x82", 2, -1, 0 }, /* incomplete, may go on */
		{ "\xF0", 1, -1, 0 },
		{ "\xE2\x28\xA1", 3, 0, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t cp = 0;
		int got = dc_utf8_seq((const uint8_t *)cases[i].in, cases[i].n, &cp);
		char out[4];

		assert_int_equal(got, cases[i].want);
		if (got > 0) {
			assert_int_equal(cp, cases[i].cp);
			assert_int_equal(dc_utf8_put(out, cp), (size_t)got);
			assert_memory_equal(out, cases[i].in, (size_t)got);
		}
		assert_int_equal(dc_utf8_valid(cases[i].in, cases[i].n), got == (int)cases[i].n);
	}
	{
		char out[4];
		assert_int_equal(dc_utf8_put(out, 0xD800), 0);
		assert_int_equal(dc_utf8_put(out, 0x110000), 0);
	}
}

/* dc_utf8_sanitize: one replacement per bad byte, controls on request. */
static void
test_utf8_sanitize(void **state)
{
	static const struct {
		const char *in;
		const char *repl;
		unsigned flags;
		const char *want;
		size_t bad;
	} cases[] = {
		{ "plain", "?", 0, "plain", 0 },
		{ "caf\xC3\xA9", "?", 0, "caf\xC3\xA9", 0 },
		{ "a\377b", "?", 0, "a?b", 1 },
		{ "a\300\257b", "?", 0, "a??b", 2 },
		{ "cut\xE2\x82", "?", 0, "cut??", 2 },
		{ "x\xFFy", "\xEF\xBF\xBD", 0, "x\xEF\xBF\xBDy", 1 },
		{ "tab\there", "?", 0, "tab\there", 0 },
		{ "tab\there\x7F", "?", DC_UTF8_NO_CONTROLS, "tab?here?", 2 },
		{ "", "?", 0, "", 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t bad = 99;
		char *s = dc_utf8_sanitize(
			cases[i].in, strlen(cases[i].in), cases[i].repl, cases[i].flags, &bad);

		assert_non_null(s);
		assert_string_equal(s, cases[i].want);
		assert_int_equal(bad, cases[i].bad);
		assert_true(dc_utf8_valid(s, strlen(s)));
		free(s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_buf_grow_take),
		cmocka_unit_test(test_utf8_seq),
		cmocka_unit_test(test_utf8_sanitize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

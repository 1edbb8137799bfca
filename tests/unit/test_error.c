/*
 * test_error.c - dc_err_set keeps one line and dc_strerror covers every code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dc_error.h"

static void
test_one_line(void **state)
{
	dc_err e;
	(void)state;
	dc_err_clear(&e);
	assert_int_equal(dc_err_set(&e, DC_EXML, "line %d\nnext\r\n", 3), DC_EXML);
	assert_int_equal(e.code, DC_EXML);
	assert_string_equal(e.msg, "line 3 next");
	dc_err_clear(&e);
	assert_string_equal(dc_err_text(&e), "success");
}

static void
test_every_code_has_text(void **state)
{
	(void)state;
	for (int c = DC_OK; c <= DC_SKIP; c++)
		assert_string_not_equal(dc_strerror((dc_code)c), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_line),
		cmocka_unit_test(test_every_code_has_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_error.c - dc_err_set keeps one line, dc_strerror covers every code,
 * SQLSTATEs are classified as passing or refused (dc_pg_code), and every
 * code has its exit status (dc_exit_for).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dc_error.h"
#include "dc_exit.h"
#include "dc_pg.h"

/* dc_pg_array_*: PostgreSQL's array literal syntax, quoting and NULL. */
static void
test_array_literal(void **state)
{
	dc_buf b;
	(void)state;
	dc_buf_init(&b, 64);
	assert_int_equal(dc_pg_array_begin(&b), DC_OK);
	assert_int_equal(dc_pg_array_end(&b), DC_OK);
	assert_string_equal(dc_buf_str(&b), "{}");
	dc_pg_array_begin(&b);
	dc_pg_array_text(&b, "a");
	dc_pg_array_text(&b, NULL);
	dc_pg_array_text(&b, "q\"b\\s,{}");
	assert_int_equal(dc_pg_array_end(&b), DC_OK);
	assert_string_equal(dc_buf_str(&b), "{\"a\",NULL,\"q\\\"b\\\\s,{}\"}");
	dc_pg_array_begin(&b);
	dc_pg_array_int(&b, -5);
	dc_pg_array_int(&b, INT64_MAX);
	assert_int_equal(dc_pg_array_end(&b), DC_OK);
	assert_string_equal(dc_buf_str(&b), "{-5,9223372036854775807}");
	dc_pg_array_begin(&b);
	dc_pg_array_bool(&b, true);
	dc_pg_array_bool(&b, false);
	assert_int_equal(dc_pg_array_end(&b), DC_OK);
	assert_string_equal(dc_buf_str(&b), "{t,f}");
	dc_pg_array_begin(&b);
	for (int i = 0; i < 20; i++)
		dc_pg_array_text(&b, "long");
	assert_int_equal(dc_pg_array_end(&b), DC_ETOOLONG); /* past the buffer's maximum */
	dc_buf_free(&b);
}

static dc_code first_fail(dc_err *first, dc_err *err, dc_code code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static dc_code
first_fail(dc_err *first, dc_err *err, dc_code code, const char *fmt, ...)
{
	va_list ap;
	dc_code rc;

	va_start(ap, fmt);
	rc = dc_err_firstv(first, err, code, fmt, ap);
	va_end(ap);
	return rc;
}

/* dc_err_firstv keeps the first failure and hands it out every time. */
static void
test_first_failure_sticks(void **state)
{
	dc_err first, e;
	(void)state;
	dc_err_clear(&first);
	assert_int_equal(first_fail(&first, &e, DC_EZIP, "member %d", 7), DC_EZIP);
	assert_string_equal(e.msg, "member 7");
	assert_int_equal(first_fail(&first, &e, DC_EGZIP, "later"), DC_EZIP);
	assert_int_equal(e.code, DC_EZIP);
	assert_string_equal(e.msg, "member 7");
	assert_int_equal(first_fail(&first, NULL, DC_EXML, "x"), DC_EZIP);
	assert_string_equal(first.msg, "member 7");
}

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
	for (int c = DC_OK; c <= DC_EINPUT_LIMIT; c++)
		assert_string_not_equal(dc_strerror((dc_code)c), "unknown error");
}

/* The poll-failure kinds of metrics and the run log. */
static void
test_code_kind(void **state)
{
	(void)state;
	assert_string_equal(dc_code_kind(DC_OK), "none");
	assert_string_equal(dc_code_kind(DC_EDB), "database");
	assert_string_equal(dc_code_kind(DC_EDBREFUSED), "database");
	assert_string_equal(dc_code_kind(DC_EIMAP), "imap");
	assert_string_equal(dc_code_kind(DC_EAUTH), "auth");
	assert_string_equal(dc_code_kind(DC_ETLS), "tls");
	assert_string_equal(dc_code_kind(DC_ECONFIG), "config");
	assert_string_equal(dc_code_kind(DC_EINTERRUPTED), "interrupted");
	assert_string_equal(dc_code_kind(DC_ENOMEM), "resource");
	assert_string_equal(dc_code_kind(DC_EXML), "other");
}

/* SQLSTATE -> DC_EDB (may pass: 75) or DC_EDBREFUSED (stays: 2). */
static void
test_sqlstate(void **state)
{
	static const struct {
		const char *sqlstate;
		dc_code want;
	} cases[] = {
		{ NULL, DC_EDB },                 /* no answer at all */
		{ "", DC_EDB }, { "42", DC_EDB }, /* not a SQLSTATE */
		{ "08006", DC_EDB },              /* connection failure */
		{ "08001", DC_EDB },              /* cannot establish connection */
		{ "57P01", DC_EDB },              /* admin shutdown */
		{ "57P02", DC_EDB },              /* crash shutdown */
		{ "57P03", DC_EDB },              /* cannot connect now (starting up) */
		{ "57P05", DC_EDB },              /* idle session timeout */
		{ "57014", DC_EDB },              /* statement timeout, cancel */
		{ "53300", DC_EDB },              /* too many connections */
		{ "53100", DC_EDB },              /* disk full */
		{ "53200", DC_EDB },              /* out of memory */
		{ "40001", DC_EDB },              /* serialization failure */
		{ "40P01", DC_EDB },              /* deadlock */
		{ "55P03", DC_EDB },              /* lock not available */
		{ "58030", DC_EDB },              /* I/O error */
		{ "25P03", DC_EDB },              /* idle in transaction timeout */
		{ "42501", DC_EDBREFUSED },       /* permission denied (to create role) */
		{ "42P01", DC_EDBREFUSED },       /* undefined table */
		{ "42601", DC_EDBREFUSED },       /* syntax error */
		{ "42883", DC_EDBREFUSED },       /* undefined function */
		{ "28P01", DC_EDBREFUSED },       /* wrong password */
		{ "28000", DC_EDBREFUSED },       /* no pg_hba.conf entry */
		{ "3D000", DC_EDBREFUSED },       /* no such database */
		{ "3F000", DC_EDBREFUSED },       /* no such schema */
		{ "57P04", DC_EDBREFUSED },       /* database dropped */
		{ "58P01", DC_EDBREFUSED },       /* undefined file (an extension's library) */
		{ "0A000", DC_EDBREFUSED },       /* feature not supported */
		{ "XX000", DC_EDBREFUSED },       /* internal error */
		{ "23505", DC_EDBREFUSED },       /* a report's data error is dc_store's, not here */
		{ "P0001", DC_EDBREFUSED },       /* raise_exception */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_code got = dc_pg_code(cases[i].sqlstate);
		if (got != cases[i].want)
			fail_msg("SQLSTATE %s: got %s, want %s",
				cases[i].sqlstate ? cases[i].sqlstate : "(null)", dc_strerror(got),
				dc_strerror(cases[i].want));
	}
}

/* A failure with no connection and no result is DC_EDB with a message. */
static void
test_pg_fail_without_result(void **state)
{
	dc_err e;
	(void)state;
	dc_err_clear(&e);
	assert_int_equal(dc_pg_fail(NULL, NULL, "migrate", &e), DC_EDB);
	assert_int_equal(e.code, DC_EDB);
	assert_string_equal(e.msg, "migrate: no answer from the server");
}

/* The SPEC's four statuses; a code that stops a command maps to one of them. */
static void
test_exit_status(void **state)
{
	static const struct {
		dc_code code;
		int want;
	} cases[] = {
		{ DC_OK, 0 },
		{ DC_EUSAGE, 2 },
		{ DC_ECONFIG, 2 },
		{ DC_EDBREFUSED, 2 },
		{ DC_EAUTH, 2 },
		{ DC_ETLS, 2 },
		{ DC_EDB, 75 },
		{ DC_EIMAP, 75 },
		{ DC_EDNS, 75 },
		{ DC_EIO, 75 },
		{ DC_ENOMEM, 75 },
		{ DC_EINTERRUPTED, 75 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (dc_exit_for(cases[i].code) != cases[i].want)
			fail_msg("%s: exit %d, want %d", dc_strerror(cases[i].code),
				dc_exit_for(cases[i].code), cases[i].want);
	for (int c = DC_OK; c <= DC_EINPUT_LIMIT; c++) {
		int s = dc_exit_for((dc_code)c);
		assert_true(s == 0 || s == 1 || s == 2 || s == 75);
	}
	assert_int_equal(dc_exit_worse(2, 75), 75);
	assert_int_equal(dc_exit_worse(2, 1), 2);
	assert_int_equal(dc_exit_worse(0, 1), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_line),
		cmocka_unit_test(test_first_failure_sticks),
		cmocka_unit_test(test_array_literal),
		cmocka_unit_test(test_every_code_has_text),
		cmocka_unit_test(test_code_kind),
		cmocka_unit_test(test_sqlstate),
		cmocka_unit_test(test_pg_fail_without_result),
		cmocka_unit_test(test_exit_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

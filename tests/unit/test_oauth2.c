/*
 * test_oauth2.c - dc_oauth2_token, table-driven over real shell commands:
 * the first line trimmed, exit statuses (75 and signals: try again later;
 * others: the login cannot happen), no output, output past
 * DC_MAX_OAUTH2_TOKEN (read to the end, so the command is not killed by
 * SIGPIPE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dc_limits.h"
#include "dc_oauth2.h"

static void
test_commands(void **state)
{
	static const struct {
		const char *cmd;
		dc_code rc;
		const char *token; /* NULL: not checked (or none) */
	} t[] = {
		{ "echo tok", DC_OK, "tok" },
		{ "printf '  \\t tok en \\t\\r\\nsecond line\\n'", DC_OK, "tok en" },
		{ "printf '\\n\\nafter blank lines'", DC_OK, "after blank lines" },
		{ "true", DC_EAUTH, NULL },
		{ "printf '   \\n'", DC_EAUTH, NULL },
		{ "echo tok; exit 1", DC_EAUTH, NULL },
		{ "exit 75", DC_EIMAP, NULL },
		{ "kill -TERM $$", DC_EIMAP, NULL },
		{ "head -c 100000 /dev/zero | tr '\\0' x; echo", DC_OK, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *tok = (char *)"unset";
		dc_err err;
		dc_code rc;

		dc_err_clear(&err);
		rc = dc_oauth2_token(t[i].cmd, &tok, &err);
		print_message("%s -> %d %s\n", t[i].cmd, rc, err.msg);
		assert_int_equal(rc, t[i].rc);
		if (rc != DC_OK) {
			assert_null(tok);
			assert_int_equal(err.code, rc);
			continue;
		}
		assert_non_null(tok);
		if (t[i].token != NULL)
			assert_string_equal(tok, t[i].token);
		else
			assert_int_equal(strlen(tok), DC_MAX_OAUTH2_TOKEN); /* cut at the cap */
		free(tok);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

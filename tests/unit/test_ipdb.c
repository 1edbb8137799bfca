/*
 * test_ipdb.c - the pure parts of resolve/dc_ipdb: IPinfo's "AS64500"
 * strings and the cap on AS names, table-driven; opening what is not a
 * MaxMind DB.  Lookups in real files (written by libmaxmind-db-writer-perl):
 * tests/integration/ipdb.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dc_ipdb.h"
#include "dc_limits.h"

static const struct {
	const char *s;
	bool ok;
	uint32_t asn;
} asn_cases[] = {
	{ "AS64500", true, 64500 },
	{ "as15169", true, 15169 },
	{ "AS1", true, 1 },
	{ "AS4294967295", true, 4294967295U },
	{ "AS4294967296", false, 0 }, /* over 32 bits */
	{ "AS99999999999", false, 0 },
	{ "AS0", false, 0 },
	{ "AS", false, 0 },
	{ "", false, 0 },
	{ "64500", false, 0 },
	{ "AS 64500", false, 0 },
	{ "AS64500x", false, 0 },
	{ "AS-1", false, 0 },
	{ "ASN64500", false, 0 },
};

static void
test_parse_asn(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof asn_cases / sizeof asn_cases[0]; i++) {
		uint32_t asn = 7;
		bool ok = dc_ipdb_parse_asn(asn_cases[i].s, strlen(asn_cases[i].s), &asn);
		if (ok != asn_cases[i].ok)
			fail_msg("%s: %d, want %d", asn_cases[i].s, ok, asn_cases[i].ok);
		if (ok)
			assert_int_equal(asn, asn_cases[i].asn);
		else
			assert_int_equal(asn, 7); /* untouched */
	}
	/* the length is the limit, not a NUL: "AS64500" of "AS645001" */
	uint32_t asn = 0;
	assert_true(dc_ipdb_parse_asn("AS645001", 7, &asn));
	assert_int_equal(asn, 64500);
}

static void
test_copy_name(void **state)
{
	char out[DC_MAX_AS_NAME + 1];
	char in[DC_MAX_AS_NAME * 2];

	(void)state;
	dc_ipdb_copy_name(out, "Example GmbH \xc3\xa4", 15);
	assert_string_equal(out, "Example GmbH \xc3\xa4");
	dc_ipdb_copy_name(out,
		"a\tb\x7f"
		"c\xff"
		"d",
		7);
	assert_string_equal(out, "a?b?c?d");
	dc_ipdb_copy_name(out, "", 0);
	assert_string_equal(out, "");
	/* capped at DC_MAX_AS_NAME bytes */
	memset(in, 'x', sizeof in);
	dc_ipdb_copy_name(out, in, sizeof in);
	assert_int_equal(strlen(out), DC_MAX_AS_NAME);
	/* a two-byte character across the cap is left out whole */
	memset(in, 'x', sizeof in);
	in[DC_MAX_AS_NAME - 1] = '\xc3';
	in[DC_MAX_AS_NAME] = '\xa4';
	dc_ipdb_copy_name(out, in, sizeof in);
	assert_int_equal(strlen(out), DC_MAX_AS_NAME - 1);
	/* a sequence cut by the end of the value: replaced */
	dc_ipdb_copy_name(out, "ab\xc3", 3);
	assert_string_equal(out, "ab?");
}

static void
test_open_errors(void **state)
{
	dc_ipdb *db = (dc_ipdb *)1;
	dc_err err;
	char path[] = "/tmp/dc-test-ipdb.XXXXXX";

	(void)state;
	assert_int_equal(dc_ipdb_open("/nonexistent/x.mmdb", &db, &err), DC_EIO);
	assert_null(db);
	assert_non_null(strstr(err.msg, "/nonexistent/x.mmdb"));
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("not a MaxMind DB file\n", f);
	fclose(f);
	assert_int_equal(dc_ipdb_open(path, &db, &err), DC_EFORMAT);
	assert_null(db);
	remove(path);
	dc_ipdb_close(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_asn),
		cmocka_unit_test(test_copy_name),
		cmocka_unit_test(test_open_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

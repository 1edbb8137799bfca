/*
 * test_imap_folder.c - folder names (dc_imap_folder.c): modified UTF-7 both
 * ways, round trips, what the strict encoder and decoder refuse, and folder
 * comparison.  Pure functions: no server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_imap_folder.h"

static void
test_quote_folder(void **state)
{
	static const struct {
		const char *in;
		char sep;
		const char *out;
	} cases[] = {
		{ "INBOX", '/', "\"INBOX\"" },
		{ "Archive/DMARC", '/', "\"Archive/DMARC\"" },
		{ "Archive/DMARC", '.', "\"Archive.DMARC\"" },
		{ "Archiv/Berichte-\xc3\x9c", '/', "\"Archiv/Berichte-&ANw-\"" },
		{ "\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", '/',
			"\"&U,BTFw-/&ZeVnLIqe-\"" }, /* RFC 3501 5.1.3 */
		{ "a&b", '/', "\"a&-b\"" },
		{ "q\"s\\", '/', "\"q\\\"s\\\\\"" },
		{ "\xf0\x9f\x98\x80", '/', "\"&2D3eAA-\"" }, /* U+1F600: a surrogate pair */
		{ "tab\there", '/', NULL },
		{ "bad\xff", '/', NULL },
		{ "\xc0\xaf", '/', NULL },         /* overlong "/" */
		{ "\xed\xa0\x80", '/', NULL },     /* a surrogate in UTF-8 */
		{ "\xf4\x90\x80\x80", '/', NULL }, /* above U+10FFFF */
		{ "a\xe2\x82", '/', NULL },        /* cut by the end */
		{ "\xe2\x82"
		  "a",
			'/', NULL },                         /* cut before "a" */
		{ "del\x7f", '/', NULL },                    /* DEL is a control */
		{ "\xc2\xa0", '/', "\"&AKA-\"" },            /* U+00A0, the first encoded */
		{ "\xef\xbf\xbd", '/', "\"&,,0-\"" },        /* U+FFFD */
		{ "\xf4\x8f\xbf\xbf", '/', "\"&2,,f,w-\"" }, /* U+10FFFF */
		{ "", '/', NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_err err;
		char *q = dc_imap_quote_folder(cases[i].in, cases[i].sep, &err);

		if (cases[i].out == NULL) {
			assert_null(q);
			assert_int_equal(err.code, DC_ECONFIG);
		} else {
			assert_non_null(q);
			assert_string_equal(q, cases[i].out);
		}
		free(q);
	}
}

/* Modified UTF-7 back to UTF-8: RFC 3501 5.1.3's examples, round trips
 * through dc_imap_quote_folder, and what a strict decoder refuses. */
static void
test_decode_folder(void **state)
{
	static const struct {
		const char *in;
		char sep;
		const char *out;
	} cases[] = {
		{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-", '/',
			"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
		{ "&U,BTF2XlZyyKng-", '/', "\xe5\x8f\xb0\xe5\x8c\x97\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
		{ "&Jjo-!", '/', "\xe2\x98\xba!" }, /* U+263A */
		{ "Archiv.Entw&APw-rfe", '.', "Archiv/Entw\xc3\xbcrfe" },
		{ "&BB4EQgRHBFEEQgRL-", '/', "\xd0\x9e\xd1\x82\xd1\x87\xd1\x91\xd1\x82\xd1\x8b" },
		{ "a&-b", '/', "a&b" },
		{ "&2D3eAA-", '/', "\xf0\x9f\x98\x80" }, /* a surrogate pair */
		{ "INBOX", '\0', "INBOX" },
		{ "&Jjo!", '/', NULL },              /* no "-" before "!" */
		{ "&U,BTFw-&ZeVnLIqe-", '/', NULL }, /* superfluous shift */
		{ "&AGE-", '/', NULL },              /* "a" encoded */
		{ "&AAo-", '/', NULL },              /* a control character */
		{ "&2D0-", '/', NULL },              /* a lone high surrogate */
		{ "&3gA-", '/', NULL },              /* a lone low surrogate */
		{ "&APx-", '/', NULL },              /* bits left over */
		{ "&APwA-", '/', NULL },             /* a sixth of a unit too many */
		{ "&-&", '/', NULL },                /* "&" at the end */
		{ "&A.w-", '/', NULL },              /* "." is not base64 */
		{ "Entw\xc3\xbcrfe", '/', NULL },    /* 8-bit: never sent raw */
		{ "&-", '/', "&" },
		{ "&", '/', NULL },        /* unterminated */
		{ "a&U,BTFw", '/', NULL }, /* unterminated run */
		{ "&-", '.', "&" },
		{ "&2D3eAA", '/', NULL },                /* pair, unterminated */
		{ "&3gDYPQ-", '/', NULL },               /* pair in the wrong order */
		{ "&2D0AYQ-", '/', NULL },               /* high surrogate, then "a" */
		{ "&-\x7f", '/', NULL },                 /* DEL */
		{ "&AKA-", '/', "\xc2\xa0" },            /* U+00A0 */
		{ "&2,,f,w-", '/', "\xf4\x8f\xbf\xbf" }, /* U+10FFFF */
		{ "&AKA-&AKA-", '/', NULL },             /* adjacent runs */
		{ "&AKA--&AKA-", '/', "\xc2\xa0-\xc2\xa0" },
		{ "a.b", '.', "a/b" },
		{ "a/b", '.', "a/b" }, /* "/" is not the separator there */
		{ "", '/', NULL },
	};
	static const char *const round[] = {
		"Archiv/Entw\xc3\xbcrfe",
		"\xd0\x9e\xd1\x82\xd1\x87\xd1\x91\xd1\x82\xd1\x8b",
		"A&B/&/x",
		"\xe2\x82\xac 100 & \xc2\xa3",
		"\xf0\x9f\x98\x80\xf0\x9f\x98\x81/z",
		("Stra\xc3\x9f"
		 "e/\xc3\xa4"),
		"&",
		"&&-",
		"a&b&c",
		"\xc2\xa0",
		"\xf4\x8f\xbf\xbf",
		("\xe5\x8f\xb0"
		 "a"
		 "\xe5\x8c\x97"),
		"INBOX/\xd0\x9e-\xd1\x82",
		("x\xef\xbf\xbd"
		 "-y"),
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_err err;
		char *d = dc_imap_decode_folder(cases[i].in, cases[i].sep, &err);

		if (cases[i].out == NULL) {
			if (d != NULL)
				fail_msg("case %zu: '%s' decoded to '%s'", i, cases[i].in, d);
			assert_int_equal(err.code, DC_EIMAP);
		} else {
			if (d == NULL)
				fail_msg("case %zu: '%s': %s", i, cases[i].in, err.msg);
			assert_string_equal(d, cases[i].out);
		}
		free(d);
	}
	for (size_t i = 0; i < sizeof(round) / sizeof(round[0]); i++) {
		for (int k = 0; k < 2; k++) {
			char sep = k ? '.' : '/';
			dc_err err;
			char *q = dc_imap_quote_folder(round[i], sep, &err), *d;
			size_t len;

			assert_non_null(q);
			len = strlen(q);
			q[len - 1] = '\0'; /* unquote: none of these needs escaping */
			d = dc_imap_decode_folder(q + 1, sep, &err);
			if (d == NULL)
				fail_msg("'%s' (%s): %s", round[i], q + 1, err.msg);
			assert_string_equal(d, round[i]);
			free(q);
			free(d);
		}
	}
	/* a name at the line cap is decoded; one past it is refused */
	{
		char *big = malloc(65538), *d;
		dc_err err;

		assert_non_null(big);
		memset(big, 'a', 65537);
		big[65537] = '\0';
		assert_null(dc_imap_decode_folder(big, '/', &err));
		big[65536] = '\0';
		d = dc_imap_decode_folder(big, '/', &err);
		assert_non_null(d);
		free(d);
		free(big);
	}
}

static void
test_same_folder(void **state)
{
	static const struct {
		const char *a, *b;
		bool same;
	} cases[] = {
		{ "INBOX", "INBOX", true },
		{ "INBOX", "inbox", true }, /* RFC 3501 5.1: INBOX in any case */
		{ "Inbox", "iNbOx", true },
		{ "INBOX/Reports", "inbox/Reports", true },
		{ "INBOX/Reports", "INBOX/reports", false }, /* the rest exactly */
		{ "INBOX", "INBOX/", false },
		{ "INBOXES", "inboxes", false }, /* not INBOX: exact */
		{ "Archive", "archive", false },
		{ "Archive/DMARC", "Archive/DMARC", true },
		{ "Entw\xc3\xbcrfe", "Entw\xc3\xbcrfe", true },
		{ "Entw\xc3\xbcrfe", "Entw\xc3\x9crfe", false },
		{ "", "", true },
		{ "", "INBOX", false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (dc_imap_same_folder(cases[i].a, cases[i].b) != cases[i].same)
			fail_msg("case %zu: '%s' vs '%s'", i, cases[i].a, cases[i].b);
		if (dc_imap_same_folder(cases[i].b, cases[i].a) != cases[i].same)
			fail_msg("case %zu reversed: '%s' vs '%s'", i, cases[i].b, cases[i].a);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_folder),
		cmocka_unit_test(test_decode_folder),
		cmocka_unit_test(test_same_folder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

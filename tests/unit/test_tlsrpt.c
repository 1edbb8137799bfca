/*
 * test_tlsrpt.c - dc_tlsrpt: the RFC 8460 example read field by field, the
 * tolerated variants real reporters send, and hostile JSON (deep nesting,
 * huge numbers, duplicate keys, invalid UTF-8, NUL, truncation, wrong
 * types, caps), each rejected with its code and a one-line reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dc_tlsrpt.h"

/* RFC 8460 section 4.5 (the example, as printed, with its fields). */
static const char rfc_example[] =
	"{\n"
	"  \"organization-name\": \"Company-X\",\n"
	"  \"date-range\": {\n"
	"    \"start-datetime\": \"2016-04-01T00:00:00Z\",\n"
	"    \"end-datetime\": \"2016-04-01T23:59:59Z\"\n"
	"  },\n"
	"  \"contact-info\": \"sts-reporting@company-x.example\",\n"
	"  \"report-id\": \"5065427c-23d3-47ca-b6e0-946ea0e8c4be\",\n"
	"  \"policies\": [{\n"
	"    \"policy\": {\n"
	"      \"policy-type\": \"sts\",\n"
	"      \"policy-string\": [\"version: STSv1\",\"mode: testing\",\n"
	"            \"mx: *.mail.company-y.example\",\"max_age: 86400\"],\n"
	"      \"policy-domain\": \"company-y.example\",\n"
	"      \"mx-host\": [\"*.mail.company-y.example\"]\n"
	"    },\n"
	"    \"summary\": {\n"
	"      \"total-successful-session-count\": 5326,\n"
	"      \"total-failure-session-count\": 303\n"
	"    },\n"
	"    \"failure-details\": [{\n"
	"      \"result-type\": \"certificate-expired\",\n"
	"      \"sending-mta-ip\": \"2001:db8:abcd:0012::1\",\n"
	"      \"receiving-mx-hostname\": \"mx1.mail.company-y.example\",\n"
	"      \"failed-session-count\": 100\n"
	"    }, {\n"
	"      \"result-type\": \"starttls-not-supported\",\n"
	"      \"sending-mta-ip\": \"2001:db8:abcd:0013::1\",\n"
	"      \"receiving-mx-hostname\": \"mx2.mail.company-y.example\",\n"
	"      \"receiving-ip\": \"203.0.113.56\",\n"
	"      \"failed-session-count\": 200,\n"
	"      \"additional-information\": \"https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported\"\n"
	"    }, {\n"
	"      \"result-type\": \"validation-failure\",\n"
	"      \"sending-mta-ip\": \"198.51.100.62\",\n"
	"      \"receiving-ip\": \"203.0.113.58\",\n"
	"      \"receiving-mx-hostname\": \"mx-backup.mail.company-y.example\",\n"
	"      \"failed-session-count\": 3,\n"
	"      \"failure-reason-code\": \"X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED\"\n"
	"    }]\n"
	"  }]\n"
	"}\n";

static dc_code
parse(const char *json, size_t len, const dc_limits *lim, dc_tls_report **r, dc_err *err)
{
	dc_limits d;

	dc_limits_default(&d);
	dc_err_clear(err);
	return dc_tlsrpt_parse((const uint8_t *)json, len, lim ? lim : &d, r, err);
}

static void
test_rfc_example(void **state)
{
	dc_tls_report *r = NULL;
	dc_err err;

	(void)state;
	assert_int_equal(parse(rfc_example, strlen(rfc_example), NULL, &r, &err), DC_OK);
	assert_non_null(r);
	assert_string_equal(r->organization_name, "Company-X");
	assert_string_equal(r->contact_info, "sts-reporting@company-x.example");
	assert_string_equal(r->report_id, "5065427c-23d3-47ca-b6e0-946ea0e8c4be");
	assert_string_equal(r->start_datetime, "2016-04-01T00:00:00Z");
	assert_int_equal(r->date_begin, 1459468800); /* date -u -d 2016-04-01 +%s */
	assert_int_equal(r->date_end, 1459468800 + 86399);
	assert_int_equal(r->n_policies, 1);
	assert_int_equal(r->n_failures, 3);
	assert_string_equal(r->policies[0].policy_type, "sts");
	assert_string_equal(r->policies[0].policy_domain, "company-y.example");
	assert_int_equal(r->policies[0].n_policy_string, 4);
	assert_string_equal(r->policies[0].policy_string[3], "max_age: 86400");
	assert_int_equal(r->policies[0].n_mx_host, 1);
	assert_string_equal(r->policies[0].mx_host[0], "*.mail.company-y.example");
	assert_int_equal(r->policies[0].successful_sessions, 5326);
	assert_int_equal(r->policies[0].failed_sessions, 303);
	assert_int_equal(r->policies[0].n_failures, 3);
	assert_string_equal(r->policies[0].failures[0].result_type, "certificate-expired");
	assert_string_equal(r->policies[0].failures[0].sending_mta_ip, "2001:db8:abcd:0012::1");
	assert_null(r->policies[0].failures[0].receiving_ip);
	assert_int_equal(r->policies[0].failures[0].failed_session_count, 100);
	assert_string_equal(r->policies[0].failures[1].receiving_ip, "203.0.113.56");
	assert_non_null(r->policies[0].failures[1].additional_information);
	assert_string_equal(
		r->policies[0].failures[2].failure_reason_code, "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED");
	assert_string_equal(
		r->policies[0].failures[2].receiving_mx_hostname, "mx-backup.mail.company-y.example");
	assert_null(r->policies[0].failures[2].receiving_mx_helo);
	dc_tlsrpt_free(r);
	dc_tlsrpt_free(NULL);
}

/* A minimal report around one policy (printf: the policy object's members,
 * then further members of the policies element). */
#define REPORT(policy, more) \
	"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":\"2024-01-02T00:00:00Z\"," \
	"\"end-datetime\":\"2024-01-02T23:59:59Z\"},\"report-id\":\"r1\",\"policies\":[{\"policy\":{" policy \
	"}" more "}]}"

static void
test_tolerated(void **state)
{
	static const char lenient[] = REPORT("\"policy-type\":\"STS\",\"policy-string\":\"version: STSv1\","
					     "\"mx-host\":\"mx.example\"",
		",\"summary\":{\"total-successful-session-count\":\"42\",\"total-failure-session-count\":\"7\"}"
		",\"failure-details\":[{\"result-type\":\"x\"}]");
	static const char offsets[] =
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":"
		"\"2023-01-10T00:00:00\",\"end-datetime\":\"2023-01-10T02:00:00.5+01:30\"},"
		"\"report-id\":\"r\",\"policies\":[]}";
	dc_tls_report *r = NULL;
	dc_err err;

	(void)state;
	assert_int_equal(parse(lenient, strlen(lenient), NULL, &r, &err), DC_OK);
	assert_null(r->contact_info);
	assert_null(r->policies[0].policy_domain);
	assert_int_equal(r->policies[0].n_policy_string, 1);
	assert_string_equal(r->policies[0].policy_string[0], "version: STSv1");
	assert_int_equal(r->policies[0].n_mx_host, 1);
	assert_int_equal(r->policies[0].successful_sessions, 42);
	assert_int_equal(r->policies[0].failed_sessions, 7);
	assert_int_equal(r->policies[0].failures[0].failed_session_count, -1);
	dc_tlsrpt_free(r);

	/* no offset = UTC (Microsoft); +01:30 is subtracted; fractions dropped */
	assert_int_equal(parse(offsets, strlen(offsets), NULL, &r, &err), DC_OK);
	assert_int_equal(r->date_begin, 1673308800);
	assert_int_equal(r->date_end, 1673308800 + 1800);
	assert_int_equal(r->n_policies, 0);
	dc_tlsrpt_free(r);

	/* a UTF-8 byte-order mark in front */
	{
		char buf[sizeof(rfc_example) + 3] = "\xef\xbb\xbf";

		memcpy(buf + 3, rfc_example, sizeof(rfc_example));
		assert_int_equal(parse(buf, strlen(buf), NULL, &r, &err), DC_OK);
		dc_tlsrpt_free(r);
	}
}

/* Duplicate keys: the last value counts (json-c, as documented in
 * dc_tlsrpt.h); the earlier one is not kept anywhere. */
static void
test_duplicate_keys(void **state)
{
	static const char dup[] =
		"{\"organization-name\":\"first\",\"organization-name\":\"second\","
		"\"date-range\":{\"start-datetime\":\"2024-01-02T00:00:00Z\",\"end-datetime\":\"2024-01-02T23:59:59Z\"},"
		"\"report-id\":\"a\",\"report-id\":\"b\",\"policies\":[{\"policy\":{\"policy-type\":\"sts\"},"
		"\"summary\":{\"total-successful-session-count\":1,\"total-successful-session-count\":9}}]}";
	dc_tls_report *r = NULL;
	dc_err err;

	(void)state;
	assert_int_equal(parse(dup, strlen(dup), NULL, &r, &err), DC_OK);
	assert_string_equal(r->organization_name, "second");
	assert_string_equal(r->report_id, "b");
	assert_int_equal(r->policies[0].successful_sessions, 9);
	assert_int_equal(r->policies[0].failed_sessions, -1);
	dc_tlsrpt_free(r);
}

typedef struct bad {
	const char *name;
	const char *json;
	size_t len; /* 0: strlen */
	dc_code code;
	const char *why; /* a substring of the reason */
} bad;

#define SUM(a, b) \
	",\"summary\":{\"total-successful-session-count\":" a ",\"total-failure-session-count\":" b "}"

static const bad bads[] = {
	{ "empty", "", 0, DC_EFORMAT, "ends early" },
	{ "truncated", "{\"organization-name\":\"O\",\"report-id\":\"r\",\"policies\":[{", 0, DC_EFORMAT,
		"ends early" },
	{ "not JSON", "{organization-name: 1}", 0, DC_EFORMAT, "not valid JSON" },
	{ "trailing comma (strict)", "{\"a\":1,}", 0, DC_EFORMAT, "not valid JSON" },
	{ "text after", "{\"report-id\":\"r\"} {\"policies\":[]}", 0, DC_EFORMAT, "at byte 18" },
	{ "invalid UTF-8", "{\"organization-name\":\"\xc3\x28\",\"report-id\":\"r\",\"policies\":[]}", 0,
		DC_EFORMAT, "UTF-8" },
	{ "overlong UTF-8 slash", "{\"organization-name\":\"\xc0\xaf\"}", 0, DC_EFORMAT, "UTF-8" },
	{ "NUL byte", "{\"a\":\"x\0y\"}", 12, DC_EFORMAT, "UTF-8" },
	{ "escaped NUL", REPORT("\"policy-type\":\"s\\u0000ts\"", ""), 0, DC_ESCHEMA, "NUL" },
	{ "array at the top", "[1,2]", 0, DC_ESCHEMA, "not an object" },
	{ "organization-name a number",
		"{\"organization-name\":5,\"report-id\":\"r\",\"date-range\":{},\"policies\":[]}", 0,
		DC_ESCHEMA, "organization-name is a int" },
	{ "report-id missing", "{\"organization-name\":\"O\",\"policies\":[]}", 0, DC_ESCHEMA,
		"report-id is missing" },
	{ "date-range missing", "{\"organization-name\":\"O\",\"report-id\":\"r\",\"policies\":[]}", 0,
		DC_ESCHEMA, "date-range is missing" },
	{ "hour 25",
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":\"2024-02-03T25:00:00Z\","
		"\"end-datetime\":\"2024-02-04T00:00:00Z\"},\"report-id\":\"r\",\"policies\":[]}",
		0, DC_ESCHEMA, "start-datetime is not an RFC 3339" },
	{ "date with text after",
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":"
		"\"2024-02-03T00:00:00Z\",\"end-datetime\":\"2024-02-04T00:00:00Z tomorrow\"},"
		"\"report-id\":\"r\",\"policies\":[]}",
		0, DC_ESCHEMA, "end-datetime is not an RFC 3339" },
	{ "minimal report", REPORT("\"policy-type\":\"sts\"", ""), 0, DC_OK, NULL },
	{ "February 30",
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":\"2024-02-30T00:00:00Z\","
		"\"end-datetime\":\"2024-03-01T00:00:00Z\"},\"report-id\":\"r\",\"policies\":[]}",
		0, DC_ESCHEMA, "start-datetime is not an RFC 3339" },
	{ "end before start",
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":\"2024-02-03T00:00:00Z\","
		"\"end-datetime\":\"2024-02-01T00:00:00Z\"},\"report-id\":\"r\",\"policies\":[]}",
		0, DC_ESCHEMA, "ends before" },
	{ "policies an object",
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":\"2024-02-01T00:00:00Z\","
		"\"end-datetime\":\"2024-02-01T00:00:00Z\"},\"report-id\":\"r\",\"policies\":{}}",
		0, DC_ESCHEMA, "policies is not an array" },
	{ "policy missing", REPORT("", "") "", 0, DC_ESCHEMA, "policy-type is missing" },
	{ "policy-string of numbers", REPORT("\"policy-type\":\"sts\",\"policy-string\":[1]", ""), 0,
		DC_ESCHEMA, "policy-string[0] is not a string" },
	{ "failure-details a string", REPORT("\"policy-type\":\"sts\"", ",\"failure-details\":\"none\""), 0,
		DC_ESCHEMA, "failure-details is not an array" },
	{ "failure without result-type", REPORT("\"policy-type\":\"sts\"", ",\"failure-details\":[{}]"), 0,
		DC_ESCHEMA, "result-type is missing" },
	{ "count a double", REPORT("\"policy-type\":\"sts\"", SUM("1.5", "0")), 0, DC_ESCHEMA,
		"not an integer" },
	{ "count 1e400", REPORT("\"policy-type\":\"sts\"", SUM("1e400", "0")), 0, DC_ESCHEMA, "" },
	{ "count negative", REPORT("\"policy-type\":\"sts\"", SUM("0", "-3")), 0, DC_ESCHEMA, "negative" },
	{ "count past int64", REPORT("\"policy-type\":\"sts\"", SUM("99999999999999999999999999", "0")), 0,
		DC_ESCHEMA, "larger than" },
	{ "count past uint64 negative",
		REPORT("\"policy-type\":\"sts\"", SUM("-99999999999999999999999999", "0")), 0, DC_ESCHEMA,
		"negative" },
	{ "count just past the cap", REPORT("\"policy-type\":\"sts\"", SUM("1000000000000001", "0")), 0,
		DC_ESCHEMA, "larger than" },
	{ "count a long digit string", REPORT("\"policy-type\":\"sts\"", SUM("\"1234567890123456789\"", "0")),
		0, DC_ESCHEMA, "at most 18 digits" },
	{ "count a word", REPORT("\"policy-type\":\"sts\"", SUM("\"many\"", "0")), 0, DC_ESCHEMA, "digits" },
	{ "count true", REPORT("\"policy-type\":\"sts\"", SUM("true", "0")), 0, DC_ESCHEMA,
		"boolean, not an integer" },
};

static void
test_hostile(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const bad *b = &bads[i];
		dc_tls_report *r = (dc_tls_report *)1;
		dc_err err;
		dc_code rc = parse(b->json, b->len ? b->len : strlen(b->json), NULL, &r, &err);

		if (rc != b->code || (b->why != NULL && strstr(err.msg, b->why) == NULL))
			fail_msg("%s: code %d (%s), want %d with '%s'", b->name, rc, err.msg, b->code,
				b->why ? b->why : "");
		if (rc != DC_OK) {
			assert_null(r);
			/* one line */
			assert_null(strchr(err.msg, '\n'));
			assert_true(strlen(err.msg) > 10);
		}
		dc_tlsrpt_free(rc == DC_OK ? r : NULL);
	}
}

/* Nesting deeper than DC_MAX_JSON_DEPTH, in an array and in objects. */
static void
test_deep(void **state)
{
	size_t n = 100000;
	char *deep = malloc(2 * n + 32);
	dc_tls_report *r = NULL;
	dc_err err;
	size_t o = 0;

	(void)state;
	assert_non_null(deep);
	o += (size_t)sprintf(deep, "{\"policies\":");
	for (size_t i = 0; i < n; i++)
		deep[o++] = '[';
	for (size_t i = 0; i < n; i++)
		deep[o++] = ']';
	deep[o++] = '}';
	assert_int_equal(parse(deep, o, NULL, &r, &err), DC_ETOODEEP);
	assert_non_null(strstr(err.msg, "deeper than"));
	assert_null(r);
	o = 0;
	for (size_t i = 0; i < DC_MAX_JSON_DEPTH + 1; i++)
		o += (size_t)sprintf(deep + o, "{\"a\":");
	o += (size_t)sprintf(deep + o, "1");
	for (size_t i = 0; i < DC_MAX_JSON_DEPTH + 1; i++)
		deep[o++] = '}';
	assert_int_equal(parse(deep, o, NULL, &r, &err), DC_ETOODEEP);
	free(deep);
}

/* The caps: bytes (max_report_bytes when smaller), policies, strings,
 * failure details, one string's length. */
static void
test_caps(void **state)
{
	dc_limits lim;
	dc_tls_report *r = NULL;
	dc_err err;
	size_t cap = 64u << 20, o;
	char *big = malloc(cap);

	(void)state;
	assert_non_null(big);
	dc_limits_default(&lim);
	lim.max_report_bytes = 100;
	assert_int_equal(parse(rfc_example, strlen(rfc_example), &lim, &r, &err), DC_ETOOBIG_REPORT);
	assert_non_null(strstr(err.msg, "exceeds 100 bytes"));
	assert_int_equal(dc_tlsrpt_max_bytes(&lim), 100);
	lim.max_report_bytes = 0;
	assert_int_equal(dc_tlsrpt_max_bytes(&lim), DC_MAX_TLSRPT_BYTES);

	/* DC_MAX_TLSRPT_POLICIES + 1 policies */
	o = (size_t)sprintf(big,
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":"
		"\"2024-02-01T00:00:00Z\",\"end-datetime\":\"2024-02-01T00:00:00Z\"},"
		"\"report-id\":\"r\",\"policies\":[");
	for (int i = 0; i <= DC_MAX_TLSRPT_POLICIES; i++)
		o += (size_t)sprintf(big + o, "%s{\"policy\":{\"policy-type\":\"sts\"}}", i ? "," : "");
	o += (size_t)sprintf(big + o, "]}");
	assert_int_equal(parse(big, o, NULL, &r, &err), DC_ETOOMANY_RECORDS);
	assert_non_null(strstr(err.msg, "policies, more than"));

	/* DC_MAX_TLSRPT_FAILURES + 1 failure details over two policies */
	o = (size_t)sprintf(big,
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":"
		"\"2024-02-01T00:00:00Z\",\"end-datetime\":\"2024-02-01T00:00:00Z\"},"
		"\"report-id\":\"r\",\"policies\":[");
	for (int p = 0; p < 2; p++) {
		o += (size_t)sprintf(big + o, "%s{\"policy\":{\"policy-type\":\"sts\"},\"failure-details\":[",
			p ? "," : "");
		for (int i = 0; i < DC_MAX_TLSRPT_FAILURES / 2 + p; i++)
			o += (size_t)sprintf(big + o, "%s{\"result-type\":\"x\"}", i ? "," : "");
		o += (size_t)sprintf(big + o, "]}");
	}
	o += (size_t)sprintf(big + o, "]}");
	assert_true(o < DC_MAX_TLSRPT_BYTES);
	assert_int_equal(parse(big, o, NULL, &r, &err), DC_ETOOMANY_RECORDS);
	assert_non_null(strstr(err.msg, "failure-details"));

	/* DC_MAX_TLSRPT_STRINGS + 1 mx-host entries */
	o = (size_t)sprintf(big,
		"{\"organization-name\":\"O\",\"date-range\":{\"start-datetime\":"
		"\"2024-02-01T00:00:00Z\",\"end-datetime\":\"2024-02-01T00:00:00Z\"},"
		"\"report-id\":\"r\",\"policies\":[{\"policy\":{\"policy-type\":\"sts\",\"mx-host\":[");
	for (int i = 0; i <= DC_MAX_TLSRPT_STRINGS; i++)
		o += (size_t)sprintf(big + o, "%s\"mx\"", i ? "," : "");
	o += (size_t)sprintf(big + o, "]}}]}");
	assert_int_equal(parse(big, o, NULL, &r, &err), DC_ETOOMANY_RECORDS);
	assert_non_null(strstr(err.msg, "mx-host has"));

	/* a string of DC_MAX_FIELD_BYTES + 1 bytes */
	o = (size_t)sprintf(big, "{\"organization-name\":\"");
	memset(big + o, 'a', DC_MAX_FIELD_BYTES + 1);
	o += DC_MAX_FIELD_BYTES + 1;
	o += (size_t)sprintf(big + o, "\",\"report-id\":\"r\",\"policies\":[]}");
	assert_int_equal(parse(big, o, NULL, &r, &err), DC_ETOOLONG);

	/* over DC_MAX_TLSRPT_BYTES with max_report_bytes at its default */
	memset(big, ' ', DC_MAX_TLSRPT_BYTES + 1);
	big[0] = '{';
	assert_int_equal(parse(big, DC_MAX_TLSRPT_BYTES + 1, NULL, &r, &err), DC_ETOOBIG_REPORT);
	assert_null(r);
	free(big);
}

static void
test_looks(void **state)
{
	static const char other[] = "{\"type\":\"FeatureCollection\",\"features\":[]}";
	static const char half[] = "{\"report-id\":\"x\"}";

	(void)state;
	assert_true(dc_tlsrpt_looks((const uint8_t *)rfc_example, strlen(rfc_example)));
	assert_false(dc_tlsrpt_looks((const uint8_t *)other, strlen(other)));
	assert_false(dc_tlsrpt_looks((const uint8_t *)half, strlen(half)));
	assert_false(dc_tlsrpt_looks((const uint8_t *)"", 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_example),
		cmocka_unit_test(test_tolerated),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_deep),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_looks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

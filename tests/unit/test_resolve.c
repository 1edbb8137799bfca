/*
 * test_resolve.c - the pure helpers of resolve/ (dc_dnsname): IP text to
 * address, reverse names (in-addr.arpa, ip6.arpa), PTR name normalisation
 * and registrable domains, table-driven.  The lookups themselves need a DNS
 * server: tests/integration/resolve.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <netinet/in.h>

#include "dc_dnsname.h"
#include "dc_limits.h"
#include "dc_resolver.h"

/* IP text -> reverse name (NULL: not an address). */
static const struct {
	const char *ip;
	int family;
	const char *reverse;
} ip_cases[] = {
	{ "192.0.2.1", AF_INET, "1.2.0.192.in-addr.arpa" },
	{ "192.0.2.1/32", AF_INET, "1.2.0.192.in-addr.arpa" }, /* PostgreSQL's inet text */
	{ "0.0.0.0", AF_INET, "0.0.0.0.in-addr.arpa" },
	{ "255.255.255.255", AF_INET, "255.255.255.255.in-addr.arpa" },
	{ "2001:db8::1", AF_INET6,
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa" },
	{ "2001:DB8::ABCD/128", AF_INET6,
		"d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa" },
	{ "::", AF_INET6, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa" },
	{ "::ffff:198.51.100.7", AF_INET, "7.100.51.198.in-addr.arpa" }, /* v4-mapped: the IPv4 name */
	{ "", 0, NULL },
	{ "/32", 0, NULL },
	{ "192.0.2", 0, NULL },
	{ "192.0.2.256", 0, NULL },
	{ "192.0.2.1 ", 0, NULL },
	{ " 192.0.2.1", 0, NULL },
	{ "192.0.2.1.example.com", 0, NULL },
	{ "2001:db8:::1", 0, NULL },
	{ "fe80::1%eth0", 0, NULL },
	{ "example.com", 0, NULL },
	/* longer than any address: cut to the parse buffer, still no address */
	{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd", 0, NULL },
};

static void
test_parse_reverse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof ip_cases / sizeof ip_cases[0]; i++) {
		unsigned char addr[16];
		char name[DC_DNSNAME_REVERSE_SIZE];
		int family = -1;
		dc_code rc = dc_dnsname_parse_ip(ip_cases[i].ip, addr, &family);
		if (!ip_cases[i].reverse) {
			if (rc != DC_EFORMAT)
				fail_msg("\"%s\" parsed as an address", ip_cases[i].ip);
			continue;
		}
		if (rc != DC_OK)
			fail_msg("\"%s\" not parsed", ip_cases[i].ip);
		assert_int_equal(family, ip_cases[i].family);
		assert_int_equal(dc_dnsname_reverse(family, addr, name, sizeof name), DC_OK);
		assert_string_equal(name, ip_cases[i].reverse);
	}
}

/* The reverse name needs room: exactly its length + NUL, never a byte less. */
static void
test_reverse_room(void **state)
{
	static const unsigned char v4[4] = { 203, 0, 113, 9 };
	static const unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	char name[DC_DNSNAME_REVERSE_SIZE];
	(void)state;
	size_t len4 = strlen("9.113.0.203.in-addr.arpa");
	assert_int_equal(dc_dnsname_reverse(AF_INET, v4, name, len4 + 1), DC_OK);
	assert_string_equal(name, "9.113.0.203.in-addr.arpa");
	assert_int_equal(dc_dnsname_reverse(AF_INET, v4, name, len4), DC_ETOOLONG);
	size_t len6 = 16 * 4 + strlen("ip6.arpa");
	assert_int_equal(dc_dnsname_reverse(AF_INET6, v6, name, len6 + 1), DC_OK);
	assert_int_equal(strlen(name), len6);
	assert_int_equal(dc_dnsname_reverse(AF_INET6, v6, name, len6), DC_ETOOLONG);
	assert_true(len6 + 1 <= DC_DNSNAME_REVERSE_SIZE);
}

/* PTR name -> stored name (NULL: not a usable host name). */
static const struct {
	const char *in;
	const char *out;
} norm_cases[] = {
	{ "mail.example.com", "mail.example.com" },
	{ "mail.example.com.", "mail.example.com" },          /* one trailing dot goes */
	{ "Mail.EXAMPLE.Com.", "mail.example.com" },          /* lower case */
	{ "xn--bcher-kva.example", "xn--bcher-kva.example" }, /* an IDN A-label passes as is */
	{ "XN--BCHER-KVA.Example.", "xn--bcher-kva.example" },
	{ "_dmarc.example.com", "_dmarc.example.com" },
	{ "host-1.a-b.example", "host-1.a-b.example" },
	{ "localhost", "localhost" },
	{ "a", "a" },
	{ "1.2.0.192.in-addr.arpa", "1.2.0.192.in-addr.arpa" },
	{ "", NULL },
	{ ".", NULL },
	{ "example.com..", NULL }, /* only one trailing dot */
	{ ".example.com", NULL },  /* an empty label */
	{ "mail..example.com", NULL },
	{ "b\xc3\xbc"
	  "cher.example",
		NULL }, /* an IDN U-label (UTF-8): not converted */
	{ "mail example.com", NULL },
	{ "mail.example.com\n", NULL },
	{ "mail\\.example.com", NULL },
	{ "mail/example", NULL },
	{ "*.example.com", NULL },
	{ "mail.example.com:25", NULL },
};

static void
test_norm(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof norm_cases / sizeof norm_cases[0]; i++) {
		char *got = dc_dnsname_norm(norm_cases[i].in);
		if (!norm_cases[i].out) {
			if (got)
				fail_msg("\"%s\" normalised to \"%s\"", norm_cases[i].in, got);
			continue;
		}
		if (!got)
			fail_msg("\"%s\" rejected", norm_cases[i].in);
		assert_string_equal(got, norm_cases[i].out);
		free(got);
	}
}

/* Fills buf with labels of label_len bytes ('a'..) to total_len bytes. */
static void
make_name(char *buf, size_t total_len, size_t label_len)
{
	for (size_t i = 0; i < total_len; i++)
		buf[i] = (i + 1) % (label_len + 1) == 0 ? '.' : (char)('a' + i % 26);
	buf[total_len] = '\0';
}

/* The length caps: DC_MAX_DNS_NAME for the name (without its final dot),
 * DC_MAX_DNS_LABEL for each label. */
static void
test_norm_lengths(void **state)
{
	char name[DC_MAX_DNS_NAME + 3];
	char *got;
	(void)state;

	/* labels of 63, the name at the cap (253 ends with a letter) */
	make_name(name, DC_MAX_DNS_NAME, DC_MAX_DNS_LABEL);
	assert_int_not_equal(name[DC_MAX_DNS_NAME - 1], '.');
	got = dc_dnsname_norm(name);
	assert_non_null(got);
	assert_int_equal(strlen(got), DC_MAX_DNS_NAME);
	free(got);
	/* ... with its trailing dot: still fine */
	strcat(name, ".");
	got = dc_dnsname_norm(name);
	assert_non_null(got);
	assert_int_equal(strlen(got), DC_MAX_DNS_NAME);
	free(got);
	/* one byte over */
	make_name(name, DC_MAX_DNS_NAME + 1, DC_MAX_DNS_LABEL);
	assert_null(dc_dnsname_norm(name));
	/* a label of 63 passes, 64 does not */
	make_name(name, DC_MAX_DNS_LABEL, DC_MAX_DNS_LABEL + 10);
	got = dc_dnsname_norm(name);
	assert_non_null(got);
	free(got);
	make_name(name, DC_MAX_DNS_LABEL + 1, DC_MAX_DNS_LABEL + 10);
	assert_null(dc_dnsname_norm(name));
	strcpy(name + DC_MAX_DNS_LABEL + 1, ".example");
	assert_null(dc_dnsname_norm(name));
}

/* Normalised name -> registrable domain by the public suffix list. */
static const struct {
	const char *name;
	const char *base;
} base_cases[] = {
	{ "mail.example.com", "example.com" },
	{ "a.b.c.example.com", "example.com" },
	{ "example.com", "example.com" },
	{ "mx1.mail.example.co.uk", "example.co.uk" },
	{ "host.xn--bcher-kva.de", "xn--bcher-kva.de" },
	{ "com", NULL }, /* a public suffix */
	{ "co.uk", NULL },
	{ "localhost", NULL },
};

static void
test_base_domain(void **state)
{
	psl_ctx_t *latest = psl_latest(NULL);
	const psl_ctx_t *psl = latest ? latest : psl_builtin();
	bool oom = false;
	(void)state;
	if (!psl)
		skip();
	for (size_t i = 0; i < sizeof base_cases / sizeof base_cases[0]; i++) {
		char *got = dc_dnsname_base_domain(psl, base_cases[i].name, &oom);
		if (!base_cases[i].base) {
			if (got)
				fail_msg("\"%s\" has base \"%s\"", base_cases[i].name, got);
			continue;
		}
		if (!got)
			fail_msg("\"%s\" has no base", base_cases[i].name);
		assert_string_equal(got, base_cases[i].base);
		free(got);
	}
	assert_false(oom);
	assert_null(dc_dnsname_base_domain(NULL, "mail.example.com", &oom)); /* no list: no base */
	psl_free(latest);
}

/* The stored status words (dmarc.ip_names.status). */
static void
test_status_names(void **state)
{
	(void)state;
	assert_string_equal(dc_resolve_status_name(DC_RESOLVE_OK), "ok");
	assert_string_equal(dc_resolve_status_name(DC_RESOLVE_NXDOMAIN), "nxdomain");
	assert_string_equal(dc_resolve_status_name(DC_RESOLVE_TIMEOUT), "timeout");
	assert_string_equal(dc_resolve_status_name(DC_RESOLVE_SERVFAIL), "servfail");
	assert_string_equal(dc_resolve_status_name(DC_RESOLVE_ERROR), "error");
}

/* Unparsable IPs end as 'error' without a query, so no server is needed;
 * a servers string c-ares cannot read is DC_ECONFIG. */
static void
test_resolve_bad_input(void **state)
{
	const char *ips[] = { "not-an-ip", "", "300.1.1.1" };
	dc_resolve_result res[3];
	dc_resolver_opts o;
	dc_resolve_stats st;
	dc_err err;
	(void)state;
	memset(res, 0, sizeof res);
	memset(&st, 0, sizeof st);
	dc_resolver_opts_default(&o);
	o.servers = "127.0.0.1:9"; /* never asked */
	assert_int_equal(dc_resolve_ips(ips, 3, &o, res, &st, &err), DC_OK);
	for (int i = 0; i < 3; i++) {
		assert_true(res[i].done);
		assert_int_equal(res[i].status, DC_RESOLVE_ERROR);
		assert_null(res[i].ptr);
	}
	assert_int_equal(st.ips, 3);
	assert_int_equal(st.error, 3);
	dc_resolve_results_clear(res, 3);
	o.servers = "not a server list";
	assert_int_equal(dc_resolve_ips(NULL, 0, &o, NULL, NULL, &err), DC_ECONFIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_reverse),
		cmocka_unit_test(test_reverse_room),
		cmocka_unit_test(test_norm),
		cmocka_unit_test(test_norm_lengths),
		cmocka_unit_test(test_base_domain),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_resolve_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

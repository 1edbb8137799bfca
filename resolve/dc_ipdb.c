/*
 * dc_ipdb.c - MaxMind DB lookups with libmaxminddb (see dc_ipdb.h).
 *
 * The file is memory-mapped (MMDB_MODE_MMAP): opening is cheap and the pages
 * are shared.  An IP goes in as a sockaddr built by dc_dnsname_parse_ip, so
 * "/32" suffixes and IPv4-mapped IPv6 addresses are handled once, there;
 * libmaxminddb finds IPv4 addresses in IPv6 trees itself (::/96).
 * A field of another type than expected (IPinfo's "country" is a name, not
 * a map) is a missing field: the layouts are told apart by what is present.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <maxminddb.h>

#include "dc_dnsname.h"
#include "dc_ipdb.h"
#include "dc_utf8.h"

struct dc_ipdb {
	MMDB_s mmdb;
};

dc_code
dc_ipdb_open(const char *path, dc_ipdb **out, dc_err *err)
{
	*out = NULL;
	dc_ipdb *db = calloc(1, sizeof *db);
	if (!db)
		return dc_err_set(err, DC_ENOMEM, "ipdb: out of memory");
	int st = MMDB_open(path, MMDB_MODE_MMAP, &db->mmdb);
	if (st != MMDB_SUCCESS) {
		dc_code c = st == MMDB_IO_ERROR || st == MMDB_FILE_OPEN_ERROR ? DC_EIO :
			st == MMDB_OUT_OF_MEMORY_ERROR                        ? DC_ENOMEM :
										DC_EFORMAT;
		free(db);
		return dc_err_set(err, c, "ipdb: %s: %s", path, MMDB_strerror(st));
	}
	*out = db;
	return DC_OK;
}

void
dc_ipdb_close(dc_ipdb *db)
{
	if (!db)
		return;
	MMDB_close(&db->mmdb);
	free(db);
}

uint64_t
dc_ipdb_epoch(const dc_ipdb *db)
{
	return db->mmdb.metadata.build_epoch;
}

const char *
dc_ipdb_type(const dc_ipdb *db)
{
	return db->mmdb.metadata.database_type ? db->mmdb.metadata.database_type : "";
}

bool
dc_ipdb_parse_asn(const char *s, size_t n, uint32_t *asn)
{
	uint64_t v = 0;

	if (n < 3 || n > 12 || (s[0] != 'A' && s[0] != 'a') || (s[1] != 'S' && s[1] != 's'))
		return false;
	for (size_t i = 2; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v == 0 || v > UINT32_MAX)
		return false;
	*asn = (uint32_t)v;
	return true;
}

void
dc_ipdb_copy_name(char *out, const char *s, size_t n)
{
	size_t o = 0, i = 0;

	while (i < n) {
		int len = dc_utf8_seq((const uint8_t *)s + i, n - i, NULL);
		if (len <= 0 || (len == 1 && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f))) {
			len = 1;
			if (o + 1 > DC_MAX_AS_NAME)
				break;
			out[o++] = '?';
		} else {
			if (o + (size_t)len > DC_MAX_AS_NAME)
				break;
			memcpy(out + o, s + i, (size_t)len);
			o += (size_t)len;
		}
		i += (size_t)len;
	}
	out[o] = '\0';
}

/* Gets the value at path (NULL-terminated) of entry into *d.  Returns DC_OK
 * with d->has_data false when it is absent or not what the path expects,
 * or DC_EFORMAT when the file is corrupt. */
static dc_code
get(MMDB_entry_s *entry, MMDB_entry_data_s *d, const char *const *path, dc_err *err)
{
	int st = MMDB_aget_value(entry, d, path);
	if (st == MMDB_SUCCESS)
		return DC_OK;
	d->has_data = false;
	if (st == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR || st == MMDB_INVALID_LOOKUP_PATH_ERROR)
		return DC_OK;
	return dc_err_set(err, DC_EFORMAT, "ipdb: reading an entry: %s", MMDB_strerror(st));
}

/* The string at path, or NULL (and *n 0) when absent or not a string. */
static dc_code
get_str(MMDB_entry_s *entry, const char *const *path, const char **s, size_t *n, dc_err *err)
{
	MMDB_entry_data_s d;
	*s = NULL;
	*n = 0;
	dc_code rc = get(entry, &d, path, err);
	if (rc == DC_OK && d.has_data && d.type == MMDB_DATA_TYPE_UTF8_STRING) {
		*s = d.utf8_string;
		*n = d.data_size;
	}
	return rc;
}

static dc_code
lookup_asn(MMDB_entry_s *e, dc_ipdb_result *r, dc_err *err)
{
	static const char *const p_num[] = { "autonomous_system_number", NULL };
	static const char *const p_org[] = { "autonomous_system_organization", NULL };
	static const char *const p_asn[] = { "asn", NULL };
	static const char *const p_name[] = { "as_name", NULL };
	static const char *const p_domain[] = { "as_domain", NULL };
	MMDB_entry_data_s d;
	const char *s;
	size_t n;
	dc_code rc;

	/* GeoLite2-ASN, DB-IP: an unsigned integer. */
	if ((rc = get(e, &d, p_num, err)) != DC_OK)
		return rc;
	if (!d.has_data && (rc = get(e, &d, p_asn, err)) != DC_OK)
		return rc;
	if (d.has_data) {
		uint64_t v = 0;
		switch (d.type) {
		case MMDB_DATA_TYPE_UINT16: v = d.uint16; break;
		case MMDB_DATA_TYPE_UINT32: v = d.uint32; break;
		case MMDB_DATA_TYPE_UINT64: v = d.uint64; break;
		case MMDB_DATA_TYPE_INT32: v = d.int32 > 0 ? (uint64_t)d.int32 : 0; break;
		case MMDB_DATA_TYPE_UTF8_STRING: /* IPinfo: "AS64500" */
			if (!dc_ipdb_parse_asn(d.utf8_string, d.data_size, &r->asn))
				r->asn = 0;
			break;
		default: break;
		}
		if (v > 0 && v <= UINT32_MAX)
			r->asn = (uint32_t)v;
	}
	if ((rc = get_str(e, p_org, &s, &n, err)) != DC_OK)
		return rc;
	if (!s && (rc = get_str(e, p_name, &s, &n, err)) != DC_OK)
		return rc;
	if (s && n > 0)
		dc_ipdb_copy_name(r->as_name, s, n);
	if ((rc = get_str(e, p_domain, &s, &n, err)) != DC_OK)
		return rc;
	if (s && n > 0 && n <= DC_MAX_DNS_NAME) {
		char tmp[DC_MAX_DNS_NAME + 1];
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		char *norm = dc_dnsname_norm(tmp);
		if (norm && strlen(norm) < sizeof r->as_domain)
			strcpy(r->as_domain, norm);
		free(norm);
	}
	return DC_OK;
}

/* True when s[0..n) is two ASCII letters; writes them upper case to out. */
static bool
country_code(const char *s, size_t n, char out[3])
{
	if (!s || n != 2)
		return false;
	for (size_t i = 0; i < 2; i++) {
		char c = s[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c < 'A' || c > 'Z')
			return false;
		out[i] = c;
	}
	out[2] = '\0';
	return true;
}

static dc_code
lookup_country(MMDB_entry_s *e, dc_ipdb_result *r, dc_err *err)
{
	static const char *const paths[][3] = {
		{ "country", "iso_code", NULL },            /* GeoLite2, DB-IP */
		{ "registered_country", "iso_code", NULL }, /* GeoLite2 without country */
		{ "country_code", NULL, NULL },             /* IPinfo Lite */
	};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		const char *s;
		size_t n;
		dc_code rc = get_str(e, paths[i], &s, &n, err);
		if (rc != DC_OK)
			return rc;
		if (country_code(s, n, r->country))
			return DC_OK;
	}
	return DC_OK;
}

dc_code
dc_ipdb_lookup(dc_ipdb *db, const char *ip, unsigned want, dc_ipdb_result *r, dc_err *err)
{
	unsigned char addr[16];
	int family = 0, mmdb_error = MMDB_SUCCESS;
	struct sockaddr_storage ss;
	dc_code rc = DC_OK;

	if (dc_dnsname_parse_ip(ip, addr, &family) != DC_OK)
		return dc_err_set(err, DC_EFORMAT, "ipdb: not an IP address");
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, addr, 4);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, addr, 16);
	}
	MMDB_lookup_result_s res = MMDB_lookup_sockaddr(&db->mmdb, (struct sockaddr *)&ss, &mmdb_error);
	if (mmdb_error == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR)
		return DC_OK; /* an IPv6 address in an IPv4-only file: in no network */
	if (mmdb_error != MMDB_SUCCESS)
		return dc_err_set(err, DC_EFORMAT, "ipdb: lookup: %s", MMDB_strerror(mmdb_error));
	if (!res.found_entry)
		return DC_OK;
	r->found = true;
	if (want & DC_IPDB_ASN)
		rc = lookup_asn(&res.entry, r, err);
	if (rc == DC_OK && (want & DC_IPDB_COUNTRY))
		rc = lookup_country(&res.entry, r, err);
	return rc;
}

size_t
dc_ipdb_libversions(dc_libversion *v, size_t max)
{
	if (max == 0)
		return 0;
	v[0].name = "libmaxminddb";
	snprintf(v[0].version, sizeof(v[0].version), "%s", MMDB_lib_version());
	return 1;
}

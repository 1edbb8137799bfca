/*
 * dc_ipdb.h - AS numbers, AS names and countries of IPs, from MaxMind DB
 * (.mmdb) files the administrator downloads ([enrich] asn_db, country_db).
 *
 * The layout is recognised by the fields an entry holds, never by the file
 * name, so one file may give both AS and country:
 *   - MaxMind GeoLite2-ASN, DB-IP Lite ASN: autonomous_system_number (an
 *     unsigned integer), autonomous_system_organization;
 *   - MaxMind GeoLite2-Country, DB-IP Lite Country: country.iso_code, else
 *     registered_country.iso_code;
 *   - IPinfo Lite: asn as the string "AS64500", as_name, as_domain,
 *     country_code.
 * Values are checked and capped (common/dc_limits.h): an AS name is cut at
 * DC_MAX_AS_NAME bytes on a character boundary, an AS domain must be a host
 * name, a country two ASCII letters; a value that fails is left out, not an
 * error.  An IP in no network of the file has no data, not an error.
 *
 * Deliberately not here: which IPs to look up and when (collector/
 * dc_resolve.c), storing (storage/), downloading files (the administrator's
 * job: no network at run time).
 */
#ifndef DC_IPDB_H
#define DC_IPDB_H

#include <stdbool.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_libversion.h"
#include "dc_limits.h"

typedef struct dc_ipdb dc_ipdb;

/* What to take from a file (dc_ipdb_lookup's want). */
enum {
	DC_IPDB_ASN = 1 << 0,     /* asn, as_name, as_domain */
	DC_IPDB_COUNTRY = 1 << 1, /* country */
};

/* What one lookup found; each part is absent (0 or "") when not found. */
typedef struct dc_ipdb_result {
	bool found;                          /* the IP is in a network of the file */
	uint32_t asn;                        /* 0: none */
	char as_name[DC_MAX_AS_NAME + 1];    /* UTF-8 */
	char as_domain[DC_MAX_DNS_NAME + 1]; /* lower case host name */
	char country[3];                     /* ISO 3166-1 alpha-2, upper case */
} dc_ipdb_result;

/* Opens the file at path (memory-mapped).  *out is the caller's
 * (dc_ipdb_close).  Returns DC_OK, DC_ENOMEM, DC_EIO (cannot be read) or
 * DC_EFORMAT (not a MaxMind DB file). */
dc_code dc_ipdb_open(const char *path, dc_ipdb **out, dc_err *err) DC_WUR;

/* Closes db (NULL is fine). */
void dc_ipdb_close(dc_ipdb *db);

/* The file's build time (metadata build_epoch, seconds since 1970), which
 * tells one release of a file from the next. */
uint64_t dc_ipdb_epoch(const dc_ipdb *db);

/* The file's metadata database_type ("GeoLite2-ASN", "ipinfo lite"...),
 * owned by db; "" when it has none. */
const char *dc_ipdb_type(const dc_ipdb *db);

/* Looks ip (IPv4 or IPv6 text, as dc_dnsname_parse_ip reads it) up in db and
 * fills the parts of *r that want asks for (DC_IPDB_ASN, DC_IPDB_COUNTRY);
 * the others are left as they were, so two files can fill one result.
 * Returns DC_OK (also when the IP is in no network: r->found stays as it
 * was), DC_EFORMAT when ip is no address, or DC_EFORMAT / DC_EIO when the
 * file is corrupt. */
dc_code dc_ipdb_lookup(dc_ipdb *db, const char *ip, unsigned want, dc_ipdb_result *r, dc_err *err) DC_WUR;

/* Parses IPinfo's "AS64500" (or "as64500") into *asn; true when s is "AS"
 * and 1 to 10 digits whose value is 1..4294967295. */
bool dc_ipdb_parse_asn(const char *s, size_t n, uint32_t *asn);

/* Copies an AS name s[0..n) into out (DC_MAX_AS_NAME + 1 bytes): cut at the
 * last whole character within DC_MAX_AS_NAME bytes, control characters and
 * ill-formed bytes replaced by '?'.  Always NUL-terminates. */
void dc_ipdb_copy_name(char *out, const char *s, size_t n);

/* libmaxminddb's run-time version (MMDB_lib_version) for --version
 * (dc_libversion.h). */
size_t dc_ipdb_libversions(dc_libversion *v, size_t max);

#endif

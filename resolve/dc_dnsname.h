/*
 * dc_dnsname.h - the pure parts of reverse DNS: a source IP as text to its
 * address, the address to its reverse-lookup name (RFC 1035 section 3.5
 * in-addr.arpa, RFC 3596 section 2.5 ip6.arpa), a PTR answer's name to the
 * form we store, and that name to its registrable domain (libpsl).
 *
 * No I/O, no state: every function is a function of its arguments (the
 * public suffix list is passed in), so the unit tests drive them from tables
 * (tests/unit/test_resolve.c).  Deliberately not here: queries, the event
 * loop and the statuses (dc_resolver.c), and IDN: a name is an LDH host
 * name in ASCII (A-labels "xn--..." pass as they are), never converted.
 */
#ifndef DC_DNSNAME_H
#define DC_DNSNAME_H

#include <libpsl.h>

#include <stdbool.h>
#include <stddef.h>

#include "dc_error.h"

/* Room for the longest reverse name (ip6.arpa: 32 nibbles, 73 bytes + NUL). */
#define DC_DNSNAME_REVERSE_SIZE 128

/* Parses ip (IPv4 or IPv6 text; a "/32" or "/128" suffix, as PostgreSQL may
 * render a host address, is ignored) into addr (4 bytes for AF_INET, 16 for
 * AF_INET6) and *family.  An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * becomes the IPv4 address.  Returns DC_OK, or DC_EFORMAT when ip is no
 * address (addr and *family are then unspecified). */
dc_code dc_dnsname_parse_ip(const char *ip, unsigned char addr[16], int *family) DC_WUR;

/* Writes the reverse-lookup name of addr (family AF_INET: 4 bytes, AF_INET6:
 * 16), "d.c.b.a.in-addr.arpa" or 32 dotted nibbles + "ip6.arpa", into buf
 * (size bytes, NUL-terminated).  Returns DC_OK, or DC_ETOOLONG when buf is
 * too small (DC_DNSNAME_REVERSE_SIZE always suffices). */
dc_code dc_dnsname_reverse(int family, const unsigned char *addr, char *buf, size_t size) DC_WUR;

/* Returns a new normalised copy of name (lower case, one trailing dot
 * removed), or NULL when it is not a usable host name (empty, longer than
 * DC_MAX_DNS_NAME, a label empty or over 63 bytes, a byte outside letters,
 * digits, '-', '_') or memory ran out.  The caller owns the copy. */
char *dc_dnsname_norm(const char *name);

/* Returns a new copy of the registrable domain of the normalised name by
 * the public suffix list psl ("mail.example.co.uk" -> "example.co.uk"), or
 * NULL when it has none (a public suffix itself, or a single label) or psl
 * is NULL.  The
 * caller owns the copy.  *oom is set to true when the copy failed. */
char *dc_dnsname_base_domain(const psl_ctx_t *psl, const char *name, bool *oom);

#endif

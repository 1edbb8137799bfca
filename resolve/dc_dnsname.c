/*
 * dc_dnsname.c - reverse names, PTR name normalisation and registrable
 * domains: the pure helpers of dc_resolver.c (see dc_dnsname.h).
 *
 * Reverse names follow RFC 1035 section 3.5 (IPv4: the four octets in
 * reverse order under in-addr.arpa) and RFC 3596 section 2.5 (IPv6: the 32
 * nibbles in reverse order under ip6.arpa).  A normalised name is what
 * dmarc.ip_names.ptr holds: lower case, no trailing dot, at most
 * DC_MAX_DNS_NAME bytes (RFC 1035 section 2.3.4), labels of 1 to 63 bytes
 * of letters, digits, '-' and '_' (underscores do occur in PTR records).
 *
 * Deliberately not here: anything that sends a query or allocates more
 * than the one copy it returns.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_dnsname.h"
#include "dc_limits.h"

dc_code
dc_dnsname_parse_ip(const char *ip, unsigned char addr[16], int *family)
{
	char buf[INET6_ADDRSTRLEN + 8];

	/* PostgreSQL may render a host address with a /32 or /128 suffix. */
	size_t len = strcspn(ip, "/");
	if (len >= sizeof buf)
		len = sizeof buf - 1;
	memcpy(buf, ip, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
	} else if (inet_pton(AF_INET6, buf, addr) == 1) {
		*family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)addr)) {
			memmove(addr, addr + 12, 4);
			*family = AF_INET;
		}
	} else {
		return DC_EFORMAT;
	}
	return DC_OK;
}

dc_code
dc_dnsname_reverse(int family, const unsigned char *addr, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	if (family == AF_INET) {
		int n = snprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa", addr[3], addr[2], addr[1], addr[0]);
		return n > 0 && (size_t)n < size ? DC_OK : DC_ETOOLONG;
	}
	if (size < 16 * 4 + sizeof "ip6.arpa")
		return DC_ETOOLONG;
	char *p = buf;
	for (int i = 15; i >= 0; i--) {
		*p++ = hex[addr[i] & 0xf];
		*p++ = '.';
		*p++ = hex[addr[i] >> 4];
		*p++ = '.';
	}
	memcpy(p, "ip6.arpa", sizeof "ip6.arpa");
	return DC_OK;
}

char *
dc_dnsname_norm(const char *name)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DC_MAX_DNS_NAME)
		return NULL;
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '.') {
			if (label == 0)
				goto bad;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > DC_MAX_DNS_LABEL)
				goto bad;
		} else {
			goto bad;
		}
		out[i] = (char)c;
	}
	if (label == 0)
		goto bad;
	out[len] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

char *
dc_dnsname_base_domain(const psl_ctx_t *psl, const char *name, bool *oom)
{
	if (!psl)
		return NULL;
	const char *base = psl_registrable_domain(psl, name);
	if (!base)
		return NULL;
	char *copy = strdup(base);
	if (!copy)
		*oom = true;
	return copy;
}

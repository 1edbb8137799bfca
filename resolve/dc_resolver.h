/*
 * dc_resolver.h - PTR names of IP addresses, looked up asynchronously with
 * c-ares, forward-confirmed, with their registrable domain (libpsl).
 *
 * Given an array of IPs as text, fills an array of results: a PTR query,
 * then a forward query (A for IPv4, AAAA for IPv6) for each PTR name; a name
 * whose forward records contain the IP is forward-confirmed (RFC 8601
 * section 3, "iprev").  Names come back lower-case without the trailing dot,
 * with their registrable domain by the public suffix list.  Many queries are
 * in flight at once, each with a timeout; NXDOMAIN, timeouts and server
 * failures are a status per IP, not an error.
 *
 * Deliberately not here: the database (which IPs are due, storing the
 * results: storage/dc_resolve_store.h; the batches: collector/dc_resolve.h),
 * configuration, logging, and the classification of server-generated mail
 * (SQL views, sql/002 and sql/004).
 */
#ifndef DC_RESOLVER_H
#define DC_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_libversion.h"

/* Defaults; [dns] timeout_ms and in_flight come from dc_config. */
#define DC_RESOLVE_DEFAULT_TIMEOUT_MS   2000
#define DC_RESOLVE_DEFAULT_TRIES        2
#define DC_RESOLVE_DEFAULT_MAX_INFLIGHT 64 /* see docs/README-resolve.md */

/* How to ask: the resolver's settings. */
typedef struct dc_resolver_opts {
	const char *servers;         /* "ip[:port],..." or "[ipv6]:port"; NULL/"" = system resolver */
	int timeout_ms;              /* per try of one query */
	int tries;                   /* tries per query (per server) */
	int max_inflight;            /* IPs being resolved at once; 1 = one at a time */
	const volatile int *stop;    /* when set and *stop turns non-zero (a signal
	                          handler's flag), no new lookup starts; those in
	                          flight finish; DC_EINTERRUPTED */
	void (*progress)(void *ctx); /* may be NULL: called as each IP's lookup ends
	                             (answered or timed out; the service's watchdog) */
	void *progress_ctx;
} dc_resolver_opts;

typedef struct dc_resolve_stats {
	uint64_t ips;       /* IPs looked up */
	uint64_t ok;        /* a PTR name found */
	uint64_t confirmed; /* ... and forward-confirmed */
	uint64_t nxdomain;  /* no PTR record (NXDOMAIN or no data) */
	uint64_t timeout;   /* no answer in time */
	uint64_t servfail;  /* SERVFAIL or REFUSED */
	uint64_t error;     /* anything else (bad answer, bad name) */
	uint64_t retries;   /* queries sent again after a try timed out */
	double seconds;     /* wall time of the lookups */
	uint64_t enriched;  /* IPs looked up in the IP databases ([enrich]) */
} dc_resolve_stats;

/* One lookup's outcome, as stored in dmarc.ip_names. */
typedef enum dc_resolve_status {
	DC_RESOLVE_OK = 0,
	DC_RESOLVE_NXDOMAIN,
	DC_RESOLVE_TIMEOUT,
	DC_RESOLVE_SERVFAIL,
	DC_RESOLVE_ERROR,
} dc_resolve_status;

/* One resolved IP (result of dc_resolve_ips). */
typedef struct dc_resolve_result {
	dc_resolve_status status;
	char *ptr;         /* normalised PTR name, NULL when none; owned by the result */
	char *base_domain; /* registrable domain of ptr by the PSL, or NULL */
	bool confirmed;    /* forward-confirmed */
	bool done;         /* looked up (false: not started, after a stop) */
} dc_resolve_result;

/* The status word stored in dmarc.ip_names.status ("ok", "nxdomain", ...);
 * static, never NULL. */
const char *dc_resolve_status_name(dc_resolve_status s);

/* Fills o with the defaults above (system resolver, no stop flag). */
void dc_resolver_opts_default(dc_resolver_opts *o);

/* Resolves n textual IPs (IPv4 or IPv6); results must point at n zeroed
 * entries, filled in place (free them with dc_resolve_results_clear).  An
 * unparsable IP gets DC_RESOLVE_ERROR.  stats (may be NULL) is added to.
 * With n 0, only checks that the resolver can be set up.  Returns
 * DC_ECONFIG for servers c-ares does not accept, DC_EDNS when it cannot be
 * set up or stopped answering (a whole window of lookups in a row timed
 * out; the IPs not started have done false), DC_ENOMEM, DC_EINTERRUPTED
 * after opts->stop (results with done false were not looked up). */
dc_code dc_resolve_ips(const char *const *ips, size_t n, const dc_resolver_opts *opts,
	dc_resolve_result *results, dc_resolve_stats *stats, dc_err *err) DC_WUR;

/* Frees what n results own and zeroes them; results may be NULL. */
void dc_resolve_results_clear(dc_resolve_result *results, size_t n);

/* c-ares and libpsl as loaded (ares_version, psl_get_version);
 * dc_libversion.h. */
size_t dc_resolver_libversions(dc_libversion *v, size_t max);

#endif

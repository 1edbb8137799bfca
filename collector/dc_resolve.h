/*
 * dc_resolve.h - PTR names for the source IPs of stored records
 * (dmarc.ip_names), looked up asynchronously with c-ares.
 *
 * For every source IP without a fresh dmarc.ip_names row: a PTR query, then a
 * forward query (A for IPv4, AAAA for IPv6) for each PTR name; a name whose
 * forward records contain the IP is forward-confirmed (RFC 8601 section 3,
 * "iprev").  Names are stored lower-case without the trailing dot, with their
 * registrable domain by the public suffix list (libpsl).  Many queries are in
 * flight at once, each with a timeout; NXDOMAIN, timeouts and server
 * failures are stored as a status and retried after retry_after seconds.
 *
 * Deliberately not here: the classification of server-generated mail (SQL
 * views, sql/002 and sql/004), logging (callers log the stats), and any work
 * inside a report's transaction: resolving is its own step after an import
 * or a poll, so a slow or dead DNS server never slows ingestion.
 */
#ifndef DC_RESOLVE_H
#define DC_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "dc_config.h"
#include "dc_error.h"

/* Defaults; [dns] timeout_ms and retry_after come from dc_config. */
#define DC_RESOLVE_DEFAULT_TIMEOUT_MS    2000
#define DC_RESOLVE_DEFAULT_TRIES         2
#define DC_RESOLVE_DEFAULT_MAX_INFLIGHT  64  /* see docs/README-resolve.md */
#define DC_RESOLVE_DEFAULT_RETRY_AFTER   86400        /* failed lookups: one day */
#define DC_RESOLVE_DEFAULT_REFRESH_AFTER (30 * 86400) /* successful ones: 30 days */
#define DC_RESOLVE_DEFAULT_BATCH         10000        /* IPs per database round */

typedef struct dc_resolve_opts {
	const char *servers;   /* "ip[:port],..." or "[ipv6]:port"; NULL/"" = system resolver */
	int timeout_ms;        /* per try of one query */
	int tries;             /* tries per query (per server) */
	int max_inflight;      /* IPs being resolved at once; 1 = one at a time */
	int retry_after;       /* seconds before a failed lookup (not 'ok') is retried */
	int refresh_after;     /* seconds before an 'ok' entry is looked up again */
	int batch;             /* IPs read from the database per round */
	uint64_t max_ips;      /* stop after this many IPs in one run; 0 = no cap */
	const volatile int *stop; /* when set and *stop turns non-zero (a signal
	                          handler's flag), no new lookup starts; those in
	                          flight finish and are stored; DC_EINTERRUPTED */
} dc_resolve_opts;

typedef struct dc_resolve_stats {
	uint64_t ips;          /* IPs looked up */
	uint64_t ok;           /* a PTR name found */
	uint64_t confirmed;    /* ... and forward-confirmed */
	uint64_t nxdomain;     /* no PTR record (NXDOMAIN or no data) */
	uint64_t timeout;      /* no answer in time */
	uint64_t servfail;     /* SERVFAIL or REFUSED */
	uint64_t error;        /* anything else (bad answer, bad name) */
	uint64_t retries;      /* queries sent again after a try timed out */
	double seconds;        /* wall time of the lookups */
} dc_resolve_stats;

/* One lookup's outcome, as stored in dmarc.ip_names. */
typedef enum dc_resolve_status {
	DC_RESOLVE_OK = 0,
	DC_RESOLVE_NXDOMAIN,
	DC_RESOLVE_TIMEOUT,
	DC_RESOLVE_SERVFAIL,
	DC_RESOLVE_ERROR,
} dc_resolve_status;

/* The status word stored in dmarc.ip_names.status ("ok", "nxdomain", ...);
 * static, never NULL. */
const char *dc_resolve_status_name(dc_resolve_status s);

/* Fills o with the defaults above (system resolver). */
void dc_resolve_opts_default(dc_resolve_opts *o);

/* Fills o from cfg's [dns] section, defaults for the rest.  o->servers points
 * into cfg (which must outlive o). */
void dc_resolve_opts_from_config(dc_resolve_opts *o, const dc_config *cfg);

/* One resolved IP (result of dc_resolve_ips). */
typedef struct dc_resolve_result {
	dc_resolve_status status;
	char *ptr;             /* normalised PTR name, NULL when none; owned by the result */
	char *base_domain;     /* registrable domain of ptr by the PSL, or NULL */
	bool confirmed;        /* forward-confirmed */
	bool done;             /* looked up (false: not started, after a stop) */
} dc_resolve_result;

/* Resolves n textual IPs (IPv4 or IPv6) without touching a database; results
 * must point at n zeroed entries, filled in place (free them with
 * dc_resolve_results_clear).  An unparsable IP gets DC_RESOLVE_ERROR.
 * stats (may be NULL) is added to.  Returns DC_EDNS when the resolver
 * cannot be set up (bad servers string), DC_ENOMEM, DC_EINTERRUPTED after
 * opts->stop (results with done false were not looked up). */
dc_code dc_resolve_ips(const char *const *ips, size_t n, const dc_resolve_opts *opts,
	dc_resolve_result *results, dc_resolve_stats *stats, dc_err *err) DC_WUR;

/* Frees what n results own and zeroes them; results may be NULL. */
void dc_resolve_results_clear(dc_resolve_result *results, size_t n);

/* Looks up every source IP in dmarc.records without a fresh dmarc.ip_names
 * row and upserts the rows, one batch per transaction.  conn stays owned by
 * the caller (dc_store_conn).  stats (may be NULL) is added to.  Returns
 * DC_EDB or DC_EDBREFUSED (dc_pg.h) on a database failure, DC_ECONFIG for
 * [dns] servers the resolver does not accept, DC_EDNS when it cannot be set up
 * or stopped answering,
 * DC_EINTERRUPTED after opts->stop (what was looked up is stored); DNS
 * failures of single IPs are statuses, not errors. */
dc_code dc_resolve_run(PGconn *conn, const dc_resolve_opts *opts, dc_resolve_stats *stats,
	dc_err *err) DC_WUR;

#endif

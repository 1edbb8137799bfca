/*
 * dc_resolve.h - PTR names for the source IPs of stored records
 * (dmarc.ip_names): the batches that tie the resolver to the database.
 *
 * One run reads the source IPs due for a lookup (storage/dc_resolve_store.h),
 * looks them up (resolve/dc_resolver.h: PTR, forward confirmation, the
 * registrable domain) and stores the results, a batch at a time, until none
 * is due.  NXDOMAIN, timeouts and server failures are stored as a status and
 * retried after retry_after seconds; 'ok' rows are refreshed after
 * refresh_after.
 *
 * With [enrich] asn_db / country_db (resolve/dc_ipdb.h), each batch's IPs
 * are also looked up there and the AS and country stored with the names;
 * then every IP whose stored values came from another release of a file
 * (its build epoch) is looked up again, without DNS, so a new file is
 * applied by the next run.  The files are opened at the start of each run.
 *
 * Deliberately not here: SQL (storage/), c-ares and libpsl (resolve/), the
 * command and its summary (program/dc_resolve_cmd.c), logging, and any work
 * inside a report's transaction: resolving is its own step after an import
 * or a poll, so a slow or dead DNS server never slows ingestion.
 */
#ifndef DC_RESOLVE_H
#define DC_RESOLVE_H

#include <stdint.h>

#include "dc_config.h"
#include "dc_error.h"
#include "dc_resolver.h"
#include "dc_store.h"

/* Defaults; [dns] retry_after comes from dc_config. */
#define DC_RESOLVE_DEFAULT_RETRY_AFTER   86400        /* failed lookups: one day */
#define DC_RESOLVE_DEFAULT_REFRESH_AFTER (30 * 86400) /* successful ones: 30 days */
#define DC_RESOLVE_DEFAULT_BATCH         10000        /* IPs per database round */

typedef struct dc_resolve_opts {
	dc_resolver_opts dns;   /* servers, timeouts, concurrency, the stop flag */
	int retry_after;        /* seconds before a failed lookup (not 'ok') is retried */
	int refresh_after;      /* seconds before an 'ok' entry is looked up again */
	int batch;              /* IPs read from the database per round */
	uint64_t max_ips;       /* stop after this many IPs in one run; 0 = no cap */
	const char *asn_db;     /* [enrich] asn_db path, NULL = none */
	const char *country_db; /* [enrich] country_db path (may equal asn_db), NULL = none */
	dc_err *enrich_err;     /* NULL: an [enrich] file that cannot be used fails the run
	                         * (DC_ECONFIG/DC_EFORMAT); else its error goes here and the
	                         * run goes on without enrichment (the service: PTR names
	                         * must not wait for a broken IP database) */
} dc_resolve_opts;

/* Fills o with the defaults above and dc_resolver_opts_default's. */
void dc_resolve_opts_default(dc_resolve_opts *o);

/* Fills o from cfg's [dns] section, defaults for the rest.  o->dns.servers
 * points into cfg (which must outlive o). */
void dc_resolve_opts_from_config(dc_resolve_opts *o, const dc_config *cfg);

/* Looks up every source IP in dmarc.records without a fresh dmarc.ip_names
 * row and upserts the rows, one batch per statement.  st stays owned by the
 * caller.  stats (may be NULL) is added to.  Returns DC_EDB or
 * DC_EDBREFUSED (dc_pg.h) on a database failure, DC_ECONFIG for [dns]
 * servers the resolver does not accept or an [enrich] file that cannot be
 * opened or is no MaxMind DB, DC_EFORMAT for a corrupt one, DC_EDNS when it cannot be set up or
 * stopped answering, DC_EINTERRUPTED after opts->dns.stop (what was looked
 * up is stored); DNS failures of single IPs are statuses, not errors. */
dc_code
dc_resolve_run(dc_store *st, const dc_resolve_opts *opts, dc_resolve_stats *stats, dc_err *err) DC_WUR;

#endif

/*
 * dc_resolve_store.h - resolve's SQL: which source IPs are due for a PTR
 * lookup, and storing what the lookups found in dmarc.ip_names.
 *
 * Due: an IP of dmarc.records without a dmarc.ip_names row, or whose row is
 * older than refresh_after ('ok') or retry_after (any other status), and not
 * written since the run began.  Stored: one batch per statement (an upsert
 * over unnest of text-array parameters); a transient failure (timeout,
 * servfail, error) of an IP that had a name keeps the name and only records
 * the status and time.
 *
 * IP databases ([enrich]): the IPs whose stored build epochs are not the
 * configured files' (dc_resolve_store_stale), and one UPDATE per batch of
 * AS and country values with the epochs (dc_resolve_store_enrich).
 *
 * Deliberately not here: DNS (resolve/dc_resolver.h) and the batches
 * (collector/dc_resolve.h).  Rows are plain data: this module knows nothing
 * of c-ares or of how a status was reached.
 */
#ifndef DC_RESOLVE_STORE_H
#define DC_RESOLVE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_store.h"

/* One dmarc.ip_names row to write; the strings stay the caller's. */
typedef struct dc_resolve_row {
	const char *ip;          /* the IP as text, as dc_resolve_store_due gave it */
	const char *ptr;         /* normalised PTR name, or NULL */
	const char *base_domain; /* its registrable domain, or NULL */
	bool confirmed;          /* forward-confirmed */
	const char *status;      /* "ok", "nxdomain", "timeout", "servfail", "error" */
} dc_resolve_row;

/* One IP's IP-database values to write (dc_resolve_store_enrich); the
 * strings stay the caller's, NULL or "" for none. */
typedef struct dc_enrich_row {
	const char *ip; /* as dc_resolve_store_due or _stale gave it */
	int64_t asn;    /* 0: none */
	const char *as_name;
	const char *as_domain;
	const char *country;
} dc_enrich_row;

/* Sets *started to the server's now() as text, the start of a run that
 * dc_resolve_store_due compares against.  The caller owns *started (free).
 * Returns DC_OK, DC_ENOMEM, or DC_EDB / DC_EDBREFUSED (dc_pg.h). */
dc_code dc_resolve_store_now(dc_store *st, char **started, dc_err *err) DC_WUR;

/* Reads up to limit IPs due for a lookup (see above; refresh_after and
 * retry_after in seconds, started from dc_resolve_store_now).  On DC_OK
 * *ips is one allocation holding *n pointers and their strings, owned by
 * the caller (one free(*ips)); NULL when *n is 0.  Returns DC_ENOMEM, or
 * DC_EDB / DC_EDBREFUSED. */
dc_code dc_resolve_store_due(dc_store *st, int refresh_after, int retry_after, const char *started, int limit,
	const char ***ips, size_t *n, dc_err *err) DC_WUR;

/* Upserts n rows (n may be 0) in one statement, its own transaction.
 * Returns DC_OK, DC_ENOMEM, DC_ETOOLONG (a batch over
 * DC_MAX_PG_ARRAY bytes), or DC_EDB / DC_EDBREFUSED. */
dc_code dc_resolve_store_names(dc_store *st, const dc_resolve_row *rows, size_t n, dc_err *err) DC_WUR;

/* Reads up to limit IPs of dmarc.ip_names whose asn_db_epoch differs from
 * asn_epoch or whose country_db_epoch differs from country_epoch (a
 * negative epoch: that file is not configured and not compared), in IP
 * order, after the IP after (NULL: from the first; pass the last IP of the
 * previous batch).  *ips as dc_resolve_store_due's.  Returns DC_OK,
 * DC_ENOMEM, DC_EDB / DC_EDBREFUSED. */
dc_code dc_resolve_store_stale(dc_store *st, int64_t asn_epoch, int64_t country_epoch, const char *after,
	int limit, const char ***ips, size_t *n, dc_err *err) DC_WUR;

/* Updates the IP-database columns of n existing dmarc.ip_names rows in one
 * statement: asn, as_name, as_domain and asn_db_epoch when asn_epoch >= 0,
 * country and country_db_epoch when country_epoch >= 0 (the other columns
 * stay).  Returns DC_OK, DC_ENOMEM, DC_ETOOLONG, DC_EDB / DC_EDBREFUSED. */
dc_code dc_resolve_store_enrich(dc_store *st, const dc_enrich_row *rows, size_t n, int64_t asn_epoch,
	int64_t country_epoch, dc_err *err) DC_WUR;

#endif

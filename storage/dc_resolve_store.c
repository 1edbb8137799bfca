/*
 * dc_resolve_store.c - resolve's SQL (see dc_resolve_store.h): the IPs due
 * for a lookup, and one upsert per batch of results.
 *
 * The batch goes as five array literals (dc_pg_array_*), one per column,
 * unnested by the server, so a batch of 10,000 IPs is one round trip.
 * Deliberately not here: DNS, and deciding what a status means (the SQL
 * below only tells answers, 'ok' and 'nxdomain', from failures).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_buf.h"
#include "dc_limits.h"
#include "dc_pg.h"
#include "dc_resolve_store.h"
#include "dc_store_int.h"

/* IPs without a fresh entry: never looked up, an 'ok' entry older than
 * refresh_after, any other older than retry_after.  Entries written since
 * this run began ($3) are never taken again, so the run ends even with a
 * retry time of zero. */
static const char sql_candidates[] =
	"SELECT s.ip::text FROM ("
	"  SELECT DISTINCT source_ip AS ip FROM dmarc.records WHERE source_ip IS NOT NULL"
	") s LEFT JOIN dmarc.ip_names n ON n.ip = s.ip "
	"WHERE n.ip IS NULL"
	"   OR (n.resolved_at < $3::timestamptz"
	"       AND n.resolved_at < now() - make_interval(secs => CASE WHEN n.status = 'ok'"
	"                                                   THEN $1::int ELSE $2::int END)) "
	"LIMIT $4::int";

/* One batch in one statement.  A transient failure (timeout, servfail,
 * error) on an IP that had a name keeps the name and its confirmation and
 * only records the status and time (so it is retried after retry_after);
 * 'ok' and 'nxdomain' are answers and replace what was there. */
static const char sql_upsert[] =
	"INSERT INTO dmarc.ip_names AS n (ip, ptr, ptr_base_domain, forward_confirmed, resolved_at, status) "
	"SELECT u.ip, u.ptr, u.base, u.confirmed, now(), u.status "
	"FROM unnest($1::inet[], $2::text[], $3::text[], $4::boolean[], $5::text[]) "
	"  AS u(ip, ptr, base, confirmed, status) "
	"ON CONFLICT (ip) DO UPDATE SET "
	"  ptr = CASE WHEN EXCLUDED.status IN ('ok', 'nxdomain') THEN EXCLUDED.ptr ELSE n.ptr END,"
	"  ptr_base_domain = CASE WHEN EXCLUDED.status IN ('ok', 'nxdomain')"
	"                    THEN EXCLUDED.ptr_base_domain ELSE n.ptr_base_domain END,"
	"  forward_confirmed = CASE WHEN EXCLUDED.status IN ('ok', 'nxdomain')"
	"                      THEN EXCLUDED.forward_confirmed ELSE n.forward_confirmed END,"
	"  resolved_at = EXCLUDED.resolved_at,"
	"  status = EXCLUDED.status";

/* IPs whose stored values came from another release of a configured file
 * ($1, $2: the current build epochs, NULL when not configured), in key
 * order after $4 (NULL: from the start), so each batch reads on along the
 * primary key instead of scanning again past the rows just updated. */
static const char sql_stale[] =
	"SELECT ip::text FROM dmarc.ip_names "
	"WHERE (($1::bigint IS NOT NULL AND asn_db_epoch IS DISTINCT FROM $1::bigint)"
	"    OR ($2::bigint IS NOT NULL AND country_db_epoch IS DISTINCT FROM $2::bigint))"
	"  AND ($4::inet IS NULL OR ip > $4::inet) "
	"ORDER BY ip LIMIT $3::int";

/* One batch of IP-database values; a file not configured ($6 or $7 NULL)
 * leaves its columns as they are. */
static const char sql_enrich[] =
	"UPDATE dmarc.ip_names AS n SET "
	"  asn = CASE WHEN $6::bigint IS NULL THEN n.asn ELSE u.asn END,"
	"  as_name = CASE WHEN $6::bigint IS NULL THEN n.as_name ELSE u.as_name END,"
	"  as_domain = CASE WHEN $6::bigint IS NULL THEN n.as_domain ELSE u.as_domain END,"
	"  asn_db_epoch = COALESCE($6::bigint, n.asn_db_epoch),"
	"  country = CASE WHEN $7::bigint IS NULL THEN n.country ELSE u.country END,"
	"  country_db_epoch = COALESCE($7::bigint, n.country_db_epoch) "
	"FROM unnest($1::inet[], $2::bigint[], $3::text[], $4::text[], $5::text[]) "
	"  AS u(ip, asn, as_name, as_domain, country) "
	"WHERE n.ip = u.ip";

dc_code
dc_resolve_store_now(dc_store *st, char **started, dc_err *err)
{
	PGresult *r = NULL;
	dc_code rc;

	*started = NULL;
	rc = dc_pg_exec(st->conn, "SELECT now()::text", 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 0, &r,
		"resolve", err);
	if (rc != DC_OK)
		return rc;
	if (PQntuples(r) != 1) {
		rc = dc_pg_fail(st->conn, r, "resolve", err);
		goto out;
	}
	*started = strdup(PQgetvalue(r, 0, 0));
	if (!*started)
		rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
out:
	PQclear(r);
	return rc;
}

/* Runs sql (its one column: IPs as text) and copies the IPs to *ips, one
 * allocation (see dc_resolve_store_due). */
static dc_code
read_ips(dc_store *st, const char *sql, int nparams, const char *const *params, const char ***ips, size_t *n,
	dc_err *err)
{
	dc_code rc = DC_OK;
	PGresult *r = NULL;

	*ips = NULL;
	*n = 0;
	rc = dc_pg_exec(st->conn, sql, nparams, params, NULL, NULL, 0, PGRES_TUPLES_OK, 0, &r,
		"resolve: reading source IPs failed", err);
	if (rc != DC_OK)
		goto out;
	size_t rows = (size_t)PQntuples(r);
	if (rows == 0)
		goto out;
	/* The pointers, then the strings they point at, in one block. */
	size_t bytes = rows * sizeof(char *);
	for (size_t i = 0; i < rows; i++)
		bytes += (size_t)PQgetlength(r, (int)i, 0) + 1;
	const char **out = malloc(bytes);
	if (!out) {
		rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
		goto out;
	}
	char *p = (char *)(out + rows);
	for (size_t i = 0; i < rows; i++) {
		size_t len = (size_t)PQgetlength(r, (int)i, 0);
		memcpy(p, PQgetvalue(r, (int)i, 0), len + 1);
		out[i] = p;
		p += len + 1;
	}
	*ips = out;
	*n = rows;
out:
	PQclear(r);
	return rc;
}

dc_code
dc_resolve_store_due(dc_store *st, int refresh_after, int retry_after, const char *started, int limit,
	const char ***ips, size_t *n, dc_err *err)
{
	char p_refresh[24], p_retry[24], p_limit[24];

	snprintf(p_refresh, sizeof p_refresh, "%d", refresh_after);
	snprintf(p_retry, sizeof p_retry, "%d", retry_after);
	snprintf(p_limit, sizeof p_limit, "%d", limit);
	const char *params[4] = { p_refresh, p_retry, started, p_limit };
	return read_ips(st, sql_candidates, 4, params, ips, n, err);
}

dc_code
dc_resolve_store_stale(dc_store *st, int64_t asn_epoch, int64_t country_epoch, const char *after, int limit,
	const char ***ips, size_t *n, dc_err *err)
{
	char p_asn[24], p_country[24], p_limit[24];

	snprintf(p_asn, sizeof p_asn, "%lld", (long long)asn_epoch);
	snprintf(p_country, sizeof p_country, "%lld", (long long)country_epoch);
	snprintf(p_limit, sizeof p_limit, "%d", limit);
	const char *params[4] = { asn_epoch >= 0 ? p_asn : NULL, country_epoch >= 0 ? p_country : NULL,
		p_limit, after };
	return read_ips(st, sql_stale, 4, params, ips, n, err);
}

dc_code
dc_resolve_store_enrich(dc_store *st, const dc_enrich_row *rows, size_t n, int64_t asn_epoch,
	int64_t country_epoch, dc_err *err)
{
	dc_code rc = DC_OK;
	dc_buf a[5];
	char p_asn[24], p_country[24];

	for (int k = 0; k < 5; k++) {
		dc_buf_init(&a[k], DC_MAX_PG_ARRAY);
		dc_pg_array_begin(&a[k]);
	}
	for (size_t i = 0; i < n; i++) {
		dc_pg_array_text(&a[0], rows[i].ip);
		if (rows[i].asn > 0)
			dc_pg_array_int(&a[1], rows[i].asn);
		else
			dc_pg_array_text(&a[1], NULL);
		dc_pg_array_text(&a[2], rows[i].as_name && *rows[i].as_name ? rows[i].as_name : NULL);
		dc_pg_array_text(&a[3], rows[i].as_domain && *rows[i].as_domain ? rows[i].as_domain : NULL);
		dc_pg_array_text(&a[4], rows[i].country && *rows[i].country ? rows[i].country : NULL);
	}
	for (int k = 0; k < 5; k++) {
		dc_code c = dc_pg_array_end(&a[k]);
		if (c == DC_ENOMEM) {
			rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
			goto out;
		}
		if (c != DC_OK) {
			rc = dc_err_set(err, c, "resolve: a batch of %zu IPs is over %zu bytes", n,
				(size_t)DC_MAX_PG_ARRAY);
			goto out;
		}
	}
	snprintf(p_asn, sizeof p_asn, "%lld", (long long)asn_epoch);
	snprintf(p_country, sizeof p_country, "%lld", (long long)country_epoch);
	const char *params[7];
	for (int k = 0; k < 5; k++)
		params[k] = dc_buf_str(&a[k]);
	params[5] = asn_epoch >= 0 ? p_asn : NULL;
	params[6] = country_epoch >= 0 ? p_country : NULL;
	rc = dc_pg_exec(st->conn, sql_enrich, 7, params, NULL, NULL, 0, PGRES_COMMAND_OK, 0, NULL,
		"resolve: storing IP database values failed", err);
out:
	for (int k = 0; k < 5; k++)
		dc_buf_free(&a[k]);
	return rc;
}

dc_code
dc_resolve_store_names(dc_store *st, const dc_resolve_row *rows, size_t n, dc_err *err)
{
	dc_code rc = DC_OK;
	dc_buf a[5];

	for (int k = 0; k < 5; k++) {
		dc_buf_init(&a[k], DC_MAX_PG_ARRAY);
		dc_pg_array_begin(&a[k]);
	}
	for (size_t i = 0; i < n; i++) {
		dc_pg_array_text(&a[0], rows[i].ip);
		dc_pg_array_text(&a[1], rows[i].ptr);
		dc_pg_array_text(&a[2], rows[i].base_domain);
		dc_pg_array_bool(&a[3], rows[i].confirmed);
		dc_pg_array_text(&a[4], rows[i].status);
	}
	for (int k = 0; k < 5; k++) {
		dc_code c = dc_pg_array_end(&a[k]);
		if (c == DC_ENOMEM) {
			rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
			goto out;
		}
		if (c != DC_OK) {
			rc = dc_err_set(err, c, "resolve: a batch of %zu names is over %zu bytes", n,
				(size_t)DC_MAX_PG_ARRAY);
			goto out;
		}
	}
	const char *params[5];
	for (int k = 0; k < 5; k++)
		params[k] = dc_buf_str(&a[k]);
	rc = dc_pg_exec(st->conn, sql_upsert, 5, params, NULL, NULL, 0, PGRES_COMMAND_OK, 0, NULL,
		"resolve: storing names failed", err);
out:
	for (int k = 0; k < 5; k++)
		dc_buf_free(&a[k]);
	return rc;
}

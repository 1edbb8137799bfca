/*
 * dc_resolve.c - one resolve run: the IPs due, a batch at a time, through
 * the resolver and back into dmarc.ip_names (see dc_resolve.h).
 *
 * The run notes the server's time first; IPs written since then are never
 * due again in the same run (dc_resolve_store_due), so it ends even with a
 * retry time of zero.  A stop or a dead resolver in the middle of a batch
 * still stores what was looked up.
 *
 * IP databases: each batch's IPs get their AS and country right after their
 * names are stored; a last phase takes the IPs whose stored epochs are not
 * the files' (never enriched, or by an older file) until none is left: each
 * update sets the epochs, so that phase ends.
 *
 * Deliberately not here: SQL (storage/dc_resolve_store.c), c-ares and libpsl
 * (resolve/dc_resolver.c), logging and exit statuses
 * (program/dc_resolve_cmd.c, the service loop).
 */
#include <stdlib.h>
#include <string.h>

#include "dc_ipdb.h"
#include "dc_resolve.h"
#include "dc_resolve_store.h"

void
dc_resolve_opts_default(dc_resolve_opts *o)
{
	memset(o, 0, sizeof *o);
	dc_resolver_opts_default(&o->dns);
	o->retry_after = DC_RESOLVE_DEFAULT_RETRY_AFTER;
	o->refresh_after = DC_RESOLVE_DEFAULT_REFRESH_AFTER;
	o->batch = DC_RESOLVE_DEFAULT_BATCH;
}

void
dc_resolve_opts_from_config(dc_resolve_opts *o, const dc_config *cfg)
{
	dc_resolve_opts_default(o);
	o->dns.servers = cfg->dns_servers;
	if (cfg->dns_timeout_ms > 0)
		o->dns.timeout_ms = cfg->dns_timeout_ms;
	if (cfg->dns_retry_after >= 0)
		o->retry_after = cfg->dns_retry_after;
	if (cfg->dns_in_flight > 0)
		o->dns.max_inflight = cfg->dns_in_flight;
	o->asn_db = cfg->asn_db;
	o->country_db = cfg->country_db;
}

/* The run's open IP databases; country may be asn (one file). */
typedef struct enrich {
	dc_ipdb *asn, *country;
	int64_t asn_epoch, country_epoch; /* -1: no such file */
} enrich;

static void
enrich_close(enrich *en)
{
	if (en->country != en->asn)
		dc_ipdb_close(en->country);
	dc_ipdb_close(en->asn);
	memset(en, 0, sizeof *en);
}

/* Opens one [enrich] file; an error names the key.  Returns DC_OK,
 * DC_ENOMEM, or DC_ECONFIG (missing, unreadable, not a MaxMind DB). */
static dc_code
open_db(const char *key, const char *path, dc_ipdb **db, dc_err *err)
{
	dc_err e;
	dc_code rc = dc_ipdb_open(path, db, &e);
	if (rc == DC_OK)
		return DC_OK;
	return dc_err_set(err, rc == DC_ENOMEM ? DC_ENOMEM : DC_ECONFIG, "[enrich] %s: %s", key, e.msg);
}

/* Opens the files of opts.  Returns DC_OK, or open_db's code. */
static dc_code
enrich_open(enrich *en, const dc_resolve_opts *opts, dc_err *err)
{
	dc_code rc = DC_OK;

	memset(en, 0, sizeof *en);
	en->asn_epoch = en->country_epoch = -1;
	if (opts->asn_db && *opts->asn_db) {
		rc = open_db("asn_db", opts->asn_db, &en->asn, err);
		if (rc != DC_OK)
			return rc;
		en->asn_epoch = (int64_t)(dc_ipdb_epoch(en->asn) & INT64_MAX);
	}
	if (opts->country_db && *opts->country_db) {
		if (en->asn && strcmp(opts->asn_db, opts->country_db) == 0)
			en->country = en->asn;
		else if ((rc = open_db("country_db", opts->country_db, &en->country, err)) != DC_OK)
			return rc;
		en->country_epoch = (int64_t)(dc_ipdb_epoch(en->country) & INT64_MAX);
	}
	return DC_OK;
}

/* Looks the n IPs up in the open files and stores the values.  Returns
 * DC_OK, DC_ENOMEM, dc_ipdb_lookup's or dc_resolve_store_enrich's code. */
static dc_code
enrich_batch(dc_store *st, const enrich *en, const char *const *ips, size_t n, dc_resolve_stats *stats,
	dc_err *err)
{
	dc_code rc = DC_OK;

	if ((!en->asn && !en->country) || n == 0)
		return DC_OK;
	dc_ipdb_result *res = calloc(n, sizeof *res);
	dc_enrich_row *rows = calloc(n, sizeof *rows);
	if (!res || !rows) {
		rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (en->asn) {
			unsigned want = DC_IPDB_ASN | (en->country == en->asn ? DC_IPDB_COUNTRY : 0);
			if ((rc = dc_ipdb_lookup(en->asn, ips[i], want, &res[i], err)) != DC_OK)
				goto out;
		}
		if (en->country && en->country != en->asn &&
			(rc = dc_ipdb_lookup(en->country, ips[i], DC_IPDB_COUNTRY, &res[i], err)) != DC_OK)
			goto out;
		rows[i].ip = ips[i];
		rows[i].asn = res[i].asn;
		rows[i].as_name = res[i].as_name;
		rows[i].as_domain = res[i].as_domain;
		rows[i].country = res[i].country;
	}
	rc = dc_resolve_store_enrich(st, rows, n, en->asn_epoch, en->country_epoch, err);
	if (rc == DC_OK && stats)
		stats->enriched += n;
out:
	free(rows);
	free(res);
	return rc;
}

/* The last phase: IPs whose stored epochs are not the files'.  Returns
 * DC_OK, DC_EINTERRUPTED after opts->dns.stop, or enrich_batch's and
 * dc_resolve_store_stale's codes. */
static dc_code
enrich_stale(
	dc_store *st, const enrich *en, const dc_resolve_opts *opts, dc_resolve_stats *stats, dc_err *err)
{
	dc_code rc = DC_OK;
	const char **ips = NULL;
	size_t n = 0;
	char *after = NULL;
	int batch = opts->batch > 0 ? opts->batch : DC_RESOLVE_DEFAULT_BATCH;

	if (!en->asn && !en->country)
		return DC_OK;
	for (;;) {
		if (opts->dns.stop && *opts->dns.stop) {
			rc = dc_err_set(err, DC_EINTERRUPTED, "resolve: stopped");
			break;
		}
		rc = dc_resolve_store_stale(
			st, en->asn_epoch, en->country_epoch, after, batch, &ips, &n, err);
		if (rc != DC_OK || n == 0)
			break;
		rc = enrich_batch(st, en, ips, n, stats, err);
		if (rc != DC_OK || n < (size_t)batch)
			break;
		free(after);
		after = strdup(ips[n - 1]);
		free(ips);
		ips = NULL;
		if (!after) {
			rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
			break;
		}
		if (opts->dns.progress)
			opts->dns.progress(opts->dns.progress_ctx);
	}
	free(after);
	free(ips);
	return rc;
}

/* Stores the results of the n IPs that were looked up (done); returns
 * DC_OK, DC_ENOMEM or dc_resolve_store_names's code. */
static dc_code
store_batch(dc_store *st, const char *const *ips, const dc_resolve_result *res, size_t n, dc_err *err)
{
	dc_code rc = DC_OK;
	size_t m = 0;
	dc_resolve_row *rows = calloc(n > 0 ? n : 1, sizeof *rows);

	if (!rows)
		return dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
	for (size_t i = 0; i < n; i++) {
		if (!res[i].done)
			continue;
		rows[m].ip = ips[i];
		rows[m].ptr = res[i].ptr;
		rows[m].base_domain = res[i].base_domain;
		rows[m].confirmed = res[i].confirmed;
		rows[m].status = dc_resolve_status_name(res[i].status);
		m++;
	}
	rc = dc_resolve_store_names(st, rows, m, err);
	free(rows);
	return rc;
}

dc_code
dc_resolve_run(dc_store *st, const dc_resolve_opts *opts, dc_resolve_stats *stats, dc_err *err)
{
	dc_code rc = DC_OK;
	char *started = NULL;
	const char **ips = NULL;
	dc_resolve_result *res = NULL;
	size_t n = 0;
	uint64_t done = 0;
	enrich en;

	memset(&en, 0, sizeof en);
	/* A resolver that cannot be set up (bad [dns] servers) is an error even
	 * when there is nothing to look up. */
	rc = dc_resolve_ips(NULL, 0, &opts->dns, NULL, NULL, err);
	if (rc != DC_OK)
		goto out;
	rc = enrich_open(&en, opts, opts->enrich_err ? opts->enrich_err : err);
	if (rc != DC_OK) {
		if (opts->enrich_err == NULL)
			goto out;
		if (rc == DC_ENOMEM) {
			rc = dc_err_set(err, rc, "%s", dc_err_text(opts->enrich_err));
			goto out;
		}
		/* names without AS and country this time; the caller says why */
		enrich_close(&en);
		memset(&en, 0, sizeof en);
		rc = DC_OK;
	}
	rc = dc_resolve_store_now(st, &started, err);
	if (rc != DC_OK)
		goto out;
	int refresh = opts->refresh_after > 0 ? opts->refresh_after : 0;
	int retry = opts->retry_after > 0 ? opts->retry_after : 0;

	for (;;) {
		if (opts->dns.stop && *opts->dns.stop) {
			rc = dc_err_set(err, DC_EINTERRUPTED, "resolve: stopped after %llu IPs",
				(unsigned long long)done);
			goto out;
		}
		int batch = opts->batch > 0 ? opts->batch : DC_RESOLVE_DEFAULT_BATCH;
		if (opts->max_ips > 0) {
			if (done >= opts->max_ips)
				break;
			if (opts->max_ips - done < (uint64_t)batch)
				batch = (int)(opts->max_ips - done);
		}
		rc = dc_resolve_store_due(st, refresh, retry, started, batch, &ips, &n, err);
		if (rc != DC_OK)
			goto out;
		if (n == 0)
			break;
		res = calloc(n, sizeof *res);
		if (!res) {
			rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
			goto out;
		}
		rc = dc_resolve_ips(ips, n, &opts->dns, res, stats, err);
		if (rc == DC_EINTERRUPTED || (rc == DC_EDNS && n > 0 && res[0].done)) {
			/* Keep what was looked up; report the stop. */
			dc_err stored;
			if (store_batch(st, ips, res, n, &stored) != DC_OK)
				rc = dc_err_set(err, stored.code, "%s", stored.msg);
			goto out;
		}
		if (rc != DC_OK)
			goto out;
		rc = store_batch(st, ips, res, n, err);
		if (rc != DC_OK)
			goto out;
		rc = enrich_batch(st, &en, ips, n, stats, err);
		if (rc != DC_OK)
			goto out;
		if (opts->dns.progress)
			opts->dns.progress(opts->dns.progress_ctx);
		done += n;
		dc_resolve_results_clear(res, n);
		free(res);
		res = NULL;
		free(ips);
		ips = NULL;
		if (n < (size_t)batch)
			break;
	}
	rc = enrich_stale(st, &en, opts, stats, err);
out:
	enrich_close(&en);
	dc_resolve_results_clear(res, n);
	free(res);
	free(ips);
	free(started);
	return rc;
}

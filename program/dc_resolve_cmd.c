/*
 * dc_resolve_cmd.c - the `resolve` command and check-config's DNS probe
 * (SPEC section 4) and its [enrich] probe: they run dc_resolve (collector/) or the resolver
 * (resolve/), log the outcome and turn it into the program's exit status.
 *
 * Exit status of `resolve`: 0 looked up (whatever the DNS said), 2 bad
 * [dns] servers or [enrich] files (DC_ECONFIG) or the database refused, 75 the database could
 * not be reached, the resolver stopped answering (DC_EDNS), or every IP
 * timed out.
 *
 * Deliberately not here: lookups, SQL, batches (dc_resolve.h and below).
 */
#include <string.h>

#include "dc_commands.h"
#include "dc_exit.h"
#include "dc_ipdb.h"
#include "dc_log.h"
#include "dc_resolve.h"

int
dc_cmd_resolve(const dc_config *cfg)
{
	dc_err err;
	dc_store *st = NULL;
	dc_resolve_opts opts;
	dc_resolve_stats stats;
	int status = 0;

	dc_err_clear(&err);
	memset(&stats, 0, sizeof stats);
	dc_resolve_opts_from_config(&opts, cfg);
	if (dc_store_open(cfg->db_conninfo, cfg->db_password, &st, &err) != DC_OK) {
		dc_log_error("resolve: %s", dc_err_text(&err));
		status = dc_exit_for(err.code);
		goto out;
	}
	dc_code rc = dc_resolve_run(st, &opts, &stats, &err);
	if (rc != DC_OK) {
		dc_log_error("%s", dc_err_text(&err));
		/* bad [dns] servers: 2 (DC_ECONFIG); a resolver that stopped
		 * answering: 75 (DC_EDNS); the database as everywhere */
		status = dc_exit_for(rc);
		goto out;
	}
	dc_log_info("resolve: %llu IPs in %.2f s: %llu named (%llu forward-confirmed), "
		    "%llu nxdomain, %llu timeout, %llu servfail, %llu error",
		(unsigned long long)stats.ips, stats.seconds, (unsigned long long)stats.ok,
		(unsigned long long)stats.confirmed, (unsigned long long)stats.nxdomain,
		(unsigned long long)stats.timeout, (unsigned long long)stats.servfail,
		(unsigned long long)stats.error);
	if (opts.asn_db || opts.country_db)
		dc_log_info("resolve: %llu IPs looked up in the IP databases ([enrich])",
			(unsigned long long)stats.enriched);
	if (stats.ips > 0 && stats.timeout == stats.ips) {
		dc_log_error("resolve: no DNS server answered (%s); the IPs are retried after %d s",
			opts.dns.servers ? opts.dns.servers : "system resolver", opts.retry_after);
		status = DC_EXIT_TEMPFAIL;
	}
out:
	dc_store_free(st);
	return status;
}

int
dc_check_dns(const dc_config *cfg)
{
	dc_err err;
	dc_resolve_opts opts;
	dc_resolve_result res;
	const char *ip = "127.0.0.1";
	int status = 0;

	dc_err_clear(&err);
	memset(&res, 0, sizeof res);
	dc_resolve_opts_from_config(&opts, cfg);
	opts.dns.tries = 1;
	if (dc_resolve_ips(&ip, 1, &opts.dns, &res, NULL, &err) != DC_OK) {
		dc_log_error("check-config: DNS: %s", dc_err_text(&err));
		status = dc_exit_for(err.code);
	} else if (res.status == DC_RESOLVE_TIMEOUT) {
		dc_log_error("check-config: DNS: no answer from %s within %d ms",
			opts.dns.servers ? opts.dns.servers : "the system resolver", opts.dns.timeout_ms);
		status = DC_EXIT_TEMPFAIL;
	} else {
		dc_log_info("check-config: DNS: %s answers (PTR 127.0.0.1: %s)",
			opts.dns.servers ? opts.dns.servers : "the system resolver",
			dc_resolve_status_name(res.status));
	}
	dc_resolve_results_clear(&res, 1);
	return status;
}

/* Opens one [enrich] file and logs what it is; returns 0 or 2. */
static int
check_ipdb(const char *key, const char *path)
{
	dc_err err;
	dc_ipdb *db = NULL;

	dc_err_clear(&err);
	if (dc_ipdb_open(path, &db, &err) != DC_OK) {
		dc_log_error("check-config: [enrich] %s: %s", key, dc_err_text(&err));
		return DC_EXIT_CONFIG;
	}
	dc_log_info("check-config: [enrich] %s: %s, %s, built %llu", key, path, dc_ipdb_type(db),
		(unsigned long long)dc_ipdb_epoch(db));
	dc_ipdb_close(db);
	return 0;
}

int
dc_check_ipdb(const dc_config *cfg)
{
	int status = 0;

	if (cfg->asn_db)
		status = dc_exit_worse(status, check_ipdb("asn_db", cfg->asn_db));
	if (cfg->country_db)
		status = dc_exit_worse(status, check_ipdb("country_db", cfg->country_db));
	return status;
}

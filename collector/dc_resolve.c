/*
 * dc_resolve.c - PTR lookups for source IPs (first cut: interface only; the
 * c-ares implementation follows).
 */
#include <string.h>

#include "dc_commands.h"
#include "dc_log.h"
#include "dc_resolve.h"

const char *dc_resolve_status_name(dc_resolve_status s)
{
	switch (s) {
	case DC_RESOLVE_OK: return "ok";
	case DC_RESOLVE_NXDOMAIN: return "nxdomain";
	case DC_RESOLVE_TIMEOUT: return "timeout";
	case DC_RESOLVE_SERVFAIL: return "servfail";
	case DC_RESOLVE_ERROR: return "error";
	}
	return "error";
}

void dc_resolve_opts_default(dc_resolve_opts *o)
{
	memset(o, 0, sizeof *o);
	o->timeout_ms = DC_RESOLVE_DEFAULT_TIMEOUT_MS;
	o->tries = DC_RESOLVE_DEFAULT_TRIES;
	o->max_inflight = DC_RESOLVE_DEFAULT_MAX_INFLIGHT;
	o->retry_after = DC_RESOLVE_DEFAULT_RETRY_AFTER;
	o->refresh_after = DC_RESOLVE_DEFAULT_REFRESH_AFTER;
	o->batch = DC_RESOLVE_DEFAULT_BATCH;
}

void dc_resolve_opts_from_config(dc_resolve_opts *o, const dc_config *cfg)
{
	dc_resolve_opts_default(o);
	o->servers = cfg->dns_servers;
	if (cfg->dns_timeout_ms > 0)
		o->timeout_ms = cfg->dns_timeout_ms;
	if (cfg->dns_retry_after > 0)
		o->retry_after = cfg->dns_retry_after;
}

void dc_resolve_results_clear(dc_resolve_result *results, size_t n)
{
	if (!results)
		return;
	for (size_t i = 0; i < n; i++)
		memset(&results[i], 0, sizeof results[i]);
}

dc_code dc_resolve_ips(const char *const *ips, size_t n, const dc_resolve_opts *opts,
	dc_resolve_result *results, dc_resolve_stats *stats, dc_err *err)
{
	return dc_err_set(err, DC_EDNS, "resolve: not implemented yet");
}

dc_code dc_resolve_run(PGconn *conn, const dc_resolve_opts *opts, dc_resolve_stats *stats,
	dc_err *err)
{
	return dc_err_set(err, DC_EDNS, "resolve: not implemented yet");
}

int dc_cmd_resolve(const dc_config *cfg)
{
	dc_log_error("resolve: not implemented yet");
	return 75;
}

int dc_check_dns(const dc_config *cfg)
{
	dc_log_error("check-config: DNS check not implemented yet");
	return 75;
}

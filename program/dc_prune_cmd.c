/*
 * dc_prune_cmd.c - the `prune --older-than DAYS` command: opens the store
 * named by the configuration, runs dc_prune (storage/dc_prune.c) and logs
 * what went.  Argument parsing is main.c's; this file only maps results to
 * the exit statuses of dc_commands.h.  The environment variable
 * DC_PRUNE_BATCH_RECORDS sets the records per transaction at the edge
 * (default 20000).  The summary gives the totals, then how many months were
 * dropped whole (with their reports and records) and how many reports went
 * by rows.
 */
#include "dc_commands.h"
#include "dc_exit.h"
#include "dc_log.h"
#include "dc_prune.h"
#include "dc_store.h"

#include <inttypes.h>
#include <stdlib.h>

/* Records per report batch (one transaction), for very large or very busy
 * databases and for tests; default dc_prune_opts_default's. */
#define BATCH_ENV "DC_PRUNE_BATCH_RECORDS"

int
dc_cmd_prune(const dc_config *cfg, int older_than_days)
{
	dc_store *st = NULL;
	dc_prune_opts opts;
	dc_prune_stats stats = { 0 };
	char more[64] = "";
	dc_err err;
	dc_code rc;
	int status = 0;

	dc_err_clear(&err);
	dc_prune_opts_default(&opts, older_than_days);
	{
		const char *b = getenv(BATCH_ENV);
		char *end = NULL;
		long long n = b != NULL ? strtoll(b, &end, 10) : 0;
		if (b != NULL && (end == b || *end != '\0' || n < 1 || n > 100000000)) {
			dc_log_error("prune: %s must be a number of records (1..100000000), not '%s'",
				BATCH_ENV, b);
			return DC_EXIT_CONFIG;
		}
		if (b != NULL)
			opts.batch_records = (int64_t)n;
	}
	if (older_than_days < 0 || older_than_days > DC_PRUNE_MAX_DAYS) {
		dc_log_error("prune: --older-than must be 0..%d days", DC_PRUNE_MAX_DAYS);
		return DC_EXIT_CONFIG;
	}
	if ((rc = dc_store_open(cfg->db_conninfo, cfg->db_password, &st, &err)) != DC_OK) {
		dc_log_error("prune: %s", dc_err_text(&err));
		status = dc_exit_for(rc);
		goto out;
	}
	rc = dc_prune(st, &opts, &stats, &err);
	if (stats.failure_reports > 0)
		snprintf(more, sizeof(more), "; %" PRIu64 " failure reports", stats.failure_reports);
	/* the line as it was, the failure reports appended (scripts read it) */
	dc_log_info("prune: older than %d days: deleted %" PRIu64 " reports, %" PRIu64 " records, %" PRIu64
		    " dkim results, %" PRIu64 " spf results, %" PRIu64 " failures, %" PRIu64
		    " originals in %" PRIu64 " transactions; %" PRIu64 " message log rows, %" PRIu64
		    " run log rows, %" PRIu64 " alerts sent; %" PRIu64 " months dropped whole (%" PRIu64
		    " reports, %" PRIu64 " records), %" PRIu64 " reports deleted by rows%s",
		older_than_days, stats.reports, stats.records, stats.dkim_results, stats.spf_results,
		stats.failures, stats.originals, stats.transactions, stats.mailbox_messages, stats.poll_runs,
		stats.alerts_sent, stats.months, stats.month_reports, stats.month_records,
		stats.reports - stats.month_reports, more);
	if (stats.tls_reports > 0)
		dc_log_info("prune: deleted %" PRIu64 " TLS reports with their policies and failure details",
			stats.tls_reports);
	if (rc != DC_OK) {
		dc_log_error("%s", dc_err_text(&err));
		status = dc_exit_for(rc);
	}
out:
	dc_store_free(st);
	return status;
}

/*
 * dc_prune.h - retention: deletes what is older than a number of days, in
 * small transactions, so a database does not grow without bound.
 *
 * What goes: reports whose date_end is older than the cutoff, with their
 * records and DKIM/SPF results (whole monthly partitions where every report
 * of the month has expired, rows at the edge); SMTP TLS reports whose
 * date_end is older than the cutoff, with their policies and failure
 * details; rejected inputs
 * (dmarc.failures) whose failed_at is older than the cutoff; stored
 * originals (dmarc.originals) that no report references any more; the
 * poller's message log and run log (dmarc.poll_runs) before the cutoff; the
 * alerts sent (dmarc.alerts_sent) before the cutoff that no longer fire.
 * Nothing else (ip_names, mailbox state) is touched.
 */
#ifndef DC_PRUNE_H
#define DC_PRUNE_H

#include <stdint.h>

#include "dc_error.h"
#include "dc_store.h"

/* Largest --older-than accepted (about 270 years); larger is a usage error. */
#define DC_PRUNE_MAX_DAYS 100000

/* Rows deleted; dc_prune adds to these. */
typedef struct dc_prune_stats {
	uint64_t reports;
	uint64_t records;
	uint64_t dkim_results;
	uint64_t spf_results;
	uint64_t failures;
	uint64_t originals;
	uint64_t mailbox_messages; /* rows of the IMAP message log (dmarc.mailbox_messages) */
	uint64_t poll_runs;        /* rows of the run log (dmarc.poll_runs) */
	uint64_t alerts_sent;      /* alerts sent that no longer fire (dmarc.alerts_sent) */
	uint64_t transactions;     /* batches committed */
	/* of the above, what went as whole monthly partitions (dropped) */
	uint64_t months;
	uint64_t month_reports;
	uint64_t month_records;
	uint64_t tls_reports;     /* SMTP TLS reports (their policies and failure details with them) */
	uint64_t failure_reports; /* DMARC failure reports (dmarc.failure_reports) */
} dc_prune_stats;

/* Tuning; dc_prune_opts_default fills the defaults. */
typedef struct dc_prune_opts {
	int older_than_days;   /* 0..DC_PRUNE_MAX_DAYS: cutoff = now() - this many days */
	int64_t batch_records; /* records (and their auth results) per report batch, default 20000 */
	int64_t batch_rows;    /* failures or originals per batch, default 1000 */
	int originals_grace_s; /* unreferenced originals first seen less than this
	                          * many seconds ago are kept (in-flight imports), default 3600 */
} dc_prune_opts;

/* Fills o with the defaults for older_than_days. */
void dc_prune_opts_default(dc_prune_opts *o, int older_than_days);

/*
 * Deletes through store (not inside a transaction) everything older
 * than o->older_than_days, one batch per transaction; st is added to, also
 * for the batches committed before an error.  Returns DC_EUSAGE for an
 * out-of-range option, DC_EDB or DC_EDBREFUSED (dc_pg.h) with the server's
 * message when a statement fails (the failing batch is rolled back; earlier ones stay committed).
 * store stays owned by the caller.
 */
dc_code dc_prune(dc_store *store, const dc_prune_opts *o, dc_prune_stats *st, dc_err *err) DC_WUR;

#endif

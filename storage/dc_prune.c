/*
 * dc_prune.c - retention for the dmarc schema (`prune --older-than DAYS`).
 *
 * Deletes, in this order and one batch per transaction so no lock is held
 * for long and a concurrent collector keeps writing:
 *   1. whole months: dmarc.prune_month(cutoff) (sql/objects/80_retention.sql)
 *      detaches and drops the oldest monthly partitions of dmarc.reports and
 *      dmarc.records while that month ended by the cutoff and every report
 *      in it has expired, one month per call (and transaction), taking
 *      exactly those reports' share out of the daily rollups; it returns
 *      the rows it dropped (counted before the drop), no row when the
 *      oldest month cannot go.  At 10 million records a day this is what
 *      keeps retention cheap: no row is deleted, nothing left to vacuum;
 *   2. the edge: reports whose date_end is older than the cutoff that are
 *      left (in the month the cutoff falls in, in the DEFAULT partition,
 *      or in a month that could not go whole), in batches of whole reports
 *      up to about opts.batch_records records: counted first (records, and
 *      DKIM/SPF results as sum(dkim_count)/sum(spf_count)), taken out of
 *      the rollups in one statement (dmarc.rollup_forget), then deleted;
 *      the reports' BEFORE DELETE trigger (sql/objects/60_rollups.sql)
 *      deletes each one's records (records have no foreign key);
 *   3. SMTP TLS reports (dmarc.tls_reports) whose date_end is older than the
 *      cutoff, with their policies and failure details (ON DELETE CASCADE),
 *      in batches of opts.batch_rows reports; then dmarc.failures rows
 *      whose failed_at is older than the cutoff, and dmarc.failure_reports
 *      rows whose message arrived (when unknown: was stored) before it;
 *   4. dmarc.originals rows no report, TLS report, failure or failure report
 *      references any more
 *      (their reports and failures were pruned, reparsed away, or were all
 *      duplicates of another copy),
 *      except those first seen within opts.originals_grace_s, so an import
 *      still in flight is not disturbed;
 *   5. dmarc.mailbox_messages rows (the poller's log of what it did with
 *      each message) handled before the cutoff.  The mailboxes' UIDVALIDITY
 *      and last UID stay: they say where the next poll starts;
 *   6. dmarc.poll_runs rows (the run log) started before the cutoff: the
 *      mailboxes' status columns stay (dmarc.mailbox_status does not read
 *      the log);
 *   7. dmarc.alerts_sent rows sent before the cutoff whose alert is no longer
 *      in dmarc.alerts (one statement: the table holds one row per alert
 *      ever sent), so an alert that comes back later is sent again.  Skipped
 *      when the schema has no dmarc.alerts view.
 * A report goes when its date_end is before the cutoff, whichever way: the
 * months only make it cheaper.  The cutoff is read once from the server
 * clock (now() - DAYS), so every batch uses the same one.
 *
 * Not here: ip_names, dmarc.mailboxes, VACUUM (autovacuum reclaims the
 * space of the rows deleted at the edge).
 */
#include "dc_prune.h"
#include "dc_store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BATCH_RECORDS 20000
#define DEFAULT_BATCH_ROWS    1000
#define DEFAULT_GRACE_S       3600
/* Reports looked at per batch; a batch is cut shorter by batch_records. */
#define MAX_REPORTS_PER_BATCH 5000

void
dc_prune_opts_default(dc_prune_opts *o, int older_than_days)
{
	o->older_than_days = older_than_days;
	o->batch_records = DEFAULT_BATCH_RECORDS;
	o->batch_rows = DEFAULT_BATCH_ROWS;
	o->originals_grace_s = DEFAULT_GRACE_S;
}

/* The cutoff as the server prints a timestamptz. */
static const char SQL_CUTOFF[] = "SELECT now() - make_interval(days => $1::int)";

/* The next batch of reports: oldest first, whole reports, until the records
 * before a report reach $2 (the first report always goes, however big). */
static const char SQL_REPORT_BATCH[] =
	"SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM ("
	" SELECT id, n, sum(n) OVER (ORDER BY date_end, id) AS cum FROM ("
	"  SELECT id, date_end, coalesce(record_count, 0) AS n FROM dmarc.reports"
	"  WHERE date_end < $1::timestamptz ORDER BY date_end, id LIMIT $3::int) s"
	") t WHERE cum - n < $2::bigint";

/* The oldest month, whole, if it can go ($1: cutoff): a row with the
 * month and what it held, or no row. */
static const char SQL_PRUNE_MONTH[] =
	"SELECT month, reports, records, dkim_results, spf_results FROM dmarc.prune_month($1::timestamptz)";

/* What the batch holds ($1: its report ids), counted before the delete
 * because the trigger that deletes the records does not report its counts. */
static const char SQL_REPORT_COUNTS[] =
	"SELECT count(*), coalesce(sum(dkim_count), 0), coalesce(sum(spf_count), 0)"
	" FROM dmarc.records WHERE report_id = ANY ($1::bigint[])";

/* The batch leaves the daily rollups in one statement rather than report
 * by report through the delete trigger. */
static const char SQL_REPORT_FORGET[] = "SELECT dmarc.rollup_forget($1::bigint[])";

/* The reports go, their records by the reports' BEFORE DELETE trigger. */
static const char SQL_REPORT_DELETE[] = "DELETE FROM dmarc.reports WHERE id = ANY ($1::bigint[])";

/* SMTP TLS reports whose date_end is before $1, with their policies and
 * failure details (ON DELETE CASCADE): $2 batch size, $3 last id deleted. */
static const char SQL_TLS_REPORTS[] =
	"WITH d AS (DELETE FROM dmarc.tls_reports WHERE id IN ("
	"  SELECT id FROM dmarc.tls_reports WHERE date_end < $1::timestamptz AND id > $3::bigint"
	"  ORDER BY id LIMIT $2::int) RETURNING id)"
	" SELECT count(*), coalesce(max(id), 0) FROM d";

/* Failures: $1 cutoff, $2 batch size, $3 last id deleted (resume point). */
static const char SQL_FAILURES[] =
	"WITH d AS (DELETE FROM dmarc.failures WHERE id IN ("
	"  SELECT id FROM dmarc.failures WHERE failed_at < $1::timestamptz AND id > $3::bigint"
	"  ORDER BY id LIMIT $2::int) RETURNING id)"
	" SELECT count(*), coalesce(max(id), 0) FROM d";

/* Failure reports that arrived (else were stored) before the cutoff: $1
 * cutoff, $2 batch size, $3 last id deleted. */
static const char SQL_FAILURE_REPORTS[] =
	"WITH d AS (DELETE FROM dmarc.failure_reports WHERE id IN ("
	"  SELECT id FROM dmarc.failure_reports WHERE coalesce(arrival_time, ingested_at) < $1::timestamptz"
	"  AND id > $3::bigint ORDER BY id LIMIT $2::int) RETURNING id)"
	" SELECT count(*), coalesce(max(id), 0) FROM d";

/* Unreferenced originals: $1 grace seconds, $2 batch size, $3 last id. */
static const char SQL_ORIGINALS[] =
	"WITH d AS (DELETE FROM dmarc.originals WHERE id IN ("
	"  SELECT o.id FROM dmarc.originals o"
	"  WHERE o.id > $3::bigint AND o.first_seen < now() - make_interval(secs => $1::int)"
	"  AND NOT EXISTS (SELECT 1 FROM dmarc.reports r WHERE r.original_id = o.id)"
	"  AND NOT EXISTS (SELECT 1 FROM dmarc.tls_reports t WHERE t.original_id = o.id)"
	"  AND NOT EXISTS (SELECT 1 FROM dmarc.failures f WHERE f.original_id = o.id)"
	"  AND NOT EXISTS (SELECT 1 FROM dmarc.failure_reports x WHERE x.original_id = o.id)"
	"  ORDER BY o.id LIMIT $2::int) RETURNING id)"
	" SELECT count(*), coalesce(max(id), 0) FROM d";

/* The poller's message log: $1 cutoff, $2 batch size, $3 unused (the rows
 * have no id; each batch takes the oldest ones left). */
static const char SQL_MAILBOX_MESSAGES[] =
	"WITH d AS (DELETE FROM dmarc.mailbox_messages WHERE ctid = ANY (ARRAY("
	"  SELECT ctid FROM dmarc.mailbox_messages WHERE handled_at < $1::timestamptz"
	"  AND $3::bigint IS NOT NULL ORDER BY handled_at LIMIT $2::int)) RETURNING 1)"
	" SELECT count(*), 0 FROM d";

/* The run log: $1 cutoff, $2 batch size, $3 last id deleted. */
static const char SQL_POLL_RUNS[] =
	"WITH d AS (DELETE FROM dmarc.poll_runs WHERE id IN ("
	"  SELECT id FROM dmarc.poll_runs WHERE started_at < $1::timestamptz AND id > $3::bigint"
	"  ORDER BY id LIMIT $2::int) RETURNING id)"
	" SELECT count(*), coalesce(max(id), 0) FROM d";

/* Whether the schema has the alerts view that dmarc.alerts_sent refers to. */
static const char SQL_HAS_ALERTS[] = "SELECT to_regclass('dmarc.alerts') IS NOT NULL";

/* Alerts sent before the cutoff $1 that no longer fire. */
static const char SQL_ALERTS_SENT[] =
	"DELETE FROM dmarc.alerts_sent s WHERE s.sent_at < $1::timestamptz"
	" AND NOT EXISTS (SELECT 1 FROM dmarc.alerts a WHERE a.alert = s.alert AND a.key = s.key)";

/* SQLSTATE of a foreign key violation: a writer referenced an original
 * between our NOT EXISTS and the delete (dc_store finds originals by hash). */
#define SQLSTATE_FK_VIOLATION "23503"
#define FK_RETRIES            5

/* Runs sql with text params, checked by dc_pg_check (dc_pg.h): on the
 * expected status DC_OK with *out owned by the caller (NULL when out is
 * NULL: cleared here); otherwise err says what the server said, prefixed
 * with "prune: what", state (when not NULL, 6 bytes) gets the SQLSTATE,
 * and the code is DC_EDB or DC_EDBREFUSED. */
static dc_code
run_state(PGconn *conn, const char *what, const char *sql, int n, const char *const *vals,
	ExecStatusType expect, PGresult **out, char *state, dc_err *err)
{
	char where[128];

	snprintf(where, sizeof(where), "prune: %s", what);
	return dc_pg_check(conn, PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0), expect, 0, out, state,
		where, err);
}

/* run_state without the SQLSTATE. */
static dc_code
run(PGconn *conn, const char *what, const char *sql, int n, const char *const *vals, ExecStatusType expect,
	PGresult **out, dc_err *err)
{
	return run_state(conn, what, sql, n, vals, expect, out, NULL, err);
}

/* PQcmdTuples as a number (0 when empty). */
static uint64_t
affected(PGresult *res)
{
	return strtoull(PQcmdTuples(res), NULL, 10);
}

/* One batch of reports in one transaction; *done set when none was left. */
static dc_code
prune_report_batch(
	PGconn *conn, const char *cutoff, const dc_prune_opts *o, dc_prune_stats *st, int *done, dc_err *err)
{
	PGresult *res = NULL;
	char *ids = NULL;
	char batch[24], limit[24];
	uint64_t counts[4] = { 0, 0, 0, 0 };
	dc_code rc;

	snprintf(batch, sizeof batch, "%" PRId64, o->batch_records);
	snprintf(limit, sizeof limit, "%d", MAX_REPORTS_PER_BATCH);
	*done = 0;
	if ((rc = run(conn, "begin", "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL, err)) != DC_OK)
		return rc;
	{
		const char *v[3] = { cutoff, batch, limit };
		if ((rc = run(conn, "selecting reports", SQL_REPORT_BATCH, 3, v, PGRES_TUPLES_OK, &res,
			     err)) != DC_OK)
			goto out;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		rc = dc_err_set(err, DC_EDB, "prune: selecting reports: unexpected result");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "{}") == 0) {
		*done = 1;
		goto out; /* rolls back the empty transaction */
	}
	/* The server's own array text goes back as a parameter. */
	ids = strdup(PQgetvalue(res, 0, 0));
	if (ids == NULL) {
		rc = dc_err_set(err, DC_ENOMEM, "prune: out of memory");
		goto out;
	}
	PQclear(res);
	res = NULL;
	{
		const char *v[1] = { ids };
		if ((rc = run(conn, "counting records", SQL_REPORT_COUNTS, 1, v, PGRES_TUPLES_OK, &res,
			     err)) != DC_OK)
			goto out;
		if (PQntuples(res) != 1 || PQnfields(res) != 3) {
			rc = dc_err_set(err, DC_EDB, "prune: counting records: unexpected result");
			goto out;
		}
		counts[0] = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		counts[1] = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
		counts[2] = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
		PQclear(res);
		res = NULL;
		if ((rc = run(conn, "leaving the rollups", SQL_REPORT_FORGET, 1, v, PGRES_TUPLES_OK, NULL,
			     err)) != DC_OK)
			goto out;
		if ((rc = run(conn, "deleting reports", SQL_REPORT_DELETE, 1, v, PGRES_COMMAND_OK, &res,
			     err)) != DC_OK)
			goto out;
		counts[3] = affected(res);
		PQclear(res);
		res = NULL;
	}
	if ((rc = run(conn, "commit", "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, err)) != DC_OK)
		goto out;
	st->records += counts[0];
	st->dkim_results += counts[1];
	st->spf_results += counts[2];
	st->reports += counts[3];
	st->transactions++;
out:
	PQclear(res);
	free(ids);
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		PGresult *r = PQexec(conn, "ROLLBACK");
		PQclear(r);
	}
	return rc;
}

/* One month, whole, in one statement (its own transaction); *done set when
 * the oldest month could not go. */
static dc_code
prune_month(PGconn *conn, const char *cutoff, dc_prune_stats *st, int *done, dc_err *err)
{
	PGresult *res = NULL;
	const char *v[1] = { cutoff };
	dc_code rc;

	*done = 0;
	if ((rc = run(conn, "dropping a month", SQL_PRUNE_MONTH, 1, v, PGRES_TUPLES_OK, &res, err)) != DC_OK)
		return rc;
	if (PQntuples(res) == 0) {
		*done = 1;
	} else if (PQntuples(res) != 1 || PQnfields(res) != 5) {
		rc = dc_err_set(err, DC_EDB, "prune: dropping a month: unexpected result");
	} else {
		uint64_t reports = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
		uint64_t records = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
		st->months++;
		st->month_reports += reports;
		st->month_records += records;
		st->reports += reports;
		st->records += records;
		st->dkim_results += strtoull(PQgetvalue(res, 0, 3), NULL, 10);
		st->spf_results += strtoull(PQgetvalue(res, 0, 4), NULL, 10);
		st->transactions++;
	}
	PQclear(res);
	return rc;
}

/* Repeats sql (a batch delete returning count and last id) until a batch
 * deletes nothing; the deleted count is added to *total.  A batch failing
 * with a foreign key violation (a concurrent writer just referenced a row)
 * is tried again: the row is then referenced and no longer selected. */
static dc_code
prune_rows(PGconn *conn, const char *what, const char *sql, const char *first, int64_t batch_rows,
	uint64_t *total, uint64_t *transactions, dc_err *err)
{
	char batch[24], last[24] = "0", state[6];
	dc_code rc = DC_OK;
	int retries = 0;

	snprintf(batch, sizeof batch, "%" PRId64, batch_rows);
	for (;;) {
		PGresult *res = NULL;
		const char *v[3] = { first, batch, last };
		uint64_t n;
		rc = run_state(conn, what, sql, 3, v, PGRES_TUPLES_OK, &res, state, err);
		if (rc != DC_OK && strcmp(state, SQLSTATE_FK_VIOLATION) == 0 && retries++ < FK_RETRIES)
			continue;
		if (rc != DC_OK)
			return rc;
		if (PQntuples(res) != 1 || PQnfields(res) != 2) {
			PQclear(res);
			return dc_err_set(err, DC_EDB, "prune: %s: unexpected result", what);
		}
		n = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		snprintf(last, sizeof last, "%s", PQgetvalue(res, 0, 1));
		PQclear(res);
		if (n == 0)
			return DC_OK;
		*total += n;
		(*transactions)++;
	}
}

/* Step 7: the alerts sent that no longer fire, in one statement. */
static dc_code
prune_alerts_sent(PGconn *conn, const char *cutoff, dc_prune_stats *st, dc_err *err)
{
	PGresult *res = NULL;
	const char *v[1] = { cutoff };
	dc_code rc;

	if ((rc = run(conn, "looking for dmarc.alerts", SQL_HAS_ALERTS, 0, NULL, PGRES_TUPLES_OK, &res,
		     err)) != DC_OK)
		return rc;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		goto out; /* a schema without the alert views: nothing was sent */
	PQclear(res);
	res = NULL;
	if ((rc = run(conn, "deleting alerts sent", SQL_ALERTS_SENT, 1, v, PGRES_COMMAND_OK, &res, err)) !=
		DC_OK)
		goto out;
	if (affected(res) > 0) { /* as prune_rows: a statement that deleted nothing is no batch */
		st->alerts_sent += affected(res);
		st->transactions++;
	}
out:
	PQclear(res);
	return rc;
}

dc_code
dc_prune(dc_store *store, const dc_prune_opts *o, dc_prune_stats *st, dc_err *err)
{
	PGconn *conn = store->conn;
	PGresult *res = NULL;
	char *cutoff = NULL;
	char days[16], grace[16];
	dc_code rc = DC_OK;
	int done = 0;

	if (o->older_than_days < 0 || o->older_than_days > DC_PRUNE_MAX_DAYS)
		return dc_err_set(err, DC_EUSAGE, "prune: --older-than must be 0..%d days, not %d",
			DC_PRUNE_MAX_DAYS, o->older_than_days);
	if (o->batch_records < 1 || o->batch_rows < 1 || o->batch_rows > INT32_MAX ||
		o->originals_grace_s < 0)
		return dc_err_set(err, DC_EUSAGE, "prune: batch sizes must be positive, grace not negative");
	if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE)
		return dc_err_set(err, DC_EDB, "prune: connection not ready (or inside a transaction)");

	snprintf(days, sizeof days, "%d", o->older_than_days);
	snprintf(grace, sizeof grace, "%d", o->originals_grace_s);
	{
		const char *v[1] = { days };
		if ((rc = run(conn, "cutoff", SQL_CUTOFF, 1, v, PGRES_TUPLES_OK, &res, err)) != DC_OK)
			goto out;
	}
	if (PQntuples(res) != 1 || (cutoff = strdup(PQgetvalue(res, 0, 0))) == NULL) {
		rc = dc_err_set(err, DC_EDB, "prune: cutoff: unexpected result");
		goto out;
	}
	while (!done)
		if ((rc = prune_month(conn, cutoff, st, &done, err)) != DC_OK)
			goto out;
	done = 0;
	while (!done)
		if ((rc = prune_report_batch(conn, cutoff, o, st, &done, err)) != DC_OK)
			goto out;
	if ((rc = prune_rows(conn, "deleting TLS reports", SQL_TLS_REPORTS, cutoff, o->batch_rows,
		     &st->tls_reports, &st->transactions, err)) != DC_OK)
		goto out;
	if ((rc = prune_rows(conn, "deleting failures", SQL_FAILURES, cutoff, o->batch_rows, &st->failures,
		     &st->transactions, err)) != DC_OK)
		goto out;
	if ((rc = prune_rows(conn, "deleting failure reports", SQL_FAILURE_REPORTS, cutoff, o->batch_rows,
		     &st->failure_reports, &st->transactions, err)) != DC_OK)
		goto out;
	if ((rc = prune_rows(conn, "deleting originals", SQL_ORIGINALS, grace, o->batch_rows, &st->originals,
		     &st->transactions, err)) != DC_OK)
		goto out;
	if ((rc = prune_rows(conn, "deleting the message log", SQL_MAILBOX_MESSAGES, cutoff, o->batch_rows,
		     &st->mailbox_messages, &st->transactions, err)) != DC_OK)
		goto out;
	if ((rc = prune_rows(conn, "deleting the run log", SQL_POLL_RUNS, cutoff, o->batch_rows,
		     &st->poll_runs, &st->transactions, err)) != DC_OK)
		goto out;
	rc = prune_alerts_sent(conn, cutoff, st, err);
out:
	PQclear(res);
	free(cutoff);
	return rc;
}

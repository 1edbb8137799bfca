/*
 * dc_partition.c - keeping the monthly partitions of dmarc.reports and
 * dmarc.records ahead of the data (issue 11, sql/migrations/001_tables.sql).
 *
 * The schema's functions do the work: dmarc.maintain_partitions() creates
 * the partitions of the current month -1 .. +2 and of every month that has
 * rows in the DEFAULT partitions (moving them there); dmarc.create_partitions
 * (b, e) those of the months b .. e.  Both take ACCESS EXCLUSIVE locks, so
 * they run here in a transaction of their own, never inside a report's or a
 * batch's: a report of a month without its partition is not refused, its
 * rows wait in the DEFAULT partition for the next call.
 *
 *   dc_store_partitions  maintain_partitions(): import at its start and end,
 *                        poll at the start of each mailbox, reparse at its end.
 *   store_ensure_month   create_partitions() for the month of a report, once
 *                        per month per connection (st->months, which
 *                        dc_store_partitions fills with the months it
 *                        covers), so that a backfill of old months writes
 *                        straight into them:
 *                          own transaction: before the report's BEGIN;
 *                          batch: only while the batch's transaction has
 *                          written nothing yet (no transaction id assigned:
 *                          its reports wait in memory), by ending that empty
 *                          transaction, creating, and beginning again; once
 *                          the batch has written, its other months wait in
 *                          DEFAULT (st->batch_written spares the question);
 *                          reparse: never (DEFAULT, moved at its end).
 *
 * Neither waits more than STORE_PARTITION_LOCK_TIMEOUT for its locks (a
 * report being written holds them; a queued ACCESS EXCLUSIVE request would
 * stall every reader behind it): past that, nothing is created this time.
 * A schema without these functions (not migrated yet) is a configuration
 * error with a hint, as for a missing table (dc_pg.h, DC_PG_SCHEMA).
 *
 * Deliberately not here: which months exist or are pruned (sql/objects,
 * dc_prune.c).
 */
#include "dc_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG_UNDEFINED_FUNCTION "42883" /* SQLSTATE: no such function */
#define PG_LOCK_NOT_AVAILABLE "55P03" /* SQLSTATE: lock_timeout passed */

/* How long a partition function may wait for its locks: a writer in the
 * middle of a report holds the table, and a waiting ACCESS EXCLUSIVE
 * request queues every later reader behind it.  Past it the rows wait in
 * DEFAULT for the next call. */
#define STORE_PARTITION_LOCK_TIMEOUT "2s"

/* Runs one of the partition functions (sql with n text parameters) as a
 * transaction of its own (autocommit); sql sets lock_timeout from $1:
 * *busy (may be NULL) is set when it gave up waiting for a lock (DC_OK).
 * A missing function is DC_ECONFIG with a hint to migrate; a data error is
 * a refusal (DC_EDBREFUSED). */
static dc_code
partition_call(dc_store *st, const char *sql, int n, const char *const *vals, const char *what, bool *busy,
	dc_err *err)
{
	char state[6] = "";
	dc_code rc;

	if (busy != NULL)
		*busy = false;
	rc = dc_pg_check(st->conn, PQexecParams(st->conn, sql, n, NULL, vals, NULL, NULL, 0), PGRES_TUPLES_OK,
		0, NULL, state, what, err);
	if (rc != DC_OK && strcmp(state, PG_UNDEFINED_FUNCTION) == 0) {
		rc = dc_err_set(err, DC_ECONFIG,
			"%s: no such function in the database (run `dmarc-collector migrate` first)", what);
	} else if (rc != DC_OK && strcmp(state, PG_LOCK_NOT_AVAILABLE) == 0) {
		if (busy != NULL)
			*busy = true;
		rc = DC_OK;
	}
	return rc;
}

/* year * 12 + month - 1 of t (epoch seconds, UTC); -1 when gmtime fails. */
static int32_t
month_of(time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	return (int32_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
}

/* True when month m is in st->months. */
static bool
month_known(const dc_store *st, int32_t m)
{
	for (size_t i = 0; i < st->n_months; i++)
		if (st->months[i] == m)
			return true;
	return false;
}

/* Notes month m as having its partitions (most recent first; the oldest is
 * forgotten when full). */
static void
month_note(dc_store *st, int32_t m)
{
	if (month_known(st, m))
		return;
	if (st->n_months < STORE_MONTHS)
		st->n_months++;
	memmove(st->months + 1, st->months, (st->n_months - 1) * sizeof(st->months[0]));
	st->months[0] = m;
}

/* True when the connection is inside a transaction block. */
static bool
in_transaction(const dc_store *st)
{
	PGTransactionStatusType s = PQtransactionStatus(st->conn);

	return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

dc_code
dc_store_partitions(dc_store *st, dc_err *err)
{
	time_t now = time(NULL);
	const char *vals[1] = { STORE_PARTITION_LOCK_TIMEOUT };
	bool busy = false;
	dc_code rc;

	if (st->scope != STORE_SCOPE_OWN || st->write != STORE_WRITE_NONE || in_transaction(st))
		return dc_err_set(err, DC_EDB, "dmarc.maintain_partitions(): called inside a transaction");
	/* the subquery (volatile: not flattened) sets lock_timeout for this
	 * statement's implicit transaction before the function runs */
	rc = partition_call(st,
		"SELECT dmarc.maintain_partitions()"
		" FROM (SELECT pg_catalog.set_config('lock_timeout', $1, true)) AS t",
		1, vals, "dmarc.maintain_partitions()", &busy, err);
	if (rc == DC_OK && !busy) {
		/* it covers the current month -1 .. +2: no need to ask for those */
		int32_t m = month_of(now);

		for (int32_t k = -1; m >= 0 && k <= 2; k++)
			month_note(st, m + k);
	}
	return rc;
}

/* Batch scope: true (the batch has written) unless the open transaction
 * has no transaction id yet, i.e. nothing of the batch was sent.  Sets
 * st->batch_written when it has, so the question is asked once per batch
 * at most after that. */
static dc_code
batch_has_written(dc_store *st, bool *written, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;

	*written = true;
	if (st->batch_written)
		return DC_OK;
	rc = store_exec(st, "SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL", 0, NULL, NULL,
		NULL, 0, PGRES_TUPLES_OK, &res, "read the batch's transaction id", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	*written = PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "f") != 0;
	PQclear(res);
	st->batch_written = *written;
	return DC_OK;
}

dc_code
store_ensure_month(dc_store *st, int64_t t, const char *begin, dc_err *err)
{
	const char *vals[2] = { STORE_PARTITION_LOCK_TIMEOUT, begin };
	int32_t month = month_of((time_t)t);
	bool written = false;
	dc_code rc, rc2;

	if (month < 0 || month_known(st, month) || st->scope == STORE_SCOPE_REPARSE)
		return DC_OK;
	if (st->scope == STORE_SCOPE_BATCH) {
		if ((rc = batch_has_written(st, &written, err)) != DC_OK || written)
			return rc;
		/* an empty transaction: ended, and begun again below */
		if ((rc = store_cmd(st, "COMMIT", err)) != DC_OK)
			return store_refused(rc, err);
	} else if (in_transaction(st)) {
		return DC_OK; /* the DEFAULT partition holds it until the next maintenance */
	}
	rc = partition_call(st,
		"SELECT dmarc.create_partitions($2::timestamptz, $2::timestamptz)"
		" FROM (SELECT pg_catalog.set_config('lock_timeout', $1, true)) AS t",
		2, vals, "dmarc.create_partitions()", NULL, err);
	/* also when it gave up waiting: asked once per month, the DEFAULT
	 * partition holds the rest until the next maintenance */
	if (rc == DC_OK)
		month_note(st, month);
	if (st->scope == STORE_SCOPE_BATCH) {
		rc2 = store_refused(store_cmd(st, "BEGIN", rc == DC_OK ? err : NULL), NULL);
		if (rc == DC_OK)
			rc = rc2;
	}
	return rc;
}

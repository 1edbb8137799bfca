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
 *   store_ensure_month   create_partitions() for the month of a report that
 *                        goes in its own transaction, once per month per
 *                        connection (st->months), before the report's BEGIN:
 *                        a backfill of old months writes straight into them.
 *
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

/* Runs one of the partition functions (sql with n text parameters) as a
 * transaction of its own (autocommit).  A missing function is DC_ECONFIG
 * with a hint to migrate; a data error is a refusal (DC_EDBREFUSED). */
static dc_code
partition_call(dc_store *st, const char *sql, int n, const char *const *vals, const char *what, dc_err *err)
{
	char state[6] = "";
	dc_code rc;

	rc = dc_pg_check(st->conn, PQexecParams(st->conn, sql, n, NULL, vals, NULL, NULL, 0), PGRES_TUPLES_OK,
		0, NULL, state, what, err);
	if (rc != DC_OK && strcmp(state, PG_UNDEFINED_FUNCTION) == 0)
		rc = dc_err_set(err, DC_ECONFIG,
			"%s: no such function in the database (run `dmarc-collector migrate` first)", what);
	return rc;
}

dc_code
dc_store_partitions(dc_store *st, dc_err *err)
{
	if (st->scope != STORE_SCOPE_OWN || st->write != STORE_WRITE_NONE ||
		PQtransactionStatus(st->conn) == PQTRANS_INTRANS || PQtransactionStatus(st->conn) == PQTRANS_INERROR)
		return dc_err_set(err, DC_EDB, "dmarc.maintain_partitions(): called inside a transaction");
	return partition_call(st, "SELECT dmarc.maintain_partitions()", 0, NULL, "dmarc.maintain_partitions()", err);
}

dc_code
store_ensure_month(dc_store *st, int64_t t, const char *begin, dc_err *err)
{
	const char *vals[1] = { begin };
	time_t tt = (time_t)t;
	struct tm tm;
	int32_t month;
	size_t i;
	dc_code rc;

	if (gmtime_r(&tt, &tm) == NULL)
		return DC_OK; /* store_format_time accepted it; nothing to prepare */
	month = (int32_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
	for (i = 0; i < st->n_months; i++)
		if (st->months[i] == month)
			return DC_OK;
	if (PQtransactionStatus(st->conn) == PQTRANS_INTRANS || PQtransactionStatus(st->conn) == PQTRANS_INERROR)
		return DC_OK; /* inside a transaction after all: the DEFAULT partition holds it */
	rc = partition_call(st, "SELECT dmarc.create_partitions($1::timestamptz, $1::timestamptz)", 1, vals,
		"dmarc.create_partitions()", err);
	if (rc != DC_OK)
		return rc;
	/* most recent first; the oldest is forgotten when full */
	if (st->n_months < STORE_MONTHS)
		st->n_months++;
	memmove(st->months + 1, st->months, (st->n_months - 1) * sizeof(st->months[0]));
	st->months[0] = month;
	return DC_OK;
}

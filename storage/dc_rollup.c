/*
 * dc_rollup.c - the daily rollups (sql/005-007) as the writer sees them.
 *
 * The rollups are added at each transaction's COMMIT by the schema's
 * triggers unless the session defers them (dmarc.defer_rollup); a run that
 * stores many reports (import, poll's listing, reparse) defers them and
 * adds them once at the end with dmarc.rollup_pending(), which also takes
 * the reports of a writer that died before adding its own.
 *
 * Deliberately not here: the rollup SQL itself (sql/), taking reports out
 * of the rollups (prune, dc_prune.c).
 */
#include "dc_store_int.h"

#include <stdlib.h>

dc_code
dc_store_defer_rollups(dc_store *st, bool on, dc_err *err)
{
	const char *vals[1] = { on ? "on" : "off" };

	return store_refused(store_exec(st, "SELECT pg_catalog.set_config('dmarc.defer_rollup', $1, false)",
				     1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, NULL, "defer rollups", err),
		err);
}

dc_code
dc_store_rollup_pending(dc_store *st, int64_t *added, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;

	rc = store_exec(st, "SELECT dmarc.rollup_pending()", 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res,
		"rollup_pending", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	if (added != NULL)
		*added = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return DC_OK;
}

dc_code
dc_store_rollup_end(dc_store *st, dc_code rc, dc_err *err)
{
	dc_err e2;
	dc_code rc2;

	if (rc == DC_EDB || rc == DC_EDBREFUSED || rc == DC_ENOMEM)
		return rc;
	rc2 = dc_store_rollup_pending(st, NULL, &e2);
	if (rc2 == DC_OK)
		rc2 = dc_store_defer_rollups(st, false, &e2);
	if (rc2 != DC_OK && rc == DC_OK) {
		*err = e2;
		rc = rc2;
	}
	return rc;
}

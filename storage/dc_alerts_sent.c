/*
 * dc_alerts_sent.c - the alerts not sent yet, and remembering those sent
 * (see dc_alerts_sent.h).
 *
 * Both statements are one round trip each.  The pending alerts come back as
 * one JSON text built by json_agg, which is exactly what the command reads
 * on its stdin; marking them sent reads the same text back
 * (json_to_recordset), so what is remembered is what was sent, even if
 * dmarc.alerts changed in between.  A NULL key (an alert view that forgot
 * one) is sent and remembered as "".
 */
#include "dc_alerts_sent.h"
#include "dc_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns DC_OK with *json and *n set; see dc_alerts_sent.h. */
dc_code
dc_alerts_pending(dc_store *st, size_t max, char **json, size_t *n, dc_err *err)
{
	static const char sql[] =
		"SELECT count(*), json_agg(json_build_object('alert', alert, 'key', key, 'summary', summary, "
		"  'details', details) ORDER BY alert, key) "
		"FROM (SELECT a.alert, coalesce(a.key, '') AS key, a.summary, a.details FROM dmarc.alerts a "
		"  WHERE a.alert IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dmarc.alerts_sent s "
		"    WHERE s.alert = a.alert AND s.key = coalesce(a.key, '')) "
		"  ORDER BY a.alert, 2 LIMIT $1::int) p";
	char lim[24];
	const char *params[1] = { lim };
	PGresult *res = NULL;
	dc_code rc;

	*json = NULL;
	*n = 0;
	snprintf(lim, sizeof(lim), "%zu", max);
	rc = dc_pg_exec(st->conn, sql, 1, params, NULL, NULL, 0, PGRES_TUPLES_OK, DC_PG_SCHEMA, &res,
		"reading dmarc.alerts", err);
	if (rc != DC_OK)
		return rc;
	if (PQntuples(res) != 1 || PQnfields(res) != 2) {
		rc = dc_err_set(err, DC_EDB, "reading dmarc.alerts: unexpected result");
		goto out;
	}
	*n = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	if (*n > 0 && (*json = strdup(PQgetvalue(res, 0, 1))) == NULL) {
		*n = 0;
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
	}
out:
	PQclear(res);
	return rc;
}

/* See dc_alerts_sent.h. */
dc_code
dc_alerts_mark_sent(dc_store *st, const char *json, dc_err *err)
{
	static const char sql[] =
		"INSERT INTO dmarc.alerts_sent (alert, key) "
		"SELECT DISTINCT x.alert, x.key FROM json_to_recordset($1::json) AS x(alert text, key text) "
		"ON CONFLICT (alert, key) DO NOTHING";
	const char *params[1] = { json };

	return dc_pg_exec(st->conn, sql, 1, params, NULL, NULL, 0, PGRES_COMMAND_OK, DC_PG_SCHEMA, NULL,
		"recording the alerts sent", err);
}

/*
 * dc_reparse.c - `reparse`: every stored original is parsed again with the
 * parser of this build and its reports replaced, one transaction per
 * original (its old reports and TLS reports deleted, the new ones written
 * by dc_writer.c and dc_tls_store.c in savepoints: STORE_SCOPE_REPARSE).  Deleting a report deletes its
 * records and takes them out of the rollups (the reports' BEFORE DELETE
 * trigger, sql/objects).  The new rows of a month without a partition go
 * to the DEFAULT partition; dc_store_partitions at the end moves them.  The new rows keep the old ones'
 * origin (mailbox, uid, message_id, file_name, ingested_at).  The rollups
 * are deferred and added every STORE_ROLLUP_EVERY originals and at the end.
 *
 * Deliberately not here: originals only failures refer to (rejected
 * inputs: parsed again they would add a failure row at every reparse).
 */
#include "dc_store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_ROLLUP_EVERY 1000 /* originals between additions to the rollups */

/* Replaces the reports of one original inside one transaction.  The old
 * rows' origin (mailbox, uid, message_id, file_name, ingested_at: those of
 * its first report) is kept for the new rows. */
static dc_code
reparse_one(dc_store *st, int64_t original_id, const dc_limits *lim, dc_extract_stats *stats, dc_err *err)
{
	char idtext[24];
	const char *vals[1] = { idtext };
	PGresult *content = NULL, *old = NULL;
	store_origin saved = st->origin;
	store_scope scope = st->scope;
	dc_extract_cb cb = dc_store_callbacks(st);
	dc_code rc;

	snprintf(idtext, sizeof(idtext), "%" PRId64, original_id);
	if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK)
		return store_refused(rc, err);
	rc = store_exec(st, "SELECT content, name FROM dmarc.originals WHERE id = $1 FOR UPDATE", 1, vals,
		NULL, NULL, 1, PGRES_TUPLES_OK, &content, "read original", err);
	if (rc != DC_OK)
		goto out;
	if (PQntuples(content) == 0) /* pruned meanwhile */
		goto commit;
	/* an aggregate report's origin first, else a TLS report's */
	rc = store_exec(st,
		"SELECT mailbox, uidvalidity, uid, message_id, file_name, ingested_at FROM ("
		" (SELECT 1 AS k, id, mailbox, uidvalidity, uid, message_id, file_name, ingested_at"
		"  FROM dmarc.reports WHERE original_id = $1 ORDER BY id LIMIT 1)"
		" UNION ALL"
		" (SELECT 2, id, mailbox, uidvalidity, uid, message_id, file_name, ingested_at"
		"  FROM dmarc.tls_reports WHERE original_id = $1 ORDER BY id LIMIT 1)) o ORDER BY k LIMIT 1",
		1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, &old, "read old reports", err);
	if (rc != DC_OK)
		goto out;
	rc = store_exec(st, "DELETE FROM dmarc.reports WHERE original_id = $1", 1, vals, NULL, NULL, 0,
		PGRES_COMMAND_OK, NULL, "delete old reports", err);
	if (rc != DC_OK)
		goto out;
	/* their policies and failure details go with them (ON DELETE CASCADE) */
	rc = store_exec(st, "DELETE FROM dmarc.tls_reports WHERE original_id = $1", 1, vals, NULL, NULL, 0,
		PGRES_COMMAND_OK, NULL, "delete old TLS reports", err);
	if (rc != DC_OK)
		goto out;

	st->origin = (store_origin){ .uidvalidity = -1, .uid = -1 };
	if (PQntuples(old) == 1) {
		store_origin *o = &st->origin;
		o->mailbox = PQgetisnull(old, 0, 0) ? NULL : strdup(PQgetvalue(old, 0, 0));
		o->uidvalidity = PQgetisnull(old, 0, 1) ? -1 : strtoll(PQgetvalue(old, 0, 1), NULL, 10);
		o->uid = PQgetisnull(old, 0, 2) ? -1 : strtoll(PQgetvalue(old, 0, 2), NULL, 10);
		o->message_id = PQgetisnull(old, 0, 3) ? NULL : strdup(PQgetvalue(old, 0, 3));
		o->file_name = PQgetisnull(old, 0, 4) ? NULL : strdup(PQgetvalue(old, 0, 4));
		o->ingested_at = strdup(PQgetvalue(old, 0, 5));
		if ((!PQgetisnull(old, 0, 0) && !o->mailbox) || (!PQgetisnull(old, 0, 3) && !o->message_id) ||
			(!PQgetisnull(old, 0, 4) && !o->file_name) || !o->ingested_at) {
			store_origin_clear(&st->origin);
			st->origin = saved;
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
	st->scope = STORE_SCOPE_REPARSE;
	st->reparse_original_id = original_id;
	rc = dc_extract((const uint8_t *)PQgetvalue(content, 0, 0), (size_t)PQgetlength(content, 0, 0),
		PQgetisnull(content, 0, 1) ? NULL : PQgetvalue(content, 0, 1), lim, &cb, stats, err);
	st->scope = scope;
	store_origin_clear(&st->origin);
	st->origin = saved;
	if (rc != DC_OK)
		goto out;
commit:
	rc = store_cmd(st, "COMMIT", err);
out:
	if (rc != DC_OK)
		store_cmd_quiet(st, "ROLLBACK");
	rc = store_refused(rc, err);
	PQclear(content);
	PQclear(old);
	return rc;
}

dc_code
dc_store_reparse(dc_store *st, const dc_limits *lim, dc_extract_stats *stats, dc_err *err)
{
	PGresult *res = NULL;
	int64_t *ids = NULL;
	int n;
	dc_code rc;
	dc_err scratch;

	if (err == NULL)
		err = &scratch;
	/* not the originals only failures refer to (rejected inputs: parsed
	 * again they would add a failure row at every reparse) */
	rc = store_exec(st,
		"SELECT o.id FROM dmarc.originals o"
		" WHERE EXISTS (SELECT 1 FROM dmarc.reports r WHERE r.original_id = o.id)"
		" OR NOT EXISTS (SELECT 1 FROM dmarc.failures f WHERE f.original_id = o.id) ORDER BY o.id",
		0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res, "list originals", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	n = PQntuples(res);
	ids = calloc((size_t)n + 1, sizeof(*ids));
	if (ids == NULL) {
		PQclear(res);
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	}
	for (int i = 0; i < n; i++)
		ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	/* the new reports join the daily rollups every STORE_ROLLUP_EVERY
	 * originals and at the end, not at each original's COMMIT (sql/007) */
	if ((rc = dc_store_defer_rollups(st, true, err)) != DC_OK) {
		free(ids);
		return store_refused(rc, err);
	}
	for (int i = 0; i < n; i++) {
		if ((rc = reparse_one(st, ids[i], lim, stats, err)) != DC_OK)
			break;
		if ((i + 1) % STORE_ROLLUP_EVERY == 0 &&
			(rc = dc_store_rollup_pending(st, NULL, err)) != DC_OK)
			break;
	}
	free(ids);
	rc = dc_store_rollup_end(st, rc, err);
	/* rows of months that had no partition are in DEFAULT: moved now */
	if (rc == DC_OK)
		rc = dc_store_partitions(st, err);
	return rc;
}

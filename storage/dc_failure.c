/*
 * dc_failure.c - what is kept besides the reports: the rejected inputs
 * (dmarc.failures, with where they came from and why) and the original
 * bytes of every input (dmarc.originals, once per SHA-256, shared by the
 * reports and failures that came from them), which `reparse` reads again.
 *
 * A failure is one statement, never part of a report's transaction (a
 * report in progress is rolled back first); in batch mode or in reparse it
 * belongs to the surrounding transaction.  Texts we only record (stage,
 * reason, names) are made valid UTF-8 ('?' per bad byte), not rejected.
 *
 * Deliberately not here: deciding what failed (parser/, collector/),
 * pruning (dc_prune.c).
 */
#include "dc_store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Inserts one row into dmarc.failures with the current origin (one
 * statement: its own transaction, or part of the batch's or reparse's).
 * The unit's bytes (unit may be NULL: none kept) are stored once, in
 * dmarc.originals by their SHA-256, and the row refers to them: a unit that
 * is already there (a member of the same zip failed before, or a report of
 * it was stored) costs one statement and no bytes on the wire. */
dc_code
store_insert_failure(dc_store *st, const char *stage, const char *reason, const dc_blob *unit, dc_err *err)
{
	/* $1..$7 where from, stage, reason; $8 sha256; $9 content, $10 name */
	static const char plain_sql[] =
		"INSERT INTO dmarc.failures (mailbox, uidvalidity, uid, message_id, file_name, stage, reason)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7)";
	static const char known_sql[] =
		"INSERT INTO dmarc.failures (mailbox, uidvalidity, uid, message_id, file_name, stage, reason,"
		" original_id, sha256)"
		" SELECT $1::text, $2::bigint, $3::bigint, $4::text, $5::text, $6::text, $7::text, o.id, o.sha256"
		" FROM dmarc.originals o WHERE o.sha256 = $8::bytea";
	static const char new_sql[] =
		"WITH o AS (INSERT INTO dmarc.originals (sha256, content, name) VALUES ($8::bytea, $9::bytea, $10::text)"
		" ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256 RETURNING id, sha256)"
		" INSERT INTO dmarc.failures (mailbox, uidvalidity, uid, message_id, file_name, stage, reason,"
		" original_id, sha256)"
		" SELECT $1::text, $2::bigint, $3::bigint, $4::text, $5::text, $6::text, $7::text, o.id, o.sha256 FROM o";
	char uidv[24], uid[24];
	uint8_t digest[STORE_SHA256_LEN];
	char *stage_ok = NULL, *reason_ok = NULL, *file_ok = NULL, *name_ok = NULL;
	const char *name = unit ? unit->name : NULL;
	const char *vals[10];
	int lens[10] = { 0 }, fmts[10] = { 0 };
	PGresult *res = NULL;
	dc_code rc;

	if (unit != NULL && (unit->data == NULL || unit->len > DC_MAX_BYTEA))
		unit = NULL; /* cannot be kept: record the failure without it */
	stage_ok = store_utf8_sanitize(stage);
	reason_ok = store_utf8_sanitize(reason);
	file_ok = store_utf8_sanitize(st->origin.file_name ? st->origin.file_name : name);
	name_ok = name ? store_utf8_sanitize(name) : NULL;
	if (!stage_ok || !reason_ok || !file_ok || (name && !name_ok)) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(uidv, sizeof(uidv), "%" PRId64, st->origin.uidvalidity);
	snprintf(uid, sizeof(uid), "%" PRId64, st->origin.uid);
	vals[0] = st->origin.mailbox;
	vals[1] = st->origin.uidvalidity >= 0 ? uidv : NULL;
	vals[2] = st->origin.uid >= 0 ? uid : NULL;
	vals[3] = st->origin.message_id;
	vals[4] = (st->origin.file_name || name) ? file_ok : NULL;
	vals[5] = stage_ok;
	vals[6] = reason_ok;
	if (unit == NULL) {
		rc = store_exec(
			st, plain_sql, 7, vals, lens, fmts, 0, PGRES_COMMAND_OK, NULL, "record failure", err);
		goto out;
	}
	store_blob_sha256(unit, digest);
	vals[7] = (const char *)digest;
	lens[7] = STORE_SHA256_LEN;
	fmts[7] = 1;
	rc = store_exec(st, known_sql, 8, vals, lens, fmts, 0, PGRES_COMMAND_OK, &res, "record failure", err);
	if (rc != DC_OK)
		goto out;
	if (strcmp(PQcmdTuples(res), "1") == 0)
		goto out;
	/* a new original (or one pruned in between): its bytes go once */
	vals[8] = (const char *)unit->data;
	lens[8] = (int)unit->len;
	fmts[8] = 1;
	vals[9] = name_ok;
	rc = store_exec(st, new_sql, 10, vals, lens, fmts, 0, PGRES_COMMAND_OK, NULL, "record failure", err);
out:
	PQclear(res);
	free(stage_ok);
	free(reason_ok);
	free(file_ok);
	free(name_ok);
	return rc;
}

dc_code
dc_store_failure(
	dc_store *st, const char *stage, const char *reason, const uint8_t *content, size_t len, dc_err *err)
{
	dc_blob unit = { .data = content, .len = len };

	if (st->write != STORE_WRITE_NONE) /* never part of a report's transaction */
		store_report_rollback(st);
	return store_insert_failure(st, stage, reason, content ? &unit : NULL, err);
}

dc_code
store_failure_cb(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	dc_store *st = ctx;

	if (st->write != STORE_WRITE_NONE)
		store_report_rollback(st);
	return store_insert_failure(st, stage, dc_err_text(why), unit, err);
}

/* Finds the original unit by its SHA-256, or (insert) inserts it; sets *id
 * (-1: not there and not inserted). */
dc_code
store_original(dc_store *st, const dc_blob *b, int64_t *id, bool insert, dc_err *err)
{
	uint8_t digest[STORE_SHA256_LEN];
	const char *vals[3];
	int lens[3] = { STORE_SHA256_LEN, 0, 0 }, fmts[3] = { 1, 1, 0 };
	PGresult *res = NULL;
	char *name = NULL;
	dc_code rc;

	if (b->len > DC_MAX_BYTEA)
		return dc_err_set(err, DC_ESCHEMA, "original of %zu bytes is too large to keep", b->len);
	store_blob_sha256(b, digest);
	vals[0] = (const char *)digest;
	/* FOR KEY SHARE: a concurrent prune of unreferenced originals cannot
	 * delete it before our report references it */
	rc = store_exec_prepared(st, STORE_PREP_FIND_ORIG, "dc_find_orig",
		"SELECT id FROM dmarc.originals WHERE sha256 = $1 FOR KEY SHARE", 1, vals, lens, fmts,
		PGRES_TUPLES_OK, &res, "find original", err);
	if (rc != DC_OK)
		return rc;
	if (PQntuples(res) == 0 && !insert) {
		PQclear(res);
		*id = -1;
		return DC_OK;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		name = b->name ? store_utf8_sanitize(b->name) : NULL;
		if (b->name && !name)
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		vals[1] = (const char *)b->data;
		lens[1] = (int)b->len;
		vals[2] = name;
		/* DO UPDATE (not NOTHING) so that a concurrent insert still returns the id */
		rc = store_exec_prepared(st, STORE_PREP_ADD_ORIG, "dc_add_orig",
			"INSERT INTO dmarc.originals (sha256, content, name) VALUES ($1, $2, $3)"
			" ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256 RETURNING id",
			3, vals, lens, fmts, PGRES_TUPLES_OK, &res, "store original", err);
		free(name);
		if (rc != DC_OK)
			return rc;
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return DC_OK;
}

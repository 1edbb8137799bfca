/*
 * dc_mailbox.c - IMAP polling state in PostgreSQL (see dc_mailbox.h).
 *
 * Every statement is a PQexecParams with parameters; the per-message rows of
 * one batch go in as arrays (unnest) in the same statement that raises
 * last_uid, so recording a batch is one round trip and one transaction.
 * A missing table means the schema was not migrated: DC_ECONFIG
 * (DC_PG_SCHEMA, dc_pg.h).
 */
#include "dc_mailbox.h"
#include "dc_store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns DC_OK with *st filled; see dc_mailbox.h. */
dc_code
dc_mailbox_begin(dc_store *store, const char *label, const char *url, const char *user, int64_t uidvalidity,
	dc_mailbox_state *st, dc_err *err)
{
	static const char sql[] =
		"WITH old AS (SELECT uidvalidity FROM dmarc.mailboxes WHERE url = $1 AND username = $2) "
		"INSERT INTO dmarc.mailboxes AS m (url, username, label, uidvalidity) "
		"VALUES ($1, $2, $3, $4::bigint) "
		"ON CONFLICT (url, username) DO UPDATE SET label = EXCLUDED.label, "
		"  last_uid = CASE WHEN m.uidvalidity IS NOT DISTINCT FROM EXCLUDED.uidvalidity "
		"                  THEN m.last_uid ELSE 0 END, "
		"  uidvalidity = EXCLUDED.uidvalidity "
		"RETURNING id, last_uid, COALESCE((SELECT uidvalidity FROM old), -1)";
	char uv[24];
	const char *params[4] = { url, user, label, uv };
	PGresult *res = NULL;
	dc_code rc;

	snprintf(uv, sizeof(uv), "%" PRId64, uidvalidity);
	rc = dc_pg_exec(store->conn, sql, 4, params, NULL, NULL, 0, PGRES_TUPLES_OK, DC_PG_SCHEMA, &res,
		"recording the mailbox", err);
	if (rc != DC_OK)
		return rc;
	if (PQntuples(res) != 1) {
		rc = dc_pg_fail(store->conn, res, "recording the mailbox", err);
		goto out;
	}
	st->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	st->last_uid = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	st->old_uidvalidity = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	st->uidvalidity = uidvalidity;
out:
	PQclear(res);
	return rc;
}

/* Returns DC_OK once the batch is recorded; see dc_mailbox.h. */
dc_code
dc_mailbox_record(dc_store *store, dc_mailbox_state *st, const dc_mailbox_outcome *o, size_t n,
	int64_t last_uid, dc_err *err)
{
	static const char sql[] =
		"WITH ins AS ("
		"  INSERT INTO dmarc.mailbox_messages AS mm (mailbox_id, uidvalidity, uid, message_id, size, "
		"    outcome, reports, duplicates, failures, action) "
		"  SELECT $1, $2, u.uid, u.mid, u.size, CASE WHEN u.rej THEN 'rejected' ELSE 'stored' END, "
		"    u.rep, u.dup, u.fail, u.act "
		"  FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::boolean[], $7::int[], $8::int[], "
		"    $9::int[], $10::text[]) AS u(uid, mid, size, rej, rep, dup, fail, act) "
		"  ON CONFLICT (mailbox_id, uidvalidity, uid) DO UPDATE SET outcome = EXCLUDED.outcome, "
		"    reports = EXCLUDED.reports, duplicates = EXCLUDED.duplicates, failures = EXCLUDED.failures, "
		"    action = EXCLUDED.action, message_id = EXCLUDED.message_id, handled_at = now() "
		"  RETURNING 1) "
		"UPDATE dmarc.mailboxes SET last_uid = GREATEST(last_uid, $11::bigint), "
		"  messages_stored = messages_stored + $12::bigint, "
		"  messages_rejected = messages_rejected + $13::bigint "
		"WHERE id = $1 AND uidvalidity = $2 "
		"RETURNING last_uid, (SELECT count(*) FROM ins)";
	dc_buf a[8];
	char id[24], uv[24], lu[24], ns[24], nr[24];
	const char *params[13];
	PGresult *res = NULL;
	size_t stored = 0, rejected = 0;
	dc_code rc = DC_OK;

	for (int k = 0; k < 8; k++) {
		dc_buf_init(&a[k], DC_MAX_PG_ARRAY);
		(void)dc_pg_array_begin(&a[k]);
	}
	for (size_t i = 0; i < n; i++) {
		(void)dc_pg_array_int(&a[0], o[i].uid);
		(void)dc_pg_array_text(&a[1], o[i].message_id);
		(void)dc_pg_array_int(&a[2], o[i].size);
		(void)dc_pg_array_bool(&a[3], o[i].rejected);
		(void)dc_pg_array_int(&a[4], o[i].reports);
		(void)dc_pg_array_int(&a[5], o[i].duplicates);
		(void)dc_pg_array_int(&a[6], o[i].failures);
		(void)dc_pg_array_text(&a[7], o[i].action);
		if (o[i].rejected)
			rejected++;
		else
			stored++;
	}
	for (int k = 0; k < 8; k++) {
		if (dc_pg_array_end(&a[k]) != DC_OK) {
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
	snprintf(id, sizeof(id), "%" PRId64, st->id);
	snprintf(uv, sizeof(uv), "%" PRId64, st->uidvalidity);
	snprintf(lu, sizeof(lu), "%" PRId64, last_uid);
	snprintf(ns, sizeof(ns), "%zu", stored);
	snprintf(nr, sizeof(nr), "%zu", rejected);
	params[0] = id;
	params[1] = uv;
	for (int k = 0; k < 8; k++)
		params[2 + k] = dc_buf_str(&a[k]);
	params[10] = lu;
	params[11] = ns;
	params[12] = nr;
	rc = dc_pg_exec(store->conn, sql, 13, params, NULL, NULL, 0, PGRES_TUPLES_OK, DC_PG_SCHEMA, &res,
		"recording mailbox progress", err);
	if (rc != DC_OK)
		goto out;
	if (PQntuples(res) == 1)
		st->last_uid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	/* no row: another collector saw a new UIDVALIDITY meanwhile; it reads the folder again */
out:
	PQclear(res);
	for (int k = 0; k < 8; k++)
		dc_buf_free(&a[k]);
	return rc;
}

/* See dc_mailbox.h; DC_EDB or DC_EDBREFUSED on failure. */
dc_code
dc_mailbox_finish(dc_store *store, int64_t id, const char *error, dc_err *err)
{
	static const char sql[] =
		"UPDATE dmarc.mailboxes SET last_poll_at = now(), last_error = $2::text, "
		"  last_success_at = CASE WHEN $2::text IS NULL THEN now() ELSE last_success_at END "
		"WHERE id = $1";
	char sid[24];
	const char *params[2] = { sid, error };

	snprintf(sid, sizeof(sid), "%" PRId64, id);
	return dc_pg_exec(store->conn, sql, 2, params, NULL, NULL, 0, PGRES_COMMAND_OK, DC_PG_SCHEMA, NULL,
		"recording the poll's outcome", err);
}

/* See dc_mailbox.h; DC_EDB or DC_EDBREFUSED on failure. */
dc_code
dc_mailbox_fail(
	dc_store *store, const char *label, const char *url, const char *user, const char *error, dc_err *err)
{
	static const char sql[] =
		"INSERT INTO dmarc.mailboxes (url, username, label, last_poll_at, last_error) "
		"VALUES ($1, $2, $3, now(), $4) "
		"ON CONFLICT (url, username) DO UPDATE SET label = EXCLUDED.label, "
		"  last_poll_at = now(), last_error = EXCLUDED.last_error";
	const char *params[4] = { url, user, label, error };

	return dc_pg_exec(store->conn, sql, 4, params, NULL, NULL, 0, PGRES_COMMAND_OK, DC_PG_SCHEMA, NULL,
		"recording the poll's outcome", err);
}

/*
 * dc_mailbox.c - IMAP polling state in PostgreSQL (see dc_mailbox.h).
 *
 * Every statement is a PQexecParams with parameters; the per-message rows of
 * one batch go in as arrays (unnest) in the same statement that raises
 * last_uid, so recording a batch is one round trip and one transaction.
 * A missing table means the schema was not migrated: DC_ECONFIG
 * (DC_PG_SCHEMA, dc_pg.h).
 *
 * The end of a poll is one statement too (dc_mailbox_finish, _fail): the
 * mailbox's status columns are updated in a data-modifying CTE and the run
 * log's row inserted from it, so dmarc.mailbox_status and dmarc.poll_runs
 * never disagree.  The poll's counts come from the caller (what it
 * committed); the totals were added batch by batch by dc_mailbox_record.
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
		"  messages_rejected = messages_rejected + $13::bigint, "
		"  messages_duplicate = messages_duplicate + $14::bigint "
		"WHERE id = $1 AND uidvalidity = $2 "
		"RETURNING last_uid, (SELECT count(*) FROM ins)";
	dc_buf a[8];
	char id[24], uv[24], lu[24], ns[24], nr[24], nd[24];
	const char *params[14];
	PGresult *res = NULL;
	size_t stored = 0, rejected = 0, duplicate = 0;
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
		else if (o[i].reports == 0 && o[i].duplicates > 0)
			duplicate++;
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
	snprintf(nd, sizeof(nd), "%zu", duplicate);
	params[0] = id;
	params[1] = uv;
	for (int k = 0; k < 8; k++)
		params[2 + k] = dc_buf_str(&a[k]);
	params[10] = lu;
	params[11] = ns;
	params[12] = nr;
	params[13] = nd;
	rc = dc_pg_exec(store->conn, sql, 14, params, NULL, NULL, 0, PGRES_TUPLES_OK, DC_PG_SCHEMA, &res,
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

/*
 * The run log's row, inserted from the CTE m (the mailbox's id and label
 * after its update); the parameters from $3 on are the same in both
 * statements: $3 started_at (epoch seconds), $4 ok, $5 error kind (NULL when
 * ok), $6 error, $7..$11 stored, duplicate, rejected, reports, records.
 */
#define RUN_ROW \
	"INSERT INTO dmarc.poll_runs (mailbox_id, mailbox, started_at, finished_at, ok, error_kind, error, " \
	"  messages_stored, messages_duplicate, messages_rejected, reports, records) " \
	"SELECT m.id, m.label, to_timestamp($3::double precision), now(), $4::boolean, $5::text, $6::text, " \
	"  $7::bigint, $8::bigint, $9::bigint, $10::bigint, $11::bigint FROM m"

/* The mailbox's status after the poll ($4 ok, $6 error, $7..$9 counts). */
#define STATUS_SET \
	"last_poll_at = now(), last_error = $6::text, " \
	"last_success_at = CASE WHEN $4::boolean THEN now() ELSE mb.last_success_at END, " \
	"last_error_at = CASE WHEN $4::boolean THEN mb.last_error_at ELSE now() END, " \
	"polls_failed_in_a_row = CASE WHEN $4::boolean THEN 0 ELSE mb.polls_failed_in_a_row + 1 END, " \
	"last_poll_stored = $7::bigint, last_poll_duplicate = $8::bigint, last_poll_rejected = $9::bigint"

/* Fills params[2..10] (text in num) from p; params[0..1] are the caller's. */
static void
poll_params(const dc_mailbox_poll *p, const char *params[11], char num[6][32])
{
	uint64_t n[5] = { p->stored, p->duplicate, p->rejected, p->reports, p->records };

	snprintf(num[0], sizeof(num[0]), "%.6f", p->started_at);
	params[2] = num[0];
	params[3] = p->rc == DC_OK ? "true" : "false";
	params[4] = p->rc == DC_OK ? NULL : dc_code_kind(p->rc);
	params[5] = p->rc == DC_OK                      ? NULL :
		p->error != NULL && p->error[0] != '\0' ? p->error :
							  dc_strerror(p->rc);
	for (int k = 0; k < 5; k++) {
		snprintf(num[1 + k], sizeof(num[1 + k]), "%" PRIu64, n[k]);
		params[6 + k] = num[1 + k];
	}
}

/* See dc_mailbox.h; DC_EDB or DC_EDBREFUSED on failure. */
dc_code
dc_mailbox_finish(dc_store *store, int64_t id, const dc_mailbox_poll *p, dc_err *err)
{
	/* $2: false when the poll was interrupted (the mailbox keeps its status) */
	static const char sql[] =
		"WITH u AS (UPDATE dmarc.mailboxes AS mb SET " STATUS_SET " "
		"  WHERE mb.id = $1::bigint AND $2::boolean RETURNING mb.id), "
		"m AS (SELECT id, label FROM dmarc.mailboxes WHERE id = $1::bigint) " RUN_ROW;
	char sid[24], num[6][32];
	const char *params[11];

	snprintf(sid, sizeof(sid), "%" PRId64, id);
	params[0] = sid;
	params[1] = p->rc == DC_EINTERRUPTED ? "false" : "true";
	poll_params(p, params, num);
	return dc_pg_exec(store->conn, sql, 11, params, NULL, NULL, 0, PGRES_COMMAND_OK, DC_PG_SCHEMA, NULL,
		"recording the poll's outcome", err);
}

/* See dc_mailbox.h; DC_EDB or DC_EDBREFUSED on failure. */
dc_code
dc_mailbox_fail(dc_store *store, const char *url, const char *user, const dc_mailbox_poll *p, dc_err *err)
{
	/* $1 url, $2 user, $12 label */
	static const char sql[] =
		"WITH m AS (INSERT INTO dmarc.mailboxes AS mb (url, username, label, last_poll_at, last_error, "
		"    last_error_at, polls_failed_in_a_row, last_poll_stored, last_poll_duplicate, last_poll_rejected) "
		"  VALUES ($1, $2, $12, now(), $6::text, now(), 1, $7::bigint, $8::bigint, $9::bigint) "
		"  ON CONFLICT (url, username) DO UPDATE SET label = EXCLUDED.label, " STATUS_SET " "
		"  RETURNING mb.id, mb.label) " RUN_ROW;
	char num[6][32];
	const char *params[12];

	params[0] = url;
	params[1] = user;
	params[11] = p->label;
	poll_params(p, params, num);
	return dc_pg_exec(store->conn, sql, 12, params, NULL, NULL, 0, PGRES_COMMAND_OK, DC_PG_SCHEMA, NULL,
		"recording the poll's outcome", err);
}

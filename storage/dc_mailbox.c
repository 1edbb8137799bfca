/*
 * dc_mailbox.c - IMAP polling state in PostgreSQL (see dc_mailbox.h).
 *
 * Every statement is a PQexecParams with parameters; the per-message rows of
 * one batch go in as arrays (unnest) in the same statement that raises
 * last_uid, so recording a batch is one round trip and one transaction.
 */
#include "dc_mailbox.h"
#include "dc_pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQLSTATE_UNDEFINED_TABLE "42P01"

/* A growing string for array literals. */
typedef struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
} sbuf;

/* Appends p[0..n) to b; sets b->oom on allocation failure. */
static void
sb_add(sbuf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->len + n + 1)
			nc *= 2;
		char *ns = realloc(b->s, nc);
		if (ns == NULL) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = nc;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* Appends the string p to b. */
static void
sb_str(sbuf *b, const char *p)
{
	sb_add(b, p, strlen(p));
}

/* Appends one element of a text[] literal: NULL, or "..." with \ and " escaped. */
static void
sb_text_elem(sbuf *b, const char *v)
{
	if (v == NULL) {
		sb_str(b, "NULL");
		return;
	}
	sb_add(b, "\"", 1);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			sb_add(b, "\\", 1);
		sb_add(b, p, 1);
	}
	sb_add(b, "\"", 1);
}

/* Appends one element of a bigint[] literal. */
static void
sb_int_elem(sbuf *b, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);
	sb_add(b, num, (size_t)n);
}

/* Sets err from a failed result: DC_ECONFIG when the schema is missing,
 * else dc_pg_fail's DC_EDB or DC_EDBREFUSED. */
static dc_code
db_error(PGresult *res, PGconn *conn, const char *what, dc_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	dc_code rc = dc_pg_fail(conn, res, what, err);

	if (rc == DC_EDBREFUSED && strcmp(state, SQLSTATE_UNDEFINED_TABLE) == 0) {
		const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

		return dc_err_set(err, DC_ECONFIG, "%s: %s (run `dmarc-collector migrate` first)", what,
			m ? m : "no such table");
	}
	return rc;
}

/* Returns DC_OK with *st filled; see dc_mailbox.h. */
dc_code
dc_mailbox_begin(PGconn *conn, const char *label, const char *url, const char *user,
	int64_t uidvalidity, dc_mailbox_state *st, dc_err *err)
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
	PGresult *res;
	dc_code rc = DC_OK;

	snprintf(uv, sizeof(uv), "%" PRId64, uidvalidity);
	res = PQexecParams(conn, sql, 4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		rc = db_error(res, conn, "recording the mailbox", err);
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
dc_mailbox_record(PGconn *conn, dc_mailbox_state *st, const dc_mailbox_outcome *o, size_t n,
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
	sbuf a[8] = { { 0 } };
	char id[24], uv[24], lu[24], ns[24], nr[24];
	const char *params[13];
	PGresult *res = NULL;
	size_t stored = 0, rejected = 0;
	dc_code rc = DC_OK;

	for (int k = 0; k < 8; k++)
		sb_str(&a[k], "{");
	for (size_t i = 0; i < n; i++) {
		const char *sep = i ? "," : "";
		for (int k = 0; k < 8; k++)
			sb_str(&a[k], sep);
		sb_int_elem(&a[0], o[i].uid);
		sb_text_elem(&a[1], o[i].message_id);
		sb_int_elem(&a[2], o[i].size);
		sb_str(&a[3], o[i].rejected ? "t" : "f");
		sb_int_elem(&a[4], o[i].reports);
		sb_int_elem(&a[5], o[i].duplicates);
		sb_int_elem(&a[6], o[i].failures);
		sb_text_elem(&a[7], o[i].action);
		if (o[i].rejected)
			rejected++;
		else
			stored++;
	}
	for (int k = 0; k < 8; k++) {
		sb_str(&a[k], "}");
		if (a[k].oom) {
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
		params[2 + k] = a[k].s;
	params[10] = lu;
	params[11] = ns;
	params[12] = nr;
	res = PQexecParams(conn, sql, 13, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = db_error(res, conn, "recording mailbox progress", err);
		goto out;
	}
	if (PQntuples(res) == 1)
		st->last_uid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	/* no row: another collector saw a new UIDVALIDITY meanwhile; it reads the folder again */
out:
	PQclear(res);
	for (int k = 0; k < 8; k++)
		free(a[k].s);
	return rc;
}

/* See dc_mailbox.h; DC_EDB or DC_EDBREFUSED on failure. */
dc_code
dc_mailbox_finish(PGconn *conn, int64_t id, const char *error, dc_err *err)
{
	static const char sql[] =
		"UPDATE dmarc.mailboxes SET last_poll_at = now(), last_error = $2::text, "
		"  last_success_at = CASE WHEN $2::text IS NULL THEN now() ELSE last_success_at END "
		"WHERE id = $1";
	char sid[24];
	const char *params[2] = { sid, error };
	PGresult *res;
	dc_code rc = DC_OK;

	snprintf(sid, sizeof(sid), "%" PRId64, id);
	res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = db_error(res, conn, "recording the poll's outcome", err);
	PQclear(res);
	return rc;
}

/* See dc_mailbox.h; DC_EDB or DC_EDBREFUSED on failure. */
dc_code
dc_mailbox_fail(PGconn *conn, const char *label, const char *url, const char *user, const char *error,
	dc_err *err)
{
	static const char sql[] =
		"INSERT INTO dmarc.mailboxes (url, username, label, last_poll_at, last_error) "
		"VALUES ($1, $2, $3, now(), $4) "
		"ON CONFLICT (url, username) DO UPDATE SET label = EXCLUDED.label, "
		"  last_poll_at = now(), last_error = EXCLUDED.last_error";
	const char *params[4] = { url, user, label, error };
	PGresult *res;
	dc_code rc = DC_OK;

	res = PQexecParams(conn, sql, 4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = db_error(res, conn, "recording the poll's outcome", err);
	PQclear(res);
	return rc;
}

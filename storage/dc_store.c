/*
 * dc_store.c - the store's front door: opening the connection (password as
 * a connection parameter, a safe search_path), the struct's lifetime, the
 * origin recorded with each report, and the few helpers every storage file
 * shares (statements checked through dc_pg.h, timestamps, SHA-256).
 *
 * Storage is split by job, all on the struct in dc_store_int.h:
 *   dc_pg.c        libpq: results to codes, connecting, array literals
 *   dc_migrate.c   schema migrations
 *   dc_writer.c    the report writer (the sink of dc_report.h)
 *   dc_batch.c     batch mode: many inputs in one transaction
 *   dc_failure.c   rejected inputs and the originals' bytes
 *   dc_rollup.c    the daily rollups' deferral
 *   dc_reparse.c   parsing the stored originals again
 *   dc_mailbox.c   IMAP polling state;  dc_prune.c  retention
 *   dc_resolve_store.c  resolve's SQL (dmarc.ip_names)
 *   dc_store_fmt.c COPY text, JSON and binary arrays on dc_buf
 *
 * Errors: SQLSTATE class 22 (data exception), 23 (integrity) and 54000
 * (e.g. index row too large) on a live connection are DC_ESCHEMA: the report
 * is rejected, not the service.  Everything else is fatal (the caller stops,
 * nothing is lost) and dc_pg.h says which: DC_EDB for a lost connection or a
 * failure that passes, DC_EDBREFUSED for a refusal that stays (privilege,
 * missing object); outside a report a data error is a refusal too.  Values are checked
 * before they are sent so that the server should never have to reject one.
 *
 * Deliberately not here: any SQL of a job above, PTR names (resolve).  SQL
 * is only ever sent with parameters.
 */
#include "dc_store_int.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_CONNECT_TIMEOUT "10" /* seconds for libpq to connect, log in and start */

/* The struct's dc_bufs, for dc_store_open and dc_store_free. */
#define STORE_BUFS(st) \
	{ \
		&(st)->key, &(st)->rec, &(st)->json, &(st)->more_dkim, &(st)->more_spf, &(st)->jrec, \
			&(st)->jreport, &(st)->orig, &(st)->orig_name, &(st)->a_sha, &(st)->a_content, \
			&(st)->a_name, &(st)->b_rep, &(st)->b_rec \
	}

/* Formats epoch seconds as a timestamptz literal in UTC; false when the
 * time is outside years 1..9999. */
bool
store_format_time(int64_t t, char out[STORE_TIME_MAX])
{
	struct tm tm;
	time_t tt;

	if (t < -62135596800LL || t > 253402300799LL)
		return false;
	tt = (time_t)t;
	if (gmtime_r(&tt, &tm) == NULL)
		return false;
	snprintf(out, STORE_TIME_MAX, "%04d-%02d-%02d %02d:%02d:%02d+00", tm.tm_year + 1900, tm.tm_mon + 1,
		tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return true;
}

/* out = SHA-256 of data (GLib's implementation, already linked via GMime). */
static void
sha256(const uint8_t *data, size_t len, uint8_t out[STORE_SHA256_LEN])
{
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	gsize n = STORE_SHA256_LEN;

	/* g_checksum_update takes gssize: feed huge inputs in pieces */
	while (len > 0) {
		size_t piece = len > (1u << 30) ? (1u << 30) : len;
		g_checksum_update(c, data, (gssize)piece);
		data += piece;
		len -= piece;
	}
	g_checksum_get_digest(c, out, &n);
	g_checksum_free(c);
}

/* out = the SHA-256 of b's bytes: the one dc_extract computed once per
 * unit when there is one, else hashed here. */
void
store_blob_sha256(const dc_blob *b, uint8_t out[STORE_SHA256_LEN])
{
	if (b->sha256 != NULL)
		memcpy(out, b->sha256, STORE_SHA256_LEN);
	else
		sha256(b->data, b->len, out);
}

/* strdup that passes NULL through; NULL also when out of memory. */
static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Frees o's strings and resets it to "unknown". */
void
store_origin_clear(store_origin *o)
{
	free(o->mailbox);
	free(o->message_id);
	free(o->file_name);
	free(o->ingested_at);
	*o = (store_origin){ .uidvalidity = -1, .uid = -1 };
}
/* ---- libpq results ---------------------------------------------------- */

dc_code
store_fail(dc_store *st, const PGresult *res, const char *what, dc_err *err)
{
	return dc_pg_fail_as(st->conn, res, DC_PG_DATA, what, err);
}

/* rc for a statement that is not a report's: a data error there is the
 * server refusing it (DC_EDBREFUSED), not a bad input. */
dc_code
store_refused(dc_code rc, dc_err *err)
{
	if (rc == DC_ESCHEMA) {
		rc = DC_EDBREFUSED;
		if (err != NULL)
			err->code = rc;
	}
	return rc;
}

dc_code
store_exec(dc_store *st, const char *sql, int n, const char *const *vals, const int *lens, const int *fmts,
	int result_fmt, ExecStatusType want, PGresult **out, const char *what, dc_err *err)
{
	dc_code rc;

	/* a report's COPY left open ends before anything else is sent */
	if (st->copy_open && (rc = store_copy_end(st, false, err)) != DC_OK)
		return rc;
	return dc_pg_exec(st->conn, sql, n, vals, lens, fmts, result_fmt, want, DC_PG_DATA, out, what, err);
}

dc_code
store_exec_prepared(dc_store *st, unsigned bit, const char *name, const char *sql, int n,
	const char *const *vals, const int *lens, const int *fmts, ExecStatusType want, PGresult **out,
	const char *what, dc_err *err)
{
	dc_code rc;

	if (out)
		*out = NULL;
	if (st->copy_open && (rc = store_copy_end(st, false, err)) != DC_OK)
		return rc;
	if (!(st->prepared & bit)) {
		rc = dc_pg_check(st->conn, PQprepare(st->conn, name, sql, n, NULL), PGRES_COMMAND_OK,
			DC_PG_DATA, NULL, NULL, what, err);
		if (rc != DC_OK)
			return rc;
		st->prepared |= bit;
	}
	return dc_pg_check(st->conn, PQexecPrepared(st->conn, name, n, vals, lens, fmts, 0), want, DC_PG_DATA,
		out, NULL, what, err);
}

/* A command without parameters or rows (BEGIN, COMMIT, SAVEPOINT ...). */
dc_code
store_cmd(dc_store *st, const char *sql, dc_err *err)
{
	return store_exec(st, sql, 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, NULL, sql, err);
}

/* Runs sql ignoring the outcome (ROLLBACK on a connection that may be gone). */
void
store_cmd_quiet(dc_store *st, const char *sql)
{
	store_copy_end(st, true, NULL);
	PQclear(PQexec(st->conn, sql));
}

/*
 * A report handed over whole (a TLS report, a failure report) is one unit:
 * a transaction of its own when the store writes each input on its own
 * (STORE_SCOPE_OWN), else the savepoint name inside the batch's or
 * reparse's transaction.  store_unit_end keeps it, store_unit_abort keeps
 * nothing of it.
 */
static dc_code
unit_cmd(dc_store *st, const char *own, const char *verb, const char *name, dc_err *err)
{
	char sql[96];

	if (st->scope == STORE_SCOPE_OWN)
		return store_cmd(st, own, err);
	snprintf(sql, sizeof(sql), "%s %s", verb, name);
	return store_cmd(st, sql, err);
}

dc_code
store_unit_begin(dc_store *st, const char *name, dc_err *err)
{
	return unit_cmd(st, "BEGIN", "SAVEPOINT", name, err);
}

dc_code
store_unit_end(dc_store *st, const char *name, dc_err *err)
{
	return unit_cmd(st, "COMMIT", "RELEASE SAVEPOINT", name, err);
}

void
store_unit_abort(dc_store *st, const char *name)
{
	char sql[96];

	if (st->scope == STORE_SCOPE_OWN) {
		store_cmd_quiet(st, "ROLLBACK");
		return;
	}
	snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT %s", name);
	store_cmd_quiet(st, sql);
	snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT %s", name);
	store_cmd_quiet(st, sql);
}

/* ---- open, free, origin ---------------------------------------------- */

/* libpq notice processor that keeps quiet. */
static void
store_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

dc_code
dc_store_open(const char *conninfo, const char *password, dc_store **out, dc_err *err)
{
	const char *keys[6], *vals[6];
	dc_store *st = NULL;
	dc_code rc = DC_OK;
	int k = 0;

	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	{
		dc_buf *bufs[] = STORE_BUFS(st);

		for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
			store_buf_init(bufs[i]);
	}
	st->origin = (store_origin){ .uidvalidity = -1, .uid = -1 };
	/* libpq waits for ever by default on a server that accepts the connection
	 * and never answers; the service would hang there, deaf to SIGTERM.  Before
	 * dbname, so a connect_timeout in conninfo (or PGCONNECT_TIMEOUT) wins. */
	keys[k] = "connect_timeout";
	vals[k++] = getenv("PGCONNECT_TIMEOUT") ? NULL : STORE_CONNECT_TIMEOUT;
	/* the configured password is a connection parameter (never put in the
	 * environment, where child processes would see it); before dbname, so
	 * one in conninfo wins, and only without PGPASSWORD, which wins too */
	if (password != NULL && getenv("PGPASSWORD") == NULL) {
		keys[k] = "password";
		vals[k++] = password;
	}
	if (conninfo != NULL && conninfo[0] != '\0') {
		keys[k] = "dbname";
		vals[k++] = conninfo;
	}
	keys[k] = "fallback_application_name";
	vals[k++] = "dmarc-collector";
	keys[k] = "client_encoding";
	vals[k++] = "UTF8";
	keys[k] = NULL;
	vals[k] = NULL;
	if ((rc = dc_pg_connect(keys, vals, &st->conn, err)) != DC_OK)
		goto out;
	/* library code does not print: server notices ("already exists,
	 * skipping") are dropped instead of going to stderr */
	PQsetNoticeProcessor(st->conn, store_notice, NULL);
	rc = store_exec(st,
		"SELECT pg_catalog.set_config('search_path', 'dmarc, pg_catalog, pg_temp', false)", 0, NULL,
		NULL, NULL, 0, PGRES_TUPLES_OK, NULL, "set search_path", err);
	if (rc != DC_OK) {
		rc = store_refused(rc, err);
		goto out;
	}
	*out = st;
	st = NULL;
out:
	dc_store_free(st);
	return rc;
}

void
dc_store_free(dc_store *st)
{
	if (st == NULL)
		return;
	dc_buf *bufs[] = STORE_BUFS(st);

	if (st->conn)
		PQfinish(st->conn);
	store_origin_clear(&st->origin);
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		dc_buf_free(bufs[i]);
	free(st->pend);
	free(st->dups);
	free(st);
}

PGconn *
dc_store_conn(dc_store *st)
{
	return st->conn;
}

dc_code
dc_store_synchronous_commit(dc_store *st, dc_err *err)
{
	return dc_pg_exec(st->conn, "SET synchronous_commit = on", 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK,
		0, NULL, "SET synchronous_commit", err);
}

dc_code
dc_store_set_origin(dc_store *st, const dc_origin *o, dc_err *err)
{
	store_origin n = { .uidvalidity = -1, .uid = -1 };

	if (o != NULL) {
		n.mailbox = dup_or_null(o->mailbox);
		n.message_id = dup_or_null(o->message_id);
		n.file_name = dup_or_null(o->file_name);
		n.uidvalidity = o->uidvalidity;
		n.uid = o->uid;
		if ((o->mailbox && !n.mailbox) || (o->message_id && !n.message_id) ||
			(o->file_name && !n.file_name)) {
			store_origin_clear(&n);
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		}
	}
	store_origin_clear(&st->origin);
	st->origin = n;
	return DC_OK;
}

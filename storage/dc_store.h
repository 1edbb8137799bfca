/*
 * dc_store.h - PostgreSQL storage (libpq): schema migrations, one transaction
 * per report with its records (auth results inline) written by COPY,
 * monthly partitions kept ahead, duplicates by the unique key, originals kept for `reparse`, rejected inputs in dmarc.failures.
 *
 * The connection stays inside storage/: IMAP state (dc_mailbox.h) and
 * retention (dc_prune.h) take the dc_store.
 */
#ifndef DC_STORE_H
#define DC_STORE_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "dc_extract.h"

typedef struct dc_store dc_store;

/* Where the next reports and failures came from; any field may be NULL/-1. */
typedef struct dc_origin {
	const char *mailbox;
	int64_t uidvalidity;
	int64_t uid;
	const char *message_id;
	const char *file_name;
} dc_origin;

/* Connects (conninfo NULL or "" = libpq's environment), checks PQstatus, sets
 * a safe search_path.  password (may be NULL: [database] password_file) is
 * given to libpq as a connection parameter; a password in conninfo or in
 * PGPASSWORD wins over it.  On success *out is owned by the caller
 * (dc_store_free).  Returns DC_EDB when the server cannot be reached,
 * DC_EDBREFUSED when it refused (login, no such database; see dc_pg.h). */
dc_code dc_store_open(const char *conninfo, const char *password, dc_store **out, dc_err *err) DC_WUR;
void dc_store_free(dc_store *st);

/* Sets synchronous_commit on for the session, whatever the server's
 * default: a commit the caller acts on (poll moves the message) is not lost
 * by a server crash afterwards.  DC_EDB or DC_EDBREFUSED on failure. */
dc_code dc_store_synchronous_commit(dc_store *st, dc_err *err) DC_WUR;

/* Room for the names of the group roles, "dmarc_writer, dmarc_reader". */
#define DC_ROLES_MAX 32

/* What dc_store_migrate_report did. */
typedef struct dc_migrate_report {
	int migrations; /* files of sql/migrations applied */
	int objects;    /* files of sql/objects applied (new or changed) */
	int partitions; /* partitions dmarc.maintain_partitions() created; -1: no such function */
	bool upgraded;  /* the database was schema 0.1 and is now 1.0 */
	/* The group roles dmarc_writer and dmarc_reader (after the schema). */
	char roles_created[DC_ROLES_MAX];   /* created by this run, "dmarc_writer, dmarc_reader"; "" none */
	bool roles_granted;                 /* dmarc.grant_roles() run for roles that lacked their grants */
	char roles_warning[DC_ERR_MSG_MAX]; /* what is left for an administrator (one line, with the
	                                     * SQL to run); "" when the roles are in place */
} dc_migrate_report;

/* Brings the schema up to the SQL compiled into the program, under an
 * advisory lock (dc_migrate.c): upgrades a 0.1 database in one transaction,
 * else applies each migration not yet recorded in dmarc.schema_migrations
 * (one transaction each), then the changed objects (one transaction), then
 * the group roles (created when missing and the login may create roles,
 * granted when they lack their grants; else rep->roles_warning, and still
 * DC_OK), then dmarc.maintain_partitions().  Fills *rep (also on failure:
 * what was committed).  DC_EDBREFUSED when an applied migration was edited or is
 * unknown to the program (nothing applied), or the server refused; DC_EDB
 * when it went away. */
dc_code dc_store_migrate_report(dc_store *st, dc_migrate_report *rep, dc_err *err) DC_WUR;

/* dc_store_migrate_report with *applied = migrations + objects applied. */
dc_code dc_store_migrate(dc_store *st, int *applied, dc_err *err) DC_WUR;

/* Read-only state of the schema, for check-config. */
typedef struct dc_schema_status {
	int migrations_known;          /* compiled into the program */
	int migrations_applied;        /* recorded in dmarc.schema_migrations; -1: no schema or unreadable */
	int objects_known;             /* compiled into the program */
	int objects_stale;             /* missing or changed in dmarc.schema_objects; -1: not read */
	bool v01;                      /* a 0.1 database: `migrate` upgrades it */
	char conflict[DC_ERR_MSG_MAX]; /* why migrate would refuse (edited or unknown
	                                * migration), "" when it would not */
	char roles_missing[DC_ROLES_MAX];   /* group roles that do not exist, "" none (or no schema) */
	char roles_ungranted[DC_ROLES_MAX]; /* group roles that exist without their grants, "" none */
	char roles_warning[DC_ERR_MSG_MAX]; /* one line on both, with the SQL or command that
	                                     * fixes them; "" when the roles are in place */
} dc_schema_status;

/* Fills *out; failures read as "no schema yet". */
void dc_store_migration_status(dc_store *st, dc_schema_status *out);

/* Sets the origin recorded with subsequent reports and failures (copied). */
dc_code dc_store_set_origin(dc_store *st, const dc_origin *o, dc_err *err) DC_WUR;

/* Callbacks for dc_extract that store into st.  The returned struct points at st. */
dc_extract_cb dc_store_callbacks(dc_store *st);

/* Records a rejected input (whole message or file) in dmarc.failures. */
dc_code dc_store_failure(dc_store *st, const char *stage, const char *reason, const uint8_t *content,
	size_t len, dc_err *err) DC_WUR;

/*
 * Batch mode: the reports and failures stored between dc_store_batch_begin
 * and dc_store_batch_commit share one transaction, and reports of up to
 * STORE_SMALL_RECORDS records are not sent one by one: they wait in memory
 * and go in one statement per batch (or per few MB), with their originals,
 * records and auth results.  Each report is still stored whole or not at
 * all; nothing of the batch is visible or kept before the commit.
 *
 * A waiting report is counted as stored by dc_extract; whether it was a
 * duplicate is known only when it is sent.  dc_store_batch_commit calls
 * on_duplicate(ctx, uid, records) once for each such report, uid being the
 * origin UID it was stored under (dc_store_set_origin), records its number
 * of records, after the commit.
 *
 * On any error inside a batch the caller calls dc_store_batch_abort (nothing
 * of the batch is kept).  DC_ESCHEMA from dc_store_batch_commit means the
 * server rejected a value of some report of the batch: store the batch again
 * outside batch mode, where that report alone is rejected.
 */
typedef void (*dc_store_dup_fn)(void *ctx, int64_t uid, uint64_t records);
dc_code dc_store_batch_begin(dc_store *st, dc_err *err) DC_WUR;
dc_code dc_store_batch_commit(dc_store *st, dc_store_dup_fn on_duplicate, void *ctx, dc_err *err) DC_WUR;
void dc_store_batch_abort(dc_store *st);

/*
 * The daily rollups (sql/005-007) are added at each transaction's COMMIT
 * unless deferred: with dc_store_defer_rollups(st, true) the reports this
 * connection commits wait until dc_store_rollup_pending adds them, with any
 * other report not yet added (of a writer that died first), in one go.
 * *added (may be NULL) is how many reports it added.
 */
dc_code dc_store_defer_rollups(dc_store *st, bool on, dc_err *err) DC_WUR;
dc_code dc_store_rollup_pending(dc_store *st, int64_t *added, dc_err *err) DC_WUR;
/* Ends a run that deferred its rollups (import, reparse): unless it failed
 * for want of the database or memory (rc DC_EDB, DC_EDBREFUSED, DC_ENOMEM: the next run
 * adds them), adds what it stored and stops deferring.  Returns rc, or the
 * error of that step when rc is DC_OK. */
dc_code dc_store_rollup_end(dc_store *st, dc_code rc, dc_err *err) DC_WUR;

/* Creates the monthly partitions of dmarc.reports and dmarc.records that are
 * due (dmarc.maintain_partitions(): the current month -1 .. +2, and every
 * month with rows in the DEFAULT partitions, which it moves there), in a
 * transaction of its own: call it between reports and batches, never inside
 * one (it takes ACCESS EXCLUSIVE locks).  DC_ECONFIG when the schema lacks
 * the function (not migrated), else DC_EDB or DC_EDBREFUSED on failure. */
dc_code dc_store_partitions(dc_store *st, dc_err *err) DC_WUR;

/* Parses every stored original again and replaces the reports derived from
 * it, one transaction per original.  stats is added to. */
dc_code dc_store_reparse(dc_store *st, const dc_limits *lim, dc_extract_stats *stats, dc_err *err) DC_WUR;

#endif

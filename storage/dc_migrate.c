/*
 * dc_migrate.c - schema 1.0: applies the SQL of sql/ compiled into the
 * program (dc_migrations.h) under an advisory lock, so that two collectors
 * starting at once do not both migrate.  Also the read-only status that
 * `check-config` reports.
 *
 * Three kinds of file (docs/README-storage.md, "Migrations"):
 *   sql/migrations/NNN_*.sql  tables and data changes, append-only: each runs
 *       once, in its own transaction, and is recorded with the SHA-256 of its
 *       bytes in dmarc.schema_migrations.  A recorded migration whose
 *       checksum differs from the program's (the file was edited after it was
 *       applied), or that the program does not have (a newer program
 *       migrated this database), stops migrate before anything is applied:
 *       DC_EDBREFUSED, exit status 2, since the same run fails the same way
 *       until an administrator acts (75 would have a service manager retry
 *       forever).
 *   sql/objects/NN_*.sql  functions, views, triggers, re-runnable (CREATE OR
 *       REPLACE): every file whose recorded checksum in dmarc.schema_objects
 *       differs or is missing runs again, all of them in name order in one
 *       transaction, followed by dmarc.grant_roles().  A migration that must
 *       drop an object (to change a column under a view) deletes its row from
 *       dmarc.schema_objects, and the object is made again right after.
 *   sql/upgrade/0.1-before.sql, 0.1-after.sql  the conversion of a 0.1
 *       database, recognised by its first migration '001_schema.sql' in
 *       dmarc.schema_migrations: before.sql moves the 0.1 tables aside
 *       (schema dmarc_v01), then the whole 1.0 schema is made as for an
 *       empty database, after.sql copies the data and drops dmarc_v01, all in
 *       ONE transaction: a failure leaves the 0.1 database as it was.
 * Then, on every run, the group roles dmarc_writer and dmarc_reader
 * (sql/objects/90_roles.sql says what each may do).  Roles are cluster-wide
 * and creating one needs CREATEROLE, which the owner of a database often
 * lacks, so no SQL file creates them: one catalog query finds the missing
 * ones, those that exist without their grants (schema USAGE, SELECT on every
 * view for the reader, INSERT on every table for the writer: cheap, and
 * enough to see a role created after the schema was granted), and what this
 * login may do.  A missing role is created (NOLOGIN) when the login has
 * SUPERUSER or CREATEROLE; roles without grants get dmarc.grant_roles() when
 * the login has the rights of the owner of schema dmarc; both in one
 * transaction.  What is left (no CREATEROLE, not the owner) is not a failure:
 * the collector works without the groups, so migrate finishes (DC_OK) and
 * hands back ONE line in rep->roles_warning, with the CREATE ROLE statements
 * an administrator runs; the program logs it (library code does not print).
 * check-config reads the same state (dc_store_migration_status).
 * Last, in its own transaction (it takes ACCESS EXCLUSIVE locks),
 * dmarc.maintain_partitions() when the schema has it.
 *
 * Every check is a read first: an up-to-date database with its roles in
 * place needs no CREATE privilege (a collector may run `migrate` as
 * dmarc_writer).
 *
 * Deliberately not here: down-migrations, or SQL built from strings (the
 * files are run as they are, the bookkeeping with parameters).
 */
#include "dc_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_migrations.h"

#define STORE_MIGRATE_LOCK "7236828409416413025" /* pg_advisory_lock key ("dmarc-co") */
#define V01_FIRST          "001_schema.sql"      /* 0.1's first migration: only 0.1 records it */
#define V01_BEFORE         "0.1-before.sql"
#define V01_AFTER          "0.1-after.sql"

/* The bookkeeping tables, made by the program when missing (each string is
 * run as one script). */
static const char sql_schema_migrations[] =
	"CREATE TABLE IF NOT EXISTS dmarc.schema_migrations ("
	" name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
	"COMMENT ON TABLE dmarc.schema_migrations IS 'The files of sql/migrations/ applied to this database, "
	"once each (written by dmarc-collector migrate).';"
	"COMMENT ON COLUMN dmarc.schema_migrations.name IS 'File name, e.g. 001_tables.sql.';"
	"COMMENT ON COLUMN dmarc.schema_migrations.checksum IS 'SHA-256 (hex) of the file as applied: "
	"migrate refuses to run when the program''s file differs (an applied migration was edited).';"
	"COMMENT ON COLUMN dmarc.schema_migrations.applied_at IS 'When it was applied.';";
static const char sql_schema_objects[] =
	"CREATE TABLE IF NOT EXISTS dmarc.schema_objects ("
	" name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
	"COMMENT ON TABLE dmarc.schema_objects IS 'The files of sql/objects/ (functions, views, triggers) "
	"as last applied (written by dmarc-collector migrate).';"
	"COMMENT ON COLUMN dmarc.schema_objects.name IS 'File name, e.g. 30_classify.sql.';"
	"COMMENT ON COLUMN dmarc.schema_objects.checksum IS 'SHA-256 (hex) of the file as last applied: "
	"migrate applies the file again when the program''s differs; delete the row to force it.';"
	"COMMENT ON COLUMN dmarc.schema_objects.applied_at IS 'When it was last applied.';";

/* Where a file's bookkeeping goes. */
typedef enum sql_kind {
	KIND_MIGRATION, /* dmarc.schema_migrations */
	KIND_OBJECT,    /* dmarc.schema_objects */
} sql_kind;

static const char *const sql_record[] = {
	[KIND_MIGRATION] = "INSERT INTO dmarc.schema_migrations (name, checksum) VALUES ($1, $2)",
	[KIND_OBJECT] = "INSERT INTO dmarc.schema_objects (name, checksum) VALUES ($1, $2) "
			"ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()",
};
static const char *const sql_recorded[] = {
	[KIND_MIGRATION] = "SELECT name, checksum FROM dmarc.schema_migrations ORDER BY name",
	[KIND_OBJECT] = "SELECT name, checksum FROM dmarc.schema_objects ORDER BY name",
};
static const char *const kind_word[] = { [KIND_MIGRATION] = "migration", [KIND_OBJECT] = "object" };

/* Runs a script of many statements (simple query protocol: the SQL files,
 * which take no parameters).  Returns DC_OK, else store_fail's code with
 * "what: <server message>". */
static dc_code
run_script(dc_store *st, const char *sql, const char *what, dc_err *err)
{
	PGresult *res = PQexec(st->conn, sql);
	dc_code rc = DC_OK;

	/* a file of comments only (a placeholder) is an empty query */
	if (res == NULL ||
		(PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
			PQresultStatus(res) != PGRES_EMPTY_QUERY))
		rc = store_refused(store_fail(st, res, what, err), err);
	PQclear(res);
	return rc;
}

/* Sets *yes to the boolean of a one-value query without parameters. */
static dc_code
query_bool(dc_store *st, const char *sql, bool *yes, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;

	rc = store_exec(st, sql, 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res, "read the catalog", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	*yes = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return DC_OK;
}

/* The embedded file called name in list, or NULL. */
static const dc_sql_file *
find_file(const dc_sql_file *list, const char *name)
{
	for (const dc_sql_file *f = list; f->name != NULL; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* The row of res (name, checksum) recording name, or -1. */
static int
find_row(const PGresult *res, const char *name)
{
	for (int i = 0; i < PQntuples(res); i++)
		if (strcmp(PQgetvalue(res, i, 0), name) == 0)
			return i;
	return -1;
}

/* Reads the bookkeeping of kind into *out (owned by the caller: PQclear). */
static dc_code
read_recorded(dc_store *st, sql_kind kind, PGresult **out, dc_err *err)
{
	char what[64];

	snprintf(what, sizeof(what), "read dmarc.schema_%ss", kind_word[kind]);
	return store_refused(
		store_exec(st, sql_recorded[kind], 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, out, what, err),
		err);
}

/* Refuses (DC_EDBREFUSED) a database whose recorded migrations (rows of res)
 * disagree with the program's: one edited since it was applied, or one the
 * program does not have.  Sets *applied to the recorded ones it has. */
static dc_code
check_recorded(const PGresult *res, int *applied, dc_err *err)
{
	*applied = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *name = PQgetvalue(res, i, 0), *sum = PQgetvalue(res, i, 1);
		const dc_sql_file *f = find_file(dc_migrations, name);

		if (f == NULL)
			return dc_err_set(err, DC_EDBREFUSED,
				"dmarc.schema_migrations records migration %s, which this program does not have: "
				"a newer dmarc-collector migrated this database; run that version",
				name);
		if (strcmp(f->sha256, sum) != 0)
			return dc_err_set(err, DC_EDBREFUSED,
				"migration %s was edited after it was applied (SHA-256 %.12s... in "
				"dmarc.schema_migrations, %.12s... in this program): the database and this program "
				"disagree; restore the file as applied and put the change in a new migration",
				name, sum, f->sha256);
		(*applied)++;
	}
	return DC_OK;
}

/* Runs file f and records it (kind), inside the caller's transaction. */
static dc_code
apply_file(dc_store *st, sql_kind kind, const dc_sql_file *f, dc_err *err)
{
	const char *params[2] = { f->name, f->sha256 };
	char what[160];
	dc_code rc;

	snprintf(what, sizeof(what), "%s %s", kind_word[kind], f->name);
	if ((rc = run_script(st, f->sql, what, err)) != DC_OK)
		return rc;
	snprintf(what, sizeof(what), "record %s %s", kind_word[kind], f->name);
	return store_refused(
		store_exec(st, sql_record[kind], 2, params, NULL, NULL, 0, PGRES_COMMAND_OK, NULL, what, err),
		err);
}

/* Runs "SELECT fn" when the function exists (a schema without it is made by
 * an older set of objects) and, when only_if_allowed, when the session may
 * execute it; *value = its integer result, -1 when not called. */
static dc_code
call_if_exists(dc_store *st, const char *fn, bool only_if_allowed, int *value, dc_err *err)
{
	const char *params[1] = { fn };
	PGresult *res = NULL;
	char sql[96], what[96];
	dc_code rc;

	*value = -1;
	rc = store_exec(st,
		only_if_allowed ?
			"SELECT pg_catalog.to_regprocedure($1) IS NOT NULL AND "
			"pg_catalog.has_function_privilege(pg_catalog.to_regprocedure($1), 'EXECUTE')" :
			"SELECT pg_catalog.to_regprocedure($1) IS NOT NULL",
		1, params, NULL, NULL, 0, PGRES_TUPLES_OK, &res, "read the catalog", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		return DC_OK;
	}
	PQclear(res);
	res = NULL;
	snprintf(sql, sizeof(sql), "SELECT %s", fn); /* fn is one of our constants */
	snprintf(what, sizeof(what), "%s", fn);
	rc = store_exec(st, sql, 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res, what, err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	*value = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
	PQclear(res);
	return DC_OK;
}

/* Ends the transaction: COMMIT when rc is DC_OK, else ROLLBACK; returns rc
 * or COMMIT's failure. */
static dc_code
end_tx(dc_store *st, dc_code rc, dc_err *err)
{
	if (rc != DC_OK) {
		store_cmd_quiet(st, "ROLLBACK");
		return rc;
	}
	if ((rc = store_cmd(st, "COMMIT", err)) != DC_OK)
		return store_refused(rc, err);
	return DC_OK;
}

/* Converts a 0.1 database into 1.0 in one transaction (see the top). */
static dc_code
upgrade_v01(dc_store *st, dc_migrate_report *rep, dc_err *err)
{
	const dc_sql_file *before = find_file(dc_sql_upgrade, V01_BEFORE);
	const dc_sql_file *after = find_file(dc_sql_upgrade, V01_AFTER);
	dc_code rc;
	int ignored;

	if (before == NULL || after == NULL)
		return dc_err_set(err, DC_EDBREFUSED,
			"a 0.1 database, and this program has no sql/upgrade/%s",
			before == NULL ? V01_BEFORE : V01_AFTER);
	if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK)
		return store_refused(rc, err);
	rc = run_script(st, before->sql, "upgrade " V01_BEFORE, err);
	if (rc == DC_OK)
		rc = run_script(st, sql_schema_migrations, "create dmarc.schema_migrations", err);
	if (rc == DC_OK)
		rc = run_script(st, sql_schema_objects, "create dmarc.schema_objects", err);
	for (const dc_sql_file *f = dc_migrations; rc == DC_OK && f->name != NULL; f++)
		if ((rc = apply_file(st, KIND_MIGRATION, f, err)) == DC_OK)
			rep->migrations++;
	for (const dc_sql_file *f = dc_sql_objects; rc == DC_OK && f->name != NULL; f++)
		if ((rc = apply_file(st, KIND_OBJECT, f, err)) == DC_OK)
			rep->objects++;
	if (rc == DC_OK)
		rc = run_script(st, after->sql, "upgrade " V01_AFTER, err);
	if (rc == DC_OK)
		rc = call_if_exists(st, "dmarc.grant_roles()", false, &ignored, err);
	rc = end_tx(st, rc, err);
	if (rc != DC_OK) {
		char msg[DC_ERR_MSG_MAX];

		rep->migrations = rep->objects = 0;
		snprintf(msg, sizeof(msg), "%s", err->msg);
		/* a lost connection may have lost the COMMIT's answer only: the
		 * next run finds either database, 0.1 or 1.0, whole */
		dc_err_set(err, rc,
			rc == DC_EDB ?
				"upgrade from schema 0.1 interrupted (run migrate again): %s" :
				"upgrade from schema 0.1 failed, rolled back (the database is as it was): %s",
			msg);
		return rc;
	}
	rep->upgraded = true;
	return DC_OK;
}

/* Applies the migrations not yet recorded (each in its own transaction),
 * after refusing a database that disagrees with the program. */
static dc_code
apply_migrations(dc_store *st, dc_migrate_report *rep, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;
	int recorded;

	if ((rc = read_recorded(st, KIND_MIGRATION, &res, err)) != DC_OK)
		return rc;
	if ((rc = check_recorded(res, &recorded, err)) != DC_OK)
		goto out;
	for (const dc_sql_file *f = dc_migrations; f->name != NULL; f++) {
		if (find_row(res, f->name) >= 0)
			continue;
		if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK) {
			rc = store_refused(rc, err);
			goto out;
		}
		rc = end_tx(st, apply_file(st, KIND_MIGRATION, f, err), err);
		if (rc != DC_OK)
			goto out;
		rep->migrations++;
	}
out:
	PQclear(res);
	return rc;
}

/* Applies, in one transaction, every object whose recorded checksum differs
 * or is missing, then dmarc.grant_roles() when anything was applied at all
 * (migrations included). */
static dc_code
apply_objects(dc_store *st, dc_migrate_report *rep, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;
	int stale = 0, ignored;

	if ((rc = read_recorded(st, KIND_OBJECT, &res, err)) != DC_OK)
		return rc;
	for (const dc_sql_file *f = dc_sql_objects; f->name != NULL; f++) {
		int row = find_row(res, f->name);
		stale += row < 0 || strcmp(PQgetvalue(res, row, 1), f->sha256) != 0;
	}
	if (stale == 0 && rep->migrations == 0)
		goto out;
	if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK) {
		rc = store_refused(rc, err);
		goto out;
	}
	for (const dc_sql_file *f = dc_sql_objects; rc == DC_OK && f->name != NULL; f++) {
		int row = find_row(res, f->name);
		if (row >= 0 && strcmp(PQgetvalue(res, row, 1), f->sha256) == 0)
			continue;
		if ((rc = apply_file(st, KIND_OBJECT, f, err)) == DC_OK)
			rep->objects++;
	}
	if (rc == DC_OK)
		rc = call_if_exists(st, "dmarc.grant_roles()", false, &ignored, err);
	if ((rc = end_tx(st, rc, err)) != DC_OK)
		rep->objects = 0;
out:
	PQclear(res);
	return rc;
}

/* ---- the group roles ---- */

enum { ROLE_WRITER, ROLE_READER, N_ROLES };
static const char *const role_name[N_ROLES] = { "dmarc_writer", "dmarc_reader" };
/* A role made meanwhile by another database's migrate (the advisory lock is
 * per database) is no failure. */
static const char *const role_create[N_ROLES] = {
	"DO $$ BEGIN CREATE ROLE dmarc_writer NOLOGIN; "
	"EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
	"DO $$ BEGIN CREATE ROLE dmarc_reader NOLOGIN; "
	"EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
};

/* One row per group role, in role_name's order: the role's name, whether it
 * exists, whether it has its grants; then the login's name, whether it may
 * create roles (attributes are not inherited: its own), whether it has the
 * rights of the owner of schema dmarc (it may grant; true for a superuser).
 * Partitions are left out: they get no grants (the parents' are checked);
 * so is what someone else made in the schema (grant_roles could not grant it,
 * and every run would try). */
static const char sql_roles[] =
	"SELECT g.name, r.oid IS NOT NULL,"
	" r.oid IS NOT NULL AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE') AND NOT EXISTS ("
	"  SELECT FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND NOT c.relispartition AND"
	"  c.relowner = n.nspowner AND"
	"  CASE g.name WHEN 'dmarc_reader' THEN"
	"   c.relkind IN ('v', 'm') AND NOT pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT')"
	"  ELSE c.relkind IN ('r', 'p') AND NOT pg_catalog.has_table_privilege(r.oid, c.oid, 'INSERT') END),"
	" u.rolname, u.rolsuper OR u.rolcreaterole, pg_catalog.pg_has_role(u.oid, n.nspowner, 'USAGE')"
	" FROM unnest(ARRAY['dmarc_writer', 'dmarc_reader']) WITH ORDINALITY AS g(name, i)"
	" CROSS JOIN pg_catalog.pg_namespace n CROSS JOIN pg_catalog.pg_roles u"
	" LEFT JOIN pg_catalog.pg_roles r ON r.rolname = g.name"
	" WHERE n.nspname = 'dmarc' AND u.rolname = current_user ORDER BY g.i";

/* The group roles as the catalog has them (sql_roles). */
typedef struct role_state {
	bool missing[N_ROLES];   /* does not exist */
	bool ungranted[N_ROLES]; /* exists without its grants */
	char user[64];           /* current_user */
	bool may_create;         /* SUPERUSER or CREATEROLE */
	bool may_grant;          /* has the rights of the owner of schema dmarc */
} role_state;

static dc_code
roles_read(dc_store *st, role_state *rs, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;

	memset(rs, 0, sizeof(*rs));
	rc = store_exec(
		st, sql_roles, 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res, "read the group roles", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	if (PQntuples(res) != N_ROLES) { /* no schema dmarc: nothing to say yet */
		PQclear(res);
		return DC_OK;
	}
	for (int i = 0; i < N_ROLES; i++) {
		rs->missing[i] = strcmp(PQgetvalue(res, i, 1), "t") != 0;
		rs->ungranted[i] = !rs->missing[i] && strcmp(PQgetvalue(res, i, 2), "t") != 0;
	}
	snprintf(rs->user, sizeof(rs->user), "%s", PQgetvalue(res, 0, 3));
	rs->may_create = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
	rs->may_grant = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
	PQclear(res);
	return DC_OK;
}

/* The names flagged in which, "dmarc_writer, dmarc_reader", into buf; their
 * number. */
static int
role_list(const bool which[N_ROLES], char *buf, size_t size)
{
	int n = 0;

	buf[0] = '\0';
	for (int i = 0; i < N_ROLES; i++)
		if (which[i]) {
			size_t len = strlen(buf);
			snprintf(buf + len, size - len, "%s%s", n++ > 0 ? ", " : "", role_name[i]);
		}
	return n;
}

/* One line on what is not in place, and who fixes it how; "" when all is. */
static void
roles_message(const role_state *rs, char *buf, size_t size)
{
	char names[DC_ROLES_MAX], sql[128] = "";
	size_t len;
	int n;

	buf[0] = '\0';
	if ((n = role_list(rs->missing, names, sizeof(names))) > 0) {
		for (int i = 0; i < N_ROLES; i++)
			if (rs->missing[i]) {
				len = strlen(sql);
				snprintf(sql + len, sizeof(sql) - len, "%sCREATE ROLE %s NOLOGIN;",
					len > 0 ? " " : "", role_name[i]);
			}
		if (rs->may_create)
			snprintf(buf, size,
				"the group role%s %s %s missing; dmarc-collector migrate creates %s",
				n > 1 ? "s" : "", names, n > 1 ? "are" : "is", n > 1 ? "them" : "it");
		else
			snprintf(buf, size,
				"the group role%s %s %s missing and role \"%s\" may not create roles; as a "
				"superuser or a role with CREATEROLE run: %s then run dmarc-collector migrate again%s",
				n > 1 ? "s" : "", names, n > 1 ? "are" : "is", rs->user, sql,
				rs->may_grant ? "" : " as the owner of schema dmarc");
	}
	if ((n = role_list(rs->ungranted, names, sizeof(names))) > 0) {
		len = strlen(buf);
		if (rs->may_grant)
			snprintf(buf + len, size - len,
				"%sthe group role%s %s lack%s %s grants on schema dmarc; dmarc-collector "
				"migrate grants them",
				len > 0 ? "; " : "", n > 1 ? "s" : "", names, n > 1 ? "" : "s",
				n > 1 ? "their" : "its");
		else
			snprintf(buf + len, size - len,
				"%sthe group role%s %s lack%s %s grants on schema dmarc and role \"%s\" may "
				"not grant them; run dmarc-collector migrate as the owner of schema dmarc",
				len > 0 ? "; " : "", n > 1 ? "s" : "", names, n > 1 ? "" : "s",
				n > 1 ? "their" : "its", rs->user);
	}
}

/* Creates the missing group roles and grants those without their grants,
 * as far as this login may (one transaction); what is left goes into
 * rep->roles_warning.  Nothing in place to do: one catalog read. */
static dc_code
ensure_roles(dc_store *st, dc_migrate_report *rep, dc_err *err)
{
	role_state rs;
	bool create = false, grant = false;
	dc_code rc;
	int ignored;

	if ((rc = roles_read(st, &rs, err)) != DC_OK)
		return rc;
	for (int i = 0; i < N_ROLES; i++) {
		create |= rs.missing[i] && rs.may_create;
		grant |= rs.ungranted[i] && rs.may_grant;
	}
	grant |= create && rs.may_grant;
	if (create || grant) {
		if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK)
			return store_refused(rc, err);
		for (int i = 0; rc == DC_OK && create && i < N_ROLES; i++)
			if (rs.missing[i]) {
				char what[48];

				snprintf(what, sizeof(what), "create role %s", role_name[i]);
				rc = run_script(st, role_create[i], what, err);
			}
		if (rc == DC_OK && grant)
			rc = call_if_exists(st, "dmarc.grant_roles()", false, &ignored, err);
		if ((rc = end_tx(st, rc, err)) != DC_OK)
			return rc;
		if (create) {
			bool made[N_ROLES];

			for (int i = 0; i < N_ROLES; i++)
				made[i] = rs.missing[i];
			role_list(made, rep->roles_created, sizeof(rep->roles_created));
		}
		rep->roles_granted = grant;
		if ((rc = roles_read(st, &rs, err)) != DC_OK)
			return rc;
	}
	roles_message(&rs, rep->roles_warning, sizeof(rep->roles_warning));
	return DC_OK;
}

dc_code
dc_store_migrate_report(dc_store *st, dc_migrate_report *rep, dc_err *err)
{
	dc_code rc = DC_OK;
	bool locked = false, missing, v01 = false;
	dc_err scratch;

	if (err == NULL)
		err = &scratch;
	memset(rep, 0, sizeof(*rep));
	rep->partitions = -1;
	if (PQserverVersion(st->conn) < 150000)
		return dc_err_set(err, DC_EDBREFUSED, "PostgreSQL 15 or later is required (server is %d)",
			PQserverVersion(st->conn));
	/* two collectors may start at once: one migrates, the other waits */
	rc = store_exec(st, "SELECT pg_catalog.pg_advisory_lock(" STORE_MIGRATE_LOCK ")", 0, NULL, NULL, NULL,
		0, PGRES_TUPLES_OK, NULL, "take the migration lock", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	locked = true;

	if ((rc = query_bool(st, "SELECT pg_catalog.to_regnamespace('dmarc') IS NULL", &missing, err)) !=
		DC_OK)
		goto out;
	if (missing &&
		(rc = store_refused(store_cmd(st, "CREATE SCHEMA IF NOT EXISTS dmarc", err), err)) != DC_OK)
		goto out;
	if ((rc = query_bool(st, "SELECT pg_catalog.to_regclass('dmarc.schema_migrations') IS NULL", &missing,
		     err)) != DC_OK)
		goto out;
	if (!missing &&
		(rc = query_bool(st,
			 "SELECT EXISTS (SELECT FROM dmarc.schema_migrations WHERE name = '" V01_FIRST "')",
			 &v01, err)) != DC_OK)
		goto out;
	if (v01) {
		if ((rc = upgrade_v01(st, rep, err)) != DC_OK)
			goto out;
	} else {
		if (missing &&
			(rc = run_script(st, sql_schema_migrations, "create dmarc.schema_migrations", err)) !=
				DC_OK)
			goto out;
		if ((rc = query_bool(st, "SELECT pg_catalog.to_regclass('dmarc.schema_objects') IS NULL",
			     &missing, err)) != DC_OK)
			goto out;
		if (missing &&
			(rc = run_script(st, sql_schema_objects, "create dmarc.schema_objects", err)) !=
				DC_OK)
			goto out;
		if ((rc = apply_migrations(st, rep, err)) != DC_OK)
			goto out;
		if ((rc = apply_objects(st, rep, err)) != DC_OK)
			goto out;
	}
	if ((rc = ensure_roles(st, rep, err)) != DC_OK)
		goto out;
	/* its own transaction (autocommit): it locks the partitioned tables.
	 * Skipped for a session that may not run it (a reader checking an
	 * up-to-date schema): poll and import make partitions as they go. */
	rc = call_if_exists(st, "dmarc.maintain_partitions()", true, &rep->partitions, err);
out:
	if (locked)
		store_cmd_quiet(st, "SELECT pg_catalog.pg_advisory_unlock(" STORE_MIGRATE_LOCK ")");
	return rc;
}

dc_code
dc_store_migrate(dc_store *st, int *applied, dc_err *err)
{
	dc_migrate_report rep;
	dc_code rc = dc_store_migrate_report(st, &rep, err);

	*applied = rep.migrations + rep.objects;
	return rc;
}

void
dc_store_migration_status(dc_store *st, dc_schema_status *out)
{
	PGresult *r = NULL;
	dc_err err;

	memset(out, 0, sizeof(*out));
	out->migrations_applied = -1;
	out->objects_stale = -1;
	for (const dc_sql_file *f = dc_migrations; f->name != NULL; f++)
		out->migrations_known++;
	for (const dc_sql_file *f = dc_sql_objects; f->name != NULL; f++)
		out->objects_known++;
	/* any failure reads as "no schema yet": check-config only reports it */
	if (dc_pg_exec(st->conn,
		    "SELECT EXISTS (SELECT FROM dmarc.schema_migrations WHERE name = '" V01_FIRST "')", 0,
		    NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 0, &r, "read dmarc.schema_migrations",
		    NULL) != DC_OK)
		return;
	out->v01 = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	r = NULL;
	if (out->v01)
		return;
	if (dc_pg_exec(st->conn, sql_recorded[KIND_MIGRATION], 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 0, &r,
		    "read dmarc.schema_migrations", NULL) != DC_OK)
		return;
	dc_err_clear(&err);
	if (check_recorded(r, &out->migrations_applied, &err) != DC_OK)
		snprintf(out->conflict, sizeof(out->conflict), "%s", err.msg);
	PQclear(r);
	r = NULL;
	out->objects_stale = out->objects_known;
	if (dc_pg_exec(st->conn, sql_recorded[KIND_OBJECT], 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 0, &r,
		    "read dmarc.schema_objects", NULL) != DC_OK)
		return;
	for (const dc_sql_file *f = dc_sql_objects; f->name != NULL; f++) {
		int row = find_row(r, f->name);
		if (row >= 0 && strcmp(PQgetvalue(r, row, 1), f->sha256) == 0)
			out->objects_stale--;
	}
	PQclear(r);
	{
		role_state rs;

		if (roles_read(st, &rs, &err) != DC_OK)
			return;
		role_list(rs.missing, out->roles_missing, sizeof(out->roles_missing));
		role_list(rs.ungranted, out->roles_ungranted, sizeof(out->roles_ungranted));
		roles_message(&rs, out->roles_warning, sizeof(out->roles_warning));
	}
}

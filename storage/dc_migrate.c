/*
 * dc_migrate.c - schema migrations: the sql/NNN_*.sql files compiled into
 * the program (dc_migrations.h), applied in order, each in its own
 * transaction and recorded in dmarc.schema_migrations, under an advisory
 * lock so that two collectors starting at once do not both migrate.
 * Also the read-only status that `check-config` reports.
 *
 * Deliberately not here: down-migrations, or editing an applied file (a
 * change is always a new numbered file).
 */
#include "dc_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_migrations.h"

#define STORE_MIGRATE_LOCK "7236828409416413025" /* pg_advisory_lock key ("dmarc-co") */

/* Applies one migration in its own transaction unless already recorded;
 * sets *done when it ran. */
static dc_code
migrate_one(dc_store *st, const dc_migration *m, bool *done, dc_err *err)
{
	const char *params[1] = { m->name };
	PGresult *res = NULL;
	dc_code rc;
	char what[128];

	*done = false;
	rc = store_exec(st, "SELECT 1 FROM dmarc.schema_migrations WHERE name = $1", 1, params, NULL, NULL, 0,
		PGRES_TUPLES_OK, &res, "read dmarc.schema_migrations", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	if (PQntuples(res) > 0) {
		PQclear(res);
		return DC_OK;
	}
	PQclear(res);

	if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK)
		return store_refused(rc, err);
	/* the file may hold many statements: simple query protocol */
	res = PQexec(st->conn, m->sql);
	if (res == NULL ||
		(PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
		snprintf(what, sizeof(what), "migration %s", m->name);
		rc = store_fail(st, res, what, err);
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	rc = store_exec(st, "INSERT INTO dmarc.schema_migrations (name, applied_at) VALUES ($1, now())", 1,
		params, NULL, NULL, 0, PGRES_COMMAND_OK, NULL, "record migration", err);
	if (rc != DC_OK)
		goto fail;
	if ((rc = store_cmd(st, "COMMIT", err)) != DC_OK)
		return store_refused(rc, err);
	*done = true;
	return DC_OK;
fail:
	store_cmd_quiet(st, "ROLLBACK");
	return store_refused(rc, err);
}

dc_code
dc_store_migrate(dc_store *st, int *applied, dc_err *err)
{
	/* each runs only when its object is missing, so an up-to-date database
	 * needs no CREATE privilege (a collector may run as dmarc_writer) */
	static const struct {
		const char *missing, *create;
	} setup[] = {
		{ "SELECT pg_catalog.to_regnamespace('dmarc') IS NULL", "CREATE SCHEMA IF NOT EXISTS dmarc" },
		{ "SELECT pg_catalog.to_regclass('dmarc.schema_migrations') IS NULL",
			"CREATE TABLE IF NOT EXISTS dmarc.schema_migrations ("
			" name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())" },
	};
	dc_code rc = DC_OK;
	bool locked = false;
	dc_err scratch;

	if (err == NULL)
		err = &scratch;
	*applied = 0;
	if (PQserverVersion(st->conn) < 150000)
		return dc_err_set(err, DC_EDBREFUSED, "PostgreSQL 15 or later is required (server is %d)",
			PQserverVersion(st->conn));
	/* two collectors may start at once: one migrates, the other waits */
	rc = store_exec(st, "SELECT pg_catalog.pg_advisory_lock(" STORE_MIGRATE_LOCK ")", 0, NULL, NULL, NULL,
		0, PGRES_TUPLES_OK, NULL, "take the migration lock", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	locked = true;
	for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
		PGresult *res = NULL;
		bool missing;
		rc = store_exec(st, setup[i].missing, 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res,
			"read the catalog", err);
		if (rc != DC_OK) {
			rc = store_refused(rc, err);
			goto out;
		}
		missing = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (missing && (rc = store_cmd(st, setup[i].create, err)) != DC_OK) {
			rc = store_refused(rc, err);
			goto out;
		}
	}
	for (const dc_migration *m = dc_migrations; m->name != NULL; m++) {
		bool done;
		if ((rc = migrate_one(st, m, &done, err)) != DC_OK)
			goto out;
		*applied += done;
	}
out:
	if (locked)
		store_cmd_quiet(st, "SELECT pg_catalog.pg_advisory_unlock(" STORE_MIGRATE_LOCK ")");
	return rc;
}

void
dc_store_migration_status(dc_store *st, int *applied, int *known)
{
	PGresult *r = NULL;

	*known = 0;
	*applied = -1;
	for (const dc_migration *m = dc_migrations; m->name != NULL; m++)
		(*known)++;
	/* any failure reads as "no schema yet": check-config only reports it */
	if (dc_pg_exec(st->conn, "SELECT count(*) FROM dmarc.schema_migrations", 0, NULL, NULL, NULL, 0,
		    PGRES_TUPLES_OK, 0, &r, "read dmarc.schema_migrations", NULL) == DC_OK &&
		PQntuples(r) == 1)
		*applied = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
}

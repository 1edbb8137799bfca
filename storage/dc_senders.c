/*
 * dc_senders.c - the sender map: `senders load` and the local overrides
 * (see dc_senders.h).
 *
 * A load is one transaction:
 *   1. LOCK dmarc.sender_map against other writers (readers go on), so two
 *      loads of one source cannot interleave their DELETE and INSERT;
 *   2. the file's bytes go by COPY ... (FORMAT csv, HEADER MATCH) into a
 *      temporary table: PostgreSQL parses the quoting, the line endings and
 *      the UTF-8, and checks the header is base_reverse_dns,name,type.  A
 *      failure names the line from the error's CONTEXT ("COPY ..., line N");
 *   3. the rows are checked (domain and name not empty, no control
 *      characters, fields up to DC_SENDERS_MAX_FIELD bytes): the first bad
 *      row by file order is reported.  Its line number is exact, because
 *      every row before it passed, so none of them spans lines;
 *   4. the counts for the summary, then DELETE the source's rows and INSERT
 *      one row per normalised domain (the last one of the file).
 * Any failure rolls everything back: the map is as it was.
 */
#include "dc_senders.h"
#include "dc_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_TABLE "pg_temp.dc_sender_load"

static const char SQL_LOCK[] = "LOCK TABLE dmarc.sender_map IN SHARE ROW EXCLUSIVE MODE";

static const char SQL_TEMP[] = "CREATE TEMP TABLE dc_sender_load (base_reverse_dns text, name text, type text,"
			       " n bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DROP";

static const char SQL_COPY[] = "COPY " LOAD_TABLE " (base_reverse_dns, name, type)"
			       " FROM STDIN WITH (FORMAT csv, HEADER MATCH)";

/* The first bad row in file order: its number and what is wrong with it. */
static const char SQL_CHECK[] =
	"SELECT n, why FROM (SELECT n, CASE"
	"  WHEN dmarc.dns_name_norm(base_reverse_dns) IS NULL THEN 'empty base_reverse_dns'"
	"  WHEN base_reverse_dns ~ '[[:cntrl:]]' OR btrim(base_reverse_dns) ~ '[[:space:]]'"
	"   THEN 'base_reverse_dns holds a space or control character'"
	"  WHEN name IS NULL OR btrim(name) = '' THEN 'empty name'"
	"  WHEN name ~ '[[:cntrl:]]' THEN 'name holds a control character'"
	"  WHEN type ~ '[[:cntrl:]]' THEN 'type holds a control character'"
	"  WHEN octet_length(base_reverse_dns) > $1::int OR octet_length(name) > $1::int"
	"   OR octet_length(type) > $1::int THEN 'a field longer than ' || $1 || ' bytes'"
	"  END AS why FROM " LOAD_TABLE ") c WHERE why IS NOT NULL ORDER BY n LIMIT 1";

/* rows, distinct domains, of those the ones the source had, the source's
 * domains the file no longer has. */
static const char SQL_COUNT[] =
	"WITH f AS (SELECT DISTINCT dmarc.dns_name_norm(base_reverse_dns) AS d FROM " LOAD_TABLE "),"
	" o AS (SELECT base_domain AS d FROM dmarc.sender_map WHERE source = $1)"
	" SELECT (SELECT count(*) FROM " LOAD_TABLE "), (SELECT count(*) FROM f),"
	"  (SELECT count(*) FROM f JOIN o USING (d)),"
	"  (SELECT count(*) FROM o WHERE NOT EXISTS (SELECT 1 FROM f WHERE f.d = o.d))";

static const char SQL_DELETE[] = "DELETE FROM dmarc.sender_map WHERE source = $1";

static const char SQL_INSERT[] =
	"INSERT INTO dmarc.sender_map (base_domain, name, type, source)"
	" SELECT DISTINCT ON (d) d, btrim(name), btrim(coalesce(type, '')), $1 FROM ("
	"  SELECT dmarc.dns_name_norm(base_reverse_dns) AS d, name, type, n FROM " LOAD_TABLE ") x"
	" ORDER BY d, n DESC";

static const char SQL_SET[] = "INSERT INTO dmarc.sender_map (base_domain, name, type, source)"
			      " VALUES (dmarc.dns_name_norm($1), btrim($2), btrim($3), 'local')"
			      " ON CONFLICT (base_domain, source) DO UPDATE"
			      " SET name = EXCLUDED.name, type = EXCLUDED.type, loaded_at = now()"
			      " RETURNING xmax <> 0";

static const char SQL_UNSET[] =
	"DELETE FROM dmarc.sender_map WHERE base_domain = dmarc.dns_name_norm($1) AND source = 'local'";

/* True when s holds a byte below 0x20 or 0x7f (or, with no_space, a space). */
static bool
has_control(const char *s, bool no_space)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || (no_space && *p == ' '))
			return true;
	return false;
}

/* True when s has a byte other than a space. */
static bool
has_text(const char *s)
{
	return s[strspn(s, " ")] != '\0';
}

/* The line number in a COPY error's CONTEXT ("COPY t, line 5: ..."), 0 when
 * there is none. */
static long
copy_line(const PGresult *res)
{
	const char *ctx = res != NULL ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
	const char *p = ctx != NULL ? strstr(ctx, ", line ") : NULL;

	return p != NULL ? strtol(p + 7, NULL, 10) : 0;
}

/* Sends csv into the COPY and reads its result.  A data error (SQLSTATE
 * class 22: quoting, encoding, header, columns) becomes DC_EFORMAT with
 * "line N: message". */
static dc_code
copy_csv(PGconn *conn, const char *csv, size_t len, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc = DC_OK;
	bool first = true;

	if ((rc = dc_pg_exec(conn, SQL_COPY, 0, NULL, NULL, NULL, 0, PGRES_COPY_IN, 0, NULL,
		     "senders: starting the COPY", err)) != DC_OK)
		return rc;
	for (size_t off = 0; off < len;) {
		size_t n = len - off > STORE_COPY_PIECE ? STORE_COPY_PIECE : len - off;
		if (PQputCopyData(conn, csv + off, (int)n) != 1)
			break; /* the result below says why */
		off += n;
	}
	if (PQputCopyEnd(conn, NULL) != 1)
		rc = dc_pg_fail(conn, NULL, "senders: sending the file", err);
	while ((res = PQgetResult(conn)) != NULL) {
		if (first && rc == DC_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			if (state != NULL && strncmp(state, "22", 2) == 0 &&
				PQstatus(conn) == CONNECTION_OK) {
				long line = copy_line(res);
				/* PostgreSQL names the line where the file ended */
				const char *hint = strcmp(state, "22P04") == 0 && msg != NULL &&
						strstr(msg, "unterminated") != NULL ?
					" (a quote opened on this line or an earlier one is never closed)" :
					"";
				if (line > 0)
					rc = dc_err_set(err, DC_EFORMAT, "line %ld: %s%s", line,
						msg != NULL ? msg : "unreadable", hint);
				else
					rc = dc_err_set(
						err, DC_EFORMAT, "%s", msg != NULL ? msg : "unreadable");
			} else {
				rc = dc_pg_fail(conn, res, "senders: reading the file", err);
			}
		}
		first = false;
		PQclear(res);
		if (PQstatus(conn) == CONNECTION_BAD)
			break;
	}
	if (first && rc == DC_OK)
		rc = dc_pg_fail(conn, NULL, "senders: reading the file", err);
	return rc;
}

/* The rows' checks (step 3): DC_EFORMAT naming the first bad row's line. */
static dc_code
check_rows(PGconn *conn, dc_err *err)
{
	char max[16];
	const char *v[1] = { max };
	PGresult *res = NULL;
	dc_code rc;

	snprintf(max, sizeof max, "%d", DC_SENDERS_MAX_FIELD);
	if ((rc = dc_pg_exec(conn, SQL_CHECK, 1, v, NULL, NULL, 0, PGRES_TUPLES_OK, 0, &res,
		     "senders: checking the rows", err)) != DC_OK)
		return rc;
	if (PQntuples(res) > 0) /* the header is line 1, row n is line n + 1 */
		rc = dc_err_set(err, DC_EFORMAT, "line %lld: %s",
			strtoll(PQgetvalue(res, 0, 0), NULL, 10) + 1, PQgetvalue(res, 0, 1));
	PQclear(res);
	return rc;
}

/* Step 4's counts into s. */
static dc_code
count_rows(PGconn *conn, const char *source, dc_senders_load_stats *s, dc_err *err)
{
	const char *v[1] = { source };
	PGresult *res = NULL;
	dc_code rc;

	if ((rc = dc_pg_exec(conn, SQL_COUNT, 1, v, NULL, NULL, 0, PGRES_TUPLES_OK, 0, &res,
		     "senders: counting the rows", err)) != DC_OK)
		return rc;
	if (PQntuples(res) != 1 || PQnfields(res) != 4) {
		PQclear(res);
		return dc_err_set(err, DC_EDB, "senders: counting the rows: unexpected result");
	}
	s->rows = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	s->domains = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	s->known = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
	s->removed = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
	s->duplicates = s->rows - s->domains;
	s->added = s->domains - s->known;
	PQclear(res);
	return DC_OK;
}

dc_code
dc_senders_load(
	dc_store *st, const char *source, const char *csv, size_t len, dc_senders_load_stats *s, dc_err *err)
{
	PGconn *conn = st->conn;
	const char *v[1] = { source };
	dc_code rc;

	memset(s, 0, sizeof *s);
	if (source[0] == '\0' || strlen(source) > DC_SENDERS_MAX_SOURCE || has_control(source, false))
		return dc_err_set(err, DC_EUSAGE,
			"senders: the source name must be 1..%d bytes without control characters",
			DC_SENDERS_MAX_SOURCE);
	if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE)
		return dc_err_set(err, DC_EDB, "senders: connection not ready (or inside a transaction)");
	if ((rc = dc_pg_exec(conn, "BEGIN", 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, 0, NULL,
		     "senders: begin", err)) != DC_OK)
		return rc;
	if ((rc = dc_pg_exec(conn, SQL_LOCK, 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, DC_PG_SCHEMA, NULL,
		     "senders: locking dmarc.sender_map", err)) != DC_OK)
		goto out;
	if ((rc = dc_pg_exec(conn, SQL_TEMP, 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, 0, NULL,
		     "senders: creating the load table", err)) != DC_OK)
		goto out;
	if ((rc = copy_csv(conn, csv, len, err)) != DC_OK)
		goto out;
	if ((rc = check_rows(conn, err)) != DC_OK)
		goto out;
	if ((rc = count_rows(conn, source, s, err)) != DC_OK)
		goto out;
	if (s->rows == 0) {
		rc = dc_err_set(err, DC_EFORMAT, "no rows after the header");
		goto out;
	}
	if ((rc = dc_pg_exec(conn, SQL_DELETE, 1, v, NULL, NULL, 0, PGRES_COMMAND_OK, 0, NULL,
		     "senders: deleting the source's rows", err)) != DC_OK)
		goto out;
	if ((rc = dc_pg_exec(conn, SQL_INSERT, 1, v, NULL, NULL, 0, PGRES_COMMAND_OK, 0, NULL,
		     "senders: storing the rows", err)) != DC_OK)
		goto out;
	rc = dc_pg_exec(
		conn, "COMMIT", 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, 0, NULL, "senders: commit", err);
out:
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
	if (rc != DC_OK)
		memset(s, 0, sizeof *s);
	return rc;
}

dc_code
dc_senders_set(
	dc_store *st, const char *domain, const char *name, const char *type, int *replaced, dc_err *err)
{
	const char *v[3] = { domain, name, type };
	PGresult *res = NULL;
	dc_code rc;

	*replaced = 0;
	if (!has_text(domain) || has_control(domain, true))
		return dc_err_set(err, DC_EFORMAT, "senders: the domain must be a DNS name, without spaces");
	if (!has_text(name) || has_control(name, false) || has_control(type, false))
		return dc_err_set(
			err, DC_EFORMAT, "senders: the name must not be empty; no control characters");
	if (strlen(domain) > DC_SENDERS_MAX_FIELD || strlen(name) > DC_SENDERS_MAX_FIELD ||
		strlen(type) > DC_SENDERS_MAX_FIELD)
		return dc_err_set(
			err, DC_EFORMAT, "senders: a field longer than %d bytes", DC_SENDERS_MAX_FIELD);
	if ((rc = dc_pg_exec(st->conn, SQL_SET, 3, v, NULL, NULL, 0, PGRES_TUPLES_OK, DC_PG_SCHEMA, &res,
		     "senders: storing the override", err)) != DC_OK)
		return rc;
	*replaced = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return DC_OK;
}

dc_code
dc_senders_unset(dc_store *st, const char *domain, int *found, dc_err *err)
{
	const char *v[1] = { domain };
	PGresult *res = NULL;
	dc_code rc;

	*found = 0;
	if ((rc = dc_pg_exec(st->conn, SQL_UNSET, 1, v, NULL, NULL, 0, PGRES_COMMAND_OK, DC_PG_SCHEMA, &res,
		     "senders: deleting the override", err)) != DC_OK)
		return rc;
	*found = strtoull(PQcmdTuples(res), NULL, 10) > 0;
	PQclear(res);
	return DC_OK;
}

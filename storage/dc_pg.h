/*
 * dc_pg.h - the one place that turns a libpq failure into a dc_code.
 *
 * Two outcomes matter to the program (SPEC section 4, exit statuses):
 *   DC_EDB         the database could not be reached, went away, or failed in
 *                  a way that passes: running again later can help (75);
 *   DC_EDBREFUSED  the server answered and refused, for a reason that stays
 *                  until an administrator acts (privilege, missing object,
 *                  login refused, database missing, server too old) (2).
 * Data a server rejects inside a report (SQLSTATE classes 22, 23, 54000) is
 * the report's problem, not the database's; dc_store decides that before it
 * asks here.
 *
 * dc_pg_exec and dc_pg_check are the one way storage turns a result into a
 * code: the expected PGRES_* or dc_pg_fail, PQclear on every path.
 *
 * Deliberately not here: retries, logging, or any statement of our own.
 */
#ifndef DC_PG_H
#define DC_PG_H

#include <libpq-fe.h>

#include <stdbool.h>
#include <stdint.h>

#include "dc_buf.h"
#include "dc_error.h"
#include "dc_libversion.h"

/* Pure: DC_EDB for a SQLSTATE that may pass (NULL or malformed: no answer
 * from the server; classes 08, 53, 57P01-57P03, 57P05, 57014, 40001, 40P01,
 * 40003, 55P03, 58000, 58030, 25P03), DC_EDBREFUSED for any other. */
dc_code dc_pg_code(const char *sqlstate);

/* Sets err for a statement that failed on conn (res may be NULL) and
 * returns its code: DC_EDB when conn is no longer usable or there is no
 * SQLSTATE, else dc_pg_code.  The message is "what: <server's primary
 * message> (SQLSTATE xxxxx)". */
dc_code dc_pg_fail(PGconn *conn, const PGresult *res, const char *what, dc_err *err);

/* Flags of dc_pg_fail_as, dc_pg_check and dc_pg_exec: failures that mean
 * more than dc_pg_fail says. */
enum {
	DC_PG_DATA = 1 << 0,   /* SQLSTATE class 22, 23 or 54000 on a live connection:
	                        * DC_ESCHEMA (the server rejected a value of the input) */
	DC_PG_SCHEMA = 1 << 1, /* 42P01, no such table: DC_ECONFIG, "what: <message>
	                        * (run `dmarc-collector migrate` first)" */
};

/* dc_pg_fail, then as flags say (above).  Returns the code set in err. */
dc_code dc_pg_fail_as(PGconn *conn, const PGresult *res, unsigned flags, const char *what, dc_err *err);

/* Checks res (consumed; may be NULL) against want.  On DC_OK *out (when out
 * is not NULL) holds res for the caller to PQclear, else it is cleared.  On
 * failure res is cleared, err set by dc_pg_fail_as, and state (may be NULL;
 * 6 bytes) gets res's SQLSTATE ("" when there is none). */
dc_code dc_pg_check(PGconn *conn, PGresult *res, ExecStatusType want, unsigned flags, PGresult **out,
	char *state, const char *what, dc_err *err) DC_WUR;

/* PQexecParams(conn, sql, n, NULL, vals, lens, fmts, result_fmt) checked by
 * dc_pg_check (no state).  lens and fmts may be NULL (text parameters). */
dc_code dc_pg_exec(PGconn *conn, const char *sql, int n, const char *const *vals, const int *lens,
	const int *fmts, int result_fmt, ExecStatusType want, unsigned flags, PGresult **out,
	const char *what, dc_err *err) DC_WUR;

/* Connects like PQconnectdbParams(keys, vals, 1); connect_timeout bounds
 * the wait for each host, and a host that does not answer in time ends the
 * attempt (DC_EDB).  On DC_OK *out is the connection, owned by the caller
 * (PQfinish).  On failure *out is NULL and err says why: DC_EDBREFUSED when
 * a server answered with a SQLSTATE that is not transient (28P01 wrong
 * password, 28000 no pg_hba.conf entry, 3D000 no such database ...) or asked
 * for a password that was not given, DC_EDB when none could be reached. */
dc_code dc_pg_connect(const char *const *keys, const char *const *vals, PGconn **out, dc_err *err) DC_WUR;

/* Array literals in PostgreSQL's text syntax ('{"a",NULL,"b\\"c"}'), built
 * in a dc_buf and sent as one text parameter (never spliced into SQL).
 * dc_pg_array_begin empties b and writes "{"; each _text element is NULL or
 * the value double-quoted with '"' and '\' escaped (_bool: t or f); dc_pg_array_end writes
 * "}".  All return the buffer's (sticky) code: DC_OK, DC_ENOMEM or
 * DC_ETOOLONG past b's maximum. */
dc_code dc_pg_array_begin(dc_buf *b);
dc_code dc_pg_array_text(dc_buf *b, const char *v);
dc_code dc_pg_array_int(dc_buf *b, int64_t v);
dc_code dc_pg_array_bool(dc_buf *b, bool v);
dc_code dc_pg_array_end(dc_buf *b);

/* libpq as loaded (PQlibVersion: 150010 -> "15.10"); dc_libversion.h. */
size_t dc_pg_libversions(dc_libversion *v, size_t max);

#endif

/*
 * dc_pg.c - libpq failures to dc_codes (see dc_pg.h), and a connect that
 * keeps the server's SQLSTATE.
 *
 * libpq has no call that returns the SQLSTATE of a failed connection (the
 * error result stays inside the PGconn).  In verbose mode it writes the
 * SQLSTATE into the error message ("FATAL:  28P01: password ..."), in a
 * format that does not depend on the server's language, so dc_pg_connect
 * connects step by step (PQconnectStartParams, PQconnectPoll) in that mode
 * and reads the code back from the message; the connection goes back to the
 * default verbosity once it is up.
 *
 * Also here: the one check of a statement's result (dc_pg_check, dc_pg_exec)
 * and the array-literal encoder.
 */
#include "dc_pg.h"

#include <inttypes.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG_LINE_MAX        300     /* one line of a libpq message, as we quote it */
#define PG_UNDEFINED_TABLE "42P01" /* SQLSTATE: no such table */

dc_code
dc_pg_code(const char *sqlstate)
{
	/* prefixes of the SQLSTATEs that pass: connection exceptions, resources
	 * (disk full, too many connections), shutdown and restart, statement
	 * and lock timeouts, serialization failures and deadlocks, I/O errors */
	static const char *const transient[] = {
		"08",
		"53",
		"57P01",
		"57P02",
		"57P03",
		"57P05",
		"57014",
		"40001",
		"40P01",
		"40003",
		"55P03",
		"58000",
		"58030",
		"25P03",
	};

	if (sqlstate == NULL || strlen(sqlstate) != 5)
		return DC_EDB;
	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
		if (strncmp(sqlstate, transient[i], strlen(transient[i])) == 0)
			return DC_EDB;
	return DC_EDBREFUSED;
}

dc_code
dc_pg_fail(PGconn *conn, const PGresult *res, const char *what, dc_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	dc_code code = dc_pg_code(state);

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		code = DC_EDB;
	if (msg == NULL && conn != NULL)
		msg = PQerrorMessage(conn);
	if (msg == NULL || *msg == '\0' || *msg == '\n')
		msg = "no answer from the server";
	if (state != NULL)
		return dc_err_set(
			err, code, "%s: %.*s (SQLSTATE %s)", what, (int)strcspn(msg, "\n"), msg, state);
	return dc_err_set(err, code, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

dc_code
dc_pg_fail_as(PGconn *conn, const PGresult *res, unsigned flags, const char *what, dc_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	dc_code code = dc_pg_fail(conn, res, what, err);

	if ((flags & DC_PG_DATA) && state != NULL && PQstatus(conn) == CONNECTION_OK &&
		(strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
			strcmp(state, "54000") == 0)) {
		code = DC_ESCHEMA;
		if (err != NULL)
			err->code = code;
	}
	if ((flags & DC_PG_SCHEMA) && code == DC_EDBREFUSED && strcmp(state, PG_UNDEFINED_TABLE) == 0) {
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		code = dc_err_set(err, DC_ECONFIG, "%s: %s (run `dmarc-collector migrate` first)", what,
			m ? m : "no such table");
	}
	return code;
}

dc_code
dc_pg_check(PGconn *conn, PGresult *res, ExecStatusType want, unsigned flags, PGresult **out, char *state,
	const char *what, dc_err *err)
{
	dc_code rc;

	if (out)
		*out = NULL;
	if (res == NULL || PQresultStatus(res) != want) {
		if (state != NULL) {
			const char *code = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
			snprintf(state, 6, "%s", code != NULL ? code : "");
		}
		rc = dc_pg_fail_as(conn, res, flags, what, err);
		PQclear(res);
		return rc;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return DC_OK;
}

dc_code
dc_pg_exec(PGconn *conn, const char *sql, int n, const char *const *vals, const int *lens, const int *fmts,
	int result_fmt, ExecStatusType want, unsigned flags, PGresult **out, const char *what, dc_err *err)
{
	return dc_pg_check(conn, PQexecParams(conn, sql, n, NULL, vals, lens, fmts, result_fmt), want, flags,
		out, NULL, what, err);
}

/* True when p starts a verbose-mode SQLSTATE: five digits or capitals and ": ". */
static bool
is_state_at(const char *p)
{
	for (int i = 0; i < 5; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'Z')))
			return false;
	return p[5] == ':' && p[6] == ' ';
}

/* Sets err for a failed connection from libpq's verbose message m: the last
 * server answer's SQLSTATE decides the code (none: DC_EDB); the message is
 * the line that holds it (else the first line) with the code moved to the end. */
static dc_code
connect_fail(PGconn *conn, dc_err *err)
{
	const char *m = conn ? PQerrorMessage(conn) : "out of memory";
	const char *line = m, *at = NULL;
	char state[6] = "";
	char text[PG_LINE_MAX];
	dc_code code;

	/* "<severity>:  XXXXX: ": the severity is translated, the layout is not */
	for (const char *p = strstr(m, ":  "); p != NULL; p = strstr(p + 1, ":  ")) {
		if (is_state_at(p + 3)) {
			at = p + 3;
			memcpy(state, at, 5);
		}
	}
	if (at != NULL) {
		line = at;
		while (line > m && line[-1] != '\n')
			line--;
		snprintf(text, sizeof(text), "%.*s%.*s", (int)(at - line), line, (int)strcspn(at + 7, "\n"),
			at + 7);
	} else {
		snprintf(text, sizeof(text), "%.*s", (int)strcspn(m, "\n"), m);
	}
	code = dc_pg_code(state[0] ? state : NULL);
	if (conn != NULL && PQconnectionNeedsPassword(conn))
		code = DC_EDBREFUSED; /* asked for a password that was not given */
	if (state[0])
		return dc_err_set(err, code, "cannot connect to the database: %s (SQLSTATE %s)", text, state);
	return dc_err_set(err, code, "cannot connect to the database: %s",
		text[0] ? text : "no answer from the server");
}

/* connect_timeout in seconds from conn's options (libpq's rule: at least 2), 0 for none. */
static int
connect_timeout(PGconn *conn)
{
	PQconninfoOption *opts = PQconninfo(conn);
	int t = 0;

	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL && o->val[0] != '\0')
			t = atoi(o->val);
	PQconninfoFree(opts);
	return t <= 0 ? 0 : t < 2 ? 2 : t;
}

dc_code
dc_pg_connect(const char *const *keys, const char *const *vals, PGconn **out, dc_err *err)
{
	PGconn *conn;
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	char host[256] = "";
	time_t deadline = 0;
	int timeout;
	dc_code rc = DC_OK;

	*out = NULL;
	conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
	timeout = connect_timeout(conn);
	if (PQstatus(conn) == CONNECTION_BAD)
		ps = PGRES_POLLING_FAILED;
	while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
		struct pollfd pfd = { .fd = PQsocket(conn),
			.events = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT };
		const char *h = PQhost(conn);
		int n, ms = -1;

		/* like libpq: the timeout starts again with each host tried */
		if (timeout > 0 && (deadline == 0 || strncmp(host, h ? h : "", sizeof(host) - 1) != 0)) {
			snprintf(host, sizeof(host), "%s", h ? h : "");
			deadline = time(NULL) + timeout;
		}
		if (timeout > 0) {
			time_t left = deadline - time(NULL);
			ms = left > 0 ? (int)left * 1000 : 0;
		}
		n = poll(&pfd, 1, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = dc_err_set(
				err, DC_EDB, "cannot connect to the database: poll: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			rc = dc_err_set(err, DC_EDB,
				"cannot connect to the database: no answer from %s "
				"within %d s (connect_timeout)",
				host[0] ? host : "the server", timeout);
			break;
		}
		ps = PQconnectPoll(conn);
	}
	if (rc == DC_OK && ps != PGRES_POLLING_OK)
		rc = connect_fail(conn, err);
	if (rc != DC_OK) {
		PQfinish(conn);
		return rc;
	}
	PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
	*out = conn;
	return DC_OK;
}

/* ---- array literals ----------------------------------------------------- */

dc_code
dc_pg_array_begin(dc_buf *b)
{
	dc_buf_reset(b);
	return dc_buf_addc(b, '{');
}

/* A comma unless the element is the first one after "{". */
static void
array_sep(dc_buf *b)
{
	if (dc_buf_len(b) > 1)
		dc_buf_addc(b, ',');
}

dc_code
dc_pg_array_text(dc_buf *b, const char *v)
{
	array_sep(b);
	if (v == NULL)
		return dc_buf_adds(b, "NULL");
	dc_buf_addc(b, '"');
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			dc_buf_addc(b, '\\');
		dc_buf_addc(b, *p);
	}
	return dc_buf_addc(b, '"');
}

dc_code
dc_pg_array_int(dc_buf *b, int64_t v)
{
	array_sep(b);
	return dc_buf_addf(b, "%" PRId64, v);
}

dc_code
dc_pg_array_bool(dc_buf *b, bool v)
{
	array_sep(b);
	return dc_buf_addc(b, v ? 't' : 'f');
}

dc_code
dc_pg_array_end(dc_buf *b)
{
	return dc_buf_addc(b, '}');
}

size_t
dc_pg_libversions(dc_libversion *v, size_t max)
{
	int n = PQlibVersion();

	if (max < 1)
		return 0;
	v[0].name = "libpq";
	if (n >= 100000) /* PostgreSQL 10 and later: major * 10000 + minor */
		snprintf(v[0].version, sizeof(v[0].version), "%d.%d", n / 10000, n % 10000);
	else
		snprintf(v[0].version, sizeof(v[0].version), "%d.%d.%d", n / 10000, n / 100 % 100, n % 100);
	return 1;
}

/*
 * dc_store.c - PostgreSQL storage through libpq: schema migrations, one
 * transaction per report, records and auth results written by COPY in
 * bounded chunks, duplicates decided by the reports' unique key, originals
 * kept by content hash for `reparse`, rejected inputs in dmarc.failures.
 *
 * Writing a report (the sink of dc_report.h):
 *   report_begin  BEGIN; find the original (by SHA-256: new bytes are only
 *                 inserted at report_end, so a report that fails leaves no
 *                 dead copy of them behind); INSERT the
 *                 report ... ON CONFLICT ON CONSTRAINT reports_unique_report
 *                 DO NOTHING; no row back means a duplicate: ROLLBACK, DC_SKIP.
 *                 A concurrent writer of the same report blocks on the unique
 *                 index until the first commits, then sees the duplicate.
 *   record        validated (UTF-8, source_ip by inet_pton, ranges), then
 *                 appended to three COPY text buffers (records, dkim, spf);
 *                 record ids come from blocks of dmarc.records_id_seq (one
 *                 nextval() = a block of `increment_by` ids).  A full chunk
 *                 is sent as three COPYs, so memory stays flat.
 *   report_end    flush, insert a new original, UPDATE the report's totals, errors and original_id, COMMIT.
 *                 Small reports (up to STORE_SMALL_RECORDS records, none
 *                 flushed yet) skip the COPYs: their rows were also kept as
 *                 JSON arrays and go, with the totals, in one prepared
 *                 statement (INSERT ... SELECT FROM json_populate_recordset
 *                 in three CTEs + the UPDATE), then COMMIT.  Same values,
 *                 same transaction; report_end costs 2 round trips
 *                 instead of up to 8 (three COPYs of 2, UPDATE, COMMIT).
 *                 The report INSERT and the original's lookup and insert
 *                 are prepared statements too (once per connection).
 *   report_abort  ROLLBACK: nothing of the report remains.
 * In reparse mode the same steps use SAVEPOINT / ROLLBACK TO / RELEASE
 * inside the transaction that replaces one original's reports.
 *
 * Batch mode (dc_store_batch_begin .. _commit; poll, one IMAP batch): one
 * transaction for many inputs.  A report whose original is small waits in
 * memory: report_begin takes a report id from a reserved block (identity
 * sequence, STORE_REPORT_IDS per round trip) and keeps the row as JSON;
 * its records go only into the COPY buffers; report_end adds row, original
 * and rows to the batch.  batch_flush (at commit, or past STORE_BATCH_BYTES)
 * sends the rows and originals in one statement (INSERT ... ON CONFLICT DO
 * NOTHING RETURNING id: the missing ids are the duplicates), then the added
 * reports' rows by COPY.  A report that stops being small is sent at that
 * moment in a savepoint (materialize; a duplicate then stops its parse with
 * DC_SKIP) and goes on as a large report.  Per report: no round trip at all
 * for a small one.  The batch is committed before the caller acts on the
 * messages; if any statement of it failed nothing is kept and the caller
 * stores the inputs again outside batch mode.
 *
 * Errors: SQLSTATE class 22 (data exception), 23 (integrity) and 54000
 * (e.g. index row too large) on a live connection are DC_ESCHEMA: the report
 * is rejected, not the service.  Everything else is fatal (the caller stops,
 * nothing is lost) and dc_pg.h says which: DC_EDB for a lost connection or a
 * failure that passes, DC_EDBREFUSED for a refusal that stays (privilege,
 * missing object); outside a report a data error is a refusal too.  Values are checked
 * before they are sent so that the server should never have to reject one.
 *
 * Deliberately not here: IMAP state, PTR names (other modules use
 * dc_store_conn), retention.  SQL is only ever sent with parameters; the
 * COPY data is text format (PostgreSQL docs, "COPY", File Formats).
 */
#include "dc_store.h"

#include <arpa/inet.h>
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc_migrations.h"
#include "dc_pg.h"

#define STORE_CHUNK_RECORDS  4096         /* records per COPY round */
#define STORE_CHUNK_BYTES    (8u << 20)   /* or this much COPY text, whichever first */
#define STORE_COPY_PIECE     (1u << 20)   /* bytes per PQputCopyData */
#define STORE_MIGRATE_LOCK   "7236828409416413025"  /* pg_advisory_lock key ("dmarc-co") */
#define STORE_SHA256_LEN     32
#define STORE_TIME_MAX       80           /* a formatted timestamp, with room to spare */
#define STORE_SMALL_RECORDS  256          /* a report up to this size is written in one statement */
#define STORE_SMALL_BYTES    (1u << 20)   /* ... while its JSON rows stay under this */
#define STORE_CONNECT_TIMEOUT "10"         /* seconds for libpq to connect, log in and start */

#define STORE_PREP_REPORT    1u           /* "dc_report": the report INSERT */
#define STORE_PREP_SMALL     2u           /* "dc_small": a small report's rows */
#define STORE_PREP_FIND_ORIG 4u           /* "dc_find_orig": an original by SHA-256 */
#define STORE_PREP_ADD_ORIG  8u           /* "dc_add_orig": a new original */
#define STORE_PREP_BATCH     16u          /* "dc_batch": a batch's waiting reports */

#define STORE_BATCH_BYTES    (8u << 20)   /* a batch's waiting rows are sent when they pass this */
#define STORE_REPORT_IDS     256          /* report ids reserved per round trip in batch mode */
#define STORE_ROLLUP_EVERY   1000         /* reparse: originals between additions to the rollups */

/* A growable byte buffer (COPY text, JSON). */
typedef struct store_buf {
	char *p;
	size_t len;
	size_t cap;
} store_buf;

typedef struct store_origin {
	char *mailbox;
	int64_t uidvalidity;
	int64_t uid;
	char *message_id;
	char *file_name;
	char *ingested_at;      /* reparse only: keep the old row's time; else NULL = now() */
} store_origin;

struct dc_store {
	PGconn *conn;
	store_origin origin;

	/* the report in progress */
	bool in_report;         /* report_begin succeeded, no end/abort yet */
	bool reparse;           /* savepoints instead of BEGIN/COMMIT */
	int64_t reparse_original_id;
	/* a report's original not stored yet: inserted at report_end, so that
	 * a report that fails leaves no dead copy of its bytes behind */
	bool late_orig;
	dc_blob late_blob;      /* points into the unit, valid until report_end */
	uint8_t late_sha[STORE_SHA256_LEN];
	int64_t report_pk;
	uint64_t n_records;
	int64_t message_total;
	store_buf key;          /* escaped "date_begin\tpolicy_domain" of the report */

	/* record ids: [id_next, id_end) reserved from dmarc.records_id_seq */
	int64_t id_next;
	int64_t id_end;

	/* the chunk not yet sent */
	size_t chunk_records;
	store_buf rec;
	store_buf dkim;
	store_buf spf;
	store_buf json;

	/* the small-report path: while `small`, the same rows also go into
	 * JSON arrays, sent at report_end in one statement instead of COPYs */
	bool small;
	unsigned prepared;      /* STORE_PREP_* bits: statements prepared on conn */
	char begin[STORE_TIME_MAX];
	store_buf jrec;
	store_buf jdkim;
	store_buf jspf;

	/* batch mode (dc_store_batch_begin): one transaction; a small report
	 * waits (`deferred`): its row as JSON in jreport (open: the totals are
	 * added at report_end), its original's bytes, SHA-256 and name in
	 * orig*; at report_end its row joins the batch's JSON array b_rep,
	 * its records and results (COPY text, as built in rec, dkim, spf) the
	 * buffers b_rec, b_dkim, b_spf, and its original the binary arrays a_*
	 * (bytea[], bytea[], text[]: no text encoding of the bytes) */
	bool batch;
	bool deferred;          /* the report in progress is not sent yet */
	int64_t cur_uid;        /* its origin UID */
	store_buf jreport;
	bool has_orig;
	uint8_t orig_sha[STORE_SHA256_LEN];
	store_buf orig;
	store_buf orig_name;
	bool orig_named;
	store_buf a_sha;
	store_buf a_content;
	store_buf a_name;
	uint32_t a_n;           /* originals in a_* */
	bool a_nulls;           /* a_name holds a NULL */
	uint8_t last_sha[STORE_SHA256_LEN];  /* the last original added to a_* */
	store_buf b_rep;
	store_buf b_rec;
	store_buf b_dkim;
	store_buf b_spf;
	struct {
		int64_t id, uid;
		uint64_t records;
		size_t end[3];                  /* where its rows end in b_rec, b_dkim, b_spf */
	} *pend;                                /* the waiting reports */
	size_t n_pend, cap_pend;
	struct { int64_t uid; uint64_t records; } *dups;  /* the batch's sent duplicates */
	size_t n_dups, cap_dups;
	int64_t rids[STORE_REPORT_IDS];     /* reserved report ids, [rid_next, rid_n) unused */
	size_t rid_next, rid_n;
};

static void report_rollback(dc_store *st);
static dc_code defer_report(dc_store *st, const dc_report *r, const char *begin, const char *end,
	const dc_blob *origin, const char *file_name, bool *deferred, dc_err *err);
static dc_code materialize(dc_store *st, dc_err *err);
static dc_code batch_add(dc_store *st, const dc_report *r, dc_err *err);

/* True when a report is a savepoint inside a longer transaction (reparse, or
 * a batch's report sent as it is read) rather than a transaction of its own. */
static bool
in_savepoint(const dc_store *st)
{
	return st->reparse || (st->batch && !st->deferred);
}

/* ---- small helpers ---------------------------------------------------- */

/* Makes room for n more bytes; false when out of memory. */
static bool
buf_reserve(store_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->cap - b->len > n)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len <= n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL)
		return false;
	b->p = p;
	b->cap = cap;
	return true;
}

/* Appends n bytes (kept NUL-terminated); false when out of memory. */
static bool
buf_add(store_buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, n))
		return false;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return true;
}

/* Appends one byte; false when out of memory. */
static bool
buf_addc(store_buf *b, char c)
{
	return buf_add(b, &c, 1);
}

/* Appends s escaped for COPY text format; NULL becomes \N. */
static bool
buf_copy_text(store_buf *b, const char *s)
{
	size_t n;
	char *o;

	if (s == NULL)
		return buf_add(b, "\\N", 2);
	n = strlen(s);
	if (!buf_reserve(b, 2 * n))
		return false;
	o = b->p + b->len;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '\\': *o++ = '\\'; *o++ = '\\'; break;
		case '\n': *o++ = '\\'; *o++ = 'n'; break;
		case '\r': *o++ = '\\'; *o++ = 'r'; break;
		case '\t': *o++ = '\\'; *o++ = 't'; break;
		default: *o++ = (char)*p; break;
		}
	}
	b->len = (size_t)(o - b->p);
	b->p[b->len] = '\0';
	return true;
}

/* Appends v in decimal. */
static bool
buf_i64(store_buf *b, int64_t v)
{
	char tmp[24];
	char *e = tmp + sizeof(tmp), *p = e;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return buf_add(b, p, (size_t)(e - p));
}

/* Appends n bytes as a JSON string holding PostgreSQL's bytea hex input
 * ("\\x0a1b..."). */
static bool
buf_json_bytea(store_buf *b, const uint8_t *data, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *o;

	if (n > (SIZE_MAX - 8) / 2 || !buf_reserve(b, 2 * n + 8))
		return false;
	o = b->p + b->len;
	memcpy(o, "\"\\\\x", 4);
	o += 4;
	for (size_t i = 0; i < n; i++) {
		*o++ = hex[data[i] >> 4];
		*o++ = hex[data[i] & 15];
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	b->p[b->len] = '\0';
	return true;
}

/* Appends s as a JSON string (RFC 8259), or null. */
static bool
buf_json_string(store_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (s == NULL)
		return buf_add(b, "null", 4);
	if (!buf_addc(b, '"'))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool ok;
		if (*p == '"' || *p == '\\') {
			char e[2] = { '\\', (char)*p };
			ok = buf_add(b, e, 2);
		} else if (*p < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
			ok = buf_add(b, e, 6);
		} else {
			ok = buf_addc(b, (char)*p);
		}
		if (!ok)
			return false;
	}
	return buf_addc(b, '"');
}

/* True when s (NUL-terminated) is well-formed UTF-8 as PostgreSQL accepts
 * it: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool
utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL)
		return true;
	while (*p) {
		unsigned c = *p;
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1; cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2; cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3; cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

/* A copy of s with every byte that is not part of valid UTF-8 replaced by
 * '?', for texts we only record (failure reasons).  Caller frees. */
static char *
utf8_sanitize(const char *s)
{
	char *out = strdup(s ? s : "");
	char one[5];

	if (out == NULL)
		return NULL;
	for (unsigned char *p = (unsigned char *)out; *p;) {
		size_t n = *p < 0x80 ? 1 : *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
		size_t i;
		for (i = 0; i < n && p[i]; i++)
			one[i] = (char)p[i];
		one[i] = '\0';
		if (i == n && utf8_valid(one)) {
			p += n;
		} else {
			*p++ = '?';
		}
	}
	return out;
}

/* Formats epoch seconds as a timestamptz literal in UTC; false when the
 * time is outside years 1..9999. */
static bool
format_time(int64_t t, char out[STORE_TIME_MAX])
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
static void
blob_sha256(const dc_blob *b, uint8_t out[STORE_SHA256_LEN])
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
static void
origin_clear(store_origin *o)
{
	free(o->mailbox);
	free(o->message_id);
	free(o->file_name);
	free(o->ingested_at);
	*o = (store_origin){ .uidvalidity = -1, .uid = -1 };
}

/* ---- libpq results ---------------------------------------------------- */

/* Classifies a failed result (res may be NULL) and sets err: DC_ESCHEMA for
 * data the server rejected (SQLSTATE class 22, 23, 54000) on a live
 * connection, else dc_pg_fail's DC_EDB or DC_EDBREFUSED.  Returns the code. */
static dc_code
store_fail(dc_store *st, const PGresult *res, const char *what, dc_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	dc_code code = dc_pg_fail(st->conn, res, what, err);

	if (state != NULL && PQstatus(st->conn) == CONNECTION_OK &&
	    (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
	     strcmp(state, "54000") == 0)) {
		code = DC_ESCHEMA;
		if (err != NULL)
			err->code = code;
	}
	return code;
}

/* rc for a statement that is not a report's: a data error there is the
 * server refusing it (DC_EDBREFUSED), not a bad input. */
static dc_code
store_refused(dc_code rc, dc_err *err)
{
	if (rc == DC_ESCHEMA) {
		rc = DC_EDBREFUSED;
		if (err != NULL)
			err->code = rc;
	}
	return rc;
}

/* Checks res (consumed) against want: on success *out (when out is not
 * NULL) holds it for the caller to PQclear, else it is cleared; on failure
 * err says why and nothing is kept. */
static dc_code
store_result(dc_store *st, PGresult *res, ExecStatusType want, PGresult **out, const char *what,
	dc_err *err)
{
	dc_code rc;

	if (out)
		*out = NULL;
	if (res == NULL || PQresultStatus(res) != want) {
		rc = store_fail(st, res, what, err);
		PQclear(res);
		return rc;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return DC_OK;
}

/* Runs sql with n text (or, where fmts says so, binary) parameters and
 * expects status want.  On success *out (when out is not NULL) holds the
 * result for the caller to PQclear; on failure nothing is kept. */
static dc_code
store_exec(dc_store *st, const char *sql, int n, const char *const *vals, const int *lens,
	const int *fmts, int result_fmt, ExecStatusType want, PGresult **out, const char *what,
	dc_err *err)
{
	return store_result(st, PQexecParams(st->conn, sql, n, NULL, vals, lens, fmts, result_fmt),
		want, out, what, err);
}

/* Like store_exec (lens, fmts as there; text results), through the statement `name`,
 * prepared on the connection at its first use (bit in st->prepared):
 * parsed and planned once per connection instead of once per report. */
static dc_code
store_exec_prepared(dc_store *st, unsigned bit, const char *name, const char *sql, int n,
	const char *const *vals, const int *lens, const int *fmts, ExecStatusType want, PGresult **out,
	const char *what, dc_err *err)
{
	dc_code rc;

	if (out)
		*out = NULL;
	if (!(st->prepared & bit)) {
		rc = store_result(st, PQprepare(st->conn, name, sql, n, NULL), PGRES_COMMAND_OK, NULL, what, err);
		if (rc != DC_OK)
			return rc;
		st->prepared |= bit;
	}
	return store_result(st, PQexecPrepared(st->conn, name, n, vals, lens, fmts, 0), want, out, what, err);
}

/* A command without parameters or rows (BEGIN, COMMIT, SAVEPOINT ...). */
static dc_code
store_cmd(dc_store *st, const char *sql, dc_err *err)
{
	return store_exec(st, sql, 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, NULL, sql, err);
}

/* Runs sql ignoring the outcome (ROLLBACK on a connection that may be gone). */
static void
store_cmd_quiet(dc_store *st, const char *sql)
{
	PQclear(PQexec(st->conn, sql));
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
dc_store_open(const char *conninfo, dc_store **out, dc_err *err)
{
	const char *keys[5], *vals[5];
	dc_store *st = NULL;
	dc_code rc = DC_OK;
	int k = 0;

	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	st->origin = (store_origin){ .uidvalidity = -1, .uid = -1 };
	/* libpq waits for ever by default on a server that accepts the connection
	 * and never answers; the service would hang there, deaf to SIGTERM.  Before
	 * dbname, so a connect_timeout in conninfo (or PGCONNECT_TIMEOUT) wins. */
	keys[k] = "connect_timeout";
	vals[k++] = getenv("PGCONNECT_TIMEOUT") ? NULL : STORE_CONNECT_TIMEOUT;
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
	rc = store_exec(st, "SELECT pg_catalog.set_config('search_path', 'dmarc, pg_catalog, pg_temp', false)",
		0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, NULL, "set search_path", err);
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
	if (st->conn)
		PQfinish(st->conn);
	origin_clear(&st->origin);
	free(st->key.p);
	free(st->rec.p);
	free(st->dkim.p);
	free(st->spf.p);
	free(st->json.p);
	free(st->jrec.p);
	free(st->jdkim.p);
	free(st->jspf.p);
	free(st->jreport.p);
	free(st->orig.p);
	free(st->orig_name.p);
	free(st->a_sha.p);
	free(st->a_content.p);
	free(st->a_name.p);
	free(st->b_rep.p);
	free(st->b_rec.p);
	free(st->b_dkim.p);
	free(st->b_spf.p);
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
			origin_clear(&n);
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		}
	}
	origin_clear(&st->origin);
	st->origin = n;
	return DC_OK;
}

/* ---- migrations ------------------------------------------------------- */

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
	rc = store_exec(st, "SELECT 1 FROM dmarc.schema_migrations WHERE name = $1", 1, params,
		NULL, NULL, 0, PGRES_TUPLES_OK, &res, "read dmarc.schema_migrations", err);
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
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
	                    PQresultStatus(res) != PGRES_TUPLES_OK)) {
		snprintf(what, sizeof(what), "migration %s", m->name);
		rc = store_fail(st, res, what, err);
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	rc = store_exec(st, "INSERT INTO dmarc.schema_migrations (name, applied_at) VALUES ($1, now())",
		1, params, NULL, NULL, 0, PGRES_COMMAND_OK, NULL, "record migration", err);
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
	static const struct { const char *missing, *create; } setup[] = {
		{ "SELECT pg_catalog.to_regnamespace('dmarc') IS NULL",
		  "CREATE SCHEMA IF NOT EXISTS dmarc" },
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
	rc = store_exec(st, "SELECT pg_catalog.pg_advisory_lock(" STORE_MIGRATE_LOCK ")", 0, NULL,
		NULL, NULL, 0, PGRES_TUPLES_OK, NULL, "take the migration lock", err);
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

/* ---- failures --------------------------------------------------------- */

/* Inserts one row into dmarc.failures with the current origin (one
 * statement: its own transaction, or part of the batch's or reparse's).
 * The unit's bytes (unit may be NULL: none kept) are stored once, in
 * dmarc.originals by their SHA-256, and the row refers to them: a unit that
 * is already there (a member of the same zip failed before, or a report of
 * it was stored) costs one statement and no bytes on the wire. */
static dc_code
store_insert_failure(dc_store *st, const char *stage, const char *reason, const dc_blob *unit,
	dc_err *err)
{
	/* $1..$7 where from, stage, reason; $8 sha256; $9 content, $10 name */
	static const char plain_sql[] =
		"INSERT INTO dmarc.failures (mailbox, uidvalidity, uid, message_id, file_name, stage, reason)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7)";
	static const char known_sql[] =
		"INSERT INTO dmarc.failures (mailbox, uidvalidity, uid, message_id, file_name, stage, reason,"
		" original_id, sha256)"
		" SELECT $1::text, $2::bigint, $3::bigint, $4::text, $5::text, $6::text, $7::text, o.id, o.sha256"
		" FROM dmarc.originals o WHERE o.sha256 = $8::bytea";
	static const char new_sql[] =
		"WITH o AS (INSERT INTO dmarc.originals (sha256, content, name) VALUES ($8::bytea, $9::bytea, $10::text)"
		" ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256 RETURNING id, sha256)"
		" INSERT INTO dmarc.failures (mailbox, uidvalidity, uid, message_id, file_name, stage, reason,"
		" original_id, sha256)"
		" SELECT $1::text, $2::bigint, $3::bigint, $4::text, $5::text, $6::text, $7::text, o.id, o.sha256 FROM o";
	char uidv[24], uid[24];
	uint8_t digest[STORE_SHA256_LEN];
	char *stage_ok = NULL, *reason_ok = NULL, *file_ok = NULL, *name_ok = NULL;
	const char *name = unit ? unit->name : NULL;
	const char *vals[10];
	int lens[10] = { 0 }, fmts[10] = { 0 };
	PGresult *res = NULL;
	dc_code rc;

	if (unit != NULL && (unit->data == NULL || unit->len > DC_MAX_BYTEA))
		unit = NULL;  /* cannot be kept: record the failure without it */
	stage_ok = utf8_sanitize(stage);
	reason_ok = utf8_sanitize(reason);
	file_ok = utf8_sanitize(st->origin.file_name ? st->origin.file_name : name);
	name_ok = name ? utf8_sanitize(name) : NULL;
	if (!stage_ok || !reason_ok || !file_ok || (name && !name_ok)) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(uidv, sizeof(uidv), "%" PRId64, st->origin.uidvalidity);
	snprintf(uid, sizeof(uid), "%" PRId64, st->origin.uid);
	vals[0] = st->origin.mailbox;
	vals[1] = st->origin.uidvalidity >= 0 ? uidv : NULL;
	vals[2] = st->origin.uid >= 0 ? uid : NULL;
	vals[3] = st->origin.message_id;
	vals[4] = (st->origin.file_name || name) ? file_ok : NULL;
	vals[5] = stage_ok;
	vals[6] = reason_ok;
	if (unit == NULL) {
		rc = store_exec(st, plain_sql, 7, vals, lens, fmts, 0, PGRES_COMMAND_OK, NULL, "record failure", err);
		goto out;
	}
	blob_sha256(unit, digest);
	vals[7] = (const char *)digest;
	lens[7] = STORE_SHA256_LEN;
	fmts[7] = 1;
	rc = store_exec(st, known_sql, 8, vals, lens, fmts, 0, PGRES_COMMAND_OK, &res, "record failure", err);
	if (rc != DC_OK)
		goto out;
	if (strcmp(PQcmdTuples(res), "1") == 0)
		goto out;
	/* a new original (or one pruned in between): its bytes go once */
	vals[8] = (const char *)unit->data;
	lens[8] = (int)unit->len;
	fmts[8] = 1;
	vals[9] = name_ok;
	rc = store_exec(st, new_sql, 10, vals, lens, fmts, 0, PGRES_COMMAND_OK, NULL, "record failure", err);
out:
	PQclear(res);
	free(stage_ok);
	free(reason_ok);
	free(file_ok);
	free(name_ok);
	return rc;
}

dc_code
dc_store_failure(dc_store *st, const char *stage, const char *reason, const uint8_t *content,
	size_t len, dc_err *err)
{
	dc_blob unit = { .data = content, .len = len };

	if (st->in_report)  /* never part of a report's transaction */
		report_rollback(st);
	return store_insert_failure(st, stage, reason, content ? &unit : NULL, err);
}

/* ---- writing a report ------------------------------------------------- */

/* Forgets the buffered chunk (memory is kept for the next one). */
static void
chunk_reset(dc_store *st)
{
	st->chunk_records = 0;
	st->rec.len = 0;
	st->dkim.len = 0;
	st->spf.len = 0;
}

/* Sends buf as one COPY ... FROM STDIN and reads every result. */
static dc_code
copy_in(dc_store *st, const char *sql, const store_buf *buf, const char *what, dc_err *err)
{
	PGresult *res;
	dc_code rc = DC_OK;
	bool first = true;

	res = PQexec(st->conn, sql);
	if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN) {
		rc = store_fail(st, res, what, err);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	for (size_t off = 0; off < buf->len;) {
		size_t n = buf->len - off > STORE_COPY_PIECE ? STORE_COPY_PIECE : buf->len - off;
		if (PQputCopyData(st->conn, buf->p + off, (int)n) != 1) {
			rc = store_fail(st, NULL, what, err);
			break;
		}
		off += n;
	}
	if (PQputCopyEnd(st->conn, rc == DC_OK ? NULL : "client failed") != 1 && rc == DC_OK)
		rc = store_fail(st, NULL, what, err);
	/* read until NULL: the COPY's own result first, then nothing */
	while ((res = PQgetResult(st->conn)) != NULL) {
		if (first && rc == DC_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = store_fail(st, res, what, err);
		first = false;
		PQclear(res);
		if (PQstatus(st->conn) == CONNECTION_BAD)
			break;
	}
	if (first && rc == DC_OK)
		rc = store_fail(st, NULL, what, err);
	return rc;
}

/* Sends the chunk: records first (the auth results reference them).
 * The buffers are empty afterwards whatever the outcome. */
static dc_code
chunk_flush(dc_store *st, dc_err *err)
{
	dc_code rc = DC_OK;

	if (st->chunk_records == 0)
		return DC_OK;
	rc = copy_in(st, "COPY dmarc.records (id, report_id, date_begin, policy_domain, ordinal,"
		" source_ip, message_count, disposition, dkim_aligned, spf_aligned, header_from,"
		" envelope_from, envelope_to, reasons) FROM STDIN", &st->rec, "store records", err);
	if (rc == DC_OK && st->dkim.len > 0)
		rc = copy_in(st, "COPY dmarc.dkim_results (record_id, date_begin, policy_domain, ordinal,"
			" domain, selector, result, human_result) FROM STDIN", &st->dkim,
			"store dkim results", err);
	if (rc == DC_OK && st->spf.len > 0)
		rc = copy_in(st, "COPY dmarc.spf_results (record_id, date_begin, policy_domain, ordinal,"
			" domain, scope, result, human_result) FROM STDIN", &st->spf,
			"store spf results", err);
	chunk_reset(st);
	return rc;
}

/* Takes the next record id, reserving a new block when the last is used.
 * The block is the sequence's increment, read with the nextval(). */
static dc_code
next_record_id(dc_store *st, int64_t *id, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;
	int64_t first, step;

	if (st->id_next < st->id_end) {
		*id = st->id_next++;
		return DC_OK;
	}
	rc = store_exec(st, "SELECT pg_catalog.nextval('dmarc.records_id_seq'), s.increment_by"
		" FROM pg_catalog.pg_sequences s"
		" WHERE s.schemaname = 'dmarc' AND s.sequencename = 'records_id_seq'",
		0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res, "reserve record ids", err);
	if (rc != DC_OK)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return dc_err_set(err, DC_EDB, "reserve record ids: dmarc.records_id_seq not found");
	}
	first = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	step = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (step < 1 || first < 1)
		return dc_err_set(err, DC_EDB, "reserve record ids: dmarc.records_id_seq must count upwards");
	st->id_next = first;
	st->id_end = first + step;
	*id = st->id_next++;
	return DC_OK;
}

/* Ends the report's transaction (or savepoint) without keeping anything. */
static void
report_rollback(dc_store *st)
{
	chunk_reset(st);
	if (st->batch && st->deferred) {
		/* nothing of it was sent */
	} else if (in_savepoint(st)) {
		store_cmd_quiet(st, "ROLLBACK TO SAVEPOINT dc_report");
		store_cmd_quiet(st, "RELEASE SAVEPOINT dc_report");
	} else {
		store_cmd_quiet(st, "ROLLBACK");
	}
	st->in_report = false;
	st->deferred = false;
	st->late_orig = false;
}

/* Finds the original unit by its SHA-256, or (insert) inserts it; sets *id
 * (-1: not there and not inserted). */
static dc_code
store_original(dc_store *st, const dc_blob *b, int64_t *id, bool insert, dc_err *err)
{
	uint8_t digest[STORE_SHA256_LEN];
	const char *vals[3];
	int lens[3] = { STORE_SHA256_LEN, 0, 0 }, fmts[3] = { 1, 1, 0 };
	PGresult *res = NULL;
	char *name = NULL;
	dc_code rc;

	if (b->len > DC_MAX_BYTEA)
		return dc_err_set(err, DC_ESCHEMA, "original of %zu bytes is too large to keep", b->len);
	blob_sha256(b, digest);
	vals[0] = (const char *)digest;
	/* FOR KEY SHARE: a concurrent prune of unreferenced originals cannot
	 * delete it before our report references it */
	rc = store_exec_prepared(st, STORE_PREP_FIND_ORIG, "dc_find_orig",
		"SELECT id FROM dmarc.originals WHERE sha256 = $1 FOR KEY SHARE", 1, vals, lens, fmts,
		PGRES_TUPLES_OK, &res, "find original", err);
	if (rc != DC_OK)
		return rc;
	if (PQntuples(res) == 0 && !insert) {
		PQclear(res);
		*id = -1;
		return DC_OK;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		name = b->name ? utf8_sanitize(b->name) : NULL;
		if (b->name && !name)
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		vals[1] = (const char *)b->data;
		lens[1] = (int)b->len;
		vals[2] = name;
		/* DO UPDATE (not NOTHING) so that a concurrent insert still returns the id */
		rc = store_exec_prepared(st, STORE_PREP_ADD_ORIG, "dc_add_orig",
			"INSERT INTO dmarc.originals (sha256, content, name) VALUES ($1, $2, $3)"
			" ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256 RETURNING id",
			3, vals, lens, fmts, PGRES_TUPLES_OK, &res, "store original", err);
		free(name);
		if (rc != DC_OK)
			return rc;
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return DC_OK;
}

/* The report's text fields, checked for UTF-8 before anything is sent. */
static dc_code
check_report_text(const dc_report *r, const dc_blob *origin, dc_err *err)
{
	const struct { const char *name; const char *v; } f[] = {
		{ "org_name", r->org_name }, { "email", r->org_email },
		{ "extra_contact_info", r->extra_contact_info }, { "report_id", r->report_id },
		{ "generator", r->generator }, { "error", r->errors }, { "domain", r->policy_domain },
		{ "adkim", r->policy_adkim }, { "aspf", r->policy_aspf }, { "p", r->policy_p },
		{ "sp", r->policy_sp }, { "np", r->policy_np }, { "testing", r->policy_testing },
		{ "discovery_method", r->policy_discovery_method }, { "fo", r->policy_fo },
		{ "version", r->version }, { "xmlns", r->xmlns },
		{ "origin path", origin ? origin->path : NULL },
	};
	size_t keylen = 0;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!utf8_valid(f[i].v))
			return dc_err_set(err, DC_ESCHEMA, "report %s is not valid UTF-8", f[i].name);
	/* the unique key is a btree entry: keep it well under its ~2700-byte cap */
	keylen = (r->org_name ? strlen(r->org_name) : 0) + (r->policy_domain ? strlen(r->policy_domain) : 0) +
		(r->report_id ? strlen(r->report_id) : 0);
	if (keylen > 2400)
		return dc_err_set(err, DC_ESCHEMA, "report org_name, domain and report_id together exceed 2400 bytes");
	return DC_OK;
}

/* Sink report_begin: opens the report's transaction (or savepoint) and
 * inserts the report; DC_SKIP (everything rolled back) for a duplicate.  On
 * any error nothing is left open. */
static dc_code
store_report_begin(void *ctx, const dc_report *r, const dc_blob *origin, dc_err *err)
{
	static const char sql[] =
		"INSERT INTO dmarc.reports (org_name, org_email, extra_contact_info, report_id,"
		" policy_domain, date_begin, date_end, policy_p, policy_sp, policy_np, policy_adkim,"
		" policy_aspf, policy_pct, policy_fo, policy_testing, policy_discovery_method,"
		" generator, version, xmlns, errors, mailbox, uidvalidity, uid, message_id, file_name,"
		" original_id, original_path, ingested_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
		" $18, $19, $20, $21, $22, $23, $24, $25, $26, $27,"
		" coalesce($28::timestamptz, pg_catalog.now()))"
		" ON CONFLICT ON CONSTRAINT reports_unique_report DO NOTHING RETURNING id";
	dc_store *st = ctx;
	char begin[STORE_TIME_MAX], end[STORE_TIME_MAX], pct[16], uidv[24], uid[24], orig[24];
	const char *vals[28];
	PGresult *res = NULL;
	int64_t original_id = -1;
	dc_code rc;
	const char *file_name;
	dc_blob clean;

	if (st->in_report)
		report_rollback(st);
	chunk_reset(st);
	if (!format_time(r->date_begin, begin))
		return dc_err_set(err, DC_ESCHEMA, "report date_begin %" PRId64 " is out of range", r->date_begin);
	if (!format_time(r->date_end, end))
		return dc_err_set(err, DC_ESCHEMA, "report date_end %" PRId64 " is out of range", r->date_end);
	if ((rc = check_report_text(r, origin, err)) != DC_OK)
		return rc;
	if (origin != NULL && origin->name != NULL && !utf8_valid(origin->name)) {
		/* keep the bytes, drop a name we could not store */
		clean = (dc_blob){ .data = origin->data, .len = origin->len, .path = origin->path,
			.sha256 = origin->sha256 };
		origin = &clean;
	}

	file_name = st->origin.file_name ? st->origin.file_name : origin ? origin->name : NULL;
	if (file_name != NULL && !utf8_valid(file_name))
		file_name = NULL;
	if (st->batch) {
		bool deferred = false;

		if ((rc = defer_report(st, r, begin, end, origin, file_name, &deferred, err)) != DC_OK)
			return rc;
		if (deferred) {
			st->in_report = st->deferred = true;
			goto started;
		}
	}
	if ((rc = store_cmd(st, in_savepoint(st) ? "SAVEPOINT dc_report" : "BEGIN", err)) != DC_OK)
		return rc;
	st->in_report = true;

	if (st->reparse) {
		original_id = st->reparse_original_id;
	} else if (origin != NULL && origin->data != NULL) {
		if ((rc = store_original(st, origin, &original_id, false, err)) != DC_OK)
			goto fail;
		if (original_id < 0) {
			/* new bytes: sent at report_end, once the report is good */
			blob_sha256(origin, st->late_sha);
			st->late_blob = *origin;
			st->late_blob.sha256 = st->late_sha;
			st->late_orig = true;
		}
	}
	snprintf(pct, sizeof(pct), "%d", r->policy_pct);
	snprintf(uidv, sizeof(uidv), "%" PRId64, st->origin.uidvalidity);
	snprintf(uid, sizeof(uid), "%" PRId64, st->origin.uid);
	snprintf(orig, sizeof(orig), "%" PRId64, original_id);
	{
		const char *v[28] = {
			r->org_name, r->org_email, r->extra_contact_info, r->report_id,
			r->policy_domain, begin, end, r->policy_p, r->policy_sp, r->policy_np,
			r->policy_adkim, r->policy_aspf, r->policy_pct >= 0 ? pct : NULL, r->policy_fo,
			r->policy_testing, r->policy_discovery_method, r->generator, r->version,
			r->xmlns, r->errors, st->origin.mailbox,
			st->origin.uidvalidity >= 0 ? uidv : NULL, st->origin.uid >= 0 ? uid : NULL,
			st->origin.message_id, file_name, original_id >= 0 ? orig : NULL,
			origin ? origin->path : NULL, st->origin.ingested_at,
		};
		memcpy(vals, v, sizeof(vals));
	}
	rc = store_exec_prepared(st, STORE_PREP_REPORT, "dc_report", sql, 28, vals, NULL, NULL, PGRES_TUPLES_OK,
		&res, "store report", err);
	if (rc != DC_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		/* the same report is already stored (or was, by a concurrent writer) */
		PQclear(res);
		report_rollback(st);
		return DC_SKIP;
	}
	st->report_pk = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
started:
	st->n_records = 0;
	st->message_total = 0;
	st->key.len = 0;
	memcpy(st->begin, begin, sizeof(st->begin));
	st->jrec.len = st->jdkim.len = st->jspf.len = 0;
	st->small = buf_addc(&st->jrec, '[') && buf_addc(&st->jdkim, '[') && buf_addc(&st->jspf, '[');
	if (!buf_add(&st->key, begin, strlen(begin)) || !buf_addc(&st->key, '\t') ||
	    !buf_copy_text(&st->key, r->policy_domain)) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto fail;
	}
	return DC_OK;
fail:
	report_rollback(st);
	return rc;
}

/* Checks one record before anything of it is buffered; canonical source_ip
 * text goes to ip (empty when absent or empty: stored as NULL). */
static dc_code
check_record(const dc_record *rec, char ip[INET6_ADDRSTRLEN], dc_err *err)
{
	const struct { const char *name; const char *v; } f[] = {
		{ "disposition", rec->disposition }, { "dkim", rec->dkim_aligned },
		{ "spf", rec->spf_aligned }, { "header_from", rec->header_from },
		{ "envelope_from", rec->envelope_from }, { "envelope_to", rec->envelope_to },
	};
	unsigned char addr[sizeof(struct in6_addr)];
	uint64_t n = rec->ordinal;

	ip[0] = '\0';
	if (rec->ordinal > INT32_MAX)
		return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": ordinal out of range", n);
	if (rec->n_dkim > INT16_MAX || rec->n_spf > INT16_MAX)
		return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": too many auth results", n);
	if (rec->source_ip != NULL) {
		const char *s = rec->source_ip;
		size_t len;
		char tmp[64];
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		len = strlen(s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
		                   s[len - 1] == '\n'))
			len--;
		/* <source_ip/> gives no address, like an absent element: NULL */
		if (len == 0)
			goto ip_done;
		if (len >= sizeof(tmp))
			goto bad_ip;
		memcpy(tmp, s, len);
		tmp[len] = '\0';
		if (inet_pton(AF_INET, tmp, addr) == 1) {
			if (inet_ntop(AF_INET, addr, ip, INET6_ADDRSTRLEN) == NULL)
				goto bad_ip;
		} else if (inet_pton(AF_INET6, tmp, addr) == 1) {
			if (inet_ntop(AF_INET6, addr, ip, INET6_ADDRSTRLEN) == NULL)
				goto bad_ip;
		} else {
			goto bad_ip;
		}
	}
ip_done:
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!utf8_valid(f[i].v))
			return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": %s is not valid UTF-8", n, f[i].name);
	for (size_t i = 0; i < rec->n_reasons; i++)
		if (!utf8_valid(rec->reasons[i].type) || !utf8_valid(rec->reasons[i].comment))
			return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": reason is not valid UTF-8", n);
	for (size_t i = 0; i < rec->n_dkim; i++) {
		const dc_dkim_result *d = &rec->dkim[i];
		if (!utf8_valid(d->domain) || !utf8_valid(d->selector) || !utf8_valid(d->result) ||
		    !utf8_valid(d->human_result))
			return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": dkim result is not valid UTF-8", n);
	}
	for (size_t i = 0; i < rec->n_spf; i++) {
		const dc_spf_result *s = &rec->spf[i];
		if (!utf8_valid(s->domain) || !utf8_valid(s->scope) || !utf8_valid(s->result) ||
		    !utf8_valid(s->human_result))
			return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": spf result is not valid UTF-8", n);
	}
	return DC_OK;
bad_ip:
	return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": source_ip '%.64s' is not an IP address",
		n, rec->source_ip);
}

/* Appends "id\tdate_begin\tpolicy_domain\tordinal\t" to an auth buffer. */
static bool
auth_prefix(dc_store *st, store_buf *b, int64_t id, size_t ordinal)
{
	return buf_i64(b, id) && buf_addc(b, '\t') && buf_add(b, st->key.p, st->key.len) &&
		buf_addc(b, '\t') && buf_i64(b, (int64_t)ordinal) && buf_addc(b, '\t');
}

/* Appends the record's rows to the chunk buffers; false when out of memory. */
static bool
chunk_add(dc_store *st, const dc_record *rec, int64_t id, const char *ip)
{
	store_buf *b = &st->rec;
	bool ok;

	ok = buf_i64(b, id) && buf_addc(b, '\t') && buf_i64(b, st->report_pk) && buf_addc(b, '\t') &&
		buf_add(b, st->key.p, st->key.len) && buf_addc(b, '\t') &&
		buf_i64(b, (int64_t)rec->ordinal) && buf_addc(b, '\t') &&
		(ip[0] ? buf_add(b, ip, strlen(ip)) : buf_add(b, "\\N", 2)) && buf_addc(b, '\t') &&
		(rec->message_count >= 0 ? buf_i64(b, rec->message_count) : buf_add(b, "\\N", 2)) &&
		buf_addc(b, '\t') &&
		buf_copy_text(b, rec->disposition) && buf_addc(b, '\t') &&
		buf_copy_text(b, rec->dkim_aligned) && buf_addc(b, '\t') &&
		buf_copy_text(b, rec->spf_aligned) && buf_addc(b, '\t') &&
		buf_copy_text(b, rec->header_from) && buf_addc(b, '\t') &&
		buf_copy_text(b, rec->envelope_from) && buf_addc(b, '\t') &&
		buf_copy_text(b, rec->envelope_to) && buf_addc(b, '\t');
	if (!ok)
		return false;
	if (rec->n_reasons == 0) {
		ok = buf_add(b, "\\N", 2);
	} else {
		st->json.len = 0;
		ok = buf_addc(&st->json, '[');
		for (size_t i = 0; ok && i < rec->n_reasons; i++)
			ok = (i == 0 || buf_addc(&st->json, ',')) &&
				buf_add(&st->json, "{\"type\":", 8) &&
				buf_json_string(&st->json, rec->reasons[i].type) &&
				buf_add(&st->json, ",\"comment\":", 11) &&
				buf_json_string(&st->json, rec->reasons[i].comment) &&
				buf_addc(&st->json, '}');
		ok = ok && buf_addc(&st->json, ']') && buf_copy_text(b, st->json.p);
	}
	ok = ok && buf_addc(b, '\n');

	for (size_t i = 0; ok && i < rec->n_dkim; i++) {
		const dc_dkim_result *d = &rec->dkim[i];
		b = &st->dkim;
		ok = auth_prefix(st, b, id, i + 1) &&
			buf_copy_text(b, d->domain) && buf_addc(b, '\t') &&
			buf_copy_text(b, d->selector) && buf_addc(b, '\t') &&
			buf_copy_text(b, d->result) && buf_addc(b, '\t') &&
			buf_copy_text(b, d->human_result) && buf_addc(b, '\n');
	}
	for (size_t i = 0; ok && i < rec->n_spf; i++) {
		const dc_spf_result *s = &rec->spf[i];
		b = &st->spf;
		ok = auth_prefix(st, b, id, i + 1) &&
			buf_copy_text(b, s->domain) && buf_addc(b, '\t') &&
			buf_copy_text(b, s->scope) && buf_addc(b, '\t') &&
			buf_copy_text(b, s->result) && buf_addc(b, '\t') &&
			buf_copy_text(b, s->human_result) && buf_addc(b, '\n');
	}
	return ok;
}

/* Appends ,"name": (or "name": first in an object) to b. */
static bool
json_key(store_buf *b, const char *name, bool first)
{
	return (first || buf_addc(b, ',')) && buf_addc(b, '"') && buf_add(b, name, strlen(name)) &&
		buf_add(b, "\":", 2);
}

/* Opens the next object of a JSON array buffer started with '['. */
static bool
json_open(store_buf *b)
{
	return (b->len == 1 || buf_addc(b, ',')) && buf_addc(b, '{');
}

/* Appends "record_id":..,"date_begin":..,"policy_domain":..,"ordinal":.. of
 * an auth result row. */
static bool
json_auth_prefix(dc_store *st, store_buf *b, const dc_report *r, int64_t id, size_t ordinal)
{
	return json_open(b) && json_key(b, "record_id", true) && buf_i64(b, id) &&
		json_key(b, "date_begin", false) && buf_json_string(b, st->begin) &&
		json_key(b, "policy_domain", false) && buf_json_string(b, r->policy_domain) &&
		json_key(b, "ordinal", false) && buf_i64(b, (int64_t)ordinal);
}

/* Appends the record's rows as JSON objects to the small-report arrays,
 * with exactly the values chunk_add puts in the COPY text (the reasons
 * array is the one chunk_add just built in st->json).  False when out of
 * memory. */
static bool
json_add(dc_store *st, const dc_report *r, const dc_record *rec, int64_t id, const char *ip)
{
	store_buf *b = &st->jrec;
	bool ok;

	ok = json_open(b) && json_key(b, "id", true) && buf_i64(b, id) &&
		json_key(b, "report_id", false) && buf_i64(b, st->report_pk) &&
		json_key(b, "date_begin", false) && buf_json_string(b, st->begin) &&
		json_key(b, "policy_domain", false) && buf_json_string(b, r->policy_domain) &&
		json_key(b, "ordinal", false) && buf_i64(b, (int64_t)rec->ordinal) &&
		json_key(b, "source_ip", false) && buf_json_string(b, ip[0] ? ip : NULL) &&
		json_key(b, "message_count", false) &&
		(rec->message_count >= 0 ? buf_i64(b, rec->message_count) : buf_add(b, "null", 4)) &&
		json_key(b, "disposition", false) && buf_json_string(b, rec->disposition) &&
		json_key(b, "dkim_aligned", false) && buf_json_string(b, rec->dkim_aligned) &&
		json_key(b, "spf_aligned", false) && buf_json_string(b, rec->spf_aligned) &&
		json_key(b, "header_from", false) && buf_json_string(b, rec->header_from) &&
		json_key(b, "envelope_from", false) && buf_json_string(b, rec->envelope_from) &&
		json_key(b, "envelope_to", false) && buf_json_string(b, rec->envelope_to) &&
		json_key(b, "reasons", false) &&
		(rec->n_reasons > 0 ? buf_add(b, st->json.p, st->json.len) : buf_add(b, "null", 4)) &&
		buf_addc(b, '}');
	for (size_t i = 0; ok && i < rec->n_dkim; i++) {
		const dc_dkim_result *d = &rec->dkim[i];
		b = &st->jdkim;
		ok = json_auth_prefix(st, b, r, id, i + 1) &&
			json_key(b, "domain", false) && buf_json_string(b, d->domain) &&
			json_key(b, "selector", false) && buf_json_string(b, d->selector) &&
			json_key(b, "result", false) && buf_json_string(b, d->result) &&
			json_key(b, "human_result", false) && buf_json_string(b, d->human_result) &&
			buf_addc(b, '}');
	}
	for (size_t i = 0; ok && i < rec->n_spf; i++) {
		const dc_spf_result *s = &rec->spf[i];
		b = &st->jspf;
		ok = json_auth_prefix(st, b, r, id, i + 1) &&
			json_key(b, "domain", false) && buf_json_string(b, s->domain) &&
			json_key(b, "scope", false) && buf_json_string(b, s->scope) &&
			json_key(b, "result", false) && buf_json_string(b, s->result) &&
			json_key(b, "human_result", false) && buf_json_string(b, s->human_result) &&
			buf_addc(b, '}');
	}
	return ok;
}

/* Sink record: validates and buffers one record, sending the chunk when it
 * is full.  DC_ESCHEMA for bad values, DC_EDB when the server failed. */
static dc_code
store_record(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err)
{
	dc_store *st = ctx;
	char ip[INET6_ADDRSTRLEN];
	int64_t id = 0;
	dc_code rc;

	if (!st->in_report)
		return dc_err_set(err, DC_EDB, "store record: no report in progress");
	if ((rc = check_record(rec, ip, err)) != DC_OK)
		return rc;
	if (rec->message_count > 0 &&
	    __builtin_add_overflow(st->message_total, rec->message_count, &st->message_total))
		return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": message counts overflow", rec->ordinal);
	if ((rc = next_record_id(st, &id, err)) != DC_OK)
		return rc;
	if (!chunk_add(st, rec, id, ip))
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	if (st->small && st->n_records >= STORE_SMALL_RECORDS)
		st->small = false;
	/* a waiting report's rows go with the batch as COPY text (the chunk
	 * buffers): no JSON for them */
	if (st->small && !st->deferred && !json_add(st, r, rec, id, ip))
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	if (st->small && (st->deferred ? st->rec.len + st->dkim.len + st->spf.len :
	                  st->jrec.len + st->jdkim.len + st->jspf.len) >= STORE_SMALL_BYTES)
		st->small = false;
	st->n_records++;
	st->chunk_records++;
	/* a waiting report that stops being small is sent now, before any COPY
	 * (a chunk is far larger than a small report) */
	if (!st->small && st->deferred && (rc = materialize(st, err)) != DC_OK)
		return rc;
	if (st->chunk_records >= STORE_CHUNK_RECORDS ||
	    st->rec.len + st->dkim.len + st->spf.len >= STORE_CHUNK_BYTES) {
		st->small = false;  /* part of it is sent by COPY: the rest goes the same way */
		return chunk_flush(st, err);
	}
	return DC_OK;
}

/* Sink report_end: sends the rest, stores the totals and commits (or
 * releases the savepoint).  On failure the report is rolled back. */
static dc_code
store_report_end(void *ctx, const dc_report *r, dc_err *err)
{
	/* the data-modifying CTEs all run; the auth results' foreign keys are
	 * checked at the end of the statement, when the records are there */
	static const char small_sql[] =
		"WITH rec AS (INSERT INTO dmarc.records (id, report_id, date_begin, policy_domain, ordinal,"
		" source_ip, message_count, disposition, dkim_aligned, spf_aligned, header_from,"
		" envelope_from, envelope_to, reasons)"
		" SELECT id, report_id, date_begin, policy_domain, ordinal,"
		" source_ip, message_count, disposition, dkim_aligned, spf_aligned, header_from,"
		" envelope_from, envelope_to, reasons"
		" FROM pg_catalog.json_populate_recordset(NULL::dmarc.records, $5::pg_catalog.json)),"
		" dkim AS (INSERT INTO dmarc.dkim_results (record_id, date_begin, policy_domain, ordinal,"
		" domain, selector, result, human_result)"
		" SELECT record_id, date_begin, policy_domain, ordinal, domain, selector, result, human_result"
		" FROM pg_catalog.json_populate_recordset(NULL::dmarc.dkim_results, $6::pg_catalog.json)),"
		" spf AS (INSERT INTO dmarc.spf_results (record_id, date_begin, policy_domain, ordinal,"
		" domain, scope, result, human_result)"
		" SELECT record_id, date_begin, policy_domain, ordinal, domain, scope, result, human_result"
		" FROM pg_catalog.json_populate_recordset(NULL::dmarc.spf_results, $7::pg_catalog.json))"
		" UPDATE dmarc.reports SET errors = $2, record_count = $3, message_total = $4,"
		" original_id = coalesce($8::bigint, original_id) WHERE id = $1";
	dc_store *st = ctx;
	char id[24], n[24], total[24], oid[24];
	const char *vals[8] = { id, r->errors, n, total, NULL, NULL, NULL, NULL };
	dc_code rc;

	if (!st->in_report)
		return dc_err_set(err, DC_EDB, "store report end: no report in progress");
	if (!utf8_valid(r->errors)) {
		rc = dc_err_set(err, DC_ESCHEMA, "report error is not valid UTF-8");
		goto fail;
	}
	if (st->deferred) {
		/* waits for the batch: nothing was sent, nothing to undo on failure */
		rc = batch_add(st, r, err);
		chunk_reset(st);
		st->in_report = st->deferred = false;
		return rc;
	}
	snprintf(id, sizeof(id), "%" PRId64, st->report_pk);
	snprintf(n, sizeof(n), "%" PRIu64, st->n_records);
	snprintf(total, sizeof(total), "%" PRId64, st->message_total);
	if (st->late_orig) {
		int64_t original_id = -1;

		if ((rc = store_original(st, &st->late_blob, &original_id, true, err)) != DC_OK)
			goto fail;
		snprintf(oid, sizeof(oid), "%" PRId64, original_id);
		vals[7] = oid;
		st->late_orig = false;
	}
	if (st->small) {
		/* every row is still here: records, auth results and totals in
		 * one statement (one round trip instead of up to seven) */
		if (!buf_addc(&st->jrec, ']') || !buf_addc(&st->jdkim, ']') || !buf_addc(&st->jspf, ']')) {
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto fail;
		}
		vals[4] = st->jrec.p;
		vals[5] = st->jdkim.p;
		vals[6] = st->jspf.p;
		chunk_reset(st);
		rc = store_exec_prepared(st, STORE_PREP_SMALL, "dc_small", small_sql, 8, vals, NULL, NULL,
			PGRES_COMMAND_OK, NULL, "store report rows", err);
	} else if ((rc = chunk_flush(st, err)) == DC_OK) {
		vals[4] = vals[7];
		rc = store_exec(st, "UPDATE dmarc.reports SET errors = $2, record_count = $3, message_total = $4,"
			" original_id = coalesce($5::bigint, original_id) WHERE id = $1", 5, vals, NULL, NULL, 0,
			PGRES_COMMAND_OK, NULL, "store report totals", err);
	}
	if (rc != DC_OK)
		goto fail;
	rc = store_cmd(st, in_savepoint(st) ? "RELEASE SAVEPOINT dc_report" : "COMMIT", err);
	if (rc != DC_OK)
		goto fail;
	st->in_report = false;
	return DC_OK;
fail:
	report_rollback(st);
	return rc;
}

/* Sink report_abort: rolls back whatever the report had written. */
static void
store_report_abort(void *ctx)
{
	dc_store *st = ctx;

	if (st->in_report)
		report_rollback(st);
}

/* dc_extract failure callback: records the rejected unit's bytes. */
static dc_code
store_failure_cb(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	dc_store *st = ctx;

	if (st->in_report)
		report_rollback(st);
	return store_insert_failure(st, stage, dc_err_text(why), unit, err);
}

dc_extract_cb
dc_store_callbacks(dc_store *st)
{
	return (dc_extract_cb){
		.sink = {
			.ctx = st,
			.report_begin = store_report_begin,
			.record = store_record,
			.report_end = store_report_end,
			.report_abort = store_report_abort,
		},
		.failure = store_failure_cb,
		.failure_ctx = st,
	};
}

/* ---- batch mode ------------------------------------------------------- */

/* Takes a reserved report id, reserving STORE_REPORT_IDS more when none is
 * left (one round trip). */
static dc_code
next_report_id(dc_store *st, int64_t *id, dc_err *err)
{
	char n[16];
	const char *vals[1] = { n };
	PGresult *res = NULL;
	dc_code rc;

	if (st->rid_next < st->rid_n) {
		*id = st->rids[st->rid_next++];
		return DC_OK;
	}
	snprintf(n, sizeof(n), "%d", STORE_REPORT_IDS);
	rc = store_exec(st, "SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('dmarc.reports', 'id'))"
		" FROM pg_catalog.generate_series(1, $1::integer)", 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK,
		&res, "reserve report ids", err);
	if (rc != DC_OK)
		return rc;
	if (PQntuples(res) != STORE_REPORT_IDS) {
		PQclear(res);
		return dc_err_set(err, DC_EDB, "reserve report ids: %d ids instead of %d", PQntuples(res),
			STORE_REPORT_IDS);
	}
	for (int i = 0; i < STORE_REPORT_IDS; i++)
		st->rids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	st->rid_n = STORE_REPORT_IDS;
	st->rid_next = 0;
	*id = st->rids[st->rid_next++];
	return DC_OK;
}

/*
 * Batch mode, report_begin: when the report can wait (its original is small
 * and every text is valid UTF-8, so the batch's JSON stays valid), takes a
 * report id for it and keeps its row (without the totals) in st->jreport and
 * its original in st->orig*; sets *deferred.  Otherwise it is stored as it is
 * read, in a savepoint.
 */
static dc_code
defer_report(dc_store *st, const dc_report *r, const char *begin, const char *end,
	const dc_blob *origin, const char *file_name, bool *deferred, dc_err *err)
{
	const struct { const char *name; const char *v; } f[] = {
		{ "org_name", r->org_name }, { "org_email", r->org_email },
		{ "extra_contact_info", r->extra_contact_info }, { "report_id", r->report_id },
		{ "policy_domain", r->policy_domain }, { "date_begin", begin }, { "date_end", end },
		{ "policy_p", r->policy_p }, { "policy_sp", r->policy_sp }, { "policy_np", r->policy_np },
		{ "policy_adkim", r->policy_adkim }, { "policy_aspf", r->policy_aspf },
		{ "policy_fo", r->policy_fo }, { "policy_testing", r->policy_testing },
		{ "policy_discovery_method", r->policy_discovery_method }, { "generator", r->generator },
		{ "version", r->version }, { "xmlns", r->xmlns }, { "mailbox", st->origin.mailbox },
		{ "message_id", st->origin.message_id }, { "file_name", file_name },
		{ "original_path", origin ? origin->path : NULL },
	};
	store_buf *b = &st->jreport;
	bool have_orig = origin != NULL && origin->data != NULL;
	int64_t id = 0;
	bool ok = true;
	dc_code rc;

	*deferred = false;
	if (have_orig && (origin->len > STORE_SMALL_BYTES || !utf8_valid(origin->name)))
		return DC_OK;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!utf8_valid(f[i].v))
			return DC_OK;
	if ((rc = next_report_id(st, &id, err)) != DC_OK)
		return rc;
	b->len = st->orig.len = st->orig_name.len = 0;
	st->has_orig = st->orig_named = false;
	ok = buf_addc(b, '{') && json_key(b, "id", true) && buf_i64(b, id);
	for (size_t i = 0; ok && i < sizeof(f) / sizeof(f[0]); i++)
		ok = json_key(b, f[i].name, false) && buf_json_string(b, f[i].v);
	ok = ok && json_key(b, "policy_pct", false) &&
		(r->policy_pct >= 0 ? buf_i64(b, r->policy_pct) : buf_add(b, "null", 4)) &&
		json_key(b, "uidvalidity", false) &&
		(st->origin.uidvalidity >= 0 ? buf_i64(b, st->origin.uidvalidity) : buf_add(b, "null", 4)) &&
		json_key(b, "uid", false) &&
		(st->origin.uid >= 0 ? buf_i64(b, st->origin.uid) : buf_add(b, "null", 4));
	if (ok && have_orig) {
		blob_sha256(origin, st->orig_sha);
		st->has_orig = true;
		st->orig_named = origin->name != NULL;
		ok = json_key(b, "osha", false) && buf_json_bytea(b, st->orig_sha, sizeof(st->orig_sha)) &&
			buf_add(&st->orig, (const char *)origin->data, origin->len) &&
			(!origin->name || buf_add(&st->orig_name, origin->name, strlen(origin->name)));
	}
	if (!ok)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	st->report_pk = id;
	st->cur_uid = st->origin.uid;
	*deferred = true;
	return DC_OK;
}

/* Starts a JSON array in b. */
static bool
json_array_start(store_buf *b)
{
	b->len = 0;
	return buf_addc(b, '[');
}

/* PostgreSQL's binary array format (array_send): a one-dimensional array
 * is a 20-byte header, then per element its length (-1: NULL) and bytes. */
#define STORE_ARRAY_HEADER 20
#define STORE_OID_BYTEA    17
#define STORE_OID_TEXT     25

/* Starts an empty binary array in b (room for the header). */
static bool
arr_start(store_buf *b)
{
	b->len = 0;
	if (!buf_reserve(b, STORE_ARRAY_HEADER))
		return false;
	memset(b->p, 0, STORE_ARRAY_HEADER);
	b->len = STORE_ARRAY_HEADER;
	return true;
}

/* Appends an element of n bytes (p NULL: a NULL element). */
static bool
arr_add(store_buf *b, const void *p, size_t n)
{
	uint32_t l = htonl(p ? (uint32_t)n : UINT32_MAX);

	return buf_add(b, (const char *)&l, 4) && (p == NULL || buf_add(b, p, n));
}

/* Writes the header of b's array of n elements of type oid. */
static void
arr_finish(store_buf *b, uint32_t n, uint32_t oid, bool nulls)
{
	uint32_t h[5] = { htonl(1), htonl(nulls ? 1 : 0), htonl(oid), htonl(n), htonl(1) };

	memcpy(b->p, h, sizeof(h));
}

/*
 * Sends reports in one statement: n originals as binary arrays (sha, content:
 * bytea[]; name: text[]), and a JSON array of report rows with their
 * totals.  The originals are found or added, the reports added unless
 * already stored (ON CONFLICT DO NOTHING: a duplicate), in key order so that
 * concurrent writers lock in one order.
 * On success *out holds the added reports' ids (caller PQclears).
 */
static dc_code
batch_send(dc_store *st, store_buf *sha, store_buf *content, store_buf *name, uint32_t n, bool nulls,
	const char *reps, PGresult **out, dc_err *err)
{
	static const char sql[] =
		"WITH o AS (INSERT INTO dmarc.originals AS t (sha256, content, name)"
		" SELECT DISTINCT ON (j.sha256) j.sha256, j.content, j.name"
		" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.bytea[]), pg_catalog.unnest($2::pg_catalog.bytea[]),"
		" pg_catalog.unnest($3::pg_catalog.text[]))"
		" AS j(sha256, content, name)"
		" ORDER BY j.sha256"
		" ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256 RETURNING t.id, t.sha256),"
		" r AS (INSERT INTO dmarc.reports (id, org_name, org_email, extra_contact_info, report_id,"
		" policy_domain, date_begin, date_end, policy_p, policy_sp, policy_np, policy_adkim,"
		" policy_aspf, policy_pct, policy_fo, policy_testing, policy_discovery_method,"
		" generator, version, xmlns, errors, record_count, message_total, mailbox, uidvalidity,"
		" uid, message_id, file_name, original_id, original_path) OVERRIDING SYSTEM VALUE"
		" SELECT j.id, j.org_name, j.org_email, j.extra_contact_info, j.report_id,"
		" j.policy_domain, j.date_begin, j.date_end, j.policy_p, j.policy_sp, j.policy_np, j.policy_adkim,"
		" j.policy_aspf, j.policy_pct, j.policy_fo, j.policy_testing, j.policy_discovery_method,"
		" j.generator, j.version, j.xmlns, j.errors, j.record_count, j.message_total, j.mailbox,"
		" j.uidvalidity, j.uid, j.message_id, j.file_name, o.id, j.original_path"
		" FROM pg_catalog.json_array_elements($4::pg_catalog.json) WITH ORDINALITY AS a(v, n)"
		" CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::dmarc.reports, a.v) j"
		" LEFT JOIN o ON o.sha256 = (a.v ->> 'osha')::bytea"
		" ORDER BY j.org_name, j.policy_domain, j.report_id, j.date_begin, j.date_end, a.n"
		" ON CONFLICT ON CONSTRAINT reports_unique_report DO NOTHING RETURNING id)"
		" SELECT id FROM r";
	store_buf *arr[3] = { sha, content, name };
	static const uint32_t oid[3] = { STORE_OID_BYTEA, STORE_OID_BYTEA, STORE_OID_TEXT };
	const char *vals[4] = { NULL, NULL, NULL, reps };
	int lens[4] = { 0 }, fmts[4] = { 0 };

	for (int i = 0; i < 3; i++) {
		if (n == 0) {
			vals[i] = "{}";  /* an empty array, as text */
			continue;
		}
		arr_finish(arr[i], n, oid[i], i == 2 && nulls);
		vals[i] = arr[i]->p;
		lens[i] = (int)arr[i]->len;
		fmts[i] = 1;
	}
	return store_exec_prepared(st, STORE_PREP_BATCH, "dc_batch", sql, 4, vals, lens, fmts,
		PGRES_TUPLES_OK, out, "store reports", err);
}

/* Orders ids. */
static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Remembers a duplicate: its origin UID and number of records. */
static bool
note_duplicate(dc_store *st, int64_t uid, uint64_t records)
{
	if (st->n_dups == st->cap_dups) {
		size_t cap = st->cap_dups ? 2 * st->cap_dups : 64;
		void *p = realloc(st->dups, cap * sizeof(*st->dups));
		if (p == NULL)
			return false;
		st->dups = p;
		st->cap_dups = cap;
	}
	st->dups[st->n_dups].uid = uid;
	st->dups[st->n_dups++].records = records;
	return true;
}

/* Empties the batch's arrays; false when out of memory. */
static bool
batch_reset(dc_store *st)
{
	st->a_n = 0;
	st->a_nulls = false;
	st->b_rec.len = st->b_dkim.len = st->b_spf.len = 0;
	return json_array_start(&st->b_rep) && arr_start(&st->a_sha) && arr_start(&st->a_content) &&
		arr_start(&st->a_name);
}

/* Appends the report in progress's original (SHA-256, bytes, name) to the
 * three binary arrays; false when out of memory. */
static bool
orig_append(const dc_store *st, store_buf *sha, store_buf *content, store_buf *name)
{
	return arr_add(sha, st->orig_sha, sizeof(st->orig_sha)) &&
		arr_add(content, st->orig.p ? st->orig.p : "", st->orig.len) &&
		arr_add(name, st->orig_named ? (st->orig_name.p ? st->orig_name.p : "") : NULL, st->orig_name.len);
}

/* Adds the report in progress's original to the binary arrays a_* (unless
 * it was the last one added); false when out of memory. */
static bool
orig_add(dc_store *st)
{
	if (!st->has_orig || (st->a_n > 0 && memcmp(st->last_sha, st->orig_sha, sizeof(st->orig_sha)) == 0))
		return true;
	if (!orig_append(st, &st->a_sha, &st->a_content, &st->a_name))
		return false;
	st->a_nulls = st->a_nulls || !st->orig_named;
	memcpy(st->last_sha, st->orig_sha, sizeof(st->orig_sha));
	st->a_n++;
	return true;
}

/* Drops the rows of the duplicates (dup[i] true: pend[i] was not added)
 * from the COPY text of table k (0 records, 1 DKIM, 2 SPF). */
static void
drop_rows(store_buf *b, const dc_store *st, const bool *dup, size_t k)
{
	size_t from = 0, to = 0;

	for (size_t i = 0; i < st->n_pend; i++) {
		size_t end = st->pend[i].end[k];

		if (!dup[i]) {
			memmove(b->p + to, b->p + from, end - from);
			to += end - from;
		}
		from = end;
	}
	b->len = to;
}

/*
 * Sends the batch's waiting reports: their rows and originals in one
 * statement, which says which were added, then the added reports' records
 * and auth results by COPY (three at most).  Notes the duplicates.  The
 * batch is empty afterwards whatever the outcome.
 */
static dc_code
batch_flush(dc_store *st, dc_err *err)
{
	store_buf *copy[3] = { &st->b_rec, &st->b_dkim, &st->b_spf };
	static const char *const copy_sql[3] = {
		"COPY dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip,"
		" message_count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from,"
		" envelope_to, reasons) FROM STDIN",
		"COPY dmarc.dkim_results (record_id, date_begin, policy_domain, ordinal, domain, selector,"
		" result, human_result) FROM STDIN",
		"COPY dmarc.spf_results (record_id, date_begin, policy_domain, ordinal, domain, scope,"
		" result, human_result) FROM STDIN",
	};
	static const char *const copy_what[3] = { "store records", "store dkim results", "store spf results" };
	PGresult *res = NULL;
	int64_t *added = NULL;
	bool *dup = NULL;
	size_t n = 0, n_dup = 0;
	dc_code rc = DC_OK;

	if (st->n_pend == 0)
		return DC_OK;
	if (!buf_addc(&st->b_rep, ']')) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	rc = batch_send(st, &st->a_sha, &st->a_content, &st->a_name, st->a_n, st->a_nulls, st->b_rep.p,
		&res, err);
	if (rc != DC_OK)
		goto out;
	n = (size_t)PQntuples(res);
	added = malloc((n + 1) * sizeof(*added));
	dup = calloc(st->n_pend, sizeof(*dup));
	if (added == NULL || dup == NULL) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		added[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
	qsort(added, n, sizeof(*added), cmp_i64);
	for (size_t i = 0; i < st->n_pend; i++) {
		if (bsearch(&st->pend[i].id, added, n, sizeof(*added), cmp_i64) != NULL)
			continue;
		dup[i] = true;
		n_dup++;
		if (!note_duplicate(st, st->pend[i].uid, st->pend[i].records)) {
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t k = 0; k < 3 && rc == DC_OK; k++) {
		if (n_dup > 0)
			drop_rows(copy[k], st, dup, k);
		if (copy[k]->len > 0)
			rc = copy_in(st, copy_sql[k], copy[k], copy_what[k], err);
	}
out:
	PQclear(res);
	free(added);
	free(dup);
	st->n_pend = 0;
	if (!batch_reset(st) && rc == DC_OK)
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
	return rc;
}

/* Batch mode, report_end of a waiting report: closes its row with the
 * totals and adds it, its original and its rows to the batch; sends the
 * batch when it has grown past STORE_BATCH_BYTES. */
static dc_code
batch_add(dc_store *st, const dc_report *r, dc_err *err)
{
	store_buf *b = &st->jreport;
	bool ok;

	ok = json_key(b, "errors", false) && buf_json_string(b, r->errors) &&
		json_key(b, "record_count", false) && buf_i64(b, (int64_t)st->n_records) &&
		json_key(b, "message_total", false) && buf_i64(b, st->message_total) && buf_addc(b, '}') &&
		orig_add(st) &&
		(st->b_rep.len == 1 || buf_addc(&st->b_rep, ',')) && buf_add(&st->b_rep, b->p, b->len) &&
		buf_add(&st->b_rec, st->rec.p ? st->rec.p : "", st->rec.len) &&
		buf_add(&st->b_dkim, st->dkim.p ? st->dkim.p : "", st->dkim.len) &&
		buf_add(&st->b_spf, st->spf.p ? st->spf.p : "", st->spf.len);
	if (ok && st->n_pend == st->cap_pend) {
		size_t cap = st->cap_pend ? 2 * st->cap_pend : 64;
		void *p = realloc(st->pend, cap * sizeof(*st->pend));
		ok = p != NULL;
		if (ok) {
			st->pend = p;
			st->cap_pend = cap;
		}
	}
	if (!ok)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	st->pend[st->n_pend].id = st->report_pk;
	st->pend[st->n_pend].uid = st->cur_uid;
	st->pend[st->n_pend].records = st->n_records;
	st->pend[st->n_pend].end[0] = st->b_rec.len;
	st->pend[st->n_pend].end[1] = st->b_dkim.len;
	st->pend[st->n_pend++].end[2] = st->b_spf.len;
	if (st->a_content.len + st->b_rep.len + st->b_rec.len + st->b_dkim.len + st->b_spf.len > STORE_BATCH_BYTES)
		return batch_flush(st, err);
	return DC_OK;
}

/*
 * Batch mode, a waiting report that stopped being small (store_record):
 * sends its original and row now, in a savepoint, so that its records can
 * follow by COPY as for any large report (report_end then stores the totals
 * and releases the savepoint).  DC_SKIP, with everything of it undone, when
 * it is a duplicate: dc_xml stops reading it.
 */
static dc_code
materialize(dc_store *st, dc_err *err)
{
	store_buf sha = { 0 }, content = { 0 }, name = { 0 }, r = { 0 };
	PGresult *res = NULL;
	dc_code rc;

	if (!arr_start(&sha) || !arr_start(&content) || !arr_start(&name) ||
	    (st->has_orig && !orig_append(st, &sha, &content, &name)) ||
	    !json_array_start(&r) || !buf_add(&r, st->jreport.p, st->jreport.len) || !buf_add(&r, "}]", 2)) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = store_cmd(st, "SAVEPOINT dc_report", err)) != DC_OK)
		goto out;
	st->deferred = false;          /* from now on a savepoint report */
	rc = batch_send(st, &sha, &content, &name, st->has_orig ? 1 : 0, !st->orig_named, r.p, &res, err);
	if (rc == DC_OK && PQntuples(res) == 0) {
		report_rollback(st);
		rc = DC_SKIP;
	}
out:
	PQclear(res);
	free(sha.p);
	free(content.p);
	free(name.p);
	free(r.p);
	return rc;
}

dc_code
dc_store_batch_begin(dc_store *st, dc_err *err)
{
	dc_code rc;

	if (st->in_report)
		report_rollback(st);
	st->n_pend = st->n_dups = 0;
	if (!batch_reset(st))
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK)
		return rc;
	st->batch = true;
	return DC_OK;
}

dc_code
dc_store_batch_commit(dc_store *st, dc_store_dup_fn on_duplicate, void *ctx, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc = DC_OK;

	if (!st->batch)
		return dc_err_set(err, DC_EDB, "store: no batch in progress");
	if (st->in_report)
		report_rollback(st);
	if (PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) == PQTRANS_INTRANS)
		rc = batch_flush(st, err);
	/* a statement of the batch failed (its error went to the caller then):
	 * nothing is kept; DC_ESCHEMA, the caller stores the inputs again
	 * report by report, unless the server is gone */
	if (rc == DC_OK && PQtransactionStatus(st->conn) != PQTRANS_INTRANS) {
		rc = PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) == PQTRANS_INERROR ?
			dc_err_set(err, DC_ESCHEMA, "a statement of the batch failed; nothing of it was kept") :
			store_fail(st, NULL, "store batch", err);
	}
	if (rc == DC_OK) {
		rc = store_exec(st, "COMMIT", 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, &res, "COMMIT", err);
		/* a COMMIT of a failed transaction answers ROLLBACK */
		if (rc == DC_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0)
			rc = dc_err_set(err, DC_ESCHEMA, "the batch was rolled back; nothing of it was kept");
		PQclear(res);
	}
	if (rc != DC_OK) {
		dc_store_batch_abort(st);
		return rc;
	}
	st->batch = false;
	for (size_t i = 0; i < st->n_dups; i++)
		on_duplicate(ctx, st->dups[i].uid, st->dups[i].records);
	st->n_dups = 0;
	return DC_OK;
}

void
dc_store_batch_abort(dc_store *st)
{
	if (st->in_report)
		report_rollback(st);
	if (st->batch)
		store_cmd_quiet(st, "ROLLBACK");
	st->batch = false;
	st->deferred = false;
	st->n_pend = st->n_dups = 0;
}

/* ---- rollups --------------------------------------------------------- */

dc_code
dc_store_defer_rollups(dc_store *st, bool on, dc_err *err)
{
	const char *vals[1] = { on ? "on" : "off" };

	return store_refused(store_exec(st, "SELECT pg_catalog.set_config('dmarc.defer_rollup', $1, false)",
		1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, NULL, "defer rollups", err), err);
}

dc_code
dc_store_rollup_pending(dc_store *st, int64_t *added, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;

	rc = store_exec(st, "SELECT dmarc.rollup_pending()", 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res,
		"rollup_pending", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	if (added != NULL)
		*added = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return DC_OK;
}

dc_code
dc_store_rollup_end(dc_store *st, dc_code rc, dc_err *err)
{
	dc_err e2;
	dc_code rc2;

	if (rc == DC_EDB || rc == DC_EDBREFUSED || rc == DC_ENOMEM)
		return rc;
	rc2 = dc_store_rollup_pending(st, NULL, &e2);
	if (rc2 == DC_OK)
		rc2 = dc_store_defer_rollups(st, false, &e2);
	if (rc2 != DC_OK && rc == DC_OK) {
		*err = e2;
		rc = rc2;
	}
	return rc;
}

/* ---- reparse ---------------------------------------------------------- */

/* Replaces the reports of one original inside one transaction.  The old
 * rows' origin (mailbox, uid, message_id, file_name, ingested_at: those of
 * its first report) is kept for the new rows. */
static dc_code
reparse_one(dc_store *st, int64_t original_id, const dc_limits *lim, dc_extract_stats *stats,
	dc_err *err)
{
	char idtext[24];
	const char *vals[1] = { idtext };
	PGresult *content = NULL, *old = NULL;
	store_origin saved = st->origin;
	dc_extract_cb cb = dc_store_callbacks(st);
	dc_code rc;

	snprintf(idtext, sizeof(idtext), "%" PRId64, original_id);
	if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK)
		return store_refused(rc, err);
	rc = store_exec(st, "SELECT content, name FROM dmarc.originals WHERE id = $1 FOR UPDATE", 1,
		vals, NULL, NULL, 1, PGRES_TUPLES_OK, &content, "read original", err);
	if (rc != DC_OK)
		goto out;
	if (PQntuples(content) == 0)  /* pruned meanwhile */
		goto commit;
	rc = store_exec(st, "SELECT mailbox, uidvalidity, uid, message_id, file_name, ingested_at"
		" FROM dmarc.reports WHERE original_id = $1 ORDER BY id LIMIT 1", 1, vals, NULL, NULL, 0,
		PGRES_TUPLES_OK, &old, "read old reports", err);
	if (rc != DC_OK)
		goto out;
	rc = store_exec(st, "DELETE FROM dmarc.reports WHERE original_id = $1", 1, vals, NULL, NULL,
		0, PGRES_COMMAND_OK, NULL, "delete old reports", err);
	if (rc != DC_OK)
		goto out;

	st->origin = (store_origin){ .uidvalidity = -1, .uid = -1 };
	if (PQntuples(old) == 1) {
		store_origin *o = &st->origin;
		o->mailbox = PQgetisnull(old, 0, 0) ? NULL : strdup(PQgetvalue(old, 0, 0));
		o->uidvalidity = PQgetisnull(old, 0, 1) ? -1 : strtoll(PQgetvalue(old, 0, 1), NULL, 10);
		o->uid = PQgetisnull(old, 0, 2) ? -1 : strtoll(PQgetvalue(old, 0, 2), NULL, 10);
		o->message_id = PQgetisnull(old, 0, 3) ? NULL : strdup(PQgetvalue(old, 0, 3));
		o->file_name = PQgetisnull(old, 0, 4) ? NULL : strdup(PQgetvalue(old, 0, 4));
		o->ingested_at = strdup(PQgetvalue(old, 0, 5));
		if ((!PQgetisnull(old, 0, 0) && !o->mailbox) || (!PQgetisnull(old, 0, 3) && !o->message_id) ||
		    (!PQgetisnull(old, 0, 4) && !o->file_name) || !o->ingested_at) {
			origin_clear(&st->origin);
			st->origin = saved;
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
	st->reparse = true;
	st->reparse_original_id = original_id;
	rc = dc_extract((const uint8_t *)PQgetvalue(content, 0, 0), (size_t)PQgetlength(content, 0, 0),
		PQgetisnull(content, 0, 1) ? NULL : PQgetvalue(content, 0, 1), lim, &cb, stats, err);
	st->reparse = false;
	origin_clear(&st->origin);
	st->origin = saved;
	if (rc != DC_OK)
		goto out;
commit:
	rc = store_cmd(st, "COMMIT", err);
out:
	if (rc != DC_OK)
		store_cmd_quiet(st, "ROLLBACK");
	rc = store_refused(rc, err);
	PQclear(content);
	PQclear(old);
	return rc;
}

dc_code
dc_store_reparse(dc_store *st, const dc_limits *lim, dc_extract_stats *stats, dc_err *err)
{
	PGresult *res = NULL;
	int64_t *ids = NULL;
	int n;
	dc_code rc;
	dc_err scratch;

	if (err == NULL)
		err = &scratch;
	/* not the originals only failures refer to (rejected inputs: parsed
	 * again they would add a failure row at every reparse) */
	rc = store_exec(st, "SELECT o.id FROM dmarc.originals o"
		" WHERE EXISTS (SELECT 1 FROM dmarc.reports r WHERE r.original_id = o.id)"
		" OR NOT EXISTS (SELECT 1 FROM dmarc.failures f WHERE f.original_id = o.id) ORDER BY o.id",
		0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &res, "list originals", err);
	if (rc != DC_OK)
		return store_refused(rc, err);
	n = PQntuples(res);
	ids = calloc((size_t)n + 1, sizeof(*ids));
	if (ids == NULL) {
		PQclear(res);
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	}
	for (int i = 0; i < n; i++)
		ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	/* the new reports join the daily rollups every STORE_ROLLUP_EVERY
	 * originals and at the end, not at each original's COMMIT (sql/007) */
	if ((rc = dc_store_defer_rollups(st, true, err)) != DC_OK) {
		free(ids);
		return store_refused(rc, err);
	}
	for (int i = 0; i < n; i++) {
		if ((rc = reparse_one(st, ids[i], lim, stats, err)) != DC_OK)
			break;
		if ((i + 1) % STORE_ROLLUP_EVERY == 0 && (rc = dc_store_rollup_pending(st, NULL, err)) != DC_OK)
			break;
	}
	free(ids);
	return dc_store_rollup_end(st, rc, err);
}

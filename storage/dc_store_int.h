/*
 * dc_store_int.h - storage's private header: the dc_store struct and the
 * helpers its files share (dc_store.c, dc_migrate.c, dc_writer.c,
 * dc_batch.c, dc_failure.c, dc_rollup.c, dc_reparse.c, dc_mailbox.c,
 * dc_prune.c, dc_resolve_store.c, dc_alerts_sent.c, dc_senders.c).
 *
 * No product file outside storage/ includes it: the connection stays here.
 * Three programs do, for the raw connection (dc_store_conn) to check what
 * is not the store's business: the integration tests
 * tests/integration/test_store.c (counts rows, reads the backend PID) and
 * tests/integration/test_ingest.c (counts rows), and bench/resolve_bench.c
 * (resolve's own tables).
 *
 * How a report is written is two enums rather than five flags:
 *   store_scope  where the session's reports go (the caller chose it):
 *                their own transaction, the open batch, or reparse's
 *                transaction of one original (savepoints);
 *   store_write  how the report in progress travels (decided per report):
 *                none in progress, waiting in memory for the batch, as
 *                JSON in one statement at report_end (small), or by COPY.
 * A report is a savepoint when the scope is reparse, or batch and it does
 * not wait (store_in_savepoint).
 */
#ifndef DC_STORE_INT_H
#define DC_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <libpq-fe.h>

#include "dc_buf.h"
#include "dc_limits.h"
#include "dc_pg.h"
#include "dc_store.h"
#include "dc_utf8.h"

#define STORE_CHUNK_RECORDS 4096       /* records per COPY round */
#define STORE_CHUNK_BYTES   (8u << 20) /* or this much COPY text, whichever first */
#define STORE_COPY_PIECE    (1u << 20) /* bytes per PQputCopyData */
#define STORE_SHA256_LEN    32
#define STORE_TIME_MAX      80         /* a formatted timestamp, with room to spare */
#define STORE_SMALL_RECORDS 256        /* a report up to this size is written in one statement */
#define STORE_SMALL_BYTES   (1u << 20) /* ... while its JSON rows stay under this */

#define STORE_PREP_REPORT    1u  /* "dc_report": the report INSERT */
#define STORE_PREP_SMALL     2u  /* "dc_small": a small report's rows */
#define STORE_PREP_FIND_ORIG 4u  /* "dc_find_orig": an original by SHA-256 */
#define STORE_PREP_ADD_ORIG  8u  /* "dc_add_orig": a new original */
#define STORE_PREP_BATCH     16u /* "dc_batch": a batch's waiting reports */
#define STORE_PREP_TLS       32u /* "dc_tls": an SMTP TLS report, whole (dc_tls_store.c) */

#define STORE_BATCH_BYTES (8u << 20) /* a batch's waiting rows are sent when they pass this */
#define STORE_REPORT_IDS  256        /* report ids reserved per round trip in batch mode */
#define STORE_MONTHS      16         /* months remembered as having their partitions */
#define STORE_ID_BLOCKS   16         /* record id blocks reserved per round trip by a large report */

/* Where the session's reports go. */
typedef enum store_scope {
	STORE_SCOPE_OWN = 0, /* each report in its own transaction (BEGIN .. COMMIT) */
	STORE_SCOPE_BATCH,   /* dc_store_batch_begin .. _commit: one transaction */
	STORE_SCOPE_REPARSE, /* reparse: inside the transaction of one original */
} store_scope;

/* How the report in progress is written. */
typedef enum store_write {
	STORE_WRITE_NONE = 0, /* no report in progress */
	STORE_WRITE_WAIT,     /* batch: nothing sent; joins the batch at report_end */
	STORE_WRITE_SMALL,    /* rows also kept as JSON; one statement at report_end */
	STORE_WRITE_COPY,     /* rows sent by COPY in chunks */
} store_write;

typedef struct store_origin {
	char *mailbox;
	int64_t uidvalidity;
	int64_t uid;
	char *message_id;
	char *file_name;
	char *ingested_at; /* reparse only: keep the old row's time; else NULL = now() */
} store_origin;

struct dc_store {
	PGconn *conn;
	store_origin origin;
	store_scope scope;
	unsigned prepared; /* STORE_PREP_* bits: statements prepared on conn */

	/* the report in progress */
	store_write write;
	int64_t reparse_original_id;
	/* a report's original not stored yet: inserted at report_end, so that
	 * a report that fails leaves no dead copy of its bytes behind */
	bool late_orig;
	dc_blob late_blob; /* points into the unit, valid until report_end */
	uint8_t late_sha[STORE_SHA256_LEN];
	int64_t report_pk;
	uint64_t n_records;
	int64_t message_total;
	dc_buf key; /* escaped "date_begin\tpolicy_domain" of the report */

	/* record ids: [id_next, id_end) reserved from dmarc.records_id_seq,
	 * then the blocks id_blocks[block_next .. n_blocks) of id_step ids */
	int64_t id_next;
	int64_t id_end;
	int64_t id_blocks[STORE_ID_BLOCKS];
	size_t block_next, n_blocks;
	int64_t id_step;

	/* a COPY left open on the connection (the report's records) */
	bool copy_open;
	const char *copy_what;

	/* the chunk not yet sent: one COPY text line per record */
	size_t chunk_records;
	dc_buf rec;
	/* the record being added: its reasons, dkim_more and spf_more as JSON
	 * (scratch, reused per record) */
	dc_buf json;
	dc_buf more_dkim;
	dc_buf more_spf;

	/* STORE_WRITE_SMALL: the same rows as a JSON array, sent at report_end
	 * in one statement instead of COPYs */
	char begin[STORE_TIME_MAX];
	dc_buf jrec;

	/* months (year * 12 + month - 1) whose partitions this connection has
	 * had created (dmarc.create_partitions), most recent first: a report
	 * in its own transaction asks once per month, before its BEGIN */
	int32_t months[STORE_MONTHS];
	size_t n_months;
	bool batch_written; /* the open batch's transaction has written rows */

	/* batch mode (dc_batch.c): a report that waits (STORE_WRITE_WAIT) has
	 * its row as JSON in jreport (open: the totals are added at report_end),
	 * its original's bytes, SHA-256 and name in orig*; at report_end its row
	 * joins the batch's JSON array b_rep, its records (COPY text, as
	 * built in rec) the buffer b_rec, and its original the binary arrays a_* (bytea[], bytea[], text[]: no
	 * text encoding of the bytes) */
	int64_t cur_uid; /* its origin UID */
	dc_buf jreport;
	bool has_orig;
	uint8_t orig_sha[STORE_SHA256_LEN];
	dc_buf orig;
	dc_buf orig_name;
	bool orig_named;
	dc_buf a_sha;
	dc_buf a_content;
	dc_buf a_name;
	uint32_t a_n;                       /* originals in a_* */
	bool a_nulls;                       /* a_name holds a NULL */
	uint8_t last_sha[STORE_SHA256_LEN]; /* the last original added to a_* */
	dc_buf b_rep;
	dc_buf b_rec;
	struct {
		int64_t id, uid;
		uint64_t records;
		size_t end; /* where its rows end in b_rec */
	} * pend;           /* the waiting reports */
	size_t n_pend, cap_pend;
	struct {
		int64_t uid;
		uint64_t records;
	} * dups; /* the batch's sent duplicates */
	size_t n_dups, cap_dups;
	int64_t rids[STORE_REPORT_IDS]; /* reserved report ids, [rid_next, rid_n) unused */
	size_t rid_next, rid_n;
};

/* The connection, for the integration test and resolve's benchmark (see
 * the note above); storage's own files use st->conn. */
PGconn *dc_store_conn(dc_store *st);

/* True when the report in progress is a savepoint inside a longer
 * transaction (reparse, or a batch's report sent as it is read) rather than
 * a transaction of its own. */
static inline bool
store_in_savepoint(const dc_store *st)
{
	return st->scope == STORE_SCOPE_REPARSE ||
		(st->scope == STORE_SCOPE_BATCH && st->write != STORE_WRITE_WAIT);
}

/* ---- statements (dc_store.c) ---- */

/* Classifies a failed result (res may be NULL) and sets err: DC_ESCHEMA for
 * data the server rejected (SQLSTATE class 22, 23, 54000) on a live
 * connection, else dc_pg_fail's DC_EDB or DC_EDBREFUSED.  Returns the code. */
dc_code store_fail(dc_store *st, const PGresult *res, const char *what, dc_err *err);
/* rc for a statement that is not a report's: a data error there is the
 * server refusing it (DC_EDBREFUSED), not a bad input. */
dc_code store_refused(dc_code rc, dc_err *err);
/* dc_pg_exec on st->conn with DC_PG_DATA (see dc_pg.h). */
dc_code store_exec(dc_store *st, const char *sql, int n, const char *const *vals, const int *lens,
	const int *fmts, int result_fmt, ExecStatusType want, PGresult **out, const char *what, dc_err *err);
/* Like store_exec (text results), through the statement `name`, prepared on
 * the connection at its first use (bit in st->prepared): parsed and planned
 * once per connection instead of once per report. */
dc_code store_exec_prepared(dc_store *st, unsigned bit, const char *name, const char *sql, int n,
	const char *const *vals, const int *lens, const int *fmts, ExecStatusType want, PGresult **out,
	const char *what, dc_err *err);
/* A command without parameters or rows (BEGIN, COMMIT, SAVEPOINT ...). */
dc_code store_cmd(dc_store *st, const char *sql, dc_err *err);
/* Runs sql ignoring the outcome (ROLLBACK on a connection that may be gone). */
void store_cmd_quiet(dc_store *st, const char *sql);
/* A report handed over whole (TLS, failure report): BEGIN/COMMIT/ROLLBACK
 * under STORE_SCOPE_OWN, else SAVEPOINT name / RELEASE / ROLLBACK TO inside
 * the batch's or reparse's transaction. */
dc_code store_unit_begin(dc_store *st, const char *name, dc_err *err);
dc_code store_unit_end(dc_store *st, const char *name, dc_err *err);
void store_unit_abort(dc_store *st, const char *name);

/* ---- values (dc_store.c) ---- */

/* Formats epoch seconds as a timestamptz literal in UTC; false when the
 * time is outside years 1..9999. */
bool store_format_time(int64_t t, char out[STORE_TIME_MAX]);
/* out = the SHA-256 of b's bytes: the one dc_extract computed once per
 * unit when there is one, else hashed here. */
void store_blob_sha256(const dc_blob *b, uint8_t out[STORE_SHA256_LEN]);
/* Frees o's strings and resets it to "unknown". */
void store_origin_clear(store_origin *o);

/* True when s (NUL-terminated; NULL is fine) is well-formed UTF-8 as
 * PostgreSQL accepts it (dc_utf8.h).  An ASCII prefix, which is most
 * values, is skipped here without a call per byte. */
static inline bool
store_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (p == NULL)
		return true;
	while (*p != 0 && *p < 0x80)
		p++;
	return *p == 0 || dc_utf8_valid((const char *)p, strlen((const char *)p));
}

/* A copy of s (NULL: "") with every byte that is not part of valid UTF-8
 * replaced by '?', for texts we only record (failure reasons).  Caller
 * frees; NULL when out of memory. */
static inline char *
store_utf8_sanitize(const char *s)
{
	return dc_utf8_sanitize(s ? s : "", s ? strlen(s) : 0, "?", 0, NULL);
}

/* ---- buffers (dc_store_fmt.c) ----
 * Storage's buffers are dc_bufs of at most DC_MAX_STORE_BUF bytes; the
 * appenders below return false on a failure (out of memory, or past that
 * maximum: the writer then fails as out of memory). */

/* Initialises b for storage (empty, DC_MAX_STORE_BUF). */
static inline void
store_buf_init(dc_buf *b)
{
	dc_buf_init(b, DC_MAX_STORE_BUF);
}

/* Appends n bytes; the common case (room, no failure) without a call. */
static inline bool
store_add(dc_buf *b, const void *s, size_t n)
{
	if (b->code == DC_OK && b->cap - b->len > n) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
		b->p[b->len] = '\0';
		return true;
	}
	return dc_buf_add(b, s, n) == DC_OK;
}

/* Appends one byte. */
static inline bool
store_addc(dc_buf *b, char c)
{
	if (b->code == DC_OK && b->cap - b->len > 1) {
		b->p[b->len++] = c;
		b->p[b->len] = '\0';
		return true;
	}
	return dc_buf_add(b, &c, 1) == DC_OK;
}

/* Appends s escaped for COPY text format; NULL becomes \N. */
bool store_copy_text(dc_buf *b, const char *s);
/* Appends v in decimal. */
bool store_i64(dc_buf *b, int64_t v);
/* Appends n bytes as a JSON string holding PostgreSQL's bytea hex input
 * ("\\x0a1b..."). */
bool store_json_bytea(dc_buf *b, const uint8_t *data, size_t n);
/* Appends s as a JSON string (RFC 8259), or null. */
bool store_json_string(dc_buf *b, const char *s);
/* Appends ,"name": (or "name": first in an object). */
bool store_json_key(dc_buf *b, const char *name, bool first);
/* Opens the next object of a JSON array buffer started with '['. */
bool store_json_open(dc_buf *b);
/* Empties b and starts a JSON array in it. */
bool store_json_array_start(dc_buf *b);

/* PostgreSQL's binary array format (array_send): a one-dimensional array
 * is a 20-byte header, then per element its length (-1: NULL) and bytes. */
#define STORE_OID_BYTEA 17
#define STORE_OID_TEXT  25
/* Empties b and starts an empty binary array in it (room for the header). */
bool store_arr_start(dc_buf *b);
/* Appends an element of n bytes (p NULL: a NULL element). */
bool store_arr_add(dc_buf *b, const void *p, size_t n);
/* Writes the header of b's array of n elements of type oid. */
void store_arr_finish(dc_buf *b, uint32_t n, uint32_t oid, bool nulls);

/* ---- the writer (dc_writer.c) ---- */

/* dmarc.records' columns in the order of the COPY text and JSON objects
 * the writer builds (chunk_add, json_add). */
#define STORE_RECORD_COLUMNS \
	"id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count, disposition," \
	" dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to, reasons, dkim_count," \
	" spf_count, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_domain, spf_scope," \
	" spf_result, spf_human_result, dkim_more, spf_more"
#define STORE_COPY_RECORDS "COPY dmarc.records (" STORE_RECORD_COLUMNS ") FROM STDIN"

/* Forgets the buffered chunk (memory is kept for the next one). */
void store_chunk_reset(dc_store *st);
/* Ends a COPY left open (st->copy_open; else DC_OK): abort refuses it
 * (nothing of it kept, returns DC_OK); else its outcome, err (may be NULL)
 * set on failure.  Every statement sent through store_exec,
 * store_exec_prepared, store_cmd or store_cmd_quiet ends it first. */
dc_code store_copy_end(dc_store *st, bool abort, dc_err *err);
/* Sends buf as one COPY ... FROM STDIN and reads every result. */
dc_code store_copy_in(dc_store *st, const char *sql, const dc_buf *buf, const char *what, dc_err *err);
/* Ends the report's transaction (or savepoint) without keeping anything. */
void store_report_rollback(dc_store *st);

/* ---- partitions (dc_partition.c) ---- */

/* Has the partitions of the month of t (epoch seconds; begin is its
 * timestamptz text) created, in a transaction of its own, unless this
 * connection already did: dmarc.create_partitions(begin, begin).  Own
 * scope: call it before the report's BEGIN.  Batch scope: only while the
 * batch has written nothing (its empty transaction is ended and begun
 * again); else, and in reparse, nothing is done. */
dc_code store_ensure_month(dc_store *st, int64_t t, const char *begin, dc_err *err);

/* ---- originals and failures (dc_failure.c) ---- */

/* Finds the original unit by its SHA-256, or (insert) inserts it; sets *id
 * (-1: not there and not inserted). */
dc_code store_original(dc_store *st, const dc_blob *b, int64_t *id, bool insert, dc_err *err);
/* Inserts one row into dmarc.failures with the current origin; unit (may
 * be NULL) is kept once in dmarc.originals. */
dc_code
store_insert_failure(dc_store *st, const char *stage, const char *reason, const dc_blob *unit, dc_err *err);
/* dc_extract's failure callback (dc_store_callbacks): records the rejected
 * unit's bytes. */
dc_code store_failure_cb(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err);

/* ---- SMTP TLS reports (dc_tls_store.c) ---- */

/* The sink's tls_report: stores one TLS report whole, in its own
 * transaction or a savepoint of the scope's; DC_SKIP for a duplicate
 * (nothing kept), DC_ESCHEMA for a value the store refuses, else
 * DC_EDB / DC_EDBREFUSED / DC_ENOMEM. */
dc_code store_tls_report(void *ctx, const struct dc_tls_report *r, const dc_blob *origin, dc_err *err);
/* ---- failure reports (dc_failure_report.c) ---- */

/* The sink's failure_report (dc_store_callbacks): the report and its
 * original, in a transaction of their own or a savepoint; DC_SKIP for a
 * second copy. */
dc_code store_failure_report_cb(void *ctx, const struct dc_arf_report *r, const dc_blob *origin, dc_err *err);

/* ---- batch mode (dc_batch.c) ---- */

/* report_begin in batch mode: sets *deferred when the report waits (its
 * row and original kept in memory, a report id reserved for it). */
dc_code store_defer_report(dc_store *st, const dc_report *r, const char *begin, const char *end,
	const dc_blob *origin, const char *file_name, bool *deferred, dc_err *err);
/* report_end of a waiting report: adds it to the batch (sent past
 * STORE_BATCH_BYTES). */
dc_code store_batch_add(dc_store *st, const dc_report *r, dc_err *err);
/* A waiting report that stopped being small: sent now in a savepoint and
 * goes on by COPY (st->write becomes STORE_WRITE_COPY); DC_SKIP when it is
 * a duplicate. */
dc_code store_materialize(dc_store *st, dc_err *err);

#endif

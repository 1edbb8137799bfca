/*
 * dc_writer.c - the report writer: the sink of dc_report.h that stores
 * one report at a time, its records written by COPY in bounded chunks,
 * duplicates decided by the reports' unique key.
 *
 * A record is one row of dmarc.records (sql/migrations/001_tables.sql): its
 * first DKIM and first SPF result in the dkim_* and spf_* columns, the
 * second and later ones as JSON arrays in dkim_more and spf_more (objects
 * {"domain", "selector"|"scope", "result", "human_result"}, JSON null for
 * an absent value; the column NULL when the record has at most one), the
 * totals in dkim_count and spf_count.  There is no table per result: the
 * views dmarc.dkim_results and dmarc.spf_results unfold them.
 *
 * Writing a report:
 *   report_begin  a report of a month this connection has not seen yet
 *                 first has that month's partitions created when it can
 *                 (in a transaction of their own: store_ensure_month,
 *                 dc_partition.c); then BEGIN; find the original (by SHA-256: new bytes are only
 *                 inserted at report_end, so a report that fails leaves no
 *                 dead copy of them behind); INSERT the
 *                 report ... ON CONFLICT ON CONSTRAINT reports_unique_report
 *                 DO NOTHING; no row back means a duplicate: ROLLBACK, DC_SKIP.
 *                 A concurrent writer of the same report blocks on the unique
 *                 index until the first commits, then sees the duplicate.
 *   record        validated (UTF-8, source_ip by inet_pton, ranges), then
 *                 appended as one line to the COPY text buffer; record ids
 *                 come from blocks of dmarc.records_id_seq (one nextval() =
 *                 a block of `increment_by` ids).  A full chunk is sent as
 *                 one COPY, so memory stays flat.
 *   report_end    flush, insert a new original, UPDATE the report's totals, errors and original_id, COMMIT.
 *   report_abort  ROLLBACK: nothing of the report remains.
 *
 * The write strategy of the report in progress is st->write (see
 * dc_store_int.h), one switch per step:
 *   STORE_WRITE_SMALL  up to STORE_SMALL_RECORDS records (none flushed yet):
 *                 the COPY is skipped; the rows were also kept as a JSON
 *                 array and go, with the totals, in one prepared statement
 *                 (INSERT ... SELECT FROM json_populate_recordset in a CTE
 *                 + the UPDATE), then COMMIT.  Same values, same
 *                 transaction; report_end costs 2 round trips instead of 4
 *                 (COPY of 2, UPDATE, COMMIT).  The report
 *                 INSERT and the original's lookup and insert are prepared
 *                 statements too (once per connection).
 *   STORE_WRITE_COPY   a report that outgrew that: rows by COPY.
 *   STORE_WRITE_WAIT   batch mode: nothing is sent; dc_batch.c takes the
 *                 report at report_end, or sends it (store_materialize)
 *                 when it stops being small.
 * st->scope says BEGIN/COMMIT or SAVEPOINT/RELEASE: in reparse, and for a
 * batch's report that does not wait, the report is a savepoint.
 *
 * Deliberately not here: batches (dc_batch.c), originals and failures
 * (dc_failure.c).  The COPY data is text format (PostgreSQL docs, "COPY",
 * File Formats).
 */
#include "dc_store_int.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Forgets the buffered chunk (memory is kept for the next one). */
void
store_chunk_reset(dc_store *st)
{
	st->chunk_records = 0;
	dc_buf_reset(&st->rec);
}

/* Opens COPY sql ... FROM STDIN on the connection (st->copy_open). */
static dc_code
copy_start(dc_store *st, const char *sql, const char *what, dc_err *err)
{
	PGresult *res = PQexec(st->conn, sql);
	dc_code rc = DC_OK;

	if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN)
		rc = store_fail(st, res, what, err);
	else
		st->copy_open = true;
	st->copy_what = what;
	PQclear(res);
	return rc;
}

/* Sends buf's bytes into the open COPY, in pieces.  On failure the COPY is
 * ended (aborted). */
static dc_code
copy_put(dc_store *st, const dc_buf *buf, dc_err *err)
{
	dc_code rc;

	for (size_t off = 0; off < buf->len;) {
		size_t n = buf->len - off > STORE_COPY_PIECE ? STORE_COPY_PIECE : buf->len - off;
		if (PQputCopyData(st->conn, buf->p + off, (int)n) != 1) {
			rc = store_fail(st, NULL, st->copy_what, err);
			store_copy_end(st, true, NULL);
			return rc;
		}
		off += n;
	}
	/* libpq holds back the tail of a message (under 8 KiB) and the server
	 * reads a CopyData message whole: pushed out now, the server stores
	 * the chunk while the next one is parsed */
	if (PQflush(st->conn) != 0) {
		rc = store_fail(st, NULL, st->copy_what, err);
		store_copy_end(st, true, NULL);
		return rc;
	}
	return DC_OK;
}

/* Ends the open COPY (abort: refused by the client, nothing of it kept)
 * and reads every result; err (may be NULL) gets the COPY's failure. */
dc_code
store_copy_end(dc_store *st, bool abort, dc_err *err)
{
	PGresult *res;
	dc_code rc = DC_OK;
	bool first = true;
	dc_err scratch;

	if (!st->copy_open)
		return DC_OK;
	st->copy_open = false;
	if (err == NULL || abort)
		err = &scratch;
	if (PQputCopyEnd(st->conn, abort ? "aborted by the client" : NULL) != 1)
		rc = store_fail(st, NULL, st->copy_what, err);
	/* read until NULL: the COPY's own result first, then nothing */
	while ((res = PQgetResult(st->conn)) != NULL) {
		if (first && rc == DC_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = store_fail(st, res, st->copy_what, err);
		first = false;
		PQclear(res);
		if (PQstatus(st->conn) == CONNECTION_BAD)
			break;
	}
	if (first && rc == DC_OK)
		rc = store_fail(st, NULL, st->copy_what, err);
	return abort ? DC_OK : rc;
}

/* Sends buf as one COPY ... FROM STDIN and reads every result. */
dc_code
store_copy_in(dc_store *st, const char *sql, const dc_buf *buf, const char *what, dc_err *err)
{
	dc_code rc = copy_start(st, sql, what, err);

	if (rc == DC_OK)
		rc = copy_put(st, buf, err);
	if (rc == DC_OK)
		rc = store_copy_end(st, false, err);
	return rc;
}

/* Sends the chunk into the report's COPY, opened at its first chunk and
 * left open: the server stores these rows while the next ones are parsed.
 * It is ended at report_end, or by the next other statement (a refill of
 * record ids: store_exec ends it first).  The buffer is empty afterwards
 * whatever the outcome. */
static dc_code
chunk_flush(dc_store *st, dc_err *err)
{
	dc_code rc = DC_OK;

	if (st->chunk_records == 0)
		return DC_OK;
	if (!st->copy_open)
		rc = copy_start(st, STORE_COPY_RECORDS, "store records", err);
	if (rc == DC_OK)
		rc = copy_put(st, &st->rec, err);
	store_chunk_reset(st);
	return rc;
}

/* Takes the next record id, from the reserved blocks, reserving more when
 * they are used: one nextval() yields a block of the sequence's increment;
 * a report past its first chunk reserves STORE_ID_BLOCKS blocks in one
 * round trip, so that its COPY is seldom interrupted for ids. */
static dc_code
next_record_id(dc_store *st, int64_t *id, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc;
	char k[16];
	const char *vals[1] = { k };
	int n;

	if (st->id_next < st->id_end) {
		*id = st->id_next++;
		return DC_OK;
	}
	if (st->block_next >= st->n_blocks) {
		snprintf(k, sizeof(k), "%d", st->n_records >= STORE_CHUNK_RECORDS ? STORE_ID_BLOCKS : 1);
		rc = store_exec(st,
			"SELECT pg_catalog.nextval('dmarc.records_id_seq'), s.increment_by"
			" FROM pg_catalog.pg_sequences s, pg_catalog.generate_series(1, $1::integer)"
			" WHERE s.schemaname = 'dmarc' AND s.sequencename = 'records_id_seq'",
			1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, &res, "reserve record ids", err);
		if (rc != DC_OK)
			return rc;
		n = PQntuples(res);
		if (n < 1 || n > STORE_ID_BLOCKS) {
			PQclear(res);
			return dc_err_set(err, DC_EDB, "reserve record ids: dmarc.records_id_seq not found");
		}
		st->id_step = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		for (int i = 0; i < n; i++)
			st->id_blocks[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		PQclear(res);
		st->n_blocks = (size_t)n;
		st->block_next = 0;
		if (st->id_step < 1 || st->id_blocks[0] < 1) {
			st->n_blocks = 0;
			return dc_err_set(
				err, DC_EDB, "reserve record ids: dmarc.records_id_seq must count upwards");
		}
	}
	st->id_next = st->id_blocks[st->block_next++];
	st->id_end = st->id_next + st->id_step;
	*id = st->id_next++;
	return DC_OK;
}

/* Ends the report's transaction (or savepoint) without keeping anything. */
void
store_report_rollback(dc_store *st)
{
	store_chunk_reset(st);
	if (st->write == STORE_WRITE_WAIT) {
		/* nothing of it was sent */
	} else if (store_in_savepoint(st)) {
		store_cmd_quiet(st, "ROLLBACK TO SAVEPOINT dc_report");
		store_cmd_quiet(st, "RELEASE SAVEPOINT dc_report");
	} else {
		store_cmd_quiet(st, "ROLLBACK");
	}
	st->write = STORE_WRITE_NONE;
	st->late_orig = false;
}

/* The report's text fields, checked for UTF-8 before anything is sent. */
static dc_code
check_report_text(const dc_report *r, const dc_blob *origin, dc_err *err)
{
	const struct {
		const char *name;
		const char *v;
	} f[] = {
		{ "org_name", r->org_name },
		{ "email", r->org_email },
		{ "extra_contact_info", r->extra_contact_info },
		{ "report_id", r->report_id },
		{ "generator", r->generator },
		{ "error", r->errors },
		{ "domain", r->policy_domain },
		{ "adkim", r->policy_adkim },
		{ "aspf", r->policy_aspf },
		{ "p", r->policy_p },
		{ "sp", r->policy_sp },
		{ "np", r->policy_np },
		{ "testing", r->policy_testing },
		{ "discovery_method", r->policy_discovery_method },
		{ "fo", r->policy_fo },
		{ "version", r->version },
		{ "xmlns", r->xmlns },
		{ "origin path", origin ? origin->path : NULL },
	};
	size_t keylen = 0;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!store_utf8_valid(f[i].v))
			return dc_err_set(err, DC_ESCHEMA, "report %s is not valid UTF-8", f[i].name);
	/* the unique key is a btree entry: keep it well under its ~2700-byte cap */
	keylen = (r->org_name ? strlen(r->org_name) : 0) + (r->policy_domain ? strlen(r->policy_domain) : 0) +
		(r->report_id ? strlen(r->report_id) : 0);
	if (keylen > 2400)
		return dc_err_set(
			err, DC_ESCHEMA, "report org_name, domain and report_id together exceed 2400 bytes");
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

	if (st->write != STORE_WRITE_NONE)
		store_report_rollback(st);
	store_chunk_reset(st);
	if (!store_format_time(r->date_begin, begin))
		return dc_err_set(
			err, DC_ESCHEMA, "report date_begin %" PRId64 " is out of range", r->date_begin);
	if (!store_format_time(r->date_end, end))
		return dc_err_set(
			err, DC_ESCHEMA, "report date_end %" PRId64 " is out of range", r->date_end);
	if ((rc = check_report_text(r, origin, err)) != DC_OK)
		return rc;
	if (origin != NULL && origin->name != NULL && !store_utf8_valid(origin->name)) {
		/* keep the bytes, drop a name we could not store */
		clean = (dc_blob){ .data = origin->data,
			.len = origin->len,
			.path = origin->path,
			.sha256 = origin->sha256 };
		origin = &clean;
	}

	file_name = st->origin.file_name ? st->origin.file_name : origin ? origin->name : NULL;
	if (file_name != NULL && !store_utf8_valid(file_name))
		file_name = NULL;
	/* the report's month's partitions first, in a transaction of their
	 * own (never inside the report's: they take ACCESS EXCLUSIVE locks) */
	if ((rc = store_ensure_month(st, r->date_begin, begin, err)) != DC_OK)
		return rc;
	if (st->scope == STORE_SCOPE_BATCH) {
		bool deferred = false;

		if ((rc = store_defer_report(st, r, begin, end, origin, file_name, &deferred, err)) != DC_OK)
			return rc;
		if (deferred) {
			st->write = STORE_WRITE_WAIT;
			goto started;
		}
	}
	/* sent as it is read: small (JSON rows at report_end) until it grows */
	st->write = STORE_WRITE_SMALL;
	if ((rc = store_cmd(st, store_in_savepoint(st) ? "SAVEPOINT dc_report" : "BEGIN", err)) != DC_OK) {
		st->write = STORE_WRITE_NONE;
		return rc;
	}

	if (st->scope == STORE_SCOPE_REPARSE) {
		original_id = st->reparse_original_id;
	} else if (origin != NULL && origin->data != NULL) {
		if ((rc = store_original(st, origin, &original_id, false, err)) != DC_OK)
			goto fail;
		if (original_id < 0) {
			/* new bytes: sent at report_end, once the report is good */
			store_blob_sha256(origin, st->late_sha);
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
			r->org_name,
			r->org_email,
			r->extra_contact_info,
			r->report_id,
			r->policy_domain,
			begin,
			end,
			r->policy_p,
			r->policy_sp,
			r->policy_np,
			r->policy_adkim,
			r->policy_aspf,
			r->policy_pct >= 0 ? pct : NULL,
			r->policy_fo,
			r->policy_testing,
			r->policy_discovery_method,
			r->generator,
			r->version,
			r->xmlns,
			r->errors,
			st->origin.mailbox,
			st->origin.uidvalidity >= 0 ? uidv : NULL,
			st->origin.uid >= 0 ? uid : NULL,
			st->origin.message_id,
			file_name,
			original_id >= 0 ? orig : NULL,
			origin ? origin->path : NULL,
			st->origin.ingested_at,
		};
		memcpy(vals, v, sizeof(vals));
	}
	rc = store_exec_prepared(st, STORE_PREP_REPORT, "dc_report", sql, 28, vals, NULL, NULL,
		PGRES_TUPLES_OK, &res, "store report", err);
	if (rc != DC_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		/* the same report is already stored (or was, by a concurrent writer) */
		PQclear(res);
		store_report_rollback(st);
		return DC_SKIP;
	}
	st->report_pk = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
started:
	st->n_records = 0;
	st->message_total = 0;
	dc_buf_reset(&st->key);
	memcpy(st->begin, begin, sizeof(st->begin));
	dc_buf_reset(&st->jrec);
	if (st->write == STORE_WRITE_SMALL && !store_addc(&st->jrec, '['))
		st->write = STORE_WRITE_COPY;
	if (!store_add(&st->key, begin, strlen(begin)) || !store_addc(&st->key, '\t') ||
		!store_copy_text(&st->key, r->policy_domain)) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto fail;
	}
	return DC_OK;
fail:
	store_report_rollback(st);
	return rc;
}

/* Checks one record before anything of it is buffered; canonical source_ip
 * text goes to ip (empty when absent or empty: stored as NULL). */
static dc_code
check_record(const dc_record *rec, char ip[INET6_ADDRSTRLEN], dc_err *err)
{
	const struct {
		const char *name;
		const char *v;
	} f[] = {
		{ "disposition", rec->disposition },
		{ "dkim", rec->dkim_aligned },
		{ "spf", rec->spf_aligned },
		{ "header_from", rec->header_from },
		{ "envelope_from", rec->envelope_from },
		{ "envelope_to", rec->envelope_to },
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
		while (len > 0 &&
			(s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n'))
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
		if (!store_utf8_valid(f[i].v))
			return dc_err_set(
				err, DC_ESCHEMA, "record %" PRIu64 ": %s is not valid UTF-8", n, f[i].name);
	for (size_t i = 0; i < rec->n_reasons; i++)
		if (!store_utf8_valid(rec->reasons[i].type) || !store_utf8_valid(rec->reasons[i].comment))
			return dc_err_set(
				err, DC_ESCHEMA, "record %" PRIu64 ": reason is not valid UTF-8", n);
	for (size_t i = 0; i < rec->n_dkim; i++) {
		const dc_dkim_result *d = &rec->dkim[i];
		if (!store_utf8_valid(d->domain) || !store_utf8_valid(d->selector) ||
			!store_utf8_valid(d->result) || !store_utf8_valid(d->human_result))
			return dc_err_set(
				err, DC_ESCHEMA, "record %" PRIu64 ": dkim result is not valid UTF-8", n);
	}
	for (size_t i = 0; i < rec->n_spf; i++) {
		const dc_spf_result *s = &rec->spf[i];
		if (!store_utf8_valid(s->domain) || !store_utf8_valid(s->scope) ||
			!store_utf8_valid(s->result) || !store_utf8_valid(s->human_result))
			return dc_err_set(
				err, DC_ESCHEMA, "record %" PRIu64 ": spf result is not valid UTF-8", n);
	}
	return DC_OK;
bad_ip:
	return dc_err_set(err, DC_ESCHEMA, "record %" PRIu64 ": source_ip '%.64s' is not an IP address", n,
		rec->source_ip);
}

/* The names of an auth result's four values, in the order auth_values
 * gives them: dkim_more's and spf_more's keys. */
static const char *const dkim_keys[4] = { "domain", "selector", "result", "human_result" };
static const char *const spf_keys[4] = { "domain", "scope", "result", "human_result" };

/* v = the four values (NULL: absent) of the record's auth result i, DKIM or
 * (spf) SPF. */
static void
auth_values(const dc_record *rec, bool spf, size_t i, const char *v[4])
{
	if (spf) {
		const dc_spf_result *s = &rec->spf[i];
		v[0] = s->domain;
		v[1] = s->scope;
		v[2] = s->result;
		v[3] = s->human_result;
	} else {
		const dc_dkim_result *d = &rec->dkim[i];
		v[0] = d->domain;
		v[1] = d->selector;
		v[2] = d->result;
		v[3] = d->human_result;
	}
}

/* b = the record's second and later DKIM (or, spf, SPF) results as a JSON
 * array of objects, or empty when it has at most one (the column is then
 * NULL).  False when out of memory. */
static bool
auth_more(dc_buf *b, const dc_record *rec, bool spf)
{
	const char *const *keys = spf ? spf_keys : dkim_keys;
	size_t n = spf ? rec->n_spf : rec->n_dkim;
	const char *v[4];
	bool ok;

	dc_buf_reset(b);
	if (n < 2)
		return true;
	ok = store_addc(b, '[');
	for (size_t i = 1; ok && i < n; i++) {
		auth_values(rec, spf, i, v);
		ok = (i == 1 || store_addc(b, ',')) && store_addc(b, '{');
		for (int k = 0; ok && k < 4; k++)
			ok = store_json_key(b, keys[k], k == 0) && store_json_string(b, v[k]);
		ok = ok && store_addc(b, '}');
	}
	return ok && store_addc(b, ']');
}

/* Appends the COPY text of the record's first DKIM (or SPF) result's four
 * columns, each followed by a tab (\N when it has none). */
static bool
copy_auth_first(dc_buf *b, const dc_record *rec, bool spf)
{
	const char *v[4] = { NULL, NULL, NULL, NULL };
	bool ok = true;

	if ((spf ? rec->n_spf : rec->n_dkim) > 0)
		auth_values(rec, spf, 0, v);
	for (int k = 0; ok && k < 4; k++)
		ok = store_copy_text(b, v[k]) && store_addc(b, '\t');
	return ok;
}

/* Appends a JSON array kept in more (empty: none) as a COPY value. */
static bool
copy_more(dc_buf *b, const dc_buf *more)
{
	return more->len > 0 ? store_copy_text(b, more->p) : store_add(b, "\\N", 2);
}

/* Appends the record's row (STORE_COPY_RECORDS's columns) to the chunk
 * buffer; its reasons, dkim_more and spf_more are left as JSON in st->json,
 * st->more_dkim and st->more_spf for json_add.  False when out of memory. */
static bool
chunk_add(dc_store *st, const dc_record *rec, int64_t id, const char *ip)
{
	dc_buf *b = &st->rec;
	bool ok;

	ok = store_i64(b, id) && store_addc(b, '\t') && store_i64(b, st->report_pk) && store_addc(b, '\t') &&
		store_add(b, st->key.p, st->key.len) && store_addc(b, '\t') &&
		store_i64(b, (int64_t)rec->ordinal) && store_addc(b, '\t') &&
		(ip[0] ? store_add(b, ip, strlen(ip)) : store_add(b, "\\N", 2)) && store_addc(b, '\t') &&
		(rec->message_count >= 0 ? store_i64(b, rec->message_count) : store_add(b, "\\N", 2)) &&
		store_addc(b, '\t') && store_copy_text(b, rec->disposition) && store_addc(b, '\t') &&
		store_copy_text(b, rec->dkim_aligned) && store_addc(b, '\t') &&
		store_copy_text(b, rec->spf_aligned) && store_addc(b, '\t') &&
		store_copy_text(b, rec->header_from) && store_addc(b, '\t') &&
		store_copy_text(b, rec->envelope_from) && store_addc(b, '\t') &&
		store_copy_text(b, rec->envelope_to) && store_addc(b, '\t');
	if (!ok)
		return false;
	if (rec->n_reasons == 0) {
		ok = store_add(b, "\\N", 2);
	} else {
		dc_buf_reset(&st->json);
		ok = store_addc(&st->json, '[');
		for (size_t i = 0; ok && i < rec->n_reasons; i++)
			ok = (i == 0 || store_addc(&st->json, ',')) &&
				store_add(&st->json, "{\"type\":", 8) &&
				store_json_string(&st->json, rec->reasons[i].type) &&
				store_add(&st->json, ",\"comment\":", 11) &&
				store_json_string(&st->json, rec->reasons[i].comment) &&
				store_addc(&st->json, '}');
		ok = ok && store_addc(&st->json, ']') && store_copy_text(b, st->json.p);
	}
	return ok && store_addc(b, '\t') && store_i64(b, (int64_t)rec->n_dkim) && store_addc(b, '\t') &&
		store_i64(b, (int64_t)rec->n_spf) && store_addc(b, '\t') && copy_auth_first(b, rec, false) &&
		copy_auth_first(b, rec, true) && auth_more(&st->more_dkim, rec, false) &&
		auth_more(&st->more_spf, rec, true) && copy_more(b, &st->more_dkim) && store_addc(b, '\t') &&
		copy_more(b, &st->more_spf) && store_addc(b, '\n');
}

/* Appends the JSON keys prefix_domain .. prefix_human_result of the
 * record's first DKIM (or SPF) result (nulls when it has none). */
static bool
json_auth_first(dc_buf *b, const dc_record *rec, bool spf)
{
	static const char *const dkim_cols[4] = { "dkim_domain", "dkim_selector", "dkim_result",
		"dkim_human_result" };
	static const char *const spf_cols[4] = { "spf_domain", "spf_scope", "spf_result",
		"spf_human_result" };
	const char *v[4] = { NULL, NULL, NULL, NULL };
	bool ok = true;

	if ((spf ? rec->n_spf : rec->n_dkim) > 0)
		auth_values(rec, spf, 0, v);
	for (int k = 0; ok && k < 4; k++)
		ok = store_json_key(b, spf ? spf_cols[k] : dkim_cols[k], false) && store_json_string(b, v[k]);
	return ok;
}

/* Appends the record's row as a JSON object to the small-report array,
 * with exactly the values chunk_add puts in the COPY text (the reasons,
 * dkim_more and spf_more arrays are the ones chunk_add just built).  False
 * when out of memory. */
static bool
json_add(dc_store *st, const dc_report *r, const dc_record *rec, int64_t id, const char *ip)
{
	dc_buf *b = &st->jrec;

	return store_json_open(b) && store_json_key(b, "id", true) && store_i64(b, id) &&
		store_json_key(b, "report_id", false) && store_i64(b, st->report_pk) &&
		store_json_key(b, "date_begin", false) && store_json_string(b, st->begin) &&
		store_json_key(b, "policy_domain", false) && store_json_string(b, r->policy_domain) &&
		store_json_key(b, "ordinal", false) && store_i64(b, (int64_t)rec->ordinal) &&
		store_json_key(b, "source_ip", false) && store_json_string(b, ip[0] ? ip : NULL) &&
		store_json_key(b, "message_count", false) &&
		(rec->message_count >= 0 ? store_i64(b, rec->message_count) : store_add(b, "null", 4)) &&
		store_json_key(b, "disposition", false) && store_json_string(b, rec->disposition) &&
		store_json_key(b, "dkim_aligned", false) && store_json_string(b, rec->dkim_aligned) &&
		store_json_key(b, "spf_aligned", false) && store_json_string(b, rec->spf_aligned) &&
		store_json_key(b, "header_from", false) && store_json_string(b, rec->header_from) &&
		store_json_key(b, "envelope_from", false) && store_json_string(b, rec->envelope_from) &&
		store_json_key(b, "envelope_to", false) && store_json_string(b, rec->envelope_to) &&
		store_json_key(b, "reasons", false) &&
		(rec->n_reasons > 0 ? store_add(b, st->json.p, st->json.len) : store_add(b, "null", 4)) &&
		store_json_key(b, "dkim_count", false) && store_i64(b, (int64_t)rec->n_dkim) &&
		store_json_key(b, "spf_count", false) && store_i64(b, (int64_t)rec->n_spf) &&
		json_auth_first(b, rec, false) && json_auth_first(b, rec, true) &&
		store_json_key(b, "dkim_more", false) &&
		(st->more_dkim.len > 0 ? store_add(b, st->more_dkim.p, st->more_dkim.len) :
					 store_add(b, "null", 4)) &&
		store_json_key(b, "spf_more", false) &&
		(st->more_spf.len > 0 ? store_add(b, st->more_spf.p, st->more_spf.len) :
					store_add(b, "null", 4)) &&
		store_addc(b, '}');
}

/* Sink record: validates and buffers one record, sending the chunk when it
 * is full.  DC_ESCHEMA for bad values, DC_EDB when the server failed. */
static dc_code
store_record(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err)
{
	dc_store *st = ctx;
	char ip[INET6_ADDRSTRLEN];
	int64_t id = 0;
	bool grown = false;
	dc_code rc;

	if (st->write == STORE_WRITE_NONE)
		return dc_err_set(err, DC_EDB, "store record: no report in progress");
	if ((rc = check_record(rec, ip, err)) != DC_OK)
		return rc;
	if (rec->message_count > 0 &&
		__builtin_add_overflow(st->message_total, rec->message_count, &st->message_total))
		return dc_err_set(
			err, DC_ESCHEMA, "record %" PRIu64 ": message counts overflow", rec->ordinal);
	if ((rc = next_record_id(st, &id, err)) != DC_OK)
		return rc;
	if (!chunk_add(st, rec, id, ip))
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	switch (st->write) {
	case STORE_WRITE_WAIT:
		/* its rows go with the batch as COPY text (the chunk buffers): no
		 * JSON for them.  One that stops being small is sent now, before
		 * any COPY (a chunk is far larger than a small report). */
		grown = st->n_records >= STORE_SMALL_RECORDS || st->rec.len >= STORE_SMALL_BYTES;
		break;
	case STORE_WRITE_SMALL:
		if (st->n_records >= STORE_SMALL_RECORDS) {
			st->write = STORE_WRITE_COPY;
			break;
		}
		if (!json_add(st, r, rec, id, ip))
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		if (st->jrec.len >= STORE_SMALL_BYTES)
			st->write = STORE_WRITE_COPY;
		break;
	case STORE_WRITE_COPY:
	case STORE_WRITE_NONE: break;
	}
	st->n_records++;
	st->chunk_records++;
	if (grown && (rc = store_materialize(st, err)) != DC_OK)
		return rc;
	if (st->chunk_records >= STORE_CHUNK_RECORDS || st->rec.len >= STORE_CHUNK_BYTES) {
		/* part of it is sent by COPY: the rest goes the same way */
		st->write = STORE_WRITE_COPY;
		return chunk_flush(st, err);
	}
	return DC_OK;
}

/* Sink report_end: sends the rest, stores the totals and commits (or
 * releases the savepoint).  On failure the report is rolled back. */
static dc_code
store_report_end(void *ctx, const dc_report *r, dc_err *err)
{
	/* the data-modifying CTE runs whether or not the UPDATE reads it; the
	 * date_begin lets the planner go to the report's partition only */
	static const char small_sql[] =
		"WITH rec AS (INSERT INTO dmarc.records (" STORE_RECORD_COLUMNS ")"
		" SELECT " STORE_RECORD_COLUMNS
		" FROM pg_catalog.json_populate_recordset(NULL::dmarc.records, $5::pg_catalog.json))"
		" UPDATE dmarc.reports SET errors = $2, record_count = $3, message_total = $4,"
		" original_id = coalesce($6::bigint, original_id)"
		" WHERE id = $1 AND date_begin = $7::timestamptz";
	dc_store *st = ctx;
	char id[24], n[24], total[24], oid[24];
	const char *vals[7] = { id, r->errors, n, total, NULL, NULL, st->begin };
	dc_code rc;

	if (st->write == STORE_WRITE_NONE)
		return dc_err_set(err, DC_EDB, "store report end: no report in progress");
	if (!store_utf8_valid(r->errors)) {
		rc = dc_err_set(err, DC_ESCHEMA, "report error is not valid UTF-8");
		goto fail;
	}
	if (st->write == STORE_WRITE_WAIT) {
		/* waits for the batch: nothing was sent, nothing to undo on failure */
		rc = store_batch_add(st, r, err);
		store_chunk_reset(st);
		st->write = STORE_WRITE_NONE;
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
		vals[5] = oid;
		st->late_orig = false;
	}
	switch (st->write) {
	case STORE_WRITE_SMALL:
		/* every row is still here: records and totals in one
		 * statement (one round trip instead of three) */
		if (!store_addc(&st->jrec, ']')) {
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto fail;
		}
		vals[4] = st->jrec.p;
		store_chunk_reset(st);
		rc = store_exec_prepared(st, STORE_PREP_SMALL, "dc_small", small_sql, 7, vals, NULL, NULL,
			PGRES_COMMAND_OK, NULL, "store report rows", err);
		break;
	case STORE_WRITE_COPY:
	case STORE_WRITE_WAIT:
	case STORE_WRITE_NONE:
		if ((rc = chunk_flush(st, err)) != DC_OK || (rc = store_copy_end(st, false, err)) != DC_OK)
			break;
		vals[4] = st->begin;
		rc = store_exec(st,
			"UPDATE dmarc.reports SET errors = $2, record_count = $3, message_total = $4,"
			" original_id = coalesce($6::bigint, original_id)"
			" WHERE id = $1 AND date_begin = $5::timestamptz",
			6, vals, NULL, NULL, 0, PGRES_COMMAND_OK, NULL, "store report totals", err);
		break;
	}
	if (rc != DC_OK)
		goto fail;
	rc = store_cmd(st, store_in_savepoint(st) ? "RELEASE SAVEPOINT dc_report" : "COMMIT", err);
	if (rc != DC_OK)
		goto fail;
	st->write = STORE_WRITE_NONE;
	return DC_OK;
fail:
	store_report_rollback(st);
	return rc;
}

/* Sink report_abort: rolls back whatever the report had written. */
static void
store_report_abort(void *ctx)
{
	dc_store *st = ctx;

	if (st->write != STORE_WRITE_NONE)
		store_report_rollback(st);
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
			.tls_report = store_tls_report,
			.failure_report = store_failure_report_cb,
		},
		.failure = store_failure_cb,
		.failure_ctx = st,
	};
}

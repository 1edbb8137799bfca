/*
 * dc_batch.c - batch mode (dc_store_batch_begin .. _commit; poll, one IMAP
 * batch): one transaction for many inputs.
 *
 * A report whose original is small waits in memory (STORE_WRITE_WAIT):
 * report_begin takes a report id from a reserved block (identity sequence,
 * STORE_REPORT_IDS per round trip) and keeps the row as JSON; its records
 * go only into the COPY buffers; report_end adds row, original and rows to
 * the batch.  batch_flush (at commit, or past STORE_BATCH_BYTES) sends the
 * rows and originals in one statement (INSERT ... ON CONFLICT DO NOTHING
 * RETURNING id: the missing ids are the duplicates), then the added
 * reports' records (auth results inline) by one COPY.  A report that stops being small is sent at that
 * moment in a savepoint (store_materialize; a duplicate then stops its
 * parse with DC_SKIP) and goes on as a large report (dc_writer.c).  Per
 * report: no round trip at all for a small one.  The batch is committed
 * before the caller acts on the messages; if any statement of it failed
 * nothing is kept and the caller stores the inputs again outside batch
 * mode.
 *
 * Deliberately not here: the report's own checks and COPY text
 * (dc_writer.c), the binary array and JSON forms (dc_store_fmt.c).
 */
#include "dc_store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	rc = store_exec(st,
		"SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('dmarc.reports', 'id'))"
		" FROM pg_catalog.generate_series(1, $1::integer)",
		1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, &res, "reserve report ids", err);
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
dc_code
store_defer_report(dc_store *st, const dc_report *r, const char *begin, const char *end,
	const dc_blob *origin, const char *file_name, bool *deferred, dc_err *err)
{
	const struct {
		const char *name;
		const char *v;
	} f[] = {
		{ "org_name", r->org_name },
		{ "org_email", r->org_email },
		{ "extra_contact_info", r->extra_contact_info },
		{ "report_id", r->report_id },
		{ "policy_domain", r->policy_domain },
		{ "date_begin", begin },
		{ "date_end", end },
		{ "policy_p", r->policy_p },
		{ "policy_sp", r->policy_sp },
		{ "policy_np", r->policy_np },
		{ "policy_adkim", r->policy_adkim },
		{ "policy_aspf", r->policy_aspf },
		{ "policy_fo", r->policy_fo },
		{ "policy_testing", r->policy_testing },
		{ "policy_discovery_method", r->policy_discovery_method },
		{ "generator", r->generator },
		{ "version", r->version },
		{ "xmlns", r->xmlns },
		{ "mailbox", st->origin.mailbox },
		{ "message_id", st->origin.message_id },
		{ "file_name", file_name },
		{ "original_path", origin ? origin->path : NULL },
	};
	dc_buf *b = &st->jreport;
	bool have_orig = origin != NULL && origin->data != NULL;
	int64_t id = 0;
	bool ok = true;
	dc_code rc;

	*deferred = false;
	if (have_orig && (origin->len > STORE_SMALL_BYTES || !store_utf8_valid(origin->name)))
		return DC_OK;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!store_utf8_valid(f[i].v))
			return DC_OK;
	if ((rc = next_report_id(st, &id, err)) != DC_OK)
		return rc;
	dc_buf_reset(b);
	dc_buf_reset(&st->orig);
	dc_buf_reset(&st->orig_name);
	st->has_orig = st->orig_named = false;
	ok = store_addc(b, '{') && store_json_key(b, "id", true) && store_i64(b, id);
	for (size_t i = 0; ok && i < sizeof(f) / sizeof(f[0]); i++)
		ok = store_json_key(b, f[i].name, false) && store_json_string(b, f[i].v);
	ok = ok && store_json_key(b, "policy_pct", false) &&
		(r->policy_pct >= 0 ? store_i64(b, r->policy_pct) : store_add(b, "null", 4)) &&
		store_json_key(b, "uidvalidity", false) &&
		(st->origin.uidvalidity >= 0 ? store_i64(b, st->origin.uidvalidity) :
					       store_add(b, "null", 4)) &&
		store_json_key(b, "uid", false) &&
		(st->origin.uid >= 0 ? store_i64(b, st->origin.uid) : store_add(b, "null", 4));
	if (ok && have_orig) {
		store_blob_sha256(origin, st->orig_sha);
		st->has_orig = true;
		st->orig_named = origin->name != NULL;
		ok = store_json_key(b, "osha", false) &&
			store_json_bytea(b, st->orig_sha, sizeof(st->orig_sha)) &&
			store_add(&st->orig, (const char *)origin->data, origin->len) &&
			(!origin->name || store_add(&st->orig_name, origin->name, strlen(origin->name)));
	}
	if (!ok)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	st->report_pk = id;
	st->cur_uid = st->origin.uid;
	*deferred = true;
	return DC_OK;
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
batch_send(dc_store *st, dc_buf *sha, dc_buf *content, dc_buf *name, uint32_t n, bool nulls, const char *reps,
	PGresult **out, dc_err *err)
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
	dc_buf *arr[3] = { sha, content, name };
	static const uint32_t oid[3] = { STORE_OID_BYTEA, STORE_OID_BYTEA, STORE_OID_TEXT };
	const char *vals[4] = { NULL, NULL, NULL, reps };
	int lens[4] = { 0 }, fmts[4] = { 0 };

	for (int i = 0; i < 3; i++) {
		if (n == 0) {
			vals[i] = "{}"; /* an empty array, as text */
			continue;
		}
		store_arr_finish(arr[i], n, oid[i], i == 2 && nulls);
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
	dc_buf_reset(&st->b_rec);
	return store_json_array_start(&st->b_rep) && store_arr_start(&st->a_sha) &&
		store_arr_start(&st->a_content) && store_arr_start(&st->a_name);
}

/* Appends the report in progress's original (SHA-256, bytes, name) to the
 * three binary arrays; false when out of memory. */
static bool
orig_append(const dc_store *st, dc_buf *sha, dc_buf *content, dc_buf *name)
{
	return store_arr_add(sha, st->orig_sha, sizeof(st->orig_sha)) &&
		store_arr_add(content, st->orig.p ? st->orig.p : "", st->orig.len) &&
		store_arr_add(name, st->orig_named ? (st->orig_name.p ? st->orig_name.p : "") : NULL,
			st->orig_name.len);
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
 * from the records' COPY text b. */
static void
drop_rows(dc_buf *b, const dc_store *st, const bool *dup)
{
	size_t from = 0, to = 0;

	for (size_t i = 0; i < st->n_pend; i++) {
		size_t end = st->pend[i].end;

		if (!dup[i]) {
			memmove(b->p + to, b->p + from, end - from);
			to += end - from;
		}
		from = end;
	}
	dc_buf_truncate(b, to);
}

/*
 * Sends the batch's waiting reports: their rows and originals in one
 * statement, which says which were added, then the added reports' records
 * (auth results inline) by one COPY.  Notes the duplicates.  The batch is
 * empty afterwards whatever the outcome.
 */
static dc_code
batch_flush(dc_store *st, dc_err *err)
{
	PGresult *res = NULL;
	int64_t *added = NULL;
	bool *dup = NULL;
	size_t n = 0, n_dup = 0;
	dc_code rc = DC_OK;

	if (st->n_pend == 0)
		return DC_OK;
	if (!store_addc(&st->b_rep, ']')) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	rc = batch_send(
		st, &st->a_sha, &st->a_content, &st->a_name, st->a_n, st->a_nulls, st->b_rep.p, &res, err);
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
	if (n_dup > 0)
		drop_rows(&st->b_rec, st, dup);
	if (st->b_rec.len > 0)
		rc = store_copy_in(st, STORE_COPY_RECORDS, &st->b_rec, "store records", err);
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
dc_code
store_batch_add(dc_store *st, const dc_report *r, dc_err *err)
{
	dc_buf *b = &st->jreport;
	bool ok;

	ok = store_json_key(b, "errors", false) && store_json_string(b, r->errors) &&
		store_json_key(b, "record_count", false) && store_i64(b, (int64_t)st->n_records) &&
		store_json_key(b, "message_total", false) && store_i64(b, st->message_total) &&
		store_addc(b, '}') && orig_add(st) && (st->b_rep.len == 1 || store_addc(&st->b_rep, ',')) &&
		store_add(&st->b_rep, b->p, b->len) &&
		store_add(&st->b_rec, st->rec.p ? st->rec.p : "", st->rec.len);
	if (ok && st->n_pend == st->cap_pend) {
		size_t cap = st->cap_pend ? 2 * st->cap_pend : 64;
		void *p = realloc(st->pend, cap * sizeof(*st->pend));
		if (p != NULL) {
			st->pend = p;
			st->cap_pend = cap;
		} else {
			ok = false;
		}
	}
	if (!ok)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	st->pend[st->n_pend].id = st->report_pk;
	st->pend[st->n_pend].uid = st->cur_uid;
	st->pend[st->n_pend].records = st->n_records;
	st->pend[st->n_pend++].end = st->b_rec.len;
	if (st->a_content.len + st->b_rep.len + st->b_rec.len > STORE_BATCH_BYTES)
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
dc_code
store_materialize(dc_store *st, dc_err *err)
{
	dc_buf sha, content, name, r;
	PGresult *res = NULL;
	dc_code rc;

	store_buf_init(&sha);
	store_buf_init(&content);
	store_buf_init(&name);
	store_buf_init(&r);
	if (!store_arr_start(&sha) || !store_arr_start(&content) || !store_arr_start(&name) ||
		(st->has_orig && !orig_append(st, &sha, &content, &name)) || !store_json_array_start(&r) ||
		!store_add(&r, st->jreport.p, st->jreport.len) || !store_add(&r, "}]", 2)) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = store_cmd(st, "SAVEPOINT dc_report", err)) != DC_OK)
		goto out;
	st->write = STORE_WRITE_COPY; /* from now on a savepoint report */
	rc = batch_send(st, &sha, &content, &name, st->has_orig ? 1 : 0, !st->orig_named, r.p, &res, err);
	if (rc == DC_OK && PQntuples(res) == 0) {
		store_report_rollback(st);
		rc = DC_SKIP;
	}
out:
	PQclear(res);
	dc_buf_free(&sha);
	dc_buf_free(&content);
	dc_buf_free(&name);
	dc_buf_free(&r);
	return rc;
}

dc_code
dc_store_batch_begin(dc_store *st, dc_err *err)
{
	dc_code rc;

	if (st->write != STORE_WRITE_NONE)
		store_report_rollback(st);
	st->n_pend = st->n_dups = 0;
	if (!batch_reset(st))
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	if ((rc = store_cmd(st, "BEGIN", err)) != DC_OK)
		return rc;
	st->scope = STORE_SCOPE_BATCH;
	st->batch_written = false;
	return DC_OK;
}

dc_code
dc_store_batch_commit(dc_store *st, dc_store_dup_fn on_duplicate, void *ctx, dc_err *err)
{
	PGresult *res = NULL;
	dc_code rc = DC_OK;

	if (st->scope != STORE_SCOPE_BATCH)
		return dc_err_set(err, DC_EDB, "store: no batch in progress");
	if (st->write != STORE_WRITE_NONE)
		store_report_rollback(st);
	if (PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) == PQTRANS_INTRANS)
		rc = batch_flush(st, err);
	/* a statement of the batch failed (its error went to the caller then):
	 * nothing is kept; DC_ESCHEMA, the caller stores the inputs again
	 * report by report, unless the server is gone */
	if (rc == DC_OK && PQtransactionStatus(st->conn) != PQTRANS_INTRANS) {
		rc = PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) == PQTRANS_INERROR ?
			dc_err_set(
				err, DC_ESCHEMA, "a statement of the batch failed; nothing of it was kept") :
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
	st->scope = STORE_SCOPE_OWN;
	for (size_t i = 0; i < st->n_dups; i++)
		on_duplicate(ctx, st->dups[i].uid, st->dups[i].records);
	st->n_dups = 0;
	return DC_OK;
}

void
dc_store_batch_abort(dc_store *st)
{
	if (st->write != STORE_WRITE_NONE)
		store_report_rollback(st);
	if (st->scope == STORE_SCOPE_BATCH)
		store_cmd_quiet(st, "ROLLBACK");
	st->scope = STORE_SCOPE_OWN;
	st->write = STORE_WRITE_NONE;
	st->n_pend = st->n_dups = 0;
}

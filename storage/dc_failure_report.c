/*
 * dc_failure_report.c - storing one DMARC failure report (parser/dc_arf.h)
 * in dmarc.failure_reports (sql/migrations/007_failure_reports.sql), with
 * the message it came from kept once in dmarc.originals.
 *
 * One report is the original (found or inserted) and one row, together: a
 * transaction of its own, or a savepoint inside the batch's or reparse's.
 * A second copy (same original, same place in it: the unique key) inserts
 * nothing and is DC_SKIP.  Texts are made valid UTF-8 ('?' per bad byte)
 * rather than rejected: the headers of spam are what these reports are
 * about, and they are rarely clean.
 *
 * Not here: finding the reports (parser/), what they show (the views of
 * sql/objects/47_failure_reports.sql).
 */
#include "dc_store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_arf.h"

#define FR_TEXTS 27 /* text parameters that are sanitised copies */

/* The INSERT; $1 original id, $2 its SHA-256, $3 path, $4..$8 where from,
 * $9 arrival_time, $10 source_ip, $11 original_rcpt_to (JSON array),
 * $12.. the texts in the order of the column list. */
static const char SQL_INSERT[] =
	"INSERT INTO dmarc.failure_reports (original_id, original_sha256, original_path, mailbox, uidvalidity, uid,"
	" message_id, file_name, arrival_time, source_ip, original_rcpt_to,"
	" feedback_type, version, user_agent, arrival_date, reported_domain, original_mail_from,"
	" original_envelope_id, auth_failure, delivery_result, dkim_domain, dkim_identity, dkim_selector, spf_dns,"
	" identity_alignment, reporting_mta, authentication_results, headers, body, orig_return_path,"
	" orig_auto_submitted, orig_content_type, orig_from, orig_subject, orig_message_id, part_types, notes)"
	" VALUES ($1::bigint, $2::bytea, $3::text, $4::text, $5::bigint, $6::bigint, $7::text, $8::text,"
	" $9::timestamptz, $10::inet, ARRAY(SELECT jsonb_array_elements_text($11::jsonb)),"
	" $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31,"
	" $32, $33, $34, $35, $36, $37)"
	" ON CONFLICT ON CONSTRAINT failure_reports_unique DO NOTHING";

/* A valid UTF-8 copy of s[0..n) without NUL bytes (each becomes '?'), NULL
 * for NULL; *oom set when out of memory. */
static char *
clean(const char *s, size_t n, bool *oom)
{
	char *nonul, *out;

	if (s == NULL)
		return NULL;
	if ((nonul = malloc(n + 1)) == NULL) {
		*oom = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		nonul[i] = s[i] == '\0' ? '?' : s[i];
	nonul[n] = '\0';
	out = dc_utf8_sanitize(nonul, n, "?", 0, NULL);
	free(nonul);
	if (out == NULL)
		*oom = true;
	return out;
}

static char *
clean_str(const char *s, bool *oom)
{
	return s != NULL ? clean(s, strlen(s), oom) : NULL;
}

/* Inserts the report in the transaction or savepoint open on st. */
static dc_code
insert_report(dc_store *st, const dc_arf_report *r, const dc_blob *origin, dc_err *err)
{
	const char *raw[FR_TEXTS] = { r->feedback_type, r->version, r->user_agent, r->arrival_date,
		r->reported_domain, r->original_mail_from, r->original_envelope_id, r->auth_failure,
		r->delivery_result, r->dkim_domain, r->dkim_identity, r->dkim_selector, r->spf_dns,
		r->identity_alignment, r->reporting_mta, r->authentication_results, r->headers, NULL,
		r->orig_return_path, r->orig_auto_submitted, r->orig_content_type, r->orig_from,
		r->orig_subject, r->orig_message_id, r->part_types, r->notes, NULL };
	char *txt[FR_TEXTS] = { NULL };
	const char *vals[11 + FR_TEXTS - 1];
	int lens[11 + FR_TEXTS - 1] = { 0 }, fmts[11 + FR_TEXTS - 1] = { 0 };
	char idtext[24], uidv[24], uid[24], when[STORE_TIME_MAX];
	char *path = NULL, *file = NULL;
	uint8_t digest[STORE_SHA256_LEN];
	dc_buf rcpt;
	int64_t orig_id = -1;
	bool oom = false;
	PGresult *res = NULL;
	dc_code rc;

	store_buf_init(&rcpt);
	for (int i = 0; i < FR_TEXTS - 1; i++)
		txt[i] = clean_str(raw[i], &oom);
	/* the body: bytes of any kind */
	txt[17] = r->body != NULL ? clean((const char *)r->body, r->body_len, &oom) : NULL;
	path = clean_str(origin->path, &oom);
	file = clean_str(st->origin.file_name ? st->origin.file_name : origin->name, &oom);
	if (!store_json_array_start(&rcpt))
		oom = true;
	for (size_t i = 0; i < r->n_original_rcpt_to && !oom; i++) {
		char *c = clean_str(r->original_rcpt_to[i], &oom);

		if (!oom && ((i > 0 && !store_addc(&rcpt, ',')) || !store_json_string(&rcpt, c)))
			oom = true;
		free(c);
	}
	if (!oom && !store_addc(&rcpt, ']'))
		oom = true;
	if (oom) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if (txt[0] == NULL) {
		rc = dc_err_set(err, DC_ESCHEMA, "failure report without Feedback-Type");
		goto out;
	}
	if ((rc = store_original(st, origin, &orig_id, true, err)) != DC_OK)
		goto out;
	store_blob_sha256(origin, digest);
	snprintf(idtext, sizeof(idtext), "%" PRId64, orig_id);
	snprintf(uidv, sizeof(uidv), "%" PRId64, st->origin.uidvalidity);
	snprintf(uid, sizeof(uid), "%" PRId64, st->origin.uid);
	vals[0] = idtext;
	vals[1] = (const char *)digest;
	lens[1] = STORE_SHA256_LEN;
	fmts[1] = 1;
	vals[2] = path;
	vals[3] = st->origin.mailbox;
	vals[4] = st->origin.uidvalidity >= 0 ? uidv : NULL;
	vals[5] = st->origin.uid >= 0 ? uid : NULL;
	vals[6] = st->origin.message_id;
	vals[7] = file;
	vals[8] = r->arrival_time != INT64_MIN && store_format_time(r->arrival_time, when) ? when : NULL;
	vals[9] = r->source_ip;
	vals[10] = rcpt.p;
	for (int i = 0; i < FR_TEXTS - 1; i++)
		vals[11 + i] = txt[i];
	rc = store_exec(st, SQL_INSERT, 11 + FR_TEXTS - 1, vals, lens, fmts, 0, PGRES_COMMAND_OK, &res,
		"store failure report", err);
	if (rc == DC_OK && strcmp(PQcmdTuples(res), "0") == 0)
		rc = DC_SKIP;
out:
	PQclear(res);
	for (int i = 0; i < FR_TEXTS; i++)
		free(txt[i]);
	free(path);
	free(file);
	dc_buf_free(&rcpt);
	return rc;
}

dc_code
store_failure_report_cb(void *ctx, const struct dc_arf_report *r, const dc_blob *origin, dc_err *err)
{
	dc_store *st = ctx;
	dc_code rc;

	if (st->write != STORE_WRITE_NONE) /* never part of a report's transaction */
		store_report_rollback(st);
	if (origin == NULL || origin->data == NULL)
		return dc_err_set(err, DC_ESCHEMA, "failure report without its message");
	if ((rc = store_unit_begin(st, "dc_failure_report", err)) != DC_OK)
		return store_refused(rc, err);
	rc = insert_report(st, r, origin, err);
	if (rc == DC_OK || rc == DC_SKIP) {
		dc_code rc2 = store_unit_end(st, "dc_failure_report", err);

		if (rc2 != DC_OK)
			return store_refused(rc2, err);
		if (st->scope == STORE_SCOPE_BATCH && rc == DC_OK)
			st->batch_written = true;
		return rc;
	}
	store_unit_abort(st, "dc_failure_report");
	return rc;
}

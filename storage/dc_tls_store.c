/*
 * dc_tls_store.c - the sink's tls_report: one SMTP TLS report (dc_tlsrpt.h)
 * stored whole into dmarc.tls_reports, dmarc.tls_policies and
 * dmarc.tls_failures (sql/migrations/006_tls_reports.sql).
 *
 * One statement per report: the report row (INSERT ... ON CONFLICT ON
 * CONSTRAINT tls_reports_unique_report DO NOTHING) and, in data-modifying
 * CTEs that read its RETURNING, its policies and failure details from one
 * JSON parameter; no row back means a duplicate (DC_SKIP, nothing kept).
 * The original is found or inserted first (dc_failure.c), in the same
 * transaction, so a duplicate or a refused report leaves no copy of its
 * bytes behind.  Scopes as for aggregate reports (dc_store_int.h): a
 * transaction of its own, a savepoint inside a batch's transaction, or a
 * savepoint inside reparse's transaction of one original.
 *
 * Not here: parsing, retention (dc_prune.c), the views (sql/objects/46_tls.sql).
 */
#include "dc_store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_tlsrpt.h"

/* The unique key is a btree entry: kept well under its ~2700-byte cap. */
#define TLS_KEY_MAX 2400

static const char tls_sql[] =
	"WITH r AS (INSERT INTO dmarc.tls_reports (organization_name, report_id, date_begin, date_end,"
	" start_datetime, end_datetime, contact_info, mailbox, uidvalidity, uid, message_id, file_name,"
	" original_id, original_path, ingested_at)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
	" coalesce($15::timestamptz, pg_catalog.now()))"
	" ON CONFLICT ON CONSTRAINT tls_reports_unique_report DO NOTHING RETURNING id),"
	" e AS (SELECT x.v, x.ord FROM pg_catalog.jsonb_array_elements($16::pg_catalog.jsonb)"
	" WITH ORDINALITY AS x(v, ord)),"
	" p AS (INSERT INTO dmarc.tls_policies (tls_report_id, ordinal, policy_type, policy_string,"
	" policy_domain, mx_host, successful_sessions, failed_sessions)"
	" SELECT r.id, e.ord, e.v->>'policy_type',"
	" CASE WHEN pg_catalog.jsonb_typeof(e.v->'policy_string') = 'array' THEN"
	" ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e.v->'policy_string')) END,"
	" e.v->>'policy_domain',"
	" CASE WHEN pg_catalog.jsonb_typeof(e.v->'mx_host') = 'array' THEN"
	" ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e.v->'mx_host')) END,"
	" (e.v->>'successful_sessions')::bigint, (e.v->>'failed_sessions')::bigint"
	" FROM r, e RETURNING id, tls_report_id, ordinal),"
	" f AS (INSERT INTO dmarc.tls_failures (tls_policy_id, tls_report_id, ordinal, result_type,"
	" sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count,"
	" additional_information, failure_reason_code)"
	" SELECT p.id, p.tls_report_id, d.ord, d.v->>'result_type', d.v->>'sending_mta_ip',"
	" d.v->>'receiving_mx_hostname', d.v->>'receiving_mx_helo', d.v->>'receiving_ip',"
	" (d.v->>'failed_session_count')::bigint, d.v->>'additional_information',"
	" d.v->>'failure_reason_code'"
	" FROM p JOIN e ON e.ord = p.ordinal"
	" CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(e.v->'failures') WITH ORDINALITY AS d(v, ord))"
	" SELECT id FROM r";

/* Appends ,"key":v where v is a count (-1: null). */
static bool
json_count(dc_buf *b, const char *key, int64_t v)
{
	return store_json_key(b, key, false) && (v < 0 ? store_add(b, "null", 4) : store_i64(b, v));
}

/* Appends ,"key":[...] of n strings, or null when there are none. */
static bool
json_strings(dc_buf *b, const char *key, const char *const *s, size_t n)
{
	if (!store_json_key(b, key, false))
		return false;
	if (s == NULL)
		return store_add(b, "null", 4);
	if (!store_addc(b, '['))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((i > 0 && !store_addc(b, ',')) || !store_json_string(b, s[i]))
			return false;
	return store_addc(b, ']');
}

/* The policies, with their failure details, as one JSON array. */
static bool
policies_json(dc_buf *b, const dc_tls_report *r)
{
	if (!store_json_array_start(b))
		return false;
	for (size_t i = 0; i < r->n_policies; i++) {
		const dc_tls_policy *p = &r->policies[i];

		if (!store_json_open(b) || !store_json_key(b, "policy_type", true) ||
			!store_json_string(b, p->policy_type) || !store_json_key(b, "policy_domain", false) ||
			!store_json_string(b, p->policy_domain) ||
			!json_strings(b, "policy_string", p->policy_string, p->n_policy_string) ||
			!json_strings(b, "mx_host", p->mx_host, p->n_mx_host) ||
			!json_count(b, "successful_sessions", p->successful_sessions) ||
			!json_count(b, "failed_sessions", p->failed_sessions) ||
			!store_json_key(b, "failures", false) || !store_addc(b, '['))
			return false;
		for (size_t j = 0; j < p->n_failures; j++) {
			const dc_tls_failure *f = &p->failures[j];
			const struct {
				const char *key, *v;
			} s[] = {
				{ "sending_mta_ip", f->sending_mta_ip },
				{ "receiving_mx_hostname", f->receiving_mx_hostname },
				{ "receiving_mx_helo", f->receiving_mx_helo },
				{ "receiving_ip", f->receiving_ip },
				{ "additional_information", f->additional_information },
				{ "failure_reason_code", f->failure_reason_code },
			};

			if ((j > 0 && !store_addc(b, ',')) || !store_addc(b, '{') ||
				!store_json_key(b, "result_type", true) ||
				!store_json_string(b, f->result_type) ||
				!json_count(b, "failed_session_count", f->failed_session_count))
				return false;
			for (size_t k = 0; k < sizeof(s) / sizeof(s[0]); k++)
				if (!store_json_key(b, s[k].key, false) || !store_json_string(b, s[k].v))
					return false;
			if (!store_addc(b, '}'))
				return false;
		}
		if (!store_add(b, "]}", 2))
			return false;
	}
	return store_addc(b, ']');
}

dc_code
store_tls_report(void *ctx, const struct dc_tls_report *r, const dc_blob *origin, dc_err *err)
{
	dc_store *st = ctx;
	char begin[STORE_TIME_MAX], end[STORE_TIME_MAX], uidv[24], uid[24], orig[24];
	const char *file_name, *vals[16];
	int64_t original_id = -1;
	PGresult *res = NULL;
	dc_buf pol;
	dc_code rc;

	store_buf_init(&pol);
	if (st->write != STORE_WRITE_NONE)
		store_report_rollback(st);
	/* the parser checked the strings' UTF-8; only the key's size is ours */
	if (strlen(r->organization_name) + strlen(r->report_id) > TLS_KEY_MAX) {
		rc = dc_err_set(err, DC_ESCHEMA,
			"TLS report organization-name and report-id together exceed %d bytes", TLS_KEY_MAX);
		goto out;
	}
	if (!store_format_time(r->date_begin, begin) || !store_format_time(r->date_end, end)) {
		rc = dc_err_set(err, DC_ESCHEMA, "TLS report date-range is out of range (years 1..9999)");
		goto out;
	}
	if (origin != NULL && !store_utf8_valid(origin->path)) {
		rc = dc_err_set(err, DC_ESCHEMA, "TLS report origin path is not valid UTF-8");
		goto out;
	}
	if (!policies_json(&pol, r)) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	file_name = st->origin.file_name ? st->origin.file_name : origin ? origin->name : NULL;
	if (file_name != NULL && !store_utf8_valid(file_name))
		file_name = NULL;
	if ((rc = store_unit_begin(st, "dc_tls", err)) != DC_OK)
		goto out;
	if (st->scope == STORE_SCOPE_BATCH)
		st->batch_written = true; /* the batch's transaction is no longer empty */
	if (st->scope == STORE_SCOPE_REPARSE) {
		original_id = st->reparse_original_id;
	} else if (origin != NULL && origin->data != NULL) {
		dc_blob b = *origin;

		if (b.name != NULL && !store_utf8_valid(b.name))
			b.name = NULL; /* keep the bytes, drop a name we could not store */
		if ((rc = store_original(st, &b, &original_id, true, err)) != DC_OK)
			goto fail;
	}
	snprintf(uidv, sizeof(uidv), "%" PRId64, st->origin.uidvalidity);
	snprintf(uid, sizeof(uid), "%" PRId64, st->origin.uid);
	snprintf(orig, sizeof(orig), "%" PRId64, original_id);
	{
		const char *v[16] = {
			r->organization_name,
			r->report_id,
			begin,
			end,
			r->start_datetime,
			r->end_datetime,
			r->contact_info,
			st->origin.mailbox,
			st->origin.uidvalidity >= 0 ? uidv : NULL,
			st->origin.uid >= 0 ? uid : NULL,
			st->origin.message_id,
			file_name,
			original_id >= 0 ? orig : NULL,
			origin ? origin->path : NULL,
			st->origin.ingested_at,
			pol.p,
		};
		memcpy(vals, v, sizeof(vals));
	}
	rc = store_exec_prepared(st, STORE_PREP_TLS, "dc_tls", tls_sql, 16, vals, NULL, NULL, PGRES_TUPLES_OK,
		&res, "store TLS report", err);
	if (rc != DC_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		/* the same report is already stored (or was, by a concurrent writer) */
		store_unit_abort(st, "dc_tls");
		rc = DC_SKIP;
		goto out;
	}
	rc = store_unit_end(st, "dc_tls", err);
	if (rc != DC_OK)
		goto fail;
	goto out;
fail:
	store_unit_abort(st, "dc_tls");
out:
	PQclear(res);
	dc_buf_free(&pol);
	return rc;
}

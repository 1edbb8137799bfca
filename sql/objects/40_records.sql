-- 40_records.sql - the analyst views of SPEC section 5: the auth results one
-- row each, every record with its report and classification, and the
-- servers sending server-generated mail.
--
-- The classification lives in views, not in stored columns, so it follows
-- the data: once `resolve` fills dmarc.ip_names, rules 3 and 4 start to apply
-- to records stored long before.  The joins between records and reports
-- name date_begin and policy_domain as well as the id, so PostgreSQL prunes
-- partitions and a sharded database joins on the node that holds both.

CREATE OR REPLACE VIEW dmarc.dkim_results AS
SELECT r.id AS record_id, r.date_begin, r.policy_domain, 1::smallint AS ordinal,
       r.dkim_domain AS domain, r.dkim_selector AS selector, r.dkim_result AS result,
       r.dkim_human_result AS human_result, r.report_id
FROM dmarc.records r
WHERE r.dkim_count >= 1
UNION ALL
SELECT r.id, r.date_begin, r.policy_domain, (1 + e.n)::smallint,
       e.v ->> 'domain', e.v ->> 'selector', e.v ->> 'result', e.v ->> 'human_result', r.report_id
FROM dmarc.records r
CROSS JOIN LATERAL jsonb_array_elements(r.dkim_more) WITH ORDINALITY AS e(v, n)
WHERE r.dkim_more IS NOT NULL;
COMMENT ON VIEW dmarc.dkim_results IS
	'One row per auth_results/dkim of a record (ordinal: 1-based position within the record): domain, selector, result, human_result. '
	'record_id = dmarc.records.id. Stored in the record''s row (first result) and dkim_more (the others).';

CREATE OR REPLACE VIEW dmarc.spf_results AS
SELECT r.id AS record_id, r.date_begin, r.policy_domain, 1::smallint AS ordinal,
       r.spf_domain AS domain, r.spf_scope AS scope, r.spf_result AS result,
       r.spf_human_result AS human_result, r.report_id
FROM dmarc.records r
WHERE r.spf_count >= 1
UNION ALL
SELECT r.id, r.date_begin, r.policy_domain, (1 + e.n)::smallint,
       e.v ->> 'domain', e.v ->> 'scope', e.v ->> 'result', e.v ->> 'human_result', r.report_id
FROM dmarc.records r
CROSS JOIN LATERAL jsonb_array_elements(r.spf_more) WITH ORDINALITY AS e(v, n)
WHERE r.spf_more IS NOT NULL;
COMMENT ON VIEW dmarc.spf_results IS
	'One row per auth_results/spf of a record (ordinal: 1-based position within the record): domain, scope (mfrom, helo, or NULL when '
	'absent), result, human_result. record_id = dmarc.records.id. Stored in the record''s row (first result) and spf_more (the others).';

CREATE OR REPLACE VIEW dmarc.record_details AS
SELECT
	rec.id                AS record_id,
	rec.report_id         AS report_id,
	rep.report_id         AS report_ext_id,
	rep.org_name,
	rep.org_email,
	rep.policy_domain,
	rep.date_begin,
	rep.date_end,
	rep.policy_p,
	rep.policy_sp,
	rep.policy_np,
	rep.policy_adkim,
	rep.policy_aspf,
	rep.policy_pct,
	rep.policy_testing,
	rec.ordinal,
	rec.source_ip,
	rec.message_count,
	rec.disposition,
	rec.dkim_aligned,
	rec.spf_aligned,
	rec.header_from,
	rec.envelope_from,
	rec.envelope_to,
	rec.reasons,
	CASE WHEN n.forward_confirmed THEN n.ptr END AS ptr,
	n.ptr                 AS ptr_raw,
	CASE WHEN n.forward_confirmed THEN n.ptr_base_domain END AS ptr_base_domain,
	n.forward_confirmed,
	coalesce(rec.dkim_aligned = 'pass' OR rec.spf_aligned = 'pass', false) AS dmarc_pass,
	coalesce(rec.dkim_aligned = 'pass', false) AS dkim_pass_aligned,
	coalesce(rec.spf_aligned = 'pass', false)  AS spf_pass_aligned,
	cls.reason IS NOT NULL AS server_generated,
	cls.reason            AS server_generated_reason
FROM dmarc.records rec
JOIN dmarc.reports rep
	ON rep.id = rec.report_id AND rep.date_begin = rec.date_begin AND rep.policy_domain = rec.policy_domain
LEFT JOIN dmarc.ip_names n ON n.ip = rec.source_ip
CROSS JOIN LATERAL (
	-- OFFSET 0 keeps the subquery whole, so the rules run once per row, not
	-- once per output column that uses them
	SELECT dmarc.server_generated_reason(rec.envelope_from, rec.spf_scope, rec.spf_domain, rec.spf_more,
		CASE WHEN n.forward_confirmed THEN n.ptr END) AS reason
	OFFSET 0
) cls;
COMMENT ON VIEW dmarc.record_details IS
	'One row per record with its report''s metadata (report_id = dmarc.reports.id, report_ext_id = the report''s own <report_id>), '
	'the source IP''s PTR name (ptr and ptr_base_domain: only when forward-confirmed; ptr_raw: whatever the PTR lookup returned), '
	'dmarc_pass (DKIM or SPF aligned), and the server-generated classification (dmarc.server_generated_reason): '
	'server_generated_reason is the first rule that holds of null_sender (envelope_from empty or <>; absent is no evidence), '
	'spf_helo_scope (an SPF result with scope helo), spf_domain_is_ptr (an SPF domain equals the confirmed PTR name), '
	'envelope_from_is_ptr (envelope_from equals the confirmed PTR name); NULL when none holds.';

CREATE OR REPLACE VIEW dmarc.server_generated_mail AS
SELECT * FROM dmarc.record_details WHERE server_generated;
COMMENT ON VIEW dmarc.server_generated_mail IS
	'Records classified as server-generated mail (bounces, auto-replies, notifications): record_details where server_generated.';

CREATE OR REPLACE VIEW dmarc.regular_mail AS
SELECT * FROM dmarc.record_details WHERE NOT server_generated;
COMMENT ON VIEW dmarc.regular_mail IS
	'Records not classified as server-generated: record_details where not server_generated.';

CREATE OR REPLACE VIEW dmarc.server_generated_sources AS
SELECT
	source_ip,
	ptr,
	lower(header_from) AS header_from,
	count(*) AS records,
	coalesce(sum(message_count), 0) AS messages,
	coalesce(sum(message_count) FILTER (WHERE dkim_pass_aligned), 0) AS dkim_aligned_messages,
	coalesce(sum(message_count) FILTER (WHERE dmarc_pass), 0) AS dmarc_pass_messages,
	coalesce(sum(message_count) FILTER (WHERE NOT dkim_pass_aligned), 0) AS messages_without_dkim,
	array_agg(DISTINCT server_generated_reason ORDER BY server_generated_reason) AS reasons,
	min(date_begin) AS first_seen,
	max(date_end) AS last_seen,
	bool_or(NOT dkim_pass_aligned) AS needs_dkim
FROM dmarc.server_generated_mail
GROUP BY source_ip, ptr, lower(header_from);
COMMENT ON VIEW dmarc.server_generated_sources IS
	'One row per server sending server-generated mail (source_ip, confirmed PTR name, header_from domain in lower case): '
	'message totals, DKIM-aligned and DMARC-pass totals, the classification reasons seen, first/last report period, and '
	'needs_dkim: true when some of its server-generated mail had no aligned DKIM (that mail fails DMARC; the server needs DKIM signing).';

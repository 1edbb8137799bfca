-- 002_views.sql - the analyst views of SPEC section 5 and the classification
-- of server-generated mail (SPEC section 6).
--
-- The classification lives here, not in stored columns, so it follows the
-- data: once `resolve` fills dmarc.ip_names, rules 3 and 4 start to apply to
-- records stored long before.  Later migrations may only append columns to
-- these views (CREATE OR REPLACE VIEW).

-- A DNS name in comparable form: trimmed, lower case, trailing dot(s)
-- removed; NULL for NULL or an empty name.
CREATE FUNCTION dmarc.dns_name_norm(name text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	AS $$ SELECT nullif(lower(rtrim(btrim($1), '.')), '') $$;
COMMENT ON FUNCTION dmarc.dns_name_norm(text) IS
	'DNS name normalised for comparison: trimmed, lower-cased, trailing dot removed; NULL when empty.';

-- True when a and b name the same DNS name; NULL when either is NULL/empty.
CREATE FUNCTION dmarc.dns_name_eq(a text, b text) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT dmarc.dns_name_norm($1) = dmarc.dns_name_norm($2) $$;
COMMENT ON FUNCTION dmarc.dns_name_eq(text, text) IS
	'True when both are the same DNS name (case-insensitive, trailing dot ignored); NULL when either is NULL or empty.';

CREATE VIEW dmarc.record_details AS
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
JOIN dmarc.reports rep ON rep.id = rec.report_id
LEFT JOIN dmarc.ip_names n ON n.ip = rec.source_ip
CROSS JOIN LATERAL (
	-- one pass over the record's SPF results serves rules 2 and 3; OFFSET 0
	-- keeps the subquery whole so the rules run once per row, not once per
	-- output column that uses them
	SELECT CASE
		WHEN btrim(rec.envelope_from) IN ('', '<>')
			THEN 'null_sender'
		WHEN spf.helo
			THEN 'spf_helo_scope'
		WHEN n.forward_confirmed AND spf.domain_is_ptr
			THEN 'spf_domain_is_ptr'
		WHEN n.forward_confirmed AND dmarc.dns_name_eq(rec.envelope_from, n.ptr)
			THEN 'envelope_from_is_ptr'
	END AS reason
	FROM (SELECT bool_or(s.scope = 'helo') AS helo,
	             bool_or(dmarc.dns_name_eq(s.domain, n.ptr)) AS domain_is_ptr
	      FROM dmarc.spf_results s
	      WHERE s.record_id = rec.id) spf
	OFFSET 0
) cls;
COMMENT ON VIEW dmarc.record_details IS
	'One row per record with its report''s metadata (report_id = dmarc.reports.id, report_ext_id = the report''s own <report_id>), '
	'the source IP''s PTR name (ptr and ptr_base_domain: only when forward-confirmed; ptr_raw: whatever the PTR lookup returned), '
	'dmarc_pass (DKIM or SPF aligned), and the server-generated classification: server_generated_reason is the first rule that holds of '
	'null_sender (envelope_from empty or <>; absent is no evidence), spf_helo_scope (an SPF result with scope helo), '
	'spf_domain_is_ptr (an SPF domain equals the confirmed PTR name), envelope_from_is_ptr (envelope_from equals the confirmed PTR name); '
	'NULL when none holds.';

CREATE VIEW dmarc.server_generated_mail AS
SELECT * FROM dmarc.record_details WHERE server_generated;
COMMENT ON VIEW dmarc.server_generated_mail IS
	'Records classified as server-generated mail (bounces, auto-replies, notifications): record_details where server_generated.';

CREATE VIEW dmarc.regular_mail AS
SELECT * FROM dmarc.record_details WHERE NOT server_generated;
COMMENT ON VIEW dmarc.regular_mail IS
	'Records not classified as server-generated: record_details where not server_generated.';

CREATE VIEW dmarc.server_generated_sources AS
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

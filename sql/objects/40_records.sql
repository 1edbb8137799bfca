-- 40_records.sql - the analyst views of SPEC section 5: the auth results one
-- row each.  Every record with its report, classification and sender
-- (dmarc.record_details) and the servers sending server-generated mail are
-- in 45_senders.sql, after dmarc.ip_senders, which they use.

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

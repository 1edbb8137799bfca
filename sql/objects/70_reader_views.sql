-- 70_reader_views.sql - what dashboards and analysts read besides
-- record_details: the daily rollups as views, the reports, and the rejected
-- inputs without their bytes.  Whatever an analyst may see is a view
-- (dmarc_reader has SELECT on views only, 90_roles.sql); the originals and
-- failure contents are tables and stay private.

CREATE OR REPLACE VIEW dmarc.daily_mail AS
SELECT
	day,
	(day::timestamp AT TIME ZONE 'UTC') AS "time",
	policy_domain,
	org_name,
	disposition,
	dkim_pass,
	spf_pass,
	dkim_pass OR spf_pass AS dmarc_pass,
	server_generated_reason IS NOT NULL AS server_generated,
	server_generated_reason,
	messages,
	records
FROM dmarc.rollup_daily;
COMMENT ON VIEW dmarc.daily_mail IS
	'Messages per UTC day (reports spanning several days shared out as in dmarc.record_days), policy domain (lower case), reporter '
	'(org_name), disposition, DKIM/SPF alignment, dmarc_pass and server-generated reason. time is the day''s start (UTC). '
	'records counts record-days. The fast source for daily graphs; same numbers as dmarc.daily_summary.';

CREATE OR REPLACE VIEW dmarc.daily_domains AS
SELECT
	day,
	(day::timestamp AT TIME ZONE 'UTC') AS "time",
	policy_domain,
	disposition,
	dkim_pass,
	spf_pass,
	dkim_pass OR spf_pass AS dmarc_pass,
	server_generated_reason IS NOT NULL AS server_generated,
	server_generated_reason,
	messages,
	records
FROM dmarc.rollup_domains;
COMMENT ON VIEW dmarc.daily_domains IS
	'dmarc.daily_mail summed over all reporters (same columns but org_name): what a panel over all reporters reads, '
	'a few rows per day instead of a few per reporter and day.';

CREATE OR REPLACE VIEW dmarc.daily_reporters AS
SELECT
	day,
	(day::timestamp AT TIME ZONE 'UTC') AS "time",
	policy_domain,
	org_name,
	messages,
	dmarc_pass_messages,
	messages - dmarc_pass_messages AS failing_messages,
	records,
	dmarc_pass_records,
	records - dmarc_pass_records AS failing_records
FROM dmarc.rollup_reporters;
COMMENT ON VIEW dmarc.daily_reporters IS
	'dmarc.daily_mail summed per UTC day, policy domain and reporter: messages and record-days, all, passing DMARC and failing it '
	'(a *_records of 0: no such row in daily_mail). '
	'For panels that list or count reporters.';

CREATE OR REPLACE VIEW dmarc.daily_sources AS
SELECT
	s.day,
	(s.day::timestamp AT TIME ZONE 'UTC') AS "time",
	s.policy_domain,
	s.org_name,
	s.source_ip,
	CASE WHEN n.forward_confirmed THEN n.ptr END AS ptr,
	n.ptr AS ptr_raw,
	CASE WHEN n.forward_confirmed THEN n.ptr_base_domain END AS ptr_base_domain,
	s.header_from,
	s.disposition,
	s.dkim_pass,
	s.spf_pass,
	s.dkim_pass OR s.spf_pass AS dmarc_pass,
	s.server_generated_reason IS NOT NULL AS server_generated,
	s.server_generated_reason,
	s.messages,
	s.records,
	i.asn,
	i.as_name,
	i.country,
	i.sender_name,
	i.sender_type
FROM dmarc.rollup_sources s
LEFT JOIN dmarc.ip_names n ON n.ip = s.source_ip
LEFT JOIN dmarc.ip_senders i ON i.ip = s.source_ip;
COMMENT ON VIEW dmarc.daily_sources IS
	'Per UTC day, policy domain, reporter and source IP (with its PTR name): mail that failed DMARC and server-generated mail '
	'(passing regular mail is only in dmarc.daily_mail). For top failing IPs and the servers that need DKIM. '
	'asn, as_name, country, sender_name, sender_type: the source IP''s AS, country and sender now (dmarc.ip_senders), '
	'not when the mail was sent.';

CREATE OR REPLACE VIEW dmarc.report_overview AS
SELECT
	id,
	report_id AS report_ext_id,
	org_name,
	org_email,
	lower(policy_domain) AS policy_domain,
	date_begin,
	date_end,
	policy_p,
	policy_sp,
	policy_np,
	policy_adkim,
	policy_aspf,
	policy_pct,
	policy_fo,
	policy_testing,
	generator,
	errors,
	record_count,
	message_total,
	mailbox,
	file_name,
	message_id,
	ingested_at
FROM dmarc.reports;
COMMENT ON VIEW dmarc.report_overview IS
	'One row per stored report: who sent it (org_name), for which domain (lower case), the period it covers, the policy the domain '
	'published as the reporter saw it, record and message totals, where it came from. id = dmarc.reports.id.';

CREATE OR REPLACE VIEW dmarc.failure_list AS
SELECT
	f.id,
	f.failed_at,
	f.mailbox,
	f.uidvalidity,
	f.uid,
	f.message_id,
	f.file_name,
	f.stage,
	f.reason,
	coalesce(octet_length(f.content), octet_length(o.content)) AS content_bytes,
	encode(coalesce(f.sha256, o.sha256), 'hex') AS sha256,
	f.original_id
FROM dmarc.failures f
LEFT JOIN dmarc.originals o ON o.id = f.original_id;
COMMENT ON VIEW dmarc.failure_list IS
	'Rejected inputs (dmarc.failures) without their bytes: when, where from, stage, reason, size and SHA-256 of the original. '
	'Failures of one input share one original (original_id); the bytes stay private (dmarc.failure_content, collector''s role only).';

CREATE OR REPLACE FUNCTION dmarc.failure_content(f dmarc.failures) RETURNS bytea
LANGUAGE sql STABLE AS $$
	SELECT coalesce(f.content, (SELECT o.content FROM dmarc.originals o WHERE o.id = f.original_id))
$$;
COMMENT ON FUNCTION dmarc.failure_content(dmarc.failures) IS
	'The original bytes of a failure row, wherever they are kept (content for rows of 0.1 before its migration 008, dmarc.originals since). '
	'Usage: SELECT dmarc.failure_content(f) FROM dmarc.failures f WHERE f.id = 42.';
REVOKE ALL ON FUNCTION dmarc.failure_content(dmarc.failures) FROM PUBLIC;

-- The collector's health per mailbox (002_operate.sql): what a "collector
-- health" panel, dmarc.alert_collector_stale and an operator read.
CREATE OR REPLACE VIEW dmarc.mailbox_status AS
SELECT
	label AS mailbox,
	url,
	last_poll_at,
	last_success_at,
	last_error,
	last_error_at,
	messages_stored,
	messages_duplicate,
	messages_rejected,
	last_poll_stored,
	last_poll_duplicate,
	last_poll_rejected,
	polls_failed_in_a_row
FROM dmarc.mailboxes;
COMMENT ON VIEW dmarc.mailbox_status IS
	'One row per mailbox the collector polls (label = [mailbox NAME], url without user): when it was last polled and last polled '
	'successfully, why and when a poll last failed (last_error is NULL after a successful poll, last_error_at stays), the messages '
	'stored (with a new report), duplicate (every report seen before) and rejected, in total and by the last poll, and the polls '
	'failed since the last success. A mailbox is healthy while last_success_at is recent and polls_failed_in_a_row is 0.';

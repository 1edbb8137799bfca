-- 46_tls.sql - SMTP TLS reports (RFC 8460) as analysts and Grafana read them
-- (the tables: sql/migrations/006_tls_reports.sql).  dmarc_reader sees these
-- views, never the tables (90_roles.sql).
--
-- A report's sessions belong to the UTC day of its date_begin (reporters
-- send one report per UTC day, RFC 8460 section 4.1: "24 hours"), and a
-- policy domain is compared as dmarc.dns_name_norm writes it (lower case,
-- no trailing dot).  failure_rate = failed / (successful + failed) sessions,
-- NULL when there were none.

CREATE OR REPLACE VIEW dmarc.tls_report_list AS
SELECT
	r.id,
	r.organization_name,
	r.report_id,
	r.date_begin,
	r.date_end,
	r.contact_info,
	(SELECT count(*) FROM dmarc.tls_policies p WHERE p.tls_report_id = r.id) AS policies,
	(SELECT coalesce(sum(p.successful_sessions), 0) FROM dmarc.tls_policies p WHERE p.tls_report_id = r.id)
		AS successful_sessions,
	(SELECT coalesce(sum(p.failed_sessions), 0) FROM dmarc.tls_policies p WHERE p.tls_report_id = r.id)
		AS failed_sessions,
	(SELECT count(*) FROM dmarc.tls_failures f WHERE f.tls_report_id = r.id) AS failure_details,
	r.mailbox,
	r.file_name,
	r.message_id,
	r.original_path,
	r.ingested_at
FROM dmarc.tls_reports r;
COMMENT ON VIEW dmarc.tls_report_list IS
	'One row per stored SMTP TLS report: who sent it, the period, contact-info, its number of policies, the sessions they sum to '
	'and its number of failure-details, where it came from. id = dmarc.tls_reports.id.';

CREATE OR REPLACE VIEW dmarc.tls_policy_sessions AS
SELECT
	p.id,
	p.tls_report_id,
	(r.date_begin AT TIME ZONE 'UTC')::date AS day,
	r.organization_name,
	r.report_id,
	r.date_begin,
	r.date_end,
	dmarc.dns_name_norm(p.policy_domain) AS policy_domain,
	p.policy_type,
	p.policy_string,
	p.mx_host,
	coalesce(p.successful_sessions, 0) AS successful_sessions,
	coalesce(p.failed_sessions, 0) AS failed_sessions,
	coalesce(p.successful_sessions, 0) + coalesce(p.failed_sessions, 0) AS sessions,
	coalesce(p.failed_sessions, 0)::numeric
		/ nullif(coalesce(p.successful_sessions, 0) + coalesce(p.failed_sessions, 0), 0) AS failure_rate
FROM dmarc.tls_policies p
JOIN dmarc.tls_reports r ON r.id = p.tls_report_id;
COMMENT ON VIEW dmarc.tls_policy_sessions IS
	'One row per policy of a TLS report: the reporter, the UTC day of the report, the policy domain (normalised), type, '
	'policy lines and MX patterns, and its sessions: successful, failed, all, and the failure rate (0..1, NULL without sessions).';

CREATE OR REPLACE VIEW dmarc.tls_failure_details AS
SELECT
	f.id,
	f.tls_report_id,
	f.tls_policy_id,
	(r.date_begin AT TIME ZONE 'UTC')::date AS day,
	r.organization_name,
	dmarc.dns_name_norm(p.policy_domain) AS policy_domain,
	p.policy_type,
	f.result_type,
	f.sending_mta_ip,
	f.receiving_mx_hostname,
	f.receiving_mx_helo,
	f.receiving_ip,
	coalesce(f.failed_session_count, 0) AS failed_session_count,
	f.additional_information,
	f.failure_reason_code
FROM dmarc.tls_failures f
JOIN dmarc.tls_policies p ON p.id = f.tls_policy_id
JOIN dmarc.tls_reports r ON r.id = f.tls_report_id;
COMMENT ON VIEW dmarc.tls_failure_details IS
	'One row per failure-details element of a TLS report, with its report''s day and reporter and its policy''s domain and type: '
	'result-type, sending MTA, receiving MX (hostname, HELO, IP), failed sessions, additional information, reason code.';

CREATE OR REPLACE VIEW dmarc.tls_daily AS
SELECT
	day,
	(day::timestamp AT TIME ZONE 'UTC') AS "time",
	policy_domain,
	count(DISTINCT tls_report_id) AS reports,
	sum(successful_sessions) AS successful_sessions,
	sum(failed_sessions) AS failed_sessions,
	sum(sessions) AS sessions,
	sum(failed_sessions)::numeric / nullif(sum(sessions), 0) AS failure_rate
FROM dmarc.tls_policy_sessions
GROUP BY day, policy_domain;
COMMENT ON VIEW dmarc.tls_daily IS
	'SMTP TLS sessions per UTC day and policy domain over all reporters: reports, successful, failed and all sessions, and the '
	'failure rate (0..1, NULL without sessions). time is the day''s start (UTC). The TLS row of the dashboard reads this.';

CREATE OR REPLACE VIEW dmarc.tls_daily_failures AS
SELECT
	day,
	(day::timestamp AT TIME ZONE 'UTC') AS "time",
	policy_domain,
	result_type,
	dmarc.dns_name_norm(receiving_mx_hostname) AS receiving_mx_hostname,
	count(*) AS failure_details,
	sum(failed_session_count) AS failed_sessions
FROM dmarc.tls_failure_details
GROUP BY day, policy_domain, result_type, dmarc.dns_name_norm(receiving_mx_hostname);
COMMENT ON VIEW dmarc.tls_daily_failures IS
	'Failed TLS sessions per UTC day, policy domain, result-type and receiving MX host (normalised; NULL when not reported): '
	'failure-details elements and the sessions they count.';

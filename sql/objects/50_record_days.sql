-- 50_record_days.sql - records shared out over the UTC days their report
-- covers (dmarc.day_shares, 20_days.sql), and a daily summary per policy
-- domain built on that.  Computed at query time from every record: the
-- daily rollups (60_rollups.sql, read through dmarc.daily_mail and
-- dmarc.daily_sources) hold the same numbers ready for dashboards.

CREATE OR REPLACE VIEW dmarc.record_days AS
SELECT
	rd.record_id,
	rd.report_id,
	rd.report_ext_id,
	rd.org_name,
	rd.policy_domain,
	rd.date_begin,
	rd.date_end,
	s.day,
	s.days               AS report_days,
	s.fraction           AS day_fraction,
	s.messages,
	s.messages_exact,
	rd.message_count,
	rd.source_ip,
	rd.ptr,
	rd.ptr_base_domain,
	rd.forward_confirmed,
	rd.header_from,
	rd.envelope_from,
	rd.disposition,
	rd.dkim_aligned,
	rd.spf_aligned,
	rd.dmarc_pass,
	rd.dkim_pass_aligned,
	rd.spf_pass_aligned,
	rd.server_generated,
	rd.server_generated_reason,
	rd.asn,
	rd.as_name,
	rd.country,
	rd.sender_name,
	rd.sender_type
FROM dmarc.record_details rd
CROSS JOIN LATERAL dmarc.day_shares(rd.date_begin, rd.date_end, rd.message_count) s;
COMMENT ON VIEW dmarc.record_days IS
	'record_details shared out over the UTC days of its report: one row per record and day the report covers (a one-day report: one row). '
	'messages is the record''s whole-message share of that day (cumulative rounding: the shares of a record add up exactly to message_count), '
	'messages_exact the unrounded share, day_fraction the part of the report period on that day, report_days the days it covers. '
	'Sum messages per day for daily graphs; never sum message_count here (it repeats on every day). '
	'asn, as_name, country, sender_name, sender_type: the source IP''s, as in record_details.';

CREATE OR REPLACE VIEW dmarc.daily_summary AS
SELECT
	day,
	lower(policy_domain)                                              AS policy_domain,
	count(DISTINCT report_id)                                         AS reports,
	count(DISTINCT org_name)                                          AS reporters,
	count(DISTINCT source_ip)                                         AS source_ips,
	coalesce(sum(messages), 0)                                        AS messages,
	coalesce(sum(messages) FILTER (WHERE dmarc_pass), 0)              AS dmarc_pass_messages,
	coalesce(sum(messages) FILTER (WHERE NOT dmarc_pass), 0)          AS dmarc_fail_messages,
	coalesce(sum(messages) FILTER (WHERE dkim_pass_aligned), 0)       AS dkim_aligned_messages,
	coalesce(sum(messages) FILTER (WHERE spf_pass_aligned), 0)        AS spf_aligned_messages,
	coalesce(sum(messages) FILTER (WHERE disposition = 'quarantine'), 0) AS quarantined_messages,
	coalesce(sum(messages) FILTER (WHERE disposition = 'reject'), 0)  AS rejected_messages,
	coalesce(sum(messages) FILTER (WHERE server_generated), 0)        AS server_generated_messages,
	coalesce(sum(messages) FILTER (WHERE server_generated AND NOT dkim_pass_aligned), 0)
	                                                                  AS server_generated_without_dkim,
	round(100.0 * sum(messages) FILTER (WHERE dmarc_pass) / nullif(sum(messages), 0), 2)
	                                                                  AS dmarc_pass_percent
FROM dmarc.record_days
GROUP BY day, lower(policy_domain);
COMMENT ON VIEW dmarc.daily_summary IS
	'One row per UTC day and policy domain (lower case), from record_days (reports spanning several days shared out, whole messages that add up): '
	'reports, reporters and source IPs seen that day; message totals: all, DMARC pass/fail, DKIM- and SPF-aligned, quarantined, rejected, '
	'server-generated and server-generated without aligned DKIM (these fail DMARC); dmarc_pass_percent.';

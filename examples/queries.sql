-- examples/queries.sql - the analyst's cookbook for dmarc-collector.
--
-- Every query reads views only, so it runs as a member of dmarc_reader:
--     psql "postgresql://analyst@db.example.com/dmarc" -f examples/queries.sql
-- Change the domain ('example.com') and the periods to yours; as written
-- they look at everything stored.  Days are UTC days.  Where a report covers
-- several days, the daily views (daily_mail, daily_sources, record_days,
-- daily_summary) share its messages out over those days; the per-record
-- views (record_details, server_generated_mail, ...) count each record once,
-- on its report's period.

-- 1. The big picture: messages, DMARC pass rate and reporters per domain.
SELECT policy_domain,
       sum(messages) AS messages,
       round(100.0 * sum(messages) FILTER (WHERE dmarc_pass) / nullif(sum(messages), 0), 2) AS dmarc_pass_percent,
       count(DISTINCT org_name) AS reporters,
       min(day) AS first_day, max(day) AS last_day
FROM dmarc.daily_mail
GROUP BY policy_domain
ORDER BY messages DESC;

-- 2. DMARC pass rate per day for one domain over the last 30 days.
SELECT day, messages, dmarc_pass_messages, dmarc_fail_messages, dmarc_pass_percent
FROM dmarc.daily_summary
WHERE policy_domain = 'example.com' AND day >= current_date - 30
ORDER BY day;

-- 3. The same from the fast rollup, per week, all domains.
SELECT date_trunc('week', day)::date AS week, policy_domain,
       sum(messages) AS messages,
       round(100.0 * sum(messages) FILTER (WHERE dmarc_pass) / nullif(sum(messages), 0), 2) AS dmarc_pass_percent
FROM dmarc.daily_mail
GROUP BY 1, 2
ORDER BY 1, 2;

-- 4. Who reports on us: volume and pass rate per reporting organisation.
SELECT org_name, sum(messages) AS messages,
       round(100.0 * sum(messages) FILTER (WHERE dmarc_pass) / nullif(sum(messages), 0), 2) AS dmarc_pass_percent
FROM dmarc.daily_mail
GROUP BY org_name
ORDER BY messages DESC;

-- 5. Top 20 source IPs failing DMARC, with their PTR names (ptr only when
--    the name resolves back to the IP; ptr_raw whatever the PTR said).
SELECT source_ip, ptr, ptr_raw, sum(messages) AS failing_messages,
       string_agg(DISTINCT header_from, ', ') AS header_from,
       count(DISTINCT org_name) AS reporters
FROM dmarc.daily_sources
WHERE NOT dmarc_pass
GROUP BY source_ip, ptr, ptr_raw
ORDER BY failing_messages DESC
LIMIT 20;

-- 6. The servers that send bounces and auto-replies without aligned DKIM:
--    fix these (sign their mail with DKIM for the From domain).
SELECT source_ip, ptr, header_from, messages, messages_without_dkim, dmarc_pass_messages,
       reasons, first_seen, last_seen
FROM dmarc.server_generated_sources
WHERE needs_dkim
ORDER BY messages_without_dkim DESC;

-- 7. Server-generated versus regular mail per day.
SELECT day,
       sum(messages) FILTER (WHERE server_generated) AS server_generated,
       sum(messages) FILTER (WHERE NOT server_generated) AS regular
FROM dmarc.daily_mail
GROUP BY day
ORDER BY day;

-- 8. Why each server-generated record was classified so (first rule that held).
SELECT server_generated_reason, count(*) AS records, sum(message_count) AS messages
FROM dmarc.server_generated_mail
GROUP BY server_generated_reason
ORDER BY messages DESC;

-- 9. SPF and DKIM alignment: how much mail relies on one of them only.
SELECT policy_domain,
       sum(messages) FILTER (WHERE dkim_pass AND spf_pass) AS both_aligned,
       sum(messages) FILTER (WHERE dkim_pass AND NOT spf_pass) AS dkim_only,
       sum(messages) FILTER (WHERE spf_pass AND NOT dkim_pass) AS spf_only,
       sum(messages) FILTER (WHERE NOT dmarc_pass) AS neither
FROM dmarc.daily_mail
GROUP BY policy_domain
ORDER BY policy_domain;

-- 10. What receivers did with failing mail (dispositions), per domain.
SELECT policy_domain, coalesce(disposition, '(none given)') AS disposition,
       sum(messages) AS messages
FROM dmarc.daily_mail
WHERE NOT dmarc_pass
GROUP BY 1, 2
ORDER BY 1, 3 DESC;

-- 11. Overrides: records where the receiver applied a local policy
--     (forwarded, mailing_list, trusted_forwarder ...), with the comment.
SELECT r.org_name, r.source_ip, r.ptr, r.disposition, x.reason->>'type' AS reason_type,
       x.reason->>'comment' AS comment, r.message_count
FROM dmarc.record_details r
CROSS JOIN LATERAL jsonb_array_elements(r.reasons) AS x(reason)
WHERE r.reasons IS NOT NULL
ORDER BY r.message_count DESC NULLS LAST
LIMIT 50;

-- 12. The policy each domain published, as reporters saw it, and when.
SELECT policy_domain, policy_p, policy_sp, policy_np, policy_pct, policy_adkim, policy_aspf,
       count(*) AS reports, min(date_begin) AS first_seen, max(date_end) AS last_seen
FROM dmarc.report_overview
GROUP BY 1, 2, 3, 4, 5, 6, 7
ORDER BY policy_domain, last_seen DESC;

-- 13. The latest policy each domain published (p=none: monitoring only).
SELECT DISTINCT ON (policy_domain) policy_domain, policy_p, date_end AS as_of
FROM dmarc.report_overview
WHERE policy_domain IS NOT NULL
ORDER BY policy_domain, date_end DESC NULLS LAST;

-- 14. Mail failing DMARC by the sender's PTR base domain (confirmed names):
--     ESPs and forwarders that need a DKIM key for your domain.
SELECT coalesce(ptr_base_domain, '(no confirmed PTR)') AS sender_domain,
       sum(message_count) AS messages, count(DISTINCT source_ip) AS source_ips
FROM dmarc.record_details
WHERE NOT dmarc_pass
GROUP BY 1
ORDER BY messages DESC
LIMIT 20;

-- 15. When each reporter last sent a report (who stopped sending).
SELECT org_name, max(date_end) AS last_report, count(*) AS reports
FROM dmarc.report_overview
GROUP BY org_name
ORDER BY last_report;

-- 16. Reports that carried errors or were repaired while reading.
SELECT org_name, report_ext_id, policy_domain, date_begin, errors
FROM dmarc.report_overview
WHERE errors IS NOT NULL
ORDER BY date_begin DESC;

-- 17. Rejected inputs of the last 7 days, by stage and reason.
SELECT stage, reason, count(*) AS inputs, max(failed_at) AS last
FROM dmarc.failure_list
WHERE failed_at >= now() - interval '7 days'
GROUP BY stage, reason
ORDER BY inputs DESC;

-- 18. envelope_from as sent: absent, empty, '<>' or a domain (server-generated
--     mail shows as empty or '<>'; many receivers never send it).
SELECT CASE WHEN envelope_from IS NULL THEN '(absent)'
            WHEN btrim(envelope_from) = '' THEN '(empty)'
            WHEN btrim(envelope_from) = '<>' THEN '<>'
            ELSE 'domain' END AS envelope_from, count(*) AS records, sum(message_count) AS messages
FROM dmarc.record_details
GROUP BY 1
ORDER BY records DESC;

-- 19. One record-per-day listing for a spreadsheet: the last 7 days of one domain.
SELECT day, org_name, source_ip, ptr, header_from, disposition, dkim_aligned, spf_aligned,
       server_generated_reason, messages
FROM dmarc.record_days
WHERE policy_domain = 'example.com' AND day >= current_date - 7
ORDER BY day, messages DESC;

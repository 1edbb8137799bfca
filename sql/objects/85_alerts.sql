-- 85_alerts.sql - the alert views (issue 13): one row per thing a person
-- has to act on, with the numbers that justify it, so that Grafana's alert
-- rules (examples/grafana/provisioning/alerting/) and the [alerts] hook
-- only ask "are there rows?".
--
--   alert_new_unsigned_sources  a server whose server-generated mail for a
--                               domain lacks aligned DKIM, first seen lately
--   alert_pass_rate_drop        a domain's DMARC pass rate fell against its
--                               baseline
--   alert_new_failing_senders   a source never reported for a domain before,
--                               now failing DMARC above a threshold
--   alert_silent_reporters      a reporter that sent reports on most days,
--                               then none for some days
--   alert_collector_stale       a mailbox not read successfully for some
--                               intervals; rejected inputs rising
--   alerts                      all of them: alert, key, summary, details
--
-- Parameters come from dmarc.alert_settings (003_alerts.sql), each with
-- coalesce to the same default as the table's row, so a deleted row still
-- works.  Each view reads the table once (the CTE p) and turns the values
-- into dates or intervals before touching the data.
--
-- Days are UTC days, as in the rollups; "today" is the UTC date of now().
-- Reports for a day arrive the day after, so every recent period includes
-- today and the days before it.  The views read the daily rollups
-- (60_rollups.sql) where those are exact: rollup_sources holds every
-- server-generated and every failing row per source IP, rollup_domains the
-- pass totals per domain.  Whether a source was ever seen before for a
-- domain needs passing regular mail too, which only dmarc.records has: one
-- index probe per candidate (records_source_ip_idx), and candidates are the
-- few sources above the threshold.  The bounds of those probes are scalar
-- sub-selects of p (one value, computed once) rather than p's column, so
-- that they become index conditions and prune the records partitions; and
-- OFFSET 0 keeps each NOT EXISTS a probe per candidate (an anti join
-- sorted all the older rows of rollup_sources: 3 times slower on a year).
-- Silent reporters read dmarc.reports,
-- whose report periods tell a daily reporter from a weekly one (the rollups
-- spread a weekly report over its seven days).
--
-- Keys (dmarc.alerts.key) name the thing, not the moment: the same source,
-- domain, reporter or mailbox gives the same key on every run for as long
-- as the alert holds, so a sender (the [alerts] hook, dmarc.alerts_sent)
-- sends it once.

CREATE OR REPLACE VIEW dmarc.alert_new_unsigned_sources AS
WITH p AS MATERIALIZED (
	SELECT (now() AT TIME ZONE 'UTC')::date
	       - coalesce(max(value) FILTER (WHERE name = 'new_unsigned_days'), 7)::integer + 1 AS since,
	       coalesce(max(value) FILTER (WHERE name = 'new_unsigned_min_messages'), 1) AS min_messages
	FROM dmarc.alert_settings
), recent AS (
	SELECT s.policy_domain, s.source_ip,
	       sum(s.messages) AS messages,
	       coalesce(sum(s.messages) FILTER (WHERE NOT s.spf_pass), 0) AS failing_dmarc,
	       min(s.day) AS first_seen,
	       max(s.day) AS last_seen,
	       array_agg(DISTINCT s.server_generated_reason ORDER BY s.server_generated_reason) AS reasons,
	       array_remove(array_agg(DISTINCT s.header_from ORDER BY s.header_from), NULL) AS header_from,
	       count(DISTINCT s.org_name) AS reporters
	FROM dmarc.rollup_sources s
	CROSS JOIN p
	WHERE s.day >= p.since
	  AND s.server_generated_reason IS NOT NULL AND NOT s.dkim_pass AND s.source_ip IS NOT NULL
	GROUP BY s.policy_domain, s.source_ip
	HAVING sum(s.messages) >= (SELECT min_messages FROM p)
)
SELECT r.policy_domain,
       r.source_ip,
       CASE WHEN n.forward_confirmed THEN n.ptr END AS ptr,
       CASE WHEN n.forward_confirmed THEN n.ptr_base_domain END AS ptr_base_domain,
       r.header_from,
       r.messages,
       r.failing_dmarc,
       r.first_seen,
       r.last_seen,
       r.reasons,
       r.reporters
FROM recent r
LEFT JOIN dmarc.ip_names n ON n.ip = r.source_ip
WHERE NOT EXISTS (SELECT 1 FROM dmarc.rollup_sources o
                  WHERE o.source_ip = r.source_ip AND o.day < (SELECT since FROM p) AND o.policy_domain = r.policy_domain
                    AND o.server_generated_reason IS NOT NULL AND NOT o.dkim_pass
                  OFFSET 0);
COMMENT ON VIEW dmarc.alert_new_unsigned_sources IS
	'Alert: servers (source_ip, forward-confirmed ptr and its base domain) whose server-generated mail (bounces, auto-replies, '
	'notifications) for policy_domain had no aligned DKIM, first seen in the last new_unsigned_days UTC days (first_seen; none '
	'such before), with at least new_unsigned_min_messages messages (messages; failing_dmarc: those also without aligned SPF). '
	'reasons: the server-generated classifications seen. Configure DKIM signing on these hosts. Settings: dmarc.alert_settings.';

CREATE OR REPLACE VIEW dmarc.alert_pass_rate_drop AS
WITH p AS MATERIALIZED (
	SELECT t - recent AS recent_from, t - recent - baseline AS baseline_from, drop_points, min_messages
	FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS t,
	             coalesce(max(value) FILTER (WHERE name = 'pass_rate_recent_days'), 1)::integer AS recent,
	             coalesce(max(value) FILTER (WHERE name = 'pass_rate_baseline_days'), 28)::integer AS baseline,
	             coalesce(max(value) FILTER (WHERE name = 'pass_rate_drop_points'), 10) AS drop_points,
	             coalesce(max(value) FILTER (WHERE name = 'pass_rate_min_messages'), 100) AS min_messages
	      FROM dmarc.alert_settings) x
), d AS (
	SELECT r.policy_domain, p.recent_from, p.baseline_from, p.drop_points, p.min_messages,
	       coalesce(sum(r.messages) FILTER (WHERE r.day >= p.recent_from), 0) AS recent_messages,
	       coalesce(sum(r.messages) FILTER (WHERE r.day >= p.recent_from AND (r.dkim_pass OR r.spf_pass)), 0)
	           AS recent_pass_messages,
	       coalesce(sum(r.messages) FILTER (WHERE r.day < p.recent_from), 0) AS baseline_messages,
	       coalesce(sum(r.messages) FILTER (WHERE r.day < p.recent_from AND (r.dkim_pass OR r.spf_pass)), 0)
	           AS baseline_pass_messages
	FROM dmarc.rollup_domains r
	CROSS JOIN p
	WHERE r.day >= p.baseline_from
	GROUP BY r.policy_domain, p.recent_from, p.baseline_from, p.drop_points, p.min_messages
), rates AS (
	SELECT d.*,
	       100.0 * d.recent_pass_messages / nullif(d.recent_messages, 0) AS recent_rate,
	       100.0 * d.baseline_pass_messages / nullif(d.baseline_messages, 0) AS baseline_rate
	FROM d
)
SELECT policy_domain,
       recent_from,
       recent_messages,
       recent_pass_messages,
       round(recent_rate, 1) AS recent_pass_rate,
       baseline_from,
       baseline_messages,
       baseline_pass_messages,
       round(baseline_rate, 1) AS baseline_pass_rate,
       round(baseline_rate - recent_rate, 1) AS drop_points
FROM rates
WHERE recent_messages >= min_messages AND baseline_messages >= min_messages
  AND baseline_rate - recent_rate > drop_points;
COMMENT ON VIEW dmarc.alert_pass_rate_drop IS
	'Alert: policy domains whose DMARC pass rate (percent of messages with aligned DKIM or SPF) over the recent period '
	'(recent_from to today, pass_rate_recent_days UTC days before today and today) fell by more than pass_rate_drop_points '
	'percentage points (drop_points) against the pass_rate_baseline_days days before it (baseline_from), both periods with '
	'at least pass_rate_min_messages messages. Settings: dmarc.alert_settings.';

CREATE OR REPLACE VIEW dmarc.alert_new_failing_senders AS
WITH p AS MATERIALIZED (
	SELECT since, (since::timestamp AT TIME ZONE 'UTC') AS since_ts, min_messages
	FROM (SELECT (now() AT TIME ZONE 'UTC')::date
	             - coalesce(max(value) FILTER (WHERE name = 'new_failing_days'), 7)::integer + 1 AS since,
	             coalesce(max(value) FILTER (WHERE name = 'new_failing_min_messages'), 10) AS min_messages
	      FROM dmarc.alert_settings) x
), recent AS (
	SELECT s.policy_domain, s.source_ip,
	       sum(s.messages) AS failing_messages,
	       min(s.day) AS first_seen,
	       max(s.day) AS last_seen,
	       array_remove(array_agg(DISTINCT s.header_from ORDER BY s.header_from), NULL) AS header_from,
	       array_remove(array_agg(DISTINCT s.disposition ORDER BY s.disposition), NULL) AS dispositions,
	       count(DISTINCT s.org_name) AS reporters
	FROM dmarc.rollup_sources s
	CROSS JOIN p
	WHERE s.day >= p.since AND NOT s.dkim_pass AND NOT s.spf_pass AND s.source_ip IS NOT NULL
	GROUP BY s.policy_domain, s.source_ip
	HAVING sum(s.messages) >= (SELECT min_messages FROM p)
)
SELECT r.policy_domain,
       r.source_ip,
       CASE WHEN n.forward_confirmed THEN n.ptr END AS ptr,
       CASE WHEN n.forward_confirmed THEN n.ptr_base_domain END AS ptr_base_domain,
       r.header_from,
       r.failing_messages,
       r.first_seen,
       r.last_seen,
       r.dispositions,
       r.reporters
FROM recent r
LEFT JOIN dmarc.ip_names n ON n.ip = r.source_ip
WHERE NOT EXISTS (SELECT 1 FROM dmarc.rollup_sources o
                  WHERE o.source_ip = r.source_ip AND o.day < (SELECT since FROM p) AND o.policy_domain = r.policy_domain
                  OFFSET 0)
  AND NOT EXISTS (SELECT 1 FROM dmarc.records rec
                  WHERE rec.source_ip = r.source_ip AND rec.date_begin < (SELECT since_ts FROM p)
                    AND lower(rec.policy_domain) = r.policy_domain
                  OFFSET 0);
COMMENT ON VIEW dmarc.alert_new_failing_senders IS
	'Alert: sources (source_ip, forward-confirmed ptr) that no report listed for policy_domain before the last new_failing_days '
	'UTC days, and whose mail for it failed DMARC (neither DKIM nor SPF aligned) in those days for at least '
	'new_failing_min_messages messages (failing_messages), first_seen to last_seen. A spoofer, or a new service that needs '
	'SPF or DKIM for the domain. Settings: dmarc.alert_settings.';

CREATE OR REPLACE VIEW dmarc.alert_silent_reporters AS
WITH p AS MATERIALIZED (
	SELECT silent_from, silent_from - period AS period_from, period, active,
	       (silent_from::timestamp AT TIME ZONE 'UTC') AS silent_ts,
	       ((silent_from - period)::timestamp AT TIME ZONE 'UTC') AS period_ts
	FROM (SELECT (now() AT TIME ZONE 'UTC')::date
	             - coalesce(max(value) FILTER (WHERE name = 'silent_reporter_gap_days'), 3)::integer AS silent_from,
	             coalesce(max(value) FILTER (WHERE name = 'silent_reporter_period_days'), 14)::integer AS period,
	             coalesce(max(value) FILTER (WHERE name = 'silent_reporter_active_days'), 10) AS active
	      FROM dmarc.alert_settings) x
), r AS (
	-- a report counts for the UTC day its period ends in (a period ending
	-- at midnight belongs to the day before)
	SELECT lower(rep.policy_domain) AS policy_domain, coalesce(rep.org_name, '') AS org_name,
	       ((rep.date_end - interval '1 second') AT TIME ZONE 'UTC')::date AS day,
	       rep.date_end, rep.message_total
	FROM dmarc.reports rep
	CROSS JOIN p
	WHERE rep.date_end > p.period_ts
)
SELECT r.policy_domain,
       r.org_name,
       count(DISTINCT r.day) AS active_days,
       p.period AS period_days,
       p.period_from,
       count(*) AS reports,
       coalesce(sum(r.message_total), 0) AS messages,
       max(r.date_end) AS last_report_end,
       (now() AT TIME ZONE 'UTC')::date - max(r.day) AS days_silent
FROM r
CROSS JOIN p
GROUP BY r.policy_domain, r.org_name, p.period, p.period_from, p.active, p.silent_ts
HAVING max(r.date_end) <= p.silent_ts AND count(DISTINCT r.day) >= p.active;
COMMENT ON VIEW dmarc.alert_silent_reporters IS
	'Alert: reporters (org_name, per policy_domain) that sent reports for at least silent_reporter_active_days of the '
	'silent_reporter_period_days UTC days before the gap (active_days of period_days from period_from; reports and messages '
	'in that period), and no report whose period ends after the start of the gap: today and the silent_reporter_gap_days '
	'days before it. last_report_end: the end of its last report; days_silent: days since the day it covered. Reports '
	'missing from the mailbox, a reporter that changed its name, or a broken DMARC record (rua). Settings: dmarc.alert_settings.';

CREATE OR REPLACE VIEW dmarc.alert_collector_stale AS
WITH p AS MATERIALIZED (
	SELECT make_interval(secs => (interval_s * intervals)::double precision) AS stale_after,
	       round(interval_s * intervals) AS threshold_seconds, factor, min_rejected
	FROM (SELECT coalesce(max(value) FILTER (WHERE name = 'collector_interval_seconds'), 300) AS interval_s,
	             coalesce(max(value) FILTER (WHERE name = 'collector_stale_intervals'), 3) AS intervals,
	             coalesce(max(value) FILTER (WHERE name = 'rejected_rise_factor'), 3) AS factor,
	             coalesce(max(value) FILTER (WHERE name = 'rejected_rise_min'), 5) AS min_rejected
	      FROM dmarc.alert_settings) x
), rejects AS (
	SELECT coalesce(f.mailbox, '') AS mailbox,
	       count(*) FILTER (WHERE f.failed_at >= now() - interval '1 day') AS last_day,
	       count(*) FILTER (WHERE f.failed_at < now() - interval '1 day') / 7.0 AS daily_average
	FROM dmarc.failures f
	WHERE f.failed_at >= now() - interval '8 days'
	GROUP BY 1
)
SELECT 'not_read'::text AS problem,
       m.id AS mailbox_id,
       m.label AS mailbox,
       m.url,
       m.last_poll_at,
       m.last_success_at,
       m.last_error,
       m.last_error_at,
       m.polls_failed_in_a_row,
       round(extract(epoch FROM now() - coalesce(m.last_success_at, m.created_at))) AS seconds_since_success,
       p.threshold_seconds,
       NULL::bigint AS rejected_last_day,
       NULL::numeric AS rejected_daily_average
FROM dmarc.mailboxes m
CROSS JOIN p
WHERE coalesce(m.last_success_at, m.created_at) < now() - p.stale_after
UNION ALL
SELECT 'rejects_rising',
       NULL,
       r.mailbox,
       NULL,
       NULL,
       NULL,
       NULL,
       NULL,
       NULL,
       NULL,
       NULL,
       r.last_day,
       round(r.daily_average, 2)
FROM rejects r
CROSS JOIN p
WHERE r.last_day >= p.min_rejected AND r.last_day > p.factor * r.daily_average;
COMMENT ON VIEW dmarc.alert_collector_stale IS
	'Alert: problem not_read: a mailbox (dmarc.mailboxes) whose last successful poll (or, never successful, its creation) is '
	'older than collector_stale_intervals times collector_interval_seconds (threshold_seconds; the database does not know '
	'[service] interval: set collector_interval_seconds to it); last_error, last_error_at and polls_failed_in_a_row '
	'(as in dmarc.mailbox_status) say why. A mailbox removed from the configuration '
	'stays here until its row is deleted. problem rejects_rising: rejected inputs (dmarc.failures) of the last 24 hours per '
	'mailbox label ('''' for local files) at least rejected_rise_min and above rejected_rise_factor times the daily average '
	'of the 7 days before. Settings: dmarc.alert_settings.';

CREATE OR REPLACE VIEW dmarc.alerts AS
SELECT 'new_unsigned_sources'::text AS alert,
       a.policy_domain || '|' || host(a.source_ip) AS key,
       format('%s: new server %s%s sends server-generated mail without aligned DKIM (%s messages since %s, %s)',
              a.policy_domain, host(a.source_ip), coalesce(' (' || a.ptr || ')', ''), a.messages, a.first_seen,
              array_to_string(a.reasons, ', ')) AS summary,
       to_jsonb(a) AS details
FROM dmarc.alert_new_unsigned_sources a
UNION ALL
SELECT 'pass_rate_drop',
       a.policy_domain,
       format('%s: DMARC pass rate %s%% since %s (%s messages), was %s%% (%s messages): down %s points',
              a.policy_domain, a.recent_pass_rate, a.recent_from, a.recent_messages, a.baseline_pass_rate,
              a.baseline_messages, a.drop_points),
       to_jsonb(a)
FROM dmarc.alert_pass_rate_drop a
UNION ALL
SELECT 'new_failing_senders',
       a.policy_domain || '|' || host(a.source_ip),
       format('%s: new source %s%s fails DMARC (%s messages since %s, From %s)',
              a.policy_domain, host(a.source_ip), coalesce(' (' || a.ptr || ')', ''), a.failing_messages, a.first_seen,
              coalesce(nullif(array_to_string(a.header_from, ', '), ''), '?')),
       to_jsonb(a)
FROM dmarc.alert_new_failing_senders a
UNION ALL
SELECT 'silent_reporters',
       a.policy_domain || '|' || a.org_name,
       format('%s: reporter %s sent reports on %s of %s days, then none for %s days (last report ended %s)',
              a.policy_domain, a.org_name, a.active_days, a.period_days, a.days_silent,
              to_char(a.last_report_end AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')),
       to_jsonb(a)
FROM dmarc.alert_silent_reporters a
UNION ALL
SELECT 'collector_stale',
       a.problem || '|' || a.mailbox || coalesce('|' || a.mailbox_id, ''),
       CASE a.problem
       WHEN 'not_read' THEN
           format('mailbox %s (%s) not read successfully for %s minutes%s', a.mailbox, a.url,
                  round(a.seconds_since_success / 60), coalesce(': ' || a.last_error, ''))
       ELSE
           format('%s rejected inputs in the last 24 hours from %s, against %s a day in the week before',
                  a.rejected_last_day, coalesce(nullif(a.mailbox, ''), 'local files'), a.rejected_daily_average)
       END,
       to_jsonb(a)
FROM dmarc.alert_collector_stale a;
COMMENT ON VIEW dmarc.alerts IS
	'Every alert of the dmarc.alert_* views, one row each: alert (the view''s name without alert_), key (what the alert is '
	'about, stable while it holds: domain|source IP, domain, domain|reporter, problem|mailbox|id), summary (one line for a '
	'person), details (the view''s row as JSON). The [alerts] hook sends rows whose (alert, key) is not in dmarc.alerts_sent.';

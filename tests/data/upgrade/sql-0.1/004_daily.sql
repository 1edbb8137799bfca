-- 004_daily.sql - views an analyst needs beside those of SPEC section 5:
-- records shared out over the UTC days their report covers, and a daily
-- summary per policy domain built on that.
--
-- Why share out: a report covers date_begin..date_end, usually one UTC day,
-- but some reporters send reports spanning several days (or a day that is not
-- a UTC day).  Counting a record's messages on the first day alone puts
-- spikes into daily graphs; counting them on every day counts them N times.
-- Each record's message_count is therefore split over the UTC days the
-- report overlaps, in proportion to the overlap, as whole messages that add
-- up exactly to message_count (see dmarc.day_shares).
--
-- Built on dmarc.record_details (sql/002), so the server-generated
-- classification and the PTR columns follow into these views.

-- Shares of n messages over the UTC days that [b, e) overlaps.
--
-- Integer shares by cumulative rounding: with the days in order, overlap_i
-- seconds on day i, C_i = overlap_1 + ... + overlap_i and T = C_last,
--     share_i = floor(n * C_i / T) - floor(n * C_(i-1) / T)
-- Each share is within one message of the exact n * overlap_i / T, and the
-- shares telescope to floor(n * T / T) = n: they always add up to n exactly.
-- floor is div() on numeric, which is exact (no floating point anywhere).
-- messages_exact is the unrounded share (numeric, for averages).
--
-- The interval is half-open: a report for 2024-05-01 00:00:00..23:59:59 and
-- one for 2024-05-01 00:00:00..2024-05-02 00:00:00 both fall on 2024-05-01
-- alone.  When e is NULL or not after b, all n go to b's day; when both are
-- NULL, one row with day NULL carries all n.
--
-- ROWS 2 and SET jit = off: the SET keeps the planner from inlining the body,
-- whose generate_series it would estimate at 1000 rows per record; with that
-- estimate a query over a few hundred records crossed jit_above_cost and
-- spent seconds compiling (4.3 s for 16 records here).  Not inlined, with a
-- truthful estimate, daily_summary over 200,000 records took 0.87 s instead
-- of 2.2 s.
CREATE FUNCTION dmarc.day_shares(b timestamptz, e timestamptz, n bigint)
RETURNS TABLE (day date, days integer, messages bigint, messages_exact numeric, fraction numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 2
SET jit = off
AS $$
	WITH p AS (
		SELECT coalesce(b, e) AS b0,
		       CASE WHEN b IS NOT NULL AND e > b THEN e END AS e0
	), d AS (
		SELECT g AS lo
		FROM p, generate_series(date_trunc('day', p.b0, 'UTC'),
		                        coalesce(p.e0 - interval '1 microsecond', p.b0),
		                        interval '24 hours') AS g
	), o AS (
		SELECT (d.lo AT TIME ZONE 'UTC')::date AS day,
		       CASE WHEN p.e0 IS NULL THEN 1::numeric
		            ELSE extract(epoch FROM least(d.lo + interval '24 hours', p.e0)
		                                    - greatest(d.lo, p.b0)) END AS secs
		FROM d, p
	), c AS (
		SELECT o.day, o.secs,
		       sum(o.secs) OVER (ORDER BY o.day) AS cum,
		       sum(o.secs) OVER () AS total,
		       count(*) OVER () AS ndays
		FROM o
	)
	SELECT c.day, c.ndays::integer,
	       (div(n::numeric * c.cum, c.total) - div(n::numeric * (c.cum - c.secs), c.total))::bigint,
	       n::numeric * c.secs / c.total,
	       c.secs / c.total
	FROM c
	UNION ALL
	SELECT NULL::date, 1, n, n::numeric, 1::numeric
	WHERE b IS NULL AND e IS NULL
$$;
COMMENT ON FUNCTION dmarc.day_shares(timestamptz, timestamptz, bigint) IS
	'Splits n messages over the UTC days that [b, e) overlaps, in proportion to the overlap: messages are whole-message shares '
	'(cumulative rounding, within one of the exact share) that always add up to n; messages_exact the unrounded share; fraction the '
	'part of the interval on that day; days how many days it spans. e NULL or not after b: all on b''s day.';

CREATE VIEW dmarc.record_days AS
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
	rd.server_generated_reason
FROM dmarc.record_details rd
CROSS JOIN LATERAL dmarc.day_shares(rd.date_begin, rd.date_end, rd.message_count) s;
COMMENT ON VIEW dmarc.record_days IS
	'record_details shared out over the UTC days of its report: one row per record and day the report covers (a one-day report: one row). '
	'messages is the record''s whole-message share of that day (cumulative rounding: the shares of a record add up exactly to message_count), '
	'messages_exact the unrounded share, day_fraction the part of the report period on that day, report_days the days it covers. '
	'Sum messages per day for daily graphs; never sum message_count here (it repeats on every day).';

CREATE VIEW dmarc.daily_summary AS
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

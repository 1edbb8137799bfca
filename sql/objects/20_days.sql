-- 20_days.sql - the per-day split, defined once: how a record's messages
-- are shared out over the UTC days its report covers.  dmarc.record_days
-- (50_record_days.sql) and the daily rollups (60_rollups.sql) both use it.
--
-- Why share out: a report covers date_begin..date_end, usually one UTC day,
-- but some reporters send reports spanning several days (or a day that is not
-- a UTC day).  Counting a record's messages on the first day alone puts
-- spikes into daily graphs; counting them on every day counts them N times.
-- Each record's message_count is therefore split over the UTC days the
-- report overlaps, in proportion to the overlap, as whole messages that add
-- up exactly to message_count.
--
-- Integer shares by cumulative rounding: with the days in order, overlap_i
-- seconds on day i, C_i = overlap_1 + ... + overlap_i and T = C_last,
--     share_i = floor(n * C_i / T) - floor(n * C_(i-1) / T)
-- Each share is within one message of the exact n * overlap_i / T, and the
-- shares telescope to floor(n * T / T) = n: they always add up to n exactly.
-- floor is div() on numeric, which is exact (no floating point anywhere).
--
-- The interval is half-open: a report for 2024-05-01 00:00:00..23:59:59 and
-- one for 2024-05-01 00:00:00..2024-05-02 00:00:00 both fall on 2024-05-01
-- alone.  When e is NULL or not after b, everything goes to b's day.
--
-- The days of a period depend on the report only, so the rollups compute
-- them once per distinct period (report_days) and each record's share with
-- day_share; dmarc.day_shares combines the two for one record.

-- ROWS 2 and SET jit = off: the SET keeps the planner from inlining the body,
-- whose generate_series it would estimate at 1000 rows per call; with that
-- estimate a query over a few hundred records crossed jit_above_cost and
-- spent seconds compiling.
CREATE OR REPLACE FUNCTION dmarc.report_days(b timestamptz, e timestamptz)
RETURNS TABLE (day date, ndays integer, secs numeric, cum numeric, total numeric)
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
	)
	SELECT o.day, (count(*) OVER ())::integer, o.secs,
	       sum(o.secs) OVER (ORDER BY o.day), sum(o.secs) OVER ()
	FROM o
$$;
COMMENT ON FUNCTION dmarc.report_days(timestamptz, timestamptz) IS
	'The UTC days that [b, e) overlaps: the day, how many days the period covers (ndays), the overlap in seconds (secs), '
	'the running sum of overlaps up to and including the day (cum) and their total. No row when b and e are both NULL.';

CREATE OR REPLACE FUNCTION dmarc.day_share(n bigint, secs numeric, cum numeric, total numeric) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN secs = total THEN n
	            ELSE (div(n::numeric * cum, total) - div(n::numeric * (cum - secs), total))::bigint END
$$;
COMMENT ON FUNCTION dmarc.day_share(bigint, numeric, numeric, numeric) IS
	'A record''s whole-message share of one day of its report (n messages; secs, cum, total from dmarc.report_days): '
	'floor(n * cum / total) - floor(n * (cum - secs) / total), so the shares of all days add up to n exactly.';

-- No SET here (report_days has it): without one PostgreSQL inlines this
-- function into the query, which made dmarc.daily_summary 5x faster.
CREATE OR REPLACE FUNCTION dmarc.day_shares(b timestamptz, e timestamptz, n bigint)
RETURNS TABLE (day date, days integer, messages bigint, messages_exact numeric, fraction numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 2
AS $$
	SELECT d.day, d.ndays, dmarc.day_share(n, d.secs, d.cum, d.total),
	       n::numeric * d.secs / d.total, d.secs / d.total
	FROM dmarc.report_days(b, e) d
	UNION ALL
	SELECT NULL::date, 1, n, n::numeric, 1::numeric
	WHERE b IS NULL AND e IS NULL
$$;
COMMENT ON FUNCTION dmarc.day_shares(timestamptz, timestamptz, bigint) IS
	'Splits n messages over the UTC days that [b, e) overlaps, in proportion to the overlap: messages are whole-message shares '
	'(dmarc.day_share: cumulative rounding, within one of the exact share) that always add up to n; messages_exact the unrounded '
	'share; fraction the part of the interval on that day; days how many days it spans. e NULL or not after b: all on b''s day.';

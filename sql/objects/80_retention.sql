-- 80_retention.sql - retention by whole months: dmarc.prune_month drops the
-- oldest monthly partition of dmarc.reports and dmarc.records when all of
-- it has expired, keeping the daily rollups exact.  `prune --older-than
-- DAYS` (storage/dc_prune.c) calls it, one month per transaction, until it
-- returns no row, then deletes what has expired at the edge by rows.
--
-- A report expires when its date_end is before the cutoff (now() - DAYS,
-- read once by the caller).  A month M (dmarc.reports_YYYY_MM and
-- dmarc.records_YYYY_MM, 75_partitions.sql) can go whole when
--   * it is the oldest monthly partition (months go oldest first, so every
--     older month has gone already),
--   * it ended by the cutoff (its upper bound <= cutoff: the current month
--     and the empty months created ahead are never dropped; the month the
--     cutoff falls in is the edge and goes by rows),
--   * every report in it has expired,
--   * the records have their partition for the same month (else the edge
--     takes M by rows).
-- bound = the first instant of the month after M (a UTC midnight).
--
-- The rollups (60_rollups.sql) hold per UTC day what the rolled-up reports
-- add to the days of [date_begin, date_end).  Dropping M must remove
-- exactly its reports' share, without reading M's records one by one:
--   a) S = the reports that stay (any other partition, e.g. a junk date in
--      reports_default) with date_begin < bound and rolled_up: subtracted;
--   b) X = M's rolled-up reports with date_end > bound (their days reach
--      past M): subtracted;
--   c) every rollup row of a day < bound is deleted: what is left there after
--      a) and b) belongs only to reports of M or to reports already gone (a
--      report's days start at its date_begin's day, so no report with
--      date_begin >= bound has a day < bound);
--   d) M's two partitions are detached and dropped;
--   e) S is added back.
-- All in one transaction: a reader of the rollups sees the month before or
-- after, never half of it.  The work is that of S and X (usually a few
-- reports spanning the month's end) plus counting M's rows for the caller.
--
-- Locks, in the order every writer takes them: the partition creators'
-- advisory lock (75_partitions.sql: no month appears, moves or goes
-- meanwhile, also with two prunes at once), then, when a month can go,
-- dmarc.reports and dmarc.records in ACCESS EXCLUSIVE mode (DETACH needs it;
-- taken before any rollup row so that a collector committing a report,
-- which holds reports and then wants rollup rows, never waits on us while we
-- wait on it), then dmarc.ip_names in SHARE mode before the rollup rows.
-- Readers and writers of reports and records wait for the transaction,
-- which reads only M's reports, S and X: the checks are made and M's rows
-- counted (the caller's summary) before those locks, and counted again
-- under them only if M's report ids changed meanwhile (a month's records
-- change only with their report, in its transaction).  A call that has
-- nothing to drop takes no table lock.
--
-- SECURITY DEFINER: the partitions belong to the schema's owner (who ran
-- migrate); prune runs as the collector's role.

CREATE OR REPLACE FUNCTION dmarc.prune_month(cutoff timestamptz)
RETURNS TABLE (month date, reports bigint, records bigint, dkim_results bigint, spf_results bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $fn$
DECLARE
	rep regclass;      -- dmarc.reports_YYYY_MM
	rec regclass;      -- dmarc.records_YYYY_MM
	bounds text;       -- its partition bound as the server prints it
	lo timestamptz;
	hi timestamptz;    -- bound
	hi_day date;
	busy boolean;
	stay bigint[];     -- S
	spill bigint[];    -- X
	locked boolean := false;
	counted regclass;  -- the partition counted before the locks
	ids text;          -- and a digest of its report ids then
	busy_ids text;     -- the digest under the locks
BEGIN
	-- no partition appears, moves or goes meanwhile (75_partitions.sql's
	-- creators, another prune): the lock costs nothing to readers and writers
	PERFORM pg_advisory_xact_lock(7236828409416413026);
	LOOP
		-- the oldest monthly partition of dmarc.reports (the DEFAULT
		-- partition's bound, DEFAULT, does not match)
		SELECT c.oid::regclass, pg_get_expr(c.relpartbound, c.oid), b.m[1]::timestamptz, b.m[2]::timestamptz
		INTO rep, bounds, lo, hi
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		CROSS JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
		                                        'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS m) b
		WHERE i.inhparent = 'dmarc.reports'::regclass AND b.m IS NOT NULL
		ORDER BY 3
		LIMIT 1;
		IF rep IS NULL OR hi > cutoff THEN
			RETURN;
		END IF;
		-- the records' partition of the same month
		SELECT c.oid::regclass INTO rec
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'dmarc.records'::regclass AND pg_get_expr(c.relpartbound, c.oid) = bounds;
		IF rec IS NULL THEN
			RETURN;
		END IF;
		EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE date_end >= $1)', rep) INTO busy USING cutoff;
		IF busy THEN
			RETURN;
		END IF;
		EXIT WHEN locked;
		-- its rows, counted in one snapshot with its report ids
		EXECUTE format('SELECT (SELECT md5(string_agg(id::text, '','' ORDER BY id)) FROM %1$s),'
		               ' (SELECT count(*) FROM %1$s), count(*), coalesce(sum(dkim_count), 0), coalesce(sum(spf_count), 0)'
		               ' FROM %2$s', rep, rec)
			INTO ids, reports, records, dkim_results, spf_results;
		counted := rep;
		LOCK TABLE dmarc.reports, dmarc.records IN ACCESS EXCLUSIVE MODE;
		locked := true;
		-- and once more, now that nothing can change
	END LOOP;
	hi_day := (hi AT TIME ZONE 'UTC')::date;
	IF hi_day::timestamp AT TIME ZONE 'UTC' <> hi THEN
		RAISE EXCEPTION 'dmarc.prune_month: partition % ends at %, not at a UTC midnight', rep, hi;
	END IF;

	-- counted again only if M's reports changed meanwhile (a month's records
	-- change only with their report, in its transaction)
	EXECUTE format('SELECT md5(string_agg(id::text, '','' ORDER BY id)) FROM %s', rep) INTO busy_ids;
	IF counted IS DISTINCT FROM rep OR busy_ids IS DISTINCT FROM ids THEN
		EXECUTE format('SELECT count(*) FROM %s', rep) INTO reports;
		EXECUTE format('SELECT count(*), coalesce(sum(dkim_count), 0), coalesce(sum(spf_count), 0) FROM %s', rec)
			INTO records, dkim_results, spf_results;
	END IF;

	stay := ARRAY(SELECT p.id FROM dmarc.reports p
	              WHERE p.date_begin < hi AND p.rolled_up AND p.tableoid <> rep::oid ORDER BY p.id);
	EXECUTE format('SELECT ARRAY(SELECT id FROM %s WHERE rolled_up AND date_end > $1 ORDER BY id)', rep)
		INTO spill USING hi;
	LOCK TABLE dmarc.ip_names IN SHARE MODE;
	PERFORM dmarc.rollup_reports(stay || spill, -1);                       -- a), b)
	DELETE FROM dmarc.rollup_daily WHERE day < hi_day;                     -- c)
	DELETE FROM dmarc.rollup_sources WHERE day < hi_day;
	DELETE FROM dmarc.rollup_domains WHERE day < hi_day;
	DELETE FROM dmarc.rollup_reporters WHERE day < hi_day;
	EXECUTE format('ALTER TABLE dmarc.reports DETACH PARTITION %s', rep);  -- d)
	EXECUTE format('ALTER TABLE dmarc.records DETACH PARTITION %s', rec);
	EXECUTE format('DROP TABLE %s', rep);
	EXECUTE format('DROP TABLE %s', rec);
	PERFORM dmarc.rollup_reports(stay, 1);                                 -- e)

	month := (lo AT TIME ZONE 'UTC')::date;
	RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION dmarc.prune_month(timestamptz) IS
	'Retention: detaches and drops the oldest monthly partition of dmarc.reports and dmarc.records if that month ended by cutoff '
	'and all its reports have date_end < cutoff, taking exactly their share out of the daily rollups; returns the month and the '
	'rows dropped (records, and DKIM/SPF results as sum(dkim_count)/sum(spf_count)), or no row when the oldest month cannot go. '
	'prune calls it once per transaction until it returns no row.';
REVOKE ALL ON FUNCTION dmarc.prune_month(timestamptz) FROM PUBLIC;

-- 006_rollup_speed.sql - the daily rollups of sql/005, kept up to date at a
-- cost the writer can carry: set-based day shares, reports passed by id,
-- and statement-level triggers on ip_names.
--
-- Why: with 005's triggers the import of one report of 1,000,000 records
-- took 77 s instead of 52 s (the rollup alone 21.8 s), and resolve spent
-- ~13 ms per newly confirmed IP (two row triggers, each planning a query),
-- about two hours for a first resolve of 500,000 IPs.  The causes:
--   * dmarc.rollup_shares() was called once per record, although all the
--     records of a report share its period: the UTC days of a report and
--     their cumulative overlap are now computed once per REPORT
--     (dmarc.rollup_days) and joined to its records;
--   * the records were selected by `id = ANY (array of every record id)`;
--     they are now selected by report_id (indexed);
--   * ip_names had six row-level triggers: now one AFTER statement trigger
--     per event, with transition tables, doing every changed IP of the
--     statement in one set-based statement.
-- The numbers are the same as before, and the same as dmarc.record_days /
-- dmarc.daily_summary: tests/integration/grafana.sh compares them row for
-- row.
--
-- The classification below repeats dmarc.record_details' rules (sql/002)
-- with the confirmed PTR name as an input, because the subtraction after
-- a PTR change must classify with the OLD name, which only the OLD TABLE of
-- the statement still knows (transition tables exist only in AFTER
-- triggers, when ip_names already holds the new name).  record_details
-- uses a name only when forward-confirmed, so a record's class depends on
-- cptr = CASE WHEN forward_confirmed THEN ptr END alone:
--   null_sender           btrim(envelope_from) IN ('', '<>')
--   spf_helo_scope        an SPF result with scope helo
--   spf_domain_is_ptr     an SPF domain equals cptr (dns_name_eq)
--   envelope_from_is_ptr  envelope_from equals cptr (dns_name_eq)
-- (dns_name_eq with a NULL cptr is NULL, as `forward_confirmed AND ...` is
-- false when not confirmed).  If 002's rules change, change them here too:
-- the grafana test fails until both agree.

-- The UTC days that [b, e) overlaps, as dmarc.day_shares (004) computes
-- them: each day's overlap in seconds (secs), the running sum up to and
-- including the day (cum), the total (total) and the number of days.  A
-- record's whole-message share of a day is then, exactly as day_shares,
--     floor(n * cum / total) - floor(n * (cum - secs) / total)
-- which is n itself when the report lies within one day.  No row when b and
-- e are both NULL (day_shares' day NULL, which the rollups leave out).
-- Called once per report; ROWS 2 and SET jit = off as day_shares (not
-- inlined, so the planner does not take its generate_series for 1000 rows).
CREATE FUNCTION dmarc.rollup_days(b timestamptz, e timestamptz)
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
COMMENT ON FUNCTION dmarc.rollup_days(timestamptz, timestamptz) IS
	'The UTC days [b, e) overlaps with overlap seconds, running and total sums, as dmarc.day_shares computes them (used by the rollups).';

-- The one statement behind every rollup change.  mode says which records
-- and which PTR names:
--   'reports'  the records of the reports ids, classified with ip_names as
--              it is now, added (sign 1) or subtracted (-1);
--   'records'  the same for the records ids (005's rollup_apply, kept);
--   'all'      every record, added (rollup_rebuild);
--   'ips'      the records of rolled-up reports from the source IPs ips,
--              subtracted as classified with the confirmed names before[]
--              and added as classified with after[] (same positions), in
--              one pass: only the net change is written.
-- The fragments are constants chosen by mode, never caller text; values go
-- in as parameters.  EXECUTE: planned for these values each time (a
-- generic plan for `= ANY ($1)` scans everything).
-- enable_sort off and work_mem 64MB: at the commit of a new report the
-- planner has no statistics for its report_id and takes its records for a
-- few rows; it then grouped 1,000,000 rows by sorting them on disk (3 s).
-- Hashing suits any size (it spills to disk when it must); sorts are
-- still used where only a sort will do (the ORDER BY of the inserts,
-- which keeps concurrent writers locking rows in one order).
CREATE FUNCTION dmarc.rollup_change(mode text, ids bigint[], ips inet[], before text[], after text[],
	sign integer) RETURNS void
LANGUAGE plpgsql SET jit = off SET work_mem = '64MB' SET enable_sort = off AS $$
DECLARE
	-- which reports' days: (p = dmarc.reports)
	days_where text;
	-- rows (rec = dmarc.records, v.g = +1/-1, v.cptr = confirmed PTR name)
	sel text;
	sel_where text := 'true';
	live constant text := $f$
		dmarc.records rec
		LEFT JOIN dmarc.ip_names n ON n.ip = rec.source_ip
		CROSS JOIN LATERAL (SELECT $6 AS g, CASE WHEN n.forward_confirmed THEN n.ptr END AS cptr) v $f$;
BEGIN
	CASE mode
	WHEN 'reports' THEN
		days_where := 'p.id = ANY ($1)';
		sel := live;
		sel_where := 'rec.report_id = ANY ($1)';
	WHEN 'records' THEN
		days_where := 'p.id IN (SELECT report_id FROM dmarc.records WHERE id = ANY ($1))';
		sel := live;
		sel_where := 'rec.id = ANY ($1)';
	WHEN 'all' THEN
		days_where := 'true';
		sel := live;
	WHEN 'ips' THEN
		days_where := 'p.rolled_up AND p.id IN (SELECT report_id FROM dmarc.records WHERE source_ip = ANY ($2))';
		sel := $f$
		unnest($2, $3, $4) AS c(ip, before, after)
		JOIN dmarc.records rec ON rec.source_ip = c.ip
		CROSS JOIN LATERAL (VALUES (-1, c.before), (1, c.after)) AS v(g, cptr) $f$;
	END CASE;
	IF (mode IN ('reports', 'records') AND (ids IS NULL OR cardinality(ids) = 0))
	   OR (mode = 'ips' AND (ips IS NULL OR cardinality(ips) = 0)) THEN
		RETURN;
	END IF;

	EXECUTE format($q$
	WITH days AS MATERIALIZED (
		-- once per report (a plan that joins records first would call
		-- rollup_days once per record)
		SELECT p.id, coalesce(lower(p.policy_domain), '') AS policy_domain,
		       coalesce(p.org_name, '') AS org_name, d.day, d.ndays, d.secs, d.cum, d.total
		FROM dmarc.reports p CROSS JOIN LATERAL dmarc.rollup_days(p.date_begin, p.date_end) d
		WHERE %s
	), rec AS MATERIALIZED (
		-- one row per record and day (and, for mode ips, per sign); the
		-- rules' order as in record_details, each rule tried only when the
		-- ones before did not hold and there is a confirmed name to compare
		SELECT d.day, d.policy_domain, d.org_name, rec.source_ip, lower(rec.header_from) AS header_from,
		       rec.disposition, coalesce(rec.dkim_aligned = 'pass', false) AS dkim_pass,
		       coalesce(rec.spf_aligned = 'pass', false) AS spf_pass,
		       CASE WHEN btrim(rec.envelope_from) IN ('', '<>') THEN 'null_sender'
		            WHEN EXISTS (SELECT 1 FROM dmarc.spf_results s
		                         WHERE s.record_id = rec.id AND s.scope = 'helo') THEN 'spf_helo_scope'
		            WHEN v.cptr IS NOT NULL
		                 AND EXISTS (SELECT 1 FROM dmarc.spf_results s
		                             WHERE s.record_id = rec.id AND dmarc.dns_name_eq(s.domain, v.cptr))
		                 THEN 'spf_domain_is_ptr'
		            WHEN v.cptr IS NOT NULL AND dmarc.dns_name_eq(rec.envelope_from, v.cptr)
		                 THEN 'envelope_from_is_ptr'
		       END AS reason,
		       v.g,
		       v.g * CASE WHEN d.ndays = 1 THEN coalesce(rec.message_count, 0)
		                  ELSE (div(coalesce(rec.message_count, 0)::numeric * d.cum, d.total)
		                        - div(coalesce(rec.message_count, 0)::numeric * (d.cum - d.secs), d.total))::bigint
		             END AS m
		FROM %s
		JOIN days d ON d.id = rec.report_id
		WHERE %s
	), daily AS (
		INSERT INTO dmarc.rollup_daily AS t
		SELECT day, policy_domain, org_name, disposition, dkim_pass, spf_pass, reason, sum(m), sum(g)
		FROM rec
		GROUP BY 1, 2, 3, 4, 5, 6, 7
		HAVING sum(g) <> 0 OR sum(m) <> 0
		ORDER BY 1, 2, 3, 4, 5, 6, 7
		ON CONFLICT ON CONSTRAINT rollup_daily_key DO UPDATE
			SET messages = t.messages + EXCLUDED.messages, records = t.records + EXCLUDED.records
		RETURNING 1
	)
	INSERT INTO dmarc.rollup_sources AS t
	SELECT day, policy_domain, org_name, source_ip, header_from, disposition, dkim_pass, spf_pass, reason,
	       sum(m), sum(g)
	FROM rec
	WHERE NOT (dkim_pass OR spf_pass) OR reason IS NOT NULL
	GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	HAVING sum(g) <> 0 OR sum(m) <> 0
	ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	ON CONFLICT ON CONSTRAINT rollup_sources_key DO UPDATE
		SET messages = t.messages + EXCLUDED.messages, records = t.records + EXCLUDED.records
	$q$, days_where, sel, sel_where) USING ids, ips, before, after, mode, sign;

	IF sign < 0 OR mode = 'ips' THEN
		DELETE FROM dmarc.rollup_daily WHERE records = 0;
		DELETE FROM dmarc.rollup_sources WHERE records = 0;
	END IF;
END
$$;
COMMENT ON FUNCTION dmarc.rollup_change(text, bigint[], inet[], text[], text[], integer) IS
	'Applies one change to dmarc.rollup_daily and dmarc.rollup_sources (mode reports, records, all or ips). Used by the rollup functions and triggers.';

CREATE FUNCTION dmarc.rollup_apply_reports(report_ids bigint[], sign integer) RETURNS void
LANGUAGE sql AS $$
	SELECT dmarc.rollup_change('reports', report_ids, NULL, NULL, NULL, sign)
$$;
COMMENT ON FUNCTION dmarc.rollup_apply_reports(bigint[], integer) IS
	'Adds (1) or subtracts (-1) all records of the given reports (dmarc.reports.id) to/from the daily rollups.';

CREATE OR REPLACE FUNCTION dmarc.rollup_apply(ids bigint[], sign integer) RETURNS void
LANGUAGE sql AS $$
	SELECT dmarc.rollup_change('records', ids, NULL, NULL, NULL, sign)
$$;
COMMENT ON FUNCTION dmarc.rollup_apply(bigint[], integer) IS
	'Adds (1) or subtracts (-1) the given records (dmarc.records.id) to/from the daily rollups. '
	'Prefer dmarc.rollup_apply_reports, which reads the records by report.';

-- reports: add at commit (deferred), subtract before delete.
CREATE OR REPLACE FUNCTION dmarc.rollup_report_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		-- deferred to commit: the report may have gone meanwhile (savepoint
		-- rollback discards the event; a delete in the same transaction not)
		IF EXISTS (SELECT 1 FROM dmarc.reports WHERE id = NEW.id AND NOT rolled_up) THEN
			PERFORM dmarc.rollup_change('reports', ARRAY[NEW.id], NULL, NULL, NULL, 1);
			UPDATE dmarc.reports SET rolled_up = true WHERE id = NEW.id;
		END IF;
		RETURN NULL;
	END IF;
	IF OLD.rolled_up THEN
		PERFORM dmarc.rollup_change('reports', ARRAY[OLD.id], NULL, NULL, NULL, -1);
	END IF;
	RETURN OLD;
END
$$;

CREATE OR REPLACE FUNCTION dmarc.rollup_forget(report_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
	PERFORM dmarc.rollup_change('reports',
		ARRAY(SELECT id FROM dmarc.reports WHERE id = ANY (report_ids) AND rolled_up), NULL, NULL, NULL, -1);
	UPDATE dmarc.reports SET rolled_up = false WHERE id = ANY (report_ids) AND rolled_up;
END
$$;

-- ip_names: one AFTER statement trigger per event.  Per IP the statement
-- touched, the confirmed name before is in OLD TABLE (absent: the IP had no
-- row, so no name) and the one after in NEW TABLE (absent: deleted, or its
-- ip changed); an IP's row is unique before and after, so neither lookup is
-- ambiguous.  INSERT ... ON CONFLICT DO UPDATE fires the INSERT trigger for
-- the rows it inserted and the UPDATE trigger for those it updated.  Only
-- IPs whose confirmed name changed are reclassified.
CREATE FUNCTION dmarc.rollup_ip_names_trigger() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	ips inet[];
	b text[];
	a text[];
BEGIN
	IF TG_OP = 'INSERT' THEN
		SELECT array_agg(ip), array_agg(NULL::text), array_agg(ptr) INTO ips, b, a
		FROM new_rows WHERE forward_confirmed AND ptr IS NOT NULL;
	ELSIF TG_OP = 'DELETE' THEN
		SELECT array_agg(ip), array_agg(ptr), array_agg(NULL::text) INTO ips, b, a
		FROM old_rows WHERE forward_confirmed AND ptr IS NOT NULL;
	ELSE
		SELECT array_agg(ip), array_agg(before), array_agg(after) INTO ips, b, a
		FROM (SELECT coalesce(o.ip, n.ip) AS ip,
		             CASE WHEN o.forward_confirmed THEN o.ptr END AS before,
		             CASE WHEN n.forward_confirmed THEN n.ptr END AS after
		      FROM old_rows o FULL JOIN new_rows n ON n.ip = o.ip) x
		WHERE before IS DISTINCT FROM after;
	END IF;
	IF ips IS NOT NULL THEN
		PERFORM dmarc.rollup_change('ips', NULL, ips, b, a, 0);
	END IF;
	RETURN NULL;
END
$$;

DROP TRIGGER ip_names_rollup_before_insert ON dmarc.ip_names;
DROP TRIGGER ip_names_rollup_after_insert ON dmarc.ip_names;
DROP TRIGGER ip_names_rollup_before_update ON dmarc.ip_names;
DROP TRIGGER ip_names_rollup_after_update ON dmarc.ip_names;
DROP TRIGGER ip_names_rollup_before_delete ON dmarc.ip_names;
DROP TRIGGER ip_names_rollup_after_delete ON dmarc.ip_names;
DROP FUNCTION dmarc.rollup_ip_trigger();

CREATE TRIGGER ip_names_rollup_insert AFTER INSERT ON dmarc.ip_names
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.rollup_ip_names_trigger();
CREATE TRIGGER ip_names_rollup_update AFTER UPDATE ON dmarc.ip_names
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.rollup_ip_names_trigger();
CREATE TRIGGER ip_names_rollup_delete AFTER DELETE ON dmarc.ip_names
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.rollup_ip_names_trigger();

-- Recomputes both rollups from scratch; returns the rows written.
CREATE OR REPLACE FUNCTION dmarc.rollup_rebuild() RETURNS bigint
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
	LOCK TABLE dmarc.rollup_daily, dmarc.rollup_sources IN EXCLUSIVE MODE;
	TRUNCATE dmarc.rollup_daily, dmarc.rollup_sources;
	PERFORM dmarc.rollup_change('all', NULL, NULL, NULL, NULL, 1);
	UPDATE dmarc.reports SET rolled_up = true WHERE NOT rolled_up;
	RETURN (SELECT count(*) FROM dmarc.rollup_daily) + (SELECT count(*) FROM dmarc.rollup_sources);
END
$$;

-- 005's per-record share function has no user left.
DROP FUNCTION dmarc.rollup_shares(timestamptz, timestamptz, bigint);

REVOKE ALL ON FUNCTION dmarc.rollup_change(text, bigint[], inet[], text[], text[], integer),
	dmarc.rollup_apply_reports(bigint[], integer) FROM PUBLIC, dmarc_reader;

SELECT dmarc.grant_roles();

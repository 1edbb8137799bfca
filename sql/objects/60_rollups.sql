-- 60_rollups.sql - the daily rollups (dmarc.rollup_daily, dmarc.rollup_sources,
-- and two sums of rollup_daily: dmarc.rollup_domains without the reporter,
-- dmarc.rollup_reporters per reporter only): record_days already summed per
-- UTC day, so that a panel over a year of a busy domain reads thousands of
-- rows, not millions.  All four change in the one statement of
-- rollup_change, so they always agree.  They hold the same
-- numbers as dmarc.record_days / dmarc.daily_summary, from the same
-- definitions: dmarc.server_generated_reason (30_classify.sql) classifies,
-- dmarc.report_days and dmarc.day_share (20_days.sql) split per day.
--
-- How they stay right:
--   * a report is added when its transaction commits (a deferred constraint
--     trigger: by then its records are all there), unless the writer set
--     dmarc.defer_rollup = on: poll, import and reparse store many reports
--     in a row and then call dmarc.rollup_pending() once for all of them
--     (the reports wait with rolled_up = false; if the writer dies first,
--     the next rollup_pending() adds them);
--   * a report is subtracted just before it is deleted, and its records are
--     deleted with it (a BEFORE DELETE trigger: records have no foreign key);
--   * when resolve changes what a source IP's confirmed PTR name is, the
--     records of that IP are subtracted as classified with the old name and
--     added as classified with the new one (statement triggers on ip_names);
--   * dmarc.rollup_rebuild() recomputes everything.
--
-- Every writer locks dmarc.ip_names (SHARE) before any rollup row, as
-- resolve holds ip_names before its rollup rows, so the lock order is the
-- same everywhere; and a report is classified with the names of the moment
-- it counts as rolled up: either resolve commits first and the report is
-- classified with the new name, or the report is rolled up first and
-- resolve's trigger sees it.

-- The one statement behind every rollup change.  mode says which records
-- and which PTR names:
--   'reports'  the records of the reports ids, classified with ip_names as
--              it is now, added (sign 1) or subtracted (-1);
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
-- Hashing suits any size (it spills to disk when it must); sorts are still
-- used where only a sort will do (the ORDER BY of the inserts, which keeps
-- concurrent writers locking rows in one order).  For a set of reports or
-- IPs (every mode but 'all') sequential scans are off as well: the planner
-- otherwise read every record while the tables were small, work that grows
-- with the database; SET enable_seqscan = on in the header scopes the
-- set_config to the call.
CREATE OR REPLACE FUNCTION dmarc.rollup_change(mode text, ids bigint[], ips inet[], before text[], after text[],
	sign integer) RETURNS void
LANGUAGE plpgsql SET jit = off SET work_mem = '64MB' SET enable_sort = off
SET enable_seqscan = on AS $$
DECLARE
	-- which reports (p = dmarc.reports)
	rep_where text;
	-- rows (rec = dmarc.records, v.g = +1/-1, v.cptr = confirmed PTR name)
	sel text;
	sel_where text := 'true';
	live constant text := $f$
		dmarc.records rec
		LEFT JOIN dmarc.ip_names n ON n.ip = rec.source_ip
		CROSS JOIN LATERAL (SELECT $5 AS g, CASE WHEN n.forward_confirmed THEN n.ptr END AS cptr) v $f$;
BEGIN
	CASE mode
	WHEN 'reports' THEN
		rep_where := 'p.id = ANY ($1)';
		sel := live;
		sel_where := 'rec.report_id = ANY ($1)';
	WHEN 'all' THEN
		rep_where := 'true';
		sel := live;
	WHEN 'ips' THEN
		rep_where := 'p.rolled_up AND p.id IN (SELECT report_id FROM dmarc.records WHERE source_ip = ANY ($2))';
		sel := $f$
		unnest($2, $3, $4) AS c(ip, before, after)
		JOIN dmarc.records rec ON rec.source_ip = c.ip
		CROSS JOIN LATERAL (VALUES (-1, c.before), (1, c.after)) AS v(g, cptr) $f$;
	END CASE;
	IF (mode = 'reports' AND (ids IS NULL OR cardinality(ids) = 0))
	   OR (mode = 'ips' AND (ips IS NULL OR cardinality(ips) = 0)) THEN
		RETURN;
	END IF;
	-- classifying with ip_names as it is now: no resolve may change it
	-- until this transaction ends; 'ips' is resolve's own call, which holds
	-- ip_names already
	IF mode <> 'ips' THEN
		LOCK TABLE dmarc.ip_names IN SHARE MODE;
	END IF;
	IF mode <> 'all' THEN
		PERFORM pg_catalog.set_config('enable_seqscan', 'off', true);
	END IF;

	EXECUTE format($q$
	WITH sel AS MATERIALIZED (
		SELECT p.id, p.policy_domain, p.org_name, p.date_begin, p.date_end
		FROM dmarc.reports p
		WHERE %s
	), periods AS MATERIALIZED (
		-- once per distinct period (a plan that joins records first would
		-- call report_days once per record; reports mostly share periods)
		SELECT q.date_begin, q.date_end, d.day, d.ndays, d.secs, d.cum, d.total
		FROM (SELECT DISTINCT date_begin, date_end FROM sel) q
		CROSS JOIN LATERAL dmarc.report_days(q.date_begin, q.date_end) d
	), days AS MATERIALIZED (
		SELECT p.id, p.date_begin, p.policy_domain AS domain_as_sent,
		       coalesce(lower(p.policy_domain), '') AS policy_domain,
		       coalesce(p.org_name, '') AS org_name, d.day, d.secs, d.cum, d.total
		FROM sel p
		JOIN periods d ON d.date_begin = p.date_begin AND d.date_end = p.date_end
	), rec AS MATERIALIZED (
		-- one row per record and day (and, for mode ips, per sign)
		SELECT d.day, d.policy_domain, d.org_name, rec.source_ip, lower(rec.header_from) AS header_from,
		       rec.disposition, coalesce(rec.dkim_aligned = 'pass', false) AS dkim_pass,
		       coalesce(rec.spf_aligned = 'pass', false) AS spf_pass,
		       dmarc.server_generated_reason(rec.envelope_from, rec.spf_scope, rec.spf_domain, rec.spf_more,
		                                     v.cptr) AS reason,
		       v.g,
		       v.g * dmarc.day_share(coalesce(rec.message_count, 0), d.secs, d.cum, d.total) AS m
		FROM %s
		JOIN days d ON d.id = rec.report_id AND d.date_begin = rec.date_begin
		           AND d.domain_as_sent = rec.policy_domain
		WHERE %s
	), grp AS MATERIALIZED (
		-- rollup_daily's rows, of which the two narrower rollups are sums
		SELECT day, policy_domain, org_name, disposition, dkim_pass, spf_pass, reason, sum(m) AS m, sum(g) AS g
		FROM rec
		GROUP BY 1, 2, 3, 4, 5, 6, 7
	), daily AS (
		INSERT INTO dmarc.rollup_daily AS t
		SELECT day, policy_domain, org_name, disposition, dkim_pass, spf_pass, reason, m, g
		FROM grp
		WHERE g <> 0 OR m <> 0
		ORDER BY 1, 2, 3, 4, 5, 6, 7
		ON CONFLICT ON CONSTRAINT rollup_daily_key DO UPDATE
			SET messages = t.messages + EXCLUDED.messages, records = t.records + EXCLUDED.records
		RETURNING 1
	), domains AS (
		INSERT INTO dmarc.rollup_domains AS t
		SELECT day, policy_domain, disposition, dkim_pass, spf_pass, reason, sum(m), sum(g)
		FROM grp
		GROUP BY 1, 2, 3, 4, 5, 6
		HAVING sum(g) <> 0 OR sum(m) <> 0
		ORDER BY 1, 2, 3, 4, 5, 6
		ON CONFLICT ON CONSTRAINT rollup_domains_key DO UPDATE
			SET messages = t.messages + EXCLUDED.messages, records = t.records + EXCLUDED.records
		RETURNING 1
	), reporters AS (
		INSERT INTO dmarc.rollup_reporters AS t
		SELECT day, policy_domain, org_name, sum(m), coalesce(sum(m) FILTER (WHERE dkim_pass OR spf_pass), 0), sum(g),
		       coalesce(sum(g) FILTER (WHERE dkim_pass OR spf_pass), 0)
		FROM grp
		GROUP BY 1, 2, 3
		HAVING sum(g) <> 0 OR sum(m) <> 0
		ORDER BY 1, 2, 3
		ON CONFLICT ON CONSTRAINT rollup_reporters_key DO UPDATE
			SET messages = t.messages + EXCLUDED.messages,
			    dmarc_pass_messages = t.dmarc_pass_messages + EXCLUDED.dmarc_pass_messages,
			    records = t.records + EXCLUDED.records,
			    dmarc_pass_records = t.dmarc_pass_records + EXCLUDED.dmarc_pass_records
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
	$q$, rep_where, sel, sel_where) USING ids, ips, before, after, sign;

	IF sign < 0 OR mode = 'ips' THEN
		DELETE FROM dmarc.rollup_daily WHERE records = 0;
		DELETE FROM dmarc.rollup_sources WHERE records = 0;
		DELETE FROM dmarc.rollup_domains WHERE records = 0;
		DELETE FROM dmarc.rollup_reporters WHERE records = 0;
	END IF;
END
$$;
COMMENT ON FUNCTION dmarc.rollup_change(text, bigint[], inet[], text[], text[], integer) IS
	'Applies one change to dmarc.rollup_daily and dmarc.rollup_sources (mode reports, all or ips). Used by the rollup functions and triggers.';
REVOKE ALL ON FUNCTION dmarc.rollup_change(text, bigint[], inet[], text[], text[], integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dmarc.rollup_reports(report_ids bigint[], sign integer) RETURNS void
LANGUAGE sql AS $$
	SELECT dmarc.rollup_change('reports', report_ids, NULL, NULL, NULL, sign)
$$;
COMMENT ON FUNCTION dmarc.rollup_reports(bigint[], integer) IS
	'Adds (1) or subtracts (-1) all records of the given reports (dmarc.reports.id) to/from the daily rollups; '
	'does not change rolled_up (the caller keeps it true exactly while the report is counted).';
REVOKE ALL ON FUNCTION dmarc.rollup_reports(bigint[], integer) FROM PUBLIC;

-- reports: add at commit (deferred), subtract and delete the records
-- before the report is deleted.  dmarc.moving_rows = on while
-- dmarc.create_partitions moves rows between partitions: nothing to do then.
CREATE OR REPLACE FUNCTION dmarc.rollup_report_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('dmarc.moving_rows', true) = 'on' THEN
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD END;
	END IF;
	IF TG_OP = 'INSERT' THEN
		-- a writer that calls rollup_pending() itself asks for nothing here
		IF current_setting('dmarc.defer_rollup', true) = 'on' THEN
			RETURN NULL;
		END IF;
		-- deferred to commit: the report may have gone meanwhile (savepoint
		-- rollback discards the event; a delete in the same transaction not)
		IF EXISTS (SELECT 1 FROM dmarc.reports
		           WHERE id = NEW.id AND date_begin = NEW.date_begin AND NOT rolled_up) THEN
			PERFORM dmarc.rollup_change('reports', ARRAY[NEW.id], NULL, NULL, NULL, 1);
			UPDATE dmarc.reports SET rolled_up = true WHERE id = NEW.id AND date_begin = NEW.date_begin;
		END IF;
		RETURN NULL;
	END IF;
	IF OLD.rolled_up THEN
		PERFORM dmarc.rollup_change('reports', ARRAY[OLD.id], NULL, NULL, NULL, -1);
	END IF;
	DELETE FROM dmarc.records
	WHERE report_id = OLD.id AND date_begin = OLD.date_begin AND policy_domain = OLD.policy_domain;
	RETURN OLD;
END
$$;
COMMENT ON FUNCTION dmarc.rollup_report_trigger() IS
	'Trigger of dmarc.reports: adds a new report to the daily rollups at commit; before a report is deleted, '
	'subtracts it and deletes its records.';
DROP TRIGGER IF EXISTS reports_rollup_add ON dmarc.reports;
CREATE CONSTRAINT TRIGGER reports_rollup_add AFTER INSERT ON dmarc.reports
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dmarc.rollup_report_trigger();
CREATE OR REPLACE TRIGGER reports_delete BEFORE DELETE ON dmarc.reports
	FOR EACH ROW EXECUTE FUNCTION dmarc.rollup_report_trigger();

-- Adds every report not yet rolled up (not locked by another writer doing
-- the same: FOR UPDATE SKIP LOCKED, so two concurrent calls never add a
-- report twice); returns how many.  The partial index reports_not_rolled_up_idx
-- finds them without reading the table.
CREATE OR REPLACE FUNCTION dmarc.rollup_pending() RETURNS bigint
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	ids bigint[];
BEGIN
	ids := ARRAY(SELECT id FROM dmarc.reports WHERE NOT rolled_up ORDER BY id FOR UPDATE SKIP LOCKED);
	PERFORM dmarc.rollup_change('reports', ids, NULL, NULL, NULL, 1);
	UPDATE dmarc.reports SET rolled_up = true WHERE id = ANY (ids) AND NOT rolled_up;
	RETURN cardinality(ids);
END
$$;
COMMENT ON FUNCTION dmarc.rollup_pending() IS
	'Adds the reports not yet in the daily rollups (stored with dmarc.defer_rollup = on); returns their number. '
	'poll, import and reparse call it after storing many reports.';
REVOKE ALL ON FUNCTION dmarc.rollup_pending() FROM PUBLIC;

-- For bulk deletes (prune): subtracts the reports in one go and clears
-- rolled_up, so the delete trigger then has only the records to delete.
CREATE OR REPLACE FUNCTION dmarc.rollup_forget(report_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	ids bigint[];
BEGIN
	ids := ARRAY(SELECT id FROM dmarc.reports WHERE id = ANY (report_ids) AND rolled_up);
	PERFORM dmarc.rollup_change('reports', ids, NULL, NULL, NULL, -1);
	UPDATE dmarc.reports SET rolled_up = false WHERE id = ANY (ids);
END
$$;
COMMENT ON FUNCTION dmarc.rollup_forget(bigint[]) IS
	'Removes the given reports from the daily rollups before they are deleted in bulk (prune).';
REVOKE ALL ON FUNCTION dmarc.rollup_forget(bigint[]) FROM PUBLIC;

-- ip_names: one AFTER statement trigger per event.  Per IP the statement
-- touched, the confirmed name before is in OLD TABLE (absent: the IP had no
-- row, so no name) and the one after in NEW TABLE (absent: deleted, or its
-- ip changed); an IP's row is unique before and after, so neither lookup is
-- ambiguous.  INSERT ... ON CONFLICT DO UPDATE fires the INSERT trigger for
-- the rows it inserted and the UPDATE trigger for those it updated.  Only
-- IPs whose confirmed name changed are reclassified.
CREATE OR REPLACE FUNCTION dmarc.rollup_ip_names_trigger() RETURNS trigger
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
COMMENT ON FUNCTION dmarc.rollup_ip_names_trigger() IS
	'Trigger of dmarc.ip_names: reclassifies, in the daily rollups, the records of the IPs whose confirmed PTR name changed.';
CREATE OR REPLACE TRIGGER ip_names_rollup_insert AFTER INSERT ON dmarc.ip_names
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.rollup_ip_names_trigger();
CREATE OR REPLACE TRIGGER ip_names_rollup_update AFTER UPDATE ON dmarc.ip_names
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.rollup_ip_names_trigger();
CREATE OR REPLACE TRIGGER ip_names_rollup_delete AFTER DELETE ON dmarc.ip_names
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.rollup_ip_names_trigger();

-- Recomputes both rollups from scratch; returns the rows written.
-- ip_names before the rollup tables, in the order every writer uses.
CREATE OR REPLACE FUNCTION dmarc.rollup_rebuild() RETURNS bigint
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
	LOCK TABLE dmarc.ip_names IN SHARE MODE;
	LOCK TABLE dmarc.rollup_daily, dmarc.rollup_sources, dmarc.rollup_domains, dmarc.rollup_reporters IN EXCLUSIVE MODE;
	TRUNCATE dmarc.rollup_daily, dmarc.rollup_sources, dmarc.rollup_domains, dmarc.rollup_reporters;
	PERFORM dmarc.rollup_change('all', NULL, NULL, NULL, NULL, 1);
	UPDATE dmarc.reports SET rolled_up = true WHERE NOT rolled_up;
	RETURN (SELECT count(*) FROM dmarc.rollup_daily) + (SELECT count(*) FROM dmarc.rollup_sources)
	     + (SELECT count(*) FROM dmarc.rollup_domains) + (SELECT count(*) FROM dmarc.rollup_reporters);
END
$$;
COMMENT ON FUNCTION dmarc.rollup_rebuild() IS
	'Recomputes dmarc.rollup_daily and dmarc.rollup_sources from all records (minutes on millions of records). '
	'Run it after editing records or ip_names by hand.';
REVOKE ALL ON FUNCTION dmarc.rollup_rebuild() FROM PUBLIC;

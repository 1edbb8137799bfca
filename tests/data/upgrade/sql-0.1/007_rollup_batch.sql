-- 007_rollup_batch.sql - the daily rollups (sql/005, sql/006) added once
-- for many transactions instead of once per report, by writers that ask.
--
-- Why: the deferred trigger reports_rollup_add runs rollup_change for each
-- new report at COMMIT (an EXECUTE, planned each time).  For `poll`, which
-- now stores a whole IMAP batch per transaction, and `import`, that was
-- most of PostgreSQL's work: 10,000 one-report messages cost the server
-- 21.5 s of CPU, 16 s of it in the rollups.
--
-- A writer storing many reports in a row sets `dmarc.defer_rollup = on`:
-- its reports are left out at COMMIT, and it calls dmarc.rollup_pending()
-- afterwards (poll every 10 batches and after each listing, import and
-- reparse every 1,000 inputs and at the end): one rollup for all of them.
-- Until then the rollups lag behind dmarc.reports by those reports; if the
-- writer dies first, they stay NOT rolled_up and the next rollup_pending()
-- adds them.  Every other writer (an SQL session) is rolled up at its
-- COMMIT as before.
--
-- rollup_pending() takes every report NOT rolled_up that no other writer
-- has locked (FOR UPDATE SKIP LOCKED: two concurrent calls never add a
-- report twice; a row the first already updated is no longer NOT
-- rolled_up).  Reports other writers have not committed are invisible.  The
-- partial index finds them without reading the table.  (A first version
-- had the trigger itself add every pending report at its first firing in a
-- transaction; with one transaction per report that scanned the partial
-- index's dead entries, one per report updated since the last vacuum, at
-- every COMMIT: `import` of 10,000 files took 48 s instead of 23 s.)

CREATE INDEX reports_not_rolled_up_idx ON dmarc.reports (id) WHERE NOT rolled_up;

CREATE OR REPLACE FUNCTION dmarc.rollup_report_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		-- a writer that calls rollup_pending() itself (poll, after each
		-- listing) asks for nothing here
		IF current_setting('dmarc.defer_rollup', true) = 'on' THEN
			RETURN NULL;
		END IF;
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

-- Adds every report not yet rolled up (not locked by another writer doing
-- the same); returns how many.
CREATE FUNCTION dmarc.rollup_pending() RETURNS bigint
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	ids bigint[];
BEGIN
	ids := ARRAY(SELECT id FROM dmarc.reports WHERE NOT rolled_up ORDER BY id FOR UPDATE SKIP LOCKED);
	PERFORM dmarc.rollup_change('reports', ids, NULL, NULL, NULL, 1);
	UPDATE dmarc.reports SET rolled_up = true WHERE id = ANY (ids);
	RETURN cardinality(ids);
END
$$;
COMMENT ON FUNCTION dmarc.rollup_pending() IS
	'Adds the reports not yet in the daily rollups (stored with dmarc.defer_rollup = on, or while the rollup trigger was disabled); returns their number.';
REVOKE ALL ON FUNCTION dmarc.rollup_pending() FROM PUBLIC;

-- rollup_change (006) again, with three changes:
--   * reports are classified with ip_names locked in SHARE mode until the
--     transaction ends, so resolve (which writes ip_names and then adjusts
--     the rolled-up reports of the IPs it changed) cannot change a name
--     between the moment a report is classified and the moment it counts as
--     rolled up: either resolve commits first and the report is classified
--     with the new name, or the report is rolled up first and resolve's
--     trigger sees it.  Before, a report committing during a PTR change could
--     keep the old classification until rollup_rebuild().  Every writer
--     takes this lock before any rollup row, as resolve takes ip_names
--     before its rollup rows, so the order is the same everywhere (and
--     rollup_rebuild below now also takes it first);
--   * rollup_days runs once per distinct (date_begin, date_end) instead of
--     once per report: 200 reports of one day cost 5.7 ms there before, now
--     one call;
--   * for a set of reports or IPs (every mode but 'all') sequential scans
--     are off: with 200 report ids the planner read the whole of
--     dmarc.records and hashed the whole of dmarc.spf_results while the
--     tables were small (25 ms for 1,000 records of 50,000; 9 ms by index),
--     work that grows with the database.  SET enable_seqscan = on in the
--     header scopes the set_config to the call.
CREATE OR REPLACE FUNCTION dmarc.rollup_change(mode text, ids bigint[], ips inet[], before text[], after text[],
	sign integer) RETURNS void
LANGUAGE plpgsql SET jit = off SET work_mem = '64MB' SET enable_sort = off
SET enable_seqscan = on AS $$
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
	-- classifying with ip_names as it is now: no resolve may change it
	-- until this transaction ends (see the comment above); 'ips' is
	-- resolve's own call, which holds ip_names already
	IF mode <> 'ips' THEN
		LOCK TABLE dmarc.ip_names IN SHARE MODE;
	END IF;
	-- a few reports or IPs: by index (see the comment above)
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
		-- call rollup_days once per record; reports mostly share periods)
		SELECT q.date_begin, q.date_end, d.day, d.ndays, d.secs, d.cum, d.total
		FROM (SELECT DISTINCT date_begin, date_end FROM sel) q
		CROSS JOIN LATERAL dmarc.rollup_days(q.date_begin, q.date_end) d
	), days AS MATERIALIZED (
		SELECT p.id, coalesce(lower(p.policy_domain), '') AS policy_domain,
		       coalesce(p.org_name, '') AS org_name, d.day, d.ndays, d.secs, d.cum, d.total
		FROM sel p
		JOIN periods d ON coalesce(d.date_begin, '-infinity') = coalesce(p.date_begin, '-infinity')
		              AND coalesce(d.date_end, '-infinity') = coalesce(p.date_end, '-infinity')
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

-- ip_names before the rollup tables, in the order every writer uses.
CREATE OR REPLACE FUNCTION dmarc.rollup_rebuild() RETURNS bigint
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
	LOCK TABLE dmarc.ip_names IN SHARE MODE;
	LOCK TABLE dmarc.rollup_daily, dmarc.rollup_sources IN EXCLUSIVE MODE;
	TRUNCATE dmarc.rollup_daily, dmarc.rollup_sources;
	PERFORM dmarc.rollup_change('all', NULL, NULL, NULL, NULL, 1);
	UPDATE dmarc.reports SET rolled_up = true WHERE NOT rolled_up;
	RETURN (SELECT count(*) FROM dmarc.rollup_daily) + (SELECT count(*) FROM dmarc.rollup_sources);
END
$$;

SELECT dmarc.grant_roles();

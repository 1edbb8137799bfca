-- 005_grafana.sql - what dashboards and analysts need on top of 001-004:
-- daily rollups kept up to date by triggers (so a panel over a year reads
-- thousands of rows, not millions), reader-facing views of reports and
-- rejected inputs, the indexes the panels use, and the two group roles.
--
-- Why rollups: dmarc.record_days / dmarc.daily_summary (004) compute the
-- classification and the per-day shares for every record at query time;
-- on a year of a busy domain (3.3 million records) one panel took 25-47 s.
-- The rollups below hold the same numbers (same views, same day_shares)
-- already grouped per UTC day, so panels answer in milliseconds.
--
-- How they stay right:
--   * a report is added when its transaction commits (a deferred constraint
--     trigger: by then its records and auth results are all there);
--   * a report is subtracted just before it is deleted (prune, reparse);
--   * when resolve changes what a source IP's PTR name says (forward
--     confirmed or not, a different name), that IP's records are
--     subtracted with the old classification and added with the new one;
--   * dmarc.rollup_rebuild() recomputes everything (after hand edits, or in
--     the rare case a report commits while resolve changes one of its IPs).
--
-- Roles (cluster-wide, so created only when missing; NOLOGIN groups):
--   dmarc_writer  the collector: reads and writes the tables.
--   dmarc_reader  analysts and Grafana: SELECT on the views, nothing else
--                 (no table, so not the original bytes in failures.content).
-- The rule for later migrations: end with `SELECT dmarc.grant_roles();`,
-- which grants the reader every view in schema dmarc and the writer every
-- table and sequence.  So: whatever an analyst may see is a view; whatever
-- is private (originals, failure contents) is a table and stays private.

-- ---------------------------------------------------------------- rollups

ALTER TABLE dmarc.reports ADD COLUMN rolled_up boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN dmarc.reports.rolled_up IS
	'Set when the report''s records were added to dmarc.rollup_daily and dmarc.rollup_sources (at commit).';

CREATE TABLE dmarc.rollup_daily (
	day                      date NOT NULL,
	policy_domain            text NOT NULL,
	org_name                 text NOT NULL,
	disposition              text,
	dkim_pass                boolean NOT NULL,
	spf_pass                 boolean NOT NULL,
	server_generated_reason  text,
	messages                 bigint NOT NULL,
	records                  bigint NOT NULL,
	CONSTRAINT rollup_daily_key UNIQUE NULLS NOT DISTINCT
		(day, policy_domain, org_name, disposition, dkim_pass, spf_pass, server_generated_reason)
);
COMMENT ON TABLE dmarc.rollup_daily IS
	'record_days summed per UTC day, policy domain (lower case), reporter, disposition, DKIM/SPF alignment and server-generated reason. '
	'Maintained by triggers; read it through dmarc.daily_mail.';

-- Only what a person has to look at per source IP: mail that fails DMARC
-- and server-generated mail.  Passing regular mail is in rollup_daily.
CREATE TABLE dmarc.rollup_sources (
	day                      date NOT NULL,
	policy_domain            text NOT NULL,
	org_name                 text NOT NULL,
	source_ip                inet,
	header_from              text,
	disposition              text,
	dkim_pass                boolean NOT NULL,
	spf_pass                 boolean NOT NULL,
	server_generated_reason  text,
	messages                 bigint NOT NULL,
	records                  bigint NOT NULL,
	CONSTRAINT rollup_sources_key UNIQUE NULLS NOT DISTINCT
		(day, policy_domain, org_name, source_ip, header_from, disposition, dkim_pass, spf_pass,
		 server_generated_reason)
);
CREATE INDEX rollup_sources_ip_idx ON dmarc.rollup_sources (source_ip, day);
-- rows that subtraction brought to zero, removed after each subtraction
CREATE INDEX rollup_daily_zero_idx ON dmarc.rollup_daily (day) WHERE records = 0;
CREATE INDEX rollup_sources_zero_idx ON dmarc.rollup_sources (day) WHERE records = 0;
COMMENT ON TABLE dmarc.rollup_sources IS
	'record_days of mail failing DMARC or server-generated, summed per UTC day, policy domain, reporter, source IP, header_from, '
	'disposition, alignment and reason. Maintained by triggers; read it through dmarc.daily_sources.';

-- dmarc.day_shares (004) for one record, with the common case (the report
-- lies within one UTC day) done inline: day_shares costs ~0.2 ms a call and
-- runs only for reports that span days.  Same results as day_shares.
CREATE FUNCTION dmarc.rollup_shares(b timestamptz, e timestamptz, n bigint)
RETURNS TABLE (day date, messages bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT (b AT TIME ZONE 'UTC')::date, n
	WHERE b IS NOT NULL AND (e IS NULL OR e <= b
	      OR date_trunc('day', b, 'UTC') = date_trunc('day', e - interval '1 microsecond', 'UTC'))
	UNION ALL
	SELECT s.day, s.messages FROM dmarc.day_shares(b, e, n) s
	WHERE NOT (b IS NOT NULL AND (e IS NULL OR e <= b
	      OR date_trunc('day', b, 'UTC') = date_trunc('day', e - interval '1 microsecond', 'UTC')))
$$;

-- Adds (sign 1) or subtracts (sign -1) the records ids to/from both rollups,
-- as record_details classifies them now and day_shares shares them out.
-- jit off: the planner's estimate for day_shares (1000 rows a call) makes
-- every call look expensive enough to JIT-compile, which costs 0.1-2 s.
CREATE FUNCTION dmarc.rollup_apply(ids bigint[], sign integer) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
	IF ids IS NULL OR cardinality(ids) = 0 THEN
		RETURN;
	END IF;
	-- EXECUTE: planned for these ids each time (a generic plan scans everything)
	EXECUTE $q$
	WITH r AS (
		SELECT s.day, coalesce(lower(rd.policy_domain), '') AS policy_domain,
		       coalesce(rd.org_name, '') AS org_name, rd.source_ip, lower(rd.header_from) AS header_from,
		       rd.disposition, rd.dkim_pass_aligned AS dkim_pass, rd.spf_pass_aligned AS spf_pass,
		       rd.server_generated_reason,
		       $2 * sum(coalesce(s.messages, 0)) AS messages, $2 * count(*) AS records
		-- OFFSET 0: classify the records first, planned for their number; else
		-- the estimate for day_shares (1000 rows a call) multiplies it and the
		-- planner hashes all of spf_results instead of probing its index
		FROM (SELECT * FROM dmarc.record_details WHERE record_id = ANY ($1) OFFSET 0) rd
		CROSS JOIN LATERAL dmarc.rollup_shares(rd.date_begin, rd.date_end, coalesce(rd.message_count, 0)) s
		WHERE s.day IS NOT NULL
		GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	), daily AS (
		INSERT INTO dmarc.rollup_daily AS t
		SELECT day, policy_domain, org_name, disposition, dkim_pass, spf_pass, server_generated_reason,
		       sum(messages), sum(records)
		FROM r
		GROUP BY 1, 2, 3, 4, 5, 6, 7
		ORDER BY 1, 2, 3, 4, 5, 6, 7
		ON CONFLICT ON CONSTRAINT rollup_daily_key DO UPDATE
			SET messages = t.messages + EXCLUDED.messages, records = t.records + EXCLUDED.records
		RETURNING 1
	)
	INSERT INTO dmarc.rollup_sources AS t
	SELECT day, policy_domain, org_name, source_ip, header_from, disposition, dkim_pass, spf_pass,
	       server_generated_reason, messages, records
	FROM r
	WHERE NOT (dkim_pass OR spf_pass) OR server_generated_reason IS NOT NULL
	ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	ON CONFLICT ON CONSTRAINT rollup_sources_key DO UPDATE
		SET messages = t.messages + EXCLUDED.messages, records = t.records + EXCLUDED.records
	$q$ USING ids, sign;

	IF sign < 0 THEN
		DELETE FROM dmarc.rollup_daily WHERE records = 0;
		DELETE FROM dmarc.rollup_sources WHERE records = 0;
	END IF;
END
$$;
COMMENT ON FUNCTION dmarc.rollup_apply(bigint[], integer) IS
	'Adds (1) or subtracts (-1) the given records to/from dmarc.rollup_daily and dmarc.rollup_sources. Used by the rollup triggers.';

-- reports: add at commit (deferred), subtract before delete.
CREATE FUNCTION dmarc.rollup_report_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		-- deferred to commit: the report may have gone meanwhile (savepoint
		-- rollback discards the event; a delete in the same transaction not)
		IF EXISTS (SELECT 1 FROM dmarc.reports WHERE id = NEW.id AND NOT rolled_up) THEN
			PERFORM dmarc.rollup_apply(ARRAY(SELECT id FROM dmarc.records WHERE report_id = NEW.id), 1);
			UPDATE dmarc.reports SET rolled_up = true WHERE id = NEW.id;
		END IF;
		RETURN NULL;
	END IF;
	IF OLD.rolled_up THEN
		PERFORM dmarc.rollup_apply(ARRAY(SELECT id FROM dmarc.records WHERE report_id = OLD.id), -1);
	END IF;
	RETURN OLD;
END
$$;
CREATE CONSTRAINT TRIGGER reports_rollup_add AFTER INSERT ON dmarc.reports
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dmarc.rollup_report_trigger();
CREATE TRIGGER reports_rollup_remove BEFORE DELETE ON dmarc.reports
	FOR EACH ROW EXECUTE FUNCTION dmarc.rollup_report_trigger();

-- For bulk deletes (prune): subtracts the reports' records in one go and
-- clears rolled_up, so the per-row trigger then has nothing left to do.
CREATE FUNCTION dmarc.rollup_forget(report_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
	PERFORM dmarc.rollup_apply(ARRAY(
		SELECT r.id FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id
		WHERE p.id = ANY (report_ids) AND p.rolled_up), -1);
	UPDATE dmarc.reports SET rolled_up = false WHERE id = ANY (report_ids) AND rolled_up;
END
$$;
COMMENT ON FUNCTION dmarc.rollup_forget(bigint[]) IS
	'Removes the given reports from the daily rollups before they are deleted in bulk (prune).';

-- ip_names: records of an IP whose confirmed PTR name changes are
-- reclassified: subtracted before the change, added after it.
CREATE FUNCTION dmarc.rollup_ip_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	addr inet := CASE WHEN TG_OP = 'DELETE' THEN OLD.ip ELSE NEW.ip END;
BEGIN
	PERFORM dmarc.rollup_apply(ARRAY(
		SELECT r.id FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id
		WHERE r.source_ip = addr AND p.rolled_up), CASE WHEN TG_WHEN = 'BEFORE' THEN -1 ELSE 1 END);
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER ip_names_rollup_before_insert BEFORE INSERT ON dmarc.ip_names
	FOR EACH ROW WHEN (NEW.forward_confirmed) EXECUTE FUNCTION dmarc.rollup_ip_trigger();
CREATE TRIGGER ip_names_rollup_after_insert AFTER INSERT ON dmarc.ip_names
	FOR EACH ROW WHEN (NEW.forward_confirmed) EXECUTE FUNCTION dmarc.rollup_ip_trigger();
CREATE TRIGGER ip_names_rollup_before_update BEFORE UPDATE ON dmarc.ip_names
	FOR EACH ROW WHEN ((CASE WHEN OLD.forward_confirmed THEN OLD.ptr END)
	                   IS DISTINCT FROM (CASE WHEN NEW.forward_confirmed THEN NEW.ptr END)
	                   OR OLD.ip IS DISTINCT FROM NEW.ip)
	EXECUTE FUNCTION dmarc.rollup_ip_trigger();
CREATE TRIGGER ip_names_rollup_after_update AFTER UPDATE ON dmarc.ip_names
	FOR EACH ROW WHEN ((CASE WHEN OLD.forward_confirmed THEN OLD.ptr END)
	                   IS DISTINCT FROM (CASE WHEN NEW.forward_confirmed THEN NEW.ptr END)
	                   OR OLD.ip IS DISTINCT FROM NEW.ip)
	EXECUTE FUNCTION dmarc.rollup_ip_trigger();
CREATE TRIGGER ip_names_rollup_before_delete BEFORE DELETE ON dmarc.ip_names
	FOR EACH ROW WHEN (OLD.forward_confirmed) EXECUTE FUNCTION dmarc.rollup_ip_trigger();
CREATE TRIGGER ip_names_rollup_after_delete AFTER DELETE ON dmarc.ip_names
	FOR EACH ROW WHEN (OLD.forward_confirmed) EXECUTE FUNCTION dmarc.rollup_ip_trigger();

-- Recomputes both rollups from scratch; returns the rows written.
CREATE FUNCTION dmarc.rollup_rebuild() RETURNS bigint
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	n bigint;
	m bigint;
BEGIN
	LOCK TABLE dmarc.rollup_daily, dmarc.rollup_sources IN EXCLUSIVE MODE;
	TRUNCATE dmarc.rollup_daily, dmarc.rollup_sources;
	WITH r AS (
		SELECT s.day, coalesce(lower(rd.policy_domain), '') AS policy_domain,
		       coalesce(rd.org_name, '') AS org_name, rd.source_ip, lower(rd.header_from) AS header_from,
		       rd.disposition, rd.dkim_pass_aligned AS dkim_pass, rd.spf_pass_aligned AS spf_pass,
		       rd.server_generated_reason,
		       sum(coalesce(s.messages, 0)) AS messages, count(*) AS records
		FROM dmarc.record_details rd
		CROSS JOIN LATERAL dmarc.rollup_shares(rd.date_begin, rd.date_end, coalesce(rd.message_count, 0)) s
		WHERE s.day IS NOT NULL
		GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	), daily AS (
		INSERT INTO dmarc.rollup_daily
		SELECT day, policy_domain, org_name, disposition, dkim_pass, spf_pass, server_generated_reason,
		       sum(messages), sum(records)
		FROM r GROUP BY 1, 2, 3, 4, 5, 6, 7
		RETURNING 1
	), src AS (
		INSERT INTO dmarc.rollup_sources
		SELECT * FROM r
		WHERE NOT (dkim_pass OR spf_pass) OR server_generated_reason IS NOT NULL
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM daily), (SELECT count(*) FROM src) INTO n, m;
	UPDATE dmarc.reports SET rolled_up = true WHERE NOT rolled_up;
	RETURN n + m;
END
$$;
COMMENT ON FUNCTION dmarc.rollup_rebuild() IS
	'Recomputes dmarc.rollup_daily and dmarc.rollup_sources from all records (minutes on millions of records). '
	'Run it after editing records or ip_names by hand.';

SELECT dmarc.rollup_rebuild();

-- ------------------------------------------------------ views for readers

CREATE VIEW dmarc.daily_mail AS
SELECT
	day,
	(day::timestamp AT TIME ZONE 'UTC') AS "time",
	policy_domain,
	org_name,
	disposition,
	dkim_pass,
	spf_pass,
	dkim_pass OR spf_pass AS dmarc_pass,
	server_generated_reason IS NOT NULL AS server_generated,
	server_generated_reason,
	messages,
	records
FROM dmarc.rollup_daily;
COMMENT ON VIEW dmarc.daily_mail IS
	'Messages per UTC day (reports spanning several days shared out as in dmarc.record_days), policy domain (lower case), reporter '
	'(org_name), disposition, DKIM/SPF alignment, dmarc_pass and server-generated reason. time is the day''s start (UTC). '
	'records counts record-days. The fast source for daily graphs; same numbers as dmarc.daily_summary.';

CREATE VIEW dmarc.daily_sources AS
SELECT
	s.day,
	(s.day::timestamp AT TIME ZONE 'UTC') AS "time",
	s.policy_domain,
	s.org_name,
	s.source_ip,
	CASE WHEN n.forward_confirmed THEN n.ptr END AS ptr,
	n.ptr AS ptr_raw,
	CASE WHEN n.forward_confirmed THEN n.ptr_base_domain END AS ptr_base_domain,
	s.header_from,
	s.disposition,
	s.dkim_pass,
	s.spf_pass,
	s.dkim_pass OR s.spf_pass AS dmarc_pass,
	s.server_generated_reason IS NOT NULL AS server_generated,
	s.server_generated_reason,
	s.messages,
	s.records
FROM dmarc.rollup_sources s
LEFT JOIN dmarc.ip_names n ON n.ip = s.source_ip;
COMMENT ON VIEW dmarc.daily_sources IS
	'Per UTC day, policy domain, reporter and source IP (with its PTR name): mail that failed DMARC and server-generated mail '
	'(passing regular mail is only in dmarc.daily_mail). For top failing IPs and the servers that need DKIM.';

CREATE VIEW dmarc.report_overview AS
SELECT
	id,
	report_id AS report_ext_id,
	org_name,
	org_email,
	lower(policy_domain) AS policy_domain,
	date_begin,
	date_end,
	policy_p,
	policy_sp,
	policy_np,
	policy_adkim,
	policy_aspf,
	policy_pct,
	policy_fo,
	policy_testing,
	generator,
	errors,
	record_count,
	message_total,
	mailbox,
	file_name,
	message_id,
	ingested_at
FROM dmarc.reports;
COMMENT ON VIEW dmarc.report_overview IS
	'One row per stored report: who sent it (org_name), for which domain (lower case), the period it covers, the policy the domain '
	'published as the reporter saw it, record and message totals, where it came from. id = dmarc.reports.id.';

CREATE VIEW dmarc.failure_list AS
SELECT
	id,
	failed_at,
	mailbox,
	uidvalidity,
	uid,
	message_id,
	file_name,
	stage,
	reason,
	octet_length(content) AS content_bytes,
	encode(sha256, 'hex') AS sha256
FROM dmarc.failures;
COMMENT ON VIEW dmarc.failure_list IS
	'Rejected inputs (dmarc.failures) without their bytes: when, where from, stage, reason, size and SHA-256 of the original. '
	'The bytes stay in dmarc.failures.content, readable by the collector''s role only.';

-- ---------------------------------------------------------------- indexes
-- Each measured with bench/panels.sh (docs/README-grafana.md).

-- every daily panel: a day range, then domain (and reporter)
CREATE INDEX rollup_daily_day_idx ON dmarc.rollup_daily (day, policy_domain);
CREATE INDEX rollup_sources_day_idx ON dmarc.rollup_sources (day, policy_domain);
-- published policies, report lists, the reporter variable: by period
CREATE INDEX reports_date_end_idx ON dmarc.reports (date_end);
CREATE INDEX reports_domain_date_idx ON dmarc.reports (lower(policy_domain), date_begin);
-- rejected inputs by time; prune by time
CREATE INDEX failures_failed_at_idx ON dmarc.failures (failed_at);

-- ------------------------------------------------------------------ roles

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'dmarc_writer') THEN
		CREATE ROLE dmarc_writer NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'dmarc_reader') THEN
		CREATE ROLE dmarc_reader NOLOGIN;
	END IF;
END
$$;

-- Grants the roles their share of schema dmarc as it is now: the reader
-- SELECT on every view (and no table), the writer all it needs on every
-- table, sequence and function.  Idempotent; every migration that adds a
-- table or view ends by calling it.
CREATE FUNCTION dmarc.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	o record;
BEGIN
	GRANT USAGE ON SCHEMA dmarc TO dmarc_reader, dmarc_writer;
	FOR o IN SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
	         WHERE c.relnamespace = 'dmarc'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
	LOOP
		IF o.relkind IN ('v', 'm') THEN
			EXECUTE format('GRANT SELECT ON dmarc.%I TO dmarc_reader, dmarc_writer', o.relname);
		ELSIF o.relkind = 'S' THEN
			EXECUTE format('REVOKE ALL ON dmarc.%I FROM dmarc_reader', o.relname);
			EXECUTE format('GRANT USAGE, SELECT, UPDATE ON dmarc.%I TO dmarc_writer', o.relname);
		ELSE
			EXECUTE format('REVOKE ALL ON dmarc.%I FROM dmarc_reader', o.relname);
			EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON dmarc.%I TO dmarc_writer', o.relname);
		END IF;
	END LOOP;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA dmarc TO dmarc_writer;
	GRANT EXECUTE ON FUNCTION dmarc.dns_name_norm(text), dmarc.dns_name_eq(text, text),
		dmarc.day_shares(timestamptz, timestamptz, bigint) TO dmarc_reader;
	REVOKE ALL ON FUNCTION dmarc.grant_roles(), dmarc.rollup_rebuild(), dmarc.rollup_forget(bigint[]),
		dmarc.rollup_apply(bigint[], integer) FROM PUBLIC, dmarc_reader;
END
$$;
COMMENT ON FUNCTION dmarc.grant_roles() IS
	'Grants dmarc_reader SELECT on every view of schema dmarc (never a table) and dmarc_writer DML on every table. '
	'Every migration that adds a table or a view ends with SELECT dmarc.grant_roles().';

SELECT dmarc.grant_roles();

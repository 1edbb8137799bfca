-- 0.1-before.sql - first step of the upgrade of a 0.1 database to 1.0:
-- takes the 0.1 schema apart, keeping every row.
--
-- `dmarc-collector migrate` runs it when dmarc.schema_migrations names
-- 0.1's first migration (001_schema.sql), in ONE transaction with the rest
-- of the upgrade: this file, then the 1.0 bookkeeping tables, every file of
-- sql/migrations and sql/objects as for an empty database, then
-- 0.1-after.sql, which copies the rows into the 1.0 tables and drops what
-- this file set aside.  Any error rolls all of it back: the database stays
-- a 0.1 database, as it was.
--
-- What it does:
--   1. checks that 0.1's migrations 001..007 were all applied (008 may be
--      missing: the schema of commit d00bbda; its one column is added here);
--   2. drops 0.1's views, functions and triggers, the complete list of
--      those its eight migrations left (views before the functions and
--      tables they read, triggers before their functions).  They hold no
--      data; sql/objects defines their 1.0 versions;
--   3. moves 0.1's tables into schema dmarc_v01 (ALTER TABLE ... SET
--      SCHEMA: a catalog change, no row is copied; their indexes,
--      constraints and the sequences their ids come from move with them);
--   4. refuses a database with objects the upgrade does not know: anything
--      left in schema dmarc (it could be in the way of 1.0), an index,
--      sequence or trigger added to a 0.1 table by hand, and any view,
--      function or foreign key elsewhere that depends on a 0.1 table
--      (0.1-after.sql drops the 0.1 tables: such an object would be lost
--      with them, or stop the upgrade only after all the copying).  Each
--      refusal names the object: move or drop it, upgrade, re-create it.

DO $$
DECLARE
	missing text;
BEGIN
	SELECT string_agg(m, ', ' ORDER BY m) INTO missing
	FROM unnest(ARRAY['001_schema.sql', '002_views.sql', '003_mailboxes.sql', '004_daily.sql',
	                  '005_grafana.sql', '006_rollup_speed.sql', '007_rollup_batch.sql']) m
	WHERE NOT EXISTS (SELECT FROM dmarc.schema_migrations s WHERE s.name = m);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'this 0.1 database lacks 0.1 migrations %: run `migrate` of dmarc-collector 0.1 first, then this one', missing;
	END IF;
END
$$;

-- 0.1's migration 008 (failures keep their bytes in dmarc.originals) may be
-- missing; its column then is, and stays, NULL for every row
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute
	               WHERE attrelid = 'dmarc.failures'::regclass AND attname = 'original_id' AND NOT attisdropped) THEN
		ALTER TABLE dmarc.failures ADD COLUMN original_id bigint REFERENCES dmarc.originals (id);
	END IF;
END
$$;

-- the views, readers of others first (0.1 sql/002, 004, 005, 008)
DROP VIEW dmarc.server_generated_sources;     -- 002
DROP VIEW dmarc.server_generated_mail;        -- 002
DROP VIEW dmarc.regular_mail;                 -- 002
DROP VIEW dmarc.daily_summary;                -- 004
DROP VIEW dmarc.record_days;                  -- 004
DROP VIEW dmarc.record_details;               -- 002
DROP VIEW dmarc.daily_mail;                   -- 005
DROP VIEW dmarc.daily_sources;                -- 005
DROP VIEW dmarc.report_overview;              -- 005
DROP VIEW dmarc.failure_list;                 -- 005, 008

-- the triggers (0.1 sql/005, 006)
DROP TRIGGER reports_rollup_add ON dmarc.reports;
DROP TRIGGER reports_rollup_remove ON dmarc.reports;
DROP TRIGGER ip_names_rollup_insert ON dmarc.ip_names;
DROP TRIGGER ip_names_rollup_update ON dmarc.ip_names;
DROP TRIGGER ip_names_rollup_delete ON dmarc.ip_names;

-- the functions (0.1 sql/002, 004, 005, 006, 007, 008; 005's
-- rollup_ip_trigger and rollup_shares were dropped by 006 already)
DROP FUNCTION dmarc.dns_name_norm(text);                                     -- 002 (dns_name_eq's
DROP FUNCTION dmarc.dns_name_eq(text, text);                                 --  body names it, no dependency)
DROP FUNCTION dmarc.day_shares(timestamptz, timestamptz, bigint);            -- 004
DROP FUNCTION dmarc.rollup_apply(bigint[], integer);                         -- 005, 006
DROP FUNCTION dmarc.rollup_report_trigger();                                 -- 005, 006, 007
DROP FUNCTION dmarc.rollup_forget(bigint[]);                                 -- 005, 006
DROP FUNCTION dmarc.rollup_rebuild();                                        -- 005, 006, 007
DROP FUNCTION dmarc.grant_roles();                                           -- 005
DROP FUNCTION dmarc.rollup_days(timestamptz, timestamptz);                   -- 006
DROP FUNCTION dmarc.rollup_change(text, bigint[], inet[], text[], text[], integer); -- 006, 007
DROP FUNCTION dmarc.rollup_apply_reports(bigint[], integer);                 -- 006
DROP FUNCTION dmarc.rollup_ip_names_trigger();                               -- 006
DROP FUNCTION dmarc.rollup_pending();                                        -- 007
DROP FUNCTION IF EXISTS dmarc.failure_content(dmarc.failures);               -- 008

-- the tables, with their indexes, constraints and sequences
CREATE SCHEMA dmarc_v01;
COMMENT ON SCHEMA dmarc_v01 IS
	'The tables of a 0.1 database during its upgrade to 1.0 (sql/upgrade/0.1-before.sql); dropped by 0.1-after.sql in the same transaction.';
ALTER TABLE dmarc.schema_migrations SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.originals SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.reports SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.records SET SCHEMA dmarc_v01;         -- with records_id_seq (OWNED BY records.id)
ALTER TABLE dmarc.dkim_results SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.spf_results SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.failures SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.ip_names SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.mailboxes SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.mailbox_messages SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.rollup_daily SET SCHEMA dmarc_v01;
ALTER TABLE dmarc.rollup_sources SET SCHEMA dmarc_v01;

-- nothing the upgrade does not know may be lost with dmarc_v01 or get in
-- the way of the 1.0 schema
DO $$
DECLARE
	o text;
BEGIN
	-- left in schema dmarc: a table, view, sequence, function or type of
	-- someone's own (the row types of the moved tables moved with them)
	SELECT min(x) INTO o FROM (
		SELECT format('%s %s', CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
		                        WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index' ELSE 'table' END,
		              'dmarc.' || quote_ident(c.relname)) AS x
		FROM pg_catalog.pg_class c WHERE c.relnamespace = 'dmarc'::regnamespace
		UNION ALL
		SELECT format('function dmarc.%I(%s)', p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid))
		FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'dmarc'::regnamespace
		UNION ALL
		SELECT format('type dmarc.%I', t.typname)
		FROM pg_catalog.pg_type t
		WHERE t.typnamespace = 'dmarc'::regnamespace AND t.typrelid = 0          -- not a relation's row type
		  AND NOT (t.typcategory = 'A' AND t.typelem <> 0)                       -- nor an array type
	) u;
	IF o IS NOT NULL THEN
		RAISE EXCEPTION '% is not part of schema 0.1 and would be in the way of 1.0: move it out of schema dmarc (or drop it) before the upgrade', o;
	END IF;

	-- an index or sequence added by hand to a 0.1 table would be dropped
	-- with it (the names are those 0.1's migrations create); the 1.0 tables
	-- have their own indexes
	SELECT min(c.relname) INTO o
	FROM pg_catalog.pg_class c
	WHERE c.relnamespace = 'dmarc_v01'::regnamespace AND c.relkind IN ('i', 'S')
	  AND c.relname <> ALL (ARRAY[
		'dkim_results_pkey', 'failures_failed_at_idx', 'failures_original_id_idx', 'failures_pkey',
		'ip_names_pkey', 'mailbox_messages_handled_at', 'mailbox_messages_pkey', 'mailboxes_pkey',
		'mailboxes_url_username_key', 'originals_pkey', 'originals_sha256_key', 'records_pkey',
		'records_report_id_idx', 'records_source_ip_idx', 'reports_date_end_idx', 'reports_domain_date_idx',
		'reports_not_rolled_up_idx', 'reports_original_id_idx', 'reports_pkey', 'reports_unique_report',
		'rollup_daily_day_idx', 'rollup_daily_key', 'rollup_daily_zero_idx', 'rollup_sources_day_idx',
		'rollup_sources_ip_idx', 'rollup_sources_key', 'rollup_sources_zero_idx', 'schema_migrations_pkey',
		'spf_results_pkey',
		'failures_id_seq', 'mailboxes_id_seq', 'originals_id_seq', 'records_id_seq', 'reports_id_seq']);
	IF o IS NOT NULL THEN
		RAISE EXCEPTION 'dmarc.% is not part of schema 0.1 and the upgrade would drop it: drop it before the upgrade (and create it again afterwards if 1.0 needs it)', o;
	END IF;

	-- a trigger added by hand to a 0.1 table (0.1's own are dropped above)
	SELECT min(format('trigger %I on dmarc.%I', t.tgname, c.relname)) INTO o
	FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
	WHERE c.relnamespace = 'dmarc_v01'::regnamespace AND NOT t.tgisinternal;
	IF o IS NOT NULL THEN
		RAISE EXCEPTION '% is not part of schema 0.1 and the upgrade would drop it: drop it before the upgrade (and create it again afterwards)', o;
	END IF;

	-- anything outside dmarc_v01 that depends on a moved table, its row
	-- type or a column (a view, a function taking its rows, a foreign key
	-- from another table): 0.1-after.sql's DROP TABLE would fail on it at
	-- the very end
	SELECT min(CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::regclass
	                THEN (SELECT format('view %s', r.ev_class::regclass) FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)
	                ELSE replace(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), 'dmarc_v01.', 'dmarc.') END)
	INTO o
	FROM pg_catalog.pg_depend d
	WHERE d.deptype = 'n'
	  AND ((d.refclassid = 'pg_catalog.pg_class'::regclass
	        AND d.refobjid IN (SELECT c.oid FROM pg_catalog.pg_class c
	                           WHERE c.relnamespace = 'dmarc_v01'::regnamespace))
	    OR (d.refclassid = 'pg_catalog.pg_type'::regclass
	        AND d.refobjid IN (SELECT t.oid FROM pg_catalog.pg_type t
	                           WHERE t.typnamespace = 'dmarc_v01'::regnamespace)))
	  AND NOT (d.classid = 'pg_catalog.pg_class'::regclass
	           AND d.objid IN (SELECT c.oid FROM pg_catalog.pg_class c
	                           WHERE c.relnamespace = 'dmarc_v01'::regnamespace))
	  AND NOT (d.classid = 'pg_catalog.pg_type'::regclass
	           AND d.objid IN (SELECT t.oid FROM pg_catalog.pg_type t
	                           WHERE t.typnamespace = 'dmarc_v01'::regnamespace))
	  AND NOT (d.classid = 'pg_catalog.pg_constraint'::regclass
	           AND d.objid IN (SELECT k.oid FROM pg_catalog.pg_constraint k
	                           WHERE k.connamespace = 'dmarc_v01'::regnamespace))
	  AND NOT (d.classid = 'pg_catalog.pg_attrdef'::regclass
	           AND d.objid IN (SELECT a.oid FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class c ON c.oid = a.adrelid
	                           WHERE c.relnamespace = 'dmarc_v01'::regnamespace));
	IF o IS NOT NULL THEN
		RAISE EXCEPTION '% depends on a 0.1 table and the upgrade would drop it: drop it before the upgrade and create it again afterwards on the 1.0 schema', o;
	END IF;
END
$$;

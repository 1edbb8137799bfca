-- 90_roles.sql - the two group roles and what each may do.
--
--   dmarc_writer  the collector: reads and writes the tables, runs the
--                 maintenance functions.
--   dmarc_reader  analysts and Grafana: SELECT on the views, nothing else
--                 (no table, so not the original bytes of reports or failures).
-- Roles are cluster-wide: created only when missing (NOLOGIN groups).
-- migrate calls dmarc.grant_roles() after every change to the schema, so a
-- new table or view gets its grants: whatever an analyst may see is a view,
-- whatever is private is a table.

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

CREATE OR REPLACE FUNCTION dmarc.grant_roles() RETURNS void
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
		dmarc.report_days(timestamptz, timestamptz), dmarc.day_share(bigint, numeric, numeric, numeric),
		dmarc.day_shares(timestamptz, timestamptz, bigint),
		dmarc.server_generated_reason(text, text, text, jsonb, text),
		dmarc.spf_more_has_domain(jsonb, text) TO dmarc_reader;
END
$$;
COMMENT ON FUNCTION dmarc.grant_roles() IS
	'Grants dmarc_reader SELECT on every view of schema dmarc (never a table) and the pure functions, and dmarc_writer DML on '
	'every table and EXECUTE on every function. migrate calls it after every change to the schema.';
REVOKE ALL ON FUNCTION dmarc.grant_roles() FROM PUBLIC;

SELECT dmarc.grant_roles();

-- 90_roles.sql - the two group roles and what each may do.
--
--   dmarc_writer  the collector: reads and writes the tables, runs the
--                 maintenance functions.
--   dmarc_reader  analysts and Grafana: SELECT on the views, nothing else
--                 (no table, so not the original bytes of reports or failures).
-- Roles are cluster-wide, and creating one needs CREATEROLE, which a
-- database owner often lacks: this file creates none.  migrate
-- (storage/dc_migrate.c) creates the missing ones after the schema when its
-- login may, and otherwise finishes with one warning giving the CREATE ROLE
-- an administrator runs (docs/README-storage.md, "Setting up the database").
-- dmarc.grant_roles() grants to the roles that exist and skips a missing one.
-- migrate calls it after every change to the schema, so a new table or view
-- gets its grants (whatever an analyst may see is a view, whatever is private
-- is a table), and again when a role exists without its grants (created by
-- an administrator after the first migrate).

CREATE OR REPLACE FUNCTION dmarc.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	o record;
	w boolean := EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dmarc_writer');
	r boolean := EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dmarc_reader');
BEGIN
	-- reader first, as before: the order of the grants is the order of the
	-- ACLs in sql/schema.sql
	IF r THEN
		GRANT USAGE ON SCHEMA dmarc TO dmarc_reader;
	END IF;
	IF w THEN
		GRANT USAGE ON SCHEMA dmarc TO dmarc_writer;
	END IF;
	FOR o IN SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
	         WHERE c.relnamespace = 'dmarc'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
	LOOP
		IF o.relkind IN ('v', 'm') THEN
			IF r THEN
				EXECUTE format('GRANT SELECT ON dmarc.%I TO dmarc_reader', o.relname);
			END IF;
			IF w THEN
				EXECUTE format('GRANT SELECT ON dmarc.%I TO dmarc_writer', o.relname);
			END IF;
		ELSE
			IF r THEN
				EXECUTE format('REVOKE ALL ON dmarc.%I FROM dmarc_reader', o.relname);
			END IF;
			IF w AND o.relkind = 'S' THEN
				EXECUTE format('GRANT USAGE, SELECT, UPDATE ON dmarc.%I TO dmarc_writer', o.relname);
			ELSIF w THEN
				EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON dmarc.%I TO dmarc_writer', o.relname);
			END IF;
		END IF;
	END LOOP;
	IF w THEN
		GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA dmarc TO dmarc_writer;
	END IF;
	IF r THEN
		GRANT EXECUTE ON FUNCTION dmarc.dns_name_norm(text), dmarc.dns_name_eq(text, text),
			dmarc.report_days(timestamptz, timestamptz), dmarc.day_share(bigint, numeric, numeric, numeric),
			dmarc.day_shares(timestamptz, timestamptz, bigint),
			dmarc.server_generated_reason(text, text, text, jsonb, text),
			dmarc.spf_more_has_domain(jsonb, text) TO dmarc_reader;
	END IF;
END
$$;
COMMENT ON FUNCTION dmarc.grant_roles() IS
	'Grants dmarc_reader SELECT on every view of schema dmarc (never a table) and the pure functions, and dmarc_writer DML on '
	'every table and EXECUTE on every function; a role that does not exist is skipped. migrate calls it after every '
	'change to the schema, and when a role exists without its grants.';
REVOKE ALL ON FUNCTION dmarc.grant_roles() FROM PUBLIC;

SELECT dmarc.grant_roles();

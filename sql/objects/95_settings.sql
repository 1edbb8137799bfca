-- 95_settings.sql - settings of the database that holds schema dmarc.
--
-- jit = off.  PostgreSQL's JIT compiles a function for every expression of
-- every partition a plan touches; with monthly partitions of reports and
-- records (one per month of data since 2000), a plain query that the planner
-- estimates above jit_above_cost compiles thousands of functions: the
-- corpus test's per-report counts spent 16.2 s in JIT to execute in 50 ms.
-- The rollup functions already run with jit off; this covers analysts,
-- Grafana and ad-hoc SQL in new sessions.  Set on the database (a role's
-- setting would not reach the members of dmarc_reader); when the role
-- running migrate may not alter the database (it is not its owner), the
-- setting is left alone and docs/README-storage.md says what to run.
DO $$
BEGIN
	EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
	RAISE NOTICE 'jit is left on: only the owner of database % may turn it off (ALTER DATABASE ... SET jit = off)',
		current_database();
END
$$;

-- 75_partitions.sql - the monthly partitions of dmarc.reports and
-- dmarc.records (sql/migrations/001_tables.sql).
--
-- A month M is dmarc.reports_YYYY_MM and dmarc.records_YYYY_MM, for
-- date_begin in [M, M + 1 month) UTC.  Rows no monthly partition covers go
-- to the DEFAULT partitions; creating a month moves its rows out of them.
-- Months are created only from 2000-01 to a year ahead of now, so a report
-- with a hostile date (1970, 9999, or a different one in every message)
-- stays in the DEFAULT partition instead of creating partitions.
--
-- Who calls: migrate (maintain_partitions), poll at the start of each poll
-- of a mailbox, import at its start and end and before the first report of
-- a month it has not seen, reparse at its end.  Always in a transaction of
-- its own: creating a partition takes an ACCESS EXCLUSIVE lock on the parent
-- table until the transaction ends.  SECURITY DEFINER: the partitions
-- belong to the schema's owner (who ran migrate), so that prune, running
-- as the collector's role, can drop them through dmarc.prune_month.

CREATE OR REPLACE FUNCTION dmarc.create_partitions(b timestamptz, e timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lo timestamptz := greatest(date_trunc('month', b, 'UTC'), '2000-01-01 00:00:00+00');
	hi timestamptz := least(date_trunc('month', e, 'UTC'), date_trunc('month', now() + interval '1 year', 'UTC'));
	m timestamptz;
	nxt timestamptz;
	locked boolean := false;
	t text;
	part text;
	created integer := 0;
BEGIN
	IF b IS NULL OR e IS NULL THEN
		RETURN 0;
	END IF;
	-- one creator at a time (two collectors starting together)
	PERFORM pg_advisory_xact_lock(7236828409416413026);
	m := lo;
	WHILE m <= hi LOOP
		-- one month later in UTC (in another TimeZone a DST change would
		-- move the bound by an hour)
		nxt := ((m AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
		FOREACH t IN ARRAY ARRAY['reports', 'records'] LOOP
			part := t || '_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');
			CONTINUE WHEN to_regclass('dmarc.' || part) IS NOT NULL;
			-- the month's rows in the DEFAULT partition move into the new
			-- one (PostgreSQL refuses the partition while they are there);
			-- the reports' triggers must not take them for deletions, nor
			-- for new reports at COMMIT (moving_rows stays on until the
			-- transaction ends: a moved report keeps rolled_up, and one
			-- still waiting is added by the next dmarc.rollup_pending()
			-- with the others, not one by one at this COMMIT)
			PERFORM set_config('dmarc.moving_rows', 'on', true);
			-- both parents, together, before anything is created: no writer
			-- may add a row of this month to DEFAULT between the move and
			-- the new partition's check, and a writer that holds one of
			-- the tables (a poll batch of another mailbox) is waited for
			-- whole, instead of being caught between the two creations
			-- (reports created and held, records waiting for the writer,
			-- the writer waiting for reports: a deadlock, seen in CI).
			-- Outside the block below: its rollback would release them.
			-- First dmarc.originals, which the reports' foreign key
			-- references: creating a partition of reports takes SHARE ROW
			-- EXCLUSIVE on it, and a writer inserts its originals before
			-- its reports; taken after the parents, that lock waited for a
			-- writer that held originals and waited for reports (a
			-- deadlock, seen in CI's it_imap_quirks under load).
			IF NOT locked THEN
				LOCK TABLE dmarc.originals IN SHARE ROW EXCLUSIVE MODE;
				LOCK TABLE dmarc.reports, dmarc.records IN ACCESS EXCLUSIVE MODE;
				locked := true;
			END IF;
			BEGIN
				EXECUTE format('CREATE TEMPORARY TABLE dc_moving ON COMMIT DROP AS '
				               'WITH d AS (DELETE FROM dmarc.%I WHERE date_begin >= $1 AND date_begin < $2 RETURNING *) '
				               'SELECT * FROM d', t || '_default')
					USING m, nxt;
				EXECUTE format('CREATE TABLE dmarc.%I PARTITION OF dmarc.%I FOR VALUES FROM (%L) TO (%L)',
				               part, t, m, nxt);
				EXECUTE format('INSERT INTO dmarc.%I SELECT * FROM dc_moving', part);
				DROP TABLE dc_moving;
			EXCEPTION WHEN check_violation THEN
				-- a row of the month still in DEFAULT: leave the month there
				-- (nothing is lost, the rows stay readable) rather than fail
				-- the writer that asked; the next call tries again
				RAISE NOTICE 'partition % not created: %', part, SQLERRM;
				CONTINUE;
			END;
			created := created + 1;
		END LOOP;
		m := nxt;
	END LOOP;
	RETURN created;
END
$$;
COMMENT ON FUNCTION dmarc.create_partitions(timestamptz, timestamptz) IS
	'Creates the monthly partitions of dmarc.reports and dmarc.records for the months from b to e (only 2000-01 to a year ahead), '
	'moving their rows out of the DEFAULT partitions; returns how many partitions were created. Run it in a transaction of its own.';
REVOKE ALL ON FUNCTION dmarc.create_partitions(timestamptz, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dmarc.maintain_partitions() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	created integer;
	m timestamptz;
BEGIN
	created := dmarc.create_partitions(now() - interval '1 month', now() + interval '2 months');
	FOR m IN SELECT DISTINCT date_trunc('month', date_begin, 'UTC') FROM dmarc.reports_default
	         WHERE date_begin >= '2000-01-01 00:00:00+00' AND date_begin < now() + interval '1 year'
	LOOP
		created := created + dmarc.create_partitions(m, m);
	END LOOP;
	RETURN created;
END
$$;
COMMENT ON FUNCTION dmarc.maintain_partitions() IS
	'Creates the monthly partitions for last month to two months ahead, and for every month (2000-01 to a year ahead) that has '
	'rows in the DEFAULT partitions, moving them; returns how many partitions were created. migrate, poll, import and reparse call it.';
REVOKE ALL ON FUNCTION dmarc.maintain_partitions() FROM PUBLIC;

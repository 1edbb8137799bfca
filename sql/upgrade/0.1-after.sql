-- 0.1-after.sql - last step of the upgrade of a 0.1 database to 1.0: copies
-- every row of the 0.1 tables (set aside in schema dmarc_v01 by
-- 0.1-before.sql) into the 1.0 tables, then drops dmarc_v01.
--
-- It runs in the same transaction as 0.1-before.sql and the creation of the
-- 1.0 schema (see 0.1-before.sql): any error here rolls all of it back and
-- leaves the 0.1 database as it was.  Errors it raises itself are one line
-- that names the rows and what to do.
--
-- What is kept, and how:
--   * every row keeps its id (OVERRIDING SYSTEM VALUE for identity columns),
--     so references between rows, the ids analysts noted, the failures'
--     original_id and the reports' original_id stay true;
--   * a record's auth results become columns of its row: the first DKIM and
--     SPF result (ordinal 1) in dkim_* / spf_*, the later ones as JSON
--     arrays in dkim_more / spf_more (NULL with at most one), the numbers in
--     dkim_count / spf_count.  The views dmarc.dkim_results and
--     dmarc.spf_results give back the same rows, ordinals included;
--   * a record's date_begin and policy_domain are its report's (1.0 joins
--     records to reports on them; 0.1's views read them from the report too);
--   * failures keep content and sha256 (rows 0.1 wrote before its
--     migration 008) and original_id as they are;
--   * every identity and sequence continues after 0.1's last value, so no
--     id is ever handed out twice (records_id_seq keeps its blocks of 4096);
--   * the daily rollups are computed again by the 1.0 functions
--     (dmarc.rollup_rebuild), rather than copied: the upgrade test compares
--     dmarc.daily_mail and dmarc.daily_sources before and after, which proves
--     the 1.0 definitions give 0.1's numbers.
-- Not kept: privileges granted by hand on the 0.1 tables (migrate grants the
-- two roles their 1.0 rights afterwards), and dmarc.schema_migrations' 0.1
-- rows (1.0 records its own migrations).
--
-- The monthly partitions are created first, one call per month that has 0.1
-- reports, so that the rows go straight into their months.  (A single
-- create_partitions(min, max) would also create every empty month in
-- between: from 2000-01 on when one report is dated 1970, as one in the test
-- corpus is.)  Months outside 2000-01 .. a year ahead stay in the DEFAULT
-- partitions, as for a report stored by 1.0.

-- the reports' insert trigger adds a report to the rollups at COMMIT unless
-- this is on; rollup_rebuild below adds them all at once
SELECT pg_catalog.set_config('dmarc.defer_rollup', 'on', true);

-- 1.0 requires what 0.1's parser always set but its tables did not enforce
DO $$
DECLARE
	n bigint;
	first_id bigint;
	what text;
BEGIN
	SELECT count(*), min(id) INTO n, first_id FROM dmarc_v01.reports
	WHERE policy_domain IS NULL OR date_begin IS NULL OR date_end IS NULL;
	IF n > 0 THEN
		SELECT concat_ws(', ', CASE WHEN policy_domain IS NULL THEN 'policy_domain' END,
		                       CASE WHEN date_begin IS NULL THEN 'date_begin' END,
		                       CASE WHEN date_end IS NULL THEN 'date_end' END)
		INTO what FROM dmarc_v01.reports WHERE id = first_id;
		RAISE EXCEPTION '% 0.1 report(s) lack policy_domain, date_begin or date_end, which 1.0 requires (dmarc.reports id % has no %): set them (or delete those reports) with the 0.1 schema, then run migrate again',
			n, first_id, what;
	END IF;

	-- the auth results of a record are numbered 1..n by 0.1's writer; the
	-- 1.0 views number them so (the first inline, then the JSON array)
	SELECT min(record_id), count(*) INTO first_id, n FROM (
		SELECT record_id FROM dmarc_v01.dkim_results GROUP BY record_id
		HAVING min(ordinal) <> 1 OR max(ordinal) <> count(*) OR count(*) > 32767
		UNION
		SELECT record_id FROM dmarc_v01.spf_results GROUP BY record_id
		HAVING min(ordinal) <> 1 OR max(ordinal) <> count(*) OR count(*) > 32767
	) bad;
	IF n > 0 THEN
		RAISE EXCEPTION '% 0.1 record(s) have auth results not numbered 1, 2, 3 ... (or more than 32767; dmarc.records id %): renumber their ordinals in dkim_results / spf_results with the 0.1 schema, then run migrate again',
			n, first_id;
	END IF;
END
$$;

SELECT count(dmarc.create_partitions(m, m)) AS months
FROM (SELECT DISTINCT date_trunc('month', date_begin, 'UTC') AS m FROM dmarc_v01.reports) months;

-- before the records, so that the ip_names trigger has no record to reclassify
INSERT INTO dmarc.ip_names (ip, ptr, ptr_base_domain, forward_confirmed, resolved_at, status)
SELECT ip, ptr, ptr_base_domain, forward_confirmed, resolved_at, status
FROM dmarc_v01.ip_names;

INSERT INTO dmarc.originals (id, sha256, content, name, first_seen) OVERRIDING SYSTEM VALUE
SELECT id, sha256, content, name, first_seen
FROM dmarc_v01.originals;

INSERT INTO dmarc.reports (id, date_begin, date_end, policy_domain, org_name, org_email, extra_contact_info,
	report_id, policy_p, policy_sp, policy_np, policy_adkim, policy_aspf, policy_pct, policy_fo, policy_testing,
	policy_discovery_method, generator, version, xmlns, errors, record_count, message_total, mailbox,
	uidvalidity, uid, message_id, file_name, original_id, original_path, ingested_at, rolled_up)
OVERRIDING SYSTEM VALUE
SELECT id, date_begin, date_end, policy_domain, org_name, org_email, extra_contact_info,
	report_id, policy_p, policy_sp, policy_np, policy_adkim, policy_aspf, policy_pct, policy_fo, policy_testing,
	policy_discovery_method, generator, version, xmlns, errors, record_count, message_total, mailbox,
	uidvalidity, uid, message_id, file_name, original_id, original_path, ingested_at, false
FROM dmarc_v01.reports;

INSERT INTO dmarc.records (id, report_id, date_begin, message_count, ordinal, dkim_count, spf_count,
	policy_domain, source_ip, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to,
	reasons, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_domain, spf_scope, spf_result,
	spf_human_result, dkim_more, spf_more)
WITH dk AS (
	SELECT record_id, count(*) AS n,
	       jsonb_agg(jsonb_build_object('domain', domain, 'selector', selector, 'result', result,
	                                    'human_result', human_result) ORDER BY ordinal)
	           FILTER (WHERE ordinal > 1) AS more
	FROM dmarc_v01.dkim_results
	GROUP BY record_id
), sp AS (
	SELECT record_id, count(*) AS n,
	       jsonb_agg(jsonb_build_object('domain', domain, 'scope', scope, 'result', result,
	                                    'human_result', human_result) ORDER BY ordinal)
	           FILTER (WHERE ordinal > 1) AS more
	FROM dmarc_v01.spf_results
	GROUP BY record_id
)
SELECT r.id, r.report_id, p.date_begin, r.message_count, r.ordinal, coalesce(dk.n, 0), coalesce(sp.n, 0),
	p.policy_domain, r.source_ip, r.disposition, r.dkim_aligned, r.spf_aligned, r.header_from, r.envelope_from,
	r.envelope_to, r.reasons, d1.domain, d1.selector, d1.result, d1.human_result, s1.domain, s1.scope, s1.result,
	s1.human_result, dk.more, sp.more
FROM dmarc_v01.records r
JOIN dmarc_v01.reports p ON p.id = r.report_id
LEFT JOIN dk ON dk.record_id = r.id
LEFT JOIN sp ON sp.record_id = r.id
LEFT JOIN dmarc_v01.dkim_results d1 ON d1.record_id = r.id AND d1.ordinal = 1
LEFT JOIN dmarc_v01.spf_results s1 ON s1.record_id = r.id AND s1.ordinal = 1;

INSERT INTO dmarc.failures (id, failed_at, mailbox, uidvalidity, uid, message_id, file_name, stage, reason,
	content, sha256, original_id) OVERRIDING SYSTEM VALUE
SELECT id, failed_at, mailbox, uidvalidity, uid, message_id, file_name, stage, reason,
	content, sha256, original_id
FROM dmarc_v01.failures;

INSERT INTO dmarc.mailboxes (id, url, username, label, uidvalidity, last_uid, messages_stored, messages_rejected,
	last_poll_at, last_success_at, last_error, created_at) OVERRIDING SYSTEM VALUE
SELECT id, url, username, label, uidvalidity, last_uid, messages_stored, messages_rejected,
	last_poll_at, last_success_at, last_error, created_at
FROM dmarc_v01.mailboxes;

INSERT INTO dmarc.mailbox_messages (mailbox_id, uidvalidity, uid, message_id, size, outcome, reports, duplicates,
	failures, action, handled_at)
SELECT mailbox_id, uidvalidity, uid, message_id, size, outcome, reports, duplicates,
	failures, action, handled_at
FROM dmarc_v01.mailbox_messages;

-- every id source continues where 0.1's stopped: the same state (last
-- value, called or not), or past the highest id copied should a row carry
-- a higher id than its sequence (ids given by hand)
DO $$
DECLARE
	t text;
	old_seq regclass;
	new_seq regclass;
	last_value bigint;
	called boolean;
	inc bigint;
	top bigint;
	next_id bigint;
BEGIN
	FOREACH t IN ARRAY ARRAY['originals', 'reports', 'records', 'failures', 'mailboxes'] LOOP
		IF t = 'records' THEN
			old_seq := 'dmarc_v01.records_id_seq';
			new_seq := 'dmarc.records_id_seq';
		ELSE
			old_seq := pg_catalog.pg_get_serial_sequence('dmarc_v01.' || t, 'id');
			new_seq := pg_catalog.pg_get_serial_sequence('dmarc.' || t, 'id');
		END IF;
		EXECUTE format('SELECT last_value, is_called FROM %s', old_seq) INTO last_value, called;
		SELECT s.seqincrement INTO inc FROM pg_catalog.pg_sequence s WHERE s.seqrelid = old_seq;
		EXECUTE format('SELECT max(id) FROM dmarc.%I', t) INTO top;
		next_id := CASE WHEN called THEN last_value + inc ELSE last_value END;
		IF top >= next_id THEN
			PERFORM pg_catalog.setval(new_seq, top + 1, false);
		ELSE
			PERFORM pg_catalog.setval(new_seq, last_value, called);
		END IF;
	END LOOP;
END
$$;

-- statistics for the rollup rebuild's plan (and the first queries after)
ANALYZE dmarc.reports, dmarc.records, dmarc.ip_names;

SELECT dmarc.rollup_rebuild() AS rollup_rows;

-- the 0.1 tables, with their indexes and sequences; then the schema, which
-- must be empty by now (0.1-before.sql refused anything else in it)
DROP TABLE dmarc_v01.mailbox_messages, dmarc_v01.mailboxes, dmarc_v01.ip_names, dmarc_v01.failures,
	dmarc_v01.spf_results, dmarc_v01.dkim_results, dmarc_v01.records, dmarc_v01.reports, dmarc_v01.originals,
	dmarc_v01.rollup_daily, dmarc_v01.rollup_sources, dmarc_v01.schema_migrations;
DROP SCHEMA dmarc_v01;

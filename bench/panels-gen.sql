-- bench/panels-gen.sql - a year of DMARC data for one busy domain, generated
-- in SQL (generate_series), for bench/panels.sh.
--
-- psql variables (set with -v): days (365), reporters (300), records (30,
-- mean records per report), ips (20000, distinct source IPs).  The data is
-- shaped like the real thing, not uniform: a few big reporters send most
-- records; a third of the reporters use report periods that do not start at
-- midnight (so records span two days); about 8% of the records are
-- server-generated (empty envelope_from or SPF scope helo, or SPF domain =
-- PTR name), about 15% fail DMARC; source IPs repeat across reports.
-- Deterministic: setseed() below.

\set ON_ERROR_STOP 1
SELECT setseed(0.42);

-- Reporters: org_name and a weight (a few send most records).
CREATE TEMP TABLE gen_reporters AS
SELECT g AS n,
	CASE WHEN g <= 5 THEN (ARRAY['google.com','Yahoo','Outlook.com','Mail.Ru','Comcast'])[g]
	     ELSE 'reporter-' || g || '.example.net' END AS org_name,
	'noreply-dmarc@reporter-' || g || '.example.net' AS org_email,
	CASE WHEN g <= 5 THEN 8.0 WHEN g <= 30 THEN 2.0 ELSE 0.6 END AS weight,
	(g % 3 = 0) AS shifted
FROM generate_series(1, :reporters) g;

-- Source IPs with PTR names; the first 2% are the domain's own servers
-- (which send bounces with an empty MAIL FROM), the next 10% forwarders.
INSERT INTO dmarc.ip_names (ip, ptr, ptr_base_domain, forward_confirmed, resolved_at, status)
SELECT ('10.' || (g >> 16) || '.' || ((g >> 8) & 255) || '.' || (g & 255))::inet,
	CASE WHEN g % 7 = 0 THEN NULL ELSE 'mx' || g || '.host' || (g % 500) || '.example.org' END,
	CASE WHEN g % 7 = 0 THEN NULL ELSE 'example.org' END,
	g % 7 <> 0, now(), CASE WHEN g % 7 = 0 THEN 'nxdomain' ELSE 'ok' END
FROM generate_series(1, :ips) g
ON CONFLICT (ip) DO NOTHING;

-- The year's monthly partitions first, as migrate and the writers keep them.
SELECT dmarc.create_partitions(now() - make_interval(days => :days + 1), now());

-- Reports: one per reporter per day.
INSERT INTO dmarc.reports (org_name, org_email, report_id, policy_domain, date_begin, date_end,
	policy_p, policy_sp, policy_adkim, policy_aspf, policy_pct, record_count, message_total, file_name)
SELECT r.org_name, r.org_email, 'bench-' || r.n || '-' || d,
	CASE WHEN r.n % 10 = 0 THEN 'shop.example.com' ELSE 'example.com' END,
	day + CASE WHEN r.shifted THEN interval '7 hours' ELSE interval '0' END,
	day + CASE WHEN r.shifted THEN interval '7 hours' ELSE interval '0' END + interval '1 day' - interval '1 second',
	CASE WHEN d < :days / 2 THEN 'quarantine' ELSE 'reject' END, 'reject', 'r', 'r', 100,
	greatest(1, round(:records * r.weight / 1.1 * (0.5 + random())))::bigint, 0, 'bench.xml'
FROM gen_reporters r,
	generate_series(0, :days - 1) d,
	LATERAL (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
	                - make_interval(days => :days - d) AS day) t;

-- Records: record_count per generated report; ids as the writer assigns
-- them; one DKIM and one SPF result per record, a second DKIM for a fifth.
SELECT coalesce(max(id), 0) AS base_id FROM dmarc.records \gset
INSERT INTO dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count,
	disposition, dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to, reasons,
	dkim_count, dkim_domain, dkim_selector, dkim_result, dkim_more,
	spf_count, spf_domain, spf_scope, spf_result)
SELECT id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count,
	disposition, dkim_aligned, spf_aligned, header_from, envelope_from, NULL, NULL,
	CASE WHEN id % 5 = 0 THEN 2 ELSE 1 END,
	CASE WHEN dkim_aligned = 'pass' THEN header_from ELSE 'esp' || (id % 50) || '.example.net' END,
	's' || (id % 4), CASE WHEN dkim_aligned = 'pass' OR id % 3 = 0 THEN 'pass' ELSE 'fail' END,
	CASE WHEN id % 5 = 0 THEN '[{"domain": "esp.example.net", "selector": "k1", "result": "pass", "human_result": null}]'::jsonb END,
	1,
	CASE WHEN own AND spf_aligned = 'fail' THEN ptr
	     WHEN spf_aligned = 'pass' THEN header_from ELSE 'bounce.example.net' END,
	CASE WHEN own AND spf_aligned = 'fail' AND id % 2 = 0 THEN 'helo' ELSE 'mfrom' END,
	CASE WHEN spf_aligned = 'pass' OR own THEN 'pass' ELSE 'softfail' END
FROM (
	SELECT :base_id + row_number() OVER () AS id, rep.id AS report_id, rep.date_begin, rep.policy_domain, o AS ordinal,
		('10.' || (ipn >> 16) || '.' || ((ipn >> 8) & 255) || '.' || (ipn & 255))::inet AS source_ip,
		CASE WHEN x < 0.7 THEN 1 + (x * 4)::int ELSE 1 + (x * x * x * x * 300)::int END AS message_count,
		CASE WHEN fail AND rep.policy_p = 'reject' THEN 'reject' WHEN fail THEN 'quarantine' ELSE 'none' END
			AS disposition,
		CASE WHEN fail OR (sg AND ipn % 3 = 0) THEN 'fail' ELSE 'pass' END AS dkim_aligned,
		CASE WHEN fail OR sg THEN 'fail' ELSE 'pass' END AS spf_aligned,
		rep.policy_domain AS header_from,
		CASE WHEN sg AND ipn % 2 = 0 THEN '' WHEN sg THEN NULL WHEN ipn % 5 = 0 THEN NULL ELSE rep.policy_domain END
			AS envelope_from,
		ipn <= :ips * 0.02 AS own,
		CASE WHEN ipn % 7 = 0 THEN NULL ELSE 'mx' || ipn || '.host' || (ipn % 500) || '.example.org' END AS ptr
	FROM dmarc.reports rep,
		LATERAL generate_series(1, rep.record_count::int) o,
		LATERAL (SELECT random() + 0 * o AS x, random() + 0 * o AS y, random() + 0 * o AS z) rnd,
		LATERAL (SELECT CASE WHEN rnd.y < 0.08 THEN 1 + (rnd.z * :ips * 0.02)::int
		                     ELSE 1 + (rnd.z * rnd.z * (:ips - 1))::int END AS ipn) ip,
		LATERAL (SELECT ip.ipn <= :ips * 0.02 AND rnd.x < 0.9 AS sg,
		                rnd.y > 0.85 AS fail) cls
	WHERE rep.report_id LIKE 'bench-%' AND NOT EXISTS (SELECT 1 FROM dmarc.records x WHERE x.report_id = rep.id)
) g;

SELECT setval('dmarc.records_id_seq', (SELECT max(id) FROM dmarc.records) + 4096);

UPDATE dmarc.reports rep SET message_total = s.m
FROM (SELECT report_id, sum(message_count) AS m FROM dmarc.records GROUP BY report_id) s
WHERE s.report_id = rep.id AND rep.report_id LIKE 'bench-%';

-- A few rejected inputs.
INSERT INTO dmarc.failures (failed_at, mailbox, stage, reason, content)
SELECT now() - make_interval(hours => g * 7), 'rua', (ARRAY['xml','unpack','mime','limits'])[1 + g % 4],
	'bench failure ' || g, convert_to(repeat('x', 100), 'UTF8')
FROM generate_series(1, 2000) g;

ANALYZE;

-- The daily rollups (sql/objects/60_rollups.sql) (their triggers are best off while
-- generating: psql -c 'SET session_replication_role = replica').
SELECT dmarc.rollup_rebuild();

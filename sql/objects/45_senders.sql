-- 45_senders.sql - who is sending (issue 14): the sender map as analysts
-- read it (dmarc.senders), the sender of each source IP
-- (dmarc.ip_senders), every record with its report, classification and
-- sender (dmarc.record_details and the views on it, here rather than in
-- 40_records.sql because they use ip_senders: files run in name order), and
-- the new senders per domain (dmarc.new_senders).
--
-- dmarc.senders: one row per base domain, the row that wins among
-- dmarc.sender_map's sources (sql/migrations/004_senders.sql).
-- Which row wins, in this order:
--   1. source 'local' (`senders set`): the administrator's own word;
--   2. the source loaded last (the greatest loaded_at: a file loaded after
--      parsedmarc's overrides it, until parsedmarc's is loaded again);
--   3. on a tie, the source whose name sorts first.
-- To keep a file of one's own above a file reloaded every month, load it
-- with --source local (it then replaces the rows of `senders set`) or load
-- it after each reload.
--
-- The winners are stored in dmarc.sender_current (sql/migrations/
-- 008_sender_current.sql), base_domain its primary key: a view computing
-- them (DISTINCT ON over the whole map) read and sorted all of parsedmarc's
-- ~38,600 rows for every query of ip_senders, even to name one IP's sender
-- (bench/senders.sh).  Statement triggers on dmarc.sender_map recompute the
-- base domains each statement touched, from the transition tables: a
-- `senders set` one domain, a `senders load` its file's and its source's
-- old ones.  They run with the rights of whoever changes the map: the
-- writer has DML on every table (90_roles.sql), so no SECURITY DEFINER.
-- Two transactions changing one domain at once (a `senders set` during a
-- `senders load`) must not each keep the winner of its own snapshot: the
-- sync locks sender_current against other syncs (readers go on) before it
-- reads the map, and each of its statements then sees what the other
-- committed (READ COMMITTED, as the collector runs).

-- Recomputes the winner of every base domain in domains (NULL: all of
-- them): deletes those that have no row left, upserts the others.
CREATE OR REPLACE FUNCTION dmarc.sender_current_sync(domains text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	LOCK TABLE dmarc.sender_current IN SHARE ROW EXCLUSIVE MODE;
	IF domains IS NULL THEN
		domains := ARRAY(SELECT base_domain FROM dmarc.sender_current UNION SELECT base_domain FROM dmarc.sender_map);
	END IF;
	-- = ANY (domains), not "domains IS NULL OR ...": the map's primary key
	-- (base_domain, source) finds the rows of a few domains
	DELETE FROM dmarc.sender_current c
	WHERE c.base_domain = ANY (domains)
	  AND NOT EXISTS (SELECT FROM dmarc.sender_map m WHERE m.base_domain = c.base_domain);
	INSERT INTO dmarc.sender_current AS c (base_domain, name, type, source, loaded_at)
	SELECT DISTINCT ON (base_domain) base_domain, name, type, source, loaded_at
	FROM dmarc.sender_map
	WHERE base_domain = ANY (domains)
	ORDER BY base_domain, (source = 'local') DESC, loaded_at DESC, source
	ON CONFLICT (base_domain) DO UPDATE
	SET name = EXCLUDED.name, type = EXCLUDED.type, source = EXCLUDED.source, loaded_at = EXCLUDED.loaded_at
	WHERE (c.name, c.type, c.source, c.loaded_at)
	      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.type, EXCLUDED.source, EXCLUDED.loaded_at);
END
$$;
COMMENT ON FUNCTION dmarc.sender_current_sync(text[]) IS
	'Recomputes dmarc.sender_current for the given base domains (NULL: all) from dmarc.sender_map, by the rule of '
	'dmarc.senders. The triggers on dmarc.sender_map call it; nothing else needs to.';

-- One function for the three statement triggers: the base domains of the
-- transition tables the event has (INSERT: new rows, DELETE: old rows,
-- UPDATE: both, as an update may change base_domain).
CREATE OR REPLACE FUNCTION dmarc.sender_map_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	d text[];
BEGIN
	IF TG_OP = 'INSERT' THEN
		d := ARRAY(SELECT DISTINCT base_domain FROM new_rows);
	ELSIF TG_OP = 'DELETE' THEN
		d := ARRAY(SELECT DISTINCT base_domain FROM old_rows);
	ELSIF TG_OP = 'UPDATE' THEN
		d := ARRAY(SELECT base_domain FROM old_rows UNION SELECT base_domain FROM new_rows);
	END IF;
	-- TRUNCATE has no transition table: d stays NULL, every domain
	IF d IS NULL OR cardinality(d) > 0 THEN
		PERFORM dmarc.sender_current_sync(d);
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION dmarc.sender_map_changed() IS
	'Statement trigger of dmarc.sender_map: recomputes dmarc.sender_current for the base domains the statement touched.';

CREATE OR REPLACE TRIGGER sender_map_insert AFTER INSERT ON dmarc.sender_map
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.sender_map_changed();
CREATE OR REPLACE TRIGGER sender_map_update AFTER UPDATE ON dmarc.sender_map
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.sender_map_changed();
CREATE OR REPLACE TRIGGER sender_map_delete AFTER DELETE ON dmarc.sender_map
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.sender_map_changed();
CREATE OR REPLACE TRIGGER sender_map_truncate AFTER TRUNCATE ON dmarc.sender_map
	FOR EACH STATEMENT EXECUTE FUNCTION dmarc.sender_map_changed();
-- All of it again, now that the triggers hold: the CREATE TRIGGERs lock
-- sender_map against writers until this transaction ends, so a change made
-- after 008 filled the table and before the triggers existed is not missed.
SELECT dmarc.sender_current_sync(NULL);

CREATE OR REPLACE VIEW dmarc.senders AS
SELECT
	base_domain,
	name,
	type,
	source,
	loaded_at
FROM dmarc.sender_current;
COMMENT ON VIEW dmarc.senders IS
	'The sender map, one row per base domain (lower case, no trailing dot): the row of source ''local'' (`senders set`) '
	'if any, else that of the source loaded last, else of the source whose name sorts first. name and type say who runs '
	'the servers under the domain, e.g. Google, Email Provider.';

-- The sender of a source IP, in this order (issue 14):
--   1. the base domain of its forward-confirmed PTR name, if in the map;
--   2. otherwise its AS domain (IPinfo's as_domain), if in the map;
--   3. otherwise none.
-- An unconfirmed PTR name never names a sender, and is not shown here (an
-- attacker chooses the PTR name of his own IPs, not whether it resolves
-- back).  Two LEFT JOINs by equality, one per basis, on the primary key
-- of dmarc.sender_current (under dmarc.senders): an index lookup for a
-- few IPs, a hash join for many.  PostgreSQL knows the key unique, so a
-- query of a view joining ip_senders (record_details, daily_sources) that
-- uses none of its columns drops the join: 1.0's queries and panels cost
-- what they did.
-- ptr_base_domain is stored normalised (lower case, no trailing dot, as
-- resolve writes it); as_domain is normalised here.
CREATE OR REPLACE VIEW dmarc.ip_senders AS
SELECT
	n.ip,
	CASE WHEN n.forward_confirmed THEN n.ptr END AS ptr,
	CASE WHEN n.forward_confirmed THEN n.ptr_base_domain END AS ptr_base_domain,
	n.forward_confirmed,
	n.asn,
	n.as_name,
	n.as_domain,
	n.country,
	coalesce(sp.name, sa.name) AS sender_name,
	CASE WHEN sp.base_domain IS NOT NULL THEN sp.type ELSE sa.type END AS sender_type,
	coalesce(sp.base_domain, sa.base_domain) AS sender_domain,
	CASE WHEN sp.base_domain IS NOT NULL THEN 'ptr' WHEN sa.base_domain IS NOT NULL THEN 'as_domain' END AS sender_basis,
	coalesce(sp.name, sa.name, CASE WHEN n.forward_confirmed THEN n.ptr_base_domain END,
		'AS' || n.asn || coalesce(' ' || n.as_name, ''), host(n.ip)) AS sender
FROM dmarc.ip_names n
LEFT JOIN dmarc.senders sp ON n.forward_confirmed AND sp.base_domain = n.ptr_base_domain
LEFT JOIN dmarc.senders sa ON sa.base_domain = dmarc.dns_name_norm(n.as_domain);
COMMENT ON VIEW dmarc.ip_senders IS
	'One row per dmarc.ip_names row: the source IP''s forward-confirmed PTR name (ptr, ptr_base_domain: NULL unless confirmed), '
	'AS (asn, as_name, as_domain), country, and its sender from dmarc.senders: the confirmed PTR name''s base domain if in the map '
	'(sender_basis ''ptr''), else the AS domain if in the map (''as_domain''), else none (sender_name, sender_type, '
	'sender_domain, sender_basis NULL). An unconfirmed PTR name never names a sender. sender_domain is the map''s base domain '
	'that matched. sender is a label never NULL: sender_name, else the confirmed ptr_base_domain, else ''AS<asn> <as_name>'', '
	'else the IP.';

-- Every record with its report, the classification and the sender.  The
-- classification lives in views, not in stored columns, so it follows the
-- data: once `resolve` fills dmarc.ip_names, rules 3 and 4 start to apply
-- to records stored long before, and a record's sender follows the map.
-- The joins between records and reports name date_begin and policy_domain
-- as well as the id, so PostgreSQL prunes partitions and a sharded database
-- joins on the node that holds both.  ip_names gives the columns of 1.0
-- (ptr_raw is in no other view), ip_senders the AS, country and sender,
-- appended at the end so that CREATE OR REPLACE VIEW upgrades a 1.0
-- database.
CREATE OR REPLACE VIEW dmarc.record_details AS
SELECT
	rec.id                AS record_id,
	rec.report_id         AS report_id,
	rep.report_id         AS report_ext_id,
	rep.org_name,
	rep.org_email,
	rep.policy_domain,
	rep.date_begin,
	rep.date_end,
	rep.policy_p,
	rep.policy_sp,
	rep.policy_np,
	rep.policy_adkim,
	rep.policy_aspf,
	rep.policy_pct,
	rep.policy_testing,
	rec.ordinal,
	rec.source_ip,
	rec.message_count,
	rec.disposition,
	rec.dkim_aligned,
	rec.spf_aligned,
	rec.header_from,
	rec.envelope_from,
	rec.envelope_to,
	rec.reasons,
	CASE WHEN n.forward_confirmed THEN n.ptr END AS ptr,
	n.ptr                 AS ptr_raw,
	CASE WHEN n.forward_confirmed THEN n.ptr_base_domain END AS ptr_base_domain,
	n.forward_confirmed,
	coalesce(rec.dkim_aligned = 'pass' OR rec.spf_aligned = 'pass', false) AS dmarc_pass,
	coalesce(rec.dkim_aligned = 'pass', false) AS dkim_pass_aligned,
	coalesce(rec.spf_aligned = 'pass', false)  AS spf_pass_aligned,
	cls.reason IS NOT NULL AS server_generated,
	cls.reason            AS server_generated_reason,
	s.asn,
	s.as_name,
	s.country,
	s.sender_name,
	s.sender_type
FROM dmarc.records rec
JOIN dmarc.reports rep
	ON rep.id = rec.report_id AND rep.date_begin = rec.date_begin AND rep.policy_domain = rec.policy_domain
LEFT JOIN dmarc.ip_names n ON n.ip = rec.source_ip
LEFT JOIN dmarc.ip_senders s ON s.ip = rec.source_ip
CROSS JOIN LATERAL (
	-- OFFSET 0 keeps the subquery whole, so the rules run once per row, not
	-- once per output column that uses them
	SELECT dmarc.server_generated_reason(rec.envelope_from, rec.spf_scope, rec.spf_domain, rec.spf_more,
		CASE WHEN n.forward_confirmed THEN n.ptr END) AS reason
	OFFSET 0
) cls;
COMMENT ON VIEW dmarc.record_details IS
	'One row per record with its report''s metadata (report_id = dmarc.reports.id, report_ext_id = the report''s own <report_id>), '
	'the source IP''s PTR name (ptr and ptr_base_domain: only when forward-confirmed; ptr_raw: whatever the PTR lookup returned), '
	'dmarc_pass (DKIM or SPF aligned), and the server-generated classification (dmarc.server_generated_reason): '
	'server_generated_reason is the first rule that holds of null_sender (envelope_from empty or <>; absent is no evidence), '
	'spf_helo_scope (an SPF result with scope helo), spf_domain_is_ptr (an SPF domain equals the confirmed PTR name), '
	'envelope_from_is_ptr (envelope_from equals the confirmed PTR name); NULL when none holds. '
	'asn, as_name, country: the source IP''s AS and country (dmarc.ip_names); sender_name, sender_type: its sender '
	'(dmarc.ip_senders: by the confirmed PTR name''s base domain, else the AS domain; NULL when the map names none).';

CREATE OR REPLACE VIEW dmarc.server_generated_mail AS
SELECT * FROM dmarc.record_details WHERE server_generated;
COMMENT ON VIEW dmarc.server_generated_mail IS
	'Records classified as server-generated mail (bounces, auto-replies, notifications): record_details where server_generated.';

CREATE OR REPLACE VIEW dmarc.regular_mail AS
SELECT * FROM dmarc.record_details WHERE NOT server_generated;
COMMENT ON VIEW dmarc.regular_mail IS
	'Records not classified as server-generated: record_details where not server_generated.';

CREATE OR REPLACE VIEW dmarc.server_generated_sources AS
SELECT
	source_ip,
	ptr,
	lower(header_from) AS header_from,
	count(*) AS records,
	coalesce(sum(message_count), 0) AS messages,
	coalesce(sum(message_count) FILTER (WHERE dkim_pass_aligned), 0) AS dkim_aligned_messages,
	coalesce(sum(message_count) FILTER (WHERE dmarc_pass), 0) AS dmarc_pass_messages,
	coalesce(sum(message_count) FILTER (WHERE NOT dkim_pass_aligned), 0) AS messages_without_dkim,
	array_agg(DISTINCT server_generated_reason ORDER BY server_generated_reason) AS reasons,
	min(date_begin) AS first_seen,
	max(date_end) AS last_seen,
	bool_or(NOT dkim_pass_aligned) AS needs_dkim,
	asn,
	as_name,
	country,
	sender_name,
	sender_type
FROM dmarc.server_generated_mail
-- the AS, country and sender are the IP's: grouping by them adds no group
GROUP BY source_ip, ptr, lower(header_from), asn, as_name, country, sender_name, sender_type;
COMMENT ON VIEW dmarc.server_generated_sources IS
	'One row per server sending server-generated mail (source_ip, confirmed PTR name, header_from domain in lower case): '
	'message totals, DKIM-aligned and DMARC-pass totals, the classification reasons seen, first/last report period, and '
	'needs_dkim: true when some of its server-generated mail had no aligned DKIM (that mail fails DMARC; the server needs DKIM signing); '
	'the IP''s AS, country and sender (as in record_details).';

-- New senders per policy domain: the records summed per domain and IP
-- first (one row per pair, however many records), then named and summed per
-- sender, so ip_senders is joined once per IP, not once per record.
CREATE OR REPLACE VIEW dmarc.new_senders AS
WITH per_ip AS (
	SELECT lower(rec.policy_domain) AS policy_domain, rec.source_ip,
	       min(rep.date_begin) AS first_seen, max(rep.date_end) AS last_seen,
	       coalesce(sum(rec.message_count), 0) AS messages,
	       coalesce(sum(rec.message_count) FILTER (WHERE rec.dkim_aligned = 'pass' OR rec.spf_aligned = 'pass'), 0)
	           AS dmarc_pass_messages
	FROM dmarc.records rec
	JOIN dmarc.reports rep
		ON rep.id = rec.report_id AND rep.date_begin = rec.date_begin AND rep.policy_domain = rec.policy_domain
	GROUP BY lower(rec.policy_domain), rec.source_ip
)
SELECT
	p.policy_domain,
	coalesce(s.sender, host(p.source_ip), '') AS sender,
	min(s.sender_name) AS sender_name,
	min(s.sender_type) AS sender_type,
	min(p.first_seen) AS first_seen,
	max(p.last_seen) AS last_seen,
	count(p.source_ip) AS source_ips,
	sum(p.messages) AS messages,
	sum(p.dmarc_pass_messages) AS dmarc_pass_messages
FROM per_ip p
LEFT JOIN dmarc.ip_senders s ON s.ip = p.source_ip
GROUP BY p.policy_domain, coalesce(s.sender, host(p.source_ip), '')
ORDER BY first_seen DESC, policy_domain, sender;
COMMENT ON VIEW dmarc.new_senders IS
	'One row per policy domain (lower case) and sender (the label of dmarc.ip_senders: the sender''s name, else the confirmed '
	'PTR base domain, else ''AS<asn> <as_name>'', else the IP; an IP not yet resolved is its own label, an absent source_ip '
	'the empty string): sender_name and sender_type (when several map rows share the label, the first in sort order), '
	'first_seen (earliest report begin), last_seen (latest report end), source_ips, messages and dmarc_pass_messages. '
	'Newest first_seen first: WHERE first_seen > now() - interval ''7 days'' lists the senders that appeared this week.';

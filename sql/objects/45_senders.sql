-- 45_senders.sql - the sender map as analysts read it: one row per base
-- domain, the row that wins among dmarc.sender_map's sources
-- (sql/migrations/004_senders.sql).
--
-- Which row wins, in this order:
--   1. source 'local' (`senders set`): the administrator's own word;
--   2. the source loaded last (the greatest loaded_at: a file loaded after
--      parsedmarc's overrides it, until parsedmarc's is loaded again);
--   3. on a tie, the source whose name sorts first.
-- To keep a file of one's own above a file reloaded every month, load it
-- with --source local (it then replaces the rows of `senders set`) or load
-- it after each reload.

CREATE OR REPLACE VIEW dmarc.senders AS
SELECT DISTINCT ON (base_domain)
	base_domain,
	name,
	type,
	source,
	loaded_at
FROM dmarc.sender_map
ORDER BY base_domain, (source = 'local') DESC, loaded_at DESC, source;
COMMENT ON VIEW dmarc.senders IS
	'The sender map, one row per base domain (lower case, no trailing dot): the row of source ''local'' (`senders set`) '
	'if any, else that of the source loaded last, else of the source whose name sorts first. name and type say who runs '
	'the servers under the domain, e.g. Google, Email Provider.';

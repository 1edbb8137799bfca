-- 008_sender_current.sql - the winning row of the sender map per base domain,
-- stored (issue 14, speed).  dmarc.senders was a DISTINCT ON over the whole
-- of dmarc.sender_map (parsedmarc's file: about 38,600 rows), so every
-- query through dmarc.ip_senders read and sorted the whole map, twice.
-- dmarc.sender_current holds the row that wins for each base domain, kept
-- by statement triggers on dmarc.sender_map that recompute only the base
-- domains a statement touched (dmarc.sender_current_sync, in
-- sql/objects/45_senders.sql with the rule); dmarc.senders reads it.  Its
-- primary key on base_domain makes the joins of ip_senders index lookups
-- and keeps them removable when no sender column is used.
-- Filled here from the rows already there, by the rule of 45_senders.sql;
-- the objects file fills it again when it makes the triggers (in the same
-- transaction, so no change made between the two is missed).

CREATE TABLE dmarc.sender_current (
	base_domain  text PRIMARY KEY,
	name         text NOT NULL,
	type         text NOT NULL,
	source       text NOT NULL,
	loaded_at    timestamptz NOT NULL
);
COMMENT ON TABLE dmarc.sender_current IS
	'The row of dmarc.sender_map that wins for each base domain (the rule is in dmarc.senders), kept by triggers on '
	'dmarc.sender_map; read dmarc.senders.';

INSERT INTO dmarc.sender_current (base_domain, name, type, source, loaded_at)
SELECT DISTINCT ON (base_domain) base_domain, name, type, source, loaded_at
FROM dmarc.sender_map
ORDER BY base_domain, (source = 'local') DESC, loaded_at DESC, source;

-- 004_senders.sql - the sender map (issue 14): who runs the servers under a
-- base domain, e.g. google.com -> Google, Email Provider.
--
-- Rows come from files in parsedmarc's CSV format (base_reverse_dns,name,type),
-- loaded with `dmarc-collector senders load FILE [--source NAME]`, which
-- replaces every row of that source in one transaction, and from local
-- overrides (`senders set DOMAIN NAME TYPE`, source 'local').  Which row wins
-- for a domain is the view dmarc.senders (sql/objects/45_senders.sql).
-- We ship no rows: parsedmarc's base_reverse_dns_map.csv is CC BY-SA 4.0.

CREATE TABLE dmarc.sender_map (
	base_domain  text NOT NULL
		CHECK (base_domain <> '' AND base_domain = lower(rtrim(btrim(base_domain), '.'))),
	name         text NOT NULL CHECK (btrim(name) <> ''),
	type         text NOT NULL,
	source       text NOT NULL CHECK (source <> ''),
	loaded_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (base_domain, source)
);
COMMENT ON TABLE dmarc.sender_map IS
	'The sender map: a base domain (of a PTR name or an AS domain) and the service that runs it, one row per '
	'domain and source. `senders load FILE` replaces a source''s rows, `senders set`/`unset` edit source ''local''. '
	'Read dmarc.senders for the row that wins.';
COMMENT ON COLUMN dmarc.sender_map.base_domain IS
	'The base domain, normalised as dmarc.dns_name_norm does: lower case, no trailing dot, e.g. google.com.';
COMMENT ON COLUMN dmarc.sender_map.name IS 'The sender''s name, e.g. Google.';
COMMENT ON COLUMN dmarc.sender_map.type IS 'The sender''s type as the source gives it, e.g. Email Provider; may be empty.';
COMMENT ON COLUMN dmarc.sender_map.source IS
	'Where the row came from: ''local'' for `senders set` (wins over every other source), else the name a file was '
	'loaded under (by default its base name, e.g. base_reverse_dns_map).';
COMMENT ON COLUMN dmarc.sender_map.loaded_at IS 'When the row was loaded or set (the transaction''s time).';

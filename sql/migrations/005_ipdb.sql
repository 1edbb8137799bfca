-- IP enrichment (issue 14): AS and country of each source IP, from the MaxMind
-- DB files of [enrich] asn_db and country_db, stored by `resolve` with the
-- IP's names.  Each part records the build epoch (metadata build_epoch) of
-- the file it came from, so a new release of a file is applied by the next
-- `resolve` without new DNS lookups; the two files may differ, so each has
-- its own epoch column.  A NULL epoch: that file was never applied to the IP.
ALTER TABLE dmarc.ip_names
	ADD COLUMN asn bigint,
	ADD COLUMN as_name text,
	ADD COLUMN as_domain text,
	ADD COLUMN country text,
	ADD COLUMN asn_db_epoch bigint,
	ADD COLUMN country_db_epoch bigint;
COMMENT ON COLUMN dmarc.ip_names.asn IS
	'Autonomous system number of ip, from [enrich] asn_db (NULL: not in the file, or no file).';
COMMENT ON COLUMN dmarc.ip_names.as_name IS
	'Name of the autonomous system (GeoLite2 autonomous_system_organization, IPinfo as_name).';
COMMENT ON COLUMN dmarc.ip_names.as_domain IS
	'Domain of the autonomous system''s owner (IPinfo Lite as_domain; other layouts have none).';
COMMENT ON COLUMN dmarc.ip_names.country IS
	'ISO 3166-1 alpha-2 country of ip, upper case, from [enrich] country_db.';
COMMENT ON COLUMN dmarc.ip_names.asn_db_epoch IS
	'Build epoch (seconds since 1970) of the asn_db file asn, as_name and as_domain came from; NULL: never looked up.';
COMMENT ON COLUMN dmarc.ip_names.country_db_epoch IS
	'Build epoch (seconds since 1970) of the country_db file country came from; NULL: never looked up.';

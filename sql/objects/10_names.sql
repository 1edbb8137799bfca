-- 10_names.sql - DNS names in comparable form, for the classification
-- (30_classify.sql) and for analysts.

CREATE OR REPLACE FUNCTION dmarc.dns_name_norm(name text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	AS $$ SELECT nullif(lower(rtrim(btrim($1), '.')), '') $$;
COMMENT ON FUNCTION dmarc.dns_name_norm(text) IS
	'DNS name normalised for comparison: trimmed, lower-cased, trailing dot removed; NULL when empty.';

CREATE OR REPLACE FUNCTION dmarc.dns_name_eq(a text, b text) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT dmarc.dns_name_norm($1) = dmarc.dns_name_norm($2) $$;
COMMENT ON FUNCTION dmarc.dns_name_eq(text, text) IS
	'True when both are the same DNS name (case-insensitive, trailing dot ignored); NULL when either is NULL or empty.';

-- 30_classify.sql - the classification of server-generated mail (SPEC
-- section 6), defined once: dmarc.record_details (45_senders.sql) and the
-- daily rollups (60_rollups.sql) both call this function.
--
-- A record is server-generated when the first of these rules holds:
--   null_sender           envelope_from is present and empty, or <>
--   spf_helo_scope        an SPF result has scope helo
--   spf_domain_is_ptr     an SPF result's domain equals the PTR name
--   envelope_from_is_ptr  envelope_from equals the PTR name
-- ptr must be the source IP's forward-confirmed PTR name (NULL otherwise),
-- so that a sender cannot claim a host name it does not own.  The caller
-- passes it rather than the function reading dmarc.ip_names, because the
-- rollups classify a record with the name an IP had before a change as
-- well as with the new one (see 60_rollups.sql).
--
-- The SPF results are the record's first one (spf_scope, spf_domain) and
-- the further ones in spf_more (a JSON array, NULL for most records).

-- Rule 3 over the SPF results after the first (spf_more): a function of its
-- own, called only for the few records that have more than one SPF result,
-- so that server_generated_reason has no sub-select and PostgreSQL inlines
-- it into the queries that use it (a non-inlined SQL function costs
-- microseconds per record).
CREATE OR REPLACE FUNCTION dmarc.spf_more_has_domain(spf_more jsonb, name text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT EXISTS (SELECT 1 FROM jsonb_array_elements(spf_more) s WHERE dmarc.dns_name_eq(s ->> 'domain', name))
$$;
COMMENT ON FUNCTION dmarc.spf_more_has_domain(jsonb, text) IS
	'True when one of the SPF results in spf_more (a record''s second and later SPF results) has the DNS name name as its domain.';

CREATE OR REPLACE FUNCTION dmarc.server_generated_reason(envelope_from text, spf_scope text, spf_domain text,
	spf_more jsonb, ptr text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN btrim(envelope_from) IN ('', '<>')
			THEN 'null_sender'
		WHEN spf_scope = 'helo' OR spf_more @> '[{"scope": "helo"}]'
			THEN 'spf_helo_scope'
		WHEN dmarc.dns_name_eq(spf_domain, ptr)
		     OR (spf_more IS NOT NULL AND ptr IS NOT NULL AND dmarc.spf_more_has_domain(spf_more, ptr))
			THEN 'spf_domain_is_ptr'
		WHEN dmarc.dns_name_eq(envelope_from, ptr)
			THEN 'envelope_from_is_ptr'
	END
$$;
COMMENT ON FUNCTION dmarc.server_generated_reason(text, text, text, jsonb, text) IS
	'The server-generated classification of a record (SPEC section 6): the first rule that holds of null_sender, spf_helo_scope, '
	'spf_domain_is_ptr, envelope_from_is_ptr, or NULL. Arguments: the record''s envelope_from, spf_scope, spf_domain and spf_more, '
	'and the source IP''s PTR name only when forward-confirmed (NULL otherwise).';

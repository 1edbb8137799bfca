-- 008_failure_originals.sql - a rejected input's bytes are stored once.
--
-- Until now every dmarc.failures row carried the bytes of its unit in
-- `content`: a zip of 400 bad members wrote its whole self 400 times (issue
-- 9: 3.5 MB in, 243 MB out).  From here on the bytes go into dmarc.originals,
-- content-addressed by SHA-256 exactly as a stored report's are, and the
-- failure rows refer to them by original_id: one copy per distinct unit,
-- however many of its parts fail, shared with the reports of the same unit.
--
-- `content` stays (SPEC section 5 names it): rows written before this
-- migration keep their bytes there; new rows leave it NULL.  The bytes of
-- any failure, old or new, are dmarc.failure_content(f) for a row f of
-- dmarc.failures (the collector's role only, like the table itself), or by
-- hand: coalesce(f.content, o.content) with a LEFT JOIN of dmarc.originals o
-- ON o.id = f.original_id.  prune keeps an original while a failure refers
-- to it.

ALTER TABLE dmarc.failures ADD COLUMN original_id bigint REFERENCES dmarc.originals (id);
CREATE INDEX failures_original_id_idx ON dmarc.failures (original_id);
COMMENT ON COLUMN dmarc.failures.original_id IS
	'The rejected unit''s bytes (dmarc.originals), stored once however many failures refer to them; NULL when they were not kept (over max_message_bytes) or for rows written before 008, whose bytes are in content.';
COMMENT ON COLUMN dmarc.failures.content IS
	'The original bytes, for rows written before migration 008 only (NULL since: see original_id and dmarc.failure_content).';
COMMENT ON TABLE dmarc.failures IS
	'Rejected inputs: where they came from, the stage (mime, unpack, xml, report, limits, store), the one-line reason, and the original bytes (original_id, or content for rows before 008).';

CREATE FUNCTION dmarc.failure_content(f dmarc.failures) RETURNS bytea
LANGUAGE sql STABLE AS $$
	SELECT coalesce(f.content, (SELECT o.content FROM dmarc.originals o WHERE o.id = f.original_id))
$$;
COMMENT ON FUNCTION dmarc.failure_content(dmarc.failures) IS
	'The original bytes of a failure row, wherever they are kept (content before migration 008, dmarc.originals since). '
	'Usage: SELECT dmarc.failure_content(f) FROM dmarc.failures f WHERE f.id = 42.';
REVOKE ALL ON FUNCTION dmarc.failure_content(dmarc.failures) FROM PUBLIC;

-- same columns as in 005 (size and SHA-256 now follow original_id), plus original_id
CREATE OR REPLACE VIEW dmarc.failure_list AS
SELECT
	f.id,
	f.failed_at,
	f.mailbox,
	f.uidvalidity,
	f.uid,
	f.message_id,
	f.file_name,
	f.stage,
	f.reason,
	coalesce(octet_length(f.content), octet_length(o.content)) AS content_bytes,
	encode(coalesce(f.sha256, o.sha256), 'hex') AS sha256,
	f.original_id
FROM dmarc.failures f
LEFT JOIN dmarc.originals o ON o.id = f.original_id;
COMMENT ON VIEW dmarc.failure_list IS
	'Rejected inputs (dmarc.failures) without their bytes: when, where from, stage, reason, size and SHA-256 of the original. '
	'Failures of one input share one original (original_id); the bytes stay private (dmarc.failure_content, collector''s role only).';

SELECT dmarc.grant_roles();

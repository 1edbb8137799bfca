-- 001_schema.sql - the dmarc schema's tables (SPEC section 5).
--
-- Applied by `dmarc-collector migrate` inside one transaction and recorded in
-- dmarc.schema_migrations (created by the program before this file runs).
--
-- Layout: one row per report (dmarc.reports), one per <record>
-- (dmarc.records), one per DKIM/SPF auth result (dmarc.dkim_results,
-- dmarc.spf_results).  The three large tables carry the report's date_begin
-- and policy_domain (SPEC section 8) so they can later be range-partitioned
-- by month and distributed by policy_domain (Citus) without a rewrite; their
-- keys then grow to include those columns.  Indexes are only those the
-- foreign keys, the cascade deletes and the views need: every index slows
-- the COPY that fills these tables.

CREATE SCHEMA IF NOT EXISTS dmarc;

-- The units as received (an attachment after transfer decoding, or a local
-- file), still compressed, once each; `reparse` parses them again.
CREATE TABLE dmarc.originals (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sha256      bytea NOT NULL UNIQUE,
	content     bytea NOT NULL,
	name        text,
	first_seen  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dmarc.originals IS
	'Report files as received (attachment after transfer decoding, or local file), still compressed, one row per distinct content (sha256). reparse reads them.';

CREATE TABLE dmarc.reports (
	id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_name                 text,
	org_email                text,
	extra_contact_info       text,
	report_id                text,
	policy_domain            text,
	date_begin               timestamptz,
	date_end                 timestamptz,
	policy_p                 text,
	policy_sp                text,
	policy_np                text,
	policy_adkim             text,
	policy_aspf              text,
	policy_pct               integer,
	policy_fo                text,
	policy_testing           text,
	policy_discovery_method  text,
	generator                text,
	version                  text,
	xmlns                    text,
	errors                   text,
	record_count             bigint,
	message_total            bigint,
	mailbox                  text,
	uidvalidity              bigint,
	uid                      bigint,
	message_id               text,
	file_name                text,
	original_id              bigint REFERENCES dmarc.originals (id),
	original_path            text,
	ingested_at              timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT reports_unique_report UNIQUE NULLS NOT DISTINCT
		(org_name, policy_domain, report_id, date_begin, date_end)
);
CREATE INDEX reports_original_id_idx ON dmarc.reports (original_id);
COMMENT ON TABLE dmarc.reports IS
	'One row per DMARC aggregate report. A second copy (same org_name, policy_domain, report_id, date_begin, date_end) is a duplicate and is not stored again.';
COMMENT ON COLUMN dmarc.reports.report_id IS 'The report''s own <report_id> (text), not a key of this database.';
COMMENT ON COLUMN dmarc.reports.policy_pct IS 'policy_published/pct, NULL when absent.';
COMMENT ON COLUMN dmarc.reports.errors IS 'The report''s <error> texts and repairs made while reading it, "; "-joined.';
COMMENT ON COLUMN dmarc.reports.record_count IS 'Number of <record> elements stored for this report.';
COMMENT ON COLUMN dmarc.reports.message_total IS 'Sum of the records'' message counts.';
COMMENT ON COLUMN dmarc.reports.mailbox IS 'Where it came from: mailbox label (NULL for local files).';
COMMENT ON COLUMN dmarc.reports.file_name IS 'Where it came from: attachment or local file name.';
COMMENT ON COLUMN dmarc.reports.original_id IS 'The unit it was read from (dmarc.originals).';
COMMENT ON COLUMN dmarc.reports.original_path IS 'Where inside the original, e.g. "zip:a.xml > gzip".';

-- Record ids are reserved by the writer in blocks: one nextval() yields the
-- first id of a block of 4096 (INCREMENT BY 4096), so a chunk of up to 4096
-- records costs one round trip and the ids go out with the COPY.
CREATE SEQUENCE dmarc.records_id_seq AS bigint INCREMENT BY 4096 MINVALUE 1 START WITH 1;

CREATE TABLE dmarc.records (
	id             bigint PRIMARY KEY,
	report_id      bigint NOT NULL REFERENCES dmarc.reports (id) ON DELETE CASCADE,
	date_begin     timestamptz,
	policy_domain  text,
	ordinal        integer NOT NULL,
	source_ip      inet,
	message_count  bigint,
	disposition    text,
	dkim_aligned   text,
	spf_aligned    text,
	header_from    text,
	envelope_from  text,
	envelope_to    text,
	reasons        jsonb
);
ALTER SEQUENCE dmarc.records_id_seq OWNED BY dmarc.records.id;
CREATE INDEX records_report_id_idx ON dmarc.records (report_id);
CREATE INDEX records_source_ip_idx ON dmarc.records (source_ip);
COMMENT ON TABLE dmarc.records IS
	'One row per <record> of a report. date_begin and policy_domain are copied from the report so the table can be partitioned by month and distributed by policy_domain.';
COMMENT ON COLUMN dmarc.records.id IS 'Assigned by the writer from blocks of dmarc.records_id_seq.';
COMMENT ON COLUMN dmarc.records.report_id IS 'dmarc.reports.id (not the report''s own <report_id>).';
COMMENT ON COLUMN dmarc.records.ordinal IS '1-based position of the record in its report.';
COMMENT ON COLUMN dmarc.records.source_ip IS 'row/source_ip; NULL when the report had none.';
COMMENT ON COLUMN dmarc.records.message_count IS 'row/count; NULL when absent.';
COMMENT ON COLUMN dmarc.records.dkim_aligned IS 'policy_evaluated/dkim: pass or fail (DMARC-aligned DKIM).';
COMMENT ON COLUMN dmarc.records.spf_aligned IS 'policy_evaluated/spf: pass or fail (DMARC-aligned SPF).';
COMMENT ON COLUMN dmarc.records.envelope_from IS
	'identifiers/envelope_from as sent: NULL when absent, '''' when empty, ''<>'' kept literally. Never filled from the SPF domain.';
COMMENT ON COLUMN dmarc.records.reasons IS
	'policy_evaluated/reason elements as a JSON array of {"type", "comment"}; NULL when none.';

CREATE TABLE dmarc.dkim_results (
	record_id      bigint NOT NULL REFERENCES dmarc.records (id) ON DELETE CASCADE,
	date_begin     timestamptz,
	policy_domain  text,
	ordinal        smallint NOT NULL,
	domain         text,
	selector       text,
	result         text,
	human_result   text,
	PRIMARY KEY (record_id, ordinal)
);
COMMENT ON TABLE dmarc.dkim_results IS
	'One row per auth_results/dkim of a record (ordinal: 1-based position within the record).';

CREATE TABLE dmarc.spf_results (
	record_id      bigint NOT NULL REFERENCES dmarc.records (id) ON DELETE CASCADE,
	date_begin     timestamptz,
	policy_domain  text,
	ordinal        smallint NOT NULL,
	domain         text,
	scope          text,
	result         text,
	human_result   text,
	PRIMARY KEY (record_id, ordinal)
);
COMMENT ON TABLE dmarc.spf_results IS
	'One row per auth_results/spf of a record (ordinal: 1-based position within the record). scope is mfrom, helo, or NULL when absent.';

CREATE TABLE dmarc.failures (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	failed_at    timestamptz NOT NULL DEFAULT now(),
	mailbox      text,
	uidvalidity  bigint,
	uid          bigint,
	message_id   text,
	file_name    text,
	stage        text NOT NULL,
	reason       text NOT NULL,
	content      bytea,
	sha256       bytea
);
COMMENT ON TABLE dmarc.failures IS
	'Rejected inputs: where they came from, the stage (mime, unpack, xml, report, limits, store), the one-line reason, and the original bytes.';

CREATE TABLE dmarc.ip_names (
	ip                 inet PRIMARY KEY,
	ptr                text,
	ptr_base_domain    text,
	forward_confirmed  boolean NOT NULL DEFAULT false,
	resolved_at        timestamptz NOT NULL DEFAULT now(),
	status             text
);
COMMENT ON TABLE dmarc.ip_names IS
	'PTR names of source IPs, filled by `resolve`. forward_confirmed: the PTR name resolves back to the same IP; only such names are used to classify mail.';
COMMENT ON COLUMN dmarc.ip_names.ptr_base_domain IS 'Registrable domain of ptr (public suffix list).';
COMMENT ON COLUMN dmarc.ip_names.status IS 'Outcome of the last lookup (set by resolve).';

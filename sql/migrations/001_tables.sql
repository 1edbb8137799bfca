-- 001_tables.sql - the tables of schema dmarc 1.0 (SPEC sections 5 and 8).
--
-- Migrations are append-only from 1.0 on: a change to a table is a new
-- numbered file, never an edit of this one (migrate records each file's
-- SHA-256 and refuses a database whose applied file was edited since).
-- Functions, views and triggers are not here: they live in sql/objects/,
-- one file per object or group, and are applied again whenever their text
-- changes.
--
-- Layout, chosen for 10 million records a day and more (docs/README-storage.md):
--   * dmarc.reports and dmarc.records are range-partitioned by month of the
--     report's date_begin: a month is one partition of each, so retention
--     detaches and drops whole months instead of deleting rows.  A DEFAULT
--     partition holds what no monthly partition covers yet (and reports
--     dated before 2000 or more than a year ahead, so hostile dates cannot
--     create partitions); dmarc.create_partitions() moves rows out of it.
--   * A record carries its first DKIM and first SPF result in its own row
--     (dkim_* and spf_* columns) and any further ones in dkim_more /
--     spf_more (JSON arrays, NULL for the usual record with at most one of
--     each).  The views dmarc.dkim_results and dmarc.spf_results give one
--     row per result as the 0.1 tables did.  No child tables, no foreign
--     keys per row: one heap tuple and two index entries per record.
--   * Every primary and unique key of the report tables contains date_begin
--     (the partition column) and policy_domain (the column a distributed
--     PostgreSQL such as Citus would shard on: the dedupe key of a report
--     already contains it, so one report and its records live on one node).
--     dmarc.records has no primary key: its rows are written only inside
--     their report's transaction, ids come from a sequence, and a second
--     copy of a report is refused by the reports' unique key.

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
COMMENT ON COLUMN dmarc.originals.sha256 IS 'SHA-256 of content: the same bytes are stored once.';
COMMENT ON COLUMN dmarc.originals.name IS 'The file or attachment name it first came under.';
COMMENT ON COLUMN dmarc.originals.first_seen IS 'When these bytes were first stored.';

CREATE TABLE dmarc.reports (
	id                       bigint GENERATED ALWAYS AS IDENTITY,
	date_begin               timestamptz NOT NULL,
	date_end                 timestamptz NOT NULL,
	policy_domain            text NOT NULL,
	org_name                 text,
	org_email                text,
	extra_contact_info       text,
	report_id                text,
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
	rolled_up                boolean NOT NULL DEFAULT false,
	CONSTRAINT reports_pkey PRIMARY KEY (id, date_begin, policy_domain),
	CONSTRAINT reports_unique_report UNIQUE NULLS NOT DISTINCT
		(org_name, policy_domain, report_id, date_begin, date_end)
) PARTITION BY RANGE (date_begin);
CREATE TABLE dmarc.reports_default PARTITION OF dmarc.reports DEFAULT;
CREATE INDEX reports_original_id_idx ON dmarc.reports (original_id);
-- published policies, report lists, the reporter variable, prune: by period
CREATE INDEX reports_date_end_idx ON dmarc.reports (date_end);
CREATE INDEX reports_domain_date_idx ON dmarc.reports (lower(policy_domain), date_begin);
-- the Published policies panel filtered to some reporters
CREATE INDEX reports_org_date_idx ON dmarc.reports (coalesce(org_name, ''), date_begin);
-- reports whose records are not in the daily rollups yet (dmarc.rollup_pending)
CREATE INDEX reports_not_rolled_up_idx ON dmarc.reports (id) WHERE NOT rolled_up;
COMMENT ON TABLE dmarc.reports IS
	'One row per DMARC aggregate report, partitioned by month of date_begin. A second copy (same org_name, policy_domain, report_id, date_begin, date_end) is a duplicate and is not stored again.';
COMMENT ON COLUMN dmarc.reports.id IS 'This database''s number for the report (dmarc.records.report_id refers to it).';
COMMENT ON COLUMN dmarc.reports.date_begin IS 'report_metadata/date_range/begin (UTC); the partition column.';
COMMENT ON COLUMN dmarc.reports.date_end IS 'report_metadata/date_range/end (UTC).';
COMMENT ON COLUMN dmarc.reports.policy_domain IS 'policy_published/domain as sent ('''' when absent); the column a distributed database would shard on.';
COMMENT ON COLUMN dmarc.reports.org_name IS 'report_metadata/org_name: who sent the report ('''' when absent).';
COMMENT ON COLUMN dmarc.reports.org_email IS 'report_metadata/email.';
COMMENT ON COLUMN dmarc.reports.report_id IS 'The report''s own <report_id> (text), not a key of this database.';
COMMENT ON COLUMN dmarc.reports.policy_p IS 'policy_published/p: the domain''s policy as the reporter saw it.';
COMMENT ON COLUMN dmarc.reports.policy_sp IS 'policy_published/sp (subdomain policy).';
COMMENT ON COLUMN dmarc.reports.policy_np IS 'policy_published/np (non-existent subdomain policy, RFC 9990).';
COMMENT ON COLUMN dmarc.reports.policy_adkim IS 'policy_published/adkim: r (relaxed) or s (strict) DKIM alignment.';
COMMENT ON COLUMN dmarc.reports.policy_aspf IS 'policy_published/aspf: r (relaxed) or s (strict) SPF alignment.';
COMMENT ON COLUMN dmarc.reports.policy_pct IS 'policy_published/pct, NULL when absent.';
COMMENT ON COLUMN dmarc.reports.policy_testing IS 'policy_published/testing (RFC 9990).';
COMMENT ON COLUMN dmarc.reports.generator IS 'report_metadata/generator (RFC 9990): the reporter''s software.';
COMMENT ON COLUMN dmarc.reports.errors IS 'The report''s <error> texts and repairs made while reading it, "; "-joined.';
COMMENT ON COLUMN dmarc.reports.record_count IS 'Number of <record> elements stored for this report.';
COMMENT ON COLUMN dmarc.reports.message_total IS 'Sum of the records'' message counts.';
COMMENT ON COLUMN dmarc.reports.mailbox IS 'Where it came from: mailbox label (NULL for local files).';
COMMENT ON COLUMN dmarc.reports.uidvalidity IS 'Where it came from: the IMAP folder''s UIDVALIDITY.';
COMMENT ON COLUMN dmarc.reports.uid IS 'Where it came from: the message''s IMAP UID.';
COMMENT ON COLUMN dmarc.reports.message_id IS 'Where it came from: the e-mail''s Message-ID, unfolded, with its angle brackets.';
COMMENT ON COLUMN dmarc.reports.file_name IS 'Where it came from: attachment or local file name.';
COMMENT ON COLUMN dmarc.reports.original_id IS 'The unit it was read from (dmarc.originals).';
COMMENT ON COLUMN dmarc.reports.original_path IS 'Where inside the original, e.g. "zip:a.xml > gzip".';
COMMENT ON COLUMN dmarc.reports.ingested_at IS 'When it was stored.';
COMMENT ON COLUMN dmarc.reports.rolled_up IS
	'Set when the report''s records were added to dmarc.rollup_daily and dmarc.rollup_sources.';

-- Record ids are reserved by the writer in blocks: one nextval() yields the
-- first id of a block of 4096 (INCREMENT BY 4096), so a chunk of up to 4096
-- records costs one round trip and the ids go out with the COPY.
CREATE SEQUENCE dmarc.records_id_seq AS bigint INCREMENT BY 4096 MINVALUE 1 START WITH 1;

CREATE TABLE dmarc.records (
	id                 bigint NOT NULL,
	report_id          bigint NOT NULL,
	date_begin         timestamptz NOT NULL,
	message_count      bigint,
	ordinal            integer NOT NULL,
	dkim_count         smallint NOT NULL DEFAULT 0,
	spf_count          smallint NOT NULL DEFAULT 0,
	policy_domain      text NOT NULL,
	source_ip          inet,
	disposition        text,
	dkim_aligned       text,
	spf_aligned        text,
	header_from        text,
	envelope_from      text,
	envelope_to        text,
	reasons            jsonb,
	dkim_domain        text,
	dkim_selector      text,
	dkim_result        text,
	dkim_human_result  text,
	spf_domain         text,
	spf_scope          text,
	spf_result         text,
	spf_human_result   text,
	dkim_more          jsonb,
	spf_more           jsonb
) PARTITION BY RANGE (date_begin);
CREATE TABLE dmarc.records_default PARTITION OF dmarc.records DEFAULT;
ALTER SEQUENCE dmarc.records_id_seq OWNED BY dmarc.records.id;
-- a report's records (rollups, reparse, prune at the edge): one entry per
-- report and a 6-byte posting per record (B-tree deduplication)
CREATE INDEX records_report_id_idx ON dmarc.records (report_id);
CREATE INDEX records_source_ip_idx ON dmarc.records (source_ip);
-- a record by its id (dmarc.dkim_results.record_id and the like): ids grow
-- with the writing order, so a BRIN index finds them for a few bytes a
-- month, where a B-tree would cost ~20 bytes a record
CREATE INDEX records_id_idx ON dmarc.records USING brin (id);
COMMENT ON TABLE dmarc.records IS
	'One row per <record> of a report, partitioned like dmarc.reports by month of the report''s date_begin. '
	'The first DKIM and SPF auth results are columns of the row, further ones are in dkim_more and spf_more; '
	'dmarc.dkim_results and dmarc.spf_results list them one row per result. Analysts read dmarc.record_details.';
COMMENT ON COLUMN dmarc.records.id IS 'Assigned by the writer from blocks of dmarc.records_id_seq; unique.';
COMMENT ON COLUMN dmarc.records.report_id IS 'dmarc.reports.id (not the report''s own <report_id>).';
COMMENT ON COLUMN dmarc.records.date_begin IS 'The report''s date_begin (the partition column).';
COMMENT ON COLUMN dmarc.records.policy_domain IS 'The report''s policy_domain (the distribution column).';
COMMENT ON COLUMN dmarc.records.ordinal IS '1-based position of the record in its report.';
COMMENT ON COLUMN dmarc.records.source_ip IS 'row/source_ip; NULL when the report had none.';
COMMENT ON COLUMN dmarc.records.message_count IS 'row/count; NULL when absent.';
COMMENT ON COLUMN dmarc.records.disposition IS 'policy_evaluated/disposition: none, quarantine, reject (pass in RFC 9990).';
COMMENT ON COLUMN dmarc.records.dkim_aligned IS 'policy_evaluated/dkim: pass or fail (DMARC-aligned DKIM).';
COMMENT ON COLUMN dmarc.records.spf_aligned IS 'policy_evaluated/spf: pass or fail (DMARC-aligned SPF).';
COMMENT ON COLUMN dmarc.records.header_from IS 'identifiers/header_from: the From domain.';
COMMENT ON COLUMN dmarc.records.envelope_from IS
	'identifiers/envelope_from as sent: NULL when absent, '''' when empty, ''<>'' kept literally. Never filled from the SPF domain.';
COMMENT ON COLUMN dmarc.records.envelope_to IS 'identifiers/envelope_to.';
COMMENT ON COLUMN dmarc.records.reasons IS
	'policy_evaluated/reason elements as a JSON array of {"type", "comment"}; NULL when none.';
COMMENT ON COLUMN dmarc.records.dkim_count IS 'Number of auth_results/dkim elements (the first in dkim_*, the rest in dkim_more).';
COMMENT ON COLUMN dmarc.records.spf_count IS 'Number of auth_results/spf elements (the first in spf_*, the rest in spf_more).';
COMMENT ON COLUMN dmarc.records.dkim_domain IS 'First auth_results/dkim: domain (d=).';
COMMENT ON COLUMN dmarc.records.dkim_selector IS 'First auth_results/dkim: selector (s=).';
COMMENT ON COLUMN dmarc.records.dkim_result IS 'First auth_results/dkim: result.';
COMMENT ON COLUMN dmarc.records.dkim_human_result IS 'First auth_results/dkim: human_result.';
COMMENT ON COLUMN dmarc.records.spf_domain IS 'First auth_results/spf: domain.';
COMMENT ON COLUMN dmarc.records.spf_scope IS 'First auth_results/spf: scope (mfrom, helo, or NULL when absent).';
COMMENT ON COLUMN dmarc.records.spf_result IS 'First auth_results/spf: result.';
COMMENT ON COLUMN dmarc.records.spf_human_result IS 'First auth_results/spf: human_result.';
COMMENT ON COLUMN dmarc.records.dkim_more IS
	'The second and later auth_results/dkim as a JSON array of {"domain", "selector", "result", "human_result"}; NULL when at most one.';
COMMENT ON COLUMN dmarc.records.spf_more IS
	'The second and later auth_results/spf as a JSON array of {"domain", "scope", "result", "human_result"}; NULL when at most one.';

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
	sha256       bytea,
	original_id  bigint REFERENCES dmarc.originals (id)
);
CREATE INDEX failures_failed_at_idx ON dmarc.failures (failed_at);
CREATE INDEX failures_original_id_idx ON dmarc.failures (original_id);
COMMENT ON TABLE dmarc.failures IS
	'Rejected inputs: where they came from, the stage (mime, unpack, xml, report, limits, store), the one-line reason, and the original bytes (original_id; content for rows written by 0.1 before its migration 008).';
COMMENT ON COLUMN dmarc.failures.failed_at IS 'When the input was rejected.';
COMMENT ON COLUMN dmarc.failures.mailbox IS 'Where it came from: mailbox label (NULL for local files).';
COMMENT ON COLUMN dmarc.failures.file_name IS 'Where it came from: attachment or local file name.';
COMMENT ON COLUMN dmarc.failures.stage IS 'Where it failed: mime, unpack, xml, report, limits or store.';
COMMENT ON COLUMN dmarc.failures.reason IS 'The one-line reason.';
COMMENT ON COLUMN dmarc.failures.original_id IS
	'The rejected unit''s bytes (dmarc.originals), stored once however many failures refer to them; NULL when they were not kept (over max_message_bytes) or for rows whose bytes are in content.';
COMMENT ON COLUMN dmarc.failures.content IS
	'The original bytes, for rows written by 0.1 before its migration 008 only (NULL since: see original_id and dmarc.failure_content).';
COMMENT ON COLUMN dmarc.failures.sha256 IS 'SHA-256 of content, for the same rows as content.';

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
COMMENT ON COLUMN dmarc.ip_names.ptr IS 'The PTR name as found (whether confirmed or not).';
COMMENT ON COLUMN dmarc.ip_names.ptr_base_domain IS 'Registrable domain of ptr (public suffix list).';
COMMENT ON COLUMN dmarc.ip_names.forward_confirmed IS 'True when ptr resolves back to ip.';
COMMENT ON COLUMN dmarc.ip_names.resolved_at IS 'When the last lookup finished.';
COMMENT ON COLUMN dmarc.ip_names.status IS 'Outcome of the last lookup (set by resolve).';

-- Where the collector stands in each IMAP mailbox (storage/dc_mailbox.c).
-- The collector does not rely on \Seen flags: per mailbox (URL and user) it
-- keeps the folder's UIDVALIDITY and the highest UID it has handled, and reads
-- only messages above that UID.  When the server reports another UIDVALIDITY
-- (the folder was recreated or restored), last_uid goes back to 0 and the
-- folder is read again: reports already stored are recognised by their unique
-- key as duplicates, not stored twice.  Progress is recorded only after a
-- message's reports were committed and the message was moved (or flagged or
-- deleted), so a crash at any point means at worst reading a message again.
CREATE TABLE dmarc.mailboxes (
	id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	url                text NOT NULL,
	username           text NOT NULL,
	label              text NOT NULL,
	uidvalidity        bigint,
	last_uid           bigint NOT NULL DEFAULT 0,
	messages_stored    bigint NOT NULL DEFAULT 0,
	messages_rejected  bigint NOT NULL DEFAULT 0,
	last_poll_at       timestamptz,
	last_success_at    timestamptz,
	last_error         text,
	created_at         timestamptz NOT NULL DEFAULT now(),
	UNIQUE (url, username)
);
COMMENT ON TABLE dmarc.mailboxes IS
	'IMAP mailboxes the collector polls (one row per folder URL and user): the folder''s UIDVALIDITY, the highest UID handled, counters, and the outcome of the last poll.';
COMMENT ON COLUMN dmarc.mailboxes.url IS 'imaps://host[:port]/FOLDER as configured, without user information.';
COMMENT ON COLUMN dmarc.mailboxes.label IS 'The NAME of the [mailbox NAME] section; reports and failures carry it in their mailbox column.';
COMMENT ON COLUMN dmarc.mailboxes.uidvalidity IS 'The folder''s UIDVALIDITY when last read.';
COMMENT ON COLUMN dmarc.mailboxes.last_uid IS 'Highest UID whose message was stored (or rejected) and moved; the next poll reads UIDs above it. Reset to 0 when UIDVALIDITY changes.';
COMMENT ON COLUMN dmarc.mailboxes.messages_stored IS 'Messages stored from this mailbox, in total.';
COMMENT ON COLUMN dmarc.mailboxes.messages_rejected IS 'Messages rejected from this mailbox, in total.';
COMMENT ON COLUMN dmarc.mailboxes.last_poll_at IS 'When the last poll ended.';
COMMENT ON COLUMN dmarc.mailboxes.last_success_at IS 'When the last successful poll ended.';
COMMENT ON COLUMN dmarc.mailboxes.last_error IS 'Why the last poll failed (NULL after a successful poll).';

-- One row per message handled: what became of it.
CREATE TABLE dmarc.mailbox_messages (
	mailbox_id   bigint NOT NULL REFERENCES dmarc.mailboxes (id) ON DELETE CASCADE,
	uidvalidity  bigint NOT NULL,
	uid          bigint NOT NULL,
	message_id   text,
	size         bigint,
	outcome      text NOT NULL CHECK (outcome IN ('stored', 'rejected')),
	reports      integer NOT NULL DEFAULT 0,
	duplicates   integer NOT NULL DEFAULT 0,
	failures     integer NOT NULL DEFAULT 0,
	action       text NOT NULL,
	handled_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (mailbox_id, uidvalidity, uid)
);
CREATE INDEX mailbox_messages_handled_at ON dmarc.mailbox_messages (handled_at);
COMMENT ON TABLE dmarc.mailbox_messages IS
	'Messages the collector handled: stored (every report stored or a duplicate) or rejected (a row in dmarc.failures), and what was done with it in the mailbox (moved to a folder, flagged seen, deleted).';
COMMENT ON COLUMN dmarc.mailbox_messages.outcome IS 'stored or rejected.';
COMMENT ON COLUMN dmarc.mailbox_messages.action IS 'move:FOLDER, seen or delete.';

-- Daily rollups: dmarc.record_days summed per UTC day, kept up to date by
-- the functions and triggers of sql/objects/60_rollups.sql, so that a panel
-- over a year reads thousands of rows, not millions.
CREATE TABLE dmarc.rollup_daily (
	day                      date NOT NULL,
	policy_domain            text NOT NULL,
	org_name                 text NOT NULL,
	disposition              text,
	dkim_pass                boolean NOT NULL,
	spf_pass                 boolean NOT NULL,
	server_generated_reason  text,
	messages                 bigint NOT NULL,
	records                  bigint NOT NULL,
	CONSTRAINT rollup_daily_key UNIQUE NULLS NOT DISTINCT
		(day, policy_domain, org_name, disposition, dkim_pass, spf_pass, server_generated_reason)
);
CREATE INDEX rollup_daily_day_idx ON dmarc.rollup_daily (day, policy_domain);
-- a panel filtered to some reporters reads only their rows
CREATE INDEX rollup_daily_org_idx ON dmarc.rollup_daily (org_name, day);
CREATE INDEX rollup_daily_zero_idx ON dmarc.rollup_daily (day) WHERE records = 0;
COMMENT ON TABLE dmarc.rollup_daily IS
	'record_days summed per UTC day, policy domain (lower case), reporter, disposition, DKIM/SPF alignment and server-generated reason. '
	'Maintained by the rollup functions; read it through dmarc.daily_mail.';

-- Only what a person has to look at per source IP: mail that fails DMARC
-- and server-generated mail.  Passing regular mail is in rollup_daily.
CREATE TABLE dmarc.rollup_sources (
	day                      date NOT NULL,
	policy_domain            text NOT NULL,
	org_name                 text NOT NULL,
	source_ip                inet,
	header_from              text,
	disposition              text,
	dkim_pass                boolean NOT NULL,
	spf_pass                 boolean NOT NULL,
	server_generated_reason  text,
	messages                 bigint NOT NULL,
	records                  bigint NOT NULL,
	CONSTRAINT rollup_sources_key UNIQUE NULLS NOT DISTINCT
		(day, policy_domain, org_name, source_ip, header_from, disposition, dkim_pass, spf_pass,
		 server_generated_reason)
);
CREATE INDEX rollup_sources_day_idx ON dmarc.rollup_sources (day, policy_domain);
CREATE INDEX rollup_sources_ip_idx ON dmarc.rollup_sources (source_ip, day);
CREATE INDEX rollup_sources_org_idx ON dmarc.rollup_sources (org_name, day);
CREATE INDEX rollup_sources_zero_idx ON dmarc.rollup_sources (day) WHERE records = 0;
COMMENT ON TABLE dmarc.rollup_sources IS
	'record_days of mail failing DMARC or server-generated, summed per UTC day, policy domain, reporter, source IP, header_from, '
	'disposition, alignment and reason. Maintained by the rollup functions; read it through dmarc.daily_sources.';

-- rollup_daily without the reporter: what a panel over all reporters reads
-- (a year of a busy domain: some 10,000 rows instead of 650,000).
CREATE TABLE dmarc.rollup_domains (
	day                      date NOT NULL,
	policy_domain            text NOT NULL,
	disposition              text,
	dkim_pass                boolean NOT NULL,
	spf_pass                 boolean NOT NULL,
	server_generated_reason  text,
	messages                 bigint NOT NULL,
	records                  bigint NOT NULL,
	CONSTRAINT rollup_domains_key UNIQUE NULLS NOT DISTINCT
		(day, policy_domain, disposition, dkim_pass, spf_pass, server_generated_reason)
);
CREATE INDEX rollup_domains_zero_idx ON dmarc.rollup_domains (day) WHERE records = 0;
COMMENT ON TABLE dmarc.rollup_domains IS
	'rollup_daily summed over the reporters: per UTC day, policy domain, disposition, alignment and reason. '
	'Maintained by the rollup functions; read it through dmarc.daily_domains.';

-- rollup_daily per reporter only: the panels that list or count reporters
-- (one row per reporter, domain and day; a sixth of rollup_daily).
CREATE TABLE dmarc.rollup_reporters (
	day                  date NOT NULL,
	policy_domain        text NOT NULL,
	org_name             text NOT NULL,
	messages             bigint NOT NULL,
	dmarc_pass_messages  bigint NOT NULL,
	records              bigint NOT NULL,
	dmarc_pass_records   bigint NOT NULL,
	CONSTRAINT rollup_reporters_key UNIQUE (day, policy_domain, org_name)
		INCLUDE (messages, dmarc_pass_messages)
);
CREATE INDEX rollup_reporters_org_idx ON dmarc.rollup_reporters (org_name, day);
CREATE INDEX rollup_reporters_zero_idx ON dmarc.rollup_reporters (day) WHERE records = 0;
COMMENT ON TABLE dmarc.rollup_reporters IS
	'rollup_daily summed per UTC day, policy domain and reporter (messages and record-days, all and those passing DMARC). '
	'Maintained by the rollup functions; read it through dmarc.daily_reporters.';

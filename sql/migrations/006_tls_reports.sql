-- 006_tls_reports.sql - SMTP TLS reports (RFC 8460, issue 15): what sending
-- mail servers report about the TLS sessions they made, or failed to make,
-- to this domain's MX hosts under its MTA-STS or DANE policy.
--
-- Three tables, one per level of the JSON (RFC 8460 section 4), the
-- field names kept with '-' as '_':
--   dmarc.tls_reports   one row per report: organization_name + report_id is
--                       unique (a second copy is a duplicate, not stored
--                       again, and counts as stored);
--   dmarc.tls_policies  one row per element of "policies": the policy and
--                       its summary (session counts);
--   dmarc.tls_failures  one row per element of a policy's "failure-details".
-- A report is written whole in one statement inside its own transaction
-- (storage/dc_tls_store.c).  The bytes it came from are in dmarc.originals,
-- like an aggregate report's.  Deleting a report deletes its policies and
-- failures (ON DELETE CASCADE); retention (`prune`) deletes reports whose
-- date_end is older than the cutoff.  Not partitioned: a domain gets one
-- report per reporter and day, a few kB each.

CREATE TABLE dmarc.tls_reports (
	id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_name  text NOT NULL,
	report_id          text NOT NULL,
	date_begin         timestamptz NOT NULL,
	date_end           timestamptz NOT NULL,
	start_datetime     text NOT NULL,
	end_datetime       text NOT NULL,
	contact_info       text,
	mailbox            text,
	uidvalidity        bigint,
	uid                bigint,
	message_id         text,
	file_name          text,
	original_id        bigint REFERENCES dmarc.originals (id),
	original_path      text,
	ingested_at        timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT tls_reports_unique_report UNIQUE (organization_name, report_id)
);
CREATE INDEX tls_reports_date_begin_idx ON dmarc.tls_reports (date_begin);
CREATE INDEX tls_reports_date_end_idx ON dmarc.tls_reports (date_end);
CREATE INDEX tls_reports_original_id_idx ON dmarc.tls_reports (original_id);
COMMENT ON TABLE dmarc.tls_reports IS
	'One row per SMTP TLS report (RFC 8460). A second copy (same organization_name and report_id) is a duplicate and is not stored again.';
COMMENT ON COLUMN dmarc.tls_reports.organization_name IS 'organization-name: who sent the report.';
COMMENT ON COLUMN dmarc.tls_reports.report_id IS 'report-id as sent.';
COMMENT ON COLUMN dmarc.tls_reports.date_begin IS 'date-range/start-datetime (an RFC 3339 date-time; without an offset read as UTC).';
COMMENT ON COLUMN dmarc.tls_reports.date_end IS 'date-range/end-datetime.';
COMMENT ON COLUMN dmarc.tls_reports.start_datetime IS 'date-range/start-datetime as sent.';
COMMENT ON COLUMN dmarc.tls_reports.end_datetime IS 'date-range/end-datetime as sent.';
COMMENT ON COLUMN dmarc.tls_reports.contact_info IS 'contact-info (NULL when absent).';
COMMENT ON COLUMN dmarc.tls_reports.mailbox IS 'Where it came from: mailbox label (NULL for local files).';
COMMENT ON COLUMN dmarc.tls_reports.uid IS 'Where it came from: the message''s IMAP UID.';
COMMENT ON COLUMN dmarc.tls_reports.message_id IS 'Where it came from: the e-mail''s Message-ID.';
COMMENT ON COLUMN dmarc.tls_reports.file_name IS 'Where it came from: attachment or local file name.';
COMMENT ON COLUMN dmarc.tls_reports.original_id IS 'The unit it was read from (dmarc.originals).';
COMMENT ON COLUMN dmarc.tls_reports.original_path IS 'Where inside the original, e.g. "part 2 > gzip".';
COMMENT ON COLUMN dmarc.tls_reports.ingested_at IS 'When it was stored.';

CREATE TABLE dmarc.tls_policies (
	id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tls_report_id        bigint NOT NULL REFERENCES dmarc.tls_reports (id) ON DELETE CASCADE,
	ordinal              integer NOT NULL,
	policy_type          text NOT NULL,
	policy_string        text[],
	policy_domain        text,
	mx_host              text[],
	successful_sessions  bigint,
	failed_sessions      bigint,
	CONSTRAINT tls_policies_report_ordinal UNIQUE (tls_report_id, ordinal)
);
COMMENT ON TABLE dmarc.tls_policies IS
	'One row per element of a TLS report''s policies: the policy the sender applied and the summary of its sessions.';
COMMENT ON COLUMN dmarc.tls_policies.tls_report_id IS 'The report (dmarc.tls_reports.id).';
COMMENT ON COLUMN dmarc.tls_policies.ordinal IS '1-based position in the report''s policies.';
COMMENT ON COLUMN dmarc.tls_policies.policy_type IS 'policy/policy-type as sent: sts, tlsa or no-policy-found.';
COMMENT ON COLUMN dmarc.tls_policies.policy_string IS 'policy/policy-string: the MTA-STS policy lines or TLSA records (a single string sent is one element).';
COMMENT ON COLUMN dmarc.tls_policies.policy_domain IS 'policy/policy-domain as sent (NULL when absent).';
COMMENT ON COLUMN dmarc.tls_policies.mx_host IS 'policy/mx-host: the MX host patterns of the policy.';
COMMENT ON COLUMN dmarc.tls_policies.successful_sessions IS 'summary/total-successful-session-count (NULL when absent).';
COMMENT ON COLUMN dmarc.tls_policies.failed_sessions IS 'summary/total-failure-session-count (NULL when absent).';

CREATE TABLE dmarc.tls_failures (
	id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tls_policy_id           bigint NOT NULL REFERENCES dmarc.tls_policies (id) ON DELETE CASCADE,
	tls_report_id           bigint NOT NULL REFERENCES dmarc.tls_reports (id) ON DELETE CASCADE,
	ordinal                 integer NOT NULL,
	result_type             text NOT NULL,
	sending_mta_ip          text,
	receiving_mx_hostname   text,
	receiving_mx_helo       text,
	receiving_ip            text,
	failed_session_count    bigint,
	additional_information  text,
	failure_reason_code     text
);
CREATE INDEX tls_failures_policy_idx ON dmarc.tls_failures (tls_policy_id);
CREATE INDEX tls_failures_report_idx ON dmarc.tls_failures (tls_report_id);
COMMENT ON TABLE dmarc.tls_failures IS
	'One row per element of a TLS report policy''s failure-details (RFC 8460 section 4.3), fields as sent.';
COMMENT ON COLUMN dmarc.tls_failures.ordinal IS '1-based position in the policy''s failure-details.';
COMMENT ON COLUMN dmarc.tls_failures.result_type IS 'result-type, e.g. starttls-not-supported, certificate-expired, validation-failure, sts-policy-fetch-error.';
COMMENT ON COLUMN dmarc.tls_failures.sending_mta_ip IS 'sending-mta-ip as sent (text: not checked as an address).';
COMMENT ON COLUMN dmarc.tls_failures.receiving_mx_hostname IS 'receiving-mx-hostname.';
COMMENT ON COLUMN dmarc.tls_failures.receiving_mx_helo IS 'receiving-mx-helo.';
COMMENT ON COLUMN dmarc.tls_failures.receiving_ip IS 'receiving-ip as sent.';
COMMENT ON COLUMN dmarc.tls_failures.failed_session_count IS 'failed-session-count (NULL when absent).';
COMMENT ON COLUMN dmarc.tls_failures.additional_information IS 'additional-information (a URI).';
COMMENT ON COLUMN dmarc.tls_failures.failure_reason_code IS 'failure-reason-code.';

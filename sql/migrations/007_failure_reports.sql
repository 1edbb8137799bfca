-- DMARC failure reports (issue 15): RFC 5965 ARF with the RFC 6591 / RFC 9991
-- authentication-failure fields, one row per report found in a message
-- (parser/dc_arf.c), the message itself kept in dmarc.originals like an
-- aggregate report's unit.  The reported message's header block is kept;
-- its body only with [failure_reports] keep_body = yes (personal data).
-- A report is identified by the original it came from and where in it:
-- the same message imported or polled again is a duplicate.
CREATE TABLE dmarc.failure_reports (
	id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	feedback_type           text NOT NULL,
	version                 text,
	user_agent              text,
	arrival_date            text,
	arrival_time            timestamptz,
	source_ip               inet,
	reported_domain         text,
	original_mail_from      text,
	original_rcpt_to        text[],
	original_envelope_id    text,
	auth_failure            text,
	delivery_result         text,
	dkim_domain             text,
	dkim_identity           text,
	dkim_selector           text,
	spf_dns                 text,
	identity_alignment      text,
	reporting_mta           text,
	authentication_results  text,
	headers                 text,
	body                    text,
	orig_return_path        text,
	orig_auto_submitted     text,
	orig_content_type       text,
	orig_from               text,
	orig_subject            text,
	orig_message_id         text,
	part_types              text,
	notes                   text,
	mailbox                 text,
	uidvalidity             bigint,
	uid                     bigint,
	message_id              text,
	file_name               text,
	original_id             bigint REFERENCES dmarc.originals (id),
	original_sha256         bytea NOT NULL,
	original_path           text,
	ingested_at             timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT failure_reports_unique UNIQUE NULLS NOT DISTINCT (original_sha256, original_path)
);
CREATE INDEX failure_reports_original_id_idx ON dmarc.failure_reports (original_id);
CREATE INDEX failure_reports_ip_day_idx ON dmarc.failure_reports (source_ip, arrival_time);
-- retention (storage/dc_prune.c): by the day the message arrived, else when stored
CREATE INDEX failure_reports_expiry_idx ON dmarc.failure_reports ((coalesce(arrival_time, ingested_at)));
COMMENT ON TABLE dmarc.failure_reports IS
	'DMARC failure reports (RFC 5965 ARF, RFC 6591, RFC 9991): one row per report, with the feedback fields, the reported message''s header block and (only with [failure_reports] keep_body = yes) its body. The same report from the same original is stored once.';
COMMENT ON COLUMN dmarc.failure_reports.feedback_type IS 'Feedback-Type, lower case: auth-failure for DMARC failure reports (abuse, fraud, ... for other ARF reports).';
COMMENT ON COLUMN dmarc.failure_reports.arrival_date IS 'Arrival-Date (or the older Received-Date) as sent.';
COMMENT ON COLUMN dmarc.failure_reports.arrival_time IS 'arrival_date read as a time; NULL when absent or unreadable.';
COMMENT ON COLUMN dmarc.failure_reports.source_ip IS 'Source-IP: the address the reported message came from (a comment after it dropped); NULL when absent or no address.';
COMMENT ON COLUMN dmarc.failure_reports.reported_domain IS 'Reported-Domain (the first one).';
COMMENT ON COLUMN dmarc.failure_reports.original_mail_from IS 'Original-Mail-From as sent: "<>" or "" is a null reverse path.';
COMMENT ON COLUMN dmarc.failure_reports.original_rcpt_to IS 'Every Original-Rcpt-To (up to 100), in order.';
COMMENT ON COLUMN dmarc.failure_reports.auth_failure IS 'Auth-Failure, lower case (RFC 6591: adsp, bodyhash, revoked, signature, spf, dmarc).';
COMMENT ON COLUMN dmarc.failure_reports.delivery_result IS 'Delivery-Result, lower case (delivered, spam, policy, reject, other).';
COMMENT ON COLUMN dmarc.failure_reports.identity_alignment IS 'Identity-Alignment (RFC 9991), lower case.';
COMMENT ON COLUMN dmarc.failure_reports.headers IS 'The reported message''s header block as received (from its message/rfc822 or text/rfc822-headers part); bytes that are not UTF-8 became ''?''.';
COMMENT ON COLUMN dmarc.failure_reports.body IS 'The reported message''s body as sent (transfer encoding kept), only with [failure_reports] keep_body = yes; else NULL.';
COMMENT ON COLUMN dmarc.failure_reports.orig_return_path IS 'Return-Path field of the reported message''s headers ("<>": a null reverse path).';
COMMENT ON COLUMN dmarc.failure_reports.orig_auto_submitted IS 'Auto-Submitted field of the reported message (RFC 3834).';
COMMENT ON COLUMN dmarc.failure_reports.orig_content_type IS 'Content-Type field of the reported message (multipart/report; report-type=delivery-status is a DSN).';
COMMENT ON COLUMN dmarc.failure_reports.orig_from IS 'From field of the reported message, RFC 2047 words decoded.';
COMMENT ON COLUMN dmarc.failure_reports.orig_subject IS 'Subject field of the reported message, RFC 2047 words decoded.';
COMMENT ON COLUMN dmarc.failure_reports.orig_message_id IS 'Message-ID field of the reported message.';
COMMENT ON COLUMN dmarc.failure_reports.part_types IS 'Content types of the report''s parts, in order.';
COMMENT ON COLUMN dmarc.failure_reports.notes IS 'What was odd in the report and left out, "; "-joined.';
COMMENT ON COLUMN dmarc.failure_reports.message_id IS 'Where it came from: the e-mail''s Message-ID.';
COMMENT ON COLUMN dmarc.failure_reports.original_id IS 'The message it was read from (dmarc.originals).';
COMMENT ON COLUMN dmarc.failure_reports.original_sha256 IS 'SHA-256 of that message: with original_path, what makes a second copy a duplicate (also after the original is pruned).';
COMMENT ON COLUMN dmarc.failure_reports.original_path IS 'Where inside the original: NULL for the message itself, "part 2" for a report forwarded in part 2.';

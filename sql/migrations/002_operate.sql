-- 002_operate.sql - what the collector records about its own work, for
-- operating it (issue 13): a log of polls, the state of each mailbox that
-- dmarc.mailbox_status shows (sql/objects/70_reader_views.sql), and the
-- alerts the [alerts] command was given.
--
-- Design: the mailbox's row keeps what its status needs, written in the same
-- statement as the poll's row of the log (storage/dc_mailbox.c,
-- dc_mailbox_finish): the failures in a row, when the last one was, and the
-- last poll's numbers.  Deriving those from the log instead would make the
-- status depend on retention (prune removes old polls: a mailbox not polled
-- for longer than that would lose its last poll, and a long run of failures
-- would be counted short) and cost a scan per mailbox; three numbers and a
-- counter per mailbox cost nothing.  The totals move with each batch's
-- commit (dc_mailbox_record), as messages_stored and messages_rejected
-- already did.
--
-- Messages fall in three outcomes that add up: stored (at least one new
-- report), duplicate (every report of it was stored before) and rejected
-- (dmarc.failures says why).  Before this migration, messages_stored counted
-- the duplicate ones too.

ALTER TABLE dmarc.mailboxes
	ADD COLUMN messages_duplicate bigint NOT NULL DEFAULT 0,
	ADD COLUMN last_error_at timestamptz,
	ADD COLUMN last_poll_stored bigint,
	ADD COLUMN last_poll_duplicate bigint,
	ADD COLUMN last_poll_rejected bigint,
	ADD COLUMN polls_failed_in_a_row integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN dmarc.mailboxes.messages_stored IS
	'Messages with at least one new report stored from this mailbox, in total (before migration 002 also those whose reports were all duplicates).';
COMMENT ON COLUMN dmarc.mailboxes.messages_duplicate IS
	'Messages from this mailbox whose every report was stored before (a second copy), in total; counted since migration 002.';
COMMENT ON COLUMN dmarc.mailboxes.last_error_at IS
	'When the last failed poll ended; kept after a successful poll (last_error is then NULL), so last_error_at > last_success_at means failing now.';
COMMENT ON COLUMN dmarc.mailboxes.last_poll_stored IS 'Messages stored by the last poll (NULL before the first one).';
COMMENT ON COLUMN dmarc.mailboxes.last_poll_duplicate IS 'Messages of the last poll that were duplicates (NULL before the first poll).';
COMMENT ON COLUMN dmarc.mailboxes.last_poll_rejected IS 'Messages rejected by the last poll (NULL before the first one).';
COMMENT ON COLUMN dmarc.mailboxes.polls_failed_in_a_row IS
	'Polls that failed since the last successful one (0 after a successful poll).';

-- One row per poll of a mailbox, kept for the retention period.
CREATE TABLE dmarc.poll_runs (
	id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	mailbox_id          bigint NOT NULL REFERENCES dmarc.mailboxes (id) ON DELETE CASCADE,
	mailbox             text NOT NULL,
	started_at          timestamptz NOT NULL,
	finished_at         timestamptz NOT NULL,
	ok                  boolean NOT NULL,
	error_kind          text,
	error               text,
	messages_stored     bigint NOT NULL DEFAULT 0,
	messages_duplicate  bigint NOT NULL DEFAULT 0,
	messages_rejected   bigint NOT NULL DEFAULT 0,
	reports             bigint NOT NULL DEFAULT 0,
	records             bigint NOT NULL DEFAULT 0,
	CHECK (ok = (error_kind IS NULL))
);
CREATE INDEX poll_runs_mailbox_started ON dmarc.poll_runs (mailbox, started_at);
CREATE INDEX poll_runs_mailbox_id ON dmarc.poll_runs (mailbox_id);
COMMENT ON TABLE dmarc.poll_runs IS
	'The collector''s log of polls: one row per poll of a mailbox, successful or not (written when the poll ends; a poll that '
	'failed because the database was away writes none). `prune --older-than DAYS` deletes the rows started before the cutoff.';
COMMENT ON COLUMN dmarc.poll_runs.mailbox_id IS 'The dmarc.mailboxes row polled.';
COMMENT ON COLUMN dmarc.poll_runs.mailbox IS 'Its label (the NAME of [mailbox NAME]) at the time.';
COMMENT ON COLUMN dmarc.poll_runs.started_at IS 'When the poll started (the collector''s clock).';
COMMENT ON COLUMN dmarc.poll_runs.finished_at IS 'When it ended (the database''s clock, as dmarc.mailboxes.last_poll_at).';
COMMENT ON COLUMN dmarc.poll_runs.ok IS 'true: the poll read every message listed; false: it failed or was stopped.';
COMMENT ON COLUMN dmarc.poll_runs.error_kind IS
	'NULL when ok, else what failed: database, imap, auth, tls, config, interrupted (stopped by a signal), resource or other.';
COMMENT ON COLUMN dmarc.poll_runs.error IS 'The one-line reason when not ok.';
COMMENT ON COLUMN dmarc.poll_runs.messages_stored IS 'Messages with at least one new report stored (committed) by this poll.';
COMMENT ON COLUMN dmarc.poll_runs.messages_duplicate IS 'Messages whose every report had been stored before.';
COMMENT ON COLUMN dmarc.poll_runs.messages_rejected IS 'Messages rejected (each has its rows in dmarc.failures).';
COMMENT ON COLUMN dmarc.poll_runs.reports IS 'Reports stored (duplicates not counted).';
COMMENT ON COLUMN dmarc.poll_runs.records IS 'Records of those reports.';

-- The alerts given to the [alerts] command: each is sent once.
CREATE TABLE dmarc.alerts_sent (
	alert    text NOT NULL,
	key      text NOT NULL,
	sent_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (alert, key)
);
COMMENT ON TABLE dmarc.alerts_sent IS
	'Rows of dmarc.alerts that the [alerts] command accepted (exit status 0): a row of dmarc.alerts whose (alert, key) is here is '
	'not sent again. `prune --older-than DAYS` deletes those sent before the cutoff that no longer fire, so an alert that comes '
	'back after that is sent again.';
COMMENT ON COLUMN dmarc.alerts_sent.alert IS 'dmarc.alerts.alert: the alert view''s name without "alert_".';
COMMENT ON COLUMN dmarc.alerts_sent.key IS 'dmarc.alerts.key: what the alert is about, stable across runs.';
COMMENT ON COLUMN dmarc.alerts_sent.sent_at IS 'When the command accepted it.';

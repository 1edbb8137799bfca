-- 003_mailboxes.sql - where the collector stands in each IMAP mailbox
-- (collector/dc_poll.c through storage/dc_mailbox.c).
--
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
COMMENT ON COLUMN dmarc.mailboxes.last_uid IS 'Highest UID whose message was stored (or rejected) and moved; the next poll reads UIDs above it. Reset to 0 when UIDVALIDITY changes.';
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
COMMENT ON TABLE dmarc.mailbox_messages IS
	'Messages the collector handled: stored (every report stored or a duplicate) or rejected (a row in dmarc.failures), and what was done with it in the mailbox (moved to a folder, flagged seen, deleted).';
COMMENT ON COLUMN dmarc.mailbox_messages.action IS 'move:FOLDER, seen or delete.';
CREATE INDEX mailbox_messages_handled_at ON dmarc.mailbox_messages (handled_at);

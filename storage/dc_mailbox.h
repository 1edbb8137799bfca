/*
 * dc_mailbox.h - the collector's place in each IMAP mailbox, in PostgreSQL
 * (dmarc.mailboxes, dmarc.mailbox_messages, dmarc.poll_runs;
 * sql/migrations/001_tables.sql, 002_operate.sql).
 *
 * A mailbox is identified by its folder URL and user.  It records the
 * folder's UIDVALIDITY and the highest UID handled; a changed UIDVALIDITY
 * resets that to 0 so the folder is read again.  The end of each poll is one
 * statement: the mailbox's status columns (dmarc.mailbox_status) and a row
 * of the run log, together.  Deliberately not here: IMAP, reports
 * (dc_store), deciding what a message's outcome is.
 */
#ifndef DC_MAILBOX_H
#define DC_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_store.h"

typedef struct dc_mailbox_state {
	int64_t id;
	int64_t uidvalidity;     /* the folder's UIDVALIDITY now */
	int64_t last_uid;        /* highest UID handled under it; 0 = none */
	int64_t old_uidvalidity; /* the one recorded before; -1 for a new mailbox */
} dc_mailbox_state;

/* What became of one message (for dmarc.mailbox_messages). */
typedef struct dc_mailbox_outcome {
	int64_t uid;
	const char *message_id; /* may be NULL */
	int64_t size;
	bool rejected; /* false: stored (a duplicate when reports == 0 < duplicates) */
	int reports, duplicates, failures;
	const char *action; /* "move:FOLDER", "seen", "delete" */
} dc_mailbox_outcome;

/*
 * Finds or creates the row for (url, user), updates its label, and records
 * uidvalidity; when that differs from the recorded one, last_uid becomes 0.
 * Fills *st.  Returns DC_EDB or DC_EDBREFUSED (dc_pg.h) on failure (err
 * names the statement), DC_ECONFIG when the table is missing (the schema
 * was not migrated).
 */
dc_code dc_mailbox_begin(dc_store *store, const char *label, const char *url, const char *user,
	int64_t uidvalidity, dc_mailbox_state *st, dc_err *err) DC_WUR;

/*
 * In one transaction: records the n outcomes, adds them to the counters and
 * raises last_uid to at least last_uid (only while the folder's UIDVALIDITY
 * is still st->uidvalidity).  Updates st->last_uid.
 */
dc_code dc_mailbox_record(dc_store *store, dc_mailbox_state *st, const dc_mailbox_outcome *o, size_t n,
	int64_t last_uid, dc_err *err) DC_WUR;

/* How a poll ended, for dmarc.poll_runs and the mailbox's status. */
typedef struct dc_mailbox_poll {
	const char *label;  /* the mailbox's label now */
	double started_at;  /* wall clock, seconds since the epoch */
	dc_code rc;         /* DC_OK, or what stopped it (its kind: dc_code_kind) */
	const char *error;  /* the one-line reason when rc != DC_OK */
	uint64_t stored;    /* messages with a new report, committed by this poll */
	uint64_t duplicate; /* messages whose every report was a duplicate */
	uint64_t rejected, reports, records;
} dc_mailbox_poll;

/*
 * Records the end of poll p of mailbox id in one statement: a row of
 * dmarc.poll_runs, and the mailbox's last_poll_at, last_success_at or
 * last_error/last_error_at, polls_failed_in_a_row and last poll's counts.
 * A poll stopped by a signal (DC_EINTERRUPTED) writes its run row only: the
 * mailbox keeps the outcome of its last whole poll.  DC_EDB or DC_EDBREFUSED.
 */
dc_code dc_mailbox_finish(dc_store *store, int64_t id, const dc_mailbox_poll *p, dc_err *err) DC_WUR;

/* Records failed poll p for a mailbox that may have no row yet (the IMAP
 * login failed before dc_mailbox_begin), as dc_mailbox_finish: creates the
 * row without UIDVALIDITY when missing.  p->rc must not be DC_OK. */
dc_code dc_mailbox_fail(
	dc_store *store, const char *url, const char *user, const dc_mailbox_poll *p, dc_err *err) DC_WUR;

#endif

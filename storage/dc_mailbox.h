/*
 * dc_mailbox.h - the collector's place in each IMAP mailbox, in PostgreSQL
 * (dmarc.mailboxes, dmarc.mailbox_messages; sql/003_mailboxes.sql).
 *
 * A mailbox is identified by its folder URL and user.  It records the
 * folder's UIDVALIDITY and the highest UID handled; a changed UIDVALIDITY
 * resets that to 0 so the folder is read again.  Deliberately not here:
 * IMAP, reports (dc_store), deciding what a message's outcome is.
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
	bool rejected; /* false: stored (or all duplicates) */
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

/* Records the end of a poll: error NULL for success, else its one-line reason. */
dc_code dc_mailbox_finish(dc_store *store, int64_t id, const char *error, dc_err *err) DC_WUR;

/* Records a failed poll for a mailbox that may have no row yet (the IMAP
 * login failed before dc_mailbox_begin): creates the row without UIDVALIDITY
 * when missing. */
dc_code dc_mailbox_fail(dc_store *store, const char *label, const char *url, const char *user,
	const char *error, dc_err *err) DC_WUR;

#endif

/*
 * dc_ingest.h - the ingest step for one mailbox (SPEC section 7): log in,
 * list the messages above the last UID handled, fetch them, store them,
 * COMMIT, and only then move, flag or delete them (`after`).  Nothing is
 * moved before its reports are committed.
 *
 * A dc_ingest is one mailbox's worker across polls: it keeps the mailbox's
 * XOAUTH2 token between them.  It holds no global state, never exits and
 * never prints: what it has to say goes to the log callback, and it stops
 * when the caller's stop flag is set (after the message in hand and its
 * batch's moves); as it advances it calls the progress callback.  The
 * program's service loop (program/dc_service.c) runs one per mailbox; tests
 * drive it directly (tests/integration/test_ingest.c).
 */
#ifndef DC_INGEST_H
#define DC_INGEST_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "dc_config.h"
#include "dc_error.h"
#include "dc_store.h"

/* Log levels, the syslog priorities (as dc_log's). */
enum { DC_INGEST_WARN = 4, DC_INGEST_INFO = 6, DC_INGEST_DEBUG = 7 };

/* One line to log, without a newline; called from the threads of the
 * mailbox's extra connections too, so it must be thread-safe. */
typedef void (*dc_ingest_log_fn)(void *ctx, int level, const char *msg);

/* The poll advanced: a chunk of a server's answer arrived, a message was
 * stored or rejected, a batch committed or moved, a folder selected, a
 * database or IMAP session opened.  The service kicks systemd's watchdog
 * with it, so it is not called while the poll waits on a silent server.
 * Called often (every chunk received) and from the threads of the
 * mailbox's extra connections too: it must be cheap and thread-safe. */
typedef void (*dc_ingest_progress_fn)(void *ctx);

typedef struct dc_ingest_opts {
	const dc_config *cfg;              /* limits, database; borrowed, must outlive the dc_ingest */
	const dc_mailbox_config *mb;       /* the mailbox; borrowed likewise */
	const volatile sig_atomic_t *stop; /* non-zero: stop after the message in hand (may be NULL) */
	dc_ingest_log_fn log;              /* may be NULL: nothing is logged */
	void *log_ctx;
	int log_level;                  /* lines above this level are not even formatted */
	dc_ingest_progress_fn progress; /* may be NULL */
	void *progress_ctx;
} dc_ingest_opts;

/* What one run did (messages committed and acted on).  stored counts the
 * messages not rejected, dup_messages those of them whose every report was
 * a duplicate; records is the records of the reports stored (not of the
 * duplicates). */
typedef struct dc_ingest_totals {
	uint64_t messages, stored, rejected, reports, duplicates, failures;
	uint64_t dup_messages, records;
	uint64_t tls_reports, failure_reports; /* stored, duplicates included */
} dc_ingest_totals;

typedef struct dc_ingest dc_ingest;

/* The summary lines' other kinds of report: ", N TLS reports" and/or
 * ", N failure reports", each only when non-zero ("" when both are 0),
 * into buf[0..cap). */
void dc_ingest_kinds(char *buf, size_t cap, uint64_t tls_reports, uint64_t failure_reports);

/* Creates the worker for o->mb; *out is owned by the caller (dc_ingest_free).
 * DC_ENOMEM. */
dc_code dc_ingest_new(const dc_ingest_opts *o, dc_ingest **out, dc_err *err) DC_WUR;

/* Frees ig, wiping its cached token; NULL is fine. */
void dc_ingest_free(dc_ingest *ig);

/*
 * Polls the mailbox once into st (borrowed; opened with dc_ingest_open_store)
 * and adds what was committed to *t.  Returns DC_OK, DC_EINTERRUPTED
 * (stopped by the flag after finishing its batches), or the error that
 * stopped it: DC_EDB/DC_EDBREFUSED (st is then unusable), DC_ECONFIG,
 * DC_EAUTH, DC_EIMAP, DC_ETLS, DC_ENOMEM ...
 */
dc_code dc_ingest_run(dc_ingest *ig, dc_store *st, dc_ingest_totals *t, dc_err *err) DC_WUR;

/* What dc_ingest_probe found. */
typedef struct dc_ingest_probe_info {
	char *folder;    /* the folder selected, owned by the caller (free) */
	uint64_t exists; /* messages in it */
	bool move;       /* the server offers MOVE */
} dc_ingest_probe_info;

/* check-config's probe: logs in and selects the folder, nothing else.
 * On DC_OK info->folder is set; on error it is NULL. */
dc_code dc_ingest_probe(dc_ingest *ig, dc_ingest_probe_info *info, dc_err *err) DC_WUR;

/*
 * Opens cfg's database (conninfo, password) for ingesting (*out owned by the caller) with
 * synchronous_commit on for its session: a message is moved once its
 * reports are committed, so a commit must not be lost by a server crash
 * afterwards, whatever the server's default.  DC_EDB or DC_EDBREFUSED
 * (dc_pg.h) on failure.
 */
dc_code dc_ingest_open_store(const dc_config *cfg, dc_store **out, dc_err *err) DC_WUR;

#endif

/*
 * dc_ingest.c - one poll of one mailbox (SPEC section 7), as a unit the
 * service loop and tests drive (dc_ingest.h).
 *
 * One poll: log in (dc_imap; XOAUTH2 through dc_oauth2, the token cached
 * here between polls and fetched again once when refused), SELECT the
 * folder, compare its UIDVALIDITY with dmarc.mailboxes (dc_mailbox), list
 * the messages above the last UID handled, then in batches: fetch the bodies
 * with BODY.PEEK[] (no \Seen), hand each to dc_extract into dc_store (the
 * message's Message-ID comes from that parse, see on_message), the whole
 * batch in one transaction (dc_store's batch mode; if the server refuses a
 * value of it, the batch is stored again one transaction per report),
 * COMMIT, and only then move the batch's stored messages to archive_folder
 * (or flag them \Seen, or delete them: `after`) and its rejected ones to
 * invalid_folder, and record the batch's outcomes and the new last UID.  A
 * crash anywhere repeats at most the current batch: nothing of it was
 * committed, or its committed reports come back as duplicates (the unique
 * key) and its messages are moved then.  After each listing the stored
 * reports are added to the daily rollups in one go (dmarc.rollup_pending,
 * sql/007).  The poll's end, good or bad, is one statement (dc_mailbox_finish):
 * a row of dmarc.poll_runs and the mailbox's status; a poll that failed for
 * want of the database writes nothing.
 *
 * Up to the mailbox's `connections` work on one listing: this thread's and
 * extra threads, each with its own IMAP session and database connection
 * (the pool below).  The pool is not generic: it hands out batches in UID
 * order and knows which are final and complete, so the recorded progress
 * never passes a message that was not handled.
 *
 * Progress (the service's watchdog, dc_ingest_progress_fn) is reported at
 * each step that advances the poll: a session opened, the folder selected,
 * a listing read, each report stored (and every PROGRESS_RECORDS of its
 * records), each message handled, each batch committed, moved and
 * recorded, and, through the IMAP client, each chunk received.  Never
 * while waiting: a poll stuck on a silent server reports nothing.
 *
 * Deliberately not here: the schedule, backoff, signals, the watchdog and
 * the process's log (program/dc_service.c); this file reads the caller's
 * stop flag and reports through its log and progress callbacks, and holds
 * no global state.
 */
#include "dc_ingest.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc_extract.h"
#include "dc_imap.h"
#include "dc_mailbox.h"
#include "dc_oauth2.h"
#include "dc_pg.h"

#define BATCH_MESSAGES  200 /* at most this many messages fetched, stored and moved together */
#define ROLLUP_BATCHES  10  /* batches between additions to the daily rollups */
#define BATCH_MIN       20  /* ... and at least this many (when there are) */
#define BATCH_BYTES     (64ULL * 1024 * 1024) /* ... or this many bytes (RFC822.SIZE) */
#define IMAP_TIMEOUT_MS 60000L
#define LOG_LINE_MAX    2048 /* a log line, as dc_log's */
#define PROGRESS_RECORDS \
	64 /* records stored between two progress calls (one
                                report may hold millions, and take minutes) */

struct dc_ingest {
	const dc_config *cfg;
	const dc_mailbox_config *mb;
	const volatile sig_atomic_t *stop;
	dc_ingest_log_fn log;
	void *log_ctx;
	int log_level;
	dc_ingest_progress_fn progress;
	void *progress_ctx;
	char *token; /* XOAUTH2 token, fetched again when refused */
};

/* ---- helpers --------------------------------------------------------------- */

static void say(const dc_ingest *ig, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Hands one formatted line to the log callback, unless it is above the level. */
static void
say(const dc_ingest *ig, int level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;

	if (ig->log == NULL || level > ig->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ig->log(ig->log_ctx, level, line);
}

/* Tells the caller the poll advanced (dc_ingest_progress_fn); any thread. */
static void
progressed(const dc_ingest *ig)
{
	if (ig->progress != NULL)
		ig->progress(ig->progress_ctx);
}

/* True when the caller asked to stop. */
static bool
stopping(const dc_ingest *ig)
{
	return ig->stop != NULL && *ig->stop != 0;
}

/* Returns the seconds elapsed since t0 (monotonic). */
static double
seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Returns "scheme://host[:port]/folder" (no user information) in a new string. */
static char *
canonical_url(const dc_imap_url *u)
{
	char *s = NULL;
	char port[24] = "";

	if (u->port > 0)
		snprintf(port, sizeof(port), ":%ld", u->port);
	if (asprintf(&s, "%s://%s%s/%s", u->scheme, u->host, port, u->folder) < 0)
		return NULL;
	return s;
}

dc_code
dc_ingest_open_store(const dc_config *cfg, dc_store **out, dc_err *err)
{
	dc_code rc = dc_store_open(cfg->db_conninfo, cfg->db_password, out, err);

	if (rc != DC_OK)
		return rc;
	rc = dc_store_synchronous_commit(*out, err);
	/* the rollups are added once per listing (rollup_pending), not at
	 * each batch's COMMIT */
	if (rc == DC_OK)
		rc = dc_store_defer_rollups(*out, true, err);
	if (rc != DC_OK) {
		dc_store_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- one mailbox ---------------------------------------------------------------- */

typedef dc_ingest_totals totals;

/* One message of the batch in hand. */
typedef struct slot {
	uint64_t uid, size;
	bool done, rejected;
	int reports, duplicates, failures;
	uint64_t records; /* of its reports stored */
	uint64_t tls_reports, failure_reports;
	char *message_id;
} slot;

/*
 * The work of one listing, shared by the connections that do it.  Batches
 * are handed out in UID order; each connection fetches, stores and moves its
 * batch, then records it.  last_uid only ever covers batches that are final
 * and complete from the first one on, so a failure or crash in one batch never
 * lets the recorded progress pass a message that was not handled.
 */
typedef struct pool {
	pthread_mutex_t mu;
	dc_ingest *ig;
	const dc_config *cfg;
	const dc_mailbox_config *mb;
	const char *folder;
	const char *bearer;     /* XOAUTH2 token for the extra connections */
	dc_mailbox_state state; /* id, uidvalidity, last_uid before this listing */
	const dc_imap_msg *msgs;
	size_t *start, *count; /* batch b is msgs[start[b] .. start[b] + count[b]) */
	uint64_t *upto;        /* highest UID batch b handled with all before it */
	bool *final, *complete;
	size_t n_batches, next;
	bool abort;
	dc_code rc; /* the first error */
	dc_err err;
} pool;

/* One connection's worker: its IMAP session, database connection and batch. */
typedef struct mb_run {
	pool *p;
	const dc_config *cfg;
	const dc_mailbox_config *mb;
	dc_store *st;
	dc_extract_cb store_cb; /* the store's callbacks */
	dc_extract_cb cb;       /* the same, failures logged first */
	dc_imap *im;
	slot *slots;
	size_t n_slots;
	bool archive_ready, invalid_ready;
	bool missing; /* a message of the batch not delivered but still listed */
	uint64_t cur_uid;
	slot *cur;        /* the message in hand */
	unsigned records; /* records stored, for the progress every PROGRESS_RECORDS */
	totals t;
} mb_run;

/* The store's sink, wrapped so that storing a report reports progress: its
 * records (every PROGRESS_RECORDS) and its end. */
static dc_code
on_report_begin(void *ctx, const dc_report *rep, const dc_blob *origin, dc_err *err)
{
	mb_run *r = ctx;

	if (r->store_cb.sink.report_begin == NULL)
		return DC_OK;
	return r->store_cb.sink.report_begin(r->store_cb.sink.ctx, rep, origin, err);
}

static dc_code
on_failure_report(void *ctx, const struct dc_arf_report *rep, const dc_blob *origin, dc_err *err)
{
	mb_run *r = ctx;

	if (r->store_cb.sink.failure_report == NULL)
		return DC_OK;
	return r->store_cb.sink.failure_report(r->store_cb.sink.ctx, rep, origin, err);
}

static dc_code
on_record(void *ctx, const dc_report *rep, const dc_record *rec, dc_err *err)
{
	mb_run *r = ctx;

	if (++r->records % PROGRESS_RECORDS == 0)
		progressed(r->p->ig);
	if (r->store_cb.sink.record == NULL)
		return DC_OK;
	return r->store_cb.sink.record(r->store_cb.sink.ctx, rep, rec, err);
}

static dc_code
on_report_end(void *ctx, const dc_report *rep, dc_err *err)
{
	mb_run *r = ctx;
	dc_code rc = r->store_cb.sink.report_end == NULL ?
		DC_OK :
		r->store_cb.sink.report_end(r->store_cb.sink.ctx, rep, err);

	if (rc == DC_OK)
		progressed(r->p->ig);
	return rc;
}

static void
on_report_abort(void *ctx)
{
	mb_run *r = ctx;

	if (r->store_cb.sink.report_abort != NULL)
		r->store_cb.sink.report_abort(r->store_cb.sink.ctx);
}

static dc_code
on_tls_report(void *ctx, const struct dc_tls_report *rep, const dc_blob *origin, dc_err *err)
{
	mb_run *r = ctx;
	dc_code rc = r->store_cb.sink.tls_report == NULL ?
		DC_OK :
		r->store_cb.sink.tls_report(r->store_cb.sink.ctx, rep, origin, err);

	if (rc == DC_OK || rc == DC_SKIP)
		progressed(r->p->ig);
	return rc;
}

/* dc_extract's failure callback: log the rejection, then let the store record it. */
static dc_code
on_failure(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	mb_run *r = ctx;

	say(r->p->ig, DC_INGEST_WARN, "mailbox %s: UID %" PRIu64 ": rejected%s%s (%s): %s", r->mb->label,
		r->cur_uid, unit && unit->name ? " " : "", unit && unit->name ? unit->name : "", stage,
		dc_err_text(why));
	return r->store_cb.failure(r->store_cb.failure_ctx, stage, why, unit, err);
}

/* dc_extract's message callback: the message's Message-ID (from the MIME
 * parse, the value an import stores too) joins the origin of its reports
 * and failures, and its dmarc.mailbox_messages row. */
static dc_code
on_message(void *ctx, const dc_mime_head *head, dc_err *err)
{
	mb_run *r = ctx;
	slot *s = r->cur;
	dc_origin o = { .mailbox = r->mb->label,
		.uidvalidity = r->p->state.uidvalidity,
		.uid = (int64_t)s->uid,
		.message_id = head->message_id,
		.file_name = NULL };

	free(s->message_id);
	s->message_id = NULL;
	if (head->message_id != NULL && (s->message_id = strdup(head->message_id)) == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	return dc_store_set_origin(r->st, &o, err);
}

/* Records a whole-message rejection found here (too big, no report at all). */
static dc_code
reject_message(mb_run *r, slot *s, const char *stage, const char *reason, const uint8_t *data, size_t len,
	dc_err *err)
{
	say(r->p->ig, DC_INGEST_WARN, "mailbox %s: UID %" PRIu64 ": rejected (%s): %s", r->mb->label, s->uid,
		stage, reason);
	s->failures++;
	return dc_store_failure(r->st, stage, reason, data, len, err);
}

/*
 * Stores one message (data NULL: too big, len its size).  Returns DC_OK when
 * the message is done (stored or rejected, s says which) or an error that
 * stops the poll (database, memory): the message then stays untouched.
 */
static dc_code
handle_message(mb_run *r, slot *s, const uint8_t *data, size_t len, dc_err *err)
{
	dc_extract_stats xs = { 0 };
	dc_origin o;
	dc_code rc;

	r->cur_uid = s->uid;
	r->cur = s;
	free(s->message_id);
	s->message_id = NULL;
	o = (dc_origin){ .mailbox = r->mb->label,
		.uidvalidity = r->p->state.uidvalidity,
		.uid = (int64_t)s->uid,
		.message_id = s->message_id,
		.file_name = NULL };
	rc = dc_store_set_origin(r->st, &o, err);
	if (rc != DC_OK)
		return rc;
	s->reports = s->duplicates = s->failures = 0;
	s->records = s->tls_reports = s->failure_reports = 0;
	if (data == NULL) {
		char why[160];

		snprintf(why, sizeof(why),
			"message of %zu bytes is larger than max_message_bytes (%" PRIu64 ")", len,
			r->cfg->limits.max_message_bytes);
		rc = reject_message(r, s, "limits", why, NULL, 0, err);
	} else {
		rc = dc_extract(data, len, NULL, &r->cfg->limits, &r->cb, &xs, err);
		s->reports = (int)xs.reports;
		s->duplicates = (int)xs.duplicates;
		s->failures = (int)xs.failures;
		s->records = xs.records;
		s->tls_reports = xs.tls_reports;
		s->failure_reports = xs.failure_reports;
		if (rc != DC_OK && !dc_extract_is_fatal(rc)) {
			/* not expected from dc_extract: reject the message rather than retry it forever */
			char why[DC_ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", dc_err_text(err));
			rc = reject_message(r, s, "extract", why, data, len, err);
		} else if (rc == DC_OK &&
			xs.reports + xs.duplicates + xs.failures + xs.tls_reports + xs.failure_reports == 0) {
			rc = reject_message(
				r, s, "mime", "no aggregate report in the message", data, len, err);
		}
	}
	if (rc != DC_OK)
		return rc;
	s->done = true;
	s->rejected = s->failures > 0;
	progressed(r->p->ig);
	return DC_OK;
}

/* dc_store_batch_commit's callback: a report stored from UID uid turned out
 * to be a duplicate when the batch was sent. */
static void
on_duplicate(void *ctx, int64_t uid, uint64_t records)
{
	mb_run *r = ctx;

	for (size_t i = 0; i < r->n_slots; i++) {
		slot *s = &r->slots[i];

		if (s->uid == (uint64_t)uid && s->reports > 0) {
			s->reports--;
			s->duplicates++;
			s->records -= records < s->records ? records : s->records;
			return;
		}
	}
}

/* Adds the batch's committed messages to the totals. */
static void
count_slots(mb_run *r)
{
	for (size_t i = 0; i < r->n_slots; i++) {
		const slot *s = &r->slots[i];

		if (!s->done)
			continue;
		r->t.messages++;
		if (s->rejected)
			r->t.rejected++;
		else
			r->t.stored++;
		if (!s->rejected && s->reports == 0 && s->duplicates > 0)
			r->t.dup_messages++;
		r->t.records += s->records;
		r->t.reports += (uint64_t)s->reports;
		r->t.duplicates += (uint64_t)s->duplicates;
		r->t.failures += (uint64_t)s->failures;
		r->t.tls_reports += s->tls_reports;
		r->t.failure_reports += s->failure_reports;
		say(r->p->ig, DC_INGEST_DEBUG,
			"mailbox %s: UID %" PRIu64 " %s: %d reports stored, %d duplicates, %d rejected",
			r->mb->label, s->uid, s->message_id ? s->message_id : "(no Message-ID)", s->reports,
			s->duplicates, s->failures);
	}
}

/* dc_imap_fetch's callback: one body.  Servers answer in any order (RFC 3501
 * 7.4.2 promises none) and may send a message twice: each slot is looked up
 * by UID and handled once. */
static dc_code
on_body(void *ctx, uint64_t uid, const uint8_t *data, size_t len, dc_err *err)
{
	mb_run *r = ctx;
	size_t lo = 0, hi = r->n_slots;
	slot *s;

	while (lo < hi) { /* the slots are in UID order */
		size_t mid = lo + (hi - lo) / 2;

		if (r->slots[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == r->n_slots || r->slots[lo].uid != uid || r->slots[lo].done)
		return DC_OK; /* not one we asked for, or again */
	s = &r->slots[lo];
	if (stopping(r->p->ig))
		return dc_err_set(err, DC_EINTERRUPTED, "stopped by a signal");
	s->size = len; /* the literal's length, not RFC822.SIZE */
	return handle_message(r, s, data, len, err);
}

/* Creates folder when missing, once per session (*ready remembers). */
static dc_code
ensure_folder(mb_run *r, const char *folder, bool *ready, dc_err *err)
{
	dc_code rc;

	if (*ready)
		return DC_OK;
	rc = dc_imap_ensure_folder(r->im, folder, err);
	*ready = rc == DC_OK;
	return rc;
}

/* Moves, flags or deletes the done messages of the batch (their data is committed). */
static dc_code
act_on_batch(mb_run *r, dc_err *err)
{
	const dc_mailbox_config *mb = r->mb;
	uint64_t *ok = malloc((r->n_slots + 1) * sizeof(*ok));
	uint64_t *bad = malloc((r->n_slots + 1) * sizeof(*bad));
	size_t n_ok = 0, n_bad = 0;
	dc_code rc = DC_OK;

	if (ok == NULL || bad == NULL) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < r->n_slots; i++) {
		slot *s = &r->slots[i];

		if (s->done && s->rejected)
			bad[n_bad++] = s->uid;
		else if (s->done)
			ok[n_ok++] = s->uid;
	}
	if (n_bad > 0) {
		rc = ensure_folder(r, mb->invalid_folder, &r->invalid_ready, err);
		if (rc == DC_OK)
			rc = dc_imap_move(r->im, bad, n_bad, mb->invalid_folder, err);
		if (rc != DC_OK)
			goto out;
	}
	if (n_ok > 0) {
		switch (mb->after) {
		case DC_AFTER_MOVE:
			rc = ensure_folder(r, mb->archive_folder, &r->archive_ready, err);
			if (rc == DC_OK)
				rc = dc_imap_move(r->im, ok, n_ok, mb->archive_folder, err);
			break;
		case DC_AFTER_SEEN: rc = dc_imap_mark_seen(r->im, ok, n_ok, err); break;
		case DC_AFTER_DELETE: rc = dc_imap_delete(r->im, ok, n_ok, err); break;
		}
	}
out:
	free(ok);
	free(bad);
	return rc;
}

/* The highest UID every message up to which is handled (pool locked). */
static int64_t
pool_last_uid(const pool *p)
{
	int64_t last = p->state.last_uid;

	for (size_t b = 0; b < p->n_batches && p->final[b]; b++) {
		if (p->upto[b] > 0)
			last = (int64_t)p->upto[b];
		if (!p->complete[b])
			break;
	}
	return last;
}

/*
 * Records the batch's outcomes in dmarc.mailbox_messages and the progress:
 * the batch is final (acted on when acted is true), and complete when the
 * whole batch was delivered and acted on.
 */
static dc_code
record_batch(mb_run *r, size_t b, bool acted, bool complete, dc_err *err)
{
	pool *p = r->p;
	const dc_mailbox_config *mb = r->mb;
	dc_mailbox_outcome *out = malloc((r->n_slots + 1) * sizeof(*out));
	char *move_ok = NULL, *move_bad = NULL;
	dc_mailbox_state state;
	size_t n_out = 0;
	uint64_t upto = 0;
	bool gap = false;
	int64_t last;
	dc_code rc = DC_OK;

	if (out == NULL || asprintf(&move_ok, "move:%s", mb->archive_folder) < 0 ||
		asprintf(&move_bad, "move:%s", mb->invalid_folder) < 0) {
		move_ok = move_bad = NULL;
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < r->n_slots; i++) {
		slot *s = &r->slots[i];

		/* progress up to the first message not handled; outcomes of all acted on */
		if (!complete && (!acted || !s->done))
			gap = true;
		if (!gap)
			upto = s->uid;
		if (!s->done || !acted)
			continue; /* gone from the server meanwhile, or not moved */
		out[n_out++] = (dc_mailbox_outcome){
			.uid = (int64_t)s->uid,
			.message_id = s->message_id,
			.size = (int64_t)s->size,
			.rejected = s->rejected,
			.reports = s->reports,
			.duplicates = s->duplicates,
			.failures = s->failures,
			.action = s->rejected              ? move_bad :
				mb->after == DC_AFTER_MOVE ? move_ok :
				mb->after == DC_AFTER_SEEN ? "seen" :
							     "delete",
		};
	}
	pthread_mutex_lock(&p->mu);
	p->final[b] = true;
	p->complete[b] = complete;
	p->upto[b] = upto;
	last = pool_last_uid(p);
	state = p->state;
	pthread_mutex_unlock(&p->mu);
	if (n_out > 0 || last > state.last_uid)
		rc = dc_mailbox_record(r->st, &state, out, n_out, last, err);
out:
	free(out);
	free(move_ok);
	free(move_bad);
	return rc;
}

/* Empties the batch, freeing the Message-IDs it holds. */
static void
clear_slots(mb_run *r)
{
	for (size_t i = 0; i < r->n_slots; i++)
		free(r->slots[i].message_id);
	r->n_slots = 0;
}

/*
 * After a FETCH that went through: a message asked for and not delivered was
 * expunged meanwhile, unless the server still lists it.  Then r->missing is
 * set: the batch is not complete, so the recorded progress stays before that
 * message and the next poll asks for it again.
 */
static dc_code
check_missing(mb_run *r, dc_err *err)
{
	uint64_t lo = 0, hi = 0;
	dc_imap_msg *msgs = NULL;
	size_t n = 0;
	dc_code rc;

	for (size_t i = 0; i < r->n_slots; i++) {
		if (!r->slots[i].done) {
			if (lo == 0)
				lo = r->slots[i].uid;
			hi = r->slots[i].uid;
		}
	}
	if (lo == 0)
		return DC_OK;
	rc = dc_imap_list(r->im, lo, hi + 1, 0, &msgs, &n, err);
	for (size_t k = 0; rc == DC_OK && k < n; k++) {
		for (size_t i = 0; i < r->n_slots; i++) {
			if (r->slots[i].uid == msgs[k].uid && !r->slots[i].done) {
				say(r->p->ig, DC_INGEST_WARN,
					"mailbox %s: UID %" PRIu64
					" is listed but the server did not send it; "
					"left for the next poll",
					r->mb->label, msgs[k].uid);
				r->missing = true;
			}
		}
	}
	free(msgs);
	return rc;
}

/*
 * Fetches and stores batch b.  Batched: in one transaction (dc_store's batch
 * mode), committed at the end, also when the fetch stopped early (what was
 * stored is kept); when the commit fails nothing of the batch is done, and
 * *replay says when the server rejected a value of it (the batch is then
 * stored again report by report, where only that report is rejected).  Not
 * batched: one transaction per report.  Slots that are done are committed.
 */
static dc_code
fetch_batch(mb_run *r, size_t b, bool batched, bool *replay, dc_err *err)
{
	const dc_imap_msg *msgs = r->p->msgs + r->p->start[b];
	size_t n = r->p->count[b];
	uint64_t *want = malloc((n + 1) * sizeof(*want));
	size_t n_want = 0;
	dc_code rc = DC_OK, rc2;
	dc_err err2;

	*replay = false;
	r->missing = false;
	if (want == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	clear_slots(r);
	for (size_t i = 0; i < n; i++) {
		r->slots[i] = (slot){ .uid = msgs[i].uid, .size = msgs[i].size };
		r->n_slots++;
	}
	if (batched && (rc = dc_store_batch_begin(r->st, err)) != DC_OK) {
		free(want);
		return rc;
	}
	/* too big by RFC822.SIZE: rejected without fetching */
	for (size_t i = 0; i < n && rc == DC_OK; i++) {
		if (msgs[i].size > r->cfg->limits.max_message_bytes)
			rc = handle_message(r, &r->slots[i], NULL, (size_t)msgs[i].size, err);
		else
			want[n_want++] = msgs[i].uid;
	}
	if (rc == DC_OK && n_want > 0)
		rc = dc_imap_fetch(r->im, want, n_want, on_body, r, err);
	if (rc == DC_OK && n_want > 0)
		rc = check_missing(r, err);
	free(want);
	if (!batched)
		return rc;
	dc_err_clear(&err2);
	rc2 = dc_store_batch_commit(r->st, on_duplicate, r, &err2);
	if (rc2 == DC_OK)
		progressed(r->p->ig);
	if (rc2 != DC_OK) {
		for (size_t i = 0; i < r->n_slots; i++)
			r->slots[i].done = false;
		*replay = rc2 == DC_ESCHEMA;
		if (rc == DC_OK || *replay) {
			rc = rc2;
			*err = err2;
		}
	}
	return rc;
}

/* Fetches, stores, acts on and records batch b. */
static dc_code
run_batch(mb_run *r, size_t b, dc_err *err)
{
	bool acted = false, replay;
	dc_code rc, rc2;
	dc_err err2;

	rc = fetch_batch(r, b, true, &replay, err);
	if (replay) {
		say(r->p->ig, DC_INGEST_WARN,
			"mailbox %s: UIDs %" PRIu64 " to %" PRIu64 ": %s; storing them again one report "
			"at a time",
			r->mb->label, r->slots[0].uid, r->slots[r->n_slots - 1].uid, dc_err_text(err));
		dc_err_clear(err);
		rc = fetch_batch(r, b, false, &replay, err);
	}
	count_slots(r);
	/* act on what was committed, even when the batch stopped early */
	dc_err_clear(&err2);
	if (!dc_imap_broken(r->im)) {
		rc2 = act_on_batch(r, rc == DC_OK ? err : &err2);
		acted = rc2 == DC_OK;
		if (rc == DC_OK)
			rc = rc2;
		else if (rc2 != DC_OK)
			say(r->p->ig, DC_INGEST_WARN, "mailbox %s: %s", r->mb->label, dc_err_text(&err2));
	}
	if (acted)
		progressed(r->p->ig);
	rc2 = record_batch(r, b, acted, rc == DC_OK && !r->missing, rc == DC_OK ? err : &err2);
	if (rc2 == DC_OK)
		progressed(r->p->ig);
	if (rc == DC_OK)
		rc = rc2;
	else if (rc2 != DC_OK && rc != DC_EDB && rc != DC_EDBREFUSED)
		say(r->p->ig, DC_INGEST_WARN, "mailbox %s: %s", r->mb->label, dc_err_text(&err2));
	return rc;
}

/* Takes batches until none is left or the pool stops; the first error stops it. */
static void
work(mb_run *r)
{
	pool *p = r->p;

	for (;;) {
		dc_err err;
		dc_code rc;
		size_t b;

		pthread_mutex_lock(&p->mu);
		if (p->abort || stopping(p->ig) || p->next == p->n_batches) {
			pthread_mutex_unlock(&p->mu);
			return;
		}
		b = p->next++;
		pthread_mutex_unlock(&p->mu);
		dc_err_clear(&err);
		rc = run_batch(r, b, &err);
		/* the rollups of what is committed so far, while the other
		 * connections go on (the rest after the listing) */
		if (rc == DC_OK && (b + 1) % ROLLUP_BATCHES == 0) {
			rc = dc_store_rollup_pending(r->st, NULL, &err);
			if (rc == DC_OK)
				progressed(p->ig);
		}
		if (rc == DC_OK && stopping(p->ig))
			rc = dc_err_set(&err, DC_EINTERRUPTED, "stopped by a signal");
		if (rc != DC_OK) {
			pthread_mutex_lock(&p->mu);
			if (p->rc == DC_OK) {
				p->rc = rc;
				p->err = err;
			}
			p->abort = true;
			pthread_mutex_unlock(&p->mu);
			return;
		}
	}
}

/* Prepares a worker on store st (borrowed) for pool p; DC_ENOMEM. */
static dc_code
run_init(mb_run *r, pool *p, dc_store *st, dc_err *err)
{
	memset(r, 0, sizeof(*r));
	r->p = p;
	r->cfg = p->cfg;
	r->mb = p->mb;
	r->st = st;
	r->store_cb = dc_store_callbacks(st);
	r->cb = r->store_cb;
	r->cb.failure = on_failure;
	r->cb.failure_ctx = r;
	r->cb.message = on_message;
	r->cb.message_ctx = r;
	r->cb.sink = (dc_sink){ .ctx = r,
		.report_begin = on_report_begin,
		.record = on_record,
		.report_end = on_report_end,
		.report_abort = on_report_abort,
		.tls_report = on_tls_report,
		.failure_report = on_failure_report };
	r->slots = calloc(BATCH_MESSAGES, sizeof(*r->slots));
	if (r->slots == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	return DC_OK;
}

/* Frees what run_init allocated (not the session or the store). */
static void
run_clear(mb_run *r)
{
	clear_slots(r);
	free(r->slots);
	r->slots = NULL;
}

/* An extra connection: its own login, SELECT and database connection. */
typedef struct extra {
	pthread_t thread;
	bool started;
	pool *p;
	int n;
	mb_run r;
} extra;

/* Thread of an extra connection: logs in, selects, takes batches; always returns NULL. */
static void *
extra_main(void *arg)
{
	extra *x = arg;
	pool *p = x->p;
	dc_imap_opts o = {
		.url = p->mb->url,
		.user = p->mb->user,
		.ca_file = p->mb->ca_file,
		.tls_none = p->mb->tls == DC_TLS_NONE,
		.timeout_ms = IMAP_TIMEOUT_MS,
		.max_message_bytes = p->cfg->limits.max_message_bytes,
		.password = p->bearer ? NULL : p->mb->password,
		.bearer = p->bearer,
		.progress = p->ig->progress,
		.progress_ctx = p->ig->progress_ctx,
	};
	dc_imap *im = NULL;
	dc_store *st = NULL;
	dc_imap_folder_info fi;
	sigset_t all;
	dc_err err;
	dc_code rc;

	sigfillset(&all); /* signals go to the main thread */
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	dc_err_clear(&err);
	rc = dc_imap_open(&o, &im, &err);
	if (rc == DC_OK) {
		progressed(p->ig);
		rc = dc_imap_select(im, p->folder, &fi, &err);
	}
	if (rc == DC_OK && fi.uidvalidity != (uint64_t)p->state.uidvalidity)
		rc = dc_err_set(&err, DC_EIMAP, "UIDVALIDITY changed during the poll");
	if (rc == DC_OK)
		rc = dc_ingest_open_store(p->cfg, &st, &err);
	if (rc == DC_OK)
		progressed(p->ig);
	if (rc == DC_OK)
		rc = run_init(&x->r, p, st, &err);
	if (rc == DC_OK) {
		x->r.im = im;
		work(&x->r);
	} else {
		say(p->ig, DC_INGEST_WARN, "mailbox %s: connection %d not used: %s", p->mb->label, x->n,
			dc_err_text(&err));
	}
	dc_imap_free(im);
	x->r.im = NULL;
	dc_store_free(st);
	return NULL;
}

/* Adds b to a. */
void
dc_ingest_kinds(char *buf, size_t cap, uint64_t tls_reports, uint64_t failure_reports)
{
	int n = 0;

	buf[0] = '\0';
	if (tls_reports > 0)
		n = snprintf(buf, cap, ", %" PRIu64 " TLS reports", tls_reports);
	if (failure_reports > 0 && n >= 0 && (size_t)n < cap)
		snprintf(buf + n, cap - (size_t)n, ", %" PRIu64 " failure reports", failure_reports);
}

static void
totals_add(totals *a, const totals *b)
{
	a->messages += b->messages;
	a->stored += b->stored;
	a->rejected += b->rejected;
	a->reports += b->reports;
	a->duplicates += b->duplicates;
	a->failures += b->failures;
	a->dup_messages += b->dup_messages;
	a->records += b->records;
	a->tls_reports += b->tls_reports;
	a->failure_reports += b->failure_reports;
}

/*
 * Stores the n listed messages msgs with up to the mailbox's `connections`:
 * this thread's (r, with its IMAP session and store) and extra ones.
 */
static dc_code
run_listing(mb_run *r, pool *p, const dc_imap_msg *msgs, size_t n, dc_err *err)
{
	extra *x = NULL;
	size_t n_extra = 0, per, conns;
	dc_code rc = DC_OK;

	p->msgs = msgs;
	p->n_batches = p->next = 0;
	p->abort = false;
	p->rc = DC_OK;
	p->start = calloc(n, sizeof(*p->start));
	p->count = calloc(n, sizeof(*p->count));
	p->upto = calloc(n, sizeof(*p->upto));
	p->final = calloc(n, sizeof(*p->final));
	p->complete = calloc(n, sizeof(*p->complete));
	if (!p->start || !p->count || !p->upto || !p->final || !p->complete) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	/* batches small enough that every connection gets several */
	conns = (size_t)p->mb->connections;
	per = n / (conns * 4);
	per = per < BATCH_MIN ? BATCH_MIN : per > BATCH_MESSAGES ? BATCH_MESSAGES : per;
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		uint64_t bytes = 0;

		while (i + k < n && k < per && (k == 0 || bytes + msgs[i + k].size <= BATCH_BYTES))
			bytes += msgs[i + k++].size;
		p->start[p->n_batches] = i;
		p->count[p->n_batches++] = k;
		i += k;
	}
	n_extra = p->n_batches < conns ? p->n_batches - 1 : conns - 1;
	if (n_extra > 0 && (x = calloc(n_extra, sizeof(*x))) == NULL)
		n_extra = 0;
	for (size_t i = 0; i < n_extra; i++) {
		x[i].p = p;
		x[i].n = (int)i + 2;
		x[i].started = pthread_create(&x[i].thread, NULL, extra_main, &x[i]) == 0;
	}
	work(r);
	for (size_t i = 0; i < n_extra; i++) {
		if (x[i].started)
			pthread_join(x[i].thread, NULL);
		totals_add(&r->t, &x[i].r.t);
		run_clear(&x[i].r);
	}
	if (p->rc != DC_OK) {
		rc = p->rc;
		if (err != NULL)
			*err = p->err;
	}
	pthread_mutex_lock(&p->mu);
	p->state.last_uid = pool_last_uid(p);
	pthread_mutex_unlock(&p->mu);
out:
	free(x);
	free(p->start);
	free(p->count);
	free(p->upto);
	free(p->final);
	free(p->complete);
	p->start = p->count = NULL;
	p->upto = NULL;
	p->final = p->complete = NULL;
	return rc;
}

/*
 * Adds the reports this poll stored to the daily rollups (sql/007).  rc is
 * the listing's outcome: a failure here is returned only when it was DC_OK
 * (else logged); the reports wait for the next call either way.
 */
static dc_code
rollup_pending(dc_ingest *ig, dc_store *st, dc_code rc, dc_err *err)
{
	const dc_mailbox_config *mb = ig->mb;
	dc_err e2;

	if (dc_store_rollup_pending(st, NULL, &e2) != DC_OK) {
		if (rc == DC_OK) {
			*err = e2;
			return e2.code;
		}
		say(ig, DC_INGEST_WARN, "mailbox %s: %s", mb->label, dc_err_text(&e2));
	}
	return rc;
}

/* Logs in, with the cached XOAUTH2 token or a fresh one when it was refused. */
static dc_code
connect_mailbox(dc_ingest *ig, dc_imap **im, dc_err *err)
{
	const dc_config *cfg = ig->cfg;
	const dc_mailbox_config *mb = ig->mb;
	dc_imap_opts o = {
		.url = mb->url,
		.user = mb->user,
		.ca_file = mb->ca_file,
		.tls_none = mb->tls == DC_TLS_NONE,
		.timeout_ms = IMAP_TIMEOUT_MS,
		.max_message_bytes = cfg->limits.max_message_bytes,
		.progress = ig->progress,
		.progress_ctx = ig->progress_ctx,
	};
	bool fresh = false;
	dc_code rc;

	if (mb->oauth2_token_command == NULL) {
		o.password = mb->password;
		return dc_imap_open(&o, im, err);
	}
	for (;;) {
		if (ig->token == NULL) {
			rc = dc_oauth2_token(mb->oauth2_token_command, &ig->token, err);
			if (rc != DC_OK)
				return rc;
			fresh = true;
		}
		o.bearer = ig->token;
		rc = dc_imap_open(&o, im, err);
		if (rc != DC_EAUTH || fresh)
			return rc;
		say(ig, DC_INGEST_INFO, "mailbox %s: XOAUTH2 token refused; fetching a new one", mb->label);
		explicit_bzero(ig->token, strlen(ig->token));
		free(ig->token);
		ig->token = NULL;
	}
}

/* ---- the API -------------------------------------------------------------------- */

dc_code
dc_ingest_run(dc_ingest *ig, dc_store *st, dc_ingest_totals *sum, dc_err *err)
{
	const dc_mailbox_config *mb = ig->mb;
	pool p = { .ig = ig, .cfg = ig->cfg, .mb = mb };
	mb_run r = { 0 };
	dc_imap_url u = { 0 };
	dc_imap_folder_info fi;
	dc_imap_msg *msgs = NULL;
	char *url = NULL;
	bool have_state = false;
	struct timespec t0, started;
	dc_code rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_REALTIME, &started);
	pthread_mutex_init(&p.mu, NULL);
	rc = run_init(&r, &p, st, err);
	if (rc == DC_OK)
		rc = dc_imap_url_parse(mb->url, &u, err);
	if (rc != DC_OK)
		goto out;
	p.folder = u.folder;
	url = canonical_url(&u);
	if (url == NULL) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	/* the months ahead have their partitions before the first batch (the
	 * batches' rows of other months wait in the DEFAULT partition) */
	if ((rc = dc_store_partitions(st, err)) != DC_OK)
		goto out;
	progressed(ig);
	rc = connect_mailbox(ig, &r.im, err);
	if (rc == DC_OK) {
		progressed(ig); /* logged in */
		rc = dc_imap_select(r.im, u.folder, &fi, err);
	}
	if (rc == DC_OK) {
		progressed(ig); /* the folder selected */
		rc = dc_mailbox_begin(st, mb->label, url, mb->user, (int64_t)fi.uidvalidity, &p.state, err);
	}
	if (rc != DC_OK)
		goto out;
	progressed(ig);
	have_state = true;
	p.bearer = ig->token;
	if (p.state.old_uidvalidity >= 0 && p.state.old_uidvalidity != p.state.uidvalidity)
		say(ig, DC_INGEST_WARN,
			"mailbox %s: UIDVALIDITY of %s changed from %" PRId64 " to %" PRId64
			": reading the whole folder again (reports already stored count as duplicates)",
			mb->label, u.folder, p.state.old_uidvalidity, p.state.uidvalidity);
	say(ig, DC_INGEST_DEBUG,
		"mailbox %s: %s holds %" PRIu64 " messages, UIDVALIDITY %" PRIu64 ", last UID "
		"handled %" PRId64,
		mb->label, u.folder, fi.exists, fi.uidvalidity, p.state.last_uid);

	for (uint64_t from = (uint64_t)p.state.last_uid + 1;;) {
		size_t n = 0;

		free(msgs);
		msgs = NULL;
		/* messages arriving during this poll (UID >= UIDNEXT) wait for the next one */
		rc = dc_imap_list(r.im, from, fi.uidnext, DC_MAX_IMAP_LIST, &msgs, &n, err);
		if (rc != DC_OK || n == 0)
			break;
		progressed(ig);
		rc = run_listing(&r, &p, msgs, n, err);
		if (rc != DC_EDB && rc != DC_EDBREFUSED && rc != DC_ENOMEM)
			rc = rollup_pending(ig, st, rc, err);
		if (rc == DC_OK)
			progressed(ig);
		if (rc != DC_OK || n < DC_MAX_IMAP_LIST)
			break;
		from = msgs[n - 1].uid + 1;
	}
out:
	if (r.t.messages > 0 || rc == DC_OK) {
		char kinds[80];

		dc_ingest_kinds(kinds, sizeof(kinds), r.t.tls_reports, r.t.failure_reports);
		say(ig, DC_INGEST_INFO,
			"mailbox %s: %" PRIu64 " messages: %" PRIu64 " stored (%" PRIu64 " reports, %" PRIu64
			" duplicates%s), %" PRIu64 " rejected (%" PRIu64 " failures) in %.2f s",
			mb->label, r.t.messages, r.t.stored, r.t.reports, r.t.duplicates, kinds, r.t.rejected,
			r.t.failures, seconds_since(&t0));
	}
	/* the poll's end in the run log and the mailbox's status, unless the
	 * database is away (or memory: the statement would fail too); a poll
	 * stopped by a signal is logged once it has a mailbox row */
	if (rc != DC_EDB && rc != DC_EDBREFUSED && rc != DC_ENOMEM && (rc != DC_EINTERRUPTED || have_state)) {
		dc_err e2;
		dc_mailbox_poll mp = { .label = mb->label,
			.started_at = (double)started.tv_sec + started.tv_nsec / 1e9,
			.rc = rc,
			.error = rc == DC_OK ? NULL : dc_err_text(err),
			.stored = r.t.stored - r.t.dup_messages,
			.duplicate = r.t.dup_messages,
			.rejected = r.t.rejected,
			.reports = r.t.reports,
			.records = r.t.records };
		dc_code rc2 = have_state        ? dc_mailbox_finish(st, p.state.id, &mp, &e2) :
			url && rc != DC_ECONFIG ? dc_mailbox_fail(st, url, mb->user, &mp, &e2) :
						  DC_OK;
		if (rc2 != DC_OK) {
			say(ig, DC_INGEST_WARN, "mailbox %s: %s", mb->label, dc_err_text(&e2));
			if (rc == DC_OK) {
				rc = rc2;
				*err = e2;
			}
		}
	}
	totals_add(sum, &r.t);
	run_clear(&r);
	pthread_mutex_destroy(&p.mu);
	free(msgs);
	free(url);
	dc_imap_url_clear(&u);
	dc_imap_free(r.im);
	return rc;
}

dc_code
dc_ingest_new(const dc_ingest_opts *o, dc_ingest **out, dc_err *err)
{
	dc_ingest *ig = calloc(1, sizeof(*ig));

	*out = NULL;
	if (ig == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	ig->cfg = o->cfg;
	ig->mb = o->mb;
	ig->stop = o->stop;
	ig->log = o->log;
	ig->log_ctx = o->log_ctx;
	ig->log_level = o->log_level;
	ig->progress = o->progress;
	ig->progress_ctx = o->progress_ctx;
	*out = ig;
	return DC_OK;
}

void
dc_ingest_free(dc_ingest *ig)
{
	if (ig == NULL)
		return;
	if (ig->token != NULL) {
		explicit_bzero(ig->token, strlen(ig->token));
		free(ig->token);
	}
	free(ig);
}

dc_code
dc_ingest_probe(dc_ingest *ig, dc_ingest_probe_info *info, dc_err *err)
{
	dc_imap *im = NULL;
	dc_imap_url u = { 0 };
	dc_imap_folder_info fi;
	dc_code rc;

	memset(info, 0, sizeof(*info));
	rc = dc_imap_url_parse(ig->mb->url, &u, err);
	if (rc == DC_OK)
		rc = connect_mailbox(ig, &im, err);
	if (rc == DC_OK)
		rc = dc_imap_select(im, u.folder, &fi, err);
	if (rc == DC_OK && (info->folder = strdup(u.folder)) == NULL)
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
	if (rc == DC_OK) {
		info->exists = fi.exists;
		info->move = dc_imap_has_capability(im, "MOVE");
	}
	dc_imap_free(im);
	dc_imap_url_clear(&u);
	return rc;
}

/*
 * dc_poll.c - the `poll` command and the collector service (SPEC sections 4
 * and 7), and check-config's IMAP probe.
 *
 * One poll of a mailbox: log in (dc_imap), SELECT the folder, compare its
 * UIDVALIDITY with dmarc.mailboxes (dc_mailbox), list the messages above the
 * last UID handled, then in batches: fetch the bodies with BODY.PEEK[] (no
 * \Seen), hand each to dc_extract into dc_store, the whole batch in one
 * transaction (dc_store's batch mode; if the server refuses a value of it,
 * the batch is stored again one transaction per report), COMMIT, and only
 * then move the batch's stored messages to archive_folder (or flag them
 * \Seen, or delete them: `after`) and its rejected ones to invalid_folder,
 * and record the batch's outcomes and the new last UID.  A crash anywhere
 * repeats at most the current batch: nothing of it was committed, or its
 * committed reports come back as duplicates (the unique key) and its
 * messages are moved then.  After each listing the stored reports are added
 * to the daily rollups in one go (dmarc.rollup_pending, sql/007).
 *
 * The service (`poll` without --once) polls every mailbox each `interval`
 * seconds; a mailbox whose poll failed (IMAP, TLS, login, database) is tried
 * again after a backoff of 5 s doubling to 5 min.  SIGTERM and SIGINT finish
 * the message in hand (and its batch's moves) and exit 0; SIGHUP reloads the
 * configuration between polls.  After a poll that stored reports, PTR names
 * are resolved (dc_resolve).
 *
 * This file and main.c are the program: it logs and keeps the signal flags
 * in process-wide variables; the modules it calls do neither.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dc_commands.h"
#include "dc_config.h"
#include "dc_exit.h"
#include "dc_extract.h"
#include "dc_imap.h"
#include "dc_log.h"
#include "dc_mailbox.h"
#include "dc_pg.h"
#include "dc_resolve.h"
#include "dc_store.h"

#define BATCH_MESSAGES  200                  /* at most this many messages fetched, stored and moved together */
#define ROLLUP_BATCHES  10                   /* batches between additions to the daily rollups */
#define BATCH_MIN       20                   /* ... and at least this many (when there are) */
#define BATCH_BYTES     (64ULL * 1024 * 1024) /* ... or this many bytes (RFC822.SIZE) */
#define BACKOFF_MIN     5                    /* seconds after the first failure */
#define BACKOFF_MAX     300
#define IMAP_TIMEOUT_MS 60000L

/* ---- signals: the service loop's process-wide state ---------------------- */

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_reload;
static int g_wake[2] = { -1, -1 };           /* self-pipe: wakes the sleep between polls */

/* Signal handler: sets the flag and wakes the sleep (async-signal-safe only). */
static void
on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP)
		g_reload = 1;
	else
		g_stop = 1;
	if (g_wake[1] >= 0)
		(void)!write(g_wake[1], "", 1);
	errno = saved;
}

typedef struct saved_signals {
	struct sigaction term, intr, hup, pipe;
} saved_signals;

/* Installs the handlers for TERM, INT and HUP, ignores PIPE; old gets the previous ones. */
static void
signals_install(saved_signals *old)
{
	struct sigaction sa;

	g_stop = g_reload = 0;
	if (g_wake[0] < 0 && pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0)
		g_wake[0] = g_wake[1] = -1;          /* sleeps then just run their time */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, &old->term);
	sigaction(SIGINT, &sa, &old->intr);
	sigaction(SIGHUP, &sa, &old->hup);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old->pipe);
}

/* Puts back the handlers of signals_install and closes the self-pipe. */
static void
signals_restore(const saved_signals *old)
{
	sigaction(SIGTERM, &old->term, NULL);
	sigaction(SIGINT, &old->intr, NULL);
	sigaction(SIGHUP, &old->hup, NULL);
	sigaction(SIGPIPE, &old->pipe, NULL);
	for (int i = 0; i < 2; i++) {
		if (g_wake[i] >= 0)
			close(g_wake[i]);
		g_wake[i] = -1;
	}
}

/* Sleeps until the monotonic time deadline, or until a signal arrives. */
static void
sleep_until(time_t deadline)
{
	while (!g_stop && !g_reload) {
		struct timespec now;
		char drain[64];

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec >= deadline)
			return;
		long ms = (long)(deadline - now.tv_sec) * 1000;
		if (g_wake[0] >= 0) {
			struct pollfd p = { .fd = g_wake[0], .events = POLLIN };
			if (poll(&p, 1, ms > 60000 ? 60000 : (int)ms) > 0)
				while (read(g_wake[0], drain, sizeof(drain)) > 0)
					;
		} else {
			sleep(1);
		}
	}
}

/* Returns the monotonic clock in seconds. */
static time_t
now_mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

/* Returns the seconds elapsed since t0 (monotonic). */
static double
seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- helpers --------------------------------------------------------------- */

/* Returns the Message-ID field of the message's header (unfolded, trimmed,
 * printable ASCII) in a new string, or NULL when there is none. */
static char *
header_message_id(const uint8_t *data, size_t len)
{
	const char *p = (const char *)data, *end;
	char buf[DC_MAX_MESSAGE_ID + 1];
	size_t n = 0;

	end = p + (len > DC_MAX_HEADER_SCAN ? DC_MAX_HEADER_SCAN : len);
	while (p < end && *p != '\n' && !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (eol == NULL)
			eol = end;
		if (eol - p > 11 && strncasecmp(p, "Message-ID:", 11) == 0) {
			const char *v = p + 11;

			for (;;) {
				for (; v < eol && n < DC_MAX_MESSAGE_ID; v++)
					if (*v > ' ' && *v <= '~')
						buf[n++] = *v;
				if (eol + 1 >= end || (eol[1] != ' ' && eol[1] != '\t'))
					break;
				v = eol + 1;
				eol = memchr(v, '\n', (size_t)(end - v));
				if (eol == NULL)
					eol = end;
			}
			return n > 0 ? strndup(buf, n) : NULL;
		}
		p = eol + 1;
	}
	return NULL;
}

/*
 * Runs cmd through /bin/sh and returns the first line of its standard output
 * (trimmed) as a new string in *token.  Returns DC_EAUTH when the command
 * fails or prints nothing (the login cannot happen: exit status 2), but
 * DC_EIMAP (75, try again later) when it exits with 75 (EX_TEMPFAIL, by
 * sysexits.h: its token service could not be reached) or is killed by a
 * signal; DC_ECONFIG when it cannot be started; DC_ENOMEM.
 */
static dc_code
run_token_command(const char *cmd, char **token, dc_err *err)
{
	char *buf = malloc(DC_MAX_OAUTH2_TOKEN + 1);
	size_t n = 0;
	FILE *f;
	int status;
	dc_code rc = DC_OK;

	*token = NULL;
	if (buf == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	f = popen(cmd, "r");
	if (f == NULL) {
		rc = dc_err_set(err, DC_ECONFIG, "oauth2_token_command could not be started: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		size_t got = fread(buf + n, 1, DC_MAX_OAUTH2_TOKEN - n, f);
		if (got == 0)
			break;
		n += got;
		if (n == DC_MAX_OAUTH2_TOKEN) {          /* read the rest so the command is not killed by SIGPIPE */
			char sink[512];
			while (fread(sink, 1, sizeof(sink), f) > 0)
				;
			break;
		}
	}
	buf[n] = '\0';
	status = pclose(f);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		bool later = status != -1 && (!WIFEXITED(status) || WEXITSTATUS(status) == DC_EXIT_TEMPFAIL);

		rc = dc_err_set(err, later ? DC_EIMAP : DC_EAUTH, "oauth2_token_command failed (%s %d)",
			WIFEXITED(status) ? "exit status" : "signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		goto out;
	}
	{
		char *s = buf + strspn(buf, " \t\r\n");
		size_t len = strcspn(s, "\r\n");

		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0) {
			rc = dc_err_set(err, DC_EAUTH, "oauth2_token_command printed no token");
			goto out;
		}
		*token = strndup(s, len);
		if (*token == NULL)
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
	}
out:
	if (buf != NULL) {
		explicit_bzero(buf, DC_MAX_OAUTH2_TOKEN + 1);
		free(buf);
	}
	return rc;
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

/* Checks what dc_config does not: the URL parses, tls = none only on loopback,
 * the folder names can be sent.  DC_ECONFIG with a reason. */
static dc_code
check_mailbox_config(const dc_mailbox_config *mb, dc_err *err)
{
	dc_imap_url u;
	dc_code rc = dc_imap_url_parse(mb->url, &u, err);
	const char *folders[3] = { mb->archive_folder, mb->invalid_folder, NULL };

	if (rc != DC_OK)
		return rc;
	if (mb->tls == DC_TLS_NONE && strcmp(u.scheme, "imap") == 0 && !u.loopback)
		rc = dc_err_set(err, DC_ECONFIG, "[mailbox %s]: tls = none is allowed only for a loopback "
			"server (localhost, 127.0.0.1, ::1), not %s", mb->label, u.host);
	folders[2] = u.folder;
	for (int i = 0; i < 3 && rc == DC_OK; i++) {
		char *q;

		if (folders[i] == NULL)
			continue;
		q = dc_imap_quote_folder(folders[i], '/', err);
		if (q == NULL)
			rc = err ? err->code : DC_ECONFIG;
		free(q);
	}
	dc_imap_url_clear(&u);
	return rc;
}

/*
 * Opens the store for polling (*out owned by the caller) with
 * synchronous_commit on for its session: a message is moved once its
 * reports are committed, so a commit must not be lost by a server crash
 * afterwards, whatever the server's default.  DC_EDB or DC_EDBREFUSED
 * (dc_pg.h) on failure.
 */
static dc_code
open_store(const char *conninfo, dc_store **out, dc_err *err)
{
	PGresult *res;
	dc_code rc = dc_store_open(conninfo, out, err);

	if (rc != DC_OK)
		return rc;
	res = PQexec(dc_store_conn(*out), "SET synchronous_commit = on");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = dc_pg_fail(dc_store_conn(*out), res, "SET synchronous_commit", err);
	PQclear(res);
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

/* Per-mailbox state the service keeps between polls. */
typedef struct mb_service {
	char *token;                 /* XOAUTH2 token, fetched again when refused */
	time_t next_due;             /* monotonic seconds */
	int backoff;                 /* seconds; 0 after a good poll */
} mb_service;

typedef struct totals {
	uint64_t messages, stored, rejected, reports, duplicates, failures;
} totals;

/* One message of the batch in hand. */
typedef struct slot {
	uint64_t uid, size;
	bool done, rejected;
	int reports, duplicates, failures;
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
	const dc_config *cfg;
	const dc_mailbox_config *mb;
	const char *folder;
	const char *bearer;          /* XOAUTH2 token for the extra connections */
	dc_mailbox_state state;      /* id, uidvalidity, last_uid before this listing */
	const dc_imap_msg *msgs;
	size_t *start, *count;       /* batch b is msgs[start[b] .. start[b] + count[b]) */
	uint64_t *upto;              /* highest UID batch b handled with all before it */
	bool *final, *complete;
	size_t n_batches, next;
	bool abort;
	dc_code rc;                  /* the first error */
	dc_err err;
} pool;

/* One connection's worker: its IMAP session, database connection and batch. */
typedef struct mb_run {
	pool *p;
	const dc_config *cfg;
	const dc_mailbox_config *mb;
	dc_store *st;
	dc_extract_cb store_cb;      /* the store's callbacks */
	dc_extract_cb cb;            /* the same, failures logged first */
	dc_imap *im;
	slot *slots;
	size_t n_slots;
	bool archive_ready, invalid_ready;
	bool missing;                /* a message of the batch not delivered but still listed */
	uint64_t cur_uid;
	totals t;
} mb_run;

/* dc_extract's failure callback: log the rejection, then let the store record it. */
static dc_code
on_failure(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	mb_run *r = ctx;

	dc_log_warn("mailbox %s: UID %" PRIu64 ": rejected%s%s (%s): %s", r->mb->label, r->cur_uid,
		unit && unit->name ? " " : "", unit && unit->name ? unit->name : "", stage, dc_err_text(why));
	return r->store_cb.failure(r->store_cb.failure_ctx, stage, why, unit, err);
}

/* Records a whole-message rejection found here (too big, no report at all). */
static dc_code
reject_message(mb_run *r, slot *s, const char *stage, const char *reason, const uint8_t *data,
	size_t len, dc_err *err)
{
	dc_log_warn("mailbox %s: UID %" PRIu64 ": rejected (%s): %s", r->mb->label, s->uid, stage, reason);
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
	free(s->message_id);
	s->message_id = data ? header_message_id(data, len) : NULL;
	o = (dc_origin){ .mailbox = r->mb->label, .uidvalidity = r->p->state.uidvalidity,
		.uid = (int64_t)s->uid, .message_id = s->message_id, .file_name = NULL };
	rc = dc_store_set_origin(r->st, &o, err);
	if (rc != DC_OK)
		return rc;
	s->reports = s->duplicates = s->failures = 0;
	if (data == NULL) {
		char why[160];

		snprintf(why, sizeof(why), "message of %zu bytes is larger than max_message_bytes (%" PRIu64 ")",
			len, r->cfg->limits.max_message_bytes);
		rc = reject_message(r, s, "limits", why, NULL, 0, err);
	} else {
		rc = dc_extract(data, len, NULL, &r->cfg->limits, &r->cb, &xs, err);
		s->reports = (int)xs.reports;
		s->duplicates = (int)xs.duplicates;
		s->failures = (int)xs.failures;
		if (rc != DC_OK && !dc_extract_is_fatal(rc)) {
			/* not expected from dc_extract: reject the message rather than retry it forever */
			char why[DC_ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", dc_err_text(err));
			rc = reject_message(r, s, "extract", why, data, len, err);
		} else if (rc == DC_OK && xs.reports + xs.duplicates + xs.failures == 0) {
			rc = reject_message(r, s, "mime", "no aggregate report in the message", data, len, err);
		}
	}
	if (rc != DC_OK)
		return rc;
	s->done = true;
	s->rejected = s->failures > 0;
	return DC_OK;
}

/* dc_store_batch_commit's callback: a report stored from UID uid turned out
 * to be a duplicate when the batch was sent. */
static void
on_duplicate(void *ctx, int64_t uid, uint64_t records)
{
	mb_run *r = ctx;

	(void)records;
	for (size_t i = 0; i < r->n_slots; i++) {
		slot *s = &r->slots[i];

		if (s->uid == (uint64_t)uid && s->reports > 0) {
			s->reports--;
			s->duplicates++;
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
		r->t.reports += (uint64_t)s->reports;
		r->t.duplicates += (uint64_t)s->duplicates;
		r->t.failures += (uint64_t)s->failures;
		dc_log_debug("mailbox %s: UID %" PRIu64 " %s: %d reports stored, %d duplicates, %d rejected",
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

	while (lo < hi) {                      /* the slots are in UID order */
		size_t mid = lo + (hi - lo) / 2;

		if (r->slots[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == r->n_slots || r->slots[lo].uid != uid || r->slots[lo].done)
		return DC_OK;                  /* not one we asked for, or again */
	s = &r->slots[lo];
	if (g_stop)
		return dc_err_set(err, DC_EINTERRUPTED, "stopped by a signal");
	s->size = len;                         /* the literal's length, not RFC822.SIZE */
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
		case DC_AFTER_SEEN:
			rc = dc_imap_mark_seen(r->im, ok, n_ok, err);
			break;
		case DC_AFTER_DELETE:
			rc = dc_imap_delete(r->im, ok, n_ok, err);
			break;
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
			continue;                  /* gone from the server meanwhile, or not moved */
		out[n_out++] = (dc_mailbox_outcome){
			.uid = (int64_t)s->uid, .message_id = s->message_id, .size = (int64_t)s->size,
			.rejected = s->rejected, .reports = s->reports, .duplicates = s->duplicates,
			.failures = s->failures,
			.action = s->rejected ? move_bad : mb->after == DC_AFTER_MOVE ? move_ok :
				mb->after == DC_AFTER_SEEN ? "seen" : "delete",
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
		rc = dc_mailbox_record(dc_store_conn(r->st), &state, out, n_out, last, err);
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
				dc_log_warn("mailbox %s: UID %" PRIu64 " is listed but the server did not send it; "
					"left for the next poll", r->mb->label, msgs[k].uid);
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
		dc_log_warn("mailbox %s: UIDs %" PRIu64 " to %" PRIu64 ": %s; storing them again one report "
			"at a time", r->mb->label, r->slots[0].uid, r->slots[r->n_slots - 1].uid, dc_err_text(err));
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
			dc_log_warn("mailbox %s: %s", r->mb->label, dc_err_text(&err2));
	}
	rc2 = record_batch(r, b, acted, rc == DC_OK && !r->missing, rc == DC_OK ? err : &err2);
	if (rc == DC_OK)
		rc = rc2;
	else if (rc2 != DC_OK && rc != DC_EDB && rc != DC_EDBREFUSED)
		dc_log_warn("mailbox %s: %s", r->mb->label, dc_err_text(&err2));
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
		if (p->abort || g_stop || p->next == p->n_batches) {
			pthread_mutex_unlock(&p->mu);
			return;
		}
		b = p->next++;
		pthread_mutex_unlock(&p->mu);
		dc_err_clear(&err);
		rc = run_batch(r, b, &err);
		/* the rollups of what is committed so far, while the other
		 * connections go on (the rest after the listing) */
		if (rc == DC_OK && (b + 1) % ROLLUP_BATCHES == 0)
			rc = dc_store_rollup_pending(r->st, NULL, &err);
		if (rc == DC_OK && g_stop)
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
		.url = p->mb->url, .user = p->mb->user, .ca_file = p->mb->ca_file,
		.tls_none = p->mb->tls == DC_TLS_NONE, .timeout_ms = IMAP_TIMEOUT_MS,
		.max_message_bytes = p->cfg->limits.max_message_bytes,
		.password = p->bearer ? NULL : p->mb->password, .bearer = p->bearer,
	};
	dc_imap *im = NULL;
	dc_store *st = NULL;
	dc_imap_folder_info fi;
	sigset_t all;
	dc_err err;
	dc_code rc;

	sigfillset(&all);                  /* signals go to the main thread */
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	dc_err_clear(&err);
	rc = dc_imap_open(&o, &im, &err);
	if (rc == DC_OK)
		rc = dc_imap_select(im, p->folder, &fi, &err);
	if (rc == DC_OK && fi.uidvalidity != (uint64_t)p->state.uidvalidity)
		rc = dc_err_set(&err, DC_EIMAP, "UIDVALIDITY changed during the poll");
	if (rc == DC_OK)
		rc = open_store(p->cfg->db_conninfo, &st, &err);
	if (rc == DC_OK)
		rc = run_init(&x->r, p, st, &err);
	if (rc == DC_OK) {
		x->r.im = im;
		work(&x->r);
	} else {
		dc_log_warn("mailbox %s: connection %d not used: %s", p->mb->label, x->n, dc_err_text(&err));
	}
	dc_imap_free(im);
	x->r.im = NULL;
	dc_store_free(st);
	return NULL;
}

/* Adds b to a. */
static void
totals_add(totals *a, const totals *b)
{
	a->messages += b->messages;
	a->stored += b->stored;
	a->rejected += b->rejected;
	a->reports += b->reports;
	a->duplicates += b->duplicates;
	a->failures += b->failures;
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
rollup_pending(const dc_mailbox_config *mb, dc_store *st, dc_code rc, dc_err *err)
{
	dc_err e2;

	if (dc_store_rollup_pending(st, NULL, &e2) != DC_OK) {
		if (rc == DC_OK) {
			*err = e2;
			return e2.code;
		}
		dc_log_warn("mailbox %s: %s", mb->label, dc_err_text(&e2));
	}
	return rc;
}

/* Logs in, with the cached XOAUTH2 token or a fresh one when it was refused. */
static dc_code
connect_mailbox(const dc_config *cfg, const dc_mailbox_config *mb, mb_service *svc, dc_imap **im,
	dc_err *err)
{
	dc_imap_opts o = {
		.url = mb->url, .user = mb->user, .ca_file = mb->ca_file,
		.tls_none = mb->tls == DC_TLS_NONE, .timeout_ms = IMAP_TIMEOUT_MS,
		.max_message_bytes = cfg->limits.max_message_bytes,
	};
	bool fresh = false;
	dc_code rc;

	if (mb->oauth2_token_command == NULL) {
		o.password = mb->password;
		return dc_imap_open(&o, im, err);
	}
	for (;;) {
		if (svc->token == NULL) {
			rc = run_token_command(mb->oauth2_token_command, &svc->token, err);
			if (rc != DC_OK)
				return rc;
			fresh = true;
		}
		o.bearer = svc->token;
		rc = dc_imap_open(&o, im, err);
		if (rc != DC_EAUTH || fresh)
			return rc;
		dc_log_info("mailbox %s: XOAUTH2 token refused; fetching a new one", mb->label);
		explicit_bzero(svc->token, strlen(svc->token));
		free(svc->token);
		svc->token = NULL;
	}
}

/*
 * Polls one mailbox into st.  Returns DC_OK, DC_EINTERRUPTED (stopped by a
 * signal after finishing its batches), or the error that stopped it.
 */
static dc_code
poll_mailbox(const dc_config *cfg, const dc_mailbox_config *mb, mb_service *svc, dc_store *st,
	totals *sum, dc_err *err)
{
	pool p = { .cfg = cfg, .mb = mb };
	mb_run r = { 0 };
	dc_imap_url u = { 0 };
	dc_imap_folder_info fi;
	dc_imap_msg *msgs = NULL;
	char *url = NULL;
	bool have_state = false;
	struct timespec t0;
	dc_code rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
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
	rc = connect_mailbox(cfg, mb, svc, &r.im, err);
	if (rc == DC_OK)
		rc = dc_imap_select(r.im, u.folder, &fi, err);
	if (rc == DC_OK)
		rc = dc_mailbox_begin(dc_store_conn(st), mb->label, url, mb->user, (int64_t)fi.uidvalidity,
			&p.state, err);
	if (rc != DC_OK)
		goto out;
	have_state = true;
	p.bearer = svc->token;
	if (p.state.old_uidvalidity >= 0 && p.state.old_uidvalidity != p.state.uidvalidity)
		dc_log_warn("mailbox %s: UIDVALIDITY of %s changed from %" PRId64 " to %" PRId64
			": reading the whole folder again (reports already stored count as duplicates)",
			mb->label, u.folder, p.state.old_uidvalidity, p.state.uidvalidity);
	dc_log_debug("mailbox %s: %s holds %" PRIu64 " messages, UIDVALIDITY %" PRIu64 ", last UID "
		"handled %" PRId64, mb->label, u.folder, fi.exists, fi.uidvalidity, p.state.last_uid);

	for (uint64_t from = (uint64_t)p.state.last_uid + 1;;) {
		size_t n = 0;

		free(msgs);
		msgs = NULL;
		/* messages arriving during this poll (UID >= UIDNEXT) wait for the next one */
		rc = dc_imap_list(r.im, from, fi.uidnext, DC_MAX_IMAP_LIST, &msgs, &n, err);
		if (rc != DC_OK || n == 0)
			break;
		rc = run_listing(&r, &p, msgs, n, err);
		if (rc != DC_EDB && rc != DC_EDBREFUSED && rc != DC_ENOMEM)
			rc = rollup_pending(mb, st, rc, err);
		if (rc != DC_OK || n < DC_MAX_IMAP_LIST)
			break;
		from = msgs[n - 1].uid + 1;
	}
out:
	if (r.t.messages > 0 || rc == DC_OK)
		dc_log_info("mailbox %s: %" PRIu64 " messages: %" PRIu64 " stored (%" PRIu64 " reports, %"
			PRIu64 " duplicates), %" PRIu64 " rejected (%" PRIu64 " failures) in %.2f s",
			mb->label, r.t.messages, r.t.stored, r.t.reports, r.t.duplicates, r.t.rejected,
			r.t.failures, seconds_since(&t0));
	if (rc != DC_EDB && rc != DC_EDBREFUSED && rc != DC_EINTERRUPTED && rc != DC_ENOMEM) {
		dc_err e2;
		const char *why = rc == DC_OK ? NULL : dc_err_text(err);
		dc_code rc2 = have_state ? dc_mailbox_finish(dc_store_conn(st), p.state.id, why, &e2)
			: url && rc != DC_ECONFIG ? dc_mailbox_fail(dc_store_conn(st), mb->label, url, mb->user, why, &e2)
			: DC_OK;
		if (rc2 != DC_OK) {
			dc_log_warn("mailbox %s: %s", mb->label, dc_err_text(&e2));
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

/* ---- the service ------------------------------------------------------------ */

typedef struct service {
	const char *config_path;
	const char *db_override;
	dc_config *cfg;              /* in use */
	dc_config *own_cfg;          /* a reloaded one, freed by us */
	mb_service *mbs;
	dc_store *st;
	bool once;
} service;

/* Frees the per-mailbox service state (wiping cached tokens). */
static void
mbs_free(service *s)
{
	if (s->mbs == NULL)
		return;
	for (size_t i = 0; i < s->cfg->n_mailboxes; i++) {
		if (s->mbs[i].token) {
			explicit_bzero(s->mbs[i].token, strlen(s->mbs[i].token));
			free(s->mbs[i].token);
		}
	}
	free(s->mbs);
	s->mbs = NULL;
}

/* Checks every mailbox of cfg; returns DC_EXIT_CONFIG (logged) or 0. */
static int
check_config(const dc_config *cfg)
{
	dc_err err;

	if (cfg->n_mailboxes == 0) {
		dc_log_error("poll: no [mailbox NAME] section in the configuration");
		return DC_EXIT_CONFIG;
	}
	for (size_t i = 0; i < cfg->n_mailboxes; i++) {
		dc_err_clear(&err);
		if (check_mailbox_config(&cfg->mailboxes[i], &err) != DC_OK) {
			dc_log_error("%s", dc_err_text(&err));
			return DC_EXIT_CONFIG;
		}
	}
	return 0;
}

/* SIGHUP: loads the configuration again; on any error keeps the one in use (logged). */
static void
reload(service *s)
{
	dc_config *cfg = NULL;
	dc_err err;

	dc_err_clear(&err);
	if (dc_config_load(s->config_path, &cfg, &err) != DC_OK) {
		dc_log_error("reload: %s; keeping the configuration in use", dc_err_text(&err));
		return;
	}
	if (s->db_override != NULL) {
		char *db = strdup(s->db_override);
		if (db == NULL) {
			dc_config_free(cfg);
			dc_log_error("reload: out of memory; keeping the configuration in use");
			return;
		}
		free(cfg->db_conninfo);
		cfg->db_conninfo = db;
	}
	if (check_config(cfg) != 0) {
		dc_config_free(cfg);
		dc_log_error("reload: keeping the configuration in use");
		return;
	}
	mb_service *mbs = calloc(cfg->n_mailboxes, sizeof(*mbs));
	if (mbs == NULL) {
		dc_config_free(cfg);
		dc_log_error("reload: out of memory; keeping the configuration in use");
		return;
	}
	{
		/* main.c hands a configured password to libpq as PGPASSWORD unless the
		 * environment had one; follow the file only where it came from the file */
		const char *cur = getenv("PGPASSWORD");
		bool from_file = cur == NULL || (s->cfg->db_password != NULL && strcmp(cur, s->cfg->db_password) == 0);

		if (from_file && cfg->db_password != NULL)
			setenv("PGPASSWORD", cfg->db_password, 1);
		else if (from_file && cur != NULL)
			unsetenv("PGPASSWORD");
	}
	mbs_free(s);
	dc_store_free(s->st);          /* the database may have changed */
	s->st = NULL;
	dc_config_free(s->own_cfg);
	s->own_cfg = s->cfg = cfg;
	s->mbs = mbs;
	dc_log_info("reload: %s: %zu mailbox%s, interval %d s", s->config_path ? s->config_path : "(no file)",
		cfg->n_mailboxes, cfg->n_mailboxes == 1 ? "" : "es", cfg->interval);
}

/* Resolves PTR names after a poll that stored reports; failures are logged only. */
static void
resolve_names(service *s)
{
	dc_resolve_opts o;
	dc_resolve_stats rs = { 0 };
	dc_err err;
	dc_code rc;

	dc_resolve_opts_from_config(&o, s->cfg);
	dc_err_clear(&err);
	rc = dc_resolve_run(s->st, &o, &rs, &err);
	if (rc != DC_OK) {
		dc_log_warn("resolve: %s", dc_err_text(&err));
		if (rc == DC_EDB || rc == DC_EDBREFUSED) {
			dc_store_free(s->st);
			s->st = NULL;
		}
		return;
	}
	if (rs.ips > 0)
		dc_log_info("resolve: %" PRIu64 " IPs looked up, %" PRIu64 " names (%" PRIu64
			" forward-confirmed), %" PRIu64 " without, %" PRIu64 " timeouts, %" PRIu64 " failures",
			rs.ips, rs.ok, rs.confirmed, rs.nxdomain, rs.timeout, rs.servfail + rs.error);
}

/* Sets a failed mailbox's next try after its backoff. */
static void
back_off(service *s, size_t i, const char *why)
{
	mb_service *m = &s->mbs[i];

	m->backoff = m->backoff ? m->backoff * 2 : BACKOFF_MIN;
	if (m->backoff > BACKOFF_MAX)
		m->backoff = BACKOFF_MAX;
	m->next_due = now_mono() + m->backoff;
	if (s->once)
		dc_log_error("mailbox %s: %s", s->cfg->mailboxes[i].label, why);
	else
		dc_log_error("mailbox %s: %s; trying again in %d s", s->cfg->mailboxes[i].label, why,
			m->backoff);
}

/* Polls every due mailbox once; returns the exit status of this round. */
static int
poll_round(service *s)
{
	totals sum = { 0 };
	int status = DC_EXIT_STORED;
	time_t now = now_mono();

	for (size_t i = 0; i < s->cfg->n_mailboxes && !g_stop; i++) {
		const dc_mailbox_config *mb = &s->cfg->mailboxes[i];
		dc_err err;
		dc_code rc;

		if (!s->once && s->mbs[i].next_due > now)
			continue;
		dc_err_clear(&err);
		if (s->st == NULL) {
			rc = open_store(s->cfg->db_conninfo, &s->st, &err);
			if (rc != DC_OK) {
				char why[DC_ERR_MSG_MAX + 32];
				snprintf(why, sizeof(why), "database: %s", dc_err_text(&err));
				for (size_t j = i; j < s->cfg->n_mailboxes; j++) {
					if (!s->once && s->mbs[j].next_due > now)
						continue;
					/* refused (login, privilege): an admin must act; retry slowly */
					if (dc_exit_for(rc) == DC_EXIT_CONFIG)
						s->mbs[j].backoff = BACKOFF_MAX;
					back_off(s, j, why);
				}
				status = dc_exit_worse(status, dc_exit_for(rc));
				break;
			}
		}
		rc = poll_mailbox(s->cfg, mb, &s->mbs[i], s->st, &sum, &err);
		switch (rc) {
		case DC_OK:
			s->mbs[i].backoff = 0;
			s->mbs[i].next_due = now_mono() + s->cfg->interval;
			break;
		case DC_EINTERRUPTED:
			break;
		case DC_ECONFIG:
			/* e.g. the schema was not migrated: an admin must act; retry slowly */
			s->mbs[i].backoff = BACKOFF_MAX;
			back_off(s, i, dc_err_text(&err));
			status = dc_exit_worse(status, DC_EXIT_CONFIG);
			break;
		case DC_EDB:
		case DC_EDBREFUSED: {
			char why[DC_ERR_MSG_MAX + 32];

			dc_store_free(s->st);
			s->st = NULL;
			snprintf(why, sizeof(why), "database: %s", dc_err_text(&err));
			if (rc == DC_EDBREFUSED)
				s->mbs[i].backoff = BACKOFF_MAX;
			back_off(s, i, why);
			status = dc_exit_worse(status, dc_exit_for(rc));
			break;
		}
		default:
			/* IMAP login or certificate refused (2), server away (75) ... */
			if (dc_exit_for(rc) == DC_EXIT_CONFIG)
				s->mbs[i].backoff = BACKOFF_MAX;
			back_off(s, i, dc_err_text(&err));
			status = dc_exit_worse(status, dc_exit_for(rc));
			break;
		}
	}
	if (sum.rejected > 0)
		status = dc_exit_worse(status, DC_EXIT_REJECTED);
	if (sum.reports > 0 && s->st != NULL && !g_stop)
		resolve_names(s);
	return status;
}

/* Returns the exit status; see dc_commands.h. */
int
dc_cmd_poll(const char *config_path, const char *db_override, dc_config *cfg, bool once)
{
	service s = { .config_path = config_path, .db_override = db_override, .cfg = cfg, .once = once };
	saved_signals old;
	int status;

	status = check_config(cfg);
	if (status != 0)
		return status;
	s.mbs = calloc(cfg->n_mailboxes, sizeof(*s.mbs));
	if (s.mbs == NULL) {
		dc_log_error("poll: out of memory");
		return DC_EXIT_TEMPFAIL;
	}
	signals_install(&old);
	if (!once)
		dc_log_info("service started: %zu mailbox%s, interval %d s", cfg->n_mailboxes,
			cfg->n_mailboxes == 1 ? "" : "es", cfg->interval);
	for (;;) {
		if (g_reload) {
			g_reload = 0;
			if (!once)
				reload(&s);
		}
		status = poll_round(&s);
		if (once || g_stop)
			break;
		time_t next = now_mono() + s.cfg->interval;
		for (size_t i = 0; i < s.cfg->n_mailboxes; i++)
			if (s.mbs[i].next_due < next)
				next = s.mbs[i].next_due;
		sleep_until(next);
		if (g_stop)
			break;
	}
	if (g_stop)
		dc_log_info("stopping on a signal");
	if (!once)
		status = DC_EXIT_STORED;
	signals_restore(&old);
	mbs_free(&s);
	dc_store_free(s.st);
	dc_config_free(s.own_cfg);
	return status;
}

/* ---- check-config ------------------------------------------------------------ */

/* Returns 0 when every mailbox can be logged in to and its folder selected,
 * else the worst of dc_exit_for's statuses (2: configuration, login,
 * certificate or folder refused; 75: a server away); see dc_commands.h. */
int
dc_check_imap(const dc_config *cfg)
{
	int status = 0;

	for (size_t i = 0; i < cfg->n_mailboxes; i++) {
		const dc_mailbox_config *mb = &cfg->mailboxes[i];
		mb_service svc = { 0 };
		dc_imap *im = NULL;
		dc_imap_url u = { 0 };
		dc_imap_folder_info fi;
		dc_err err;
		dc_code rc;

		dc_err_clear(&err);
		rc = check_mailbox_config(mb, &err);
		if (rc == DC_OK)
			rc = dc_imap_url_parse(mb->url, &u, &err);
		if (rc == DC_OK)
			rc = connect_mailbox(cfg, mb, &svc, &im, &err);
		if (rc == DC_OK)
			rc = dc_imap_select(im, u.folder, &fi, &err);
		if (rc == DC_OK) {
			dc_log_info("check-config: mailbox %s: logged in to %s as %s, %s holds %" PRIu64
				" messages (MOVE %s)", mb->label, mb->url, mb->user, u.folder, fi.exists,
				dc_imap_has_capability(im, "MOVE") ? "supported" : "missing: COPY + EXPUNGE");
		} else {
			dc_log_error("check-config: mailbox %s: %s", mb->label, dc_err_text(&err));
			status = dc_exit_worse(status, dc_exit_for(rc));
		}
		dc_imap_free(im);
		dc_imap_url_clear(&u);
		if (svc.token) {
			explicit_bzero(svc.token, strlen(svc.token));
			free(svc.token);
		}
	}
	return status;
}

/*
 * dc_notify.h - the service's messages to systemd (sd_notify(3), the unit's
 * Type=notify): READY=1 once the configuration is checked and the first poll
 * is about to start, a STATUS= line for `systemctl status` ("last poll
 * 12:00:03: 14 stored, 0 rejected; next at 12:05:03", the failing mailboxes
 * and why), RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 on
 * SIGTERM, and WATCHDOG=1 kicks while the service loop advances.
 *
 * The watchdog (WatchdogSec=, given to us as WATCHDOG_USEC) is kicked only
 * on progress: by dc_notify_progress, which the IMAP client and the ingest
 * step call at every step that advances a poll (each chunk received, each
 * message stored, each batch committed; see dc_ingest_progress_fn) and the
 * resolver as each lookup ends, and by the sleep between polls, which wakes
 * at least every half watchdog period to kick.  A poll stuck on a silent
 * server kicks nothing, so systemd restarts the service after WatchdogSec.
 * The kicks are rate-limited (dc_ratelimit, at most one per tenth of the
 * period, and one a second) because progress is reported thousands of
 * times a second during a fetch.
 *
 * Only the service (`poll` without --once) calls dc_notify_ready; until
 * then every function here does nothing, and sd_notify itself does nothing
 * when NOTIFY_SOCKET is unset (not under systemd).  dc_notify_progress is
 * thread-safe (the mailboxes' extra connections call it); the others are
 * for the service loop's thread.  Holds process-wide state: program/ only.
 */
#ifndef DC_NOTIFY_H
#define DC_NOTIFY_H

#include <stddef.h>
#include <time.h>

#include "dc_ingest.h"

/* READY=1 with "polling N mailboxes every I s"; the first call also reads
 * WATCHDOG_USEC (sd_watchdog_enabled) and turns the rest of this on.
 * Called again after a reload (with the configuration then in use). */
void dc_notify_ready(size_t n_mailboxes, int interval);

/* RELOADING=1: a SIGHUP reload begins (dc_notify_ready ends it). */
void dc_notify_reloading(void);

/* A mailbox's poll begins: kicks the watchdog, STATUS says which. */
void dc_notify_polling(const char *label);

/* A mailbox's poll failed with why (kept for the round's STATUS line). */
void dc_notify_failed(const char *label, const char *why);

/* The round of polls ended with totals sum (kept for the STATUS line). */
void dc_notify_round(const dc_ingest_totals *sum);

/* The loop sleeps for seconds until the next poll: STATUS "last poll ...;
 * next at HH:MM:SS". */
void dc_notify_waiting(time_t seconds);

/* STOPPING=1, once (a later call does nothing). */
void dc_notify_stopping(void);

/*
 * The service advanced: kicks the watchdog (rate-limited), and when
 * stop_flag (a const volatile sig_atomic_t *, may be NULL) is set sends
 * STOPPING=1 once, as soon as a poll in hand notices.  A
 * dc_ingest_progress_fn; thread-safe.
 */
void dc_notify_progress(void *stop_flag);

/* Returns ms, or less: the longest the sleep between polls may last
 * without a kick (half the watchdog period). */
int dc_notify_sleep_ms(int ms);

#endif

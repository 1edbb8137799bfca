/*
 * dc_notify.c - sd_notify for the service: READY, STATUS, RELOADING,
 * STOPPING and the progress-driven watchdog (see dc_notify.h).
 *
 * State: whether the service turned this on, the watchdog's period and its
 * rate limiter, and whether STOPPING=1 went out are atomics (the progress
 * kick runs on any thread); the STATUS line's parts (the round's time,
 * totals and failures) belong to the service loop's thread alone.
 *
 * A STATUS line is one line: text from elsewhere (a server's error message)
 * has its control characters replaced, and the line is capped at
 * STATUS_MAX bytes.  Nothing here fails the service: a message systemd
 * cannot be sent is logged once and otherwise ignored.
 */
#include "dc_notify.h"

#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "dc_log.h"
#include "dc_ratelimit.h"

#define STATUS_MAX   768     /* bytes of a STATUS line */
#define FAILURES_MAX 512     /* bytes of the round's failures in it */
#define KICK_GAP_MAX 1000000 /* µs: kicks at most once a second ... */
#define KICK_GAP_DIV 10      /* ... and once per tenth of the period */

static atomic_bool g_on;           /* dc_notify_ready was called */
static _Atomic uint64_t g_wd_usec; /* watchdog period; 0 = none */
static dc_ratelimit g_kick;
static atomic_bool g_stopping_sent;
static atomic_bool g_warned;

/* The service loop's thread only: the round in progress and the last one. */
static bool g_in_round;
static time_t g_round_at;               /* wall clock at the round's first poll */
static char g_failures[FAILURES_MAX];   /* "rua: why; other: why" */
static char g_last[STATUS_MAX];         /* "last poll 12:00:03: 14 stored, 0 rejected[; failures]" */
static char g_waiting[STATUS_MAX + 32]; /* the last dc_notify_waiting line sent */

/* Sends state to systemd; a failure is logged once. */
static void
notify_send(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0 && !atomic_exchange(&g_warned, true))
		dc_log_warn("sd_notify to $NOTIFY_SOCKET failed: %s (not reported again)", strerror(-r));
}

/* Microseconds of the monotonic clock. */
static int64_t
now_usec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Copies src into dst[0..cap) as one line: control characters become spaces. */
static void
one_line(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	for (; src[i] != '\0' && i + 1 < cap; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
	dst[i] = '\0';
}

/* Sends "STATUS=<text>" (text made one line), after the assignments in head
 * ("READY=1\n" ...; may be ""). */
static void
send_status(const char *head, const char *text)
{
	char line[STATUS_MAX], msg[STATUS_MAX + 64];

	one_line(line, sizeof(line), text);
	snprintf(msg, sizeof(msg), "%sSTATUS=%s", head, line);
	notify_send(msg);
}

/* Formats wall clock time t as HH:MM:SS (local time) into buf[9]. */
static void
clock_text(char buf[9], time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(buf, 9, "%H:%M:%S", &tm) == 0)
		snprintf(buf, 9, "--:--:--");
}

/* Starts a round at its first poll or failure: the failures start empty. */
static void
round_begin(void)
{
	if (g_in_round)
		return;
	g_in_round = true;
	g_round_at = time(NULL);
	g_failures[0] = '\0';
}

void
dc_notify_ready(size_t n_mailboxes, int interval)
{
	char status[128];

	if (!atomic_load(&g_on)) {
		uint64_t usec = 0;

		if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
			int64_t gap = (int64_t)(usec / KICK_GAP_DIV);

			dc_ratelimit_init(&g_kick, gap < KICK_GAP_MAX ? gap : KICK_GAP_MAX);
			atomic_store(&g_wd_usec, usec);
		}
		atomic_store(&g_on, true);
	}
	snprintf(status, sizeof(status), "polling %zu mailbox%s every %d s", n_mailboxes,
		n_mailboxes == 1 ? "" : "es", interval);
	send_status("READY=1\n", status);
	g_waiting[0] = '\0';
}

void
dc_notify_reloading(void)
{
	if (atomic_load(&g_on))
		send_status("RELOADING=1\n", "reloading the configuration");
}

void
dc_notify_polling(const char *label)
{
	char status[2 * STATUS_MAX];

	if (!atomic_load(&g_on))
		return;
	round_begin();
	dc_notify_progress(NULL);
	snprintf(status, sizeof(status), "polling mailbox %s%s%s", label, g_last[0] ? "; " : "", g_last);
	send_status("", status);
	g_waiting[0] = '\0';
}

void
dc_notify_failed(const char *label, const char *why)
{
	size_t len;

	if (!atomic_load(&g_on))
		return;
	round_begin();
	len = strlen(g_failures);
	snprintf(g_failures + len, sizeof(g_failures) - len, "%s%s: %s", len ? "; " : "", label, why);
}

void
dc_notify_round(const dc_ingest_totals *sum)
{
	char at[9];

	if (!atomic_load(&g_on) || !g_in_round)
		return; /* nothing was due: the last round's line stands */
	g_in_round = false;
	clock_text(at, g_round_at);
	snprintf(g_last, sizeof(g_last), "last poll %s: %" PRIu64 " stored, %" PRIu64 " rejected%s%s", at,
		sum->stored, sum->rejected, g_failures[0] ? "; failed: " : "", g_failures);
}

void
dc_notify_waiting(time_t seconds)
{
	char at[9], status[STATUS_MAX + 32];

	if (!atomic_load(&g_on))
		return;
	clock_text(at, time(NULL) + (seconds > 0 ? seconds : 0));
	snprintf(status, sizeof(status), "%s%snext at %s", g_last, g_last[0] ? "; " : "", at);
	/* the loop wakes each interval even while a mailbox backs off: the
	 * same line again is not sent again */
	if (strncmp(status, g_waiting, sizeof(g_waiting) - 1) == 0)
		return;
	snprintf(g_waiting, sizeof(g_waiting), "%s", status);
	send_status("", status);
}

void
dc_notify_stopping(void)
{
	if (atomic_load(&g_on) && !atomic_exchange(&g_stopping_sent, true))
		send_status("STOPPING=1\n", "stopping: finishing the message in hand");
}

void
dc_notify_progress(void *stop_flag)
{
	const volatile sig_atomic_t *stop = stop_flag;

	if (!atomic_load_explicit(&g_on, memory_order_relaxed))
		return;
	if (stop != NULL && *stop)
		dc_notify_stopping();
	if (atomic_load_explicit(&g_wd_usec, memory_order_relaxed) > 0 &&
		dc_ratelimit_take(&g_kick, now_usec()))
		notify_send("WATCHDOG=1");
}

int
dc_notify_sleep_ms(int ms)
{
	uint64_t half_ms = atomic_load(&g_wd_usec) / 2000;

	if (!atomic_load(&g_on) || half_ms == 0)
		return ms;
	return half_ms < (uint64_t)ms ? (int)half_ms : ms;
}

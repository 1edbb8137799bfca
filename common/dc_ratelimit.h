/*
 * dc_ratelimit.h - "at most once per gap", shared by threads without a lock.
 *
 * The service loop kicks systemd's watchdog each time the work advances:
 * every chunk an IMAP connection receives, every message stored, from the
 * main thread and the mailbox's extra connections alike.  Sending a datagram
 * for each would be thousands a second; dc_ratelimit_take lets one caller
 * through per gap and turns the rest away at the cost of one atomic load.
 * The state is one atomic timestamp: whoever moves it forward by a
 * compare-and-swap is the one let through, so two threads never both pass
 * in the same gap.
 *
 * The caller supplies the time (a clock counting up from 0 or more, in any
 * unit; the gap is in the same unit), which keeps this pure and testable.
 * It holds no global state: the caller owns the dc_ratelimit.
 */
#ifndef DC_RATELIMIT_H
#define DC_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct dc_ratelimit {
	_Atomic int64_t last; /* when the last caller was let through */
	int64_t gap;          /* at least this long between two of them */
} dc_ratelimit;

/* Initialises r: the first dc_ratelimit_take passes, then one per gap (gap >= 0). */
void dc_ratelimit_init(dc_ratelimit *r, int64_t gap);

/* True when now is at least gap after the last time it returned true (and
 * records now); false otherwise.  Thread-safe.  A now earlier than the last
 * one (another thread read the clock first) is turned away. */
bool dc_ratelimit_take(dc_ratelimit *r, int64_t now);

#endif

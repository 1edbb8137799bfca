/*
 * dc_metrics.h - what the service tells a monitor: Prometheus metrics on
 * GET /metrics and its health on GET /healthz, served by an embedded
 * libmicrohttpd when [service] metrics_listen is set.
 *
 * Two layers.  A dc_metrics is the state (per-mailbox counters and times,
 * records, DNS lookups) behind a mutex, with its renderers: it does no I/O
 * and is what the unit test drives (tests/unit/test_metrics.c).  The
 * dc_metrics_start .. dc_metrics_stop calls are the service's side: one
 * process-wide dc_metrics and its HTTP server, each call a no-op while no
 * server runs, so the service loop (dc_service.c) calls them unconditionally.
 *
 * Deliberately not here: anything the database knows better
 * (dmarc.mailbox_status, the run log), authentication or TLS (bind it to
 * loopback or a management network), and persistence: the counters start
 * at 0 with the process, as Prometheus counters do.
 */
#ifndef DC_METRICS_H
#define DC_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dc_config.h"
#include "dc_error.h"
#include "dc_ingest.h"
#include "dc_resolver.h"

typedef struct dc_metrics dc_metrics;

/* ---- the state (no I/O) ---------------------------------------------------- */

/* Returns new, empty state owned by the caller (dc_metrics_free), or NULL
 * when out of memory; started is the service's start (wall clock, seconds),
 * from which a mailbox never polled is judged. */
dc_metrics *dc_metrics_new(double started);
void dc_metrics_free(dc_metrics *m);

/* Takes cfg's mailboxes and interval: new labels get counters at 0, labels
 * no longer configured are neither shown nor judged (their counters are
 * kept, should they come back); others keep theirs.  DC_ENOMEM. */
dc_code dc_metrics_configure(dc_metrics *m, const dc_config *cfg) DC_WUR;

/* One poll of mailbox label ended at now (wall clock) after seconds: rc is
 * its result (DC_EINTERRUPTED counts neither as success nor failure), why
 * its message when rc is an error, d what it committed (may be NULL). */
void dc_metrics_poll_done(dc_metrics *m, const char *label, dc_code rc, const char *why,
	const dc_ingest_totals *d, double seconds, double now);

/* Adds one resolve run's lookups by status (ok, nxdomain, timeout, servfail, error). */
void dc_metrics_resolve_done(dc_metrics *m, const dc_resolve_stats *rs);

/* Returns the Prometheus text exposition (format 0.0.4) of m, owned by the
 * caller (free), *len its length; NULL when out of memory. */
char *dc_metrics_render(dc_metrics *m, size_t *len);

/* Returns 200 when every configured mailbox had a successful poll (or, never
 * polled, the service started) less than three intervals before now, else
 * 503; *text (owned by the caller, free; NULL when out of memory) is "ok\n"
 * or one line per failing mailbox with the reason. */
int dc_metrics_health(dc_metrics *m, double now, char **text);

/* ---- the service's side: one process-wide state and server ---------------- */

/* Starts the HTTP server on cfg->metrics_listen (nothing when unset).
 * Returns 0, or DC_EXIT_CONFIG when the address cannot be bound, or
 * DC_EXIT_TEMPFAIL when out of memory (logged, one line). */
int dc_metrics_start(const dc_config *cfg);

/* Stops the server and frees the state; nothing when none runs. */
void dc_metrics_stop(void);

/* After a SIGHUP reload: dc_metrics_configure with the new cfg (the listen
 * address itself is read at start only; a change is logged). */
void dc_metrics_reload(const dc_config *cfg);

/* Returns the monotonic time a poll starts at, for dc_metrics_polled. */
struct timespec dc_metrics_clock(void);

/* One poll of label that started at t0 ended with rc (err its message);
 * its commits are after - before (both may be NULL: nothing committed). */
void dc_metrics_polled(const char *label, dc_code rc, const dc_err *err, struct timespec t0,
	const dc_ingest_totals *before, const dc_ingest_totals *after);

/* A resolve run after a poll looked up what rs says. */
void dc_metrics_resolved(const dc_resolve_stats *rs);

#endif

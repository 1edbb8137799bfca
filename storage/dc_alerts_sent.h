/*
 * dc_alerts_sent.h - the alerts the [alerts] command has not been given yet
 * (rows of the view dmarc.alerts whose (alert, key) is not in the table
 * dmarc.alerts_sent, sql/migrations/002_operate.sql), and remembering those
 * it accepted, so that each alert is sent once.
 *
 * The JSON handed to the command is built by PostgreSQL (json_agg), never
 * by hand here.  Deliberately not here: running the command
 * (program/dc_alerts_hook.c), what an alert is (the alert views).
 */
#ifndef DC_ALERTS_SENT_H
#define DC_ALERTS_SENT_H

#include <stddef.h>

#include "dc_error.h"
#include "dc_store.h"

/* Alerts handed to the command at once; the rest wait for the next poll. */
#define DC_ALERTS_MAX_PER_RUN 1000

/*
 * Reads up to max rows of dmarc.alerts not yet sent, ordered by alert and
 * key, as a JSON array of objects {alert, key, summary, details} in *json
 * (NUL-terminated, owned by the caller: free) and their number in *n; with
 * none, *n is 0 and *json NULL.  Returns DC_ECONFIG when the schema lacks
 * dmarc.alerts or dmarc.alerts_sent (not migrated), DC_EDB or DC_EDBREFUSED,
 * DC_ENOMEM.
 */
dc_code dc_alerts_pending(dc_store *st, size_t max, char **json, size_t *n, dc_err *err) DC_WUR;

/* Records the (alert, key) of every object of json (as dc_alerts_pending
 * returned it) in dmarc.alerts_sent, in one statement (one transaction);
 * those already there are left as they are.  DC_EDB or DC_EDBREFUSED. */
dc_code dc_alerts_mark_sent(dc_store *st, const char *json, dc_err *err) DC_WUR;

#endif

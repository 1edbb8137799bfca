/*
 * dc_alerts_hook.h - the [alerts] command (issue 13): after each round of
 * polls, the alerts not sent yet go to an administrator's program as JSON on
 * its stdin; see dc_alerts_hook.c.
 */
#ifndef DC_ALERTS_HOOK_H
#define DC_ALERTS_HOOK_H

#include "dc_config.h"
#include "dc_store.h"

/*
 * When cfg has an [alerts] command and *st is open: reads the rows of
 * dmarc.alerts not in dmarc.alerts_sent and, if there are any, runs the
 * command with them on stdin; on exit status 0 they are recorded as sent.
 * Everything it has to say is logged; nothing it does changes an exit
 * status.  When the database went away *st is freed and set to NULL (the
 * service opens a new one for the next poll).  Call it with SIGPIPE ignored
 * (the poll loop's signals_install does): a command that stops reading its
 * stdin must not kill the collector.  It blocks for up to [alerts] timeout.
 */
void dc_alerts_hook_run(const dc_config *cfg, dc_store **st);

/* check-config: 0 when there is no [alerts] command or its program is an
 * executable file, else DC_EXIT_CONFIG (logged). */
int dc_alerts_hook_check(const dc_config *cfg);

#endif

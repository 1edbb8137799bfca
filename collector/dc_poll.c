/*
 * dc_poll.c - the `poll` command and the collector service loop (SPEC
 * sections 4 and 7), and check-config's IMAP probe.
 *
 * Interim version: the entry points main.c links against.  The IMAP client
 * (dc_imap) and the service loop are being built in this module.
 */
#include <stdbool.h>

#include "dc_commands.h"
#include "dc_log.h"

/* Returns 2 until the IMAP client lands: `poll` is not available yet. */
int
dc_cmd_poll(const char *config_path, const char *db_override, dc_config *cfg, bool once)
{
	(void)config_path;
	(void)db_override;
	(void)cfg;
	(void)once;
	dc_log_error("poll: not implemented yet");
	return 2;
}

/* Returns 75 until the IMAP client lands. */
int
dc_check_imap(const dc_config *cfg)
{
	(void)cfg;
	dc_log_error("check-config: IMAP probe not implemented yet");
	return 75;
}

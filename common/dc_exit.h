/*
 * dc_exit.h - the program's exit statuses (SPEC section 4), defined once,
 * and the one mapping from the code that stopped a command to a status.
 *
 *   0  DC_EXIT_STORED    every input stored (a duplicate counts as stored)
 *   1  DC_EXIT_REJECTED  some inputs rejected, each in dmarc.failures
 *   2  DC_EXIT_CONFIG    usage or configuration error, or a service that
 *                        answered and refused (login, privilege, missing
 *                        object): running again does not help until an
 *                        administrator acts
 *   75 DC_EXIT_TEMPFAIL  a service could not be reached or went away, or a
 *                        local resource ran out; nothing was lost, run again
 *
 * The table of conditions is in docs/README-cli.md.  Only main.c and the
 * command modules (dc_commands.h) use these; library code returns dc_codes.
 */
#ifndef DC_EXIT_H
#define DC_EXIT_H

#include "dc_error.h"

enum {
	DC_EXIT_STORED = 0,
	DC_EXIT_REJECTED = 1,
	DC_EXIT_CONFIG = 2,
	DC_EXIT_TEMPFAIL = 75, /* sysexits.h EX_TEMPFAIL */
};

/* The exit status for code when it stopped a command (not for an input
 * rejected and recorded, which the command counts as 1 itself): 0 for
 * DC_OK, 2 for usage, configuration and refusals, 75 for unreachable
 * services and exhausted local resources, and 75 for any other code, which
 * should not stop a command (an input's failure is recorded, not fatal). */
int dc_exit_for(dc_code code);

/* The worse of two statuses: 75 > 2 > 1 > 0. */
int dc_exit_worse(int a, int b);

#endif

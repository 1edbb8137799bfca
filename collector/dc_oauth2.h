/*
 * dc_oauth2.h - the XOAUTH2 token command (oauth2_token_command, SPEC
 * section 7): see dc_oauth2.c.
 */
#ifndef DC_OAUTH2_H
#define DC_OAUTH2_H

#include "dc_error.h"

/*
 * Runs cmd through /bin/sh and returns the first line of its standard output
 * (trimmed) as a new string in *token, owned by the caller (wipe it with
 * explicit_bzero before free).  Returns DC_EAUTH when the command fails or
 * prints nothing (the login cannot happen: exit status 2), but DC_EIMAP (75,
 * try again later) when it exits with 75 (EX_TEMPFAIL, by sysexits.h: its
 * token service could not be reached) or is killed by a signal; DC_ECONFIG
 * when it cannot be started; DC_ENOMEM.  *token is NULL on error.
 */
dc_code dc_oauth2_token(const char *cmd, char **token, dc_err *err) DC_WUR;

#endif

/*
 * dc_exit.c - dc_code to exit status (see dc_exit.h and the table in
 * docs/README-cli.md).  A switch with no default: a new code without a
 * status does not compile.
 */
#include "dc_exit.h"

int
dc_exit_for(dc_code code)
{
	switch (code) {
	case DC_OK:
	case DC_SKIP: return DC_EXIT_STORED;
	/* the administrator must act: the same run fails the same way */
	case DC_EUSAGE:
	case DC_ECONFIG:
	case DC_EDBREFUSED: /* privilege, missing object, database login refused */
	case DC_EAUTH:      /* IMAP login refused: wrong password or token */
	case DC_ETLS: /* certificate not trusted, name mismatch, TLS required */ return DC_EXIT_CONFIG;
	/* a service away or a resource short: run again later */
	case DC_EDB:
	case DC_EIMAP:
	case DC_EDNS:
	case DC_EIO:
	case DC_ENOMEM:
	case DC_EINTERRUPTED: return DC_EXIT_TEMPFAIL;
	/* an input's own failure: recorded and counted, it does not stop a
	 * command; if one ever does, nothing was stored for it, so run again */
	case DC_EFORMAT:
	case DC_ENOREPORT:
	case DC_EMIME:
	case DC_EZIP:
	case DC_EGZIP:
	case DC_EXML:
	case DC_ESCHEMA:
	case DC_ETOOBIG_MESSAGE:
	case DC_ETOOBIG_REPORT:
	case DC_ERATIO:
	case DC_ETOOMANY_RECORDS:
	case DC_ETOODEEP:
	case DC_ETOOLONG:
	case DC_EINPUT_LIMIT: return DC_EXIT_TEMPFAIL;
	}
	return DC_EXIT_TEMPFAIL;
}

int
dc_exit_worse(int a, int b)
{
	return a > b ? a : b;
}

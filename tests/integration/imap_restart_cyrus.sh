#!/bin/bash
# imap_restart_cyrus.sh - see imap_interrupt.bash: a poll interrupted by restarting Cyrus IMAP.
MODE=restart
DC_IMAP_SERVER=cyrus
. "${DC_SRC:?DC_SRC must name the source directory}/tests/integration/imap_interrupt.bash"

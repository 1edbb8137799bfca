#!/bin/bash
# imap_kill_cyrus.sh - see imap_interrupt.bash: a poll of Cyrus IMAP interrupted by SIGKILL.
MODE=kill
DC_IMAP_SERVER=cyrus
. "${DC_SRC:?DC_SRC must name the source directory}/tests/integration/imap_interrupt.bash"

#!/bin/bash
# imap_restart.sh - see imap_interrupt.bash: a poll interrupted by restarting Dovecot.
MODE=restart
. "${DC_SRC:?DC_SRC must name the source directory}/tests/integration/imap_interrupt.bash"

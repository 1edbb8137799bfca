#!/bin/bash
# imap_dbstop.sh - see imap_interrupt.bash: a poll interrupted by stopping the database.
MODE=dbstop
. "${DC_SRC:?DC_SRC must name the source directory}/tests/integration/imap_interrupt.bash"

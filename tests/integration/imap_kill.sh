#!/bin/bash
# imap_kill.sh - see imap_interrupt.bash: a poll interrupted by SIGKILL.
MODE=kill
. "${DC_SRC:?DC_SRC must name the source directory}/tests/integration/imap_interrupt.bash"

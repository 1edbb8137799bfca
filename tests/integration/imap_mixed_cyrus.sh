#!/bin/bash
# imap_mixed_cyrus.sh - imap_mixed.sh against Cyrus IMAP instead of Dovecot
# (tests/lib/cyrus.sh): the same mailbox, the same checks.
export DC_IMAP_SERVER=cyrus
exec bash "${DC_SRC:?DC_SRC must name the source directory}/tests/integration/imap_mixed.sh"

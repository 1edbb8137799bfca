#!/bin/bash
# imap_nomove_cyrus.sh - imap_nomove.sh against Cyrus IMAP (MOVE and UIDPLUS
# suppressed): the same messages, the same checks.
export DC_IMAP_SERVER=cyrus
exec bash "${DC_SRC:?DC_SRC must name the source directory}/tests/integration/imap_nomove.sh"

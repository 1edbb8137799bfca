#!/bin/bash
# imap_message_id.sh - one message stores the same Message-ID whether it is
# imported from a file or polled from Dovecot (issue 10).  The message's
# Message-ID field is folded ("<20251104" CRLF " 080000.42@mid.example>"):
# both paths take it from the one GMime parse (dc_mime's head callback),
# unfolded, without the fold's white space, angle brackets kept.  Before,
# import kept a space for the fold and poll did not.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/imap.sh" || exit 1

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_imap_stop "$tmp/imap"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb polled || exit 1
dc_pg_newdb imported || exit 1
dc_imap_start "$tmp/imap" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
B=$DC_BIN
want='<20251104080000.42@mid.example>'

# the Google report of the mox corpus, its Message-ID replaced by a folded one
python3 - "$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports/google.eml" "$tmp/folded.eml" <<'EOF' || exit 1
import re, sys
m = open(sys.argv[1], 'rb').read()
m, n = re.subn(rb'(?im)^Message-ID:[^\r\n]*\r?\n',
               b'Message-ID: <20251104\r\n 080000.42@mid.example>\r\n', m, count=1)
assert n == 1
open(sys.argv[2], 'wb').write(m)
EOF

{ echo "[database]"; echo "conninfo = dbname=polled"
  dc_imap_mailbox_conf "$tmp/imap" starttls
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }
"$B" --config "$tmp/dc.conf" --db dbname=imported migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

"$B" --config "$tmp/dc.conf" --db dbname=imported import "$tmp/folded.eml" > "$tmp/import.log" 2>&1
check "import" "$?" 0
dc_imap_seed "$tmp/imap" "$tmp/folded.eml" || exit 1
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll.log" 2>&1
check "poll" "$?" 0

imp=$(q imported "SELECT string_agg(message_id, ' ') FROM dmarc.reports")
pol=$(q polled "SELECT string_agg(message_id, ' ') FROM dmarc.reports")
check "imported dmarc.reports.message_id" "$imp" "$want"
check "polled dmarc.reports.message_id" "$pol" "$want"
check "import and poll agree" "$imp" "$pol"
check "polled dmarc.mailbox_messages.message_id" \
  "$(q polled "SELECT string_agg(message_id, ' ') FROM dmarc.mailbox_messages")" "$want"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp"/*.log; exit 1; }
echo "all checks passed"

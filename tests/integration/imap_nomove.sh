#!/bin/bash
# imap_nomove.sh - a server without MOVE and UIDPLUS (capabilities cut down;
# Dovecot, or Cyrus with DC_IMAP_SERVER=cyrus, see imap_nomove_cyrus.sh):
# stored messages are moved by UID COPY + UID STORE \Deleted + EXPUNGE; the
# archive folder has a non-ASCII name (sent in modified UTF-7); a message
# above max_message_bytes is rejected without being fetched; after = delete
# removes stored messages.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/imap.sh" || exit 1

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_imap_stop "$tmp/imap"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb imap || exit 1
case $DC_IMAP_SERVER in
  dovecot) export DC_DOVECOT_CAPABILITY="IMAP4rev1 LITERAL+ SASL-IR IDLE NAMESPACE" ;;
  cyrus) export DC_CYRUS_SUPPRESS_CAPABILITY="MOVE UIDPLUS" ;;
esac
dc_imap_start "$tmp/imap" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
B=$DC_BIN
M=$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports
big=$M/outlook.eml                      # 9256 bytes
conf() { # conf AFTER
  { echo "[database]"; echo "conninfo = dbname=imap"
    dc_imap_mailbox_conf "$tmp/imap" starttls
    echo "archive_folder = Archiv/Berichte-Ü"
    echo "after = $1"
    echo "[limits]"; echo "max_message_bytes = 8000"
    echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
}
conf move
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }
"$B" --config "$tmp/dc.conf" check-config > "$tmp/check.log" 2>&1; grep -q "MOVE missing" "$tmp/check.log" \
  || fail "check-config does not notice the missing MOVE: $(cat "$tmp/check.log")"

dc_imap_seed "$tmp/imap" "$M/google.eml" "$M/yahoo.eml" "$big" || exit 1
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll1.log" 2>&1
check "poll (one message too big)" "$?" 1
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 2
check "archive folder in modified UTF-7" "$(dc_imap_count "$tmp/imap" 'Archiv/Berichte-&ANw-')" 2
check "Archive/Invalid" "$(dc_imap_count "$tmp/imap" Archive/Invalid)" 1
check "INBOX" "$(dc_imap_count "$tmp/imap" INBOX)" 0
check "too big: recorded without content" \
  "$(q "SELECT stage || ' ' || (dmarc.failure_content(f) IS NULL) || ' ' || (reason LIKE '%larger than max_message_bytes%') FROM dmarc.failures f")" "limits true true"
grep -q 'rejected (limits): message of [0-9]* bytes is larger than max_message_bytes (8000)' "$tmp/poll1.log" \
  || fail "rejection not logged: $(cat "$tmp/poll1.log")"
case $DC_IMAP_SERVER in  # the server's own word that it got \Deleted + EXPUNGE
  dovecot) grep -Eq 'Logged out .* deleted=[1-9][0-9]* expunged=[1-9]' "$tmp/imap/dovecot.log" \
             || fail "Dovecot saw no \\Deleted + EXPUNGE: $(grep 'Logged out' "$tmp/imap/dovecot.log" | tail -2)" ;;
  cyrus) grep -Eq 'Expunged [1-9][0-9]* messages from' "$tmp/imap/cyrus.log" \
           || fail "Cyrus logged no EXPUNGE: $(tail -n 3 "$tmp/imap/cyrus.log")" ;;
esac
check "nothing left flagged \\Deleted" "$(dc_imap_deleted "$tmp/imap")" 0
check "action recorded" "$(q "SELECT action FROM dmarc.mailbox_messages WHERE outcome = 'stored' GROUP BY action")" "move:Archiv/Berichte-Ü"

# ---- after = delete
conf delete
dc_imap_seed "$tmp/imap" "$M/mailru.eml" "$M/xs4all.eml" || exit 1
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll2.log" 2>&1
check "poll with after = delete" "$?" 0
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 4
check "INBOX" "$(dc_imap_count "$tmp/imap" INBOX)" 0
check "archive folder unchanged" "$(dc_imap_count "$tmp/imap" 'Archiv/Berichte-&ANw-')" 2
check "deletions recorded" "$(q "SELECT count(*) FROM dmarc.mailbox_messages WHERE action = 'delete'")" 2

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp"/poll*.log; exit 1; }
echo "all checks passed"

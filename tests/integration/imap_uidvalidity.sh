#!/bin/bash
# imap_uidvalidity.sh - `after = seen`: stored messages stay in INBOX flagged
# \Seen and are not read again (the collector tracks UIDVALIDITY and the last
# UID in dmarc.mailboxes, not \Seen flags); a rejected one still moves to
# invalid_folder.  When the folder's UIDVALIDITY changes, the collector reads
# the whole folder again and recognises the reports as duplicates.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_dovecot_stop "$tmp/dv"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb imap || exit 1
dc_dovecot_start "$tmp/dv" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
seen_in_inbox() {
  find "$DC_IMAP_MAILDIR/cur" "$DC_IMAP_MAILDIR/new" -type f -name '*:2,*S*' | wc -l
}
doveadm_u() { dc_dovecot_doveadm "$tmp/dv" "$@"; }
B=$DC_BIN
C=$DC_SRC/tests/data/corpus

dc_dovecot_seed "$tmp/dv" "$C"/mjl-+mox/testdata/dmarc-reports/*.eml || exit 1
{ echo "[database]"; echo "conninfo = dbname=imap"
  dc_dovecot_mailbox_conf "$tmp/dv" imaps
  echo "after = seen"
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll1.log" 2>&1
check "first poll" "$?" 0
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 5
check "INBOX keeps the messages" "$(dc_dovecot_count "$tmp/dv" INBOX)" 5
check "flagged \\Seen" "$(seen_in_inbox)" 5
check "outcomes" "$(q "SELECT action || ':' || count(*) FROM dmarc.mailbox_messages GROUP BY action")" "seen:5"
uv1=$(q "SELECT uidvalidity FROM dmarc.mailboxes")
check "UIDVALIDITY recorded" "$(doveadm_u mailbox status -u rua@example.com uidvalidity INBOX | sed 's/.*=//')" "$uv1"

# a non-report: moved to invalid_folder whatever `after` says
dc_dovecot_seed "$tmp/dv" "$C/ZeWaren+dmarc-report-milter/tests/dmarc_emails/not-a-dmarc-report.eml" || exit 1
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll2.log" 2>&1
check "poll with a rejected message" "$?" 1
check "Archive/Invalid" "$(dc_dovecot_count "$tmp/dv" Archive/Invalid)" 1
check "INBOX" "$(dc_dovecot_count "$tmp/dv" INBOX)" 5

# \Seen flags removed by a person reading the mailbox change nothing
doveadm_u flags remove -u rua@example.com '\Seen' mailbox INBOX ALL || fail "doveadm flags remove"
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll3.log" 2>&1
check "poll after \\Seen was removed" "$?" 0
grep -q 'mailbox rua: 0 messages' "$tmp/poll3.log" || fail "messages read again: $(tail -2 "$tmp/poll3.log")"
check "outcomes after re-polls" "$(q "SELECT count(*) FROM dmarc.mailbox_messages")" 6

# the folder gets a new UIDVALIDITY (restored from a backup, recreated ...)
doveadm_u mailbox update -u rua@example.com --uid-validity 12345 INBOX || fail "doveadm mailbox update"
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll4.log" 2>&1
check "poll after the UIDVALIDITY change" "$?" 0
grep -q "UIDVALIDITY of INBOX changed from $uv1 to 12345" "$tmp/poll4.log" \
  || fail "change not logged: $(cat "$tmp/poll4.log")"
grep -q 'mailbox rua: 5 messages: 5 stored (0 reports, 5 duplicates)' "$tmp/poll4.log" \
  || fail "folder not read again as duplicates: $(tail -2 "$tmp/poll4.log")"
check "reports after the change" "$(q "SELECT count(*) FROM dmarc.reports")" 5
check "mailbox state (UIDs 1-5 left in INBOX)" "$(q "SELECT uidvalidity || ' ' || last_uid FROM dmarc.mailboxes")" "12345 5"
check "outcomes under the new UIDVALIDITY" \
  "$(q "SELECT count(*) || ' ' || sum(duplicates) FROM dmarc.mailbox_messages WHERE uidvalidity = 12345")" "5 5"
check "flagged \\Seen again" "$(seen_in_inbox)" 5

# new mail after the change is read as usual
dc_dovecot_seed "$tmp/dv" "$C/patrickkerrigan+dmarc-parser-rs/tests/resources/test.xml.eml" || exit 1
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll5.log" 2>&1
check "poll of new mail" "$?" 0
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 6
check "the new report's origin" "$(q "SELECT uidvalidity || ' ' || uid FROM dmarc.reports WHERE org_name = 'Test org'")" "12345 7"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp"/poll*.log; exit 1; }
echo "all checks passed"

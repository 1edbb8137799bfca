#!/bin/bash
# imap_mixed.sh - `poll --once` against a real IMAP server (Dovecot; Cyrus with
# DC_IMAP_SERVER=cyrus, see imap_mixed_cyrus.sh), STARTTLS on the imap port,
# certificate checked with ca_file: a mixed mailbox (zip, gzip, plain
# XML, several reports in one message, a non-report, a corrupt zip) is stored
# report by report; stored messages move to Archive/DMARC and rejected ones to
# Archive/Invalid (folders created), none flagged \Seen; failures carry the
# message's bytes (as IMAP sends them, CRLF) and origin; polling again changes nothing; the same
# messages delivered again are recognised as duplicates by the report key.
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
dc_imap_start "$tmp/imap" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
B=$DC_BIN
C=$DC_SRC/tests/data/corpus

# the messages: corpus e-mails plus one built from three corpus XML reports
good=("$C/mjl-+mox/testdata/dmarc-reports/google.eml"       # zip
      "$C/mjl-+mox/testdata/dmarc-reports/yahoo.eml"        # gzip
      "$C/patrickkerrigan+dmarc-parser-rs/tests/resources/test.xml.eml")  # plain XML
several=(chrj+dmarc-report-parser/tests/fixtures/minimal.xml
         chrj+dmarc-report-parser/tests/fixtures/second.xml
         cry-inc+dmarc-report-viewer/testdata/dmarc-reports/gmxnet.xml)
bad=("$C/ZeWaren+dmarc-report-milter/tests/dmarc_emails/not-a-dmarc-report.eml"
     "$C/JamesJJ+dmarc-report-ses-tsv/test-data/mail-with-bad-zip.txt")
python3 "$DC_SRC/tests/integration/imap_mail.py" several "$tmp/several.eml" \
  "${several[@]/#/$C/}" || exit 1
dc_imap_seed "$tmp/imap" "${good[@]}" "$tmp/several.eml" "${bad[@]}" || exit 1

# what an independent parser found in them (corpus/manifest.tsv): org|report_id
expected=$( { for f in "${good[@]}"; do
                awk -F'\t' -v f="${f#"$C"/}" '$1 == f && $12 == "ok" { print $3 "|" $4 }' "$C/manifest.tsv"
              done
              for f in "${several[@]}"; do
                awk -F'\t' -v f="$f" '$1 == f && $12 == "ok" { print $3 "|" $4 }' "$C/manifest.tsv"
              done; } | sort)
check "reports the manifest expects" "$(echo "$expected" | wc -l)" 6

{ echo "[database]"; echo "conninfo = dbname=imap"
  dc_imap_mailbox_conf "$tmp/imap" starttls
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll1.log" 2>&1
check "first poll exit status (some rejected)" "$?" 1
grep -q 'mailbox rua: 6 messages: 4 stored (6 reports, 0 duplicates), 2 rejected' "$tmp/poll1.log" \
  || fail "summary line missing: $(tail -3 "$tmp/poll1.log")"
check "stored reports" "$(q "SELECT org_name || '|' || report_id FROM dmarc.reports ORDER BY 1" | sort)" "$expected"
check "reports carry their origin" \
  "$(q "SELECT count(*) FROM dmarc.reports WHERE mailbox = 'rua' AND uid > 0 AND uidvalidity > 0")" 6
check "Message-ID of the Google report" \
  "$(q "SELECT message_id FROM dmarc.reports WHERE org_name = 'google.com'")" "<13488712042596170873@google.com>"
check "the several-reports message: one UID for three reports" \
  "$(q "SELECT count(DISTINCT uid) || ' ' || count(*) FROM dmarc.reports WHERE message_id = '<several@gen.example>'")" "1 3"
check "failures" "$(q "SELECT count(*) FROM dmarc.failures f WHERE mailbox = 'rua' AND uid > 0 AND dmarc.failure_content(f) IS NOT NULL")" 2
check "failure of the non-report keeps the whole message" \
  "$(q "SELECT length(dmarc.failure_content(f)) FROM dmarc.failures f WHERE reason LIKE '%no aggregate report%'")" \
  "$(python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); print(len(d.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")))' "${bad[0]}")"
check "INBOX after the poll" "$(dc_imap_count "$tmp/imap" INBOX)" 0
check "Archive/DMARC" "$(dc_imap_count "$tmp/imap" Archive/DMARC)" 4
check "Archive/Invalid" "$(dc_imap_count "$tmp/imap" Archive/Invalid)" 2
check "messages flagged \\Seen" "$(dc_imap_seen "$tmp/imap")" 0
check "folders subscribed" "$(dc_imap_subscribed "$tmp/imap" | grep '^Archive/' | tr '\n' ' ')" \
  "Archive/DMARC Archive/Invalid "
check "mailbox state" "$(q "SELECT last_uid, messages_stored, messages_rejected, last_error IS NULL FROM dmarc.mailboxes")" "6|4|2|t"
check "per-message outcomes" "$(q "SELECT outcome || ':' || action || ':' || count(*) FROM dmarc.mailbox_messages GROUP BY outcome, action ORDER BY 1")" \
  "$(printf 'rejected:move:Archive/Invalid:2\nstored:move:Archive/DMARC:4')"

before=$(q "SELECT (SELECT count(*) FROM dmarc.reports) || ' ' || (SELECT count(*) FROM dmarc.records) || ' ' || (SELECT count(*) FROM dmarc.failures)")
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll2.log" 2>&1
check "second poll exit status" "$?" 0
check "second poll changed nothing" "$(q "SELECT (SELECT count(*) FROM dmarc.reports) || ' ' || (SELECT count(*) FROM dmarc.records) || ' ' || (SELECT count(*) FROM dmarc.failures)")" "$before"
check "Archive/DMARC after the second poll" "$(dc_imap_count "$tmp/imap" Archive/DMARC)" 4

# the same report messages delivered again: duplicates, archived again
dc_imap_seed "$tmp/imap" "${good[@]}" "$tmp/several.eml" || exit 1
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll3.log" 2>&1
check "third poll exit status" "$?" 0
grep -q '4 stored (0 reports, 6 duplicates)' "$tmp/poll3.log" || fail "duplicates not reported: $(tail -3 "$tmp/poll3.log")"
check "reports after re-delivery" "$(q "SELECT count(*) FROM dmarc.reports")" 6
check "Archive/DMARC after re-delivery" "$(dc_imap_count "$tmp/imap" Archive/DMARC)" 8
check "INBOX after re-delivery" "$(dc_imap_count "$tmp/imap" INBOX)" 0

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp"/poll*.log; exit 1; }
echo "all checks passed"

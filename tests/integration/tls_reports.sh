#!/bin/bash
# tls_reports.sh - SMTP TLS reports (RFC 8460, issue 15) into a real
# PostgreSQL, compared with an independent reading.
#
#  1. `import` of the 30 real TLS report files of the corpus
#     (tests/data/corpus/_smtp_tls: JSON, and e-mails with the report as
#     application/tlsrpt+gzip or +json) against what a small Python reader
#     (json, gzip and email modules, nothing of ours) finds in them: per
#     report (organization-name, report-id; a second copy is a duplicate)
#     its policies, successful and failed sessions, failure details and their
#     failed sessions, and its start date; the summary line's ", N TLS
#     reports"; exit status 0 and no dmarc.failures row.
#  2. A second import stores nothing new (duplicates count as stored, exit 0).
#  3. dmarc_reader reads the views (dmarc.tls_daily sums the same sessions),
#     not the tables.
#  4. Bad TLS reports: a broken one, truncated JSON, a gzip bomb of JSON:
#     exit 1, one failure row each with the file's bytes, nothing stored.
#  5. reparse gives the same rows; prune --older-than 0 removes them all
#     (policies and failure details with their reports).
#  6. poll: a TLS report e-mail and a DMARC report e-mail through Dovecot
#     are stored and both moved to the archive folder.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/imap.sh" || exit 1

tmp=$(mktemp -d)
chmod 755 "$tmp"   # the cluster runs as postgres
trap 'dc_imap_stop "$tmp/imap" >/dev/null 2>&1; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb tls || exit 1
unset DMARC_COLLECTOR_CONFIG
"$DC_BIN" -q migrate || { echo "FAIL: migrate"; exit 1; }

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
TLS=$DC_SRC/tests/data/corpus/_smtp_tls

# ---- the independent reading: one line per distinct report, sorted, and
# the number of TLS reports found (duplicates included)
cat > "$tmp/read.py" <<'EOF'
import datetime, email, email.policy, gzip, json, os, sys

def docs(path):
    data = open(path, 'rb').read()
    if not path.endswith('.eml'):
        yield json.loads(data)
        return
    msg = email.message_from_bytes(data, policy=email.policy.default)
    for part in msg.walk():
        if part.is_multipart():
            continue
        b = part.get_payload(decode=True) or b''
        if b[:2] == b'\x1f\x8b':
            b = gzip.decompress(b)
        if b.lstrip().startswith(b'{') and b'"report-id"' in b and b'"policies"' in b:
            yield json.loads(b)

def n(v):
    return int(v) if v is not None else 0

def epoch(s):
    t = datetime.datetime.fromisoformat(s.replace('z', 'Z'))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp())

found, seen = 0, {}
for root, _, files in os.walk(sys.argv[1]):
    for f in sorted(files):
        for d in docs(os.path.join(root, f)):
            found += 1
            key = (d['organization-name'], d['report-id'])
            pols = d['policies']
            fds = [x for p in pols for x in (p.get('failure-details') or [])]
            seen.setdefault(key, '%s|%s|%d|%d|%d|%d|%d|%d' % (
                key[0], key[1], epoch(d['date-range']['start-datetime']), len(pols),
                sum(n((p.get('summary') or {}).get('total-successful-session-count')) for p in pols),
                sum(n((p.get('summary') or {}).get('total-failure-session-count')) for p in pols),
                len(fds), sum(n(x.get('failed-session-count')) for x in fds)))
print(found)
for k in sorted(seen):
    print(seen[k])
EOF
python3 "$tmp/read.py" "$TLS" > "$tmp/expected" || { echo "FAIL: the Python reader"; exit 1; }
found=$(head -1 "$tmp/expected")
tail -n +2 "$tmp/expected" | LC_ALL=C sort > "$tmp/expected.rows"
check "files read by Python" "$found" 30
ROWS="SELECT r.organization_name || '|' || r.report_id || '|' || extract(epoch FROM r.date_begin)::bigint
        || '|' || (SELECT count(*) FROM dmarc.tls_policies p WHERE p.tls_report_id = r.id)
        || '|' || (SELECT coalesce(sum(successful_sessions), 0) FROM dmarc.tls_policies p WHERE p.tls_report_id = r.id)
        || '|' || (SELECT coalesce(sum(failed_sessions), 0) FROM dmarc.tls_policies p WHERE p.tls_report_id = r.id)
        || '|' || (SELECT count(*) FROM dmarc.tls_failures f WHERE f.tls_report_id = r.id)
        || '|' || (SELECT coalesce(sum(failed_session_count), 0) FROM dmarc.tls_failures f WHERE f.tls_report_id = r.id)
      FROM dmarc.tls_reports r"
rows() { q "$ROWS" | LC_ALL=C sort; }

# ---- 1. import
"$DC_BIN" import "$TLS" > "$tmp/import1.log" 2>&1
check "import exit status" "$?" 0
grep -q "import: 30 inputs, 0 reports stored, 0 duplicates, $found TLS reports, 0 records, 0 rejected" "$tmp/import1.log" ||
  fail "summary line: $(tail -1 "$tmp/import1.log")"
rows > "$tmp/got.rows"
if diff -u "$tmp/expected.rows" "$tmp/got.rows" > "$tmp/rows.diff"; then
  echo "ok: $(wc -l < "$tmp/got.rows") reports equal the Python reading (policies, sessions, failure details)"
else
  fail "reports differ from the Python reading: $(cat "$tmp/rows.diff")"
fi
check "distinct reports" "$(q "SELECT count(*) FROM dmarc.tls_reports")" "$(wc -l < "$tmp/expected.rows")"
check "failure rows" "$(q "SELECT count(*) FROM dmarc.failures")" 0
check "every report refers to its original's bytes" \
  "$(q "SELECT count(*) FROM dmarc.tls_reports r JOIN dmarc.originals o ON o.id = r.original_id")" \
  "$(wc -l < "$tmp/expected.rows")"
check "a gzip attachment's path" \
  "$(q "SELECT original_path FROM dmarc.tls_reports WHERE report_id = '133198585438131172+test.xmox.nl'")" "part 2 > gzip"
check "Microsoft's date without offset is UTC" \
  "$(q "SELECT start_datetime || ' ' || date_begin AT TIME ZONE 'UTC' FROM dmarc.tls_reports WHERE report_id = '133198585438131172+test.xmox.nl'")" \
  "2023-01-10T00:00:00 2023-01-10 00:00:00"

# ---- 2. again: all duplicates
"$DC_BIN" import "$TLS" > "$tmp/import2.log" 2>&1
check "second import exit status" "$?" 0
grep -q "$found TLS reports, 0 records, 0 rejected" "$tmp/import2.log" || fail "second summary: $(tail -1 "$tmp/import2.log")"
rows > "$tmp/got2.rows"
cmp -s "$tmp/got.rows" "$tmp/got2.rows" && echo "ok: second import stored nothing new" || fail "second import changed the rows"

# ---- 3. the reader's views
if q "SELECT 1 FROM pg_roles WHERE rolname = 'dmarc_reader'" | grep -q 1; then
  check "dmarc_reader: tls_daily sessions = the Python total" \
    "$(psql -X -q -At -v ON_ERROR_STOP=1 -c "SET ROLE dmarc_reader" -c "SELECT sum(sessions) FROM dmarc.tls_daily")" \
    "$(awk -F'|' '{ s += $5 + $6 } END { print s }' "$tmp/expected.rows")"
  check "dmarc_reader: failure details by result type and MX" \
    "$(psql -X -q -At -v ON_ERROR_STOP=1 -c "SET ROLE dmarc_reader" -c "SELECT sum(failure_details) FROM dmarc.tls_daily_failures")" \
    "$(awk -F'|' '{ s += $7 } END { print s }' "$tmp/expected.rows")"
  psql -X -At -c "SET ROLE dmarc_reader" -c "SELECT count(*) FROM dmarc.tls_reports" > /dev/null 2>&1 &&
    fail "dmarc_reader can read the table dmarc.tls_reports" || echo "ok: dmarc_reader cannot read the tables"
else
  fail "migrate created no dmarc_reader role"
fi

# ---- 4. bad TLS reports
mkdir -p "$tmp/bad"
cat > "$tmp/bad/broken.json" <<'EOF'
{"organization-name":"Bad","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},
 "report-id":"bad-1","policies":[{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":-4}}]}
EOF
head -c 700 "$TLS/cry-inc+dmarc-report-viewer/testdata/smtp-tls-reports/google.json" > "$tmp/bad/truncated.json"
python3 -c '
import gzip, sys
sys.stdout.buffer.write(gzip.compress(b"{\"report-id\":\"x\",\"policies\":[" + b" " * (64 << 20), 9))' > "$tmp/bad/bomb.json.gz"
before=$(q "SELECT count(*) FROM dmarc.tls_reports")
for f in broken.json truncated.json bomb.json.gz; do
  "$DC_BIN" import "$tmp/bad/$f" > "$tmp/bad.log" 2>&1
  check "$f: exit status" "$?" 1
  check "$f: error lines" "$(grep -c 'error:' "$tmp/bad.log")" 1
  check "$f: one failure row with the file's bytes" \
    "$(q "SELECT count(*) || ' ' || string_agg(encode(sha256(dmarc.failure_content(f)), 'hex'), ' ') FROM dmarc.failures f WHERE file_name LIKE '%/$f'")" \
    "1 $(sha256sum < "$tmp/bad/$f" | cut -d' ' -f1)"
done
check "failure stages" "$(q "SELECT string_agg(stage, ' ' ORDER BY id) FROM dmarc.failures")" "report json limits"
check "nothing stored from them" "$(q "SELECT count(*) FROM dmarc.tls_reports")" "$before"

# ---- 5. reparse, prune
"$DC_BIN" reparse > "$tmp/reparse.log" 2>&1
check "reparse exit status" "$?" 0
rows > "$tmp/got3.rows"
cmp -s "$tmp/got.rows" "$tmp/got3.rows" && echo "ok: reparse gives the same reports" || fail "reparse changed the rows: $(diff "$tmp/got.rows" "$tmp/got3.rows")"
"$DC_BIN" prune --older-than 0 > "$tmp/prune.log" 2>&1
check "prune exit status" "$?" 0
grep -q "prune: deleted $before TLS reports" "$tmp/prune.log" || fail "prune line: $(cat "$tmp/prune.log")"
check "after prune: reports policies failures" \
  "$(q "SELECT (SELECT count(*) FROM dmarc.tls_reports) || ' ' || (SELECT count(*) FROM dmarc.tls_policies) || ' ' || (SELECT count(*) FROM dmarc.tls_failures)")" "0 0 0"

# ---- 6. poll through Dovecot
dc_imap_start "$tmp/imap" || exit 1
dc_pg_newdb tlspoll || exit 1
{ echo "[database]"; echo "conninfo = dbname=tlspoll"
  dc_imap_mailbox_conf "$tmp/imap" starttls
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$DC_BIN" --config "$tmp/dc.conf" migrate > /dev/null 2>&1 || { echo "FAIL: migrate tlspoll"; exit 1; }
dc_imap_seed "$tmp/imap" "$TLS/isseis+tlsrpt-digest/testdata/tlsrpt_failure.eml" \
  "$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports/yahoo.eml" || exit 1
"$DC_BIN" --config "$tmp/dc.conf" poll --once > "$tmp/poll.log" 2>&1
check "poll exit status" "$?" 0
grep -q 'mailbox rua: 2 messages: 2 stored (1 reports, 0 duplicates, 1 TLS reports), 0 rejected' "$tmp/poll.log" ||
  fail "poll summary: $(grep 'mailbox rua' "$tmp/poll.log")"
check "TLS report stored with its origin" \
  "$(psql -X -At -d tlspoll -c "SELECT count(*) FROM dmarc.tls_reports WHERE mailbox = 'rua' AND uid > 0 AND message_id IS NOT NULL")" 1
check "its failure details" "$(psql -X -At -d tlspoll -c "SELECT count(*) > 0 FROM dmarc.tls_failures")" t
check "INBOX after the poll" "$(dc_imap_count "$tmp/imap" INBOX)" 0
check "Archive/DMARC after the poll" "$(dc_imap_count "$tmp/imap" Archive/DMARC)" 2
check "outcomes" "$(psql -X -At -d tlspoll -c "SELECT string_agg(outcome, ' ') FROM dmarc.mailbox_messages")" "stored stored"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp"/*.log; exit 1; }
echo "all checks passed"

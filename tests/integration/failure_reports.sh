#!/bin/bash
# failure_reports.sh - DMARC failure reports (RFC 6591 ARF) end to end, with a
# real PostgreSQL and Dovecot:
#   - `import` of the real failure reports (tests/data/corpus/_forensic) and
#     the crafted ones (tests/data/arf): rows and fields compared with an
#     independent reading by Python's email module (written here);
#   - importing them again: duplicates, nothing new, exit status 0;
#   - keep_body = no (default): no body; keep_body = yes: the original's body;
#   - malformed reports: exit 1, a dmarc.failures row (stage report) with the
#     message's bytes, one error line;
#   - the evidence view: an aggregate report made here for the same IP and
#     day as a failure report whose original is a bounce (agrees), and for
#     another IP whose aggregate records look regular (missed);
#   - `poll --once`: a failure report e-mail is stored and moved to the
#     archive folder, and the summary line counts it;
#   - `prune`: failure reports that arrived before the cutoff go.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/imap.sh" || exit 1

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_imap_stop "$tmp/imap"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb arf || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -F $'\t' -v ON_ERROR_STOP=1 -d arf -c "$1"; }
B=$DC_BIN
F=$DC_SRC/tests/data/corpus/_forensic
A=$DC_SRC/tests/data/arf

echo "[database]" > "$tmp/dc.conf"
echo "conninfo = dbname=arf" >> "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

# ---- the inputs: every real one that is a failure report, the crafted good ones
mapfile -d '' real < <(find "$F" -type f -name '*.eml' ! -name '*no_arf_part*' -print0 | sort -z)
good=("${real[@]}" "$A/auth-failure.eml" "$A/headers-only.eml" "$A/forwarded.eml")
check "real failure report files" "${#real[@]}" 12

# ---- an independent reading with Python's email module
export TMPDIR_TEST=$tmp
python3 - "${good[@]}" > "$tmp/expected.tsv" <<'EOF' || { echo "FAIL: independent reading"; exit 1; }
import base64, email, email.policy, quopri, re, sys
from email.parser import HeaderParser

def reports(msg, path):
    """(path, report part) for every multipart/report;report-type=feedback-report
    or multipart with a message/feedback-report child, not inside another one."""
    if msg.is_multipart():
        kids = msg.get_payload()
        if (msg.get_content_type() == 'multipart/report' and
                (msg.get_param('report-type') or '').lower() == 'feedback-report') or \
           any(k.get_content_type() == 'message/feedback-report' for k in kids):
            yield path, msg
            return
        if msg.get_content_type() == 'message/rfc822':
            yield from reports(kids[0], path)
            return
        for i, k in enumerate(kids, 1):
            yield from reports(k, path + [str(i)])

def fields(part):
    """The feedback fields: the part's body, transfer-decoded, read as a header block
    (email parses a message/* body as a message, so take the raw body)."""
    raw = re.split(r'\r?\n\r?\n', part.as_string(), 1)
    body = raw[1] if len(raw) > 1 else ''
    cte = (part.get('Content-Transfer-Encoding') or '').strip().lower()
    if cte == 'base64':
        body = base64.b64decode(body).decode('latin-1')
    elif cte == 'quoted-printable':
        body = quopri.decodestring(body.encode('latin-1')).decode('latin-1')
    return HeaderParser().parsestr(body.replace('\r\n', '\n'))

def one(v):
    return None if v is None else re.sub(r'\s+', ' ', str(v)).strip()

for f in sys.argv[1:]:
    msg = email.message_from_binary_file(open(f, 'rb'), policy=email.policy.compat32)
    for path, rep in reports(msg, []):
        fb = [k for k in rep.get_payload() if k.get_content_type() == 'message/feedback-report']
        h = fields(fb[0])
        ip = one(h.get('Source-IP'))
        if ip:
            ip = re.split(r'[\s(;\]]', ip.lstrip('['), 1)[0]
            if ip.lower().startswith('ipv6:'):
                ip = ip[5:]
        orig = [k for k in rep.get_payload() if k.get_content_type() in ('message/rfc822', 'text/rfc822-headers')]
        oid = None
        if orig:
            o = orig[0].get_payload(0) if orig[0].is_multipart() else HeaderParser().parsestr(orig[0].get_payload())
            oid = one(o.get('Message-ID'))
        low = lambda v: v.lower() if v else v
        row = [f, ' > '.join('part ' + p for p in ['.'.join(path)] if path) or '',
               low(one(h.get('Feedback-Type'))), ip or '', one(h.get('Reported-Domain')) or '',
               one(h.get('Original-Mail-From')) if h.get('Original-Mail-From') is not None else '(none)',
               ','.join(one(v) for v in h.get_all('Original-Rcpt-To', [])),
               low(one(h.get('Auth-Failure'))) or '', low(one(h.get('Delivery-Result'))) or '',
               oid or '']
        print('\t'.join(row))
EOF
n_expected=$(wc -l < "$tmp/expected.tsv")
check "reports the independent reading finds" "$n_expected" 15

# ---- import: every report stored, the fields as Python read them
"$B" --config "$tmp/dc.conf" import "${good[@]}" > "$tmp/import1.log" 2>&1
check "import exit status" "$?" 0
grep -q "import: ${#good[@]} inputs, 0 reports stored, 0 duplicates, $n_expected failure reports, 0 records, 0 rejected" \
  "$tmp/import1.log" || fail "import summary: $(cat "$tmp/import1.log")"
check "rows" "$(q 'SELECT count(*) FROM dmarc.failure_reports')" "$n_expected"
q "SELECT regexp_replace(file_name, '#[0-9]+$', ''), coalesce(original_path, ''), feedback_type, coalesce(host(source_ip), ''),
          coalesce(reported_domain, ''), coalesce(original_mail_from, '(none)'),
          array_to_string(original_rcpt_to, ','), coalesce(auth_failure, ''), coalesce(delivery_result, ''),
          coalesce(orig_message_id, '')
   FROM dmarc.failure_reports ORDER BY 1, 2" > "$tmp/got.tsv"
if diff <(sort "$tmp/expected.tsv") <(sort "$tmp/got.tsv") > "$tmp/fields.diff"; then
  echo "ok: fields of $n_expected reports = the independent reading"
else
  fail "fields differ from the independent reading: $(cat "$tmp/fields.diff")"
fi
check "every report has the original's header block" \
  "$(q "SELECT count(*) FROM dmarc.failure_reports WHERE headers ILIKE '%from:%'")" "$n_expected"
check "keep_body = no: no body" "$(q 'SELECT count(*) FROM dmarc.failure_reports WHERE body IS NOT NULL')" 0
check "originals kept, one per message" \
  "$(q 'SELECT count(DISTINCT original_id) FROM dmarc.failure_reports')" "${#good[@]}"
check "reader role reads the list" \
  "$(q "SELECT has_table_privilege('dmarc_reader', 'dmarc.failure_evidence', 'SELECT')
              AND has_table_privilege('dmarc_reader', 'dmarc.failure_report_list', 'SELECT')
              AND NOT has_table_privilege('dmarc_reader', 'dmarc.failure_reports', 'SELECT')
              AND has_table_privilege('dmarc_writer', 'dmarc.failure_reports', 'INSERT')")" t

# ---- the same again: duplicates
"$B" --config "$tmp/dc.conf" import "${good[@]}" > "$tmp/import2.log" 2>&1
check "second import exit status" "$?" 0
grep -q ", $n_expected failure reports, 0 records, 0 rejected" "$tmp/import2.log" \
  || fail "second import summary: $(cat "$tmp/import2.log")"
check "rows after the second import" "$(q 'SELECT count(*) FROM dmarc.failure_reports')" "$n_expected"

# ---- malformed ones: rejected with a failure row holding their bytes
for f in no-feedback-part no-feedback-type; do
  "$B" --config "$tmp/dc.conf" import "$A/$f.eml" > "$tmp/$f.log" 2>&1
  check "$f: exit status" "$?" 1
  check "$f: error lines" "$(grep -c 'error:' "$tmp/$f.log")" 1
  sha=$(sha256sum "$A/$f.eml" | cut -d' ' -f1)
  check "$f: failure row" "$(q "SELECT stage || ' ' || (encode(sha256(dmarc.failure_content(f)), 'hex') = '$sha')
                                 FROM dmarc.failures f WHERE file_name = '$A/$f.eml'")" "report true"
done
check "no-feedback-part: reason" \
  "$(q "SELECT reason LIKE '%without a message/feedback-report part%' FROM dmarc.failures WHERE file_name LIKE '%no-feedback-part.eml'")" t
check "rows after the malformed ones" "$(q 'SELECT count(*) FROM dmarc.failure_reports')" "$n_expected"

# ---- keep_body = yes, in a database of its own
dc_pg_newdb arfbody || exit 1
printf '[database]\nconninfo = dbname=arfbody\n[failure_reports]\nkeep_body = yes\n' > "$tmp/body.conf"
"$B" --config "$tmp/body.conf" migrate >/dev/null 2>&1 || fail "migrate arfbody"
"$B" --config "$tmp/body.conf" import "$A/auth-failure.eml" "$A/headers-only.eml" > "$tmp/body.log" 2>&1 \
  || fail "keep_body import: $(cat "$tmp/body.log")"
python3 - "$A/auth-failure.eml" > "$tmp/body.want" <<'EOF'
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.compat32)
orig = [k for k in m.get_payload() if k.get_content_type() == 'message/rfc822'][0].get_payload(0)
body = orig.as_string().split('\n\n', 1)[1]
sys.stdout.write(body)
EOF
PGDATABASE=arfbody psql -X -At -c "SELECT body FROM dmarc.failure_reports WHERE file_name LIKE '%auth-failure.eml'" \
  > "$tmp/body.got"
if diff <(tr -d '\n' < "$tmp/body.want") <(tr -d '\n' < "$tmp/body.got") >/dev/null; then
  echo "ok: keep_body = yes: the original's body as Python reads it"
else
  fail "keep_body body differs: $(diff "$tmp/body.want" "$tmp/body.got")"
fi
check "keep_body = yes, headers only: no body" \
  "$(PGDATABASE=arfbody psql -X -At -c "SELECT body IS NULL FROM dmarc.failure_reports WHERE file_name LIKE '%headers-only.eml'")" t

# ---- the evidence view: an aggregate report for 2026-11-02 and three failure reports
python3 - "$tmp" <<'EOF' || { echo "FAIL: writing the evidence inputs"; exit 1; }
import sys
d = sys.argv[1]
def rec(ip, env):
    return ('<record><row><source_ip>%s</source_ip><count>5</count><policy_evaluated><disposition>none</disposition>'
            '<dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from>'
            '<envelope_from>%s</envelope_from></identifiers><auth_results><spf><domain>%s</domain><scope>mfrom</scope>'
            '<result>fail</result></spf></auth_results></record>' % (ip, env, env or 'example.com'))
xml = ('<?xml version="1.0"?><feedback><report_metadata><org_name>receiver.example</org_name><email>r@receiver.example</email>'
       '<report_id>evidence-1</report_id><date_range><begin>1793577600</begin><end>1793663999</end></date_range>'
       '</report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>'
       + rec('198.51.100.7', '') + rec('198.51.100.8', 'mail.example.com') + '</feedback>\n')
open(d + '/aggregate.xml', 'w').write(xml)
def arf(ip, mail_from, orig_headers):
    return ('From: r@receiver.example\nTo: ruf@example.com\nSubject: failure report %s\nMIME-Version: 1.0\n'
            'Content-Type: multipart/report; report-type=feedback-report; boundary="x"\n\n'
            '--x\nContent-Type: message/feedback-report\n\nFeedback-Type: auth-failure\nVersion: 1\n'
            'Source-IP: %s\nOriginal-Mail-From: %s\nArrival-Date: Mon, 02 Nov 2026 12:00:00 +0000\n'
            'Reported-Domain: example.com\n\n--x\nContent-Type: text/rfc822-headers\n\n%s\n--x--\n'
            % (ip, ip, mail_from, orig_headers))
# 198.51.100.8: a null MAIL FROM the aggregate data does not show (missed)
open(d + '/missed.eml', 'w').write(arf('198.51.100.8', '<>', 'From: a@example.com\nSubject: hi\n'))
# 198.51.100.9: an auto-reply where there is no aggregate data
open(d + '/nodata.eml', 'w').write(arf('198.51.100.9', 'a@example.com',
     'From: a@example.com\nSubject: Automatic reply: hi\nAuto-Submitted: auto-replied\n'))
# 198.51.100.10: no sign of server-generated mail: not in the view
open(d + '/regular.eml', 'w').write(arf('198.51.100.10', 'a@example.com', 'From: a@example.com\nSubject: hi\n'))
EOF
"$B" --config "$tmp/dc.conf" import "$tmp/aggregate.xml" "$tmp/missed.eml" "$tmp/nodata.eml" "$tmp/regular.eml" \
  > "$tmp/evidence.log" 2>&1 || fail "evidence import: $(cat "$tmp/evidence.log")"
check "aggregate: server-generated per IP" \
  "$(q "SELECT string_agg(host(source_ip) || '=' || server_generated, ' ' ORDER BY source_ip) FROM dmarc.record_details")" \
  "198.51.100.7=true 198.51.100.8=false"
check "evidence rows" \
  "$(q "SELECT string_agg(host(source_ip) || ' ' || day || ' ' || array_to_string(signs, ',') || ' ' || verdict, '; '
                         ORDER BY source_ip, day) FROM dmarc.failure_evidence WHERE day = '2026-11-02'")" \
  "198.51.100.7 2026-11-02 auto_reply,auto_submitted,dsn,null_sender agrees; 198.51.100.8 2026-11-02 null_sender missed; 198.51.100.9 2026-11-02 auto_reply,auto_submitted no aggregate data"
check "the corpus' bounce (LinkedIn, twice)" \
  "$(q "SELECT failure_reports || ' ' || array_to_string(signs, ',') || ' ' || verdict FROM dmarc.failure_evidence
        WHERE source_ip = '10.10.10.10' AND day = '2019-04-30'")" "2 auto_submitted,null_sender no aggregate data"
check "evidence summary" "$(q "SELECT agrees || ' ' || missed || ' ' || no_aggregate_data || ' ' || recall FROM dmarc.failure_evidence_summary")" \
  "1 1 2 0.5000"
check "aggregate messages next to the evidence" \
  "$(q "SELECT aggregate_messages || ' ' || aggregate_server_generated_messages FROM dmarc.failure_evidence WHERE source_ip = '198.51.100.7'")" \
  "5 5"

# ---- poll: a failure report e-mail from Dovecot is stored and moved
dc_imap_start "$tmp/imap" || exit 1
dc_pg_newdb arfimap || exit 1
{ echo "[database]"; echo "conninfo = dbname=arfimap"
  dc_imap_mailbox_conf "$tmp/imap" starttls
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/imap.conf"
"$B" --config "$tmp/imap.conf" migrate >/dev/null 2>&1 || fail "migrate arfimap"
dc_imap_seed "$tmp/imap" "$F/sisimai+set-of-emails/maildir/bsd/arf-18.eml" || exit 1
"$B" --config "$tmp/imap.conf" poll --once > "$tmp/poll.log" 2>&1
check "poll exit status" "$?" 0
grep -q 'mailbox rua: 1 messages: 1 stored (0 reports, 0 duplicates, 1 failure reports), 0 rejected' "$tmp/poll.log" \
  || fail "poll summary: $(cat "$tmp/poll.log")"
check "INBOX after the poll" "$(dc_imap_count "$tmp/imap" INBOX)" 0
check "Archive/DMARC" "$(dc_imap_count "$tmp/imap" Archive/DMARC)" 1
check "stored from the mailbox" \
  "$(PGDATABASE=arfimap psql -X -At -c "SELECT mailbox || ' ' || host(source_ip) || ' ' || (uid IS NOT NULL) || ' ' || message_id
                                         FROM dmarc.failure_reports")" "rua 192.0.2.222 true <22.220000.0000.00000200@example.org>"
check "message outcome" "$(PGDATABASE=arfimap psql -X -At -c "SELECT outcome FROM dmarc.mailbox_messages")" stored

# ---- prune: the reports that arrived before the cutoff go (Python counts them)
days=3650
want_left=$(python3 - "$days" "${good[@]}" "$tmp/missed.eml" "$tmp/nodata.eml" "$tmp/regular.eml" <<'EOF'
import datetime, email, email.policy, email.utils, sys
days = int(sys.argv[1])
cut = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
left = 0
def walk(m):
    # a report's feedback part; never inside a report (its original is no report)
    if not m.is_multipart():
        return
    kids = m.get_payload()
    fb = [k for k in kids if k.get_content_type() == 'message/feedback-report']
    if fb:
        yield fb[0].get_payload(0) if fb[0].is_multipart() else email.message_from_string(fb[0].get_payload())
        return
    for k in kids:
        yield from walk(k)
for f in sys.argv[2:]:
    m = email.message_from_binary_file(open(f, 'rb'), policy=email.policy.compat32)
    for h in walk(m):
        v = h.get('Arrival-Date') or h.get('Received-Date')
        try:
            t = email.utils.parsedate_to_datetime(v) if v else None
        except (TypeError, ValueError):
            t = None
        if t is None or t >= cut:   # unknown arrival: the time it was stored (now)
            left += 1
print(left)
EOF
)
"$B" --config "$tmp/dc.conf" prune --older-than "$days" > "$tmp/prune.log" 2>&1 || fail "prune: $(cat "$tmp/prune.log")"
check "failure reports left after prune --older-than $days" "$(q 'SELECT count(*) FROM dmarc.failure_reports')" "$want_left"
gone=$(( n_expected + 3 - want_left ))
grep -q "reports deleted by rows; $gone failure reports\$" "$tmp/prune.log" || fail "prune summary: $(cat "$tmp/prune.log")"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"

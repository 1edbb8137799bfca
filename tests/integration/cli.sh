#!/bin/bash
# cli.sh - the command line of SPEC section 4: --help, --version, usage
# errors (exit 2), configuration errors naming the key (exit 2), an
# unreachable database (exit 75), the database precedence (--db over the
# file), import of an mbox (mboxrd quoting undone, message N named path#N,
# Message-ID kept), a Maildir and a directory tree (dot files and tmp/
# skipped), exit 1 when an input is rejected, and reparse keeping the counts.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"   # the cluster runs as postgres
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb cli || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect STATUS PATTERN COMMAND...: runs COMMAND, checks its exit status and
# that PATTERN (grep -E, "" = anything) occurs in its stdout+stderr
expect() {
  local want=$1 pat=$2 got out
  shift 2
  out=$("$@" 2>&1); got=$?
  if [ "$got" != "$want" ]; then
    fail "$* exited $got, expected $want: $(echo "$out" | tail -3)"
  elif [ -n "$pat" ] && ! grep -Eq -- "$pat" <<<"$out"; then
    fail "$*: output lacks /$pat/: $(echo "$out" | tail -3)"
  else
    echo "ok: $* -> $got"
  fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
B=$DC_BIN

# ---- help, version, usage errors
expect 0 'usage: dmarc-collector .*COMMAND' "$B" --help
expect 0 'import PATH' "$B" -h
expect 0 '^dmarc-collector [0-9]+\.[0-9]+' "$B" --version
expect 2 'no command' "$B"
expect 2 "unknown command 'frobnicate'" "$B" frobnicate
expect 2 "unknown option '--bogus'" "$B" --bogus migrate
expect 2 'needs an argument' "$B" --config
expect 2 'exclude' "$B" -v -q migrate
expect 2 'needs at least one PATH' "$B" import
expect 2 'No such file' "$B" import "$tmp/does-not-exist.xml"
expect 2 'needs --older-than' "$B" prune
expect 2 'not a number of days' "$B" prune --older-than soon
expect 2 "unexpected argument '--forever'" "$B" poll --forever
expect 2 "unexpected argument 'now'" "$B" migrate now

# ---- configuration errors name file:line and key
printf '[service]\ninterval = 60\nintervall = 5\n' >"$tmp/bad.conf"
expect 2 'bad\.conf:3: .*intervall.*unknown key' "$B" --config "$tmp/bad.conf" migrate
printf '[limits]\nmax_ratio = lots\n' >"$tmp/badnum.conf"
expect 2 'badnum\.conf:2: .*max_ratio.*not a number' "$B" --config "$tmp/badnum.conf" check-config
expect 2 'badnum\.conf:2' env DMARC_COLLECTOR_CONFIG="$tmp/badnum.conf" "$B" migrate
expect 2 'DMARC_COLLECTOR_SERVICE_INTERVAL' env DMARC_COLLECTOR_SERVICE_INTERVAL=-1 "$B" migrate
expect 2 'cannot open' "$B" --config "$tmp/nope.conf" migrate

# ---- database: unreachable is 75, --db wins over the file
closed=$(dc_pg_freeport)
printf '[database]\nconninfo = host=127.0.0.1 port=%s connect_timeout=3\n' "$closed" >"$tmp/closed.conf"
expect 75 'database' "$B" --db "host=127.0.0.1 port=$closed connect_timeout=3" migrate
expect 75 '' "$B" --config "$tmp/closed.conf" migrate
expect 75 '' "$B" --config "$tmp/closed.conf" check-config
expect 0 'migrate: [0-9]+ migrations? applied' "$B" --config "$tmp/closed.conf" --db "host=$PGHOST port=$PGPORT dbname=cli" migrate
expect 0 'migrate: 0 migrations applied' "$B" migrate

# ---- inputs: an mbox, a Maildir, a tree
export IN=$tmp/in
python3 - <<'EOF'
import base64, gzip, os
IN = os.environ['IN']

def report(rid, org='cli.test', n=2):
    recs = ''.join('<record><row><source_ip>198.51.100.%d</source_ip><count>%d</count><policy_evaluated>'
                   '<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>'
                   '<identifiers><header_from>example.org</header_from></identifiers><auth_results><spf>'
                   '<domain>example.org</domain><result>pass</result></spf></auth_results></record>\n'
                   % (i + 1, i + 2) for i in range(n))
    return ('<?xml version="1.0"?>\n<feedback><report_metadata><org_name>%s</org_name><email>r@cli.test</email>'
            '<report_id>%s</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range>'
            '</report_metadata><policy_published><domain>example.org</domain><p>none</p></policy_published>\n%s'
            '</feedback>\n' % (org, rid, recs))

def message(mid, body_parts):
    b = '==b%s' % mid
    out = ('From: reports@cli.test\nTo: rua@example.org\nSubject: Report %s\nMessage-ID: <%s@cli.test>\n'
           'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="%s"\n\n' % (mid, mid, b))
    for ctype, cte, name, data in body_parts:
        out += '--%s\nContent-Type: %s; name="%s"\nContent-Transfer-Encoding: %s\n' \
               'Content-Disposition: attachment; filename="%s"\n\n%s\n' % (b, ctype, name, cte, name, data)
    return out + '--%s--\n' % b

def gz64(text):
    return base64.encodebytes(gzip.compress(text.encode())).decode()

os.makedirs(IN, exist_ok=True)
# mbox: 1 gzip attachment, 2 plain XML whose org_name line was ">From "-quoted, 3 no report
quoted = report('mbox-2', org='\n>From quoted').replace('\n>From', '\n>>From')  # as an mboxrd writer quotes it
msgs = [message('m1', [('application/gzip', 'base64', 'r1.xml.gz', gz64(report('mbox-1')))]),
        message('m2', [('text/xml', '7bit', 'r2.xml', quoted)]),
        message('m3', [('text/plain', '7bit', 'note.txt', 'no report\n>From here\n')])]
with open(os.path.join(IN, 'reports.mbox'), 'w') as f:
    for m in msgs:
        f.write('From reports@cli.test Tue Nov 14 00:00:00 2023\n' + m + '\n')
# Maildir: one in new/, one in cur/, one in tmp/ (ignored), a dot file (ignored)
md = os.path.join(IN, 'tree', 'Maildir')
for d in ('cur', 'new', 'tmp'):
    os.makedirs(os.path.join(md, d), exist_ok=True)
open(os.path.join(md, 'new', '1700000001.1.host'), 'w').write(
    message('md1', [('application/gzip', 'base64', 'a.xml.gz', gz64(report('maildir-new')))]))
open(os.path.join(md, 'cur', '1700000002.2.host:2,S'), 'w').write(
    message('md2', [('application/gzip', 'base64', 'b.xml.gz', gz64(report('maildir-cur')))]))
open(os.path.join(md, 'tmp', '1700000003.3.host'), 'w').write(
    message('md3', [('application/gzip', 'base64', 'c.xml.gz', gz64(report('maildir-tmp')))]))
open(os.path.join(md, 'cur', '.hidden'), 'w').write(report('maildir-dot'))
# the tree around it: a bare report, a gzip, a dot directory (ignored)
open(os.path.join(IN, 'tree', 'bare.xml'), 'w').write(report('tree-bare', n=5))
open(os.path.join(IN, 'tree', 'sub.xml.gz'), 'wb').write(gzip.compress(report('tree-gz', n=3).encode()))
os.makedirs(os.path.join(IN, 'tree', '.git'), exist_ok=True)
open(os.path.join(IN, 'tree', '.git', 'x.xml'), 'w').write(report('tree-dot'))
open(os.path.join(IN, 'bad.xml'), 'w').write('<feedback><report_metadata>')
EOF

expect 1 'reports\.mbox#3: .*no aggregate report' "$B" import "$IN/reports.mbox"
[ "$(q "SELECT string_agg(report_id || '|' || file_name || '|' || coalesce(message_id, '-'), ' ' ORDER BY report_id) FROM dmarc.reports")" \
  = "mbox-1|$IN/reports.mbox#1|<m1@cli.test> mbox-2|$IN/reports.mbox#2|<m2@cli.test>" ] \
  || fail "mbox reports: $(q "SELECT report_id, file_name, message_id FROM dmarc.reports")"
[ "$(q "SELECT org_name FROM dmarc.reports WHERE report_id = 'mbox-2'")" = '>From quoted' ] \
  || fail "mboxrd quoting not undone: org_name is '$(q "SELECT org_name FROM dmarc.reports WHERE report_id = 'mbox-2'")'"
[ "$(q "SELECT count(*) || ' ' || min(file_name) || ' ' || min(message_id) FROM dmarc.failures")" = "1 $IN/reports.mbox#3 <m3@cli.test>" ] \
  || fail "mbox failure row: $(q "SELECT file_name, message_id, stage FROM dmarc.failures")"

expect 0 'import: 2 inputs, 2 reports stored, 0 duplicates, 4 records, 0 rejected' "$B" import "$IN/tree/Maildir"
expect 0 'import: 4 inputs, 2 reports stored, 2 duplicates, 8 records, 0 rejected' "$B" import "$IN/tree"
[ "$(q "SELECT string_agg(report_id, ' ' ORDER BY report_id) FROM dmarc.reports WHERE report_id LIKE 'maildir%' OR report_id LIKE 'tree%'")" \
  = "maildir-cur maildir-new tree-bare tree-gz" ] || fail "Maildir/tree reports: $(q "SELECT report_id FROM dmarc.reports")"
expect 1 'bad\.xml: xml' "$B" import "$IN/tree/bare.xml" "$IN/bad.xml"
expect 0 '' "$B" -q import "$IN/tree/bare.xml"
out=$("$B" -q import "$IN/tree/bare.xml" 2>&1); [ -z "$out" ] || fail "-q still printed: $out"

# ---- the database refuses during an import (a role that may not write):
# the import stops with 2 (running again does not help until an admin grants
# the privilege) and the input is neither stored nor recorded
q "CREATE ROLE reader LOGIN; GRANT USAGE ON SCHEMA dmarc TO reader; GRANT SELECT ON ALL TABLES IN SCHEMA dmarc TO reader" >/dev/null
n_before=$(q "SELECT (SELECT count(*) FROM dmarc.reports) || '/' || (SELECT count(*) FROM dmarc.failures)")
python3 -c "import sys; sys.stdout.write(open(sys.argv[1]).read().replace('tree-bare', 'readonly-1'))" \
  "$IN/tree/bare.xml" >"$IN/readonly.xml"
expect 2 'import stopped after 0 of 2 files: .*permission denied .*SQLSTATE 42501.*fix that, then run the import again' env PGUSER=reader "$B" import "$IN/readonly.xml" "$IN/bad.xml"
[ "$(q "SELECT (SELECT count(*) FROM dmarc.reports) || '/' || (SELECT count(*) FROM dmarc.failures)")" = "$n_before" ] \
  || fail "a failed import stored something: $n_before before, now $(q "SELECT count(*) FROM dmarc.reports")"

# ---- reparse keeps the counts
before=$(q "SELECT count(*), sum(message_count), count(DISTINCT report_id) FROM dmarc.records")
reports_before=$(q "SELECT string_agg(report_id || ':' || record_count || ':' || message_total, ' ' ORDER BY report_id) FROM dmarc.reports")
expect 0 'reparse: ' "$B" reparse
after=$(q "SELECT count(*), sum(message_count), count(DISTINCT report_id) FROM dmarc.records")
reports_after=$(q "SELECT string_agg(report_id || ':' || record_count || ':' || message_total, ' ' ORDER BY report_id) FROM dmarc.reports")
[ "$before" = "$after" ] && [ "$reports_before" = "$reports_after" ] \
  || fail "reparse changed counts: $before / $after; $reports_before / $reports_after"
echo "counts before and after reparse: $after; reports: $reports_after"

if [ "$fails" -gt 0 ]; then echo "FAIL: $fails check(s) failed"; exit 1; fi
echo PASS

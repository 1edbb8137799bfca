#!/bin/bash
# upgrade.sh - `dmarc-collector migrate` turns a 0.1 database into 1.0 with
# nothing lost (issue 11, "Upgrade from 0.1").
#
# The 0.1 database is built as 0.1's migrate built it: schema dmarc, table
# dmarc.schema_migrations (name, applied_at), then each file of
# tests/data/upgrade/sql-0.1/ in its own transaction with one row per file.
# Its data is tests/data/upgrade/v0.1-corpus.dump: the visible corpus as 0.1
# imported it, plus PTR names, old-style failures and a mailbox
# (tests/data/upgrade/make-dump.sh, README.md there).
#
# Then, for what analysts and the collector see: the views record_details,
# server_generated_mail, regular_mail, server_generated_sources,
# record_days, daily_summary, daily_mail, daily_sources, report_overview,
# failure_list; the auth results (dkim_results, spf_results: 0.1 tables,
# 1.0 views); the rows of reports, originals (id, sha256, a digest of the
# bytes), failures (with a digest of dmarc.failure_content), ip_names,
# mailboxes and mailbox_messages: each as sorted text, before and after
# `migrate`, with the columns of the 0.1 version; any difference fails (the
# head of the diff is printed).  daily_mail and daily_sources read the
# rollups, which the upgrade computes again with the 1.0 functions: equal
# output means the 1.0 definitions give 0.1's numbers.
# Also: the views' columns begin with 0.1's (names and types; 1.0 appends
# columns, e.g. record_details' sender, and never changes one); a second migrate
# changes nothing; a report, record, failure and original stored after the
# upgrade get ids above every 0.1 id; the upgraded schema equals a fresh
# migrate's (normalised dumps, monthly partitions compared on their own);
# an upgrade that fails (a 0.1 report without date_end) exits non-zero
# with a one-line message and leaves the 0.1 database exactly as it was; a
# view of someone's own on a 0.1 table is refused, not dropped; and a
# database of 0.1's first seven migrations (commit d00bbda) upgrades too.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/schema.sh"   # dc_schema_dump: the normalisation of sql/schema.sql

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
unset DMARC_COLLECTOR_CONFIG
export PGTZ=UTC PGOPTIONS="-c client_min_messages=warning"

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $* [${SECONDS}s]"; }
q() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
dsn() { echo "host=$PGHOST port=$PGPORT dbname=$1 user=postgres"; }
U=$DC_SRC/tests/data/upgrade

# ---- a 0.1 database, as 0.1's migrate made it, with the dump's rows
mk01() {
  local db=$1 f
  dc_pg_newdb "$db" || return 1
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE SCHEMA dmarc" \
    -c "CREATE TABLE dmarc.schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())" \
    || return 1
  for f in "$U"/sql-0.1/*.sql; do
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -1 -f "$f" \
      -c "INSERT INTO dmarc.schema_migrations (name, applied_at) VALUES ('$(basename "$f")', now())" >/dev/null \
      || { echo "0.1 migration $(basename "$f") failed" >&2; return 1; }
  done
  pg_restore --data-only --disable-triggers -d "$db" "$U/v0.1-corpus.dump"
}
mk01 v01 || { echo "FAIL: building the 0.1 database"; exit 1; }
[ "$(q v01 "SELECT count(*) FROM dmarc.schema_migrations")" = 8 ] || { echo "FAIL: 0.1 migrations"; exit 1; }
for db in up bad; do
  q postgres "CREATE DATABASE $db TEMPLATE v01" >/dev/null || { echo "FAIL: copy of the 0.1 database"; exit 1; }
done
ok "0.1 database: $(q v01 "SELECT format('%s reports, %s records, %s DKIM and %s SPF results, %s failures, %s originals',
  (SELECT count(*) FROM dmarc.reports), (SELECT count(*) FROM dmarc.records), (SELECT count(*) FROM dmarc.dkim_results),
  (SELECT count(*) FROM dmarc.spf_results), (SELECT count(*) FROM dmarc.failures), (SELECT count(*) FROM dmarc.originals))")"

# the fixture must exercise what the upgrade converts
while IFS='|' read -r what sql; do
  n=$(q v01 "$sql")
  [ "${n:-0}" -gt 0 ] || fail "the 0.1 data has no $what (tests/data/upgrade/make-dump.sh)"
done <<'EOF'
records classified spf_domain_is_ptr|SELECT count(*) FROM dmarc.record_details WHERE server_generated_reason = 'spf_domain_is_ptr'
records classified envelope_from_is_ptr|SELECT count(*) FROM dmarc.record_details WHERE server_generated_reason = 'envelope_from_is_ptr'
records classified null_sender|SELECT count(*) FROM dmarc.record_details WHERE server_generated_reason = 'null_sender'
records classified spf_helo_scope|SELECT count(*) FROM dmarc.record_details WHERE server_generated_reason = 'spf_helo_scope'
unconfirmed PTR names|SELECT count(*) FROM dmarc.ip_names n WHERE NOT forward_confirmed AND ptr IS NOT NULL AND EXISTS (SELECT FROM dmarc.records r WHERE r.source_ip = n.ip)
records with a second DKIM result|SELECT count(*) FROM dmarc.dkim_results WHERE ordinal = 2
records with a third SPF result|SELECT count(*) FROM dmarc.spf_results WHERE ordinal = 3
records without SPF result|SELECT count(*) FROM dmarc.records r WHERE NOT EXISTS (SELECT FROM dmarc.spf_results s WHERE s.record_id = r.id)
failures with their bytes in content|SELECT count(*) FROM dmarc.failures WHERE content IS NOT NULL AND original_id IS NULL
failures with an original|SELECT count(*) FROM dmarc.failures WHERE original_id IS NOT NULL
reports spanning several days|SELECT count(*) FROM dmarc.reports WHERE date_end - date_begin > interval '1 day'
reports before 2000 (DEFAULT partition)|SELECT count(*) FROM dmarc.reports WHERE date_begin < '2000-01-01'
mailbox_messages|SELECT count(*) FROM dmarc.mailbox_messages
EOF

# ---- the snapshot: one sorted file per object, the 0.1 columns
VIEWS="record_details server_generated_mail regular_mail server_generated_sources record_days daily_summary
  daily_mail daily_sources report_overview failure_list"
PLAIN="dkim_results spf_results reports ip_names mailboxes mailbox_messages"
declare -A COLS
for o in $VIEWS $PLAIN; do
  COLS[$o]=$(q v01 "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
    WHERE attrelid = 'dmarc.$o'::regclass AND attnum > 0 AND NOT attisdropped")
done
NCOLS=$(q v01 "SELECT string_agg(format('(%L, %s)', relname, (SELECT count(*) FROM pg_attribute
  WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped)), ', ') FROM pg_class c
  WHERE relnamespace = 'dmarc'::regnamespace AND relkind = 'v'")
snapshot() {  # DB DIR
  local db=$1 dir=$2 o
  mkdir -p "$dir"
  for o in $VIEWS $PLAIN; do
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "COPY (SELECT ${COLS[$o]} FROM dmarc.$o) TO STDOUT" |
      LC_ALL=C sort > "$dir/$o" || echo "snapshot of dmarc.$o failed" >> "$dir/errors"
  done
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "COPY (SELECT id, encode(sha256, 'hex'), encode(sha256(content), 'hex'),
      octet_length(content), name, first_seen FROM dmarc.originals) TO STDOUT" |
    LC_ALL=C sort > "$dir/originals" || echo "snapshot of dmarc.originals failed" >> "$dir/errors"
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "COPY (SELECT id, failed_at, mailbox, uidvalidity, uid, message_id,
      file_name, stage, reason, encode(sha256, 'hex'), original_id, encode(sha256(dmarc.failure_content(f)), 'hex')
      FROM dmarc.failures f) TO STDOUT" |
    LC_ALL=C sort > "$dir/failures" || echo "snapshot of dmarc.failures failed" >> "$dir/errors"
  # the views' columns and types, as many as 0.1 had
  q "$db" "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN (VALUES $NCOLS) v(relname, n) ON v.relname = c.relname AND a.attnum <= v.n
    WHERE c.relnamespace = 'dmarc'::regnamespace AND c.relkind = 'v'
      AND c.relname IN ($(for o in $VIEWS; do printf "'%s'," "$o"; done) '')
    ORDER BY 1, 2" > "$dir/view-columns"
}
snapshot v01 "$tmp/before"
[ -f "$tmp/before/errors" ] && { cat "$tmp/before/errors"; echo "FAIL: snapshot of the 0.1 database"; exit 1; }
# 0.1 ids, for the ids handed out after the upgrade
max01() { q v01 "SELECT coalesce(max(id), 0) FROM dmarc.$1"; }
MAXREP=$(max01 reports) MAXREC=$(max01 records) MAXFAIL=$(max01 failures) MAXORIG=$(max01 originals)
# the 0.1 sequences, which the upgraded ones must not fall behind
SEQ01=$(q v01 "SELECT string_agg(format('%s=%s', sequencename, coalesce(last_value, 0)), ' ' ORDER BY sequencename)
  FROM pg_sequences WHERE schemaname = 'dmarc'")

# ---- the upgrade
out=$("$DC_BIN" --db "$(dsn up)" migrate 2>&1); rc=$?
if [ "$rc" != 0 ]; then
  echo "$out" | head -20
  echo "FAIL: migrate of the 0.1 database exited $rc"
  exit 1
fi
ok "migrate upgraded the 0.1 database: $(echo "$out" | tail -1)"
[ "$(q up "SELECT count(*) FROM pg_namespace WHERE nspname = 'dmarc_v01'")" = 0 ] || fail "schema dmarc_v01 is still there"
[ "$(q up "SELECT to_regclass('dmarc.dkim_results') IS NOT NULL AND (SELECT relkind FROM pg_class WHERE oid = 'dmarc.dkim_results'::regclass) = 'v'")" = t ] \
  || fail "dmarc.dkim_results is not the 1.0 view"

snapshot up "$tmp/after"
[ -f "$tmp/after/errors" ] && { cat "$tmp/after/errors"; fail "snapshot of the upgraded database"; }
same=0
for f in "$tmp"/before/*; do
  o=$(basename "$f")
  if diff -q "$f" "$tmp/after/$o" >/dev/null; then
    same=$((same + 1))
  else
    echo "--- dmarc.$o: 0.1 (-) and upgraded (+) differ; first lines of the diff:"
    diff -u "$f" "$tmp/after/$o" | sed -n '3,22p'
    fail "dmarc.$o differs after the upgrade"
  fi
done
ok "$same of $(ls "$tmp/before" | wc -l) snapshots identical before and after the upgrade ($(cat "$tmp"/before/* | wc -l) lines)"

# ---- a second migrate changes nothing
book() { q up "SELECT string_agg(format('SELECT %L, * FROM dmarc.%I', relname, relname), ' UNION ALL ')
  FROM pg_class WHERE relnamespace = 'dmarc'::regnamespace AND relkind = 'r' AND relname LIKE 'schema\_%'" |
  { read -r sql; [ -n "$sql" ] && psql -X -At -d up -c "COPY (SELECT * FROM ($sql) b) TO STDOUT" | LC_ALL=C sort; }; }
b1=$(book)
[ -n "$b1" ] || fail "no bookkeeping rows (dmarc.schema_*) after the upgrade"
q up "SELECT 1 FROM dmarc.schema_migrations WHERE name = '001_schema.sql'" | grep 1 >/dev/null && fail "0.1's migration rows survived the upgrade"
out=$("$DC_BIN" --db "$(dsn up)" migrate 2>&1); rc=$?
[ "$rc" = 0 ] || fail "second migrate exited $rc: $out"
[ "$(book)" = "$b1" ] || fail "second migrate changed the bookkeeping: $out"
snapshot up "$tmp/again"
diff -rq "$tmp/after" "$tmp/again" >/dev/null || fail "second migrate changed what the views show"
ok "second migrate applied nothing: $(echo "$out" | tail -1)"

# ---- ids after the upgrade: above every 0.1 id, and the sequences did not
# go back
SEQUP=$(q up "SELECT string_agg(format('%s=%s', sequencename, coalesce(last_value, 0)), ' ' ORDER BY sequencename)
  FROM pg_sequences WHERE schemaname = 'dmarc' AND sequencename IN ($(for s in $SEQ01; do printf "'%s'," "${s%%=*}"; done) '')")
[ "$SEQUP" = "$SEQ01" ] || fail "sequences: 0.1 had $SEQ01, the upgraded database $SEQUP"
now=$(date -u +%s)
mkdir -p "$tmp/new"
cat > "$tmp/new/after-upgrade.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>upgrade.example</org_name><email>dmarc@upgrade.example</email>
    <report_id>after-upgrade-1</report_id><date_range><begin>$((now - 86400))</begin><end>$((now - 1))</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record><row><source_ip>192.0.2.77</source_ip><count>3</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>
      <dkim><domain>other.example</domain><result>fail</result></dkim>
      <spf><domain>example.com</domain><scope>mfrom</scope><result>fail</result></spf></auth_results></record>
</feedback>
EOF
printf '<?xml version="1.0"?>\n<feedback>\n  <report_metadata>\n' > "$tmp/new/broken.xml"
"$DC_BIN" -q --db "$(dsn up)" import "$tmp/new/after-upgrade.xml" "$tmp/new/broken.xml" > "$tmp/import.log" 2>&1; rc=$?
[ "$rc" = 1 ] || { cat "$tmp/import.log"; fail "import after the upgrade exited $rc (1 expected: one report, one rejected file)"; }
got=$(q up "SELECT format('%s %s %s %s',
  (SELECT min(id) FROM dmarc.reports WHERE report_id = 'after-upgrade-1'),
  (SELECT min(r.id) FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id WHERE p.report_id = 'after-upgrade-1'),
  (SELECT min(id) FROM dmarc.failures WHERE file_name LIKE '%broken.xml'),
  (SELECT min(id) FROM dmarc.originals WHERE name LIKE '%after-upgrade.xml'))")
read -r rep rec fl org <<< "$got"
if [ -n "$rep" ] && [ -n "$rec" ] && [ -n "$fl" ] && [ -n "$org" ] &&
   [ "$rep" -gt "$MAXREP" ] && [ "$rec" -gt "$MAXREC" ] && [ "$fl" -gt "$MAXFAIL" ] && [ "$org" -gt "$MAXORIG" ]; then
  ok "stored after the upgrade: report $rep (0.1 up to $MAXREP), record $rec ($MAXREC), failure $fl ($MAXFAIL), original $org ($MAXORIG)"
else
  fail "ids after the upgrade: report/record/failure/original '$got', 0.1 maxima $MAXREP $MAXREC $MAXFAIL $MAXORIG"
fi
[ "$(q up "SELECT count(*) FROM dmarc.dkim_results d JOIN dmarc.reports p ON p.id = d.report_id WHERE p.report_id = 'after-upgrade-1'")" = 2 ] \
  || fail "the report stored after the upgrade does not show its 2 DKIM results"

# ---- the upgraded schema is a fresh migrate's
dc_pg_newdb fresh >/dev/null || exit 1
"$DC_BIN" -q --db "$(dsn fresh)" migrate || fail "migrate of an empty database"
dc_schema_dump up > "$tmp/schema-up.sql"
dc_schema_dump fresh > "$tmp/schema-fresh.sql"
if diff -u "$tmp/schema-fresh.sql" "$tmp/schema-up.sql" > "$tmp/schema.diff"; then
  ok "upgraded schema equals a fresh migrate's ($(wc -l < "$tmp/schema-up.sql") lines of pg_dump)"
else
  echo "--- schema: fresh migrate (-) and upgraded (+); first lines of the diff:"
  sed -n '3,40p' "$tmp/schema.diff"
  fail "the upgraded schema differs from a fresh migrate's"
fi
# monthly partitions: the fresh database's months, and those of the 0.1
# reports within the window (2000-01 to a year ahead), nothing else
parts() { q "$1" "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent IN ('dmarc.reports'::regclass, 'dmarc.records'::regclass) AND c.relname ~ '_2[0-9]{3}_[0-9]{2}\$'"; }
want=$( { parts fresh; q v01 "SELECT t || to_char(m, '_YYYY_MM') FROM (SELECT DISTINCT date_trunc('month', date_begin, 'UTC')
    AT TIME ZONE 'UTC' AS m FROM dmarc.reports WHERE date_begin >= '2000-01-01' AND date_begin < now() + interval '1 year') x,
    unnest(ARRAY['reports', 'records']) t"; } | LC_ALL=C sort -u)
have=$(parts up | LC_ALL=C sort)
if [ "$want" = "$have" ]; then
  ok "monthly partitions: $(echo "$have" | wc -l) (a fresh migrate's and the 0.1 reports' months)"
else
  diff <(echo "$want") <(echo "$have") | head -10
  fail "monthly partitions of the upgraded database (> extra, < missing)"
fi
[ "$(q up "SELECT count(*) FROM dmarc.reports_default")" = "$(q v01 "SELECT count(*) FROM dmarc.reports
  WHERE date_begin < '2000-01-01' OR date_begin >= date_trunc('month', now() + interval '1 year', 'UTC') + interval '1 month'")" ] \
  || fail "the DEFAULT partition does not hold exactly the 0.1 reports outside the months window"

# ---- a failing upgrade leaves the 0.1 database as it was
full() { pg_dump -d "$1" | sed -e '/^-- Dumped \(from\|by\) /d' -e '/^\\restrict /d' -e '/^\\unrestrict /d'; }
id=$(q bad "SELECT max(id) FROM dmarc.reports WHERE date_begin >= '2000-01-01'")
q bad "UPDATE dmarc.reports SET date_end = NULL WHERE id = $id" >/dev/null
full bad > "$tmp/bad-before.sql"
"$DC_BIN" --db "$(dsn bad)" migrate > "$tmp/bad.out" 2> "$tmp/bad.err"; rc=$?
full bad > "$tmp/bad-after.sql"
if [ "$rc" = 0 ]; then
  fail "migrate of a 0.1 database with a report without date_end exited 0"
elif [ "$(wc -l < "$tmp/bad.err")" != 1 ] || ! grep -q "date_end" "$tmp/bad.err" || ! grep -q "$id" "$tmp/bad.err"; then
  cat "$tmp/bad.err"
  fail "a failed upgrade should say why in one line, naming date_end and report $id"
else
  ok "failed upgrade exits $rc: $(cat "$tmp/bad.err")"
fi
if cmp -s "$tmp/bad-before.sql" "$tmp/bad-after.sql"; then
  ok "the failed upgrade left the 0.1 database as it was ($(wc -c < "$tmp/bad-before.sql") bytes of pg_dump)"
else
  diff -u "$tmp/bad-before.sql" "$tmp/bad-after.sql" | sed -n '3,20p'
  fail "the failed upgrade changed the 0.1 database"
fi

# an object of someone's own on a 0.1 table would go with dmarc_v01: refused
q bad "CREATE VIEW public.my_records AS SELECT id, source_ip FROM dmarc.records" >/dev/null
"$DC_BIN" --db "$(dsn bad)" migrate > "$tmp/bad.out" 2> "$tmp/bad.err"; rc=$?
if [ "$rc" != 0 ] && [ "$(wc -l < "$tmp/bad.err")" = 1 ] && grep -q 'view public.my_records' "$tmp/bad.err" &&
   [ "$(q bad "SELECT count(*) FROM dmarc.schema_migrations WHERE name = '001_schema.sql'")" = 1 ]; then
  ok "a view of someone's own on a 0.1 table is refused, exit $rc: $(cat "$tmp/bad.err")"
else
  cat "$tmp/bad.err"
  fail "a view on a 0.1 table: migrate exited $rc, should refuse in one line naming view public.my_records"
fi

# ---- a database of 0.1 at commit d00bbda (migrations 001-007: failures
# has no original_id yet) upgrades too; its failures then have none
dc_pg_newdb v007 >/dev/null || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d v007 -c "CREATE SCHEMA dmarc" \
  -c "CREATE TABLE dmarc.schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())" || exit 1
for f in "$U"/sql-0.1/00[1-7]_*.sql; do
  psql -X -q -v ON_ERROR_STOP=1 -d v007 -1 -f "$f" \
    -c "INSERT INTO dmarc.schema_migrations (name, applied_at) VALUES ('$(basename "$f")', now())" >/dev/null || exit 1
done
pg_restore -l "$U/v0.1-corpus.dump" | grep -v ' TABLE DATA dmarc failures ' > "$tmp/v007.list"
pg_restore --data-only --disable-triggers -L "$tmp/v007.list" -d v007 "$U/v0.1-corpus.dump" || fail "restore into the 007 database"
q v007 "INSERT INTO dmarc.failures (stage, reason, content, sha256) VALUES ('xml', 'broken', '\x3c61', sha256('\x3c61'))" >/dev/null
cnt() { q "$1" "SELECT format('%s %s %s %s', (SELECT count(*) FROM dmarc.reports), (SELECT count(*) FROM dmarc.records),
  (SELECT count(*) FROM dmarc.spf_results), (SELECT count(*) FROM dmarc.failures WHERE content = '\x3c61'))"; }
c007=$(cnt v007)
out=$("$DC_BIN" --db "$(dsn v007)" migrate 2>&1); rc=$?
if [ "$rc" = 0 ] && [ "$(cnt v007)" = "$c007" ] && [ "$(q v007 "SELECT count(original_id) FROM dmarc.failures")" = 0 ]; then
  ok "a 0.1 database of migrations 001-007 upgraded (reports, records, SPF results, failures: $c007)"
else
  echo "$out" | tail -5
  fail "the 001-007 database: migrate exited $rc, counts '$c007' before, '$(cnt v007)' after"
fi

[ "$fails" = 0 ] || { echo "FAIL: $fails checks failed"; exit 1; }
echo "PASS"

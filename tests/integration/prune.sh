#!/bin/bash
# prune.sh - retention: `prune --older-than DAYS` deletes reports whose
# date_end is older than DAYS (with records and auth results), failures
# older than DAYS and originals no report references; in several batches;
# the counts it reports are the rows that went; nothing newer goes; the daily
# rollups follow; a second run deletes nothing; the read-only role cannot.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb prune || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $* [${SECONDS}s]"; }
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
DB="host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=postgres"

"$DC_BIN" -q --db "$DB" migrate || { echo "FAIL: migrate"; exit 1; }
"$DC_BIN" -q --db "$DB" import "$DC_SRC/tests/data/corpus" >/dev/null 2>&1
[ "$(q "SELECT count(*) FROM dmarc.reports")" -gt 50 ] || { echo "FAIL: corpus import"; exit 1; }
# 36 days of generated reports up to yesterday (25,000 records or so, 6,000
# older than 30 days), triggers off while generating
psql -X -q -v ON_ERROR_STOP=1 -v days=36 -v reporters=40 -v records=10 -v ips=2000 \
  -c "SET session_replication_role = replica" -f "$DC_SRC/bench/panels-gen.sql" >/dev/null \
  || { echo "FAIL: generating data"; exit 1; }
q "SELECT dmarc.rollup_rebuild()" >/dev/null
ok "test data generated"
# originals first seen long ago (the corpus was imported a second ago, and
# originals younger than an hour are kept for imports in flight); half the
# failures old, half new
q "UPDATE dmarc.originals SET first_seen = now() - interval '2 days'" >/dev/null
q "UPDATE dmarc.failures SET failed_at = now() - interval '400 days' WHERE id % 2 = 0" >/dev/null
q "UPDATE dmarc.failures SET failed_at = now() - interval '1 day' WHERE id % 2 = 1" >/dev/null
# the poller's message log: 3 rows older than the cutoff, 2 newer
q "INSERT INTO dmarc.mailboxes (url, username, label, uidvalidity, last_uid) VALUES ('imaps://127.0.0.1/INBOX', 'rua', 'it', 7, 9)" >/dev/null
q "INSERT INTO dmarc.mailbox_messages (mailbox_id, uidvalidity, uid, outcome, action, handled_at)
   SELECT m.id, 7, u, 'stored', 'move:Archive/DMARC', now() - make_interval(days => CASE WHEN u <= 3 THEN 40 ELSE 1 END)
   FROM dmarc.mailboxes m, generate_series(1, 5) u WHERE m.label = 'it'" >/dev/null

counts() {
  q "SELECT (SELECT count(*) FROM dmarc.reports) || ' ' || (SELECT count(*) FROM dmarc.records) || ' ' ||
            (SELECT count(*) FROM dmarc.dkim_results) || ' ' || (SELECT count(*) FROM dmarc.spf_results) || ' ' ||
            (SELECT count(*) FROM dmarc.failures) || ' ' || (SELECT count(*) FROM dmarc.originals)"
}
before=($(counts))
# rows that must stay: reports ending within the last 30 days (minus a minute
# of slack for the clock moving on), with all their records
keep_reports=$(q "SELECT count(*) FROM dmarc.reports WHERE date_end >= now() - interval '30 days' + interval '1 minute'")
keep_records=$(q "SELECT count(*) FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id
                  WHERE p.date_end >= now() - interval '30 days' + interval '1 minute'")
old_reports=$(q "SELECT count(*) FROM dmarc.reports WHERE date_end < now() - interval '30 days' - interval '1 minute'")
[ "$old_reports" -gt 100 ] && [ "$keep_reports" -gt 100 ] || fail "test data: $old_reports old, $keep_reports new reports"

# batches of 1,000 records: several report transactions
DC_PRUNE_BATCH_RECORDS=1000 "$DC_BIN" --db "$DB" prune --older-than 30 >"$tmp/prune.log" 2>&1
rc=$?
cat "$tmp/prune.log"
[ $rc = 0 ] && ok "prune --older-than 30 exited 0" || fail "prune exited $rc"
after=($(counts))
line=$(grep -E 'prune: older than 30 days: deleted' "$tmp/prune.log")
# the reported counts are exactly the rows that went
read -r r_rep r_rec r_dkim r_spf r_fail r_orig r_tx < <(sed -E 's/.*deleted ([0-9]+) reports, ([0-9]+) records, ([0-9]+) dkim results, ([0-9]+) spf results, ([0-9]+) failures, ([0-9]+) originals in ([0-9]+) transactions.*/\1 \2 \3 \4 \5 \6 \7/' <<<"$line")
names=(reports records dkim_results spf_results failures originals)
reported=("$r_rep" "$r_rec" "$r_dkim" "$r_spf" "$r_fail" "$r_orig")
for i in 0 1 2 3 4 5; do
  gone=$((before[i] - after[i]))
  if [ "${reported[i]:-x}" = "$gone" ] && [ "$gone" -gt 0 ]; then
    ok "${names[i]}: reported ${reported[i]} deleted, ${before[i]} -> ${after[i]}"
  else
    fail "${names[i]}: reported '${reported[i]:-}' deleted but ${before[i]} -> ${after[i]}"
  fi
done
# reports in batches of 1,000 records, failures in 2 of 1,000 rows, originals 1
# (a batch closes after the report that reaches 1,000: at most 2,000 records)
[ "${r_tx:-0}" -ge $((r_rec / 2000 + 3)) ] && ok "$r_tx transactions (batches)" || fail "expected $((r_rec / 2000 + 3))+ batches, got '${r_tx:-}'"

# nothing older than the cutoff is left, nothing newer went
[ "$(q "SELECT count(*) FROM dmarc.reports WHERE date_end < now() - interval '30 days' - interval '1 minute'")" = 0 ] \
  && ok "no report older than 30 days left" || fail "old reports left"
[ "$(q "SELECT count(*) FROM dmarc.reports WHERE date_end >= now() - interval '30 days' + interval '1 minute'")" = "$keep_reports" ] \
  && ok "all $keep_reports newer reports kept" || fail "newer reports deleted"
[ "$(q "SELECT count(*) FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id
        WHERE p.date_end >= now() - interval '30 days' + interval '1 minute'")" = "$keep_records" ] \
  && ok "all $keep_records records of newer reports kept" || fail "records of newer reports deleted"
[ "$(q "SELECT count(*) FROM dmarc.records r WHERE NOT EXISTS (SELECT 1 FROM dmarc.reports p WHERE p.id = r.report_id)")" = 0 ] \
  || fail "orphan records"
[ "$(q "SELECT count(*) FROM dmarc.failures WHERE failed_at < now() - interval '30 days'")" = 0 ] \
  && [ "$(q "SELECT count(*) FROM dmarc.failures")" -gt 0 ] && ok "old failures gone, new ones kept" || fail "failures"
[ "$(q "SELECT count(*) FROM dmarc.originals o WHERE NOT EXISTS (SELECT 1 FROM dmarc.reports r WHERE r.original_id = o.id)
        AND NOT EXISTS (SELECT 1 FROM dmarc.failures f WHERE f.original_id = o.id)")" = 0 ] \
  && ok "no unreferenced original left" || fail "unreferenced originals left"
# the bytes of the failures kept are kept too (sql/008: failures refer to originals)
[ "$(q "SELECT count(*) FROM dmarc.failures f WHERE f.original_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM dmarc.originals o WHERE o.id = f.original_id)")" = 0 ] \
  && [ "$(q "SELECT count(*) FROM dmarc.failures f WHERE f.original_id IS NOT NULL")" -gt 0 ] \
  && ok "originals of the failures kept stay" || fail "originals of kept failures"
[ "$(q "SELECT count(*) FROM dmarc.reports r WHERE r.original_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM dmarc.originals o WHERE o.id = r.original_id)")" = 0 ] || fail "dangling original_id"
# the rollups lost exactly the pruned reports
n=$(q "WITH a AS (SELECT day, policy_domain, sum(messages) AS m FROM dmarc.daily_mail GROUP BY 1, 2 HAVING sum(messages) > 0),
            b AS (SELECT day, policy_domain, messages AS m FROM dmarc.daily_summary WHERE day IS NOT NULL AND messages > 0)
       SELECT (SELECT count(*) FROM (SELECT * FROM a EXCEPT SELECT * FROM b) x) + (SELECT count(*) FROM (SELECT * FROM b EXCEPT SELECT * FROM a) x)")
[ "$n" = 0 ] && ok "daily rollups equal daily_summary after prune" || fail "rollups differ in $n rows after prune"

# the poller's message log: old rows go, new ones and the mailbox's position stay
[ "$(q "SELECT count(*) FROM dmarc.mailbox_messages WHERE handled_at < now() - interval '30 days'")" = 0 ] \
  && [ "$(q "SELECT count(*) FROM dmarc.mailbox_messages")" = 2 ] \
  && [ "$(q "SELECT last_uid FROM dmarc.mailboxes WHERE label = 'it'")" = 9 ] \
  && grep -q '; 3 message log rows' "$tmp/prune.log" \
  && ok "old message log rows gone (3), new ones and last_uid kept" || { cat "$tmp/prune.log"; fail "message log"; }

# again: nothing to do
"$DC_BIN" --db "$DB" prune --older-than 30 >"$tmp/prune2.log" 2>&1 && grep -q 'deleted 0 reports, 0 records, 0 dkim results, 0 spf results, 0 failures, 0 originals in 0 transactions; 0 message log rows' "$tmp/prune2.log" \
  && ok "second prune deletes nothing" || { cat "$tmp/prune2.log"; fail "second prune"; }
# bad arguments
"$DC_BIN" --db "$DB" prune --older-than -5 >/dev/null 2>&1; rc=$?
[ $rc = 2 ] && ok "negative days: exit 2" || fail "negative days exited $rc"
DC_PRUNE_BATCH_RECORDS=lots "$DC_BIN" --db "$DB" prune --older-than 30 >/dev/null 2>&1; rc=$?
[ $rc = 2 ] && ok "bad DC_PRUNE_BATCH_RECORDS: exit 2" || fail "bad batch size exited $rc"
# the read-only role cannot prune
q "CREATE ROLE it_reader LOGIN IN ROLE dmarc_reader" >/dev/null
n0=$(q "SELECT count(*) FROM dmarc.reports")
"$DC_BIN" --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=it_reader" prune --older-than 0 >"$tmp/prune3.log" 2>&1; rc=$?
if [ $rc = 2 ] && grep -q 'permission denied.*SQLSTATE 42501' "$tmp/prune3.log" && [ "$(q "SELECT count(*) FROM dmarc.reports")" = "$n0" ]; then
  ok "dmarc_reader cannot prune (exit 2: refused, not unreachable; permission denied, nothing deleted)"
else
  cat "$tmp/prune3.log"; fail "prune as dmarc_reader exited $rc"
fi
# everything: --older-than 0 removes every report that has ended
"$DC_BIN" --db "$DB" prune --older-than 0 >"$tmp/prune4.log" 2>&1 && [ "$(q "SELECT count(*) FROM dmarc.reports WHERE date_end < now()")" = 0 ] \
  && [ "$(q "SELECT count(*) FROM dmarc.reports")" = "$(q "SELECT count(DISTINCT report_id) FROM dmarc.record_days")" ] \
  && [ "$(q "SELECT coalesce(sum(messages), 0) FROM dmarc.daily_mail")" = "$(q "SELECT coalesce(sum(messages), 0) FROM dmarc.daily_summary")" ] \
  && ok "--older-than 0: every ended report gone, the rollups hold only the rest" \
  || { cat "$tmp/prune4.log"; fail "--older-than 0"; }

if [ $fails -gt 0 ]; then
  echo "prune.sh: $fails failure(s)"
  exit 1
fi
echo "prune.sh: all passed"

#!/bin/bash
# prune.sh - retention: `prune --older-than DAYS` deletes reports whose
# date_end is older than DAYS (with records and auth results), failures
# older than DAYS and originals no report references; whole monthly
# partitions are detached and dropped where every report of the month has
# expired (oldest first), the rest goes by rows in several batches; the
# counts it reports are the rows that went; nothing newer goes; the daily
# rollups stay exactly what dmarc.rollup_rebuild() computes; a second run
# deletes nothing; the read-only role cannot.  The run log (dmarc.poll_runs)
# loses its rows older than DAYS; dmarc.alerts_sent those older than DAYS
# whose alert no longer fires (a stub dmarc.alerts view when the schema has
# none: the test database only).
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
# 105 days of generated reports up to yesterday: the three or more months
# before the cutoff's month (all expired: they go whole), the cutoff's month
# (the edge: partly expired, by rows) and the current month; 20 reporters,
# about 8 records each, a DKIM result per record (a second for a fifth of
# them, in dkim_more), an SPF result; a third of the reporters send reports
# that do not start at midnight, so they span two days.  Then:
#   * a report spanning the end of an old month (its days reach into the next
#     month, which goes too): its share after the month's end must go;
#   * a report dated 1999 (DEFAULT partition), expired: it goes by rows,
#     after every month dropped before it took it out and put it back;
#   * a report stored in the DEFAULT partition because its month (the fourth
#     before the cutoff's or earlier) has no partition yet, as between a
#     collector's insert and the next maintain_partitions, whose period runs until
#     tomorrow: it is kept, and its rollup days in the months dropped whole
#     must survive the drops;
#   * one expired report of an old month left NOT rolled up (as if its
#     writer died before rollup_pending): it is in no rollup and must not be
#     taken out of one.
# The reports go into the DEFAULT partition, then dmarc.maintain_partitions()
# moves them into monthly partitions as poll and import do; they are rolled
# up all at once (dmarc.defer_rollup on while generating).
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || { echo "FAIL: generating data"; exit 1; }
SET dmarc.defer_rollup = on;
SELECT setseed(0.11);
SELECT coalesce(max(id), 0) AS base_id FROM dmarc.records \gset
CREATE TEMP TABLE gen AS
SELECT g AS n, 'gen-' || g || '.example.net' AS org_name, (g % 3 = 0) AS shifted
FROM generate_series(1, 20) g;
INSERT INTO dmarc.ip_names (ip, ptr, ptr_base_domain, forward_confirmed, status)
SELECT ('10.9.0.' || g)::inet, 'mx' || g || '.example.org', 'example.org', g % 4 <> 0, 'ok'
FROM generate_series(1, 40) g ON CONFLICT (ip) DO NOTHING;
INSERT INTO dmarc.reports (org_name, report_id, policy_domain, date_begin, date_end, policy_p, record_count, message_total, file_name)
SELECT g.org_name, 'gen-' || g.n || '-' || d, CASE WHEN g.n % 5 = 0 THEN 'shop.example.com' ELSE 'example.com' END,
       t.day + CASE WHEN g.shifted THEN interval '7 hours' ELSE interval '0' END,
       t.day + CASE WHEN g.shifted THEN interval '7 hours' ELSE interval '0' END + interval '1 day' - interval '1 second',
       'reject', 3 + (random() * 10)::int, 0, 'gen.xml'
FROM gen g, generate_series(1, 105) d,
     LATERAL (SELECT date_trunc('day', now(), 'UTC') - make_interval(days => d) AS day) t;
-- the report across an old month's end: from the last day of the month two
-- before the cutoff's month, 20:00, to the next month's first day, 08:00
INSERT INTO dmarc.reports (org_name, report_id, policy_domain, date_begin, date_end, policy_p, record_count, message_total, file_name)
SELECT 'span.example.net', 'gen-span', 'example.com', m - interval '4 hours', m + interval '8 hours', 'reject', 6, 0, 'gen.xml'
FROM (SELECT date_trunc('month', now() - interval '30 days', 'UTC') - interval '1 month' AS m) x;
INSERT INTO dmarc.reports (org_name, report_id, policy_domain, date_begin, date_end, policy_p, record_count, message_total, file_name)
VALUES ('junk.example.net', 'gen-1999-old', 'example.com', '1999-03-01 00:00+00', '1999-03-02 00:00+00', 'none', 4, 0, 'gen.xml');
INSERT INTO dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count,
	disposition, dkim_aligned, spf_aligned, header_from, envelope_from,
	dkim_count, dkim_domain, dkim_selector, dkim_result, dkim_more,
	spf_count, spf_domain, spf_scope, spf_result)
SELECT :base_id + row_number() OVER (), rep.id, rep.date_begin, rep.policy_domain, o,
       ('10.9.0.' || (1 + (x * 39)::int))::inet, 1 + (x * x * 200)::int,
       CASE WHEN f THEN 'reject' ELSE 'none' END, CASE WHEN f THEN 'fail' ELSE 'pass' END,
       CASE WHEN f OR y < 0.3 THEN 'fail' ELSE 'pass' END, rep.policy_domain,
       CASE WHEN y < 0.1 THEN '' ELSE rep.policy_domain END,
       CASE WHEN o % 5 = 0 THEN 2 ELSE 1 END, rep.policy_domain, 's1', CASE WHEN f THEN 'fail' ELSE 'pass' END,
       CASE WHEN o % 5 = 0 THEN '[{"domain": "esp.example.net", "selector": "k1", "result": "pass"}]'::jsonb END,
       1, CASE WHEN y < 0.2 THEN 'mx' || (1 + (x * 39)::int) || '.example.org' ELSE rep.policy_domain END,
       CASE WHEN y < 0.05 THEN 'helo' ELSE 'mfrom' END, CASE WHEN f THEN 'softfail' ELSE 'pass' END
FROM dmarc.reports rep, LATERAL generate_series(1, rep.record_count::int) o,
     LATERAL (SELECT random() + 0 * o AS x, random() + 0 * o AS y, random() + 0 * o < 0.15 AS f) r
WHERE rep.report_id LIKE 'gen-%';
UPDATE dmarc.reports rep SET message_total = s.m
FROM (SELECT report_id, sum(message_count) AS m FROM dmarc.records GROUP BY report_id) s
WHERE s.report_id = rep.id AND rep.report_id LIKE 'gen-%';
SQL
# (rolled up before the move: moved reports not rolled up yet would be
# rolled up one by one at the commit of the move)
q "SELECT dmarc.rollup_rebuild()" >/dev/null
q "SELECT dmarc.maintain_partitions()" >/dev/null || { echo "FAIL: maintain_partitions"; exit 1; }
# the long one, in the DEFAULT partition (a month without a partition),
# rolled up at its commit
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || { echo "FAIL: long report"; exit 1; }
BEGIN;
WITH r AS (
  INSERT INTO dmarc.reports (org_name, report_id, policy_domain, date_begin, date_end, policy_p, record_count, message_total, file_name)
  SELECT 'long.example.net', 'gen-long', 'example.com', m + interval '10 days 12 hours',
         date_trunc('day', now(), 'UTC') + interval '1 day', 'none', 3, 0, 'gen.xml'
  FROM (SELECT m FROM generate_series(date_trunc('month', now() - interval '30 days', 'UTC') - interval '4 months',
                                      date_trunc('month', now() - interval '30 days', 'UTC') - interval '40 months',
                                      interval '-1 month') m
        WHERE to_regclass('dmarc.reports_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM')) IS NULL LIMIT 1) x
  RETURNING id, date_begin, policy_domain)
INSERT INTO dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count, disposition,
  dkim_aligned, spf_aligned, header_from, envelope_from, dkim_count, spf_count, spf_domain, spf_scope, spf_result)
SELECT (SELECT max(id) FROM dmarc.records) + o, r.id, r.date_begin, r.policy_domain, o, ('10.9.0.' || o)::inet, 1000 * o,
       'none', CASE WHEN o = 1 THEN 'pass' ELSE 'fail' END, 'fail', 'example.com',
       CASE WHEN o = 3 THEN '' ELSE 'example.com' END, 0, 1, 'example.com', 'mfrom', 'fail'
FROM r, generate_series(1, 3) o;
COMMIT;
SQL
# the one left out of the rollups: an expired report of the oldest generated
# month, stored with dmarc.defer_rollup = on and never rolled up
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || { echo "FAIL: pending report"; exit 1; }
BEGIN;
SET LOCAL dmarc.defer_rollup = on;
WITH r AS (
  INSERT INTO dmarc.reports (org_name, report_id, policy_domain, date_begin, date_end, policy_p, record_count, message_total, file_name)
  SELECT 'pending.example.net', 'gen-pending', 'example.com', d, d + interval '1 day', 'reject', 2, 20, 'gen.xml'
  FROM (SELECT date_trunc('day', now(), 'UTC') - interval '100 days' AS d) x
  RETURNING id, date_begin, policy_domain)
INSERT INTO dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count, disposition,
  dkim_aligned, spf_aligned, header_from, dkim_count, spf_count)
SELECT (SELECT max(id) FROM dmarc.records) + o, r.id, r.date_begin, r.policy_domain, o, '10.9.0.1', 10, 'none', 'pass', 'pass', 'example.com', 0, 0
FROM r, generate_series(1, 2) o;
COMMIT;
SQL
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
# the run log: 4 polls older than the cutoff, 2 newer
q "INSERT INTO dmarc.poll_runs (mailbox_id, mailbox, started_at, finished_at, ok)
   SELECT m.id, 'it', now() - make_interval(days => d), now() - make_interval(days => d), true
   FROM dmarc.mailboxes m, unnest(ARRAY[400, 90, 40, 31, 29, 1]) d WHERE m.label = 'it'" >/dev/null
# alerts sent: old and no longer firing (goes), old and still firing (stays),
# recent and no longer firing (stays)
if [ "$(q "SELECT to_regclass('dmarc.alerts') IS NULL")" = t ]; then
  q "CREATE VIEW dmarc.alerts AS SELECT 'it_test'::text AS alert, 'firing'::text AS key,
     'a test alert'::text AS summary, '{}'::jsonb AS details; SELECT dmarc.grant_roles()" >/dev/null
fi
# the mailbox never read successfully for two days: dmarc.alert_collector_stale fires
q "UPDATE dmarc.mailboxes SET created_at = now() - interval '2 days' WHERE label = 'it'" >/dev/null
firing=$(q "SELECT alert || '|' || key FROM dmarc.alerts ORDER BY alert = 'collector_stale' DESC LIMIT 1")
[ -n "$firing" ] || fail "no alert fires"

q "INSERT INTO dmarc.alerts_sent (alert, key, sent_at) VALUES
   ('it_test', 'gone-old', now() - interval '40 days'), ('it_test', 'gone-new', now() - interval '1 day')" >/dev/null
[ -n "$firing" ] && q "INSERT INTO dmarc.alerts_sent (alert, key, sent_at)
   VALUES ('${firing%%|*}', '${firing#*|}', now() - interval '40 days')" >/dev/null

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

# the months: the three before the cutoff's month (they go whole), the
# cutoff's month (the edge) and the current one; each a partition of reports
# and one of records
month() { q "SELECT to_char(date_trunc('month', now() - interval '30 days', 'UTC') AT TIME ZONE 'UTC' + interval '$1 months', 'YYYY_MM')"; }
old_months="$(month -3) $(month -2) $(month -1)"
edge_month=$(month 0)
cur_month=$(q "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')")
parts() { # the partitions of dmarc.reports and dmarc.records named in $@ that exist
  local m n=0
  for m in "$@"; do
    n=$((n + $(q "SELECT (to_regclass('dmarc.reports_$m') IS NOT NULL)::int + (to_regclass('dmarc.records_$m') IS NOT NULL)::int")))
  done
  echo $n
}
[ "$(parts $old_months $edge_month $cur_month)" = 10 ] && ok "partitions of $old_months, $edge_month, $cur_month" \
  || fail "test data: partitions of $old_months $edge_month $cur_month: $(parts $old_months $edge_month $cur_month) of 10"
[ "$(q "SELECT count(*) FROM dmarc.reports_default WHERE report_id IN ('gen-1999-old', 'gen-long') AND rolled_up")" = 2 ] \
  || fail "test data: gen-1999-old and gen-long not rolled up in reports_default"
[ "$(q "SELECT count(*) FROM dmarc.reports WHERE report_id = 'gen-pending' AND NOT rolled_up")" = 1 ] || fail "test data: pending report"
# the edge month's reports on both sides of the cutoff
edge_old=$(q "SELECT count(*) FROM dmarc.reports_$edge_month WHERE date_end < now() - interval '30 days' - interval '1 minute'")
edge_keep=$(q "SELECT count(*) FROM dmarc.reports_$edge_month WHERE date_end >= now() - interval '30 days' + interval '1 minute'")
[ "$edge_keep" -gt 0 ] || fail "test data: nothing to keep in the edge month $edge_month"

# the daily rollups against a rebuild from the records left: 0 when they are
# the same, row for row (the rebuild replaces them)
rollup_diff() {
  q "SET client_min_messages = warning; DROP TABLE IF EXISTS public.it_rd, public.it_rs, public.it_rm, public.it_rr;
     CREATE TABLE public.it_rd AS SELECT * FROM dmarc.rollup_daily;
     CREATE TABLE public.it_rs AS SELECT * FROM dmarc.rollup_sources;
     CREATE TABLE public.it_rm AS SELECT * FROM dmarc.rollup_domains;
     CREATE TABLE public.it_rr AS SELECT * FROM dmarc.rollup_reporters" >/dev/null
  [ "$(q "SELECT count(*) FROM dmarc.reports WHERE NOT rolled_up")" = 0 ] || { echo "reports not rolled up"; return; }
  q "SELECT dmarc.rollup_rebuild()" >/dev/null
  q "SELECT (SELECT count(*) FROM (SELECT * FROM public.it_rd EXCEPT ALL SELECT * FROM dmarc.rollup_daily) x)
          + (SELECT count(*) FROM (SELECT * FROM dmarc.rollup_daily EXCEPT ALL SELECT * FROM public.it_rd) x)
          + (SELECT count(*) FROM (SELECT * FROM public.it_rs EXCEPT ALL SELECT * FROM dmarc.rollup_sources) x)
          + (SELECT count(*) FROM (SELECT * FROM dmarc.rollup_sources EXCEPT ALL SELECT * FROM public.it_rs) x)
          + (SELECT count(*) FROM (SELECT * FROM public.it_rm EXCEPT ALL SELECT * FROM dmarc.rollup_domains) x)
          + (SELECT count(*) FROM (SELECT * FROM dmarc.rollup_domains EXCEPT ALL SELECT * FROM public.it_rm) x)
          + (SELECT count(*) FROM (SELECT * FROM public.it_rr EXCEPT ALL SELECT * FROM dmarc.rollup_reporters) x)
          + (SELECT count(*) FROM (SELECT * FROM dmarc.rollup_reporters EXCEPT ALL SELECT * FROM public.it_rr) x)"
}

# batches of 100 records at the edge: several report transactions; as the
# collector's role (dmarc_writer), which does not own the partitions it drops
q "CREATE ROLE it_writer LOGIN IN ROLE dmarc_writer" >/dev/null
DC_PRUNE_BATCH_RECORDS=100 "$DC_BIN" --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=it_writer" prune --older-than 30 >"$tmp/prune.log" 2>&1
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
# whole months: at least the three generated ones (and the corpus's); the
# rest by rows in batches of 100 records (a batch closes after the report that
# reaches 100: at most 200 records a report of the generated data), failures
# and originals at least one batch each
read -r r_months r_mrep r_mrec r_rows < <(sed -E 's/.*; ([0-9]+) months dropped whole \(([0-9]+) reports, ([0-9]+) records\), ([0-9]+) reports deleted by rows.*/\1 \2 \3 \4/' <<<"$line")
[ "${r_months:-0}" -ge 3 ] && [ "${r_rows:-0}" -gt 0 ] && [ $((r_mrep + r_rows)) = "$r_rep" ] \
  && ok "$r_months months dropped whole ($r_mrep reports, $r_mrec records), $r_rows reports by rows" \
  || fail "months '${r_months:-}' ('${r_mrep:-}' reports), reports by rows '${r_rows:-}' of '$r_rep'"
[ "${r_tx:-0}" -ge $((r_months + (r_rec - r_mrec) / 200 + 2)) ] && ok "$r_tx transactions (months and batches)" \
  || fail "expected $((r_months + (r_rec - r_mrec) / 200 + 2))+ transactions, got '${r_tx:-}'"
# the old months are gone as tables, the edge month and the current one stay
[ "$(parts $old_months)" = 0 ] && ok "partitions of $old_months dropped" || fail "partitions of $old_months: $(parts $old_months) left"
[ "$(parts $edge_month $cur_month)" = 4 ] && ok "partitions of $edge_month and $cur_month kept" || fail "partitions of $edge_month $cur_month"
[ "$(q "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent IN ('dmarc.reports'::regclass, 'dmarc.records'::regclass)
        AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
        AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
            <= now() - interval '30 days' - interval '1 minute'")" = 0 ] \
  && ok "no monthly partition ending before the cutoff left" || fail "monthly partitions ending before the cutoff left"
# the edge month: its expired reports went by rows, the others stay
[ "$(q "SELECT count(*) FROM dmarc.reports_$edge_month WHERE date_end < now() - interval '30 days' - interval '1 minute'")" = 0 ] \
  && [ "$(q "SELECT count(*) FROM dmarc.reports_$edge_month WHERE date_end >= now() - interval '30 days' + interval '1 minute'")" = "$edge_keep" ] \
  && [ "$edge_old" -gt 0 ] && ok "edge month $edge_month: $edge_old expired reports gone, $edge_keep kept" || fail "edge month $edge_month"
# the odd ones
[ "$(q "SELECT string_agg(report_id, ' ' ORDER BY report_id) FROM dmarc.reports WHERE report_id IN ('gen-1999-old', 'gen-long', 'gen-span', 'gen-pending')")" = gen-long ] \
  && [ "$(q "SELECT count(*) FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id WHERE p.report_id = 'gen-long'")" = 3 ] \
  && ok "1999 report gone, DEFAULT report running until tomorrow kept; month-spanning and never rolled-up reports gone" \
  || fail "odd reports: $(q "SELECT string_agg(report_id, ' ') FROM dmarc.reports WHERE report_id IN ('gen-1999-old', 'gen-long', 'gen-span', 'gen-pending')")"
n=$(rollup_diff)
[ "$n" = 0 ] && ok "daily rollups after prune = rollup_rebuild()" || fail "daily rollups after prune differ from a rebuild: $n rows"

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
        AND NOT EXISTS (SELECT 1 FROM dmarc.failures f WHERE f.original_id = o.id)
        AND NOT EXISTS (SELECT 1 FROM dmarc.failure_reports x WHERE x.original_id = o.id)")" = 0 ] \
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
# the run log: old rows go, new ones stay
[ "$(q "SELECT string_agg(extract(day FROM now() - started_at)::int::text, ',' ORDER BY started_at) FROM dmarc.poll_runs")" = "29,1" ] \
  && grep -q '; 3 message log rows, 4 run log rows, 1 alerts sent' "$tmp/prune.log" \
  && ok "run log rows older than 30 days gone (4), 2 newer kept" || { cat "$tmp/prune.log"; fail "run log"; }
# alerts sent: only the old one that no longer fires goes
[ "$(q "SELECT string_agg(key, ',' ORDER BY key) FROM dmarc.alerts_sent WHERE key LIKE 'gone-%'")" = "gone-new" ] \
  && ok "an old alert sent that no longer fires gone, a recent one kept" || fail "alerts_sent: old ones not pruned"
if [ -n "$firing" ]; then
  [ "$(q "SELECT count(*) FROM dmarc.alerts_sent WHERE alert || '|' || key = '$firing'")" = 1 ] \
    && ok "an old alert sent that still fires kept ($firing)" || fail "alerts_sent: a firing alert was pruned"
fi

# again: nothing to do
"$DC_BIN" --db "$DB" prune --older-than 30 >"$tmp/prune2.log" 2>&1 && grep -q 'deleted 0 reports, 0 records, 0 dkim results, 0 spf results, 0 failures, 0 originals in 0 transactions; 0 message log rows, 0 run log rows, 0 alerts sent' "$tmp/prune2.log" \
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
n=$(rollup_diff)
[ "$n" = 0 ] && ok "daily rollups after --older-than 0 = rollup_rebuild()" || fail "daily rollups after --older-than 0 differ from a rebuild: $n rows"
[ "$(parts $cur_month)" = 2 ] && ok "the current month's partitions kept" || fail "current month's partitions"

if [ $fails -gt 0 ]; then
  echo "prune.sh: $fails failure(s)"
  exit 1
fi
echo "prune.sh: all passed"

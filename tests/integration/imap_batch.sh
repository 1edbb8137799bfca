#!/bin/bash
# imap_batch.sh - `poll --once` stores a whole IMAP batch in one transaction
# (dc_store's batch mode) with the same outcome as one report at a time:
#   * a report delivered twice in the same batch is stored once; the second
#     copy counts as a duplicate in the log and in dmarc.mailbox_messages,
#     although its duplicate is found only when the batch is sent;
#   * a report of 300 records (too big to wait with the batch: it is sent as
#     it is read, in a savepoint) is stored whole, and its second copy in the
#     same batch is recognised as a duplicate mid-stream;
#   * when the server rejects a value of one report of the batch (here a
#     CHECK constraint the test adds), nothing of the batch is kept, the batch
#     is stored again one report at a time, and only that report is
#     rejected (dmarc.failures, moved to the invalid folder);
#   * the daily rollups, added once per listing (sql/007), match the views
#     (dmarc.daily_summary) after all of it, and a report a crashed writer
#     left out of them is added by the next poll.
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
q() { psql -X -At -v ON_ERROR_STOP=1 -d imap -c "$1"; }
# the messages' outcomes, by the report id in their Message-ID (<TAG-i@gen.example>)
outcomes() {
  q "SELECT string_agg(o, ' ' ORDER BY o) FROM (SELECT substring(message_id FROM '<(.*)@') || ':' || reports
       || '/' || duplicates || '/' || failures AS o FROM dmarc.mailbox_messages ${1:-}) m"
}
gen() { python3 "$DC_SRC/tests/integration/imap_mail.py" reports "$@" || exit 1; }
B=$DC_BIN

# first poll, UIDs in delivery order: 1-3 small-1..3, 4 = small-2 again,
# 5 large-1 (300 records), 6 = large-1 again, 7 late-1: one batch
gen "$tmp/small" 3 5 small
gen "$tmp/large" 1 300 large
gen "$tmp/late" 1 5 late
dc_dovecot_seed "$tmp/dv" "$tmp"/small/*.eml "$tmp/small/00002.eml" "$tmp/large/00001.eml" \
  "$tmp/large/00001.eml" "$tmp/late/00001.eml" || exit 1

{ echo "[database]"; echo "conninfo = dbname=imap"
  dc_dovecot_mailbox_conf "$tmp/dv" imaps
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll1.log" 2>&1
check "first poll exit status" "$?" 0
grep -q 'mailbox rua: 7 messages: 7 stored (5 reports, 2 duplicates), 0 rejected (0 failures)' "$tmp/poll1.log" \
  || fail "first summary: $(grep 'mailbox rua:' "$tmp/poll1.log")"
grep -q 'storing them again' "$tmp/poll1.log" && fail "first poll replayed its batch"
check "reports stored" "$(q "SELECT string_agg(report_id || ':' || record_count, ' ' ORDER BY report_id) FROM dmarc.reports")" \
  "large-1:300 late-1:5 small-1:5 small-2:5 small-3:5"
check "records stored" "$(q "SELECT count(*) FROM dmarc.records")" 320
check "records match record_count" \
  "$(q "SELECT count(*) FROM dmarc.reports p WHERE record_count <> (SELECT count(*) FROM dmarc.records r WHERE r.report_id = p.id)")" 0
check "auth results of stored records only" \
  "$(q "SELECT (SELECT count(DISTINCT record_id) FROM dmarc.dkim_results) || ' ' || (SELECT count(DISTINCT record_id) FROM dmarc.spf_results)")" \
  "320 320"
check "originals: one per distinct attachment" "$(q "SELECT count(*) FROM dmarc.originals")" 5
check "every original referenced" \
  "$(q "SELECT count(*) FROM dmarc.originals o WHERE NOT EXISTS (SELECT 1 FROM dmarc.reports p WHERE p.original_id = o.id)")" 0
check "the first copy (lower UID) is the one stored" \
  "$(q "SELECT count(*) FROM dmarc.reports p WHERE uid <> (SELECT min(uid) FROM dmarc.mailbox_messages m WHERE m.message_id = p.message_id)")" 0
check "per-message outcomes (report:reports/duplicates/failures)" "$(outcomes)" \
  "large-1:0/1/0 large-1:1/0/0 late-1:1/0/0 small-1:1/0/0 small-2:0/1/0 small-2:1/0/0 small-3:1/0/0"
check "archived" "$(dc_dovecot_count "$tmp/dv" Archive/DMARC)" 7
check "rollups hold every stored record once" "$(q "SELECT sum(records) FROM dmarc.rollup_daily")" 320
check "no report left outside the rollups" "$(q "SELECT count(*) FROM dmarc.reports WHERE NOT rolled_up")" 0

# second poll: bad-1 (refused by the server), more-1, more-2, more-1 again
gen "$tmp/bad" 1 5 bad
gen "$tmp/more" 2 5 more
dc_dovecot_seed "$tmp/dv" "$tmp/bad/00001.eml" "$tmp"/more/*.eml "$tmp/more/00001.eml" || exit 1
# a report a crashed writer committed with its rollups deferred (sql/007):
# the next poll's rollup_pending() adds it
psql -X -q -v ON_ERROR_STOP=1 -d imap -c "SET dmarc.defer_rollup = on" -c "INSERT INTO dmarc.reports
  (org_name, report_id, policy_domain, date_begin, date_end, record_count, message_total)
  VALUES ('crash.example', 'crash-1', 'example.com', '2025-11-20', '2025-11-21', 0, 0)" || exit 1
check "left out of the rollups" "$(q "SELECT count(*) FROM dmarc.reports WHERE NOT rolled_up")" 1
# a value the collector cannot know the server refuses (SQLSTATE 23514)
q "ALTER TABLE dmarc.reports ADD CONSTRAINT test_no_bad CHECK (report_id <> 'bad-1')" >/dev/null
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll2.log" 2>&1
check "second poll exit status (one rejected)" "$?" 1
grep -q 'mailbox rua: 4 messages: 3 stored (2 reports, 1 duplicates), 1 rejected (1 failures)' "$tmp/poll2.log" \
  || fail "second summary: $(grep 'mailbox rua:' "$tmp/poll2.log")"
grep -q 'UIDs [0-9]* to [0-9]*: .*storing them again one report at a time' "$tmp/poll2.log" \
  || fail "no replay of the batch logged: $(grep -v 'resolve' "$tmp/poll2.log" | tail -3)"
check "reports after the second poll" "$(q "SELECT count(*) || ' ' || sum(record_count) FROM dmarc.reports")" "8 330"
check "the crashed writer's report added to the rollups" "$(q "SELECT count(*) FROM dmarc.reports WHERE NOT rolled_up")" 0
check "outcomes of the second poll" "$(outcomes "WHERE uid > 7")" "bad-1:0/0/1 more-1:0/1/0 more-1:1/0/0 more-2:1/0/0"
check "the rejected report's failure" \
  "$(q "SELECT message_id || ' ' || stage || ' ' || (reason LIKE '%test_no_bad%') FROM dmarc.failures")" \
  "<bad-1@gen.example> store true"
check "archived after the second poll" "$(dc_dovecot_count "$tmp/dv" Archive/DMARC)" 10
check "moved to the invalid folder" "$(dc_dovecot_count "$tmp/dv" Archive/Invalid)" 1
check "rollups after the second poll" "$(q "SELECT sum(records) FROM dmarc.rollup_daily")" 330
check "rollups agree with dmarc.daily_summary" \
  "$(q "SELECT count(*) FROM ((SELECT day, policy_domain, sum(messages) FROM dmarc.rollup_daily GROUP BY 1, 2
        EXCEPT SELECT day, lower(policy_domain), sum(messages) FROM dmarc.daily_summary GROUP BY 1, 2)
       UNION ALL (SELECT day, lower(policy_domain), sum(messages) FROM dmarc.daily_summary GROUP BY 1, 2
        EXCEPT SELECT day, policy_domain, sum(messages) FROM dmarc.rollup_daily GROUP BY 1, 2)) d")" 0

[ "$fails" -eq 0 ] && echo "PASS" || { echo "$fails check(s) failed"; exit 1; }

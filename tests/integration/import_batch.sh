#!/bin/bash
# import_batch.sh - `import` stores up to 200 inputs per transaction
# (dc_store's batch mode) with the outcome of one transaction per report:
#   * a report given twice in one batch is stored once and counted once as a
#     duplicate (records counted once);
#   * a report of 300 records (sent as it is read, in a savepoint) and its
#     copy in the same batch: stored once, the copy a duplicate;
#   * when the server refuses one report (a CHECK constraint the test adds),
#     nothing of the batch is kept and it is imported again one report per
#     transaction: only that report is rejected, with its failure row, and
#     its rejection is told once;
#   * the daily rollups hold every stored record once.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb ib || exit 1

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -d ib -c "$1"; }
gen() { python3 "$DC_SRC/tests/integration/imap_mail.py" reports "$@" || exit 1; }
"$DC_BIN" --db dbname=ib -q migrate || { echo "FAIL: migrate"; exit 1; }

# one batch: small-1..3 with small-2 twice, large-1 (300 records) twice
mkdir "$tmp/in"
gen "$tmp/s" 3 5 small
gen "$tmp/l" 1 300 large
gen "$tmp/b" 1 5 bad
cp "$tmp/s/00001.eml" "$tmp/in/1.eml"
cp "$tmp/s/00002.eml" "$tmp/in/2.eml"
cp "$tmp/s/00002.eml" "$tmp/in/3.eml"     # small-2 again
cp "$tmp/l/00001.eml" "$tmp/in/4.eml"
cp "$tmp/l/00001.eml" "$tmp/in/5.eml"     # large-1 again
cp "$tmp/s/00003.eml" "$tmp/in/6.eml"

"$DC_BIN" --db dbname=ib import "$tmp/in" > "$tmp/import1.log" 2>&1
check "first import's exit status" "$?" 0
grep -q 'import: 6 inputs, 4 reports stored, 2 duplicates, 315 records, 0 rejected' "$tmp/import1.log" \
  || fail "first summary: $(grep 'import:' "$tmp/import1.log")"
check "reports" "$(q "SELECT string_agg(report_id || ':' || record_count, ' ' ORDER BY report_id) FROM dmarc.reports")" \
  "large-1:300 small-1:5 small-2:5 small-3:5"
check "records" "$(q "SELECT count(*) FROM dmarc.records")" 315
check "the first copy is the one stored" "$(q "SELECT string_agg(file_name, ' ' ORDER BY file_name) FROM dmarc.reports")" \
  "$tmp/in/1.eml $tmp/in/2.eml $tmp/in/4.eml $tmp/in/6.eml"

# second import: the server refuses bad-1; the batch is imported again
q "ALTER TABLE dmarc.reports ADD CONSTRAINT test_no_bad CHECK (report_id <> 'bad-1')" >/dev/null
mkdir "$tmp/in2"
gen "$tmp/m" 2 5 more
cp "$tmp/m/00001.eml" "$tmp/in2/1.eml"
cp "$tmp/b/00001.eml" "$tmp/in2/2.eml"
cp "$tmp/m/00002.eml" "$tmp/in2/3.eml"
cp "$tmp/m/00001.eml" "$tmp/in2/4.eml"    # more-1 again
"$DC_BIN" --db dbname=ib import "$tmp/in2" > "$tmp/import2.log" 2>&1
check "second import's exit status (one rejected)" "$?" 1
grep -q 'import: 4 inputs, 2 reports stored, 1 duplicates, 10 records, 1 rejected' "$tmp/import2.log" \
  || fail "second summary: $(grep 'import:' "$tmp/import2.log")"
check "the rejection told once" "$(grep -c 'in2/2.eml: .*test_no_bad' "$tmp/import2.log")" 1
check "its failure row" "$(q "SELECT count(*) || ' ' || min(stage) FROM dmarc.failures WHERE file_name LIKE '%in2/2.eml'")" "1 store"
check "reports after the second import" "$(q "SELECT count(*) || ' ' || sum(record_count) FROM dmarc.reports")" "6 325"
check "rollups hold every stored record once" "$(q "SELECT sum(records) FROM dmarc.rollup_daily")" 325
check "no report left out of the rollups" "$(q "SELECT count(*) FROM dmarc.reports WHERE NOT rolled_up")" 0

[ "$fails" -eq 0 ] && echo "PASS" || { echo "$fails check(s) failed"; cat "$tmp"/import*.log; exit 1; }

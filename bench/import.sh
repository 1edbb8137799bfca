#!/usr/bin/env bash
# bench/import.sh - the ingestion benchmark of issue 2 (a benchmark, not a test).
#
# Generates one report of N records (default 1,000,000), then measures in one run:
#   A. dmarc-collector import of its .xml.gz into a fresh, migrated database
#   B. xmllint --stream --noout on the uncompressed XML (the parsing baseline)
#   C. psql \copy of the same rows into a flat table (dmarc.records' columns, the
#      first DKIM and SPF result inline as the writer stores them, no index, not
#      partitioned) of another fresh database (the storage baseline)
# and prints the ratio A / (B + C), A's peak RSS and A's bytes per record: the
# pg_total_relation_size of dmarc.reports and dmarc.records (every partition, their
# indexes and TOAST) and of every rollup table (dmarc.rollup_*), divided by N.
# The throwaway PostgreSQL runs with fsync=off and synchronous_commit=off for all
# three.
# Usage: bench/import.sh [N]    (needs a build in build/: scripts/test.sh or cmake)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
bin=${DC_BIN:-$src/build/dmarc-collector}
[ -x "$bin" ] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (scripts/install-deps.sh)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/dc-bench-import.XXXXXX)
. "$src/tests/lib/pg.sh"
cleanup() { dc_pg_stop "$tmp/pg" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
chmod 755 "$tmp"

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

echo "generating a report of $n records..."
mkdir -p "$tmp/tsv"
python3 "$src/bench/gen_report.py" "$n" "$tmp/report.xml" "$tmp/tsv" 1
gzip -6 -k "$tmp/report.xml"
xml_mb=$(( $(stat -c %s "$tmp/report.xml") / 1048576 ))
gz_mb=$(( $(stat -c %s "$tmp/report.xml.gz") / 1048576 ))

dc_pg_start "$tmp/pg"
for db in dc_import dc_copy; do
  dc_pg_newdb "$db"
  "$bin" --db "dbname=$db" -q migrate
done

# A: the collector
t0=$(now)
/usr/bin/time -f '%M' -o "$tmp/rss" "$bin" --db "dbname=dc_import" -q import "$tmp/report.xml.gz"
t1=$(now)
a=$(secs "$t0" "$t1")
rss_kb=$(tail -1 "$tmp/rss")
stored=$(psql -X -At -d dc_import -c "SELECT count(*) FROM dmarc.records")
[ "$stored" = "$n" ] || { echo "import stored $stored records, expected $n" >&2; exit 1; }

# B: xmllint --stream
t0=$(now)
xmllint --stream --noout "$tmp/report.xml"
t1=$(now)
b=$(secs "$t0" "$t1")

# A's size: reports and records with all their partitions, and the rollups
sizes=$(psql -X -At -F ' ' -d dc_import -c "
  SELECT (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('dmarc.reports')),
         (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('dmarc.records')),
         (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'dmarc' AND c.relkind = 'r' AND c.relname LIKE 'rollup\\_%')")
read -r sz_rep sz_rec sz_roll <<<"$sizes"
where=$(psql -X -At -d dc_import -c "SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM dmarc.records")

# C: psql \copy of the same rows into a flat table: the records' columns, no index
psql -X -q -d dc_copy -v ON_ERROR_STOP=1 -c "CREATE TABLE public.flat (LIKE dmarc.records)"
t0=$(now)
psql -X -q -d dc_copy -v ON_ERROR_STOP=1 \
  -c "BEGIN" \
  -c "\\copy public.flat (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to, reasons, dkim_count, spf_count, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_domain, spf_scope, spf_result, spf_human_result, dkim_more, spf_more) FROM '$tmp/tsv/records.tsv'" \
  -c "COMMIT"
t1=$(now)
c=$(secs "$t0" "$t1")
flat=$(psql -X -At -d dc_copy -c "SELECT pg_total_relation_size('public.flat')")

ratio=$(python3 -c "print(f'{$a / ($b + $c):.2f}')")
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "report: $n records, XML $xml_mb MiB, gzip $gz_mb MiB"
echo "A import .xml.gz:        ${a} s, peak RSS $((rss_kb / 1024)) MiB"
echo "B xmllint --stream:      ${b} s"
echo "C psql \\copy (flat):    ${c} s"
echo "ratio A / (B + C):       ${ratio} (goal <= 3), RSS goal < 64 MiB"
python3 - "$n" "$sz_rep" "$sz_rec" "$sz_roll" "$flat" <<'PY'
import sys
n, rep, rec, roll, flat = (int(x) for x in sys.argv[1:])
print(f"A bytes per record:      {(rep + rec + roll) / n:.0f} (goal <= 250): records {rec / n:.0f},"
      f" reports {rep / n:.1f}, rollups {roll / n:.1f}; C's flat table {flat / n:.0f}")
PY
echo "A's records are in:      $where"

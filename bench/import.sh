#!/usr/bin/env bash
# bench/import.sh - the ingestion benchmark of issue 2 (a benchmark, not a test).
#
# Generates one report of N records (default 1,000,000), then measures in one run:
#   A. dmarc-collector import of its .xml.gz into a fresh, migrated database
#   B. xmllint --stream --noout on the uncompressed XML (the parsing baseline)
#   C. psql \copy of the same records, DKIM and SPF rows into the same tables of
#      another fresh, migrated database (the storage baseline)
# and prints the ratio A / (B + C) and A's peak RSS.  The throwaway PostgreSQL runs
# with fsync=off and synchronous_commit=off for all three.
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

# C: psql \copy of the same rows into the same tables
psql -X -q -d dc_copy -c "INSERT INTO dmarc.reports (org_name, report_id, policy_domain, date_begin, date_end)
  OVERRIDING SYSTEM VALUE VALUES ('bench.example', 'bench-$n', 'example.com', to_timestamp(1764115200), to_timestamp(1764201599))" >/dev/null 2>&1 ||
psql -X -q -d dc_copy -c "INSERT INTO dmarc.reports (org_name, report_id, policy_domain, date_begin, date_end)
  VALUES ('bench.example', 'bench-$n', 'example.com', to_timestamp(1764115200), to_timestamp(1764201599))" >/dev/null
rid=$(psql -X -At -d dc_copy -c "SELECT id FROM dmarc.reports")
[ "$rid" = 1 ] || { echo "baseline report id is $rid, expected 1" >&2; exit 1; }
t0=$(now)
psql -X -q -d dc_copy -v ON_ERROR_STOP=1 \
  -c "BEGIN" \
  -c "\\copy dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to, reasons) FROM '$tmp/tsv/records.tsv'" \
  -c "\\copy dmarc.dkim_results (record_id, date_begin, policy_domain, ordinal, domain, selector, result, human_result) FROM '$tmp/tsv/dkim.tsv'" \
  -c "\\copy dmarc.spf_results (record_id, date_begin, policy_domain, ordinal, domain, scope, result, human_result) FROM '$tmp/tsv/spf.tsv'" \
  -c "COMMIT"
t1=$(now)
c=$(secs "$t0" "$t1")

ratio=$(python3 -c "print(f'{$a / ($b + $c):.2f}')")
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "report: $n records, XML $xml_mb MiB, gzip $gz_mb MiB"
echo "A import .xml.gz:        ${a} s, peak RSS $((rss_kb / 1024)) MiB"
echo "B xmllint --stream:      ${b} s"
echo "C psql \\copy (3 tables): ${c} s"
echo "ratio A / (B + C):       ${ratio} (goal <= 1.5), RSS goal < 64 MiB"

#!/bin/bash
# store_copy.sh - COPY throughput of dc_store's sink versus psql's \copy of
# the same rows into the same tables, on a throwaway PostgreSQL (fsync off).
#   bench/store_copy.sh BUILD_DIR [REPORTS] [RECORDS_PER_REPORT]
# Default 100 reports x 10,000 records = 1,000,000 records, each with one DKIM
# and one SPF result (in the record's row, schema 1.0).  Both databases are
# migrated in full; the psql side has the reports' monthly partitions created
# beforehand, as the sink has them created before each new month's report.
# Prints both times and the ratio.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: store_copy.sh BUILD_DIR [REPORTS] [PER]}
reports=${2:-100}
per=${3:-10000}
prog=$build/tests/test_store_bench
[ -x "$prog" ] || { echo "store_copy.sh: build $prog first" >&2; exit 1; }

tmp=$(mktemp -d /tmp/dc-store-bench.XXXXXX)
chmod 755 "$tmp"
source "$src/tests/lib/pg.sh"
trap 'dc_pg_stop "$tmp/pg" || true; rm -rf "$tmp"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)
dc_pg_start "$tmp/pg"

newdb() {
  dc_pg_newdb "$1" 2>/dev/null
  "$prog" sink 0 0 >/dev/null          # migrate
}

# 1. through the sink: one transaction per report, 4096-record COPY chunks
newdb bench_sink
read -r n_sink t_sink cpu_sink < <("$prog" sink "$reports" "$per")

# 2. psql \copy of the same rows from files: the reports and the records'
#    \copy in one transaction (so commit-time triggers run for both)
newdb bench_psql
"$prog" files "$reports" "$per" "$tmp"
psql -X -q -v ON_ERROR_STOP=1 -d bench_psql -c "SELECT dmarc.create_partitions(to_timestamp(1700000000),
  to_timestamp(1700000000 + 86400 * $reports))" >/dev/null
cat >"$tmp/copy.psql" <<SQL
\\copy dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to, reasons, dkim_count, spf_count, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_domain, spf_scope, spf_result, spf_human_result, dkim_more, spf_more) from '$tmp/records.copy'
SQL
t0=$(date +%s.%N)
psql -X -q -1 -v ON_ERROR_STOP=1 -f "$tmp/reports.sql" -f "$tmp/copy.psql"
t1=$(date +%s.%N)
t_psql=$(echo "$t1 - $t0" | bc -l)

# both databases hold the same rows
for db in bench_sink bench_psql; do
  psql -X -At -d "$db" -c "SELECT count(*), sum(message_count) FROM dmarc.records" \
    -c "SELECT count(*) FROM dmarc.dkim_results" -c "SELECT count(*) FROM dmarc.spf_results" | tr '\n' ' '
  echo "($db)"
done

printf 'records: %s (one DKIM and one SPF result each)\n' "$n_sink"
printf 'sink:    %.2f s  %.0f records/s\n' "$t_sink" "$(echo "$n_sink / $t_sink" | bc -l)"
printf 'sink client CPU (user+sys): %.2f s\n' "$cpu_sink"
printf 'psql:    %.2f s  %.0f records/s\n' "$t_psql" "$(echo "$n_sink / $t_psql" | bc -l)"
printf 'ratio sink/psql time: %.2f\n' "$(echo "$t_sink / $t_psql" | bc -l)"
printf 'machine: %s, %s cores, load average before: %s\n' "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" "$load0"

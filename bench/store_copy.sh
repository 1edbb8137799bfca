#!/bin/bash
# store_copy.sh - COPY throughput of dc_store's sink versus psql's \copy of
# the same rows into the same tables, on a throwaway PostgreSQL (fsync off).
#   bench/store_copy.sh BUILD_DIR [REPORTS] [RECORDS_PER_REPORT] [SCHEMA]
# Default 100 reports x 10,000 records = 1,000,000 records, each with one DKIM
# and one SPF result.  SCHEMA "base" (default) creates only sql/001 and
# sql/002 (the storage tables and views: what the writer itself costs);
# "full" applies every migration (later ones add commit-time triggers).
# Prints both times and the ratio.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: store_copy.sh BUILD_DIR [REPORTS] [PER] [base|full]}
reports=${2:-100}
per=${3:-10000}
schema=${4:-base}
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
  if [ "$schema" = base ]; then
    # only 001 and 002; every migration is then recorded as applied so the
    # program's migrate adds nothing
    psql -X -q -v ON_ERROR_STOP=1 -f "$src/sql/001_schema.sql" -f "$src/sql/002_views.sql"
    psql -X -q -v ON_ERROR_STOP=1 -c "CREATE TABLE dmarc.schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    for f in "$src"/sql/[0-9]*.sql; do
      psql -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO dmarc.schema_migrations (name) VALUES ('$(basename "$f")')"
    done
  fi
  "$prog" sink 0 0 >/dev/null          # migrate (all, or nothing left in base)
}

# 1. through the sink: one transaction per report, 4096-record COPY chunks
newdb bench_sink
read -r n_sink t_sink cpu_sink < <("$prog" sink "$reports" "$per")

# 2. psql \copy of the same rows from files: the reports and the three
#    \copy in one transaction (so commit-time triggers run for both)
newdb bench_psql
"$prog" files "$reports" "$per" "$tmp"
cat >"$tmp/copy.psql" <<SQL
\\copy dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to, reasons) from '$tmp/records.copy'
\\copy dmarc.dkim_results (record_id, date_begin, policy_domain, ordinal, domain, selector, result, human_result) from '$tmp/dkim.copy'
\\copy dmarc.spf_results (record_id, date_begin, policy_domain, ordinal, domain, scope, result, human_result) from '$tmp/spf.copy'
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

if [ "$schema" = base ]; then
  echo "schema:  base (sql/001_schema.sql and sql/002_views.sql only)"
else
  printf 'schema:  full (%s)\n' "$(psql -X -At -d bench_sink -c "SELECT string_agg(name, ' ' ORDER BY name) FROM dmarc.schema_migrations")"
fi
printf 'records: %s (x2 auth results)\n' "$n_sink"
printf 'sink:    %.2f s  %.0f records/s\n' "$t_sink" "$(echo "$n_sink / $t_sink" | bc -l)"
printf 'sink client CPU (user+sys): %.2f s\n' "$cpu_sink"
printf 'psql:    %.2f s  %.0f records/s\n' "$t_psql" "$(echo "$n_sink / $t_psql" | bc -l)"
printf 'ratio sink/psql time: %.2f\n' "$(echo "$t_sink / $t_psql" | bc -l)"
printf 'machine: %s, %s cores, load average before: %s\n' "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" "$load0"

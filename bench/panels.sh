#!/bin/bash
# bench/panels.sh - how fast every Grafana panel answers on a year of data
# for a busy domain.
#
#   bench/panels.sh [DC_BIN]
#   env: DAYS=365 REPORTERS=300 RECORDS=40 IPS=20000 (bench/panels-gen.sql),
#        KEEP=1 to leave the cluster running (prints how to reach it)
#
# Starts a throwaway PostgreSQL (tests/lib/pg.sh: fsync and
# synchronous_commit off), runs `migrate`, generates the data in SQL with
# the triggers off, builds the daily rollups (timed), then runs every panel
# of examples/grafana/dashboards/*.json through examples/grafana/run_panels.py
# as a dmarc_reader login with EXPLAIN ANALYZE (planning + execution time),
# for the dashboard's default range (30 days), for the whole year, and for
# the whole year of one domain and one reporter; then the default range once
# more without the panel indexes of sql/migrations/001_tables.sql.
# Prints the load average next to each run: the figures mean little on a
# machine busy with other work.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$src/build/dmarc-collector}
[ -x "$bin" ] || { echo "usage: $0 [path to dmarc-collector] (build it first)" >&2; exit 2; }
DAYS=${DAYS:-365} REPORTERS=${REPORTERS:-300} RECORDS=${RECORDS:-40} IPS=${IPS:-20000}
. "$src/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
if [ "${KEEP:-0}" = 1 ]; then
  trap 'echo "cluster kept: PGHOST=$PGHOST PGPORT=$PGPORT psql -d panels; stop: pg_ctl -D $tmp/pg/data stop"' EXIT
else
  trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
fi
dc_pg_start "$tmp/pg"
dc_pg_newdb panels
db="host=$PGHOST port=$PGPORT dbname=panels user=postgres"
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "PostgreSQL: $(q 'SHOW server_version'), fsync off"
"$bin" -q --db "$db" migrate

t0=$(date +%s.%N)
psql -X -q -v ON_ERROR_STOP=1 -v days="$DAYS" -v reporters="$REPORTERS" -v records="$RECORDS" -v ips="$IPS" \
  -c "SET session_replication_role = replica" -f <(sed '/rollup_rebuild/d' "$src/bench/panels-gen.sql") >/dev/null
t1=$(date +%s.%N)
q "SET jit = off; SELECT dmarc.rollup_rebuild()" >/dev/null
t2=$(date +%s.%N)
q "VACUUM ANALYZE" >/dev/null
echo "data: $(q "SELECT count(*) FROM dmarc.reports") reports, $(q "SELECT count(*) FROM dmarc.records") records," \
     "$(q "SELECT sum(message_count) FROM dmarc.records") messages over $DAYS days;" \
     "generated in $(echo "$t1 - $t0" | bc) s"
echo "rollups: $(q "SELECT count(*) FROM dmarc.rollup_daily") daily rows, $(q "SELECT count(*) FROM dmarc.rollup_sources") source rows," \
     "$(q "SELECT count(*) FROM dmarc.rollup_domains") domain rows, $(q "SELECT count(*) FROM dmarc.rollup_reporters") reporter rows," \
     "rebuilt in $(echo "$t2 - $t1" | bc) s; database $(q "SELECT pg_size_pretty(pg_database_size('panels'))")"

q "CREATE ROLE bench_grafana LOGIN IN ROLE dmarc_reader" >/dev/null
run() {  # LABEL ARGS...: every panel of every dashboard, slowest last
  local label=$1; shift
  for d in "$src"/examples/grafana/dashboards/*.json; do
    echo "--- $label: $(basename "$d") (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    python3 "$src/examples/grafana/run_panels.py" "$d" --psql "psql -d panels -U bench_grafana" --explain "$@" \
      | tee "$tmp/run.txt"
    sort -t'|' -k1 "$tmp/run.txt" | awk '/ ms$/ {ms=$(NF-1); if (ms > max) {max=ms; line=$0}} END {print "slowest: " line}'
  done
}
run "default range (30 days), All domains, All reporters"
run "whole year, All domains, All reporters" --from "now-${DAYS}d"
dom=$(q "SELECT policy_domain FROM dmarc.daily_mail GROUP BY 1 ORDER BY sum(messages) DESC LIMIT 1")
rep=$(q "SELECT org_name FROM dmarc.daily_mail GROUP BY 1 ORDER BY sum(messages) DESC LIMIT 1")
run "whole year, domain $dom, reporter $rep" --from "now-${DAYS}d" --var "domain=$dom" --var "reporter=$rep"

echo "--- without the panel indexes of sql/migrations/001_tables.sql"
q "DROP INDEX dmarc.rollup_daily_day_idx, dmarc.rollup_daily_org_idx, dmarc.rollup_sources_day_idx, dmarc.rollup_sources_ip_idx,
          dmarc.rollup_sources_org_idx, dmarc.rollup_reporters_org_idx, dmarc.reports_domain_date_idx, dmarc.reports_org_date_idx" >/dev/null
run "default range (30 days), no panel indexes"

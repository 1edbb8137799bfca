#!/bin/bash
# bench/senders.sh - what the sender columns cost (issue 14): dmarc.ip_senders,
# record_details with and without them, dmarc.new_senders, daily_sources.
#
#   bench/senders.sh [DC_BIN]
#   env: DAYS=90 REPORTERS=300 RECORDS=40 IPS=20000 (bench/panels-gen.sql),
#        MAP=38600 (rows of the sender map, parsedmarc's file has about as many),
#        KEEP=1 to leave the cluster running (prints how to reach it)
#
# Starts a throwaway PostgreSQL (tests/lib/pg.sh), generates the data of
# bench/panels.sh, gives every IP an AS (a fifth of them an AS domain in the
# map, as IPinfo Lite would), fills dmarc.sender_map with MAP rows, one of
# them example.org (the base domain of the generated PTR names), and times
# each query with EXPLAIN ANALYZE (execution + planning), best of three.
# Prints the load average: the figures mean little on a busy machine.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$src/build/dmarc-collector}
[ -x "$bin" ] || { echo "usage: $0 [path to dmarc-collector] (build it first)" >&2; exit 2; }
DAYS=${DAYS:-90} REPORTERS=${REPORTERS:-300} RECORDS=${RECORDS:-40} IPS=${IPS:-20000} MAP=${MAP:-38600}
. "$src/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
if [ "${KEEP:-0}" = 1 ]; then
  trap 'echo "cluster kept: PGHOST=$PGHOST PGPORT=$PGPORT psql -d senders_bench; stop: pg_ctl -D $tmp/pg/data stop"' EXIT
else
  trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
fi
dc_pg_start "$tmp/pg"
dc_pg_newdb senders_bench
db="host=$PGHOST port=$PGPORT dbname=senders_bench user=postgres"
export PGDATABASE=senders_bench
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

"$bin" -q --db "$db" migrate
psql -X -q -v ON_ERROR_STOP=1 -v days="$DAYS" -v reporters="$REPORTERS" -v records="$RECORDS" -v ips="$IPS" \
  -c "SET session_replication_role = replica" -f "$src/bench/panels-gen.sql" >/dev/null
q "SET session_replication_role = replica;
   UPDATE dmarc.ip_names SET asn = 64512 + (host(ip)::inet - '10.0.0.0'::inet) % 900,
     as_name = 'Net ' || ((host(ip)::inet - '10.0.0.0'::inet) % 900),
     as_domain = CASE WHEN (host(ip)::inet - '10.0.0.0'::inet) % 5 = 0
                      THEN 'as' || ((host(ip)::inet - '10.0.0.0'::inet) % 900) || '.example' END,
     country = 'DE'" >/dev/null
# the map without session_replication_role = replica: its triggers keep
# dmarc.sender_current (migration 008)
q "INSERT INTO dmarc.sender_map (base_domain, name, type, source)
   SELECT 'as' || g || '.example', 'Sender ' || g, 'Type ' || (g % 12), 'base_reverse_dns_map'
   FROM generate_series(1, $MAP - 1) g;
   INSERT INTO dmarc.sender_map VALUES ('example.org', 'Example Org', 'ISP', 'base_reverse_dns_map')" >/dev/null
q "VACUUM ANALYZE" >/dev/null
echo "data: $(q "SELECT count(*) FROM dmarc.records") records, $(q "SELECT count(*) FROM dmarc.ip_names") IPs," \
     "$(q "SELECT count(*) FROM dmarc.sender_map") map rows, $(q "SELECT count(*) FROM dmarc.rollup_sources") rollup_sources rows;" \
     "PostgreSQL $(q 'SHOW server_version'), $(nproc) cores"
echo "IPs with a sender: $(q "SELECT count(sender_name) FROM dmarc.ip_senders")"

best() {  # LABEL SQL: best of three, execution + planning ms
  local label=$1 sql=$2 t b=
  for _ in 1 2 3; do
    t=$(PGOPTIONS="-c jit=off" psql -X -At -v ON_ERROR_STOP=1 -c "EXPLAIN (ANALYZE, FORMAT JSON) $sql" |
      python3 -c 'import json,sys; p=json.load(sys.stdin)[0]; print("%.1f" % (p["Execution Time"] + p["Planning Time"]))')
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
  done
  printf '%-72s %10s ms   (load %s)\n' "$label" "$b" "$(cut -d' ' -f1 /proc/loadavg)"
}
# record_details as 1.0 defined it (ip_names only), for the cost of the join
old_details="SELECT n.ptr, dmarc.server_generated_reason(rec.envelope_from, rec.spf_scope, rec.spf_domain,
    rec.spf_more, CASE WHEN n.forward_confirmed THEN n.ptr END) AS reason, rec.message_count
  FROM dmarc.records rec JOIN dmarc.reports rep ON rep.id = rec.report_id AND rep.date_begin = rec.date_begin
    AND rep.policy_domain = rec.policy_domain
  LEFT JOIN dmarc.ip_names n ON n.ip = rec.source_ip
  WHERE rec.date_begin >= now() - interval '30 days'"
ip=$(q "SELECT host(ip) FROM dmarc.ip_names WHERE as_domain IS NOT NULL LIMIT 1")
best "ip_senders, every IP" "SELECT count(sender) FROM dmarc.ip_senders"
best "ip_senders, one IP ($ip)" "SELECT * FROM dmarc.ip_senders WHERE ip = '$ip'"
rid=$(q "SELECT max(id) FROM dmarc.reports")
old_one="${old_details%%WHERE*}WHERE rec.report_id = $rid"
best "1.0's record_details (ip_names only), one report" "$old_one"
best "record_details, one report, every column" "SELECT * FROM dmarc.record_details WHERE report_id = $rid"
best "1.0's record_details (ip_names only), 30 days: count, sum" \
  "SELECT count(reason), sum(message_count) FROM ($old_details) d"
best "record_details, 30 days: count, sum (no sender column)" \
  "SELECT count(server_generated_reason), sum(message_count) FROM dmarc.record_details WHERE date_begin >= now() - interval '30 days'"
best "record_details, 30 days: messages per sender_name, sender_type" \
  "SELECT sender_name, sender_type, sum(message_count) FROM dmarc.record_details WHERE date_begin >= now() - interval '30 days' GROUP BY 1, 2"
best "record_days, 30 days: failing messages per sender (the README's query)" \
  "SELECT coalesce(sender_name, ptr_base_domain, 'AS' || asn || ' ' || as_name, host(source_ip)), sender_type, sum(messages)
   FROM dmarc.record_days WHERE day >= current_date - 30 AND NOT dmarc_pass GROUP BY 1, 2 ORDER BY 3 DESC"
best "daily_sources, 30 days, failing messages per IP (no sender column: no join)" \
  "SELECT source_ip, sum(messages) FROM dmarc.daily_sources WHERE day >= current_date - 30 AND NOT dmarc_pass GROUP BY 1"
best "daily_sources, 30 days, failing messages per sender_name" \
  "SELECT sender_name, sum(messages) FROM dmarc.daily_sources WHERE day >= current_date - 30 AND NOT dmarc_pass GROUP BY 1"
best "new_senders, every domain, whole period" "SELECT count(*) FROM dmarc.new_senders"
best "new_senders, one domain" "SELECT * FROM dmarc.new_senders WHERE policy_domain = 'shop.example.com'"

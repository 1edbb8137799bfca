#!/usr/bin/env bash
# bench/resolve.sh - PTR + forward lookups of N distinct source IPs (default
# 10,000) against a private dnsmasq on loopback, concurrent (64 in flight,
# the default, and 256) and one at a time, in the same run, first straight
# to dnsmasq, then through a relay that delays every answer by DELAY_MS (the
# round trip a real resolver has), through the same
# code path as `dmarc-collector resolve` (dc_resolve_run: read IPs, resolve,
# upsert dmarc.ip_names).
#
#   bench/resolve.sh [BUILD_DIR] [N] [DELAY_MS]   (defaults: build, 10000, 1)
#
# Every IP has a PTR and a matching A record (host-record=), so each costs two
# queries.  PostgreSQL runs with fsync=off (tests/lib/pg.sh).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
n=${2:-10000}
delay_ms=${3:-1}
tmp=$(mktemp -d /tmp/dc-bench-resolve.XXXXXX)
chmod 755 "$tmp"
. "$src/tests/lib/pg.sh"
. "$src/tests/lib/dnsmasq.sh"
relay_pid=
cleanup() { if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; fi; dc_dns_stop "$tmp/dns" || true; dc_pg_stop "$tmp/pg" || true; rm -rf "$tmp"; }
trap cleanup EXIT

# resolve_bench is built with the other targets (bench/CMakeLists.txt) and
# links the same static libraries as the program.
bench=$build/bench/resolve_bench
[ -x "$bench" ] || { echo "build first: cmake -S . -B build && cmake --build build ($bench missing)" >&2; exit 2; }

# N addresses 10.x.y.z, each with PTR hN.bench.example.com and its A record.
python3 - "$n" > "$tmp/records.conf" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    print("host-record=h%d.bench.example.com,10.%d.%d.%d" % (i, 1 + i // 65536, (i // 256) % 256, i % 256))
PY
dc_dns_start "$tmp/dns" "$tmp/records.conf"
dc_pg_start "$tmp/pg"
dc_pg_newdb bench
# the schema as migrate makes it; NO_ROLLUP_TRIGGERS=1 bench/resolve.sh ...
# leaves out the rollup triggers on ip_names, to see what they cost resolve
for f in "$src"/sql/migrations/[0-9]*.sql "$src"/sql/objects/[0-9]*.sql; do
  psql -X -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null
done
if [ -n "${NO_ROLLUP_TRIGGERS:-}" ]; then
  psql -X -q -v ON_ERROR_STOP=1 -c "DROP TRIGGER ip_names_rollup_insert ON dmarc.ip_names" \
    -c "DROP TRIGGER ip_names_rollup_update ON dmarc.ip_names" -c "DROP TRIGGER ip_names_rollup_delete ON dmarc.ip_names"
  echo "schema: 1.0 without the rollup triggers on ip_names"
else
  echo "schema: 1.0 (sql/migrations, sql/objects)"
fi
psql -X -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO dmarc.reports (org_name, policy_domain, report_id, date_begin, date_end)
VALUES ('bench', 'example.com', 'resolve-bench', '2024-05-01Z', '2024-05-02Z');
INSERT INTO dmarc.records (id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count)
SELECT i + 1, (SELECT id FROM dmarc.reports), '2024-05-01Z', 'example.com', i + 1,
       ('10.' || (1 + i / 65536) || '.' || ((i / 256) % 256) || '.' || (i % 256))::inet, 1
FROM generate_series(0, $n - 1) AS i;
ANALYZE dmarc.records;
SQL

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(. /etc/os-release; echo "$PRETTY_NAME"), c-ares $(dpkg-query -W -f='${Version}' libc-ares2 2>/dev/null), dnsmasq $(dpkg-query -W -f='${Version}' dnsmasq-base 2>/dev/null)"
echo "$n distinct source IPs, each a PTR and an A query against dnsmasq on 127.0.0.1:$DC_DNS_PORT"
conn="host=$PGHOST port=$PGPORT user=$PGUSER dbname=bench"
echo
echo "A. straight to dnsmasq (answers in microseconds; dnsmasq's CPU is the limit)"
"$bench" "$conn" "$DC_DNS_SERVER" 2000 64 256 1

# A relay that holds each answer ${delay_ms} ms: the round trip of a resolver
# on the local network.  The relay is Python, so it caps the concurrent rate.
relay_port=$(dc_dns_freeport)
python3 "$src/bench/resolve_delay.py" "$relay_port" "$DC_DNS_PORT" "$delay_ms" "$tmp/relay.ready" &
relay_pid=$!
for i in $(seq 1 100); do [ -f "$tmp/relay.ready" ] && break; sleep 0.05; done
echo
echo "B. through a relay adding ${delay_ms} ms to every answer (a resolver on the LAN)"
"$bench" "$conn" "127.0.0.1:$relay_port" 2000 64 256 1
kill "$relay_pid"
relay_pid=


#!/usr/bin/env bash
# bench/resolve.sh - PTR + forward lookups of N distinct source IPs (default
# 10,000) against a private dnsmasq on loopback, concurrent (64 in flight,
# the default, and 256) and one at a time, in the same run, first straight
# to dnsmasq, then through a relay that delays every answer by DELAY_MS (the
# round trip a real resolver has), through the same
# code path as `dmarc-collector resolve` (dc_resolve_run: read IPs, resolve,
# upsert dmarc.ip_names).  Then C: the same with [enrich] asn_db and
# country_db (GeoLite2-ASN and -Country layouts with NETWORKS networks each,
# written by tests/lib/write_mmdb.pl), against the same run without, both
# ways in turn, and the re-enrichment pass after both files were replaced by
# a release with another build epoch (no DNS: every name is fresh).
#
#   bench/resolve.sh [BUILD_DIR] [N] [DELAY_MS] [NETWORKS]
#   (defaults: build, 10000, 1, 100000; ROUNDS=5 runs each way in C)
#
# Every IP has a PTR and a matching A record (host-record=), so each costs two
# queries.  PostgreSQL runs with fsync=off (tests/lib/pg.sh).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
n=${2:-10000}
delay_ms=${3:-1}
networks=${4:-100000}
rounds=${ROUNDS:-5}
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

# C. [enrich]: two files as big as a real one's network count allows here
# (GeoLite2-ASN holds about 500,000 networks; the writer takes some 5 s per
# 100,000), the bench IPs in networks of them except every tenth /24.
w0=$(date +%s.%N)
perl "$src/tests/lib/write_mmdb.pl" bench-asn "$tmp/asn.mmdb" 1700000000 "$networks"
perl "$src/tests/lib/write_mmdb.pl" bench-country "$tmp/country.mmdb" 1700000000 "$networks"
# the next release: the same networks, another build epoch
perl "$src/tests/lib/write_mmdb.pl" bench-asn "$tmp/asn2.mmdb" 1702592000 "$networks"
perl "$src/tests/lib/write_mmdb.pl" bench-country "$tmp/country2.mmdb" 1702592000 "$networks"
w1=$(date +%s.%N)
echo
echo "C. [enrich] on and off, 64 in flight, $rounds rounds each way in turn; files of $networks networks each"
echo "   ($(stat -c %s "$tmp/asn.mmdb") and $(stat -c %s "$tmp/country.mmdb") bytes, the four written in $(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.1f", b - a }') s)"
enrich=(--asn-db "$tmp/asn.mmdb" --country-db "$tmp/country.mmdb")
header=1
one() {  # LABEL resolve_bench ARGS...: prints the result line, sets $total
  local label=$1 out
  shift
  out=$("$bench" "$@")
  if [ -n "$header" ]; then printf '%-26s %s\n' "" "$(head -1 <<<"$out")"; header=; fi
  total=$(tail -1 <<<"$out" | awk '{ print $10 }')
  rest=$(tail -1 <<<"$out" | awk '{ printf "%.3f", $10 - $9 }')  # reading, storing, enriching
  printf '%-26s %s\n' "$label" "$(tail -1 <<<"$out")"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for target in "dnsmasq $DC_DNS_SERVER" "relay 127.0.0.1:$relay_port"; do
  read -r tname server <<<"$target"
  off=() on=() offr=() onr=()
  for round in $(seq 1 "$rounds"); do
    one "$tname, off ($round)" "$conn" "$server" 2000 64; off+=("$total") offr+=("$rest")
    one "$tname, on ($round)" "${enrich[@]}" "$conn" "$server" 2000 64; on+=("$total") onr+=("$rest")
  done
  mo=$(median "${off[@]}") mn=$(median "${on[@]}") ro=$(median "${offr[@]}") rn=$(median "${onr[@]}")
  [ "$tname" = dnsmasq ] && off_dnsmasq=$mo
  echo "$tname: median total off $mo s, on $mn s: on / off = $(awk -v a="$mn" -v b="$mo" 'BEGIN { printf "%.2f", a / b }');" \
    "besides DNS (total_s - dns_s) off $ro s, on $rn s: on / off = $(awk -v a="$rn" -v b="$ro" 'BEGIN { printf "%.2f", a / b }')"
done
kill "$relay_pid"
relay_pid=
# every name fresh and enriched from the first release; the second has
# another epoch, so resolve looks every IP up again in the files, no DNS
re=()
for round in $(seq 1 "$rounds"); do
  one "re-enrich ($round), setup" "${enrich[@]}" "$conn" "$DC_DNS_SERVER" 2000 64
  one "re-enrich ($round)" --keep --asn-db "$tmp/asn2.mmdb" --country-db "$tmp/country2.mmdb" \
    "$conn" "$DC_DNS_SERVER" 2000 64
  re+=("$total")
done
psql -X -At -c "SELECT 'stored: ' || count(*) || ' names, ' || count(asn) || ' with an AS, ' || count(country)
  || ' with a country, ' || count(*) FILTER (WHERE asn_db_epoch = 1702592000 AND country_db_epoch = 1702592000)
  || ' from the second release' FROM dmarc.ip_names"
mr=$(median "${re[@]}")
echo "re-enrichment pass of $n IPs: median $mr s, $(awk -v a="$mr" -v n="$n" 'BEGIN { printf "%.1f", a * 1e6 / n }') us per IP;" \
  "/ a resolve without [enrich] straight to dnsmasq ($off_dnsmasq s) = $(awk -v a="$mr" -v b="$off_dnsmasq" 'BEGIN { printf "%.2f", a / b }')"


#!/usr/bin/env bash
# bench/soak.sh - the long soak of issue 9 (a benchmark run, not a CI test).
#
# Runs tests/integration/soak.sh (the collector as a service behind two
# fault-injecting proxies, see there) for SOAK_SECONDS (default 1800) of
# fault cycles instead of its short schedule, with the same checks at the
# end, and prints the figures: polls done, faults injected by kind, reports
# stored, RSS and fds after warm-up and at the end, connections left.
# The throwaway PostgreSQL runs with fsync=off; the collector sets
# synchronous_commit=on for its own sessions.
# Usage: bench/soak.sh   (needs a build in build/, or DC_BIN)
#   SOAK_SECONDS=1800 SOAK_SEED=9 SOAK_MAX_MSGS=16 bench/soak.sh
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${DC_BIN:-$src/build/dmarc-collector}
[ -x "$bin" ] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 2; }
secs=${SOAK_SECONDS:-1800}
max=${SOAK_MAX_MSGS:-16}
# mail for every cycle the time allows (a cycle takes at least ~2 s)
cycles=$(( secs / 2 + 10 ))
figures=$(mktemp /tmp/dc-bench-soak.XXXXXX)
trap 'rm -f "$figures" "$figures.trace"' EXIT
start=$(date -u +%FT%TZ)
trace=$figures.trace
st=0
DC_BIN=$bin DC_SRC=$src SOAK_SECONDS=$secs SOAK_CYCLES=$cycles SOAK_MAX_MSGS=$max \
  SOAK_FIGURES=$figures SOAK_TRACE=$trace bash "$src/tests/integration/soak.sh" || st=$?
echo
echo "bench/soak.sh: started $start, ${secs} s of faults requested, exit $st"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$figures"
if [ -s "$trace" ]; then
  # the collector's RSS and fds along the run (sampled once per cycle)
  echo "RSS (kB) and fds along the run, at 0/25/50/75/100 % of the cycles:"
  n=$(wc -l < "$trace")
  for pct in 0 25 50 75 100; do
    sed -n "$(( (n - 1) * pct / 100 + 1 ))p" "$trace"
  done
  awk '{ if (min == "" || $4 < min) min = $4; if ($4 > max) max = $4 }
       END { printf "RSS over all %d samples: min %d kB, max %d kB\n", NR, min, max }' "$trace"
fi
exit $st

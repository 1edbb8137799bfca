#!/usr/bin/env bash
# scripts/schema.sh [--check] - the one way to make sql/schema.sql: starts a
# throwaway PostgreSQL (tests/lib/pg.sh), runs `dmarc-collector migrate` on an
# empty database and writes the normalised dump of schema dmarc
# (tests/lib/schema.sh) to sql/schema.sql.  With --check it writes nothing:
# it prints the diff and exits 1 when sql/schema.sql differs.
#
# The program is $DC_BIN, else build/dmarc-collector rebuilt first (the SQL
# of sql/ is compiled into it, so a stale binary would dump a stale schema).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
check=0
case ${1:-} in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: scripts/schema.sh [--check]" >&2; exit 2 ;;
esac

bin=${DC_BIN:-}
if [ -z "$bin" ]; then
  [ -f "$src/build/CMakeCache.txt" ] || cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$src/build" --target dmarc-collector >/dev/null
  bin=$src/build/dmarc-collector
fi

tmp=$(mktemp -d /tmp/dc-schema.XXXXXX)
chmod 755 "$tmp"   # the server runs as postgres and must reach $tmp/pg
# shellcheck source=../tests/lib/pg.sh
source "$src/tests/lib/pg.sh"
# shellcheck source=../tests/lib/schema.sh
source "$src/tests/lib/schema.sh"
cleanup() { dc_pg_stop "$tmp/pg" || true; rm -rf "$tmp"; }
trap cleanup EXIT

dc_pg_start "$tmp/pg"
dc_pg_newdb dc_schema
"$bin" -q migrate
dc_schema_dump dc_schema > "$tmp/schema.sql"

if [ "$check" = 1 ]; then
  if ! diff -u "$src/sql/schema.sql" "$tmp/schema.sql"; then
    echo "schema.sh: sql/schema.sql differs from a fresh migrate (diff above: - checked in, + fresh);" \
      "run scripts/schema.sh and commit the result" >&2
    exit 1
  fi
  echo "schema.sh: sql/schema.sql is up to date"
else
  cp "$tmp/schema.sql" "$src/sql/schema.sql"
  echo "schema.sh: wrote sql/schema.sql ($(wc -l < "$src/sql/schema.sql") lines)"
fi

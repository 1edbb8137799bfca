#!/bin/bash
# store.sh - dc_store against a throwaway PostgreSQL: runs the cmocka program
# tests/integration/test_store.c (built as $DC_BUILD/tests/test_store) on a
# fresh, empty database.  Its last case stops the server mid-report.
set -euo pipefail
: "${DC_SRC:?DC_SRC not set}" "${DC_BUILD:?DC_BUILD not set}"
prog=$DC_BUILD/tests/test_store
[ -x "$prog" ] || { echo "store.sh: $prog not built" >&2; exit 1; }

tmp=$(mktemp -d /tmp/dc-store.XXXXXX)
chmod 755 "$tmp"   # the server runs as postgres and must reach $tmp/pg
# shellcheck source=../lib/pg.sh
source "$DC_SRC/tests/lib/pg.sh"
cleanup() { dc_pg_stop "$tmp/pg" || true; rm -rf "$tmp"; }
trap cleanup EXIT

dc_pg_start "$tmp/pg"
dc_pg_newdb dc_store_test
# the test stops the server itself for its last case
export DC_TEST_PG_STOP="bash -c 'source \"$DC_SRC/tests/lib/pg.sh\" && dc_pg_stop \"$tmp/pg\"'"

if ! "$prog"; then
  echo "store.sh: test_store failed (server log follows)" >&2
  tail -n 30 "$tmp/pg/server.log" >&2 || true
  exit 1
fi
# the server must really be down now (the last case stopped it)
if psql -X -q -c 'SELECT 1' >/dev/null 2>&1; then
  echo "store.sh: server still running after the stop case" >&2
  exit 1
fi
echo "store.sh: ok"

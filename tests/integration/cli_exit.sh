#!/bin/bash
# cli_exit.sh - exit statuses that mean what they say (SPEC section 4,
# docs/README-cli.md "Exit statuses"): 75 only when running again later can
# help, 2 when the database answered and refused for a reason that stays
# until an administrator acts.
#   - migrate by a database owner without CREATEROLE, the group roles
#     dmarc_writer and dmarc_reader missing: 0, not a refusal (the collector
#     works without them), with one warning giving the SQL to run; again 0
#     with the same warning; then, with the roles made by a superuser, the
#     same owner's migrate grants them (0, no warning).  Both set-ups in
#     full: tests/integration/db_setup.sh;
#   - a wrong database password (28P01), none where one is needed, and a
#     database that does not exist (3D000): 2;
#   - a closed port: 75;
#   - the server stopped while an import waits on it: 75, nothing stored.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"   # the cluster runs as postgres
trap '[ -n "${imp:-}" ] && kill "$imp" 2>/dev/null; [ -n "${DC_PG_HOLD_PID:-}" ] && kill "$DC_PG_HOLD_PID" 2>/dev/null; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
unset DMARC_COLLECTOR_CONFIG PGPASSWORD

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect STATUS PATTERN COMMAND...: exit status, and a line matching PATTERN
expect() {
  local want=$1 pat=$2 got out
  shift 2
  out=$("$@" 2>&1); got=$?
  if [ "$got" != "$want" ]; then
    fail "$* exited $got, expected $want: $(echo "$out" | tail -3)"
  elif [ -n "$pat" ] && ! grep -Eq -- "$pat" <<<"$out"; then
    fail "$*: output lacks /$pat/: $(echo "$out" | tail -3)"
  else
    echo "ok: $* -> $got: $(echo "$out" | grep -E -- "${pat:-.}" | head -1)"
  fi
}
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -d "${2:-postgres}" -c "$1"; }
B=$DC_BIN
n_migrations=$(ls "$DC_SRC"/sql/migrations/[0-9]*.sql | wc -l)

# ---- a database owner without CREATEROLE: migrate finishes (0) and warns
q "CREATE ROLE owner LOGIN PASSWORD 'owner pass' NOCREATEROLE NOSUPERUSER" >/dev/null || exit 1
q "CREATE DATABASE owned OWNER owner" >/dev/null || exit 1
q "SELECT count(*) FROM pg_roles WHERE rolname IN ('dmarc_writer', 'dmarc_reader')" | grep -x 0 >/dev/null \
  || { echo "FAIL: the cluster already has the roles"; exit 1; }
out=$(PGUSER=owner "$B" --db owned migrate 2>&1); got=$?
check "migrate without CREATEROLE: status" "$got" 0
check "migrate without CREATEROLE: one warning" "$(grep -c ': warning: ' <<<"$out")" 1
grep -Eq '^dmarc-collector: warning: migrate: the group roles dmarc_writer, dmarc_reader are missing and role "owner" may not create roles; .* run: CREATE ROLE dmarc_writer NOLOGIN; CREATE ROLE dmarc_reader NOLOGIN; then run dmarc-collector migrate again$' <<<"$out" \
  && echo "ok: message: $(grep warning <<<"$out")" || fail "message: $out"
check "every migration and object recorded" \
  "$(q "SELECT (SELECT count(*) FROM dmarc.schema_migrations) || ' / ' || (SELECT count(*) FROM dmarc.schema_objects)" owned)" \
  "$n_migrations / $(ls "$DC_SRC"/sql/objects/[0-9]*.sql | wc -l)"
# running it again gives the same answer, still 0
expect 0 'warning: migrate: the group roles dmarc_writer, dmarc_reader are missing' env PGUSER=owner "$B" --db owned migrate
# a superuser makes the roles; the owner's migrate then grants them
q "CREATE ROLE dmarc_writer NOLOGIN; CREATE ROLE dmarc_reader NOLOGIN" >/dev/null || exit 1
expect 0 'migrate: granted the group roles' env PGUSER=owner "$B" --db owned migrate
out=$(PGUSER=owner "$B" --db owned migrate 2>&1)
check "then no warning" "$(grep -c ': warning: ' <<<"$out")" 0

# ---- login refused, database missing: 2; nobody listening: 75
hba=$(q "SHOW hba_file")
{ printf 'host all owner 127.0.0.1/32 scram-sha-256\n'; cat "$hba"; } >"$tmp/hba" && cat "$tmp/hba" >"$hba"
q "SELECT pg_reload_conf()" >/dev/null
expect 0 'migrate: 0 migrations applied' env PGPASSWORD='owner pass' "$B" --db "host=127.0.0.1 port=$PGPORT user=owner dbname=owned" migrate
expect 2 'password authentication failed for user "owner" \(SQLSTATE 28P01\)' \
  env PGPASSWORD=wrong "$B" --db "host=127.0.0.1 port=$PGPORT user=owner dbname=owned" migrate
expect 2 'no password supplied' env PGPASSFILE=/dev/null "$B" --db "host=127.0.0.1 port=$PGPORT user=owner dbname=owned" migrate
expect 2 'SQLSTATE 28P01' env PGPASSWORD=wrong "$B" --db "host=127.0.0.1 port=$PGPORT user=owner dbname=owned" import "$DC_SRC/tests/data/classify/rules.xml"
expect 2 'database "nosuchdb" does not exist \(SQLSTATE 3D000\)' "$B" --db nosuchdb migrate
closed=$(dc_pg_freeport)
expect 75 'cannot connect to the database: .*(refused|failed)' "$B" --db "host=127.0.0.1 port=$closed connect_timeout=3" migrate
expect 75 'cannot connect to the database' "$B" --db "host=127.0.0.1 port=$closed connect_timeout=3" import "$DC_SRC/tests/data/classify/rules.xml"

# ---- the server stops while an import waits on it: 75, nothing half-stored
data=$DC_SRC/tests/data/classify
dc_pg_hold "$tmp" owned "LOCK TABLE dmarc.reports IN ACCESS EXCLUSIVE MODE;" || exit 1
"$B" --db owned import "$data/rules.xml" >"$tmp/import.log" 2>&1 9>&- &
imp=$!
for _ in $(seq 1 300); do [ "$(dc_pg_lock_waiters)" -ge 1 ] && break; sleep 0.1; done
check "import waits on the lock" "$(dc_pg_lock_waiters)" 1
dc_pg_stop "$tmp/pg"
wait "$imp"; got=$?; imp=
exec 9>&-; wait "$DC_PG_HOLD_PID" 2>/dev/null; DC_PG_HOLD_PID=
check "import when the server stopped: status" "$got" 75
grep -Eq 'import stopped after [01] of 1 files: .*(terminat|connection|server closed)' "$tmp/import.log" \
  && echo "ok: $(grep 'import stopped' "$tmp/import.log")" || fail "import log: $(cat "$tmp/import.log")"
# the same import, run again once the server is back, stores the report
dc_pg_as "'$DC_PG_BIN/pg_ctl' -D '$tmp/pg/data' -l '$tmp/pg/server.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PGPORT -k '$tmp/pg' -c fsync=off\" start >/dev/null" \
  || { tail "$tmp/pg/server.log"; exit 1; }
check "nothing stored by the stopped import" "$(q "SELECT count(*) FROM dmarc.reports" owned)" 0
expect 0 'import: 1 inputs, 1 reports stored' "$B" --db owned import "$data/rules.xml"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"

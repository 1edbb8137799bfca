#!/bin/bash
# schema.sh - migrate's bookkeeping against a throwaway PostgreSQL:
#   (a) a fresh migrate dumps exactly sql/schema.sql (tests/lib/schema.sh,
#       as scripts/schema.sh writes it);
#   (b) a second migrate applies nothing;
#   (c) a recorded migration whose checksum differs (an applied file was
#       edited) makes migrate refuse, exit 2, naming the file; so does a
#       recorded migration the program does not have;
#   (d) a recorded object whose checksum differs is applied again, that one
#       and no other;
#   (e) an up-to-date database migrates without CREATE on schema dmarc: as a
#       member of dmarc_writer, and as a role that may only read the
#       bookkeeping;
#   (f) a 0.1 database (tests/data/upgrade/sql-0.1) whose upgrade fails (here:
#       run by a role that may not create or move anything) is rolled back
#       whole: exit 2, one line saying so, the database dumps as before, and
#       check-config still calls it 0.1.  (The upgrade that succeeds, with
#       data, is tests/integration/upgrade.sh.)
set -euo pipefail
: "${DC_SRC:?DC_SRC not set}" "${DC_BIN:?DC_BIN not set}"

tmp=$(mktemp -d /tmp/dc-schema-it.XXXXXX)
chmod 755 "$tmp"   # the server runs as postgres and must reach $tmp/pg
# shellcheck source=../lib/pg.sh
source "$DC_SRC/tests/lib/pg.sh"
# shellcheck source=../lib/schema.sh
source "$DC_SRC/tests/lib/schema.sh"
cleanup() { dc_pg_stop "$tmp/pg" || true; rm -rf "$tmp"; }
trap cleanup EXIT

fail() { echo "schema.sh: FAIL: $*" >&2; exit 1; }
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
# migrate [ARGS...]: runs migrate, its log in $tmp/log, its status in $st
migrate() { st=0; "$DC_BIN" "$@" migrate > "$tmp/log" 2>&1 || st=$?; }
applied_line() { grep -o '[0-9]* migrations\? applied, [0-9]* objects\? applied' "$tmp/log" || true; }

dc_pg_start "$tmp/pg"
dc_pg_newdb dc_schema_test

# (a) a fresh migrate is sql/schema.sql
migrate
[ "$st" = 0 ] || { cat "$tmp/log" >&2; fail "(a) migrate exited $st"; }
dc_schema_dump dc_schema_test > "$tmp/schema.sql"
if ! diff -u "$DC_SRC/sql/schema.sql" "$tmp/schema.sql" > "$tmp/diff"; then
  head -n 80 "$tmp/diff" >&2
  fail "(a) sql/schema.sql differs from a fresh migrate (diff above): run scripts/schema.sh"
fi
n_mig=$(find "$DC_SRC/sql/migrations" -name '[0-9]*.sql' | wc -l)
n_obj=$(find "$DC_SRC/sql/objects" -name '[0-9]*.sql' | wc -l)
[ "$(q 'SELECT count(*) FROM dmarc.schema_migrations')" = "$n_mig" ] || fail "(a) schema_migrations: not $n_mig rows"
[ "$(q 'SELECT count(*) FROM dmarc.schema_objects')" = "$n_obj" ] || fail "(a) schema_objects: not $n_obj rows"
for f in "$DC_SRC"/sql/migrations/[0-9]*.sql "$DC_SRC"/sql/objects/[0-9]*.sql; do
  name=$(basename "$f") sum=$(sha256sum < "$f" | cut -c1-64)
  [ "$(q "SELECT checksum FROM dmarc.schema_migrations WHERE name = '$name'
          UNION ALL SELECT checksum FROM dmarc.schema_objects WHERE name = '$name'")" = "$sum" ] ||
    fail "(a) $name: recorded checksum is not the file's SHA-256"
done
echo "schema.sh: (a) fresh migrate = sql/schema.sql ($n_mig migrations, $n_obj objects)"

# (b) a second migrate applies nothing
snap="SELECT string_agg(name || '=' || checksum || '@' || applied_at, ',' ORDER BY name) FROM
      (SELECT * FROM dmarc.schema_migrations UNION ALL SELECT * FROM dmarc.schema_objects) b"
before=$(q "$snap")
migrate
[ "$st" = 0 ] || { cat "$tmp/log" >&2; fail "(b) migrate exited $st"; }
[ "$(applied_line)" = "0 migrations applied, 0 objects applied" ] || { cat "$tmp/log" >&2; fail "(b) applied something"; }
[ "$(q "$snap")" = "$before" ] || fail "(b) the bookkeeping changed"
echo "schema.sh: (b) second migrate applies nothing"

# (c) an applied migration edited, or unknown to the program: refused, exit 2
first=$(q 'SELECT min(name) FROM dmarc.schema_migrations')
sum=$(q "SELECT checksum FROM dmarc.schema_migrations WHERE name = '$first'")
q "UPDATE dmarc.schema_migrations SET checksum = repeat('0', 64) WHERE name = '$first'" >/dev/null
migrate
[ "$st" = 2 ] || { cat "$tmp/log" >&2; fail "(c) edited migration: exit $st, not 2"; }
grep -q "migration $first was edited" "$tmp/log" || { cat "$tmp/log" >&2; fail "(c) message does not name $first"; }
[ "$(grep -c . "$tmp/log")" = 1 ] || { cat "$tmp/log" >&2; fail "(c) not a one-line error"; }
q "UPDATE dmarc.schema_migrations SET checksum = '$sum' WHERE name = '$first'" >/dev/null
q "INSERT INTO dmarc.schema_migrations (name, checksum) VALUES ('999_from_the_future.sql', 'x')" >/dev/null
migrate
[ "$st" = 2 ] || { cat "$tmp/log" >&2; fail "(c) unknown migration: exit $st, not 2"; }
grep -q "999_from_the_future.sql" "$tmp/log" || { cat "$tmp/log" >&2; fail "(c) message does not name the unknown migration"; }
q "DELETE FROM dmarc.schema_migrations WHERE name = '999_from_the_future.sql'" >/dev/null
[ "$(q "$snap")" = "$before" ] || fail "(c) a refused migrate changed the bookkeeping"
echo "schema.sh: (c) edited or unknown applied migration: exit 2, $(cut -d: -f3- "$tmp/log" | cut -c1-60)..."

# (d) one object out of date: applied again, that one only
obj=$(q 'SELECT name FROM dmarc.schema_objects ORDER BY name OFFSET 1 LIMIT 1')
q "UPDATE dmarc.schema_objects SET checksum = 'stale' WHERE name = '$obj'" >/dev/null
others="SELECT string_agg(name || '@' || applied_at, ',' ORDER BY name) FROM dmarc.schema_objects WHERE name <> '$obj'"
others_before=$(q "$others")
migrate
[ "$st" = 0 ] || { cat "$tmp/log" >&2; fail "(d) migrate exited $st"; }
[ "$(applied_line)" = "0 migrations applied, 1 object applied" ] || { cat "$tmp/log" >&2; fail "(d) not exactly one object applied"; }
[ "$(q "$others")" = "$others_before" ] || fail "(d) another object was applied again"
[ "$(q "SELECT checksum FROM dmarc.schema_objects WHERE name = '$obj'")" = \
  "$(sha256sum < "$DC_SRC/sql/objects/$obj" | cut -c1-64)" ] || fail "(d) $obj: checksum not recorded again"
dc_schema_dump dc_schema_test > "$tmp/schema2.sql"
diff -q "$DC_SRC/sql/schema.sql" "$tmp/schema2.sql" >/dev/null || fail "(d) the schema changed after applying $obj again"
echo "schema.sh: (d) object $obj out of date: applied again, alone"

# (e) no CREATE on schema dmarc (nor on the database): a writer, and a role
# that may read only the bookkeeping, migrate an up-to-date database
q "REVOKE CREATE ON DATABASE dc_schema_test FROM PUBLIC;
   CREATE ROLE dc_schema_writer LOGIN IN ROLE dmarc_writer;
   CREATE ROLE dc_schema_plain LOGIN;
   GRANT USAGE ON SCHEMA dmarc TO dc_schema_plain;
   GRANT SELECT ON dmarc.schema_migrations, dmarc.schema_objects TO dc_schema_plain" >/dev/null
before=$(q "$snap")
for role in dc_schema_writer dc_schema_plain; do
  [ "$(q "SELECT has_schema_privilege('$role', 'dmarc', 'CREATE') OR has_database_privilege('$role', 'dc_schema_test', 'CREATE')")" = f ] ||
    fail "(e) $role may create"
  migrate --db "user=$role"
  [ "$st" = 0 ] || { cat "$tmp/log" >&2; fail "(e) migrate as $role exited $st"; }
  [ "$(applied_line)" = "0 migrations applied, 0 objects applied" ] || { cat "$tmp/log" >&2; fail "(e) $role applied something"; }
done
[ "$(q "$snap")" = "$before" ] || fail "(e) the bookkeeping changed"
echo "schema.sh: (e) up-to-date migrate without CREATE: ok (dmarc_writer member, bookkeeping reader)"

# (f) a failed upgrade from 0.1 leaves the 0.1 database as it was
dc_pg_newdb dc_schema_v01
q "CREATE SCHEMA dmarc;
   CREATE TABLE dmarc.schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())" >/dev/null
for f in "$DC_SRC"/tests/data/upgrade/sql-0.1/[0-9]*.sql; do
  { echo "BEGIN;"; cat "$f"; echo "INSERT INTO dmarc.schema_migrations (name) VALUES ('$(basename "$f")'); COMMIT;"; } |
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 >/dev/null || fail "(f) $(basename "$f") did not apply"
done
q "REVOKE CREATE ON DATABASE dc_schema_v01 FROM PUBLIC;
   GRANT USAGE ON SCHEMA dmarc TO dc_schema_plain;
   GRANT SELECT ON dmarc.schema_migrations TO dc_schema_plain" >/dev/null
"$(dc_pg_bindir)/pg_dump" --schema-only -d dc_schema_v01 | grep -v '^\\\(un\)\?restrict ' > "$tmp/v01-before.sql"
migrate --db "user=dc_schema_plain"
[ "$st" = 2 ] || { cat "$tmp/log" >&2; fail "(f) failed upgrade: exit $st, not 2"; }
grep -q "upgrade from schema 0.1 failed, rolled back" "$tmp/log" || { cat "$tmp/log" >&2; fail "(f) message"; }
[ "$(grep -c . "$tmp/log")" = 1 ] || { cat "$tmp/log" >&2; fail "(f) not a one-line error"; }
why=$(cut -d: -f3- < "$tmp/log")
"$(dc_pg_bindir)/pg_dump" --schema-only -d dc_schema_v01 | grep -v '^\\\(un\)\?restrict ' > "$tmp/v01-after.sql"
diff -u "$tmp/v01-before.sql" "$tmp/v01-after.sql" >&2 || fail "(f) the 0.1 database changed"
"$DC_BIN" check-config > "$tmp/log" 2>&1 || true
grep -q "schema 0.1; run .dmarc-collector migrate." "$tmp/log" || { cat "$tmp/log" >&2; fail "(f) check-config"; }
echo "schema.sh: (f) failed upgrade from 0.1 rolled back:$why"
echo "schema.sh: ok"

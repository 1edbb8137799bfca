#!/bin/bash
# db_setup.sh - the two database set-ups of docs/README-storage.md ("Setting
# up the database"), done as written there, against a real PostgreSQL:
#   (A) the owner of the database has CREATEROLE: its `migrate` creates the
#       NOLOGIN group roles dmarc_writer and dmarc_reader and grants them,
#       with no warning; the owner makes a Grafana login in dmarc_reader and
#       a collector login in dmarc_writer;
#   (B) the owner has no CREATEROLE and the groups do not exist: `migrate`
#       exits 0 with exactly one warning line giving the SQL to run;
#       check-config warns of the missing roles (exit 0); a superuser runs
#       the SQL TAKEN FROM THE WARNING LINE; check-config then says the roles
#       lack their grants; before the owner's migrate, a login that may read
#       the bookkeeping but does not own the schema migrates with one warning
#       (the roles lack grants it may not give; exit 0); the owner's second
#       migrate grants, without a warning; a
#       third one writes nothing (it runs in read-only transactions, and no
#       applied_at changes);
#   (B') the groups exist beforehand (those of (B)): a second owner without
#       CREATEROLE migrates a second database of the cluster in one run,
#       without a warning, and the same logins work there.
# In both: the Grafana login may SELECT the view dmarc.daily_mail and not the
# table dmarc.reports; the collector login imports a report and may run
# `migrate` (nothing to do, read-only).  Roles are cluster-wide: (A)'s
# database and roles are dropped before (B).  The roles and databases are
# made with the commands of the README (createuser, createdb, psql).
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"   # the cluster runs as postgres
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
unset DMARC_COLLECTOR_CONFIG PGPASSWORD PGDATABASE

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
# q SQL [DB [USER]]: psql as USER (default the superuser postgres)
q() { psql -X -At -v ON_ERROR_STOP=1 -U "${3:-postgres}" -d "${2:-postgres}" -c "$1"; }
# dc USER DB ARGS...: the program as USER on DB; sets $out (stdout and
# stderr) and $st
dc() {
  local user=$1 db=$2
  shift 2
  out=$(PGUSER=$user "$DC_BIN" --db "dbname=$db" "$@" 2>&1); st=$?
}
warnings() { grep -c ': warning: ' <<<"$out"; }
groups() { q "SELECT coalesce(string_agg(rolname || ':' || CASE WHEN rolcanlogin THEN 'login' ELSE 'nologin' END, ' ' ORDER BY rolname), '-')
              FROM pg_roles WHERE rolname IN ('dmarc_writer', 'dmarc_reader')"; }
report=$DC_SRC/tests/data/classify/rules.xml

# What the logins of both set-ups may do on DB (GRAFANA and COLLECTOR).
logins_work() {
  local db=$1 grafana=$2 collector=$3 err
  check "$db: $grafana reads the view dmarc.daily_mail" "$(q "SELECT count(*) >= 0 FROM dmarc.daily_mail" "$db" "$grafana" 2>&1)" t
  err=$(q "SELECT count(*) FROM dmarc.reports" "$db" "$grafana" 2>&1)
  grep -q 'permission denied for table reports' <<<"$err" \
    && echo "ok: $db: $grafana may not read the table dmarc.reports" || fail "$db: $grafana read dmarc.reports: $err"
  err=$(q "SELECT count(*) FROM dmarc.originals" "$db" "$grafana" 2>&1)
  grep -q 'permission denied' <<<"$err" \
    && echo "ok: $db: $grafana may not read dmarc.originals" || fail "$db: $grafana read dmarc.originals: $err"
  dc "$collector" "$db" import "$report"
  check "$db: import as $collector (dmarc_writer): status" "$st" 0
  grep -q 'import: 1 inputs, 1 reports stored' <<<"$out" || fail "$db: import as $collector: $out"
  check "$db: reports stored" "$(q "SELECT count(*) FROM dmarc.reports" "$db")" 1
  check "$db: the Grafana login sees it" "$(q "SELECT count(*) FROM dmarc.report_overview" "$db" "$grafana")" 1
  dc "$collector" "$db" migrate
  check "$db: migrate as $collector: status" "$st" 0
  check "$db: migrate as $collector: warnings" "$(warnings)" 0
  grep -q 'migrate: 0 migrations applied, 0 objects applied' <<<"$out" || fail "$db: migrate as $collector: $out"
}

# ---- (A) the owner has CREATEROLE
check "(A) no group roles in the new cluster" "$(groups)" "-"
# the commands of the README, as the superuser (passwords left out: the
# test cluster trusts its socket)
createuser --createrole dmarc || exit 1
createdb --owner=dmarc --encoding=UTF8 --template=template0 dmarc_a || exit 1
dc dmarc dmarc_a migrate
check "(A) migrate as the owner: status" "$st" 0
check "(A) migrate: warnings" "$(warnings)" 0
grep -q 'migrate: created the group roles dmarc_writer, dmarc_reader (NOLOGIN)' <<<"$out" \
  && echo "ok: (A) $(grep 'created the group' <<<"$out")" || fail "(A) migrate did not say it created the roles: $out"
check "(A) the group roles" "$(groups)" "dmarc_reader:nologin dmarc_writer:nologin"
dc dmarc dmarc_a check-config
check "(A) check-config: status" "$st" 0
check "(A) check-config: warnings" "$(warnings)" 0
# the owner (CREATEROLE) makes the logins, as the README says
{ createuser -U dmarc --role=dmarc_reader grafana_dmarc && createuser -U dmarc --role=dmarc_writer dmarc_collector; } \
  || fail "(A) the owner could not create the logins"
logins_work dmarc_a grafana_dmarc dmarc_collector

# roles are cluster-wide: (B) starts from none
q "DROP DATABASE dmarc_a" >/dev/null || exit 1
q "DROP ROLE grafana_dmarc, dmarc_collector, dmarc_writer, dmarc_reader, dmarc" >/dev/null || exit 1
check "(B) no group roles left" "$(groups)" "-"

# ---- (B) the owner has no CREATEROLE; an administrator creates the groups
createuser dmarc || exit 1
createdb --owner=dmarc --encoding=UTF8 --template=template0 dmarc_b || exit 1
dc dmarc dmarc_b migrate
check "(B) first migrate as the owner: status" "$st" 0
check "(B) first migrate: warnings" "$(warnings)" 1
check "(B) first migrate: lines" "$(wc -l <<<"$out")" 2
warning=$(grep ': warning: ' <<<"$out")
echo "    $warning"
want='dmarc-collector: warning: migrate: the group roles dmarc_writer, dmarc_reader are missing and role "dmarc" may not create roles; as a superuser or a role with CREATEROLE run: CREATE ROLE dmarc_writer NOLOGIN; CREATE ROLE dmarc_reader NOLOGIN; then run dmarc-collector migrate again'
check "(B) the warning" "$warning" "$want"
check "(B) schema made all the same" "$(q "SELECT count(*) FROM dmarc.schema_objects" dmarc_b)" \
  "$(ls "$DC_SRC"/sql/objects/*.sql | wc -l)"
dc dmarc dmarc_b check-config
check "(B) check-config: status" "$st" 0
grep -q 'check-config: database: the group roles dmarc_writer, dmarc_reader are missing .* run: CREATE ROLE dmarc_writer NOLOGIN; CREATE ROLE dmarc_reader NOLOGIN;' <<<"$out" \
  && echo "ok: (B) check-config: $(grep 'group roles' <<<"$out")" || fail "(B) check-config: $out"

# the administrator runs the SQL of the warning line, as it is
sql=$(sed -n 's/^.* run: \(CREATE ROLE .*;\) then run dmarc-collector migrate again$/\1/p' <<<"$warning")
[ -n "$sql" ] || fail "(B) no SQL in the warning"
echo "    as a superuser: $sql"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "$sql" || fail "(B) the SQL of the warning failed"
check "(B) the group roles" "$(groups)" "dmarc_reader:nologin dmarc_writer:nologin"
{ createuser --role=dmarc_reader grafana_dmarc && createuser --role=dmarc_writer dmarc_collector; } || exit 1
dc dmarc dmarc_b check-config
grep -q 'check-config: database: the group roles dmarc_writer, dmarc_reader lack their grants on schema dmarc; dmarc-collector migrate grants them' <<<"$out" \
  && echo "ok: (B) check-config: roles without grants reported" || fail "(B) check-config before the grants: $out"
# a login that is not the owner cannot grant: a warning, exit 0, nothing
# done.  (Here it may read the bookkeeping, granted by hand: without any
# grant it could not read schema dmarc at all, and migrate is refused, 2.)
q "GRANT USAGE ON SCHEMA dmarc TO dmarc_collector; GRANT SELECT ON dmarc.schema_migrations, dmarc.schema_objects TO dmarc_collector" dmarc_b >/dev/null || exit 1
dc dmarc_collector dmarc_b migrate
check "(B) migrate as the collector before the grants: status" "$st" 0
check "(B) ... warnings" "$(warnings)" 1
grep -q 'migrate: the group roles dmarc_writer, dmarc_reader lack their grants on schema dmarc and role "dmarc_collector" may not grant them; run dmarc-collector migrate as the owner of schema dmarc' <<<"$out" \
  && echo "ok: (B) ... it says who grants" || fail "(B) migrate as the collector: $out"
q "REVOKE USAGE ON SCHEMA dmarc FROM dmarc_collector; REVOKE SELECT ON dmarc.schema_migrations, dmarc.schema_objects FROM dmarc_collector" dmarc_b >/dev/null || exit 1

dc dmarc dmarc_b migrate
check "(B) second migrate as the owner: status" "$st" 0
check "(B) second migrate: warnings" "$(warnings)" 0
grep -q 'migrate: granted the group roles their rights on schema dmarc' <<<"$out" \
  && echo "ok: (B) second migrate granted" || fail "(B) second migrate did not grant: $out"
dc dmarc dmarc_b check-config
check "(B) check-config after: status" "$st" 0
check "(B) check-config after: warnings" "$(warnings)" 0

# a third migrate writes nothing: every transaction read-only
snap="SELECT string_agg(name || '@' || applied_at, ',' ORDER BY name) FROM (SELECT name, applied_at FROM dmarc.schema_objects
      UNION ALL SELECT name, applied_at FROM dmarc.schema_migrations) s"
before=$(q "$snap" dmarc_b)
out=$(PGOPTIONS="-c default_transaction_read_only=on" PGUSER=dmarc "$DC_BIN" --db dbname=dmarc_b migrate 2>&1); st=$?
check "(B) third migrate, read-only transactions: status" "$st" 0
check "(B) third migrate: warnings" "$(warnings)" 0
grep -q 'migrate: 0 migrations applied, 0 objects applied, schema up to date' <<<"$out" || fail "(B) third migrate: $out"
grep -Eq 'created|granted' <<<"$out" && fail "(B) third migrate did something: $out"
check "(B) applied_at unchanged" "$(q "$snap" dmarc_b)" "$before"

logins_work dmarc_b grafana_dmarc dmarc_collector

# ---- (B') the groups made beforehand (here: by (B)), a second owner
# without CREATEROLE, a second database of the cluster: one migrate, no warning
createuser dmarc2 || exit 1
createdb --owner=dmarc2 --encoding=UTF8 --template=template0 dmarc_c || exit 1
dc dmarc2 dmarc_c migrate
check "(B') migrate with the groups in place: status" "$st" 0
check "(B') warnings" "$(warnings)" 0
grep -Eq 'created|granted the group' <<<"$out" && fail "(B') a second step was needed: $out"
logins_work dmarc_c grafana_dmarc dmarc_collector

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"

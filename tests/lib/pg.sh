# tests/lib/pg.sh - a throwaway PostgreSQL cluster on loopback, for tests,
# benchmarks and the demo.  Source it, then:
#   dc_pg_start DIR      initdb + start in DIR (created), exports PGHOST PGPORT PGUSER
#   dc_pg_stop DIR       stop it (DIR is left for the caller to remove)
#   dc_pg_newdb NAME     create a fresh database, exports PGDATABASE=NAME
# The server refuses to run as root, so as root it runs as the `postgres`
# user (created by the Debian package).  Authentication is trust on a private
# socket directory and on 127.0.0.1 only: this cluster holds test data only.
# fsync and synchronous_commit are off (faster; say so next to any figure).

dc_pg_bindir() {
  local d
  for d in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  echo "pg.sh: initdb not found (run scripts/install-deps.sh)" >&2
  return 1
}

dc_pg_as() {  # run a command as the cluster owner
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

dc_pg_freeport() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

dc_pg_start() {
  local dir=$1 bin port
  bin=$(dc_pg_bindir) || return 1
  mkdir -p "$dir"
  chmod 755 "$dir"
  # the server runs as another user: it must be able to reach DIR (mktemp -d is 0700)
  chmod a+x "$(dirname "$dir")"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  port=$(dc_pg_freeport)
  dc_pg_as "'$bin/initdb' -D '$dir/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >'$dir/initdb.log' 2>&1" \
    || { cat "$dir/initdb.log" >&2; return 1; }
  dc_pg_as "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off\" start >/dev/null" \
    || { cat "$dir/server.log" >&2; return 1; }
  export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
  export DC_PG_DIR=$dir DC_PG_BIN=$bin
}

dc_pg_stop() {
  local dir=${1:-$DC_PG_DIR} bin
  bin=$(dc_pg_bindir) || return 1
  [ -f "$dir/data/postmaster.pid" ] && dc_pg_as "'$bin/pg_ctl' -D '$dir/data' -m immediate -w stop >/dev/null 2>&1"
  return 0
}

dc_pg_newdb() {
  local name=$1
  PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS \"$name\"" -c "CREATE DATABASE \"$name\"" >/dev/null || return 1
  export PGDATABASE=$name
}

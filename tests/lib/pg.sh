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

# dc_pg_hold DIR DB SQL: a psql session in the background runs BEGIN; SQL and
# keeps its transaction (its locks, its uncommitted rows) open until
# dc_pg_release, so a test can hold another program at a chosen point instead
# of racing it.  Commands reach the session through a fifo in DIR on fd 9;
# start programs meanwhile with 9>&- (and the session ends with \q anyway, so
# one that inherited fd 9, a Dovecot restarted by the test, cannot keep it
# alive).  Returns 1 (with the session's output) when SQL did not run within
# 60 s.
dc_pg_hold() {
  local dir=$1 db=$2 sql=$3 i
  mkfifo "$dir/hold.fifo" || return 1
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" < "$dir/hold.fifo" > "$dir/hold.log" 2>&1 &
  DC_PG_HOLD_PID=$!
  exec 9> "$dir/hold.fifo"
  printf '%s\n' "BEGIN;" "$sql" "SELECT 'dc_pg_hold: held';" >&9
  for i in $(seq 1 600); do
    grep -q 'dc_pg_hold: held' "$dir/hold.log" && return 0
    sleep 0.1
  done
  cat "$dir/hold.log" >&2
  return 1
}

# Commits and ends the dc_pg_hold session.
dc_pg_release() {
  # in a subshell: when psql is gone already (imap_dbstop.sh stops the
  # server under it), the write's SIGPIPE ends the subshell, not the test
  ( printf '%s\n' 'COMMIT;' '\q' >&9 ) 2>/dev/null
  exec 9>&-
  wait "$DC_PG_HOLD_PID" 2>/dev/null
  DC_PG_HOLD_PID=
}

# The number of sessions of the cluster waiting for a lock.
dc_pg_lock_waiters() {
  psql -X -At -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
}

# tests/lib/server.sh - sourced by dovecot.sh and cyrus.sh: what the two
# throwaway IMAP servers share (a free port; stopping a master process and
# its children, as a restart with clients connected does).

# A TCP port on 127.0.0.1 that is free now.
dc_freeport() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The PID and those of all its descendants.
dc_proc_tree() {
  local k
  echo "$1"
  for k in $(ps -o pid= --ppid "$1" 2>/dev/null); do dc_proc_tree "$k"; done
}

# Stops the server whose master's PID is in PIDFILE and every process it
# started: SIGTERM to the master, up to 5 s for it to go, then SIGKILL to
# what is left of the tree (child processes outlive the master while a client
# is connected), and up to 5 s more until every one of them is gone, so that
# no file they held is still in use when this returns.  Removes PIDFILE.
# Returns 0 (callers may run set -e).
dc_proc_stop_tree() {
  local pidfile=$1 pid pids p i alive
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
  pids=$(dc_proc_tree "$pid")
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true   # most are gone already
  for i in $(seq 1 100); do
    alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.05
  done
  rm -f "$pidfile"
  return 0
}

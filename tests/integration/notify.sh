#!/bin/bash
# notify.sh - the service under a stand-in for systemd: a Unix datagram socket
# as NOTIFY_SOCKET and a 1 s watchdog (WATCHDOG_USEC).  It must send READY=1,
# a STATUS= line saying what the last poll stored, and WATCHDOG=1 while the
# loop advances (polls every 2 s and sleeps between them); and no WATCHDOG=1
# once a poll hangs on an IMAP server that stops answering (a fault proxy in
# front of Dovecot stops forwarding: the connection stays open and silent),
# then again once the server answers.  Also RELOADING=1/READY=1 around a
# SIGHUP, the failing mailbox in STATUS while the loop backs off (and still
# kicks: it is alive), STOPPING=1 on SIGTERM, and nothing at all from
# `poll --once`.
#
# Every datagram is written by the listener as lines "SECONDS ASSIGNMENT", one
# per assignment, SECONDS on the monotonic clock (system-wide on Linux), so
# the test can tell how long ago the last WATCHDOG=1 came.  Waits are bounded
# polls for a condition, never sleeps that assume a speed; the one duration
# asserted is the hang's silence (5 s, five watchdog periods), which the
# collector cannot end before its IMAP timeout (60 s).
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
pid= lpid= ppid_=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  [ -n "$lpid" ] && kill "$lpid" 2>/dev/null
  [ -n "$ppid_" ] && kill "$ppid_" 2>/dev/null
  dc_dovecot_stop "$tmp/dv"
  dc_pg_stop "$tmp/pg" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb notify || exit 1
dc_dovecot_start "$tmp/dv" || exit 1
unset DMARC_COLLECTOR_CONFIG NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
# wait_for WHAT COMMAND...: until COMMAND succeeds (at most 60 s, not a timing test)
wait_for() {
  local what=$1 i
  shift
  for i in $(seq 1 600); do
    "$@" >/dev/null 2>&1 && { echo "ok: $what"; return 0; }
    sleep 0.1
  done
  fail "gave up waiting: $what"
  return 1
}

# ---- the stand-in for systemd's notify socket
cat > "$tmp/listen.py" <<'PY'
import socket, sys, time
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    while True:
        data = s.recv(65536)
        t = time.monotonic()
        for a in data.decode(errors="replace").split("\n"):
            if a:
                f.write("%.3f %s\n" % (t, a))
PY
# how SECONDS: the time since the last WATCHDOG=1 (99999 when none yet)
cat > "$tmp/since.py" <<'PY'
import sys, time
last = None
for line in open(sys.argv[1]):
    t, _, a = line.rstrip("\n").partition(" ")
    if a == "WATCHDOG=1":
        last = float(t)
print("%.3f" % (time.monotonic() - last if last is not None else 99999))
PY
# gaps FILE FROM TO: the longest gap between WATCHDOG=1 lines FROM..TO (line numbers)
cat > "$tmp/gaps.py" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[2]) - 1:int(sys.argv[3])]
ts = [float(l.split(" ", 1)[0]) for l in lines if l.endswith(" WATCHDOG=1")]
print("%.3f %d" % (max((b - a for a, b in zip(ts, ts[1:])), default=0.0), len(ts)))
PY
python3 "$tmp/listen.py" "$tmp/notify.sock" "$tmp/notify.log" &
lpid=$!
: > "$tmp/notify.log"
wait_for "listener ready" test -S "$tmp/notify.sock"

# ---- a fault proxy between the collector and Dovecot (TLS passes through)
FP="python3 $DC_SRC/tests/lib/faultproxy.py"
$FP serve "$tmp/im.ctl" "$DC_IMAPS_PORT" --max-seconds 900 > "$tmp/proxy.log" 2>&1 &
ppid_=$!
wait_for "proxy ready" test -s "$tmp/im.ctl.port"
PROXY=$(cat "$tmp/im.ctl.port")
ctl() { $FP ctl "$tmp/im.ctl" "$@" >/dev/null || fail "proxy: $*"; }

{ echo "[database]"; echo "conninfo = dbname=notify"
  echo "[mailbox rua]"; echo "url = imaps://127.0.0.1:$PROXY/INBOX"
  echo "user = $DC_IMAP_USER"; echo "password_file = $tmp/dv/imap.pass"; echo "ca_file = $DC_IMAP_CA"
  echo "[service]"; echo "interval = 2"
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$DC_BIN" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }
# the four aggregate-report examples (3 reports, 1 rejected), not the other kinds
dc_dovecot_seed "$tmp/dv" "$DC_SRC"/examples/reports/0[1-4]-*.eml

has() { grep -Eq -- "^[0-9.]+ $1\$" "$tmp/notify.log"; }
count() { grep -Ec -- "^[0-9.]+ $1\$" "$tmp/notify.log"; }
more_than() { [ "$(count "$1")" -gt "$2" ]; }
silent_for() { python3 "$tmp/since.py" "$tmp/notify.log" | awk -v s="$1" '{ exit !($1 >= s) }'; }
reports_are() { [ "$(q "SELECT count(*) FROM dmarc.reports")" = "$1" ]; }

NOTIFY_SOCKET=$tmp/notify.sock WATCHDOG_USEC=1000000 "$DC_BIN" --config "$tmp/dc.conf" poll \
  > "$tmp/service.log" 2>&1 &
pid=$!

# ---- READY, STATUS, WATCHDOG
wait_for "READY=1" has 'READY=1'
has 'STATUS=polling 1 mailbox every 2 s' || fail "no STATUS line with the configuration after READY=1"
wait_for "reports stored" reports_are 3
wait_for "STATUS says what the last poll stored" \
  has 'STATUS=last poll [0-9:]{8}: 3 stored, 1 rejected; next at [0-9:]{8}'
grep -E ' STATUS=' "$tmp/notify.log" | head -4 | sed 's/^/  /'
wait_for "STATUS after a later, empty poll" has 'STATUS=last poll [0-9:]{8}: 0 stored, 0 rejected; next at [0-9:]{8}'
n=$(count 'WATCHDOG=1')
wait_for "WATCHDOG=1 repeated (10 more)" more_than 'WATCHDOG=1' $((n + 10))
read -r gap kicks < <(python3 "$tmp/gaps.py" "$tmp/notify.log" 1 "$(wc -l < "$tmp/notify.log")")
echo "before the hang: $kicks kicks, longest gap ${gap} s (watchdog 1 s)"
awk -v g="$gap" 'BEGIN { exit !(g < 5) }' || fail "a gap of $gap s between kicks while nothing hung"

# ---- the hang: the IMAP server stops answering mid-session (for 40 s at
# most, less than the collector's 60 s IMAP timeout: the proxy ends the stall
# by itself even if the `pass` below never reaches it)
ctl stall 40
dc_dovecot_seed "$tmp/dv" "$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports/google.eml"
wait_for "no WATCHDOG=1 for 5 s while the poll hangs" silent_for 5
kill -0 "$pid" 2>/dev/null || fail "the service died instead of hanging"
open=$(sed -n 's/.* open=\([0-9]*\).*/\1/p' "$tmp/im.ctl.stats")
[ "${open:-0}" -ge 1 ] || fail "no connection held by the proxy: the service is not in a poll"
grep -q 'IMAP server did not answer' "$tmp/service.log" && fail "the IMAP timeout ended the hang early"
hung_at=$(wc -l < "$tmp/notify.log")
echo "silent: $(python3 "$tmp/since.py" "$tmp/notify.log") s since the last kick, $open connection(s) held"

# ---- the server answers again: the poll goes on, and the kicks come back
ctl pass
wait_for "WATCHDOG=1 again after the server answers" more_than 'WATCHDOG=1' "$(count 'WATCHDOG=1')"
wait_for "the message delivered during the hang stored" reports_are 4
wait_for "STATUS after the resumed poll" \
  bash -c "tail -n +$hung_at '$tmp/notify.log' | grep -Eq 'STATUS=last poll [0-9:]{8}: 1 stored, 0 rejected'"

# ---- SIGHUP: RELOADING=1, then READY=1 again
kill -HUP "$pid"
wait_for "RELOADING=1" has 'RELOADING=1'
wait_for "READY=1 after the reload" more_than 'READY=1' 1
check "RELOADING=1 before the second READY=1" \
  "$(grep -E ' (RELOADING|READY)=1$' "$tmp/notify.log" | awk '{ print $2 }' | tr '\n' ' ')" \
  "READY=1 RELOADING=1 READY=1 "

# ---- the server goes away: STATUS names the failure; the loop backs off and still kicks
kill "$ppid_"; wait "$ppid_" 2>/dev/null; ppid_=
wait_for "STATUS names the failing mailbox" has 'STATUS=last poll [0-9:]{8}: 0 stored, 0 rejected; failed: rua: cannot reach IMAP server .*; next at [0-9:]{8}'
n=$(count 'WATCHDOG=1')
wait_for "WATCHDOG=1 while backing off" more_than 'WATCHDOG=1' $((n + 3))

# ---- SIGTERM: STOPPING=1, exit 0
kill -TERM "$pid"
wait "$pid"; st=$?; pid=
check "exit status after SIGTERM" "$st" 0
wait_for "STOPPING=1" has 'STOPPING=1'

# ---- poll --once says nothing to systemd
: > "$tmp/notify.log"
NOTIFY_SOCKET=$tmp/notify.sock WATCHDOG_USEC=1000000 "$DC_BIN" --config "$tmp/dc.conf" poll --once \
  > "$tmp/once.log" 2>&1
# a marker sent after it: datagrams queue in order, so once it is read, anything
# poll --once had sent would have been read too
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"MARKER=1", sys.argv[1])' \
  "$tmp/notify.sock"
wait_for "the marker read" has 'MARKER=1'
check "datagrams from poll --once" "$(grep -vc ' MARKER=1$' "$tmp/notify.log")" 0

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp/service.log"; cat "$tmp/notify.log" | tail -50; exit 1; }
echo "all checks passed"

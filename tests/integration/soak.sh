#!/bin/bash
# soak.sh - `poll` as a service through faults over time (issue 9, item 3).
#
# The collector reaches PostgreSQL and Dovecot (imaps) only through
# tests/lib/faultproxy.py, one proxy each.  A bounded, seeded schedule of
# faults runs while report e-mails keep arriving (distinct reports, dropped
# into the Maildir): each cycle delivers a few messages, injects faults
# (reset every connection, stall, cut after K bytes from the server, one byte
# at a time, or a restart of PostgreSQL or Dovecot), lifts them, and waits for
# a poll that succeeds after them.  Then it checks:
#   - every report stored once (count = messages sent, no duplicates, no
#     failures), every message moved once (INBOX empty, Archive/DMARC holds
#     each Message-ID once);
#   - the collector's open fds equal after the final quiet poll to those after
#     the warm-up, its RSS grew by at most SOAK_RSS_TOL_KB (default 8 MiB) or
#     10 %, whichever is more;
#   - no connection left behind: at most 1 pg_stat_activity row of
#     application_name dmarc-collector, no Dovecot imap process and no
#     proxied IMAP connection between polls once quiet;
#   - SIGTERM ends the service with status 0, also while the database hangs
#     (accepts connections, never answers).
# Parameters (environment): SOAK_SEED (9), SOAK_CYCLES (bounds the mail
# generated: MAX_MSGS per cycle), SOAK_SECONDS (0: the short schedule below;
# else random cycles until that many seconds have passed), SOAK_MAX_MSGS per cycle
# (16), SOAK_FIGURES (a file to append the figures to), SOAK_TRACE (a file to
# append the collector's RSS and fds to after each cycle); bench/soak.sh sets them.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"

SEED=${SOAK_SEED:-9}
CYCLES=${SOAK_CYCLES:-6}
SECONDS_MAX=${SOAK_SECONDS:-0}
MAXMSG=${SOAK_MAX_MSGS:-16}
RSS_TOL_KB=${SOAK_RSS_TOL_KB:-8192}
# Under AddressSanitizer RSS also holds what ASan keeps of freed memory (its
# quarantine and per-size caches), so it follows the history of allocations,
# not only what is live.  The strict bound is checked in the plain build;
# under ASan the bound is 64 MB and catches only gross growth, while
# LeakSanitizer checks for leaks at exit.  (The ldd output is read whole:
# `ldd | grep -q` under pipefail fails when grep exits first and ldd gets
# SIGPIPE, which once gave an ASan run the plain bound and quarantine.)
asan=0
case "$(ldd "$DC_BIN" 2>/dev/null)" in *libasan*) asan=1 ;; esac
if [ -z "${SOAK_RSS_TOL_KB:-}" ] && [ $asan = 1 ]; then
  RSS_TOL_KB=65536
fi
FP="python3 $DC_SRC/tests/lib/faultproxy.py"
# under -DDC_SANITIZE=ON a leak at exit makes the exit status after SIGTERM
# non-zero (checked below); its report is in the service log
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$DC_SRC/tests/lsan.supp:print_suppressions=0}
# ASan keeps freed memory in a quarantine (256 MB by default), which RSS would
# count as growth: a small one keeps the RSS check meaningful there too
if [ $asan = 1 ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4
fi

tmp=$(mktemp -d)
chmod 755 "$tmp"
pid='' ppg='' pim=''
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  [ -n "$ppg" ] && kill "$ppg" 2>/dev/null
  [ -n "$pim" ] && kill "$pim" 2>/dev/null
  wait 2>/dev/null
  dc_dovecot_stop "$tmp/dv"
  dc_pg_stop "$tmp/pg" >/dev/null 2>&1
  [ -n "${KEEP:-}" ] && { echo "kept $tmp"; return; }
  rm -rf "$tmp"
}
trap cleanup EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb soak || exit 1
dc_dovecot_start "$tmp/dv" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
alive() { kill -0 "$pid" 2>/dev/null; }
pg_again() {
  dc_pg_as "'$DC_PG_BIN/pg_ctl' -D '$tmp/pg/data' -l '$tmp/pg/server.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PGPORT -k '$tmp/pg' -c fsync=off -c synchronous_commit=off\" start >/dev/null"
}
pg_down() { dc_pg_as "'$DC_PG_BIN/pg_ctl' -D '$tmp/pg/data' -m fast -w stop >/dev/null 2>&1"; }

# ---- the proxies (they end themselves after an hour and a half in any case)
$FP serve "$tmp/pg.ctl" "$PGPORT" --max-seconds $((SECONDS_MAX + 5400)) > "$tmp/pg.proxy.log" 2>&1 &
ppg=$!
$FP serve "$tmp/im.ctl" "$DC_IMAPS_PORT" --max-seconds $((SECONDS_MAX + 5400)) > "$tmp/im.proxy.log" 2>&1 &
pim=$!
for i in $(seq 1 100); do [ -s "$tmp/pg.ctl.port" ] && [ -s "$tmp/im.ctl.port" ] && break; sleep 0.05; done
PG_PROXY=$(cat "$tmp/pg.ctl.port") IM_PROXY=$(cat "$tmp/im.ctl.port")
ctl() { $FP ctl "$tmp/$1.ctl" "${@:2}" >/dev/null || fail "proxy $1: ${*:2}"; }
pstat() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" "$tmp/$1.ctl.stats"; }   # pstat PROXY FIELD

# ---- the mail: distinct reports, delivered a slice at a time
TOTAL_MAIL=$((CYCLES * MAXMSG + 30))
python3 "$DC_SRC/tests/integration/imap_mail.py" reports "$tmp/mail" "$TOTAL_MAIL" 5 soak || exit 1
sent=0
deliver() { # deliver N: the next N messages into INBOX
  local n=$1 files=() k
  [ $((sent + n)) -le "$TOTAL_MAIL" ] || n=$((TOTAL_MAIL - sent))
  [ "$n" -gt 0 ] || return 0
  for k in $(seq $((sent + 1)) $((sent + n))); do files+=("$tmp/mail/$(printf %05d "$k").eml"); done
  dc_dovecot_seed "$tmp/dv" "${files[@]}" || fail "seeding"
  sent=$((sent + n))
}

{ echo "[database]"; echo "conninfo = host=127.0.0.1 port=$PG_PROXY dbname=soak user=postgres"
  echo "[mailbox rua]"; echo "url = imaps://127.0.0.1:$IM_PROXY/INBOX"
  echo "user = $DC_IMAP_USER"; echo "password_file = $tmp/dv/imap.pass"; echo "ca_file = $DC_IMAP_CA"
  echo "archive_folder = Archive/DMARC"; echo "connections = 2"
  echo "[service]"; echo "interval = 1"
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$DC_BIN" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

# ---- what is measured
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
nfds() { ls "/proc/$pid/fd" 2>/dev/null | wc -l; }
pg_conns() { q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dmarc-collector'"; }
imap_procs() { # imap processes under this Dovecot's master (one ps, not one per process)
  local m
  m=$(cat "$tmp/dv/run/master.pid" 2>/dev/null) || { echo 0; return; }
  ps -e -o pid=,ppid=,comm= | awk -v m="$m" '
    { parent[$1] = $2; comm[$1] = $3 }
    END { for (p in comm) if (comm[p] == "imap") { q = p; while (q in parent && q != m && q > 1) q = parent[q]; if (q == m) n++ }
          print n + 0 }'
}
# quiet_sample: over about 2 s of an idle service (a poll each second, no new
# mail), the least fd count, the RSS, the most collector rows in
# pg_stat_activity, the least Dovecot imap processes and proxied IMAP
# connections (a poll holds one for a few ms; a leaked one is always there).
quiet_sample() {
  local i f c m d o
  Q_FDS=999999 Q_PG=0 Q_IMAP=999 Q_IMPROXY=999 Q_PGPROXY=0
  for i in $(seq 1 6); do
    f=$(nfds); [ "$f" -lt "$Q_FDS" ] && Q_FDS=$f
    c=$(pg_conns); [ "$c" -gt "$Q_PG" ] && Q_PG=$c
    m=$(imap_procs); [ "$m" -lt "$Q_IMAP" ] && Q_IMAP=$m
    d=$(pstat im open); [ "$d" -lt "$Q_IMPROXY" ] && Q_IMPROXY=$d
    o=$(pstat pg open); [ "$o" -gt "$Q_PGPROXY" ] && Q_PGPROXY=$o
    sleep 0.2
  done
  Q_RSS=$(rss_kb)
}
stored() { q "SELECT count(*) FROM dmarc.reports WHERE org_name = 'gen.example'"; }
succeeded_since() { # a poll finished without error after epoch $1
  [ "$(q "SELECT coalesce(max(last_success_at) > to_timestamp($1), false) FROM dmarc.mailboxes")" = t ]
}
wait_success() { # after a fault: a successful poll that started after it (bounded)
  local t=$1 i
  for i in $(seq 1 600); do
    succeeded_since "$t" 2>/dev/null && return 0
    alive || { fail "the service died"; return 1; }
    sleep 0.2
  done
  fail "no successful poll within 120 s of lifting fault $2"
  return 1
}
wait_cut() { # wait_cut PROXY: until it has cut a connection (at most 5 s), then pass
  local c0 i
  c0=$(pstat "$1" cuts)
  for i in $(seq 1 25); do
    [ "$(pstat "$1" cuts)" -gt "$c0" ] && break
    sleep 0.2
  done
  ctl "$1" pass
}
wait_drained() { # every message sent stored and moved (bounded)
  local i
  for i in $(seq 1 1800); do
    [ "$(dc_dovecot_count "$tmp/dv" INBOX)" = 0 ] && [ "$(stored)" = "$sent" ] && return 0
    alive || { fail "the service died"; return 1; }
    sleep 0.1
  done
  fail "not drained within 180 s: $(stored) of $sent stored, $(dc_dovecot_count "$tmp/dv" INBOX) in INBOX"
  return 1
}

"$DC_BIN" --config "$tmp/dc.conf" poll > "$tmp/service.log" 2>&1 &
pid=$!
t_start=$(date +%s)

# ---- warm-up: mail, no faults
deliver 30; wait_drained
sleep 1
quiet_sample
W_FDS=$Q_FDS W_RSS=$Q_RSS
echo "warm-up: $sent messages stored; fds $W_FDS, RSS $W_RSS kB, pg rows $Q_PG, imap processes $Q_IMAP"

# ---- the schedule
# A cycle is one database-side fault with one IMAP-side fault (both at once:
# the service backs off 5 s after a failed poll, so pairs halve the time), a
# single fault, or a restart of PostgreSQL or Dovecot.  The short run (no
# SOAK_SECONDS) is the four pairs of a seeded shuffle plus the two restarts:
# every kind at least once.  The long run picks at random.
RANDOM=$SEED
PG_KINDS=(pg_reset pg_stall pg_cut pg_slow)
IM_KINDS=(im_reset im_stall im_cut im_slow)
# (No $(...) around RANDOM: a subshell reseeds it, and the schedule would not
# follow the seed.)
shuffle() { # shuffle ARRAY_NAME, in place
  local -n a=$1
  local i j t
  for ((i = ${#a[@]} - 1; i > 0; i--)); do j=$((RANDOM % (i + 1))); t=${a[i]}; a[i]=${a[j]}; a[j]=$t; done
}
pgs=("${PG_KINDS[@]}") ims=("${IM_KINDS[@]}")
shuffle pgs
shuffle ims
SHORT=("${pgs[0]} ${ims[0]}" "${pgs[1]} ${ims[1]}" pg_restart "${pgs[2]} ${ims[2]}" dv_restart "${pgs[3]} ${ims[3]}")
pick() { # one cycle's faults, at random, into $kinds
  case $((RANDOM % 8)) in
    0|1|2) kinds="${PG_KINDS[RANDOM % 4]} ${IM_KINDS[RANDOM % 4]}" ;;
    3|4) kinds=${PG_KINDS[RANDOM % 4]} ;;
    5|6) kinds=${IM_KINDS[RANDOM % 4]} ;;
    7) if [ $((RANDOM % 2)) = 0 ]; then kinds=pg_restart; else kinds=dv_restart; fi ;;
  esac
}
# Each fault is set up so that it meets a poll: it is armed before the mail
# arrives, and finished after: a connection in flight is held (stalled) first
# and then reset; a cut waits until it has cut a connection (one cut each).
arm() {
  case $1 in
    pg_reset) ctl pg stall 10 ;;
    pg_stall) ctl pg stall 2 ;;
    pg_cut) ctl pg cut $((RANDOM % 900 + 100)) ;;
    pg_slow) ctl pg slow 1 ;;
    im_reset) ctl im stall 10 ;;
    im_stall) ctl im stall 2 ;;
    im_cut) ctl im cut $((RANDOM % (n * 2500) + 3000)) ;;
    im_slow) ctl im slow 1 ;;
  esac
}
finish() {
  case $1 in
    pg_reset) sleep 1.5; ctl pg reset ;;
    pg_stall|im_stall) sleep 2 ;;
    pg_cut) wait_cut pg ;;
    pg_slow) sleep 2; ctl pg pass ;;
    im_reset) sleep 1.5; ctl im reset ;;
    im_cut) wait_cut im ;;
    im_slow) sleep 2; ctl im pass ;;
    pg_restart) sleep "0.$((RANDOM % 10))"; pg_down; sleep 0.5
      pg_again || { fail "PostgreSQL did not start again"; return 1; } ;;
    dv_restart) sleep "0.$((RANDOM % 10))"
      dc_dovecot_restart "$tmp/dv" 9>&- || { fail "Dovecot did not start again"; return 1; } ;;
  esac
}
declare -A done_kind=()
faults=0 cycle=0
while :; do
  cycle=$((cycle + 1))
  if [ "$SECONDS_MAX" -gt 0 ]; then
    [ $(( $(date +%s) - t_start )) -ge "$SECONDS_MAX" ] && break
    [ $((sent + MAXMSG)) -le "$TOTAL_MAIL" ] || break
    pick
  else
    [ "$cycle" -le "${#SHORT[@]}" ] || break
    kinds=${SHORT[cycle - 1]}
  fi
  n=$((RANDOM % MAXMSG + 1))
  for k in $kinds; do arm "$k"; done
  deliver "$n"
  for k in $kinds; do
    finish "$k" || break 2
    faults=$((faults + 1))
    done_kind[$k]=$(( ${done_kind[$k]:-0} + 1 ))
  done
  lifted=$(date +%s)
  echo "cycle $cycle at $(( lifted - t_start )) s: $n messages, $kinds (sent $sent, stored $(stored))"
  wait_success "$lifted" "$kinds" || break
  [ -n "${SOAK_TRACE:-}" ] && echo "cycle=$cycle t=$(( $(date +%s) - t_start ))s rss_kb= $(rss_kb) fds= $(nfds) sent= $sent" >> "$SOAK_TRACE"
done

# ---- quiet: everything stored, then measure
wait_drained
sleep 2
quiet_sample
polls=$(grep -Ec 'mailbox rua: [0-9]+ messages:' "$tmp/service.log")
errors=$(grep -Ec 'trying again in' "$tmp/service.log")
elapsed=$(( $(date +%s) - t_start ))
kinds=$(for k in "${!done_kind[@]}"; do printf '%s=%s ' "$k" "${done_kind[$k]}"; done)

check "reports stored (once each)" "$(q "SELECT count(*) || ' ' || count(DISTINCT report_id) FROM dmarc.reports WHERE org_name = 'gen.example'")" "$sent $sent"
check "failures" "$(q "SELECT count(*) FROM dmarc.failures")" 0
check "INBOX" "$(dc_dovecot_count "$tmp/dv" INBOX)" 0
check "Archive/Invalid" "$(dc_dovecot_count "$tmp/dv" Archive/Invalid)" 0
adir=$(dc_dovecot_folder_dir "$tmp/dv" Archive/DMARC)
ids=$(find "$adir/cur" "$adir/new" -type f -exec grep -h -m1 -i '^Message-ID:' {} + | sort)
check "archived messages" "$(printf '%s\n' "$ids" | grep -c .)" "$sent"
check "archived twice" "$(printf '%s\n' "$ids" | uniq -d | grep -c .)" 0
check "open fds after the final quiet poll (after warm-up: $W_FDS)" "$Q_FDS" "$W_FDS"
rss_tol=$(( W_RSS / 10 > RSS_TOL_KB ? W_RSS / 10 : RSS_TOL_KB ))
if [ $((Q_RSS - W_RSS)) -le "$rss_tol" ]; then
  echo "ok: RSS $W_RSS kB after warm-up, $Q_RSS kB at the end (tolerance +$rss_tol kB)"
else
  fail "RSS grew from $W_RSS kB to $Q_RSS kB (tolerance +$rss_tol kB)"
fi
if [ "$Q_PG" -le 1 ]; then echo "ok: $Q_PG collector session(s) in pg_stat_activity (at most 1)"
else fail "$Q_PG collector sessions in pg_stat_activity when quiet (at most 1)"; fi
[ "$Q_PGPROXY" -le 1 ] || fail "$Q_PGPROXY proxied database connections when quiet (at most 1)"
check "Dovecot imap processes between quiet polls" "$Q_IMAP" 0
check "proxied IMAP connections between quiet polls" "$Q_IMPROXY" 0

# ---- the end: SIGTERM while the database hangs.  Its connection is reset and
# the proxy then stalls for 60 s: the service reconnects into the stall (a
# server that accepts and never answers); libpq's connect_timeout ends that
# attempt, and SIGTERM must end the service while the stall still holds.
ctl pg reset; ctl pg stall 60
for i in $(seq 1 400); do
  grep -q 'cannot connect to the database: .*(connect_timeout)' "$tmp/service.log" && break
  sleep 0.1
done
grep -q 'cannot connect to the database: .*(connect_timeout)' "$tmp/service.log" \
  || fail "no connection attempt into the stalled database timed out"
kill -TERM "$pid"
wait "$pid"; st=$?; pid=
check "exit status after SIGTERM" "$st" 0
check "the service ended during the stall, not after it: proxy mode" "$(sed -n 's/.* mode=//p' "$tmp/pg.ctl.stats")" "stall 60"
ctl pg pass

fig="soak: seed $SEED, $elapsed s, $faults faults ($kinds), $sent reports in $sent messages, $polls polls done, $errors failed polls retried; RSS $W_RSS kB after warm-up, $Q_RSS kB at the end; fds $W_FDS / $Q_FDS; pg sessions $Q_PG; imap processes $Q_IMAP; proxy db: $($FP ctl "$tmp/pg.ctl" stats); proxy imap: $($FP ctl "$tmp/im.ctl" stats)"
echo "$fig"
[ -n "${SOAK_FIGURES:-}" ] && echo "$fig" >> "$SOAK_FIGURES"
[ "$fails" = 0 ] || { echo "$fails check(s) failed"; tail -n 60 "$tmp/service.log"; exit 1; }
echo "all checks passed"

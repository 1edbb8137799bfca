#!/bin/bash
# imap_service.sh - `poll` as a service: polls every `interval` seconds;
# levels in the journald format when JOURNAL_STREAM is set; SIGHUP reloads
# the configuration (a new archive_folder is used); the database and the IMAP
# server going away are logged and retried with backoff, never fatal; SIGTERM
# during a poll finishes what is in hand (nothing moved that is not stored),
# writes its run row (kind interrupted) and leaves the mailbox status alone,
# and exits 0.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; dc_dovecot_stop "$tmp/dv"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb imap || exit 1
dc_dovecot_start "$tmp/dv" || exit 1
unset DMARC_COLLECTOR_CONFIG

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
lock_waiting() { [ "$(dc_pg_lock_waiters)" -ge 1 ]; }
reports_are() { [ "$(q "SELECT count(*) FROM dmarc.reports")" = "$1" ]; }
logged() { grep -Eq -- "$1" "$tmp/service.log"; }
in_folder() { [ "$(dc_dovecot_count "$tmp/dv" "$1")" = "$2" ]; }
pg_again() {
  dc_pg_as "'$DC_PG_BIN/pg_ctl' -D '$tmp/pg/data' -l '$tmp/pg/server.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PGPORT -k '$tmp/pg' -c fsync=off -c synchronous_commit=off\" start >/dev/null"
}
B=$DC_BIN
M=$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports

python3 "$DC_SRC/tests/integration/imap_mail.py" reports "$tmp/mail" 400 5 svc || exit 1
write_conf() { # write_conf ARCHIVE_FOLDER
  { echo "[database]"; echo "conninfo = dbname=imap"
    dc_dovecot_mailbox_conf "$tmp/dv" imaps
    echo "archive_folder = $1"
    echo "[service]"; echo "interval = 1"
    echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
}
write_conf Archive/DMARC
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

JOURNAL_STREAM=8:1234 "$B" --config "$tmp/dc.conf" poll > "$tmp/service.log" 2>&1 &
pid=$!
wait_for "service started" logged '^<6>service started: 1 mailbox, interval 1 s'
dc_dovecot_seed "$tmp/dv" "$M/google.eml" "$M/yahoo.eml"
wait_for "first mail stored" reports_are 2
wait_for "first mail archived" in_folder Archive/DMARC 2

# ---- SIGHUP: a new archive folder
write_conf Archive/Reloaded
kill -HUP "$pid"
wait_for "reload logged" logged '^<6>reload: .*1 mailbox, interval 1 s'
dc_dovecot_seed "$tmp/dv" "$M/mailru.eml"
wait_for "mail after the reload archived in the new folder" in_folder Archive/Reloaded 1
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 3

# ---- the database goes away and comes back
dc_pg_stop "$tmp/pg"
dc_dovecot_seed "$tmp/dv" "$M/outlook.eml"
wait_for "database failure logged with its retry" logged '^<3>mailbox rua: database: .*; trying again in [0-9]+ s'
kill -0 "$pid" 2>/dev/null || fail "the service died without its database"
check "message left in INBOX while the database is away" "$(dc_dovecot_count "$tmp/dv" INBOX)" 1
pg_again || { echo "FAIL: PostgreSQL did not start again"; exit 1; }
wait_for "stored once the database is back" reports_are 4
wait_for "and archived" in_folder INBOX 0

# ---- the IMAP server goes away and comes back
dc_dovecot_stop "$tmp/dv"
wait_for "IMAP failure logged with its retry" logged '^<3>mailbox rua: cannot reach IMAP server .*; trying again in [0-9]+ s'
kill -0 "$pid" 2>/dev/null || fail "the service died without its IMAP server"
dc_dovecot_start "$tmp/dv" || { echo "FAIL: Dovecot did not start again"; exit 1; }
dc_dovecot_seed "$tmp/dv" "$M/xs4all.eml"
wait_for "stored once the IMAP server is back" reports_are 5

# ---- SIGTERM in the middle of a poll
# The poll is held in the middle, not raced: a session holds a lock on
# dmarc.mailbox_messages, so each connection blocks when it records its
# first batch (stored, committed and archived by then); SIGTERM arrives
# there, and the lock is released after it.
dc_pg_hold "$tmp" imap "LOCK TABLE dmarc.mailbox_messages IN EXCLUSIVE MODE;" \
  || { echo "FAIL: could not lock dmarc.mailbox_messages"; exit 1; }
dc_dovecot_seed "$tmp/dv" "$tmp"/mail/*.eml
wait_for "the big poll under way" bash -c "[ \$(psql -X -At -c 'SELECT count(*) FROM dmarc.reports') -ge 5 ]"
wait_for "the poll held at recording its first batch" lock_waiting
kill -TERM "$pid"
dc_pg_release
wait "$pid"; st=$?; pid=
check "exit status after SIGTERM" "$st" 0
logged '^<6>stopping on a signal' || fail "no 'stopping' line"
left=$(dc_dovecot_count "$tmp/dv" INBOX)
echo "stopped with $left of 400 messages left in INBOX"
[ "$left" -gt 0 ] || fail "the poll ended before SIGTERM arrived"
archived=$(( $(dc_dovecot_count "$tmp/dv" Archive/Reloaded) - 3 ))   # mailru, outlook, xs4all
stored=$(q "SELECT count(*) FROM dmarc.reports WHERE org_name = 'gen.example'")
[ "$stored" -ge "$archived" ] || fail "$archived messages archived but only $stored of their reports stored"
check "messages accounted for" "$(( left + archived ))" 400
# the run log: the stopped poll has its row (kind interrupted, what it
# committed); the mailbox keeps the outcome of its last whole poll
check "the interrupted poll's run row" \
  "$(q "SELECT concat_ws('|', ok, error_kind, messages_stored + messages_duplicate) FROM dmarc.poll_runs WHERE error_kind = 'interrupted'")" \
  "f|interrupted|$archived"
check "mailbox status after the interrupted poll" \
  "$(q "SELECT concat_ws('|', polls_failed_in_a_row, last_error IS NULL) FROM dmarc.mailbox_status")" "0|t"
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/once.log" 2>&1
check "the rest stored by the next poll" "$?" 0
check "reports" "$(q "SELECT count(*) || ' ' || count(DISTINCT report_id) FROM dmarc.reports WHERE org_name = 'gen.example'")" "400 400"
check "INBOX" "$(dc_dovecot_count "$tmp/dv" INBOX)" 0

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp/service.log"; exit 1; }
echo "all checks passed"

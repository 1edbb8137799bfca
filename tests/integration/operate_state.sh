#!/bin/bash
# operate_state.sh - the collector's state in the database (issue 13): each
# poll of a mailbox, by `poll --once` and by the service, writes one row of
# dmarc.poll_runs and updates what dmarc.mailbox_status shows, good polls and
# failed ones alike:
#   * a good poll: ok, its messages stored, reports and records;
#   * a poll with a rejected message and a duplicate one: the three outcomes
#     apart, in the run row, the last poll's numbers and the totals;
#   * polls that failed because the IMAP server was stopped: ok false, kind
#     imap, last_error and last_error_at set, polls_failed_in_a_row counting,
#     last_success_at unchanged; the next good poll clears last_error and the
#     count and keeps last_error_at;
#   * a refused login of a mailbox never polled before (its row is created):
#     kind auth;
#   * a poll whose database is away writes nothing (it cannot);
#   * dmarc_reader may read dmarc.mailbox_status but not dmarc.poll_runs.
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
dc_pg_newdb ops || exit 1
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
B=$DC_BIN
M=$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports
BAD=$DC_SRC/tests/data/corpus/ZeWaren+dmarc-report-milter/tests/dmarc_emails/not-a-dmarc-report.eml
{ echo "[database]"; echo "conninfo = dbname=ops"
  dc_dovecot_mailbox_conf "$tmp/dv" imaps
  echo "[service]"; echo "interval = 1"
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }
poll() { "$B" --config "$tmp/dc.conf" poll --once >> "$tmp/poll.log" 2>&1; }
# the last run row: ok|error_kind|stored|duplicate|rejected|reports|records
last_run() {
  q "SELECT concat_ws('|', ok, coalesce(error_kind, '-'), messages_stored, messages_duplicate, messages_rejected,
       reports, records) FROM dmarc.poll_runs ORDER BY id DESC LIMIT 1"
}
# the status: last_poll_stored|duplicate|rejected|total stored|duplicate|rejected|failed in a row|last_error set|last_error_at set
status() {
  q "SELECT concat_ws('|', last_poll_stored, last_poll_duplicate, last_poll_rejected, messages_stored, messages_duplicate,
       messages_rejected, polls_failed_in_a_row, last_error IS NOT NULL, last_error_at IS NOT NULL)
     FROM dmarc.mailbox_status WHERE mailbox = 'rua'"
}
runs() { q "SELECT count(*) FROM dmarc.poll_runs"; }

# ---- a good poll
dc_dovecot_seed "$tmp/dv" "$M/google.eml" "$M/yahoo.eml"
poll; check "good poll: exit status" "$?" 0
records=$(q "SELECT count(*) FROM dmarc.records")
check "good poll: run row" "$(last_run)" "t|-|2|0|0|2|$records"
check "good poll: status" "$(status)" "2|0|0|2|0|0|0|f|f"
check "good poll: row's times and mailbox" \
  "$(q "SELECT r.mailbox = 'rua' AND r.started_at <= r.finished_at AND r.finished_at = s.last_poll_at
          AND s.last_success_at = s.last_poll_at AND r.mailbox_id = m.id AND r.error IS NULL
        FROM dmarc.poll_runs r, dmarc.mailbox_status s, dmarc.mailboxes m WHERE s.mailbox = 'rua' AND m.label = 'rua'")" t
check "status url without the user" "$(q "SELECT url LIKE 'imaps://localhost:%/INBOX' FROM dmarc.mailbox_status")" t

# ---- a rejected message and a duplicate
dc_dovecot_seed "$tmp/dv" "$BAD" "$M/google.eml"
poll; check "poll with a rejected message: exit status" "$?" 1
check "rejected + duplicate: run row" "$(last_run)" "t|-|0|1|1|0|0"
check "rejected + duplicate: status (last poll, totals)" "$(status)" "0|1|1|2|1|1|0|f|f"

# ---- the IMAP server stopped: two failed polls
success=$(q "SELECT last_success_at FROM dmarc.mailbox_status")
dc_dovecot_stop "$tmp/dv"
poll; check "IMAP server stopped: exit status" "$?" 75
check "IMAP down: run row" "$(last_run)" "f|imap|0|0|0|0|0"
check "IMAP down: the row's error" "$(q "SELECT error LIKE 'cannot reach IMAP server%' FROM dmarc.poll_runs ORDER BY id DESC LIMIT 1")" t
check "IMAP down: status" "$(status)" "0|0|0|2|1|1|1|t|t"
check "IMAP down: last_error, last_error_at = last_poll_at, last_success_at unchanged" \
  "$(q "SELECT last_error LIKE 'cannot reach IMAP server%' AND last_error_at = last_poll_at
          AND last_success_at = '$success' FROM dmarc.mailbox_status")" t
poll; check "second failed poll: exit status" "$?" 75
check "second failed poll: polls_failed_in_a_row" "$(q "SELECT polls_failed_in_a_row FROM dmarc.mailbox_status")" 2
err_at=$(q "SELECT last_error_at FROM dmarc.mailbox_status")

# ---- back: the next good poll clears the failure
dc_dovecot_start "$tmp/dv" || { echo "FAIL: Dovecot did not start again"; exit 1; }
poll; check "IMAP back: exit status" "$?" 0
check "IMAP back: run row" "$(last_run)" "t|-|0|0|0|0|0"
check "IMAP back: status (last_error cleared, last_error_at kept)" "$(status)" "0|0|0|2|1|1|0|f|t"
check "IMAP back: last_error_at of the last failure, before last_success_at" \
  "$(q "SELECT last_error_at = '$err_at' AND last_success_at > last_error_at FROM dmarc.mailbox_status")" t
check "run rows so far (one per poll)" "$(runs)" 5

# ---- the database away: nothing can be written
dc_pg_stop "$tmp/pg"
poll; check "database away: exit status" "$?" 75
dc_pg_as "'$DC_PG_BIN/pg_ctl' -D '$tmp/pg/data' -l '$tmp/pg/server.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PGPORT -k '$tmp/pg' -c fsync=off\" start >/dev/null" \
  || { echo "FAIL: PostgreSQL did not start again"; exit 1; }
check "database away: no run row written" "$(runs)" 5

# ---- a mailbox never polled before whose login is refused: its row is made
printf 'wrong\n' > "$tmp/ghost.pass"; chmod 600 "$tmp/ghost.pass"
{ echo "[database]"; echo "conninfo = dbname=ops"
  dc_dovecot_mailbox_conf "$tmp/dv" imaps ghost | sed -e 's/^user = .*/user = ghost@example.com/' \
    -e "s|^password_file = .*|password_file = $tmp/ghost.pass|"; } > "$tmp/ghost.conf"
"$B" --config "$tmp/ghost.conf" poll --once >> "$tmp/poll.log" 2>&1
check "refused login: exit status" "$?" 2
check "refused login: run row" "$(q "SELECT concat_ws('|', ok, error_kind, messages_stored) FROM dmarc.poll_runs WHERE mailbox = 'ghost'")" "f|auth|0"
check "refused login: its status row" \
  "$(q "SELECT concat_ws('|', polls_failed_in_a_row, last_error IS NOT NULL, last_success_at IS NULL, last_poll_stored) FROM dmarc.mailbox_status WHERE mailbox = 'ghost'")" "1|t|t|0"

# ---- the service writes them too
n=$(runs)
"$B" --config "$tmp/dc.conf" poll > "$tmp/service.log" 2>&1 &
pid=$!
wait_for "the service wrote two run rows" bash -c "[ \$(psql -X -At -c 'SELECT count(*) FROM dmarc.poll_runs') -ge $((n + 2)) ]"
kill -TERM "$pid"; wait "$pid"; pid=
check "the service's rows are good polls of rua" \
  "$(q "SELECT bool_and(ok AND mailbox = 'rua') FROM dmarc.poll_runs WHERE id > (SELECT max(id) FROM dmarc.poll_runs WHERE mailbox = 'ghost')")" t

# ---- who may read what
q "CREATE ROLE it_reader LOGIN IN ROLE dmarc_reader" >/dev/null
check "dmarc_reader reads dmarc.mailbox_status" \
  "$(psql -X -At -U it_reader -c "SELECT count(*) FROM dmarc.mailbox_status" 2>&1)" 2
out=$(psql -X -At -U it_reader -c "SELECT count(*) FROM dmarc.poll_runs" 2>&1)
case $out in *"permission denied"*) echo "ok: dmarc_reader cannot read dmarc.poll_runs" ;;
  *) fail "dmarc_reader read dmarc.poll_runs: $out" ;; esac
out=$(psql -X -At -U it_reader -c "SELECT count(*) FROM dmarc.alerts_sent" 2>&1)
case $out in *"permission denied"*) echo "ok: dmarc_reader cannot read dmarc.alerts_sent" ;;
  *) fail "dmarc_reader read dmarc.alerts_sent: $out" ;; esac

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp/poll.log"; exit 1; }
echo "all checks passed"

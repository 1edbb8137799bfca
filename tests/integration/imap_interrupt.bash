# imap_interrupt.bash - sourced by imap_kill.sh, imap_dbstop.sh and
# imap_restart.sh with MODE set (and by imap_kill_cyrus.sh and
# imap_restart_cyrus.sh with DC_IMAP_SERVER=cyrus as well, see
# tests/lib/imap.sh): a `poll --once` of 400 report e-mails is
# interrupted while it runs (SIGKILL, the database stopped, the IMAP server
# restarted), at the point where batches are committed and moved but their
# progress is not recorded.  Then: every message already moved out of INBOX has its report
# stored (nothing moved before its data was committed); the next poll stores
# the rest; every report is stored once and every message archived once.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
: "${MODE:?MODE must be kill, dbstop or restart}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/imap.sh" || exit 1

N=400
tmp=$(mktemp -d)
chmod 755 "$tmp"
pid=
trap '[ -n "${KEEP:-}" ] && exit; [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; dc_imap_stop "$tmp/imap"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb imap || exit 1
dc_imap_start "$tmp/imap" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
pg_again() { # the same cluster, started again on its port
  dc_pg_as "'$DC_PG_BIN/pg_ctl' -D '$tmp/pg/data' -l '$tmp/pg/server.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PGPORT -k '$tmp/pg' -c fsync=off -c synchronous_commit=off\" start >/dev/null"
}
# Report-IDs of the messages in FOLDER (Message-ID <REPORT-ID@gen.example>)
folder_report_ids() {
  dc_imap_message_ids "$tmp/imap" "$1" | sed -n 's/.*<\(.*\)@gen\.example>.*/\1/p' | sort
}
B=$DC_BIN

python3 "$DC_SRC/tests/integration/imap_mail.py" reports "$tmp/mail" "$N" 5 "$MODE" || exit 1
dc_imap_seed "$tmp/imap" "$tmp"/mail/*.eml || exit 1
# The test cluster runs with synchronous_commit=off, under which a crash loses
# the last commits a client was told about; the collector sets it on for its
# own sessions, so "committed, then moved" holds across the crash below.
{ echo "[database]"; echo "conninfo = dbname=imap"
  dc_imap_mailbox_conf "$tmp/imap" imaps
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

# The poll is held in the middle, not raced (a poll of 400 messages takes a
# fraction of a second): a session holds a lock on dmarc.mailbox_messages,
# so each connection blocks when it records its first batch, whose reports
# are committed and whose messages are moved by then, the progress not yet
# recorded.  The interruption comes there.
dc_pg_hold "$tmp" imap "LOCK TABLE dmarc.mailbox_messages IN EXCLUSIVE MODE;" \
  || { echo "FAIL: could not lock dmarc.mailbox_messages"; exit 1; }

"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll1.log" 2>&1 9>&- &
pid=$!
stored=0 held=0
for _ in $(seq 1 600); do
  stored=$(q "SELECT count(*) FROM dmarc.reports" 2>/dev/null || echo 0)
  held=$(dc_pg_lock_waiters 2>/dev/null || echo 0)
  [ "${stored:-0}" -gt 0 ] && [ "${held:-0}" -gt 0 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ "${held:-0}" -gt 0 ] || fail "the poll was not held at recording a batch ($stored reports stored)"
case $MODE in
  kill)
    kill -KILL "$pid"; wait "$pid"; st=$?
    dc_pg_release
    check "killed poll's status" "$st" 137 ;;
  dbstop)
    kill -STOP "$pid"; dc_pg_stop "$tmp/pg"; dc_pg_release; kill -CONT "$pid"
    wait "$pid"; st=$?
    check "poll without its database exits" "$st" 75
    grep -Eq 'error: .*(database|server|connection)' "$tmp/poll1.log" || fail "no database error logged: $(tail -3 "$tmp/poll1.log")"
    pg_again || { echo "FAIL: PostgreSQL did not start again"; exit 1; } ;;
  restart)
    kill -STOP "$pid"; dc_imap_restart "$tmp/imap" || { echo "FAIL: $(dc_imap_name) did not start again"; exit 1; }
    dc_pg_release
    kill -CONT "$pid"
    wait "$pid"; st=$?
    check "poll losing its IMAP server exits" "$st" 75
    grep -Eq 'error: mailbox rua: .*(IMAP|closed|connection)' "$tmp/poll1.log" || fail "no IMAP error logged: $(tail -3 "$tmp/poll1.log")"
    ;;
esac
pid=
left=$(dc_imap_count "$tmp/imap" INBOX)
echo "interrupted after $stored reports; $left messages left in INBOX, $(dc_imap_count "$tmp/imap" Archive/DMARC) archived"
[ "$left" -gt 0 ] || fail "the poll finished before it was interrupted (raise N)"

# nothing moved before its data was committed
archived=$(folder_report_ids Archive/DMARC)
stored_ids=$(q "SELECT report_id FROM dmarc.reports" | sort)
check "archived messages whose report is not stored" \
  "$(comm -23 <(echo "$archived" | sed '/^$/d') <(echo "$stored_ids")| wc -l)" 0
check "messages lost (neither in INBOX nor archived)" "$(( N - left - $(echo "$archived" | sed '/^$/d' | wc -l) ))" 0

"$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll2.log" 2>&1
check "next poll's status" "$?" 0
check "reports stored (each once)" "$(q "SELECT count(*) || ' ' || count(DISTINCT report_id) FROM dmarc.reports")" "$N $N"
check "records stored" "$(q "SELECT count(*) FROM dmarc.records")" "$((N * 5))"
check "INBOX after the next poll" "$(dc_imap_count "$tmp/imap" INBOX)" 0
check "messages archived (each once)" "$(folder_report_ids Archive/DMARC | uniq | wc -l) $(dc_imap_count "$tmp/imap" Archive/DMARC)" "$N $N"
check "failures" "$(q "SELECT count(*) FROM dmarc.failures")" 0
check "last UID recorded" "$(q "SELECT last_uid FROM dmarc.mailboxes")" "$N"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; for l in "$tmp"/poll*.log; do tail -n 5 "$l"; done; exit 1; }
echo "all checks passed"

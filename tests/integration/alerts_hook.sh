#!/bin/bash
# alerts_hook.sh - the [alerts] command (issue 13) after real polls (Dovecot,
# PostgreSQL): it gets the rows of dmarc.alerts not sent yet as a JSON array
# on stdin, each alert ONCE across polls (a counting command), the JSON valid
# (python3 json.load) and equal to the rows, quotes, backslashes, line breaks
# and non-ASCII included; a command that exits 1 gets the same alerts again
# after the next poll; a hanging one is killed (with what it started) after
# [alerts] timeout and its alerts are not marked sent; its output goes to the
# log; its environment has no PGPASSWORD and no DMARC_COLLECTOR_* variable;
# the service runs it too; examples/alerts-mail.sh works as the command;
# check-config says whether the command is an executable file.
#
# First with the real view (sql/objects/85_alerts.sql): the IMAP server
# stopped, the mailbox not read successfully for longer than its threshold,
# dmarc.alert_collector_stale fires and the command gets it once over two
# failed polls.  Then the rows come from a dmarc.alerts the test makes in
# its own database (a table in place of the view: the test decides what
# fires).
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; for f in "$tmp"/hang.pid "$tmp"/hang.child; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done; dc_dovecot_stop "$tmp/dv"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb hook || exit 1
dc_dovecot_start "$tmp/dv" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
wait_for() { # wait_for WHAT COMMAND...: at most 60 s, not a timing test
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

# the counting command: keeps each call's stdin and environment, prints a
# line on stdout and one on stderr, exits with the status in $tmp/exit
mkdir "$tmp/calls"
cat > "$tmp/count.sh" <<SH
#!/bin/sh
n=\$(ls "$tmp/calls" | grep -c '\.json\$')
cat > "$tmp/calls/\$n.json"
env > "$tmp/calls/\$n.env"
echo "hook call \$n on stdout"
echo "hook call \$n on stderr" >&2
exit \$(cat "$tmp/exit" 2>/dev/null || echo 0)
SH
# the hanging command: starts a child and waits for it
cat > "$tmp/hang.sh" <<SH
#!/bin/sh
echo \$\$ > "$tmp/hang.pid"
sleep 1000 &
echo \$! > "$tmp/hang.child"
wait
SH
chmod +x "$tmp/count.sh" "$tmp/hang.sh"

write_conf() { # write_conf COMMAND [TIMEOUT]
  { echo "[database]"; echo "conninfo = dbname=hook"
    dc_dovecot_mailbox_conf "$tmp/dv" imaps
    echo "[service]"; echo "interval = 1"
    echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"
    echo "[alerts]"; echo "command = $1"
    [ -n "${2:-}" ] && echo "timeout = $2"; } > "$tmp/dc.conf"
}
write_conf "$tmp/count.sh"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }
poll() { "$B" --config "$tmp/dc.conf" poll --once >> "$tmp/poll.log" 2>&1; }
calls() { ls "$tmp/calls" | grep -c '\.json$'; }
# alert|key of call N, one a line, sorted
call_keys() { python3 -c 'import json, sys
for a in sorted(json.load(open(sys.argv[1])), key=lambda a: (a["alert"], a["key"])): print(a["alert"] + "|" + a["key"])' "$tmp/calls/$1.json"; }

# ---- the real view: the IMAP server away for longer than 3 intervals
poll; check "real view: a good poll" "$?" 0
id=$(q "SELECT id FROM dmarc.mailboxes WHERE label = 'rua'")
dc_dovecot_stop "$tmp/dv"
# the last success an hour ago, the interval the view assumes 60 s: stale
q "UPDATE dmarc.mailboxes SET last_success_at = now() - interval '1 hour';
   UPDATE dmarc.alert_settings SET value = 60 WHERE name = 'collector_interval_seconds'" >/dev/null
poll; check "real view: IMAP down: exit status" "$?" 75
poll; check "real view: IMAP down again: exit status" "$?" 75
n=$(calls)
stale=$(for i in $(seq 0 $((n - 1))); do call_keys "$i"; done | grep -c "^collector_stale|not_read|rua|$id\$")
check "real view: collector_stale given once over two failed polls" "$stale" 1
python3 - "$tmp/calls" <<'PY' && echo "ok: real view: its summary and details (last_error, polls_failed_in_a_row)" || fail "real view: the alert's JSON"
import glob, json, sys
rows = [a for f in glob.glob(sys.argv[1] + "/*.json") for a in json.load(open(f)) if a["alert"] == "collector_stale"]
assert len(rows) == 1, rows
a = rows[0]
assert a["summary"].startswith("mailbox rua (") and "not read successfully" in a["summary"], a
assert a["details"]["last_error"].startswith("cannot reach IMAP server"), a["details"]
assert a["details"]["polls_failed_in_a_row"] in (1, 2), a["details"]
PY
dc_dovecot_start "$tmp/dv" || { echo "FAIL: Dovecot did not start again"; exit 1; }
check "real view: collector_stale marked sent" "$(q "SELECT count(*) FROM dmarc.alerts_sent WHERE alert = 'collector_stale'")" 1
mv "$tmp/calls" "$tmp/calls-real" && mkdir "$tmp/calls" && mv "$tmp/poll.log" "$tmp/poll-real.log"
q "DELETE FROM dmarc.alerts_sent" >/dev/null

# the test's own dmarc.alerts, in place of the view (this database only)
q "DROP VIEW IF EXISTS dmarc.alerts;
   CREATE TABLE dmarc.alerts (alert text, key text, summary text, details jsonb);
   SELECT dmarc.grant_roles()" >/dev/null || { echo "FAIL: test dmarc.alerts"; exit 1; }
fire() { # fire ALERT KEY SUMMARY [DETAILS]
  echo "INSERT INTO dmarc.alerts VALUES (:'a', :'k', :'s', :'d')" \
    | psql -X -q -v ON_ERROR_STOP=1 -v a="$1" -v k="$2" -v s="$3" -v d="${4:-{\}}" >/dev/null
}
sent() { q "SELECT string_agg(alert || '|' || key, ' ' ORDER BY alert, key) FROM dmarc.alerts_sent"; }

# ---- two alerts, one poll: one call with both
SUMMARY='192.0.2.1 "quoted" \back\slash
second line, café ✓'
fire new_failing_senders 'example.com|192.0.2.1' "$SUMMARY" '{"source_ip": "192.0.2.1", "messages": 120, "ptr": null}'
fire silent_reporters 'google.com' 'google.com sent no report for 3 days' '{"days": 3}'
dc_dovecot_seed "$tmp/dv" "$M/google.eml"
poll; check "poll with the hook: exit status (the hook changes none)" "$?" 0
check "calls after the first poll" "$(calls)" 1
SUMMARY="$SUMMARY" python3 - "$tmp/calls/0.json" <<'PY' && echo "ok: stdin is a JSON array of the alert rows (json.load), special characters intact" || fail "the JSON on stdin"
import json, os, sys
alerts = json.load(open(sys.argv[1], encoding="utf-8"))
assert isinstance(alerts, list) and len(alerts) == 2, alerts
assert all(set(a) == {"alert", "key", "summary", "details"} for a in alerts), alerts
a = {x["alert"]: x for x in alerts}
f = a["new_failing_senders"]
assert f["key"] == "example.com|192.0.2.1", f
assert f["summary"] == os.environ["SUMMARY"], (f["summary"], os.environ["SUMMARY"])
assert f["details"] == {"source_ip": "192.0.2.1", "messages": 120, "ptr": None}, f
assert a["silent_reporters"]["details"] == {"days": 3}
PY
check "alerts_sent after the first poll" "$(sent)" "new_failing_senders|example.com|192.0.2.1 silent_reporters|google.com"
grep -q 'alerts: hook call 0 on stdout' "$tmp/poll.log" && grep -q 'alerts: hook call 0 on stderr' "$tmp/poll.log" \
  && echo "ok: the command's stdout and stderr in the log" || fail "the command's output is not in the log"
grep -q 'alerts: 2 new alerts given to' "$tmp/poll.log" && echo "ok: the delivery logged" || fail "no 'alerts: 2 new alerts' line"

# ---- the next poll: nothing new, no call; a third alert: a call with it alone
poll; check "second poll, nothing new: calls" "$(calls)" 1
fire new_failing_senders 'example.com|198.51.100.7' 'another failing sender'
poll; check "third poll, one new alert: calls" "$(calls)" 2
check "the third poll's call holds only the new alert" "$(call_keys 1)" "new_failing_senders|example.com|198.51.100.7"
check "each alert given once across the polls" \
  "$(for n in 0 1; do call_keys $n; done | sort | uniq -c | awk '$1 != 1' | wc -l)" 0

# ---- a failing command: the same alerts again after the next poll
echo 1 > "$tmp/exit"
fire silent_reporters 'yahoo.com' 'yahoo.com sent no report for 3 days'
poll; check "failing command: poll exit status unchanged" "$?" 0
check "failing command: called" "$(calls)" 3
check "failing command: its alert not marked sent" "$(q "SELECT count(*) FROM dmarc.alerts_sent WHERE key = 'yahoo.com'")" 0
grep -q "alerts: command $tmp/count.sh: exit status 1; its 1 alert will be given again after the next poll" "$tmp/poll.log" \
  && echo "ok: the failure logged in one line" || fail "no log line for the failing command"
echo 0 > "$tmp/exit"
poll; check "retry after the next poll: called again" "$(calls)" 4
check "the retry holds the same alert" "$(call_keys 3)" "silent_reporters|yahoo.com"
check "and now it is marked sent" "$(q "SELECT count(*) FROM dmarc.alerts_sent WHERE key = 'yahoo.com'")" 1
poll; check "once accepted, not given again" "$(calls)" 4

# ---- the environment: no database password, no DMARC_COLLECTOR_*
fire collector_stale 'rua' 'mailbox rua not read for 3 intervals'
PGPASSWORD=pg-secret DMARC_COLLECTOR_DATABASE_PASSWORD=db-secret ALERTS_MAIL_TO=ops@example.com poll
env5=$tmp/calls/4.env
[ -f "$env5" ] && ! grep -q '^PGPASSWORD=' "$env5" && ! grep -q '^DMARC_COLLECTOR_' "$env5" \
  && ! grep -q 'secret' "$env5" && grep -q '^ALERTS_MAIL_TO=ops@example.com$' "$env5" && grep -q '^PATH=' "$env5" \
  && echo "ok: the command's environment: no PGPASSWORD, no DMARC_COLLECTOR_*, the rest kept" \
  || fail "the command's environment: $(cat "$env5" 2>/dev/null | cut -d= -f1 | tr '\n' ' ')"

# ---- a hanging command is killed after the timeout, with its child
write_conf "$tmp/hang.sh" 2
fire silent_reporters 'mail.ru' 'mail.ru sent no report for 3 days'
poll; check "hanging command: poll exit status unchanged" "$?" 0
grep -q "alerts: command $tmp/hang.sh: killed after 2 s (\[alerts\] timeout); its 1 alert will be given again" "$tmp/poll.log" \
  && echo "ok: the hanging command killed after the timeout, logged" || fail "no 'killed after 2 s' line"
# gone, or dead and waiting for its new parent to reap it (a zombie)
dead() { ! kill -0 "$1" 2>/dev/null || [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ]; }
for f in hang.pid hang.child; do
  p=$(cat "$tmp/$f" 2>/dev/null)
  if [ -n "$p" ] && dead "$p"; then echo "ok: $f ($p) was killed"; else fail "$f (${p:-no pid}) still runs"; fi
done
check "hanging command: its alert not marked sent" "$(q "SELECT count(*) FROM dmarc.alerts_sent WHERE key = 'mail.ru'")" 0

# ---- the example mail script as the command (a fake sendmail)
cat > "$tmp/sendmail" <<SH
#!/bin/sh
cat > "$tmp/mail.txt"
SH
chmod +x "$tmp/sendmail"
write_conf "$DC_SRC/examples/alerts-mail.sh dmarc-team@example.com"
ALERTS_MAIL_SENDMAIL=$tmp/sendmail poll
grep -qx 'To: dmarc-team@example.com' "$tmp/mail.txt" && grep -q '^\[silent_reporters\] mail.ru sent no report for 3 days' "$tmp/mail.txt" \
  && echo "ok: examples/alerts-mail.sh mailed the alert left over" || fail "alerts-mail.sh: $(cat "$tmp/mail.txt" 2>/dev/null)"
check "alerts-mail.sh accepted: marked sent" "$(q "SELECT count(*) FROM dmarc.alerts_sent WHERE key = 'mail.ru'")" 1

# ---- the service: a new alert is given once, however many rounds follow
write_conf "$tmp/count.sh"
n0=$(calls)
"$B" --config "$tmp/dc.conf" poll > "$tmp/service.log" 2>&1 &
pid=$!
fire new_unsigned_sources 'example.com|203.0.113.9' 'auto-replies from 203.0.113.9 without aligned DKIM'
wait_for "the service gave the new alert" bash -c "[ \$(ls '$tmp/calls' | grep -c '\.json\$') -gt $n0 ]"
runs=$(q "SELECT count(*) FROM dmarc.poll_runs")
wait_for "three more polls" bash -c "[ \$(psql -X -At -c 'SELECT count(*) FROM dmarc.poll_runs') -ge $((runs + 3)) ]"
kill -TERM "$pid"; wait "$pid"; pid=
check "the service called the command once" "$(calls)" $((n0 + 1))
check "with the new alert" "$(call_keys "$n0")" "new_unsigned_sources|example.com|203.0.113.9"

# ---- every alert fired was given once, except yahoo.com (refused once) and
# mail.ru (killed once, then mailed by alerts-mail.sh: not counted here)
check "alerts given more than once" "$(for n in $(seq 0 $(($(calls) - 1))); do call_keys "$n"; done | sort | uniq -c | awk '$1 != 1 { print $2 }')" "silent_reporters|yahoo.com"
check "every alert marked sent" "$(q "SELECT count(*) FROM dmarc.alerts a WHERE NOT EXISTS (SELECT 1 FROM dmarc.alerts_sent s WHERE s.alert = a.alert AND s.key = a.key)")" 0

# ---- check-config looks at the command (the DNS servers of this test do not
# answer: its status is 75 at best, so the lines are what is checked)
"$B" --config "$tmp/dc.conf" check-config > "$tmp/check.log" 2>&1
grep -q "check-config: alerts: command $tmp/count.sh, timeout 60 s" "$tmp/check.log" \
  && echo "ok: check-config: the command is executable" || { cat "$tmp/check.log"; fail "check-config with a good command"; }
write_conf "$tmp/no-such-command --flag"
"$B" --config "$tmp/dc.conf" check-config > "$tmp/check.log" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "check-config: alerts: command $tmp/no-such-command is not an executable file" "$tmp/check.log" \
  && echo "ok: check-config: a missing command is an error (exit $rc)" || { cat "$tmp/check.log"; fail "check-config with a missing command: exit $rc"; }
write_conf "$tmp/count.sh"

# ---- a schema without dmarc.alerts: a warning, the poll unaffected
q "DROP TABLE dmarc.alerts" >/dev/null
poll; check "no dmarc.alerts: poll exit status" "$?" 0
grep -q 'alerts: reading dmarc.alerts: .*(run `dmarc-collector migrate` first)' "$tmp/poll.log" \
  && echo "ok: no dmarc.alerts: a warning naming migrate" || fail "no warning for a missing dmarc.alerts"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp/poll.log"; exit 1; }
echo "all checks passed"

#!/bin/bash
# metrics.sh - the service's [service] metrics_listen server against a real
# Dovecot and PostgreSQL: /metrics passes `promtool check metrics` (format
# errors and lint problems alike) and its numbers match the database
# (messages stored, duplicate and rejected; records_total = count(*) of
# dmarc.records; PTR lookups = rows of dmarc.ip_names; a recent last
# success); /healthz answers 200 "ok", then 503 with the mailbox's reason
# once the IMAP server is stopped, and 200 again when it is back; the
# counters survive SIGHUP; other methods get 405, other paths 404; a
# second service on the same address exits 2 with one line; SIGTERM frees
# the port.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"
command -v promtool >/dev/null || { echo "SKIP: promtool missing (Debian package prometheus)"; exit 77; }

tmp=$(mktemp -d)
chmod 755 "$tmp"
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; dc_dovecot_stop "$tmp/dv"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb metrics || exit 1
dc_dovecot_start "$tmp/dv" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
# wait_for [-n TENTHS] WHAT COMMAND...: until COMMAND succeeds (default at
# most 60 s; a bound, not a timing assertion)
wait_for() {
  local n=600 what i
  [ "$1" = -n ] && { n=$2; shift 2; }
  what=$1
  shift
  for i in $(seq 1 "$n"); do
    "$@" >/dev/null 2>&1 && { echo "ok: $what"; return 0; }
    sleep 0.1
  done
  fail "gave up waiting: $what"
  return 1
}
port=$(dc_freeport)
url=http://127.0.0.1:$port
get() { curl -s --max-time 10 "$url$1"; }
code() { curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }
# metric SERIES: the value of the series (exact name and labels) in /metrics
metric() { get /metrics | awk -v s="$1" '$1 == s { print $2 }'; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
logged() { grep -Eq -- "$1" "$tmp/service.log"; }
in_folder() { [ "$(dc_dovecot_count "$tmp/dv" "$1")" = "$2" ]; }
healthz_is() { # healthz_is CODE [REGEX]: the status, and the body matching REGEX
  local c
  c=$(curl -s --max-time 10 -o "$tmp/healthz" -w '%{http_code}' "$url/healthz")
  [ "$c" = "$1" ] && { [ -z "${2:-}" ] || grep -Eq -- "$2" "$tmp/healthz"; }
}
lookups_match() { # the PTR lookups counted = the rows dmarc.ip_names got
  local sum
  sum=$(get /metrics | awk '/^dmarc_collector_resolve_lookups_total\{/ { s += $2 } END { print s + 0 }')
  [ "$sum" -gt 0 ] && [ "$sum" = "$(q "SELECT count(*) FROM dmarc.ip_names")" ]
}

B=$DC_BIN
M=$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports
{ echo "[database]"; echo "conninfo = dbname=metrics"
  dc_dovecot_mailbox_conf "$tmp/dv" imaps
  echo "[service]"; echo "interval = 1"; echo "metrics_listen = 127.0.0.1:$port"
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }
printf 'From: a@example.com\r\nTo: rua@example.com\r\nSubject: hello\r\nMessage-ID: <junk@example.com>\r\n\r\nnot a report\r\n' > "$tmp/junk.eml"

"$B" --config "$tmp/dc.conf" poll > "$tmp/service.log" 2>&1 &
pid=$!
wait_for "service serving metrics" logged "metrics: serving /metrics and /healthz on 127.0.0.1:$port"

# ---- before any mail: every series exists at 0
wait_for "messages_total stored at 0 from the start" metric_is 'dmarc_collector_messages_total{mailbox="rua",outcome="stored"}' 0
check "poll_errors_total{kind=imap} at start" "$(metric 'dmarc_collector_poll_errors_total{mailbox="rua",kind="imap"}')" 0

# ---- a second service on the same address: a configuration error at start
"$B" --config "$tmp/dc.conf" poll > "$tmp/second.log" 2>&1
check "exit status of a second service on the same address" "$?" 2
check "its output" "$(wc -l < "$tmp/second.log")" 1
grep -q "metrics_listen = 127.0.0.1:$port: cannot listen there: Address already in use" "$tmp/second.log" \
  || fail "second service: $(cat "$tmp/second.log")"

# ---- five reports, the first again (a duplicate), and a message without one (rejected)
dc_dovecot_seed "$tmp/dv" "$M/google.eml" "$M/yahoo.eml" "$M/mailru.eml" "$M/outlook.eml" "$M/xs4all.eml"
wait_for "five reports stored" bash -c "[ \$(psql -X -At -c 'SELECT count(*) FROM dmarc.reports') = 5 ]"
wait_for "five messages counted as stored" metric_is 'dmarc_collector_messages_total{mailbox="rua",outcome="stored"}' 5
dc_dovecot_seed "$tmp/dv" "$M/google.eml" "$tmp/junk.eml"
wait_for "the duplicate counted" metric_is 'dmarc_collector_messages_total{mailbox="rua",outcome="duplicate"}' 1
wait_for "the rejected message counted" metric_is 'dmarc_collector_messages_total{mailbox="rua",outcome="rejected"}' 1
wait_for "INBOX emptied" in_folder INBOX 0
wait_for "PTR lookups counted as dmarc.ip_names has rows" lookups_match

get /metrics > "$tmp/metrics.txt"
promtool check metrics < "$tmp/metrics.txt" > "$tmp/promtool.out" 2>&1
check "promtool check metrics exit status" "$?" 0
check "promtool's complaints (lint included)" "$(cat "$tmp/promtool.out")" ""
val() { awk -v s="$1" '$1 == s { print $2 }' "$tmp/metrics.txt"; }
check "messages_total stored" "$(val 'dmarc_collector_messages_total{mailbox="rua",outcome="stored"}')" 5
for o in stored duplicate rejected; do
  check "messages_total $o = dmarc.mailbox_messages" "$(val "dmarc_collector_messages_total{mailbox=\"rua\",outcome=\"$o\"}")" \
    "$(q "SELECT count(*) FROM dmarc.mailbox_messages WHERE CASE WHEN outcome = 'rejected' THEN 'rejected'
          WHEN reports = 0 AND duplicates > 0 THEN 'duplicate' ELSE 'stored' END = '$o'")"
done
check "records_total = count(*) of dmarc.records" "$(val dmarc_collector_records_total)" \
  "$(q "SELECT count(*) FROM dmarc.records")"
[ "$(q "SELECT count(*) FROM dmarc.records")" -gt 0 ] || fail "no records stored"
last=$(val 'dmarc_collector_last_success_timestamp_seconds{mailbox="rua"}')
age=$(echo "$(date +%s.%N) - $last" | bc)
echo "last success ${age} s ago"
[ "$(echo "$age >= 0 && $age < 120" | bc)" = 1 ] || fail "last_success_timestamp_seconds $last is not recent (now $(date +%s))"
check "polls counted in the histogram" "$(val 'dmarc_collector_poll_duration_seconds_count{mailbox="rua"}')" \
  "$(val 'dmarc_collector_poll_duration_seconds_bucket{mailbox="rua",le="+Inf"}')"
grep -q '^dmarc_collector_build_info{version="[0-9]' "$tmp/metrics.txt" || fail "no build_info"
grep -q '^# TYPE dmarc_collector_poll_duration_seconds histogram$' "$tmp/metrics.txt" || fail "no histogram"

# ---- the server's manners
wait_for "healthz 200 ok" healthz_is 200 '^ok$'
check "POST /metrics" "$(code -X POST -d x=1 "$url/metrics")" 405
check "DELETE /healthz" "$(code -X DELETE "$url/healthz")" 405
check "unknown path" "$(code "$url/nope")" 404
check "HEAD /metrics" "$(code -I "$url/metrics")" 200
check "Content-Type" "$(curl -s -o /dev/null -w '%{content_type}' "$url/metrics")" \
  "text/plain; version=0.0.4; charset=utf-8"

# ---- SIGHUP: the counters survive a reload
kill -HUP "$pid"
wait_for "reload logged" logged 'reload: .*1 mailbox, interval 1 s'
check "messages_total stored after the reload" "$(metric 'dmarc_collector_messages_total{mailbox="rua",outcome="stored"}')" 5

# ---- the IMAP server stops: /healthz turns 503 with the mailbox's reason
dc_dovecot_stop "$tmp/dv"
wait_for "healthz 503 naming the mailbox and its IMAP failure" \
  healthz_is 503 '^mailbox rua: no successful poll since .*; last poll failed at .* \(imap\): cannot reach IMAP server'
cat "$tmp/healthz"
[ "$(metric 'dmarc_collector_poll_errors_total{mailbox="rua",kind="imap"}')" -ge 1 ] \
  || fail "poll_errors_total{kind=imap} not counted"
get /metrics | promtool check metrics > "$tmp/promtool.out" 2>&1 || fail "promtool after failures: $(cat "$tmp/promtool.out")"
kill -0 "$pid" 2>/dev/null || fail "the service died without its IMAP server"

# ---- and back (the backoff is at most 40 s by now)
dc_dovecot_start "$tmp/dv" || { echo "FAIL: Dovecot did not start again"; exit 1; }
wait_for -n 1200 "healthz 200 once the IMAP server is back" healthz_is 200 '^ok$'

# ---- SIGTERM: exits 0 and frees the port
kill -TERM "$pid"
wait "$pid"; st=$?; pid=
check "exit status after SIGTERM" "$st" 0
check "nothing listens after the stop" "$(code "$url/metrics")" 000

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp/service.log"; exit 1; }
echo "all checks passed"

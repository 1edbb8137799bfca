#!/usr/bin/env bash
# bench/imap.sh - the IMAP benchmark of issue 3 (a benchmark, not a test).
#
# N report e-mails (default 10,000; one gzip or zip report of 5 records each,
# tests/integration/imap_mail.py) in the INBOX of a private Dovecot (imaps,
# loopback), then in one run:
#   R. the raw fetch: one `UID FETCH 1:* BODY.PEEK[]` over imaps with
#      openssl s_client, output counted and thrown away (the IMAP baseline)
#   P. dmarc-collector poll --once of that INBOX into a fresh, migrated
#      database: fetch, parse, store (one transaction per IMAP batch of up
#      to 200 messages), move to the archive folder, record progress, add
#      the rollups
#   I. dmarc-collector import of the same message files into another fresh
#      database (the parse + store baseline, no IMAP; one transaction per
#      report)
# and prints P / R (goal: within 3x) and P / I, with the CPU seconds each
# party spent in P: the collector (user + sys), the PostgreSQL server and
# Dovecot (their exited children's times from /proc), and what that CPU
# sets as the least wall time on this machine's cores.  The throwaway
# PostgreSQL runs with fsync=off; poll itself sets synchronous_commit=on.
# Usage: bench/imap.sh [N]    (needs a build in build/, or DC_BIN)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10000}
bin=${DC_BIN:-$src/build/dmarc-collector}
[ -x "$bin" ] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time" >&2; exit 2; }
tmp=$(mktemp -d /tmp/dc-bench-imap.XXXXXX)
chmod 755 "$tmp"
. "$src/tests/lib/pg.sh"
. "$src/tests/lib/dovecot.sh"
cleanup() { dc_dovecot_stop "$tmp/dv"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.1f}')"; }
cpu_of() { # seconds of CPU used by the exited children of process $1
  awk '{ printf "%.2f\n", ($16 + $17) / 100 }' "/proc/$1/stat"
}
pg_cpu() { # ... of the PostgreSQL server (its backends)
  sleep 1
  cpu_of "$(head -1 "$tmp/pg/data/postmaster.pid")"
}
dv_cpu() { # ... of Dovecot (its imap processes, gone after LOGOUT)
  sleep 1
  cpu_of "$(cat "$tmp/dv/run/master.pid")"
}

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "generating $n report e-mails..."
python3 "$src/tests/integration/imap_mail.py" reports "$tmp/mail" "$n" 5 bench
mail_mb=$(du -sm "$tmp/mail" | cut -f1)

dc_pg_start "$tmp/pg"
for db in dc_poll dc_import; do
  dc_pg_newdb "$db"
  "$bin" --db "dbname=$db" -q migrate
done
dc_dovecot_start "$tmp/dv"
t0=$(now)
dc_dovecot_seed "$tmp/dv" "$tmp"/mail/*.eml
echo "seeded the Maildir in $(secs "$t0" "$(now)") s ($mail_mb MB)"
# let Dovecot index the new mail once, so neither run pays for it
dc_dovecot_doveadm "$tmp/dv" mailbox status -u rua@example.com messages INBOX

# R: raw fetch
e0=$(dv_cpu)
t0=$(now)
printf 'a LOGIN rua@example.com %s\r\nb SELECT INBOX\r\nc UID FETCH 1:* BODY.PEEK[]\r\nd LOGOUT\r\n' "$DC_IMAP_PASS" \
  | openssl s_client -quiet -verify_return_error -CAfile "$DC_IMAP_CA" -connect "127.0.0.1:$DC_IMAPS_PORT" 2>/dev/null \
  | wc -c > "$tmp/raw.bytes"
t1=$(now)
r=$(secs "$t0" "$t1")
e1=$(dv_cpu)
raw_mb=$(( $(cat "$tmp/raw.bytes") / 1048576 ))

# P: the collector's poll
c0=$(pg_cpu)
d0=$(dv_cpu)
cat > "$tmp/dc.conf" <<CONF
[database]
conninfo = dbname=dc_poll
$(dc_dovecot_mailbox_conf "$tmp/dv" imaps)
[dns]
servers = 127.0.0.1:9
timeout_ms = 100
CONF
t0=$(now)
/usr/bin/time -f '%M %U %S' -o "$tmp/poll.time" "$bin" --config "$tmp/dc.conf" poll --once 2> "$tmp/poll.log" || true
t1=$(now)
p=$(secs "$t0" "$t1")
poll_line=$(grep 'mailbox rua:' "$tmp/poll.log" | tail -1 | sed 's/^dmarc-collector: info: //')
poll_s=$(sed -n 's/.* in \([0-9.]*\) s$/\1/p' <<<"$poll_line")
stored=$(psql -X -At -d dc_poll -c "SELECT count(*) FROM dmarc.reports")
[ "$stored" = "$n" ] || { echo "poll stored $stored reports, expected $n" >&2; cat "$tmp/poll.log" >&2; exit 1; }
[ "$(dc_dovecot_count "$tmp/dv" Archive/DMARC)" = "$n" ] || { echo "not every message archived" >&2; exit 1; }
c1=$(pg_cpu)
d1=$(dv_cpu)
rolled=$(psql -X -At -d dc_poll -c "SELECT count(*) FILTER (WHERE rolled_up) FROM dmarc.reports")
[ "$rolled" = "$n" ] || { echo "poll left $((n - rolled)) reports out of the rollups" >&2; exit 1; }

# I: import of the same files
c2=$(pg_cpu)
t0=$(now)
/usr/bin/time -f '%M %U %S' -o "$tmp/import.time" "$bin" --db "dbname=dc_import" -q import "$tmp/mail"
t1=$(now)
i=$(secs "$t0" "$t1")
stored=$(psql -X -At -d dc_import -c "SELECT count(*) FROM dmarc.reports")
[ "$stored" = "$n" ] || { echo "import stored $stored reports, expected $n" >&2; exit 1; }
c3=$(pg_cpu)

read -r prss pu ps < "$tmp/poll.time"
read -r irss iu is < "$tmp/import.time"
echo
echo "$n messages, $mail_mb MB as files, $raw_mb MB over IMAP"
printf '%-46s %8s s   (Dovecot CPU %s s)\n' "R  raw UID FETCH 1:* BODY.PEEK[] (s_client)" "$r" \
  "$(python3 -c "print(f'{$e1 - $e0:.2f}')")"
printf '%-46s %8s s   (%s msg/s; CPU %s s user + %s s sys, peak RSS %s MB; PostgreSQL CPU %s s)\n' \
  "P  poll --once (fetch, store, move, record)" "$p" "$(python3 -c "print(round($n / $p))")" "$pu" "$ps" \
  "$(( prss / 1024 ))" "$(python3 -c "print(f'{$c1 - $c0:.1f}')")"
printf '%-46s %8s s   (CPU %s s user + %s s sys, peak RSS %s MB; PostgreSQL CPU %s s)\n' \
  "I  import of the same files" "$i" "$iu" "$is" "$(( irss / 1024 ))" "$(python3 -c "print(f'{$c3 - $c2:.1f}')")"
cores=$(nproc)
echo "   CPU spent during P: collector $(python3 -c "print(f'{$pu + $ps:.2f}')") s, PostgreSQL $(python3 -c "print(f'{$c1 - $c0:.2f}')") s," \
  "Dovecot $(python3 -c "print(f'{$d1 - $d0:.2f}')") s: at least $(python3 -c "print(f'{($pu + $ps + $c1 - $c0 + $d1 - $d0) / $cores:.2f}')") s on $cores cores"
echo "   poll's own log: $poll_line"
echo "P / R = $(ratio "$p" "$r")   P / I = $(ratio "$p" "$i")   (load average now $(cut -d' ' -f1-3 /proc/loadavg))"

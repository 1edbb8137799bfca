#!/bin/bash
# imap_quirks.sh - `poll` against a server with the quirks real ones have
# (tests/integration/imap_quirks_server.py, plain IMAP on loopback), checked
# end to end with PostgreSQL: FETCH answers out of UID order, a message sent
# twice, one expunged by another session during the FETCH, one left out of
# the FETCH though the server still has it, RFC822.SIZE too small and too
# large, and BYE in the middle of a FETCH.  Every report is stored once,
# nothing is moved that was not stored, nothing is skipped.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
      dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb imap || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
B=$DC_BIN
M=$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports

# server NAME CONFIG FILE...: starts a quirks server; its port in $tmp/NAME.port
server() {
  local name=$1 config=$2
  shift 2
  echo "$config" > "$tmp/$name.json"
  python3 "$DC_SRC/tests/integration/imap_quirks_server.py" "$tmp/$name.json" "$tmp/$name.port" \
    "$tmp/$name.state" "$@" 2> "$tmp/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$tmp/$name.port" ] && return 0; sleep 0.05; done
  echo "FAIL: the quirks server $name did not start: $(cat "$tmp/$name.log")"; exit 1
}
# folder NAME FOLDER: the messages (file names) in FOLDER of server NAME, blank-separated,
# sorted: a folder is a set (moves of one poll may come from several connections, in any
# order; which poll moved what is checked poll by poll)
folder() {
  python3 -c 'import json, sys; print(" ".join(sorted(json.load(open(sys.argv[1])).get(sys.argv[2], ["-"]))))' \
    "$tmp/$1.state" "$2"
}
# conf NAME...: one [mailbox NAME] per server
conf() {
  { echo "[database]"; echo "conninfo = dbname=imap"
    for n in "$@"; do
      echo "[mailbox $n]"; echo "url = imap://127.0.0.1:$(cat "$tmp/$n.port")/INBOX"; echo "tls = none"
      echo "user = rua@example.com"; echo "password_file = $tmp/pass"
    done
    echo "[limits]"; echo "max_message_bytes = 20000"
    echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
}
echo secret > "$tmp/pass"; chmod 600 "$tmp/pass"

# ---- a: UIDs 1 google, 2 yahoo (expunged meanwhile), 3 mailru (RFC822.SIZE 10),
#      4 xs4all (RFC822.SIZE 99999999: over the cap by the listing), 5 outlook (sent twice);
#      bodies in descending UID order
server a '{"size": {"3": 10, "4": 99999999}, "reverse": true, "expunge": [2], "twice": [5]}' \
  "$M/google.eml" "$M/yahoo.eml" "$M/mailru.eml" "$M/xs4all.eml" "$M/outlook.eml"
conf a
"$B" --config "$tmp/dc.conf" migrate > "$tmp/migrate.log" 2>&1 || { echo "FAIL: migrate: $(cat "$tmp/migrate.log")"; exit 1; }
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/a1.log" 2>&1
check "poll a (one rejected by its listed size)" "$?" 1
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 3
check "archived" "$(folder a Archive/DMARC)" "google.eml mailru.eml outlook.eml"
check "invalid" "$(folder a Archive/Invalid)" "xs4all.eml"
check "INBOX (yahoo expunged by another session)" "$(folder a INBOX)" ""
check "messages recorded: uid outcome reports duplicates size" \
  "$(q "SELECT string_agg(uid || ' ' || outcome || ' ' || reports || ' ' || duplicates || ' ' || size, ', ' ORDER BY uid) FROM dmarc.mailbox_messages")" \
  "1 stored 1 0 $(stat -c %s "$M/google.eml"), 3 stored 1 0 $(stat -c %s "$M/mailru.eml"), 4 rejected 0 0 99999999, 5 stored 1 0 $(stat -c %s "$M/outlook.eml")"
check "last UID" "$(q "SELECT last_uid FROM dmarc.mailboxes")" 5
grep -q 'UID 4: rejected (limits): message of 99999999 bytes is larger than max_message_bytes (20000)' "$tmp/a1.log" \
  || fail "too big by RFC822.SIZE not logged: $(cat "$tmp/a1.log")"
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/a2.log" 2>&1
check "poll a again" "$?" 0
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 3

# ---- b: BYE after the first body of the first session
server b '{"bye_after": 1}' "$M/yahoo.eml" "$M/xs4all.eml" "$M/google.eml"
conf b
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/b1.log" 2>&1
check "poll b cut by BYE" "$?" 75
grep -q 'BYE going down' "$tmp/b1.log" || fail "BYE not reported: $(cat "$tmp/b1.log")"
check "reports (the first body's kept)" "$(q "SELECT count(*) FROM dmarc.reports")" 4
check "nothing moved" "$(folder b INBOX)" "google.eml xs4all.eml yahoo.eml"
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/b2.log" 2>&1
check "poll b again" "$?" 0
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 5
check "archived" "$(folder b Archive/DMARC)" "google.eml xs4all.eml yahoo.eml"
check "INBOX" "$(folder b INBOX)" ""
check "b recorded: uid reports duplicates" \
  "$(q "SELECT string_agg(m.uid || ' ' || m.reports || ' ' || m.duplicates, ', ' ORDER BY m.uid) FROM dmarc.mailbox_messages m JOIN dmarc.mailboxes b ON b.id = m.mailbox_id WHERE b.label = 'b'")" \
  "1 0 1, 2 1 0, 3 0 1"

# ---- c: the server leaves UID 1 out of the FETCH once, though it still has it
server c '{"omit": [1]}' "$M/mailru.eml" "$M/outlook.eml"
conf c
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/c1.log" 2>&1
check "poll c" "$?" 0
grep -q 'UID 1 is listed but the server did not send it' "$tmp/c1.log" || fail "omission not logged: $(cat "$tmp/c1.log")"
check "the one sent is archived" "$(folder c Archive/DMARC)" "outlook.eml"
check "the one left out stays" "$(folder c INBOX)" "mailru.eml"
check "progress stays before it" "$(q "SELECT last_uid FROM dmarc.mailboxes WHERE label = 'c'")" 0
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/c2.log" 2>&1
check "poll c again" "$?" 0
check "archived" "$(folder c Archive/DMARC)" "mailru.eml outlook.eml"
check "INBOX" "$(folder c INBOX)" ""
check "c recorded: uid reports duplicates" \
  "$(q "SELECT string_agg(m.uid || ' ' || m.reports || ' ' || m.duplicates, ', ' ORDER BY m.uid) FROM dmarc.mailbox_messages m JOIN dmarc.mailboxes b ON b.id = m.mailbox_id WHERE b.label = 'c'")" \
  "1 0 1, 2 0 1"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp"/*1.log "$tmp"/*2.log; exit 1; }
echo "all checks passed"

#!/bin/bash
# imap_ingest.sh - collector/dc_ingest driven directly by a C test program
# (tests/integration/test_ingest.c), without the program's service loop:
# one poll of a small mailbox stores its reports and moves the messages,
# nothing moved before the commit; with the stop flag set nothing is
# fetched and the messages stay.  Real Dovecot and PostgreSQL.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
: "${DC_BUILD:?DC_BUILD must name the build directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/imap.sh" || exit 1

T=$DC_BUILD/tests/test_ingest
[ -x "$T" ] || { echo "FAIL: $T not built"; exit 1; }
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_imap_stop "$tmp/imap"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb ingest || exit 1
dc_imap_start "$tmp/imap" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ti() { # ti MODE LOG: test_ingest's output, "(exit N)" added unless it exited 0 (a sanitizer's report)
  local out rc; out=$("$T" "$tmp/dc.conf" "$1" 2>>"$2"); rc=$?
  [ "$rc" = 0 ] && echo "$out" || echo "$out (exit $rc)"
}
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
M=$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports
{ echo "[database]"; echo "conninfo = dbname=ingest"
  dc_imap_mailbox_conf "$tmp/imap" starttls; } > "$tmp/dc.conf"
"$DC_BIN" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

dc_imap_seed "$tmp/imap" "$M/google.eml" "$M/yahoo.eml" || exit 1
check "stop flag set: nothing fetched" "$(ti stop "$tmp/stop.log")" "success 0 0 0 0 0"
check "INBOX after the stopped run" "$(dc_imap_count "$tmp/imap" INBOX)" 2
check "one run: rc messages stored rejected reports rows" "$(ti run "$tmp/run.log")" \
  "success 2 2 0 2 2"
check "INBOX" "$(dc_imap_count "$tmp/imap" INBOX)" 0
check "Archive/DMARC" "$(dc_imap_count "$tmp/imap" Archive/DMARC)" 2
check "outcomes recorded" "$(psql -X -At -c "SELECT count(*) FROM dmarc.mailbox_messages WHERE outcome = 'stored'")" 2
grep -q '^\[6\] mailbox rua: 2 messages: 2 stored' "$tmp/run.log" || fail "no summary through the log callback: $(cat "$tmp/run.log")"
check "again: nothing new" "$(ti run "$tmp/run.log")" "success 0 0 0 0 2"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp"/*.log; exit 1; }
echo "all checks passed"

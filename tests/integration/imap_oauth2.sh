#!/bin/bash
# imap_oauth2.sh - XOAUTH2: the bearer token comes from oauth2_token_command;
# the service keeps it between polls and fetches a new one when the server
# refuses it; a token refused when fresh is a login error (exit 2), and so
# is a failing token command, unless it exits 75 (EX_TEMPFAIL), then 75.  Dovecot checks tokens against a small local
# introspection server (tokens valid while listed in a file).
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
pid= http=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; [ -n "$http" ] && kill "$http" 2>/dev/null; dc_dovecot_stop "$tmp/dv"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb imap || exit 1
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
reports_are() { [ "$(q "SELECT count(*) FROM dmarc.reports")" = "$1" ]; }
B=$DC_BIN
M=$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports

# the introspection endpoint: GET /token/<token>
port=$(dc_freeport)
: > "$tmp/tokens"
python3 - "$port" "$tmp/tokens" > "$tmp/http.log" 2>&1 <<'PY' &
import http.server, json, sys
port, tokens = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        tok = self.path.rsplit("/", 1)[-1].split("&")[0]   # Dovecot appends &client_id=...
        ok = tok in open(tokens).read().split()
        body = json.dumps({"email": "rua@example.com", "active": True} if ok else {"error": "invalid_token"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
http=$!
DC_DOVECOT_OAUTH2_URL="http://127.0.0.1:$port/token/" dc_dovecot_start "$tmp/dv" || exit 1

# the token command: tok-1, tok-2, ... one more per call
cat > "$tmp/token.sh" <<SH
#!/bin/sh
n=\$(( \$(cat "$tmp/count" 2>/dev/null || echo 0) + 1 ))
echo \$n > "$tmp/count"
echo "tok-\$n"
SH
chmod 755 "$tmp/token.sh"
conf() { # conf TOKEN_COMMAND
  { echo "[database]"; echo "conninfo = dbname=imap"
    dc_dovecot_mailbox_conf "$tmp/dv" imaps | grep -v '^password_file'
    echo "oauth2_token_command = $1"
    echo "[service]"; echo "interval = 1"
    echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
}
conf "$tmp/token.sh"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

echo tok-1 > "$tmp/tokens"
dc_dovecot_seed "$tmp/dv" "$M/google.eml" || exit 1
"$B" --config "$tmp/dc.conf" poll > "$tmp/service.log" 2>&1 &
pid=$!
wait_for "stored with tok-1" reports_are 1
check "token fetched" "$(cat "$tmp/count")" 1
grep -q 'method=XOAUTH2' "$tmp/dv/dovecot.log" || fail "Dovecot saw no XOAUTH2 login"

# the server stops accepting tok-1: the service fetches tok-2
echo tok-2 > "$tmp/tokens"
dc_dovecot_seed "$tmp/dv" "$M/yahoo.eml" || exit 1
wait_for "stored with a new token" reports_are 2
check "tokens fetched" "$(cat "$tmp/count")" 2
grep -q 'XOAUTH2 token refused; fetching a new one' "$tmp/service.log" || fail "refusal not logged"
kill -TERM "$pid"; wait "$pid"; check "service exit" "$?" 0; pid=

# a fresh token refused: a login error
: > "$tmp/tokens"
dc_dovecot_seed "$tmp/dv" "$M/mailru.eml" || exit 1
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/once.log" 2>&1
check "poll with a refused fresh token" "$?" 2
grep -q 'IMAP login as rua@example.com refused by .* (XOAUTH2 token)' "$tmp/once.log" \
  || fail "no clear login error: $(cat "$tmp/once.log")"

# a token command that fails: 2 (its setup is wrong), unless it says 75
# (EX_TEMPFAIL: its token service could not be reached), then 75
conf "/bin/false"
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/once2.log" 2>&1
check "poll with a failing token command" "$?" 2
grep -q 'oauth2_token_command failed (exit status 1)' "$tmp/once2.log" || fail "no clear error: $(cat "$tmp/once2.log")"
conf "exit 75"
"$B" --config "$tmp/dc.conf" poll --once > "$tmp/once3.log" 2>&1
check "poll with a token command that says try later" "$?" 75
grep -q 'oauth2_token_command failed (exit status 75)' "$tmp/once3.log" || fail "no clear error: $(cat "$tmp/once3.log")"
check "reports" "$(q "SELECT count(*) FROM dmarc.reports")" 2

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; cat "$tmp"/*.log; exit 1; }
echo "all checks passed"

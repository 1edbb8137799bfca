#!/bin/bash
# imap_auth.sh - logging in: a wrong password is a clear error and exit 2
# (nothing read, the failure recorded in dmarc.mailboxes; running again does
# not help until an admin acts); a certificate not signed by ca_file is
# refused (2); imap:// without STARTTLS is refused (2) unless the
# configuration says tls = none, which is only accepted for a loopback server;
# check-config logs in to every mailbox; a folder that does not exist is 2.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"
. "$DC_SRC/tests/lib/dnsmasq.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
fake=
trap '[ -n "$fake" ] && kill "$fake" 2>/dev/null; dc_dns_stop "$tmp/dns" >/dev/null 2>&1; dc_dovecot_stop "$tmp/dv"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb imap || exit 1
dc_dovecot_start "$tmp/dv" || exit 1
dc_dns_start "$tmp/dns" || exit 1     # check-config reaches the DNS server too
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
# expect STATUS PATTERN COMMAND...: exit status and a line matching PATTERN
expect() {
  local want=$1 pat=$2 got out
  shift 2
  out=$("$@" 2>&1); got=$?
  if [ "$got" != "$want" ]; then
    fail "$* exited $got, expected $want: $(echo "$out" | tail -3)"
  elif [ -n "$pat" ] && ! grep -Eq -- "$pat" <<<"$out"; then
    fail "$*: output lacks /$pat/: $(echo "$out" | tail -3)"
  else
    echo "ok: $* -> $got"
  fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
B=$DC_BIN
C=$DC_SRC/tests/data/corpus
# conf MODE [KEY = VALUE lines...]: a configuration for this Dovecot
conf() {
  local mode=$1; shift
  { echo "[database]"; echo "conninfo = dbname=imap"
    dc_dovecot_mailbox_conf "$tmp/dv" "$mode"
    for l in "$@"; do echo "$l"; done
    echo "[dns]"; echo "servers = $DC_DNS_SERVER"; } > "$tmp/dc.conf"
}
# replace KEY's line in the configuration
set_key() { sed -i "s|^$1 = .*|$1 = $2|" "$tmp/dc.conf"; }

dc_dovecot_seed "$tmp/dv" "$C/mjl-+mox/testdata/dmarc-reports/google.eml" || exit 1
conf imaps
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

# ---- a wrong password
printf 'not-the-password\n' > "$tmp/wrong.pass"; chmod 600 "$tmp/wrong.pass"
set_key password_file "$tmp/wrong.pass"
expect 2 'error: mailbox rua: IMAP login as rua@example.com refused by imaps://' "$B" --config "$tmp/dc.conf" poll --once
check "nothing read" "$(q "SELECT count(*) FROM dmarc.reports") $(dc_dovecot_count "$tmp/dv" INBOX)" "0 1"
check "failure recorded" "$(q "SELECT last_error LIKE '%login%refused%' FROM dmarc.mailboxes")" t
expect 2 'check-config: mailbox rua: IMAP login .* refused' "$B" --config "$tmp/dc.conf" check-config

# ---- a certificate ca_file does not vouch for
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other-ca -keyout "$tmp/other.key" \
  -out "$tmp/other.pem" >/dev/null 2>&1 || exit 1
conf imaps; set_key ca_file "$tmp/other.pem"
expect 2 'error: mailbox rua: TLS with imaps://.* failed: .*(certificate|verif)' "$B" --config "$tmp/dc.conf" poll --once
conf starttls; set_key ca_file "$tmp/other.pem"
expect 2 'error: mailbox rua: TLS with imap://.* failed' "$B" --config "$tmp/dc.conf" poll --once
check "nothing read" "$(q "SELECT count(*) FROM dmarc.reports") $(dc_dovecot_count "$tmp/dv" INBOX)" "0 1"

# ---- a server that offers no STARTTLS: refused unless tls = none
port=$(dc_freeport)
python3 - "$port" > "$tmp/fake.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(5)
while True:
    c, _ = s.accept()
    f = c.makefile("rb")
    c.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no TLS here\r\n")
    for line in f:
        tag = line.split(b" ")[0]
        if b"CAPABILITY" in line.upper():
            c.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
        else:
            c.sendall(tag + b" BAD no\r\n")
            break
    c.close()
PY
fake=$!
# wait until it listens (python starts in seconds on a loaded machine), 30 s
# at most; without connecting: a probe closed unread makes the fake's read
# fail with ECONNRESET, which ends it
for _ in $(seq 300); do ss -Hltn | grep "127.0.0.1:$port " >/dev/null && break; sleep 0.1; done
conf imaps; set_key url "imap://127.0.0.1:$port/INBOX"
expect 2 'error: mailbox rua: TLS with imap://127.0.0.1:.* failed' "$B" --config "$tmp/dc.conf" poll --once

# ---- tls = none: plain IMAP, accepted on loopback only
conf plain
expect 0 'mailbox rua: 1 messages: 1 stored' "$B" --config "$tmp/dc.conf" poll --once
check "stored over plain IMAP" "$(q "SELECT count(*) FROM dmarc.reports") $(dc_dovecot_count "$tmp/dv" Archive/DMARC)" "1 1"
set_key url "imap://imap.example.com/INBOX"
expect 2 'tls = none is allowed only for a loopback server' "$B" --config "$tmp/dc.conf" poll --once
expect 2 'tls = none is allowed only for a loopback server' "$B" --config "$tmp/dc.conf" check-config

# ---- check-config reaches the mailbox
conf starttls
expect 0 'check-config: mailbox rua: logged in to imap://localhost:[0-9]+/INBOX as rua@example.com, INBOX holds 0 messages' \
  "$B" --config "$tmp/dc.conf" check-config
set_key url "imaps://localhost:$DC_IMAPS_PORT/NoSuchFolder"
expect 2 "check-config: mailbox rua: IMAP server refused SELECT: NO .*exist" "$B" --config "$tmp/dc.conf" check-config

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"

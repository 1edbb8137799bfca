#!/bin/bash
# cli_check_config.sh - `check-config` against real services: PostgreSQL,
# Dovecot (imaps, private CA) and dnsmasq, all on loopback.  A good
# configuration exits 0; the database password comes from a password_file
# (handed to libpq as a connection parameter); a wrong IMAP password (from the
# environment, which wins over password_file) or a dead DNS server exit 75;
# a world-readable password file exits 2 naming the file.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"
. "$DC_SRC/tests/lib/dnsmasq.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"   # postgres and the mail user must reach their directories
trap 'dc_dns_blackhole_stop "$tmp/bh" >/dev/null 2>&1; dc_dns_stop "$tmp/dns" >/dev/null 2>&1;
      dc_dovecot_stop "$tmp/imap" >/dev/null 2>&1; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb checkcfg || exit 1
dc_dovecot_start "$tmp/imap" >/dev/null || { echo "FAIL: dovecot did not start"; exit 1; }
printf 'host-record=probe.example.com,127.0.0.1\n' >"$tmp/records"  # PTR and A: forward-confirmed
dc_dns_start "$tmp/dns" "$tmp/records" || { echo "FAIL: dnsmasq did not start"; exit 1; }
dc_dns_blackhole_start "$tmp/bh" || { echo "FAIL: black hole did not start"; exit 1; }
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect() {
  local want=$1 pat=$2 got out
  shift 2
  out=$("$@" 2>&1); got=$?
  if [ "$got" != "$want" ]; then
    fail "$* exited $got, expected $want: $(echo "$out" | tail -4)"
  elif [ -n "$pat" ] && ! grep -Eq -- "$pat" <<<"$out"; then
    fail "$*: output lacks /$pat/: $(echo "$out" | tail -4)"
  else
    echo "ok: ${*: -3} -> $got"
  fi
}

# the database needs a password (scram on 127.0.0.1), given by password_file
psql -X -q -c "CREATE ROLE collector LOGIN SUPERUSER PASSWORD 'db pass; with # signs'" -c "GRANT ALL ON DATABASE checkcfg TO collector" \
  || exit 1
hba=$(psql -X -At -c "SHOW hba_file")
printf 'host all collector 127.0.0.1/32 scram-sha-256\nlocal all all trust\nhost all all 127.0.0.1/32 trust\n' >"$tmp/hba"
cat "$tmp/hba" >"$hba"
psql -X -q -c "SELECT pg_reload_conf()" >/dev/null
printf 'db pass; with # signs\n' >"$tmp/db.pass"; chmod 600 "$tmp/db.pass"
printf '%s\n' "$DC_IMAP_PASS" >"$tmp/imap.pass"; chmod 640 "$tmp/imap.pass"

cat >"$tmp/good.conf" <<EOF
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=checkcfg user=collector connect_timeout=5
password_file = db.pass

[mailbox test]
url = imaps://127.0.0.1:$DC_IMAPS_PORT/INBOX
user = $DC_IMAP_USER
password_file = imap.pass
ca_file = $DC_IMAP_CA

[dns]
servers = $DC_DNS_SERVER
timeout_ms = 1000
EOF
unset PGPASSWORD
expect 0 'every service reached' "$DC_BIN" --config "$tmp/good.conf" check-config
# the same password reached libpq: migrate as the scram user works
expect 0 'migrate: ' "$DC_BIN" --config "$tmp/good.conf" migrate
# PGPASSWORD already set wins over the file (here: a wrong one): a refused
# login is 2 (an admin must fix it), not 75 (running again never helps)
expect 2 'password authentication failed.*SQLSTATE 28P01' env PGPASSWORD=wrong "$DC_BIN" --config "$tmp/good.conf" migrate
expect 2 'IMAP login .* refused' env DMARC_COLLECTOR_MAILBOX_PASSWORD=wrong "$DC_BIN" --config "$tmp/good.conf" check-config
expect 75 '' env DMARC_COLLECTOR_DNS_SERVERS="$DC_DNS_BLACKHOLE" "$DC_BIN" --config "$tmp/good.conf" check-config
chmod 644 "$tmp/imap.pass"
expect 2 'imap\.pass: readable by everyone' "$DC_BIN" --config "$tmp/good.conf" check-config

if [ "$fails" -gt 0 ]; then echo "FAIL: $fails check(s) failed"; exit 1; fi
echo PASS

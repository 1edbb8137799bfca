# tests/lib/cyrus.sh - a throwaway Cyrus IMAP server on loopback, for tests (the
# second real server next to tests/lib/dovecot.sh).  Source it, then:
#
#   dc_cyrus_start DIR       configure and start Cyrus in DIR (created); exports
#                            DC_IMAP_PORT   imap port (STARTTLS offered)
#                            DC_IMAPS_PORT  imaps port (implicit TLS)
#                            DC_IMAP_USER   DC_IMAP_PASS  the one mail account
#                            DC_IMAP_CA     the self-signed certificate (trust it)
#                            DC_CYRUS_DIR   DIR
#   dc_cyrus_seed DIR FILE...          deliver each file (an RFC 5322 message) into
#                            INBOX, unread, by IMAP MULTIAPPEND (no flags)
#   dc_cyrus_seed_folder DIR FOLDER FILE...  the same into FOLDER ("Archive/DMARC")
#   dc_cyrus_count DIR FOLDER          messages in FOLDER (IMAP STATUS; 0 if none)
#   dc_cyrus_restart DIR     stop and start again on the same ports
#   dc_cyrus_stop DIR        stop it and every process it started (DIR is left
#                            for the caller to remove)
#   dc_cyrus_mailbox_conf DIR [imaps|starttls|plain] [LABEL]
#                            a dmarc-collector [mailbox LABEL] section
# Optional, set before dc_cyrus_start:
#   DC_CYRUS_SUPPRESS_CAPABILITY  capabilities Cyrus must not advertise ("MOVE
#                            UIDPLUS", to test clients without them)
#   DC_CYRUS_TELEMETRY=1     Cyrus logs each IMAP session of the user, both
#                            directions, in DIR/conf/log/rua@example.com/
# The IMAP queries (seeding, counting, ...) are tests/lib/imapq.py's.
#
# How it runs (Cyrus 3.6, Debian's cyrus-common plus the imapd that
# scripts/install-deps.sh unpacks into /opt/dmarc-collector/cyrus-imapd,
# because the cyrus-imapd package conflicts with dovecot-imapd; DC_CYRUS_ROOT
# overrides that directory, DC_CYRUS_IMAPD the program):
#   - `master -C DIR/imapd.conf -M DIR/cyrus.conf -p DIR/master.pid -d`; every
#     path Cyrus writes (configdirectory with its databases, proc, lock and
#     socket directories, the partition, sieve) is under DIR.  Cyrus logs only
#     to syslog, and there is none here: tests/lib/cyrus_preload.c, compiled
#     into DIR and preloaded, writes its messages to DIR/cyrus.log, and turns
#     fsync off (as dovecot.sh's mail_fsync = never; APPEND and MOVE are 10x
#     faster); without a C compiler Cyrus runs without it, with a warning.
#     master's stderr goes to DIR/master.log.
#   - As root, master switches to the Debian user `cyrus` (cyrus_user; Cyrus
#     does not serve as root); otherwise it runs as the caller.  DIR and its parents
#     must be searchable by that user (mktemp -d makes 0700: chmod 755 them).
#   - Authentication is real: SASL auxprop with a private sasldb (saslpasswd2
#     -f DIR/sasldb2), mechanisms PLAIN and LOGIN, plaintext only under TLS
#     (allowplaintext: no), like Dovecot's disable_plaintext_auth.  With
#     virtdomains: userid the login rua@example.com is user rua of domain
#     example.com, so the sasldb entry is rua in realm example.com (a
#     defaultdomain of example.com would strip the domain and fail the login).
#   - altnamespace and unixhierarchysep: the account's folders are INBOX,
#     Archive/DMARC, ...  INBOX is created at the first login (autocreate_quota).
#   - TLS: a self-signed certificate made by openssl (SAN localhost and
#     127.0.0.1), TLS 1.2 and 1.3 only.
. "$(dirname "${BASH_SOURCE[0]}")/server.sh"

dc_cyrus_bindir() { echo /usr/lib/cyrus/bin; }

# The imapd program: DC_CYRUS_IMAPD, the unpacked one, or an installed one.
# The unpacked one must be of the installed cyrus-common's version (it links
# its libraries): after an upgrade of cyrus-common, run install-deps again.
dc_cyrus_imapd() {
  local f root=${DC_CYRUS_ROOT:-/opt/dmarc-collector/cyrus-imapd} want
  if [ -z "${DC_CYRUS_IMAPD:-}" ] && [ -f "$root/VERSION" ]; then
    want=$(dpkg-query -W -f='${Version}' cyrus-common 2>/dev/null)
    if [ "$(cat "$root/VERSION")" != "$want" ]; then
      echo "cyrus.sh: $root holds imapd $(cat "$root/VERSION"), cyrus-common is $want (run scripts/install-deps.sh as root)" >&2
      return 1
    fi
  fi
  for f in "${DC_CYRUS_IMAPD:-}" "$root/usr/lib/cyrus/bin/imapd" /usr/lib/cyrus/bin/imapd; do
    [ -n "$f" ] && [ -x "$f" ] && { echo "$f"; return 0; }
  done
  echo "cyrus.sh: no Cyrus imapd (run scripts/install-deps.sh as root)" >&2
  return 1
}

dc_cyrus_user() {  # the user the server runs as
  if [ "$(id -u)" = 0 ]; then echo cyrus; else id -un; fi
}

# Writes DIR/imapd.conf and DIR/cyrus.conf for the ports in DIR/ports.
dc_cyrus_write_conf() {
  local dir=$1 imap_port imaps_port imapd bin
  read -r imap_port imaps_port < "$dir/ports"
  imapd=$(dc_cyrus_imapd) || return 1
  bin=$(dc_cyrus_bindir)
  cat > "$dir/imapd.conf" <<CONF
# private Cyrus IMAP for dmarc-collector tests (tests/lib/cyrus.sh)
configdirectory: $dir/conf
proc_path: $dir/conf/proc
mboxname_lockpath: $dir/conf/lock
partition-default: $dir/spool
defaultpartition: default
sievedir: $dir/sieve
temp_path: $dir/tmp
lmtpsocket: $dir/conf/socket/lmtp
idlesocket: $dir/conf/socket/idle
notifysocket: $dir/conf/socket/notify
cyrus_user: $(dc_cyrus_user)
syslog_prefix: dc-cyrus-$imap_port
altnamespace: yes
unixhierarchysep: yes
virtdomains: userid
autocreate_quota: 0
allowplaintext: no
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $dir/sasldb2
sasl_mech_list: PLAIN LOGIN
failedloginpause: 0
tls_server_cert: $dir/cert.pem
tls_server_key: $dir/key.pem
tls_versions: tls1_2 tls1_3
umask: 022
CONF
  if [ -n "${DC_CYRUS_SUPPRESS_CAPABILITY:-}" ]; then
    echo "suppress_capabilities: $DC_CYRUS_SUPPRESS_CAPABILITY" >> "$dir/imapd.conf"
  fi
  cat > "$dir/cyrus.conf" <<CONF
# private Cyrus IMAP for dmarc-collector tests (tests/lib/cyrus.sh)
START {
  recover cmd="$bin/ctl_cyrusdb -C $dir/imapd.conf -r"
}
SERVICES {
  imap  cmd="$imapd -C $dir/imapd.conf" listen="127.0.0.1:$imap_port" prefork=0 maxchild=50
  imaps cmd="$imapd -s -C $dir/imapd.conf" listen="127.0.0.1:$imaps_port" prefork=0 maxchild=50
}
EVENTS {
}
DAEMON {
}
CONF
}

dc_cyrus_start() {
  local dir=$1 user=rua@example.com pass cyr i
  if [ ! -x "$(dc_cyrus_bindir)/master" ] || ! command -v saslpasswd2 >/dev/null; then
    echo "cyrus.sh: Cyrus (cyrus-common, sasl2-bin) is not installed (run scripts/install-deps.sh as root)" >&2
    return 1
  fi
  dc_cyrus_imapd >/dev/null || return 1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  cyr=$(dc_cyrus_user)
  mkdir -p "$dir/conf/proc" "$dir/conf/lock" "$dir/conf/socket" "$dir/conf/db" \
           "$dir/spool" "$dir/sieve" "$dir/tmp"
  chmod 755 "$dir"
  if [ ! -f "$dir/cert.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 \
      || { echo "cyrus.sh: openssl could not make a certificate" >&2; return 1; }
    chmod 600 "$dir/key.pem"
  fi
  if [ ! -f "$dir/imap.pass" ]; then
    pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s\n' "$pass" > "$dir/imap.pass"
    chmod 600 "$dir/imap.pass"
    # the user's entry is rua@example.com: realm example.com (virtdomains: userid)
    printf '%s' "$pass" | saslpasswd2 -f "$dir/sasldb2" -p -c -u example.com rua \
      || { echo "cyrus.sh: saslpasswd2 failed" >&2; return 1; }
  fi
  pass=$(cat "$dir/imap.pass")
  [ -f "$dir/ports" ] || echo "$(dc_freeport) $(dc_freeport)" > "$dir/ports"
  dc_cyrus_write_conf "$dir" || return 1
  # DC_CYRUS_TELEMETRY=1: Cyrus writes every session of the user, both
  # directions, into DIR/conf/log/rua@example.com/ (its "telemetry" logging)
  [ "${DC_CYRUS_TELEMETRY:-0}" = 1 ] && mkdir -p "$dir/conf/log/$user"
  chown -R "$cyr:" "$dir/conf" "$dir/spool" "$dir/sieve" "$dir/tmp" "$dir/key.pem" "$dir/sasldb2"
  # Cyrus's syslog messages into DIR/cyrus.log, no fsync (see the top of this file)
  local preload=
  if [ -f "$dir/cyrus_preload.so" ] || cc -shared -fPIC -O2 -o "$dir/cyrus_preload.so" \
       "${DC_SRC:-$(dirname "${BASH_SOURCE[0]}")/../..}/tests/lib/cyrus_preload.c" 2>>"$dir/start.log"; then
    preload=$dir/cyrus_preload.so
    touch "$dir/cyrus.log"; chown "$cyr:" "$dir/cyrus.log"
  else
    echo "cyrus.sh: no C compiler: Cyrus's log is lost, and it syncs every write" >&2
  fi
  # no inherited stdout/stderr: a caller piping our output must not wait for the daemon
  DC_CYRUS_SYSLOG=$dir/cyrus.log LD_PRELOAD=$preload \
    "$(dc_cyrus_bindir)/master" -C "$dir/imapd.conf" -M "$dir/cyrus.conf" -p "$dir/master.pid" \
    -L "$dir/master.log" -d </dev/null >/dev/null 2>>"$dir/start.log" \
    || { cat "$dir/start.log" "$dir/master.log" "$dir/cyrus.log" >&2 2>/dev/null; return 1; }
  read -r DC_IMAP_PORT DC_IMAPS_PORT < "$dir/ports"
  # wait until both listeners accept connections
  for i in $(seq 1 101); do
    [ "$i" = 101 ] && { echo "cyrus.sh: Cyrus is not listening on $DC_IMAP_PORT, $DC_IMAPS_PORT" >&2
                        tail -n 20 "$dir/master.log" "$dir/cyrus.log" >&2; dc_cyrus_stop "$dir"; return 1; }
    python3 - "$DC_IMAP_PORT" "$DC_IMAPS_PORT" <<'PY' 2>/dev/null && break
import socket, sys
for p in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(p)), timeout=1).close()
PY
    sleep 0.05
  done
  export DC_IMAP_PORT DC_IMAPS_PORT DC_IMAP_USER=$user DC_IMAP_PASS=$pass
  export DC_IMAP_CA=$dir/cert.pem DC_CYRUS_DIR=$dir
}

# Stops the instance and every process it started (master, imapd, ...):
# connected clients lose their connection, as dc_dovecot_stop does.
dc_cyrus_stop() {
  dc_proc_stop_tree "${1:-$DC_CYRUS_DIR}/master.pid"
}

dc_cyrus_restart() {
  local dir=${1:-$DC_CYRUS_DIR}
  dc_cyrus_stop "$dir" && dc_cyrus_start "$dir"
}

dc_cyrus_imapq() {
  python3 "${DC_SRC:-$(dirname "${BASH_SOURCE[0]}")/../..}/tests/lib/imapq.py" "$@"
}

dc_cyrus_seed_folder() {
  dc_cyrus_imapq "$1" append "$2" "${@:3}"
}

dc_cyrus_seed() {
  local dir=$1; shift
  dc_cyrus_seed_folder "$dir" INBOX "$@"
}

dc_cyrus_count() {
  dc_cyrus_imapq "$1" count "$2"
}

# Prints a dmarc-collector [mailbox LABEL] section for this Cyrus:
#   dc_cyrus_mailbox_conf DIR [imaps|starttls|plain] [LABEL]
# imaps (default): imaps:// port; starttls: imap:// port (STARTTLS required);
# plain: imap:// with tls = none (this Cyrus refuses a login without TLS).
dc_cyrus_mailbox_conf() {
  local dir=$1 mode=${2:-imaps} label=${3:-rua} p1 p2
  read -r p1 p2 < "$dir/ports"
  echo "[mailbox $label]"
  case $mode in
    imaps) echo "url = imaps://localhost:$p2/INBOX" ;;
    starttls) echo "url = imap://localhost:$p1/INBOX" ;;
    plain) echo "url = imap://127.0.0.1:$p1/INBOX"; echo "tls = none" ;;
    *) echo "cyrus.sh: unknown mode $mode" >&2; return 1 ;;
  esac
  echo "user = rua@example.com"
  echo "password_file = $dir/imap.pass"
  echo "ca_file = $dir/cert.pem"
}

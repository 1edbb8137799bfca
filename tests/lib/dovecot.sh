# tests/lib/dovecot.sh - a throwaway Dovecot IMAP server on loopback, for tests,
# benchmarks and the demo.  Source it, then:
#
#   dc_dovecot_start DIR     configure and start Dovecot in DIR (created); exports
#                            DC_IMAP_PORT   imap port (STARTTLS offered)
#                            DC_IMAPS_PORT  imaps port (implicit TLS)
#                            DC_IMAP_USER   DC_IMAP_PASS  the one mail account
#                            DC_IMAP_CA     the self-signed certificate (trust it)
#                            DC_IMAP_MAILDIR the account's Maildir
#                            DC_DOVECOT_DIR DIR
#   dc_dovecot_seed DIR FILE...        deliver each file (an RFC 5322 message) into
#                            INBOX, unread, by writing the Maildir directly
#   dc_dovecot_seed_folder DIR FOLDER FILE...  the same into FOLDER ("Archive/DMARC")
#   dc_dovecot_count DIR FOLDER        messages in FOLDER (Maildir files, cur + new)
#   dc_dovecot_doveadm DIR ARGS...     doveadm against this instance, e.g.
#                            dc_dovecot_doveadm DIR mailbox status -u rua@example.com all INBOX
#   dc_dovecot_restart DIR   stop and start again on the same ports
#   dc_dovecot_stop DIR      stop it (DIR is left for the caller to remove)
#
# Optional, set before dc_dovecot_start:
#   DC_DOVECOT_CAPABILITY  replaces the advertised IMAP capabilities (to test
#                          clients without MOVE or UIDPLUS)
#   DC_DOVECOT_OAUTH2_URL  also offer XOAUTH2/OAUTHBEARER; a token is valid when
#                          GET URL<token> answers 200 with {"email": "rua@example.com"}
#
# The certificate is made with openssl at start time (SAN localhost and
# 127.0.0.1).  Folders use the separator "/" (Archive/DMARC is .Archive.DMARC
# on disk).  Mail is owned by the unprivileged Debian user `mail` when run as
# root, else by the caller.  DIR and its parents must be searchable by that
# user (mktemp -d makes 0700 directories: chmod 755 them).
. "$(dirname "${BASH_SOURCE[0]}")/server.sh"

# Writes DIR/dovecot.conf for the ports in DIR/ports.
dc_dovecot_write_conf() {
  local dir=$1 imap_port imaps_port mail_user mail_uid mail_gid internal login
  read -r imap_port imaps_port < "$dir/ports"
  if [ "$(id -u)" = 0 ]; then
    mail_user=mail internal=dovecot login=dovenull
  else
    mail_user=$(id -un) internal=$(id -un) login=$(id -un)
  fi
  mail_uid=$(id -u "$mail_user") mail_gid=$(id -g "$mail_user")
  cat > "$dir/dovecot.conf" <<CONF
# private Dovecot for dmarc-collector tests (tests/lib/dovecot.sh)
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
instance_name = dc-dovecot-$imap_port
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login
disable_plaintext_auth = yes
auth_failure_delay = 0
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$dir/home/%u allow_all_users=yes
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
first_valid_uid = $mail_uid
first_valid_gid = $mail_gid
default_internal_user = $internal
default_internal_group = $(id -gn "$internal")
default_login_user = $login
mail_fsync = never
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps_port
    ssl = yes
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
service pop3-login {
  chroot =
}
CONF
  if [ -n "${DC_DOVECOT_OAUTH2_URL:-}" ]; then
    # XOAUTH2/OAUTHBEARER checked by GET $DC_DOVECOT_OAUTH2_URL<token>, which
    # must answer a JSON object whose "email" is the user
    printf 'introspection_mode = get\nintrospection_url = %s\nusername_attribute = email\n' \
      "$DC_DOVECOT_OAUTH2_URL" > "$dir/oauth2.conf.ext"
    sed -i 's/^auth_mechanisms = plain login$/auth_mechanisms = plain login xoauth2 oauthbearer/' "$dir/dovecot.conf"
    cat >> "$dir/dovecot.conf" <<CONF
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dir/oauth2.conf.ext
}
CONF
  fi
  if [ -n "${DC_DOVECOT_CAPABILITY:-}" ]; then
    printf 'protocol imap {\n  imap_capability = %s\n}\n' "$DC_DOVECOT_CAPABILITY" >> "$dir/dovecot.conf"
  fi
}

dc_dovecot_start() {
  local dir=$1 user=rua@example.com pass mail_user
  mkdir -p "$dir/run" "$dir/state" "$dir/home"
  dir=$(cd "$dir" && pwd)
  chmod 755 "$dir" "$dir/home"
  if [ "$(id -u)" = 0 ]; then mail_user=mail; else mail_user=$(id -un); fi
  if [ ! -f "$dir/cert.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 \
      || { echo "dovecot.sh: openssl could not make a certificate" >&2; return 1; }
  fi
  if [ ! -f "$dir/passwd" ]; then
    pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s:{PLAIN}%s\n' "$user" "$pass" > "$dir/passwd"
    printf '%s\n' "$pass" > "$dir/imap.pass"
    chmod 600 "$dir/imap.pass"
    chmod 640 "$dir/passwd"
    [ "$(id -u)" = 0 ] && chgrp dovecot "$dir/passwd"
  fi
  pass=$(cat "$dir/imap.pass")
  [ -f "$dir/ports" ] || echo "$(dc_freeport) $(dc_freeport)" > "$dir/ports"
  dc_dovecot_write_conf "$dir"
  mkdir -p "$dir/home/$user/Maildir/cur" "$dir/home/$user/Maildir/new" "$dir/home/$user/Maildir/tmp"
  chown -R "$mail_user:" "$dir/home/$user"
  # no inherited stdout/stderr: a caller piping our output must not wait for the daemon
  dovecot -c "$dir/dovecot.conf" </dev/null >/dev/null 2>>"$dir/start.log" \
    || { cat "$dir/start.log" "$dir/dovecot.log" >&2 2>/dev/null; return 1; }
  local ports; read -r DC_IMAP_PORT DC_IMAPS_PORT < "$dir/ports"
  # wait until both listeners accept connections
  local i
  for i in $(seq 1 100); do
    if python3 - "$DC_IMAP_PORT" "$DC_IMAPS_PORT" <<'PY' 2>/dev/null
import socket, sys
for p in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(p)), timeout=1).close()
PY
    then break; fi
    sleep 0.05
  done
  export DC_IMAP_PORT DC_IMAPS_PORT DC_IMAP_USER=$user DC_IMAP_PASS=$pass
  export DC_IMAP_CA=$dir/cert.pem DC_IMAP_MAILDIR=$dir/home/$user/Maildir DC_DOVECOT_DIR=$dir
}

# Stops the instance and every process it started, as a server restart with
# shutdown_clients does: connected clients lose their connection.
dc_dovecot_stop() {
  local dir=${1:-$DC_DOVECOT_DIR}
  dc_proc_stop_tree "$dir/run/master.pid"
  # An imap process killed while it held a Maildir's dovecot-uidlist.lock
  # leaves that dotlock behind, and Dovecot waits two minutes before it calls
  # a dotlock stale: the next session's SELECT would hang that long (seen
  # once in CI, imap_restart.sh under load).  Every process is gone now, so
  # the lock is stale for certain.
  find "$dir/home" -name 'dovecot-uidlist.lock' -delete 2>/dev/null || true
  return 0
}

dc_dovecot_restart() {
  local dir=${1:-$DC_DOVECOT_DIR}
  dc_dovecot_stop "$dir" && dc_dovecot_start "$dir"
}

# The Maildir directory of FOLDER ("INBOX", "Archive/DMARC").
dc_dovecot_folder_dir() {
  local dir=$1 folder=$2 md
  md=$dir/home/rua@example.com/Maildir
  if [ "$folder" = INBOX ]; then echo "$md"; else echo "$md/.${folder//\//.}"; fi
}

dc_dovecot_seed_folder() {
  local dir=$1 folder=$2 fdir mail_user
  shift 2
  fdir=$(dc_dovecot_folder_dir "$dir" "$folder")
  mkdir -p "$fdir/tmp" "$fdir/new" "$fdir/cur"
  if [ "$(id -u)" = 0 ]; then mail_user=mail; else mail_user=$(id -un); fi
  # one process for all files: write to tmp/, then rename into new/ (Maildir delivery)
  python3 - "$fdir" "$(id -u "$mail_user")" "$(id -g "$mail_user")" "$@" <<'PY' || return 1
import os, shutil, socket, sys, time
fdir, uid, gid, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
host, t, pid = socket.gethostname().split(".")[0], int(time.time()), os.getpid()
for n, f in enumerate(files, 1):
    name = f"{t}.M{time.time_ns() % 1000000}P{pid}Q{n}.{host}"
    tmp = os.path.join(fdir, "tmp", name)
    shutil.copyfile(f, tmp)
    os.chown(tmp, uid, gid)
    os.rename(tmp, os.path.join(fdir, "new", name))
PY
  chown "$mail_user:" "$fdir" "$fdir/tmp" "$fdir/new" "$fdir/cur"
}

dc_dovecot_seed() {
  local dir=$1; shift
  dc_dovecot_seed_folder "$dir" INBOX "$@"
}

dc_dovecot_count() {
  local fdir
  fdir=$(dc_dovecot_folder_dir "$1" "$2")
  [ -d "$fdir" ] || { echo 0; return 0; }
  { find "$fdir/cur" "$fdir/new" -type f 2>/dev/null || true; } | wc -l
}

dc_dovecot_doveadm() {
  local dir=$1; shift
  doveadm -c "$dir/dovecot.conf" "$@"
}

# Prints a dmarc-collector [mailbox LABEL] section for this Dovecot:
#   dc_dovecot_mailbox_conf DIR [imaps|starttls|plain] [LABEL]
# imaps (default): imaps:// port; starttls: imap:// port (STARTTLS required);
# plain: imap:// with tls = none.  Append more keys (after = seen ...) yourself.
dc_dovecot_mailbox_conf() {
  local dir=$1 mode=${2:-imaps} label=${3:-rua} p1 p2
  read -r p1 p2 < "$dir/ports"
  echo "[mailbox $label]"
  case $mode in
    imaps) echo "url = imaps://localhost:$p2/INBOX" ;;
    starttls) echo "url = imap://localhost:$p1/INBOX" ;;
    plain) echo "url = imap://127.0.0.1:$p1/INBOX"; echo "tls = none" ;;
    *) echo "dovecot.sh: unknown mode $mode" >&2; return 1 ;;
  esac
  echo "user = rua@example.com"
  echo "password_file = $dir/imap.pass"
  echo "ca_file = $dir/cert.pem"
}

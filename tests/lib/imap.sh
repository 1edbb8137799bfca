# tests/lib/imap.sh - one set of functions for the test IMAP server, whichever it
# is: DC_IMAP_SERVER=dovecot (default, tests/lib/dovecot.sh) or cyrus
# (tests/lib/cyrus.sh).  Source it, then:
#
#   dc_imap_start DIR        start the server in DIR; exports DC_IMAP_PORT,
#                            DC_IMAPS_PORT, DC_IMAP_USER, DC_IMAP_PASS, DC_IMAP_CA
#   dc_imap_stop DIR         stop it and every process it started
#   dc_imap_restart DIR      stop and start again on the same ports (clients cut off)
#   dc_imap_seed DIR FILE...            deliver the messages into INBOX, unread
#   dc_imap_count DIR FOLDER            messages in FOLDER ("Archive/DMARC"; a
#                                       non-ASCII name in modified UTF-7)
#   dc_imap_message_ids DIR FOLDER      the Message-ID of each message in FOLDER
#   dc_imap_seen DIR                    messages flagged \Seen, all folders
#   dc_imap_deleted DIR                 messages flagged \Deleted, all folders
#   dc_imap_subscribed DIR              subscribed folders, one a line
#   dc_imap_mailbox_conf DIR [imaps|starttls|plain] [LABEL]   a [mailbox] section
#   dc_imap_name                        "Dovecot" or "Cyrus", for messages
#
# Against Dovecot the queries read its Maildir, as the tests always did; against
# Cyrus (whose spool is its own business) they ask over IMAP (tests/lib/imapq.py).

DC_IMAP_SERVER=${DC_IMAP_SERVER:-dovecot}
. "$(dirname "${BASH_SOURCE[0]}")/dovecot.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cyrus.sh"
case $DC_IMAP_SERVER in
  dovecot|cyrus) ;;
  *) echo "imap.sh: DC_IMAP_SERVER must be dovecot or cyrus, not $DC_IMAP_SERVER" >&2; return 1 ;;
esac

dc_imap_name() {
  case $DC_IMAP_SERVER in dovecot) echo Dovecot ;; cyrus) echo Cyrus ;; esac
}

dc_imap_start() { "dc_${DC_IMAP_SERVER}_start" "$@"; }
dc_imap_stop() { "dc_${DC_IMAP_SERVER}_stop" "$@"; }
dc_imap_restart() { "dc_${DC_IMAP_SERVER}_restart" "$@"; }
dc_imap_seed() { "dc_${DC_IMAP_SERVER}_seed" "$@"; }
dc_imap_count() { "dc_${DC_IMAP_SERVER}_count" "$@"; }
dc_imap_mailbox_conf() { "dc_${DC_IMAP_SERVER}_mailbox_conf" "$@"; }

dc_imap_message_ids() {
  local dir=$1 folder=$2 d
  case $DC_IMAP_SERVER in
    dovecot)
      d=$(dc_dovecot_folder_dir "$dir" "$folder")
      find "$d/cur" "$d/new" -type f -exec grep -h -m1 -i '^Message-ID:' {} + 2>/dev/null \
        | sed -n 's/^[^:]*:[[:space:]]*\(<[^>]*>\).*/\1/p' ;;
    cyrus) dc_cyrus_imapq "$dir" message-ids "$folder" ;;
  esac
}

dc_imap_seen() {
  local dir=$1
  case $DC_IMAP_SERVER in
    dovecot)
      find "$dir/home/rua@example.com/Maildir" -type f \( -path '*/cur/*' -o -path '*/new/*' \) \
        -name '*:2,*S*' | wc -l ;;
    cyrus) dc_cyrus_imapq "$dir" seen ;;
  esac
}

dc_imap_subscribed() {
  local dir=$1 f
  case $DC_IMAP_SERVER in
    dovecot)
      # Dovecot's subscriptions file: a version line, then names with TAB
      # between the levels
      f=$dir/home/rua@example.com/Maildir/subscriptions
      [ -f "$f" ] && sed -n '/^V/d; /./{s/\t/\//g; p}' "$f" | sort ;;
    cyrus) dc_cyrus_imapq "$dir" subscribed ;;
  esac
}

dc_imap_deleted() {
  local dir=$1
  case $DC_IMAP_SERVER in
    dovecot)
      find "$dir/home/rua@example.com/Maildir" -type f \( -path '*/cur/*' -o -path '*/new/*' \) \
        -name '*:2,*T*' | wc -l ;;
    cyrus) dc_cyrus_imapq "$dir" deleted ;;
  esac
}

#!/bin/sh
# alerts-mail.sh - an [alerts] command for dmarc-collector: reads the new
# alerts (a JSON array of {"alert", "key", "summary", "details"}) on stdin
# and sends them as one plain-text mail with sendmail -t.
#
#   [alerts]
#   command = /usr/share/dmarc-collector/alerts-mail.sh postmaster@example.com
#
# The recipient is the first argument, else $ALERTS_MAIL_TO (several:
# separated by commas).  Optional environment (a systemd drop-in can set it:
# Environment=ALERTS_MAIL_TO=...):
#   ALERTS_MAIL_FROM      From: header (default: sendmail's own)
#   ALERTS_MAIL_SENDMAIL  the sendmail program (default /usr/sbin/sendmail,
#                         which every Debian MTA provides)
#   ALERTS_MAIL_PYTHON    the Python 3 that formats the alerts (default
#                         python3; "none" to skip it)
#
# Formatting: with Python 3 (present on most Debian systems, not required),
# one paragraph per alert: its summary, key and details, one field a line.
# Without it the mail carries the JSON as received (PostgreSQL's json_agg
# puts each alert on a line of its own), so neither jq nor Python is a
# dependency.  Exit status: sendmail's (0 = accepted, the collector then
# records the alerts as sent; anything else: they come again after the
# next poll); 2 without a recipient.  An empty array sends nothing.
set -u

to=${1:-${ALERTS_MAIL_TO:-}}
from=${ALERTS_MAIL_FROM:-}
sendmail=${ALERTS_MAIL_SENDMAIL:-/usr/sbin/sendmail}
python=${ALERTS_MAIL_PYTHON:-python3}
nl='
'
case $to in
  "") echo "alerts-mail.sh: no recipient (first argument or ALERTS_MAIL_TO)" >&2; exit 2 ;;
  *"$nl"*) echo "alerts-mail.sh: the recipient holds a line break" >&2; exit 2 ;;
esac
case $from in
  *"$nl"*) echo "alerts-mail.sh: ALERTS_MAIL_FROM holds a line break" >&2; exit 2 ;;
esac
host=$(hostname 2>/dev/null || echo localhost)
input=$(cat)

body=''
count=''
if [ "$python" != none ] && command -v "$python" >/dev/null 2>&1; then
  # first line: the number of alerts; then the text
  body=$(printf '%s\n' "$input" | "$python" -c '
import json, sys
alerts = json.load(sys.stdin)
print(len(alerts))
for a in alerts:
    print()
    print("[%s] %s" % (a.get("alert"), a.get("summary")))
    print("  key: %s" % a.get("key"))
    details = a.get("details")
    if isinstance(details, dict):
        for k in sorted(details):
            v = details[k]
            print("  %s: %s" % (k, v if isinstance(v, str) else json.dumps(v)))
    elif details is not None:
        print("  details: %s" % json.dumps(details))
') || { echo "alerts-mail.sh: the alerts on stdin are not a JSON array" >&2; exit 1; }
  count=${body%%"$nl"*}
  body=${body#*"$nl"}
  [ "$count" = 0 ] && exit 0
fi
if [ -z "$count" ]; then
  case $input in
    "" | "[]") exit 0 ;;
  esac
  body=$input
fi

if [ -n "$count" ]; then
  [ "$count" = 1 ] && subject="DMARC: 1 new alert ($host)" || subject="DMARC: $count new alerts ($host)"
else
  subject="DMARC: new alerts ($host)"
fi
{
  [ -n "$from" ] && printf 'From: %s\n' "$from"
  printf 'To: %s\n' "$to"
  printf 'Subject: %s\n' "$subject"
  printf 'MIME-Version: 1.0\n'
  printf 'Content-Type: text/plain; charset=UTF-8\n'
  printf 'Content-Transfer-Encoding: 8bit\n'
  printf 'Auto-Submitted: auto-generated\n'
  printf '\n'
  printf 'New alerts from dmarc-collector on %s (each is sent once):\n' "$host"
  printf '%s\n' "$body"
} | "$sendmail" -t -i

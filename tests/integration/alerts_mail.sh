#!/bin/bash
# alerts_mail.sh - examples/alerts-mail.sh, the example [alerts] command, run
# by a POSIX shell (dash when installed) with a fake sendmail that keeps its
# arguments and the mail: one plain-text mail to the recipient given (first
# argument, else ALERTS_MAIL_TO), with one paragraph per alert when Python
# formats it and the JSON as received without Python; an empty array sends
# nothing; no recipient is exit 2; sendmail's failure is the script's.
set -uo pipefail
: "${DC_SRC:?DC_SRC must name the source directory}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
S=$DC_SRC/examples/alerts-mail.sh
sh=$(command -v dash || echo /bin/sh)
[ -x "$S" ] || fail "$S is not executable"

cat > "$tmp/sendmail" <<SH
#!/bin/sh
n=\$(ls "$tmp"/mail.* 2>/dev/null | wc -l)
echo "\$*" > "$tmp/args.\$n"
cat > "$tmp/mail.\$n"
exit \${FAKE_SENDMAIL_STATUS:-0}
SH
chmod +x "$tmp/sendmail"
export ALERTS_MAIL_SENDMAIL=$tmp/sendmail
# two alerts as PostgreSQL's json_agg writes them, with a non-ASCII summary
J='[{"alert" : "new_failing_senders", "key" : "example.com|192.0.2.1", "summary" : "192.0.2.1 fails DMARC for example.com (120 messages, café)", "details" : {"source_ip": "192.0.2.1", "messages": 120, "ptr": null}}, 
 {"alert" : "silent_reporters", "key" : "google.com", "summary" : "google.com sent no report for 3 days", "details" : {"org_name": "google.com", "days": 3}}]'

# ---- formatted by Python
printf '%s' "$J" | ALERTS_MAIL_FROM=dmarc@example.com "$sh" "$S" postmaster@example.com; rc=$?
[ $rc = 0 ] && ok "exit 0" || fail "exit $rc"
m=$tmp/mail.0
[ "$(cat "$tmp/args.0" 2>/dev/null)" = "-t -i" ] && ok "sendmail -t -i" || fail "sendmail arguments: $(cat "$tmp/args.0" 2>/dev/null)"
grep -qx 'To: postmaster@example.com' "$m" && ok "To: from the argument" || fail "To: header"
grep -qx 'From: dmarc@example.com' "$m" && ok "From: from ALERTS_MAIL_FROM" || fail "From: header"
grep -q '^Subject: DMARC: 2 new alerts' "$m" && ok "Subject counts the alerts" || fail "Subject"
grep -qx 'Content-Type: text/plain; charset=UTF-8' "$m" && ok "plain text, UTF-8" || fail "Content-Type"
grep -qx '\[new_failing_senders\] 192.0.2.1 fails DMARC for example.com (120 messages, café)' "$m" \
  && grep -qx '\[silent_reporters\] google.com sent no report for 3 days' "$m" \
  && grep -qx '  key: example.com|192.0.2.1' "$m" && grep -qx '  messages: 120' "$m" && grep -qx '  ptr: null' "$m" \
  && ok "one paragraph per alert: summary, key, details" || { cat "$m"; fail "alert paragraphs"; }
python3 - "$m" <<'PY' && ok "a well-formed message (email.parser): headers, then the body" || fail "email.parser"
import email, sys
msg = email.message_from_binary_file(open(sys.argv[1], "rb"))
assert msg["To"] == "postmaster@example.com" and msg.get_content_type() == "text/plain", msg.items()
assert "silent_reporters" in msg.get_payload(decode=True).decode("utf-8")
PY

# ---- without Python: the JSON as received; the recipient from ALERTS_MAIL_TO
printf '%s' "$J" | ALERTS_MAIL_PYTHON=none ALERTS_MAIL_TO=dmarc-team@example.com "$sh" "$S"; rc=$?
m=$tmp/mail.1
[ $rc = 0 ] && grep -qx 'To: dmarc-team@example.com' "$m" && grep -q '^Subject: DMARC: new alerts' "$m" \
  && grep -qF '"summary" : "google.com sent no report for 3 days"' "$m" && ! grep -q '^From:' "$m" \
  && ok "without Python: the JSON, To: from ALERTS_MAIL_TO, no From:" || { cat "$m"; fail "without Python (exit $rc)"; }

# ---- nothing to send, no recipient, sendmail failing, not JSON
n0=$(ls "$tmp"/mail.* | wc -l)
echo '[]' | "$sh" "$S" x@example.com; rc=$?
echo '[]' | ALERTS_MAIL_PYTHON=none "$sh" "$S" x@example.com; rc2=$?
[ $rc = 0 ] && [ $rc2 = 0 ] && [ "$(ls "$tmp"/mail.* | wc -l)" = "$n0" ] && ok "an empty array: no mail, exit 0" || fail "empty array: exit $rc/$rc2"
printf '%s' "$J" | "$sh" "$S" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q 'no recipient' "$tmp/err" && ok "no recipient: exit 2" || fail "no recipient: exit $rc"
printf '%s' "$J" | "$sh" "$S" "$(printf 'a@example.com\nBcc: b@example.com')" 2>/dev/null; rc=$?
[ $rc = 2 ] && ok "a recipient with a line break: exit 2 (no header injection)" || fail "line break in recipient: exit $rc"
printf '%s' "$J" | FAKE_SENDMAIL_STATUS=75 "$sh" "$S" x@example.com; rc=$?
[ $rc = 75 ] && ok "sendmail's failure is the exit status (75)" || fail "sendmail failing: exit $rc"
n0=$(ls "$tmp"/mail.* | wc -l)
echo 'not json' | "$sh" "$S" x@example.com 2>/dev/null; rc=$?
[ $rc != 0 ] && [ "$(ls "$tmp"/mail.* | wc -l)" = "$n0" ] && ok "input that is not JSON: exit $rc, nothing sent" || fail "not JSON: exit 0"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"

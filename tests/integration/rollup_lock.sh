#!/bin/bash
# rollup_lock.sh - the daily rollups cannot miss a PTR change (sql/007).
#
# resolve writes a forward-confirmed name for an IP and, in the same
# transaction, adjusts the rolled-up reports of that IP.  A report being
# rolled up at that moment must either be classified with the new name or
# be seen by resolve's adjustment.  Here the race is held open, not timed:
# a session inserts the name for 192.0.2.10 and does not commit; an import
# of a report from 192.0.2.10 (envelope_from = that name: rule 4) then
# reaches its rollup, which must wait for the name (ip_names locked in SHARE
# mode) and, once the session commits, count the mail as server-generated
# (rule 3: the SPF domain is the host's confirmed name).
# Without the lock the import would finish at once with the mail counted as
# regular, and the rollups would disagree with the views.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
ipid=
trap '[ -n "$ipid" ] && kill "$ipid" 2>/dev/null; [ -n "${DC_PG_HOLD_PID:-}" ] && kill "$DC_PG_HOLD_PID" 2>/dev/null; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb rl || exit 1

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -d rl -c "$1"; }
"$DC_BIN" --db dbname=rl -q migrate || { echo "FAIL: migrate"; exit 1; }

cat > "$tmp/report.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>lock.example</org_name>
    <email>noreply@lock.example</email>
    <report_id>lock-1</report_id>
    <date_range><begin>1764028800</begin><end>1764115199</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
  <record>
    <row>
      <source_ip>192.0.2.10</source_ip>
      <count>7</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.com</header_from><envelope_from>mail.example.com</envelope_from></identifiers>
    <auth_results><spf><domain>mail.example.com</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>
XML

# the name, written and not committed (resolve in the middle of its work)
dc_pg_hold "$tmp" rl "INSERT INTO dmarc.ip_names (ip, ptr, ptr_base_domain, forward_confirmed, status)
  VALUES ('192.0.2.10', 'mail.example.com', 'example.com', true, 'ok');" \
  || { echo "FAIL: the name was not written"; exit 1; }

"$DC_BIN" --db dbname=rl import "$tmp/report.xml" > "$tmp/import.log" 2>&1 9>&- &
ipid=$!
waited=0
for _ in $(seq 1 600); do
  [ "$(dc_pg_lock_waiters)" -gt 0 ] && { waited=1; break; }
  kill -0 "$ipid" 2>/dev/null || break
  sleep 0.1
done
check "the import's rollup waited for the uncommitted name" "$waited" 1
dc_pg_release
wait "$ipid"; st=$?; ipid=
check "import exit status" "$st" 0

check "the view: server-generated (rule 3)" \
  "$(q "SELECT server_generated_reason FROM dmarc.record_details WHERE source_ip = '192.0.2.10'")" spf_domain_is_ptr
check "the rollup: the same" \
  "$(q "SELECT server_generated_reason || ' ' || messages FROM dmarc.rollup_daily")" "spf_domain_is_ptr 7"
check "the rollup of sources: the same" \
  "$(q "SELECT host(source_ip) || ' ' || server_generated_reason || ' ' || messages FROM dmarc.rollup_sources")" \
  "192.0.2.10 spf_domain_is_ptr 7"
check "rollups agree with dmarc.record_days" \
  "$(q "SELECT count(*) FROM ((SELECT day, policy_domain, server_generated_reason, sum(messages) FROM dmarc.rollup_daily GROUP BY 1, 2, 3
        EXCEPT SELECT day, lower(policy_domain), server_generated_reason, sum(messages) FROM dmarc.record_days GROUP BY 1, 2, 3)
       UNION ALL (SELECT day, lower(policy_domain), server_generated_reason, sum(messages) FROM dmarc.record_days GROUP BY 1, 2, 3
        EXCEPT SELECT day, policy_domain, server_generated_reason, sum(messages) FROM dmarc.rollup_daily GROUP BY 1, 2, 3)) d")" 0

[ "$fails" -eq 0 ] && echo "PASS" || { echo "$fails check(s) failed"; cat "$tmp/import.log"; exit 1; }

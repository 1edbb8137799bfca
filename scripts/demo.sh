#!/usr/bin/env bash
# The main job, on a fresh machine: installs what is needed, builds, starts a
# throwaway PostgreSQL, a throwaway Dovecot (IMAPS on loopback, self-signed
# certificate) loaded with the example report e-mails, and a throwaway dnsmasq
# answering the example hosts' PTR names; then runs the collector as a mail
# administrator would (migrate, poll --once, resolve) and prints what the views
# found.  Everything it starts is stopped and removed at the end; set
# DC_DEMO_KEEP=1 to keep the services running (it prints how to reach them).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"

bash scripts/install-deps.sh
cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$src/build" -j"$(nproc)" 2>&1 | grep -Ev '^\[|^-- ' || true
bin=$src/build/dmarc-collector

tmp=$(mktemp -d /tmp/dmarc-demo.XXXXXX)
chmod 755 "$tmp"
. tests/lib/pg.sh
. tests/lib/dovecot.sh
. tests/lib/dnsmasq.sh
cleanup() {
  if [ "${DC_DEMO_KEEP:-0}" = 1 ]; then
    echo; echo "services kept in $tmp: psql -h $PGHOST -p $PGPORT -U postgres dmarc"; return
  fi
  dc_dovecot_stop "$tmp/imap" >/dev/null 2>&1 || true
  dc_dns_stop "$tmp/dns" >/dev/null 2>&1 || true
  dc_pg_stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== starting PostgreSQL, Dovecot and dnsmasq on 127.0.0.1 (in $tmp)"
dc_pg_start "$tmp/pg"
dc_pg_newdb dmarc
dc_dovecot_start "$tmp/imap"
dc_dovecot_seed "$tmp/imap" examples/reports/*.eml
dc_dns_start "$tmp/dns" examples/demo-dns-records.conf
echo "   INBOX holds $(dc_dovecot_count "$tmp/imap" INBOX) messages"

printf '%s\n' "$DC_IMAP_PASS" > "$tmp/imap.pass"
chmod 600 "$tmp/imap.pass"
cat > "$tmp/dmarc-collector.conf" <<CONF
[database]
conninfo = host=$PGHOST port=$PGPORT user=postgres dbname=dmarc

[mailbox rua]
url = imaps://127.0.0.1:$DC_IMAPS_PORT/INBOX
user = $DC_IMAP_USER
password_file = $tmp/imap.pass
ca_file = $DC_IMAP_CA
archive_folder = Archive/DMARC
invalid_folder = Archive/Invalid

[dns]
servers = $DC_DNS_SERVER
CONF

run() { echo "\$ dmarc-collector $*"; "$bin" --config "$tmp/dmarc-collector.conf" "$@"; }
echo; echo "== the collector"
run check-config
run migrate
set +e; run poll --once; rc=$?; set -e
echo "   (exit status $rc: 0 all stored, 1 some messages rejected and moved to Archive/Invalid)"
[ "$rc" = 0 ] || [ "$rc" = 1 ] || exit "$rc"
run resolve
echo "   INBOX now $(dc_dovecot_count "$tmp/imap" INBOX), Archive/DMARC $(dc_dovecot_count "$tmp/imap" Archive/DMARC), Archive/Invalid $(dc_dovecot_count "$tmp/imap" Archive/Invalid)"

q() { echo; echo "-- $1"; psql -X -P pager=off -P 'null=(null)' -d dmarc -c "$2"; }
echo; echo "== what the views show"
q "reports" "SELECT org_name, report_id, policy_domain, date_begin, date_end, record_count, message_total FROM dmarc.reports ORDER BY id"
q "records (dmarc.record_details)" "SELECT org_name, source_ip, ptr, message_count AS msgs, disposition, dkim_aligned AS dkim, spf_aligned AS spf, envelope_from, dmarc_pass, server_generated_reason FROM dmarc.record_details ORDER BY org_name, source_ip"
q "server-generated versus regular mail" "SELECT 'server-generated' AS mail, count(*) AS records, coalesce(sum(message_count),0) AS messages FROM dmarc.server_generated_mail UNION ALL SELECT 'regular', count(*), coalesce(sum(message_count),0) FROM dmarc.regular_mail"
q "servers sending server-generated mail (needs_dkim = fix these)" "SELECT * FROM dmarc.server_generated_sources ORDER BY needs_dkim DESC, messages DESC"
q "SMTP TLS reports (dmarc.tls_daily, dmarc.tls_daily_failures)" "SELECT d.day, d.policy_domain, d.reports, d.successful_sessions AS ok, d.failed_sessions AS failed, round(100 * d.failure_rate, 2) AS failed_pct, f.result_type, f.receiving_mx_hostname, f.failed_sessions AS by_type FROM dmarc.tls_daily d LEFT JOIN dmarc.tls_daily_failures f USING (day, policy_domain) ORDER BY d.day, d.policy_domain, f.result_type"
q "DMARC failure reports (dmarc.failure_report_list)" "SELECT arrival_time, source_ip, reported_domain, original_mail_from AS mail_from, auth_failure, delivery_result, orig_auto_submitted AS auto_submitted, orig_subject AS subject FROM dmarc.failure_report_list ORDER BY id"
q "failure reports as evidence against the classification (dmarc.failure_evidence)" "SELECT day, source_ip, signs, failure_reports AS reports, aggregate_messages AS agg_msgs, aggregate_server_generated_messages AS agg_server_generated, aggregate_reasons, verdict FROM dmarc.failure_evidence ORDER BY day, source_ip"
q "rejected inputs (dmarc.failure_list)" "SELECT failed_at, mailbox, uid, stage, reason, content_bytes AS bytes FROM dmarc.failure_list ORDER BY id"
q "is it working? (dmarc.mailbox_status)" "SELECT mailbox, last_success_at, polls_failed_in_a_row AS failed_in_a_row, last_poll_stored AS stored, last_poll_duplicate AS dup, last_poll_rejected AS rejected, last_error FROM dmarc.mailbox_status ORDER BY mailbox"
q "what to act on (dmarc.alerts; a demo's old report dates rarely fire any)" "SELECT alert, key, summary FROM dmarc.alerts ORDER BY alert, key"

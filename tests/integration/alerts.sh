#!/bin/bash
# alerts.sh - the alert views (sql/objects/85_alerts.sql) and the Grafana
# alert rules that read them (examples/grafana/provisioning/alerting/).
#
# Two databases get the same steady month of crafted aggregate reports,
# dated relative to today and imported as files (the collector's own path):
#   quiet   steady data, a mailbox read a minute ago, two rejects a day:
#           every alert view is empty;
#   seeded  the same, plus one thing to act on per view:
#     * 203.0.113.5 sends bounces (null sender) without DKIM for example.com
#       since the day before yesterday (12 messages on each of two days);
#     * shop.example.com: pass rate 95 % for four weeks, 25 % yesterday;
#     * 198.51.100.66, never reported before, fails DMARC for example.com
#       with 40 messages yesterday; 198.51.100.67 with 5 (below the
#       threshold), and 192.0.2.10, which sent passing mail for a month,
#       with 30 (seen before: not new);
#     * gamma.example.org reported example.com daily and stopped five days
#       ago; weekly.example.org's weekly reports are no daily habit;
#     * mailbox "main" last read successfully two hours ago, and 12 rejects
#       in the last 24 hours against two a day the week before.
# Each view returns exactly the expected rows and numbers; dmarc.alerts has
# one row per alert with its stable key; a dmarc_reader member reads all of
# it; a changed or deleted dmarc.alert_settings row changes the outcome; each
# Grafana rule's query returns rows for the seeded database and none for the
# quiet one.  (A run across UTC midnight may see days shift.)
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
unset DMARC_COLLECTOR_CONFIG

G=$DC_SRC/examples/grafana
RULES=$G/provisioning/alerting/dmarc-alerts.yaml
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $* [${SECONDS}s]"; }
conn() { echo "host=$PGHOST port=$PGPORT dbname=$1 user=postgres"; }
q() { local db=$1; shift; psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "$*"; }
# as Grafana's login: a member of dmarc_reader
qr() { local db=$1; shift; psql -X -At -v ON_ERROR_STOP=1 -U it_reader -d "$db" -c "$*"; }

# ---- the reports: one file per reporter, domain and day
gen() {  # gen DIR quiet|seeded
	python3 - "$1" "$2" <<'EOF'
import datetime as dt, os, sys
out, mode = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)

def rec(ip, count, dkim, spf, env="example.com", hfrom="example.com", scope="mfrom"):
    dk = "<dkim><domain>%s</domain><selector>s1</selector><result>%s</result></dkim>" % (
        hfrom if dkim == "pass" else "other.example", "pass" if dkim == "pass" else "fail")
    sp = "<spf><domain>%s</domain><scope>%s</scope><result>%s</result></spf>" % (
        env or "mx.example.net", scope, "pass" if spf == "pass" else "fail")
    return ("<record><row><source_ip>%s</source_ip><count>%d</count><policy_evaluated><disposition>none"
            "</disposition><dkim>%s</dkim><spf>%s</spf></policy_evaluated></row><identifiers><header_from>%s"
            "</header_from><envelope_from>%s</envelope_from></identifiers><auth_results>%s%s</auth_results></record>"
            % (ip, count, dkim, spf, hfrom, env, dk, sp))

def report(org, domain, begin, end, records):
    rid = "%s-%s-%s" % (org, domain, begin.strftime("%Y%m%d%H"))
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata><org_name>%s</org_name>'
           '<email>noreply@%s</email><report_id>%s</report_id><date_range><begin>%d</begin><end>%d</end>'
           '</date_range></report_metadata><policy_published><domain>%s</domain><adkim>r</adkim><aspf>r</aspf>'
           '<p>none</p><sp>none</sp><pct>100</pct></policy_published>%s</feedback>\n'
           % (org, org, rid, begin.timestamp(), end.timestamp(), domain, "".join(records)))
    open(os.path.join(out, rid + ".xml"), "w").write(xml)

def daily(org, domain, d, records):  # the UTC day d days ago
    b = today - dt.timedelta(days=d)
    report(org, domain, b, b + dt.timedelta(seconds=86399), records)

seeded = mode == "seeded"
for d in range(1, 31):
    for org in ("alpha.example.net", "beta.example.net"):
        r = [rec("192.0.2.10", 1000, "pass", "pass"),
             rec("192.0.2.20", 5, "pass", "fail", env="", scope="helo"),   # bounces, signed
             rec("198.51.100.7", 20, "fail", "fail", env="spoof.example")]  # an old failing source
        if seeded and org == "alpha.example.net" and d in (1, 2):
            r.append(rec("203.0.113.5", 12, "fail", "fail", env="", scope="helo"))
        if seeded and org == "beta.example.net" and d == 1:
            r += [rec("198.51.100.66", 40, "fail", "fail", env="new.example"),
                  rec("198.51.100.67", 5, "fail", "fail", env="new.example"),
                  rec("192.0.2.10", 30, "fail", "fail")]
        daily(org, "example.com", d, r)
    if d <= 20 and (d >= 5 or not seeded):
        daily("gamma.example.org", "example.com", d, [rec("192.0.2.10", 100, "pass", "pass")])
    if d <= 29:
        ok_, bad = (50, 150) if seeded and d == 1 else (190, 10)
        daily("alpha.example.net", "shop.example.com", d,
              [rec("192.0.2.30", ok_, "pass", "pass", hfrom="shop.example.com", env="shop.example.com"),
               rec("198.51.100.9", bad, "fail", "fail", hfrom="shop.example.com", env="spoof.example")])
for end in (3, 10, 17):  # weekly reports, the last one ending three days ago
    e = today - dt.timedelta(days=end)
    report("weekly.example.org", "example.com", e - dt.timedelta(days=7), e, [rec("192.0.2.10", 700, "pass", "pass")])
EOF
}

setup() {  # setup DB quiet|seeded
	local db=$1 mode=$2
	dc_pg_newdb "$db" >/dev/null || return 1
	"$DC_BIN" -q --db "$(conn "$db")" migrate >/dev/null 2>&1 || { echo "migrate $db failed"; return 1; }
	gen "$tmp/$db" "$mode" || return 1
	"$DC_BIN" -q --db "$(conn "$db")" import "$tmp/$db" >"$tmp/$db.log" 2>&1 || { tail -3 "$tmp/$db.log"; return 1; }
	local stale="now() - interval '1 minute'" today=12
	[ "$mode" = quiet ] && today=2
	[ "$mode" = seeded ] && stale="now() - interval '2 hours'"
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL || return 1
INSERT INTO dmarc.ip_names (ip, ptr, ptr_base_domain, forward_confirmed, status)
VALUES ('203.0.113.5', 'helpdesk.example.net', 'example.net', true, 'ok');
INSERT INTO dmarc.mailboxes (url, username, label, last_poll_at, last_success_at, last_error, created_at,
                             polls_failed_in_a_row)
VALUES ('imaps://imap.example.com/DMARC', 'dmarc', 'main', now() - interval '30 seconds', $stale,
        CASE WHEN '$mode' = 'seeded' THEN 'imap: Failed to connect' END, now() - interval '60 days',
        CASE WHEN '$mode' = 'seeded' THEN 24 ELSE 0 END),
       ('imaps://imap.example.com/Other', 'dmarc', 'other', now() - interval '1 minute', now() - interval '1 minute',
        NULL, now() - interval '60 days', 0);
-- two rejects a day for the 7 days before the last 24 hours, then $today
INSERT INTO dmarc.failures (failed_at, mailbox, stage, reason)
SELECT now() - interval '1 day' - d * interval '1 day' - k * interval '1 hour', 'main', 'xml', 'bad XML'
FROM generate_series(0, 6) d, generate_series(1, 2) k;
INSERT INTO dmarc.failures (failed_at, mailbox, stage, reason)
SELECT now() - k * interval '1 hour', 'main', 'xml', 'bad XML' FROM generate_series(1, $today) k;
SQL
}

setup quiet quiet || { echo "FAIL: quiet database"; exit 1; }
setup seeded seeded || { echo "FAIL: seeded database"; exit 1; }
psql -X -q -d quiet -c "CREATE ROLE it_reader LOGIN IN ROLE dmarc_reader" >/dev/null
# 30 days x 2 reporters, 29 of shop.example.com, 3 weekly, gamma: 20 days (quiet) or 16 (seeded)
for want in quiet:112 seeded:108; do
	db=${want%:*}
	n=$(q $db "SELECT count(*) FROM dmarc.reports")
	[ "$n" = "${want#*:}" ] && ok "$db: $n reports imported" || fail "$db: $n reports imported, want ${want#*:}"
done

VIEWS="alert_new_unsigned_sources alert_pass_rate_drop alert_new_failing_senders alert_silent_reporters alert_collector_stale alerts"

# ---- quiet: nothing to act on
for v in $VIEWS; do
	n=$(qr quiet "SELECT count(*) FROM dmarc.$v") || { fail "quiet: the reader cannot read dmarc.$v"; continue; }
	[ "$n" = 0 ] && ok "quiet: dmarc.$v has no rows (read as dmarc_reader)" || {
		fail "quiet: dmarc.$v has $n rows"; q quiet "SELECT * FROM dmarc.$v"; }
done

# ---- seeded: exactly the expected rows
expect() {  # expect VIEW "SELECT ... " "wanted output"
	local got
	got=$(qr seeded "$2" 2>&1)
	if [ "$got" = "$3" ]; then ok "seeded: $1"; else
		fail "seeded: $1"; echo "   want: $3" | sed 's/^/   /'; echo "   got:  $got" | sed 's/^/   /'; fi
}
T="(now() AT TIME ZONE 'UTC')::date"
expect "alert_new_unsigned_sources: 203.0.113.5 with its PTR, 24 messages since the day before yesterday" \
	"SELECT policy_domain, host(source_ip), ptr, ptr_base_domain, header_from, messages, failing_dmarc,
	        $T - first_seen, $T - last_seen, reasons, reporters FROM dmarc.alert_new_unsigned_sources" \
	"example.com|203.0.113.5|helpdesk.example.net|example.net|{example.com}|24|24|2|1|{null_sender}|1"
expect "alert_pass_rate_drop: shop.example.com 95 % -> 25 %, 70 points" \
	"SELECT policy_domain, $T - recent_from, recent_messages, recent_pass_messages, recent_pass_rate,
	        $T - baseline_from, baseline_messages, baseline_pass_messages, baseline_pass_rate, drop_points
	 FROM dmarc.alert_pass_rate_drop" \
	"shop.example.com|1|200|50|25.0|29|5600|5320|95.0|70.0"
expect "alert_new_failing_senders: 198.51.100.66 (40) and 203.0.113.5 (24); not the old 192.0.2.10, not 5 messages" \
	"SELECT policy_domain, host(source_ip), ptr, header_from, failing_messages, $T - first_seen, dispositions, reporters
	 FROM dmarc.alert_new_failing_senders ORDER BY source_ip" \
	"example.com|198.51.100.66||{example.com}|40|1|{none}|1
example.com|203.0.113.5|helpdesk.example.net|{example.com}|24|2|{none}|1"
expect "alert_silent_reporters: gamma.example.org, 13 of 14 days, silent for 5; not the weekly reporter" \
	"SELECT policy_domain, org_name, active_days, period_days, reports, messages, days_silent,
	        last_report_end = (($T - 4)::timestamp AT TIME ZONE 'UTC') - interval '1 second'
	 FROM dmarc.alert_silent_reporters" \
	"example.com|gamma.example.org|13|14|13|1300|5|t"
expect "alert_collector_stale: mailbox main not read for 2 hours, 12 rejects against 2.00 a day" \
	"SELECT problem, mailbox, coalesce(url, '-'), coalesce(last_error, '-'), coalesce(polls_failed_in_a_row::text, '-'),
	        coalesce((seconds_since_success BETWEEN 7000 AND 7400)::text, '-'), coalesce(threshold_seconds::text, '-'),
	        coalesce(rejected_last_day::text, '-'), coalesce(rejected_daily_average::text, '-')
	 FROM dmarc.alert_collector_stale ORDER BY problem" \
	"not_read|main|imaps://imap.example.com/DMARC|imap: Failed to connect|24|true|900|-|-
rejects_rising|main|-|-|-|-|-|12|2.00"
mid=$(q seeded "SELECT id FROM dmarc.mailboxes WHERE label = 'main'")
expect "dmarc.alerts: one row per alert, stable keys, a summary and the view's row as details" \
	"SELECT alert, key, details ? 'policy_domain' OR details ? 'problem', summary <> '' FROM dmarc.alerts ORDER BY alert, key" \
	"collector_stale|not_read|main|$mid|t|t
collector_stale|rejects_rising|main|t|t
new_failing_senders|example.com|198.51.100.66|t|t
new_failing_senders|example.com|203.0.113.5|t|t
new_unsigned_sources|example.com|203.0.113.5|t|t
pass_rate_drop|shop.example.com|t|t
silent_reporters|example.com|gamma.example.org|t|t"
expect "dmarc.alerts: a summary names the numbers" \
	"SELECT summary FROM dmarc.alerts WHERE alert = 'pass_rate_drop'" \
	"shop.example.com: DMARC pass rate 25.0% since $(q seeded "SELECT $T - 1") (200 messages), was 95.0% (5600 messages): down 70.0 points"
[ "$(q seeded "SELECT count(DISTINCT (alert, key)) = count(*) FROM dmarc.alerts")" = t ] \
	&& ok "seeded: (alert, key) is unique" || fail "seeded: duplicate (alert, key) in dmarc.alerts"
a=$(q seeded "SELECT string_agg(alert || key, ',' ORDER BY alert, key) FROM dmarc.alerts")
b=$(q seeded "SELECT string_agg(alert || key, ',' ORDER BY alert, key) FROM dmarc.alerts")
[ "$a" = "$b" ] && ok "seeded: the same keys on a second run" || fail "seeded: keys changed between runs"

# ---- the settings decide
q seeded "UPDATE dmarc.alert_settings SET value = 5 WHERE name = 'new_failing_min_messages'" >/dev/null
n=$(qr seeded "SELECT string_agg(host(source_ip), ',' ORDER BY source_ip) FROM dmarc.alert_new_failing_senders")
[ "$n" = "198.51.100.66,198.51.100.67,203.0.113.5" ] && ok "new_failing_min_messages 5: 198.51.100.67 too" \
	|| fail "new_failing_min_messages 5: $n"
q seeded "DELETE FROM dmarc.alert_settings WHERE name = 'new_failing_min_messages'" >/dev/null
n=$(qr seeded "SELECT string_agg(host(source_ip), ',' ORDER BY source_ip) FROM dmarc.alert_new_failing_senders")
[ "$n" = "198.51.100.66,203.0.113.5" ] && ok "new_failing_min_messages deleted: the default 10 again" \
	|| fail "new_failing_min_messages deleted: $n"
q seeded "UPDATE dmarc.alert_settings SET value = 75 WHERE name = 'pass_rate_drop_points'" >/dev/null
[ "$(qr seeded "SELECT count(*) FROM dmarc.alert_pass_rate_drop")" = 0 ] && ok "pass_rate_drop_points 75: no drop of 70" \
	|| fail "pass_rate_drop_points 75 still alerts"
q seeded "UPDATE dmarc.alert_settings SET value = 69.9 WHERE name = 'pass_rate_drop_points'" >/dev/null
[ "$(qr seeded "SELECT count(*) FROM dmarc.alert_pass_rate_drop")" = 1 ] && ok "pass_rate_drop_points 69.9: the drop of 70 again" \
	|| fail "pass_rate_drop_points 69.9 does not alert"
q seeded "UPDATE dmarc.alert_settings SET value = 3 WHERE name = 'new_unsigned_days'" >/dev/null
[ "$(qr seeded "SELECT count(*) FROM dmarc.alert_new_unsigned_sources")" = 1 ] && ok "new_unsigned_days 3: still new" \
	|| fail "new_unsigned_days 3"
q seeded "UPDATE dmarc.alert_settings SET value = 1 WHERE name = 'new_unsigned_days'" >/dev/null
[ "$(qr seeded "SELECT count(*) FROM dmarc.alert_new_unsigned_sources")" = 0 ] \
	&& ok "new_unsigned_days 1: seen the day before yesterday, so not new today" || fail "new_unsigned_days 1"
q seeded "UPDATE dmarc.alert_settings SET value = 14 WHERE name = 'silent_reporter_active_days'" >/dev/null
[ "$(qr seeded "SELECT count(*) FROM dmarc.alert_silent_reporters")" = 0 ] && ok "silent_reporter_active_days 14: 13 days are not enough" \
	|| fail "silent_reporter_active_days 14"
q seeded "UPDATE dmarc.alert_settings SET value = 3600 WHERE name = 'collector_interval_seconds'" >/dev/null
[ "$(qr seeded "SELECT string_agg(problem, ',') FROM dmarc.alert_collector_stale")" = rejects_rising ] \
	&& ok "collector_interval_seconds 3600: two hours is not three intervals" || fail "collector_interval_seconds 3600"
q seeded "UPDATE dmarc.alert_settings SET value = 7 WHERE name = 'rejected_rise_factor'" >/dev/null
[ "$(qr seeded "SELECT count(*) FROM dmarc.alert_collector_stale")" = 0 ] && ok "rejected_rise_factor 7: 12 is not above 14" \
	|| fail "rejected_rise_factor 7"
q seeded "DELETE FROM dmarc.alert_settings" >/dev/null
[ "$(qr seeded "SELECT count(*) FROM dmarc.alerts")" = 7 ] && ok "every setting deleted: the defaults, the same 7 alerts" \
	|| fail "without settings: $(q seeded "SELECT count(*) FROM dmarc.alerts") alerts"
# the table itself stays private
out=$(psql -X -q -U it_reader -d seeded -v VERBOSITY=verbose -c "SELECT * FROM dmarc.alert_settings" 2>&1)
grep -q 'ERROR:  42501' <<<"$out" && ok "the reader cannot read dmarc.alert_settings (a table)" || fail "reader reads alert_settings: $out"

# ---- the Grafana rules: each one's query as the reader
rules() { python3 "$G/run_panels.py" --rules "$RULES" --psql "psql -d $1 -U it_reader"; }
if rules quiet >"$tmp/rq.txt" 2>&1 && [ "$(grep -c '^rule .* 0 rows$' "$tmp/rq.txt")" = 5 ]; then
	ok "quiet: the 5 Grafana rules' queries return no rows"
else
	cat "$tmp/rq.txt"; fail "quiet: Grafana rules"
fi
if rules seeded >"$tmp/rs.txt" 2>&1 && [ "$(grep -Ec '^rule .* [1-9][0-9]* rows$' "$tmp/rs.txt")" = 5 ]; then
	ok "seeded: each of the 5 Grafana rules' queries returns rows"
else
	cat "$tmp/rs.txt"; fail "seeded: Grafana rules"
fi
# a rule's rows as Grafana gets them: one string column (the label) and one number
sql=$(python3 -c "
import sys, yaml
r = yaml.safe_load(open(sys.argv[1]))['groups'][0]['rules'][0]
print(r['data'][0]['model']['rawSql'])" "$RULES")
got=$(qr seeded "$sql")
[ "$got" = "example.com|203.0.113.5|1" ] && ok "a rule's rows: key and 1" || fail "rule rows: $got"

# ---- the dashboard's Collector health row on the seeded database (as the reader)
python3 "$G/run_panels.py" "$G/dashboards/dmarc-overview.json" --from now-30d --to now \
	--psql "psql -d seeded -U it_reader" >"$tmp/panels.txt" 2>&1 || { cat "$tmp/panels.txt"; fail "dashboard panels on the seeded database"; }
# (the rejects span 8 or 9 UTC days, depending on the time of day)
for want in "Mailbox status:2:2" "Since the last successful poll:2:2" "Rejected inputs per day by mailbox:8:9" "Open alerts:7:7"; do
	IFS=: read -r title lo hi <<<"$want"
	n=$(sed -n "s/^$title \[A\] *\([0-9]*\) rows$/\1/p" "$tmp/panels.txt")
	[ -n "$n" ] && [ "$n" -ge "$lo" ] && [ "$n" -le "$hi" ] && ok "panel $title: $n rows" || fail "panel $title: '$n' rows, want $lo to $hi"
done

if [ $fails -gt 0 ]; then
	echo "alerts.sh: $fails failure(s)"
	exit 1
fi
echo "alerts.sh: all passed"

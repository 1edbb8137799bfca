#!/bin/bash
# grafana.sh - the Grafana provisioning files and every panel's SQL against
# a real database filled from the test corpus, as Grafana's login would run
# it: a member of dmarc_reader.  Also the analyst cookbook
# (examples/queries.sql), the roles (the reader cannot write nor read a
# table; the collector works as a member of dmarc_writer), and the daily
# rollups staying equal to the views they summarise through inserts,
# PTR changes and deletes.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb grafana || exit 1
unset DMARC_COLLECTOR_CONFIG

G=$DC_SRC/examples/grafana
DASH=$G/dashboards/dmarc-overview.json
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $* [${SECONDS}s]"; }
q() { psql -X -At -v ON_ERROR_STOP=1 "$@"; }
conn() { echo "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$1"; }

# ---- provisioning files: structure
python3 - "$G" <<'EOF' || fail "provisioning files"
import glob, json, sys
import yaml  # python3-yaml
g = sys.argv[1]
ds = yaml.safe_load(open(g + "/provisioning/datasources/dmarc.yaml"))
assert ds["apiVersion"] == 1, "datasource apiVersion"
(src,) = ds["datasources"]
assert src["type"] in ("postgres", "grafana-postgresql-datasource"), src["type"]
assert src["jsonData"]["database"] and src["uid"], "datasource database/uid"
prov = yaml.safe_load(open(g + "/provisioning/dashboards/dmarc.yaml"))
assert prov["apiVersion"] == 1 and prov["providers"][0]["type"] == "file", "dashboard provider"
dashes = glob.glob(g + "/dashboards/*.json")
assert dashes, "no dashboards"
for f in dashes:
    d = json.load(open(f))
    assert d["uid"] and d["title"] and d["panels"], f
    names = [v["name"] for v in d["templating"]["list"]]
    assert "domain" in names and "reporter" in names, "variables: %s" % names
    for v in d["templating"]["list"]:
        assert v["datasource"]["uid"] == src["uid"], "variable %s data source" % v["name"]
    ids = set()
    for p in d["panels"]:
        assert p["id"] not in ids, "duplicate panel id %s" % p["id"]
        ids.add(p["id"])
        for k in ("x", "y", "w", "h"):
            assert isinstance(p["gridPos"][k], int), p["title"]
        if p["type"] == "row":
            assert not p.get("targets"), "row %s has queries" % p["title"]
            continue
        assert p["datasource"]["uid"] == src["uid"], "panel %s data source" % p["title"]
        for t in p["targets"]:
            assert t["rawQuery"] and t["rawSql"].strip() and t["format"] in ("table", "time_series"), p["title"]
            if t["format"] == "time_series":
                assert '"time"' in t["rawSql"] or "$__time" in t["rawSql"], "%s lacks a time column" % p["title"]
    titles = " | ".join(p["title"] for p in d["panels"])
    for want in ("pass rate", "reporter", "failing source IPs", "alignment", "Dispositions",
                 "Published policies", "Server-generated vs regular", "need DKIM", "Rejected inputs",
                 "Collector health", "Mailbox status", "successful poll", "by mailbox", "Open alerts",
                 "Who is sending", "by sender and type", "by AS", "by country", "New senders",
                 "SMTP TLS reports", "TLS sessions per policy domain", "TLS failure rate", "by result type",
                 "by receiving MX", "Failure reports"):
        assert want.lower() in titles.lower(), "no panel for " + want
# alert rules (Grafana unified alerting file provisioning): one per alert view,
# each querying the data source and firing on C (reduce B of A, threshold > 0)
rules = yaml.safe_load(open(g + "/provisioning/alerting/dmarc-alerts.yaml"))
assert rules["apiVersion"] == 1, "alerting apiVersion"
seen = set()
for grp in rules["groups"]:
    assert grp["name"] and grp["folder"] and grp["interval"] and grp["orgId"] == 1, grp
    for r in grp["rules"]:
        assert r["uid"] not in seen and len(r["uid"]) <= 40, r["uid"]
        seen.add(r["uid"])
        assert r["title"] and r["condition"] == "C" and r["noDataState"] == "OK", r["uid"]
        refs = {q["refId"]: q for q in r["data"]}
        a, b, c = refs["A"], refs["B"], refs["C"]
        assert a["datasourceUid"] == src["uid"] and a["model"]["rawQuery"] and a["model"]["format"] == "table", r["uid"]
        assert "$" not in a["model"]["rawSql"], "Grafana would expand $ in %s" % r["uid"]
        assert b["datasourceUid"] == "__expr__" and b["model"]["type"] == "reduce" and b["model"]["expression"] == "A"
        assert c["datasourceUid"] == "__expr__" and c["model"]["type"] == "threshold" and c["model"]["expression"] == "B"
        assert c["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [0]}, r["uid"]
        for q in r["data"]:
            assert q["model"]["refId"] == q["refId"] and "from" in q["relativeTimeRange"], r["uid"]
        for k, v in r["labels"].items():
            assert "$" not in v, "Grafana expands $ in label %s" % k
        view = r["labels"]["dmarc_alert"]
        assert "alert = '%s'" % view in a["model"]["rawSql"], r["uid"]
views = {r["labels"]["dmarc_alert"] for grp in rules["groups"] for r in grp["rules"]}
assert views == {"new_unsigned_sources", "pass_rate_drop", "new_failing_senders", "silent_reporters",
                 "collector_stale"}, views
print("ok: provisioning YAML, %d alert rules and %d dashboard(s) well-formed" % (len(seen), len(dashes)))
EOF

# ---- migrate, roles, import the corpus as the collector's role
"$DC_BIN" --db "$(conn postgres)" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }
[ "$(q -c "SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('dmarc_reader', 'dmarc_writer')")" = "dmarc_reader:false,dmarc_writer:false" ] \
  && ok "migrate created NOLOGIN roles dmarc_reader, dmarc_writer" || fail "roles missing or able to log in"
"$DC_BIN" --db "$(conn postgres)" migrate >/dev/null 2>&1 && ok "migrate again" || fail "second migrate"
q -c "CREATE ROLE it_collector LOGIN IN ROLE dmarc_writer" -c "CREATE ROLE it_grafana LOGIN IN ROLE dmarc_reader" >/dev/null

"$DC_BIN" -q --db "$(conn it_collector)" import "$DC_SRC/tests/data/corpus" >"$tmp/import.log" 2>&1
rc=$?
[ $rc = 0 ] || [ $rc = 1 ] || { tail -5 "$tmp/import.log"; echo "FAIL: import as dmarc_writer exited $rc"; exit 1; }
reports=$(q -c "SELECT count(*) FROM dmarc.reports")
[ "$reports" -gt 50 ] && ok "import as a dmarc_writer member: $reports reports" || fail "only $reports reports imported"

# ---- the rollups equal the views they summarise
check_rollup() {
  local n
  n=$(q -c "
    WITH a AS (SELECT day, policy_domain, sum(messages) AS m,
                      coalesce(sum(messages) FILTER (WHERE dmarc_pass), 0) AS p,
                      coalesce(sum(messages) FILTER (WHERE server_generated), 0) AS sg,
                      coalesce(sum(messages) FILTER (WHERE server_generated AND NOT dkim_pass), 0) AS sgnd
               FROM dmarc.daily_mail GROUP BY 1, 2 HAVING sum(messages) > 0),
         b AS (SELECT day, policy_domain, messages AS m, dmarc_pass_messages AS p,
                      server_generated_messages AS sg, server_generated_without_dkim AS sgnd
               FROM dmarc.daily_summary WHERE day IS NOT NULL AND messages > 0),
         s AS (SELECT day, policy_domain, source_ip, sum(messages) AS m FROM dmarc.daily_sources GROUP BY 1, 2, 3 HAVING sum(messages) > 0),
         t AS (SELECT day, lower(policy_domain), source_ip, sum(messages) FROM dmarc.record_days
               WHERE day IS NOT NULL AND (NOT dmarc_pass OR server_generated) GROUP BY 1, 2, 3 HAVING sum(messages) > 0)
    SELECT (SELECT count(*) FROM (SELECT * FROM a EXCEPT SELECT * FROM b) x)
         + (SELECT count(*) FROM (SELECT * FROM b EXCEPT SELECT * FROM a) x)
         + (SELECT count(*) FROM (SELECT * FROM s EXCEPT SELECT * FROM t) x)
         + (SELECT count(*) FROM (SELECT * FROM t EXCEPT SELECT * FROM s) x)")
  [ "$n" = 0 ] && ok "rollups equal daily_summary/record_days $1" || fail "rollups differ from the views in $n rows $1"
  # the narrow rollups are sums of rollup_daily
  n=$(q -c "
    WITH d AS (SELECT day, policy_domain, disposition, dkim_pass, spf_pass, server_generated_reason, sum(messages), sum(records)
               FROM dmarc.daily_mail GROUP BY 1, 2, 3, 4, 5, 6),
         e AS (SELECT day, policy_domain, disposition, dkim_pass, spf_pass, server_generated_reason, messages, records
               FROM dmarc.daily_domains),
         r AS (SELECT day, policy_domain, org_name, sum(messages), coalesce(sum(messages) FILTER (WHERE dmarc_pass), 0),
                      sum(records), coalesce(sum(records) FILTER (WHERE dmarc_pass), 0) FROM dmarc.daily_mail GROUP BY 1, 2, 3),
         s AS (SELECT day, policy_domain, org_name, messages, dmarc_pass_messages, records, dmarc_pass_records
               FROM dmarc.daily_reporters)
    SELECT (SELECT count(*) FROM (SELECT * FROM d EXCEPT SELECT * FROM e) x) + (SELECT count(*) FROM (SELECT * FROM e EXCEPT SELECT * FROM d) x)
         + (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM s) x) + (SELECT count(*) FROM (SELECT * FROM s EXCEPT SELECT * FROM r) x)")
  [ "$n" = 0 ] && ok "daily_domains/daily_reporters equal daily_mail's sums $1" || fail "narrow rollups differ from daily_mail in $n rows $1"
}
check_rollup "after import"
[ "$(q -c "SELECT sum(messages) FROM dmarc.daily_mail")" -gt 0 ] || fail "rollup empty"

# a PTR name that resolve confirms changes the classification (rule 3):
# pick a regular record whose SPF domain is a host name, confirm it as the PTR
target=$(q -c "SELECT host(r.source_ip) || ' ' || s.domain FROM dmarc.records r JOIN dmarc.spf_results s ON s.record_id = r.id
               JOIN dmarc.record_details d ON d.record_id = r.id
               WHERE NOT d.server_generated AND s.domain LIKE '%.%.%' AND r.source_ip IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM dmarc.ip_names n WHERE n.ip = r.source_ip) LIMIT 1")
if [ -n "$target" ]; then
  set -- $target
  before=$(q -c "SELECT coalesce(sum(messages), 0) FROM dmarc.daily_mail WHERE server_generated_reason = 'spf_domain_is_ptr'")
  q -c "INSERT INTO dmarc.ip_names (ip, ptr, forward_confirmed, status) VALUES ('$1', '$2', true, 'ok')" >/dev/null
  after=$(q -c "SELECT coalesce(sum(messages), 0) FROM dmarc.daily_mail WHERE server_generated_reason = 'spf_domain_is_ptr'")
  [ "$after" -gt "$before" ] && ok "confirmed PTR moves mail to spf_domain_is_ptr ($before -> $after)" \
    || fail "confirmed PTR did not reclassify ($before -> $after)"
  check_rollup "after a PTR was confirmed"
  # resolve refreshing a name it already had: the same upsert it runs, nothing changes
  q -c "INSERT INTO dmarc.ip_names (ip, ptr, forward_confirmed, status) VALUES ('$1', '$2', true, 'ok')
        ON CONFLICT (ip) DO UPDATE SET ptr = EXCLUDED.ptr, forward_confirmed = EXCLUDED.forward_confirmed,
        status = EXCLUDED.status, resolved_at = now()" >/dev/null
  [ "$(q -c "SELECT coalesce(sum(messages), 0) FROM dmarc.daily_mail WHERE server_generated_reason = 'spf_domain_is_ptr'")" = "$after" ] \
    && ok "the same name stored again changes nothing" || fail "re-storing an unchanged PTR changed the rollups"
  check_rollup "after the same PTR was stored again"
  q -c "UPDATE dmarc.ip_names SET forward_confirmed = false WHERE ip = '$1'" >/dev/null
  [ "$(q -c "SELECT coalesce(sum(messages), 0) FROM dmarc.daily_mail WHERE server_generated_reason = 'spf_domain_is_ptr'")" = "$before" ] \
    && ok "unconfirmed again: back to $before" || fail "unconfirming did not undo the classification"
  check_rollup "after the PTR lost its confirmation"
else
  fail "no record to reclassify in the corpus"
fi
# a deleted report leaves the rollups
q -c "DELETE FROM dmarc.reports WHERE id = (SELECT report_id FROM dmarc.records GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)" >/dev/null
check_rollup "after deleting the biggest report"
# reparse replaces every report: totals unchanged
tot=$(q -c "SELECT sum(messages) FROM dmarc.daily_mail")
"$DC_BIN" -q --db "$(conn it_collector)" reparse >/dev/null 2>&1
check_rollup "after reparse as dmarc_writer"

# ---- who is sending (issue 14): two failing source IPs get an AS, a country
# and a sender, as resolve and `senders set` would give them: the first by its
# confirmed PTR name's base domain, the second (whose PTR name is not
# confirmed, with a base domain in the map) by its AS domain only
# (the first sends passing mail too, which only the sender panel counts)
read -r ip1 ip2 <<<"$(q -c "SELECT string_agg(ip, ' ') FROM (
  SELECT host(r.source_ip) AS ip FROM dmarc.records r
  WHERE NOT EXISTS (SELECT 1 FROM dmarc.ip_names n WHERE n.ip = r.source_ip)
    AND EXISTS (SELECT 1 FROM dmarc.rollup_sources s WHERE s.source_ip = r.source_ip)
  GROUP BY r.source_ip
  ORDER BY sum(r.message_count) > (SELECT sum(messages) FROM dmarc.rollup_sources s WHERE s.source_ip = r.source_ip) DESC,
           sum(r.message_count) DESC, r.source_ip LIMIT 2) t")"
[ -n "$ip2" ] || fail "no two failing source IPs without names in the corpus"
q -c "INSERT INTO dmarc.ip_names (ip, ptr, ptr_base_domain, forward_confirmed, status, asn, as_name, country)
      VALUES ('$ip1', 'mx1.sender-one.example', 'sender-one.example', true, 'ok', 64500, 'Example AS One', 'DE'),
             ('$ip2', 'mx2.sender-one.example', 'sender-one.example', false, 'ok', 64501, 'Example AS Two', 'FR')" >/dev/null
q -c "UPDATE dmarc.ip_names SET as_domain = 'as-two.example' WHERE ip = '$ip2'" >/dev/null
"$DC_BIN" -q --db "$(conn it_collector)" senders set sender-one.example "Sender One" "Email Provider" >/dev/null 2>&1 \
  && "$DC_BIN" -q --db "$(conn it_collector)" senders set as-two.example "AS Two Mail" "Hosting" >/dev/null 2>&1 \
  || fail "senders set as dmarc_writer"
# what the panels must show, read from the tables (not the views)
all1=$(q -c "SELECT sum(message_count) FROM dmarc.records WHERE source_ip = '$ip1'")
all2=$(q -c "SELECT sum(message_count) FROM dmarc.records WHERE source_ip = '$ip2'")
src1=$(q -c "SELECT sum(messages) FROM dmarc.rollup_sources WHERE source_ip = '$ip1'")
[ "$all1" -gt "$src1" ] || fail "corpus: $ip1 sends no passing mail ($all1 messages, $src1 failing or server-generated)"
dom1=$(q -c "SELECT lower(r.policy_domain) || ' ' || sum(r.message_count) || ' '
             || to_char(min(p.date_begin) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id
             WHERE r.source_ip = '$ip1' GROUP BY lower(r.policy_domain) ORDER BY lower(r.policy_domain) LIMIT 1")

# ---- every panel, as Grafana's login (dmarc_reader), Grafana's macros expanded
run() { python3 "$G/run_panels.py" "$DASH" --psql "psql -d $PGDATABASE -U it_grafana" "$@"; }
if run --from 1990-01-01T00:00:00Z --to now --show "by sender and type" --show "by AS" --show "by country" \
     --show "New senders" >"$tmp/who.txt" 2>&1; then
  # the rows of one panel: the lines after its title line, "  | " removed
  rows_of() { awk -v t="$1" '!/^  \| / { on = index($0, t) > 0; next } on { print substr($0, 5) }' "${2:-$tmp/who.txt}"; }
  tab=$'\t'
  # whole outputs, then grep -q on them: grep -q in a pipe would SIGPIPE the
  # producer and fail the pipeline under pipefail
  by_sender=$(rows_of "Messages by sender and type") by_as=$(rows_of "by AS") by_country=$(rows_of "by country")
  got=$(awk -F'\t' '$2 == "Sender One (Email Provider)" { s += $3 } END { print s + 0 }' <<<"$by_sender")
  [ "$got" = "$all1" ] && ok "messages by sender: Sender One (Email Provider) $got messages = its records, by the confirmed PTR name" \
    || fail "messages by sender: Sender One shows $got, records hold $all1"
  # and day by day as dmarc.record_days shares it out (the panel computes the shares itself)
  got=$(awk -F'\t' '$2 == "Sender One (Email Provider)" { printf "%s%s=%s", n++ ? " " : "", substr($1, 1, 10), $3 }' <<<"$by_sender")
  want=$(q -c "SELECT string_agg(day || '=' || m, ' ' ORDER BY day) FROM (
                 SELECT day, sum(messages) AS m FROM dmarc.record_days WHERE source_ip = '$ip1' GROUP BY day) x")
  [ -n "$got" ] && [ "$got" = "$want" ] && ok "messages by sender: Sender One per day = record_days ($(wc -w <<<"$got") days)" \
    || fail "messages by sender: Sender One per day '$got', record_days '$want'"
  got=$(awk -F'\t' '$2 == "AS Two Mail (Hosting)" { s += $3 } END { print s + 0 }' <<<"$by_sender")
  [ "$got" = "$all2" ] && ok "messages by sender: the unconfirmed PTR's IP under its AS domain's sender, AS Two Mail ($got)" \
    || fail "messages by sender: AS Two Mail shows $got, records of $ip2 hold $all2"
  grep -qF "${tab}(no sender: not in the sender map)${tab}" <<<"$by_sender" \
    && ok "messages by sender: sources no map entry names are shown together" || fail "messages by sender: no unnamed row"
  grep -q "^AS64500${tab}Example AS One${tab}$src1${tab}" <<<"$by_as" \
    && ok "by AS: AS64500 Example AS One, $src1 failing or server-generated messages" \
    || { echo "$by_as"; fail "by AS: no 'AS64500 Example AS One $src1' row"; }
  grep -q "^DE${tab}$src1${tab}" <<<"$by_country" && ok "by country: DE, $src1 messages" \
    || { echo "$by_country"; fail "by country: no 'DE $src1' row"; }
  # new senders (at most 100 rows): the range of Sender One's first report
  read -r d1 m1 t1 <<<"$dom1"
  run --from "$t1" --to "$t1" --var "domain=$d1" --show "New senders" >"$tmp/new.txt" 2>&1 || fail "new senders on $t1"
  grep -q "^$d1${tab}Sender One${tab}Sender One${tab}Email Provider${tab}.*${tab}1${tab}$m1${tab}" <<<"$(rows_of "New senders" "$tmp/new.txt")" \
    && ok "new senders: Sender One for $d1 first seen $t1, 1 IP, $m1 messages" \
    || { cat "$tmp/new.txt"; fail "new senders: no 'Sender One' row for $d1 with 1 IP and $m1 messages"; }
else
  cat "$tmp/who.txt"; fail "panels with --show"
fi
if run --from 1990-01-01T00:00:00Z --to now --require-rows >"$tmp/panels.txt" 2>&1; then
  ok "every panel ran and the main panels returned rows (All domains, All reporters)"
else
  cat "$tmp/panels.txt"; fail "panels with All/All"
fi
grep -c 'rows' "$tmp/panels.txt" | grep '^[1-9][0-9]$' >/dev/null || fail "expected 10+ panels: $(cat "$tmp/panels.txt")"
# the alert rules' queries, the same way (the corpus is old: no rows expected)
if python3 "$G/run_panels.py" --rules "$G/provisioning/alerting/dmarc-alerts.yaml" \
     --psql "psql -d $PGDATABASE -U it_grafana" >"$tmp/rules.txt" 2>&1 && [ "$(grep -c '^rule .* rows$' "$tmp/rules.txt")" = 5 ]; then
  ok "the 5 alert rules' queries ran as dmarc_reader"
else
  cat "$tmp/rules.txt"; fail "alert rule queries"
fi
# one domain and one reporter, picked from the data (with a quote-free name)
dom=$(q -c "SELECT policy_domain FROM dmarc.daily_mail GROUP BY 1 ORDER BY sum(messages) DESC LIMIT 1")
rep=$(q -c "SELECT org_name FROM dmarc.daily_mail WHERE policy_domain = '$dom' GROUP BY 1 ORDER BY sum(messages) DESC LIMIT 1")
run --from 1990-01-01T00:00:00Z --to now --var "domain=$dom" --var "reporter=$rep" >"$tmp/one.txt" 2>&1 \
  && ok "every panel ran for domain=$dom reporter=$rep" || { cat "$tmp/one.txt"; fail "panels for one domain"; }
# a value with a quote must stay a literal (Grafana doubles it)
run --from 1990-01-01T00:00:00Z --to now --var "domain=x'); DROP TABLE dmarc.reports; --" --var "reporter=$rep" >"$tmp/quote.txt" 2>&1 \
  && ok "a quote in a variable value stays inside the literal" || { cat "$tmp/quote.txt"; fail "quoted variable"; }
# the dashboard's default range (last 30 days; the corpus is older): no errors
run >"$tmp/default.txt" 2>&1 && ok "panels run on the default time range" || { cat "$tmp/default.txt"; fail "default range"; }
# time filter: a range inside a multi-day report's second day still finds it
multi=$(q -c "SELECT to_char(date_end - interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM dmarc.report_overview
              WHERE date_end - date_begin > interval '25 hours' ORDER BY id LIMIT 1")
if [ -n "$multi" ]; then
  run --from "$multi" --to "$multi" >"$tmp/multi.txt" 2>&1
  if grep -Eq '^Messages by reporter \[A\] +[1-9][0-9]* rows' "$tmp/multi.txt"; then
    ok "a one-hour range on a multi-day report's last day still shows its messages"
  else
    cat "$tmp/multi.txt"; fail "time filter on the covered days"
  fi
fi

# ---- TLS reports and failure reports (issue 15), imported from the corpus
# with the rest: the panels' sums over all time against the tables
tls_sessions=$(q -c "SELECT coalesce(sum(coalesce(successful_sessions, 0) + coalesce(failed_sessions, 0)), 0) FROM dmarc.tls_policies")
tls_failed=$(q -c "SELECT coalesce(sum(failed_sessions), 0) FROM dmarc.tls_policies")
tls_detail=$(q -c "SELECT coalesce(sum(failed_session_count), 0) FROM dmarc.tls_failures")
tls_mx=$(q -c "SELECT count(DISTINCT coalesce(lower(rtrim(receiving_mx_hostname, '.')), '(not reported)')) FROM dmarc.tls_failures")
n_arf=$(q -c "SELECT count(*) FROM dmarc.failure_reports")
[ "$tls_sessions" -gt 0 ] && [ "$tls_detail" -gt 0 ] && [ "$n_arf" -gt 0 ] \
  || fail "the corpus import stored no TLS sessions ($tls_sessions), failure details ($tls_detail) or failure reports ($n_arf)"
if run --from 1990-01-01T00:00:00Z --to now --show "TLS" --show "Failure reports" >"$tmp/tls.txt" 2>&1; then
  tab=$'\t'
  rows_of() { awk -v t="$1" '!/^  \| / { on = index($0, t) > 0; next } on { print substr($0, 5) }' "$tmp/tls.txt"; }
  sums=$(rows_of "TLS sessions per policy domain" | awk -F'\t' '{ s += $3 } $2 ~ /: failed$/ { f += $3 } END { print s + 0, f + 0 }')
  [ "$sums" = "$tls_sessions $tls_failed" ] && ok "TLS sessions panel: $tls_sessions sessions, $tls_failed failed = the policies' counts" \
    || fail "TLS sessions panel sums (all, failed) $sums, the tables $tls_sessions $tls_failed"
  rate=$(rows_of "TLS failure rate per policy domain" | awk -F'\t' '$3 < 0 || $3 > 1 { bad++ } END { print NR, bad + 0 }')
  [ "${rate#* }" = 0 ] && [ "${rate% *}" -gt 0 ] && ok "TLS failure rate: ${rate% *} points, all within 0..1" \
    || fail "TLS failure rate: $rate (points, out of 0..1)"
  got=$(rows_of "TLS failures by result type" | awk -F'\t' '{ s += $3 } END { print s + 0 }')
  [ "$got" = "$tls_detail" ] && ok "TLS failures by result type: $got failed sessions = the failure details'" \
    || fail "TLS failures by result type sum to $got, the failure details to $tls_detail"
  got=$(rows_of "TLS failures by receiving MX" | awk -F'\t' '{ s += $3 } END { print NR, s + 0 }')
  [ "$got" = "$tls_mx $tls_detail" ] && ok "TLS failures by receiving MX: $tls_mx hosts, $tls_detail failed sessions" \
    || fail "TLS failures by receiving MX: (hosts, sessions) $got, the tables $tls_mx $tls_detail"
  want=$(( n_arf < 200 ? n_arf : 200 ))
  got=$(rows_of "Failure reports" | wc -l)
  [ "$got" = "$want" ] && ok "Failure reports table: $got rows (of $n_arf stored)" \
    || fail "Failure reports table: $got rows, $want expected"
else
  cat "$tmp/tls.txt"; fail "TLS and failure report panels"
fi

# ---- the cookbook, as an analyst (dmarc_reader)
if psql -X -q -v ON_ERROR_STOP=1 -U it_grafana -f "$DC_SRC/examples/queries.sql" >"$tmp/cook.txt" 2>&1; then
  n=$(grep -c '^-- [0-9]*\.' "$DC_SRC/examples/queries.sql")
  ok "all $n cookbook queries ran as dmarc_reader"
else
  tail -5 "$tmp/cook.txt"; fail "a cookbook query failed"
fi

# ---- the reader can read views, and cannot write or read tables
denied() {  # SQL: must fail with SQLSTATE 42501 (insufficient privilege)
  local out
  out=$(psql -X -q -U it_grafana -v VERBOSITY=verbose -c "$1" 2>&1)
  if grep -q 'ERROR:  42501' <<<"$out"; then ok "reader denied: $1"; else fail "reader not denied (42501): $1 -> $out"; fi
}
denied "INSERT INTO dmarc.reports (org_name) VALUES ('x')"
denied "UPDATE dmarc.records SET message_count = 0"
denied "DELETE FROM dmarc.failures"
denied "DELETE FROM dmarc.report_overview"
denied "UPDATE dmarc.daily_mail SET messages = 0"
denied "INSERT INTO dmarc.ip_names (ip) VALUES ('192.0.2.1')"
denied "SELECT content FROM dmarc.failures LIMIT 1"
denied "SELECT * FROM dmarc.originals LIMIT 1"
denied "SELECT * FROM dmarc.records LIMIT 1"
denied "SELECT * FROM dmarc.rollup_daily LIMIT 1"
denied "CREATE TABLE dmarc.mine (x int)"
denied "TRUNCATE dmarc.reports"
denied "SELECT dmarc.rollup_rebuild()"
denied "SELECT dmarc.grant_roles()"
n=$(psql -X -At -U it_grafana -c "SELECT count(*) FROM dmarc.failure_list" 2>&1)
[ "$n" -gt 0 ] 2>/dev/null && ok "reader reads dmarc.failure_list ($n rows)" || fail "reader cannot read failure_list: $n"
# every view is readable, no table is
bad=$(q -c "SELECT string_agg(c.relname || ':' || c.relkind::text, ' ') FROM pg_class c
            WHERE c.relnamespace = 'dmarc'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
            AND has_table_privilege('it_grafana', c.oid, 'SELECT') <> (c.relkind IN ('v', 'm'))") || fail "privilege query"
[ -z "$bad" ] && ok "reader: SELECT on every view, on no table" || fail "reader privileges wrong on: $bad"
bad=$(q -c "SELECT string_agg(c.relname, ' ') FROM pg_class c
            WHERE c.relnamespace = 'dmarc'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
            AND (has_table_privilege('it_grafana', c.oid, 'INSERT') OR has_table_privilege('it_grafana', c.oid, 'UPDATE')
                 OR has_table_privilege('it_grafana', c.oid, 'DELETE') OR has_table_privilege('it_grafana', c.oid, 'TRUNCATE'))") || fail "privilege query"
[ -z "$bad" ] && ok "reader: no write privilege anywhere in dmarc" || fail "reader may write to: $bad"

# ---- prune as the collector's role works too
"$DC_BIN" --db "$(conn it_collector)" prune --older-than 36500 >"$tmp/prune.log" 2>&1 \
  && ok "prune as dmarc_writer" || { cat "$tmp/prune.log"; fail "prune as dmarc_writer"; }

if [ $fails -gt 0 ]; then
  echo "grafana.sh: $fails failure(s)"
  exit 1
fi
echo "grafana.sh: all passed"

#!/usr/bin/env bash
# classify.sh - the server-generated classification (SPEC section 6) and the
# views built on it, on rows stored by `import` from crafted reports and PTR
# names stored by `resolve` from a real dnsmasq.
#
# Shows: rules 1 and 2 fire without any DNS; rules 3 and 4 fire only after
# resolve and only for forward-confirmed names (case and a trailing dot
# ignored, IPv4 and IPv6); needs_dkim is true exactly where server-generated
# mail lacked aligned DKIM (checked against an independent computation from
# the base tables); record_days shares a multi-day report out over its days
# with shares that add up; daily_summary; the admin queries of
# docs/README-server-generated.md run and give the expected answers.
set -euo pipefail
: "${DC_BIN:?DC_BIN must name the built program}" "${DC_SRC:?DC_SRC must name the source tree}"
data=$DC_SRC/tests/data/classify
tmp=$(mktemp -d /tmp/dc-it-classify.XXXXXX)
chmod 755 "$tmp"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dnsmasq.sh"
cleanup() {
	dc_dns_stop "$tmp/dns" || true
	dc_pg_stop "$tmp/pg" || true
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "classify.sh: FAIL: $*" >&2; exit 1; }
q() { psql -X -At -F'|' -v ON_ERROR_STOP=1 -c "$1"; }
expect() {  # NAME SQL EXPECTED
	local got
	got=$(q "$2") || fail "$1: query failed"
	[ "$got" = "$3" ] || fail "$1:
--- expected
$3
--- got
$got"
	echo "ok - $1"
}
dc() { "$DC_BIN" --config "$tmp/dc.conf" --db "$db" "$@" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "dmarc-collector $*"; }; }

dc_pg_start "$tmp/pg"
dc_pg_newdb classify 2>/dev/null
db="host=$PGHOST port=$PGPORT user=$PGUSER dbname=classify"
dc_dns_start "$tmp/dns" "$data/dns.conf"
printf '[dns]\nservers = %s\ntimeout_ms = 500\n' "$DC_DNS_SERVER" > "$tmp/dc.conf"

dc migrate
dc import "$data/rules.xml" "$data/multiday.xml"
expect "records stored" "SELECT count(*), sum(message_count) FROM dmarc.records" "16|71"

# The reason of every record, by source IP and message count.
reasons="SELECT host(source_ip), message_count, coalesce(server_generated_reason, '-')
	FROM dmarc.record_details ORDER BY family(source_ip), source_ip, message_count"

# 1. Before resolve: only the rules that need no DNS fire.
expect "rules 1 and 2 without DNS; 3 and 4 wait for resolve" "$reasons" \
"192.0.2.10|6|-
192.0.2.10|10|-
192.0.2.11|2|-
192.0.2.11|7|-
192.0.2.12|2|-
192.0.2.13|1|-
192.0.2.14|3|-
192.0.2.20|8|-
192.0.2.30|7|-
192.0.2.30|9|-
192.0.2.40|3|null_sender
192.0.2.41|4|null_sender
192.0.2.42|5|spf_helo_scope
2001:db8::10|1|-
2001:db8::11|2|-
2001:db8::12|1|-"

dc resolve

# 2. After resolve.  192.0.2.10: SPF domain MAIL.Example.COM. against the
#    confirmed PTR mail.example.com (rule 3, case and dot ignored), also on
#    IPv6.  192.0.2.20: envelope_from Relay.Example.ORG. (rule 4).
#    192.0.2.11 (PTR liar.example.net, which resolves elsewhere) and
#    192.0.2.13 (PTR name that does not exist) claim their PTR names in SPF
#    and envelope_from, and must stay regular mail.  Absent envelope_from
#    (192.0.2.12) is no evidence.
expect "all four rules on real rows, unconfirmed names ignored" "$reasons" \
"192.0.2.10|6|spf_domain_is_ptr
192.0.2.10|10|spf_domain_is_ptr
192.0.2.11|2|-
192.0.2.11|7|-
192.0.2.12|2|-
192.0.2.13|1|-
192.0.2.14|3|spf_domain_is_ptr
192.0.2.20|8|envelope_from_is_ptr
192.0.2.30|7|-
192.0.2.30|9|-
192.0.2.40|3|null_sender
192.0.2.41|4|null_sender
192.0.2.42|5|spf_helo_scope
2001:db8::10|1|spf_domain_is_ptr
2001:db8::11|2|spf_domain_is_ptr
2001:db8::12|1|-"

# 3. The PTR columns: a name only when confirmed; ptr_raw keeps the claim.
expect "PTR columns of record_details" "
	SELECT DISTINCT host(source_ip), coalesce(ptr, '-'), coalesce(ptr_base_domain, '-'),
	       coalesce(ptr_raw, '-'), coalesce(forward_confirmed::text, '-')
	FROM dmarc.record_details WHERE source_ip IN ('192.0.2.10', '192.0.2.11', '192.0.2.12', '2001:db8::11')
	ORDER BY 1" \
"192.0.2.10|mail.example.com|example.com|mail.example.com|true
192.0.2.11|-|-|liar.example.net|false
192.0.2.12|-|-|-|false
2001:db8::11|v6only.example.org|example.org|v6only.example.org|true"

# 4. The two halves partition record_details.
expect "server_generated_mail + regular_mail = record_details" "
	SELECT (SELECT count(*) FROM dmarc.server_generated_mail),
	       (SELECT count(*) FROM dmarc.regular_mail),
	       (SELECT count(*) FROM dmarc.record_details),
	       (SELECT count(*) FROM dmarc.server_generated_mail s JOIN dmarc.regular_mail r USING (record_id))" \
	"9|7|16|0"

# 5. server_generated_sources, row by row.
expect "server_generated_sources" "
	SELECT host(source_ip), coalesce(ptr, '-'), header_from, messages, dkim_aligned_messages,
	       dmarc_pass_messages, needs_dkim
	FROM dmarc.server_generated_sources ORDER BY family(source_ip), source_ip" \
"192.0.2.10|mail.example.com|example.com|16|0|0|t
192.0.2.14|mixed.example.com|example.com|3|3|3|f
192.0.2.20|relay.example.org|example.com|8|8|8|f
192.0.2.40|-|example.com|3|0|0|t
192.0.2.41|-|example.com|4|0|0|t
192.0.2.42|-|example.com|5|5|5|f
2001:db8::10|mail.example.com|example.com|1|0|0|t
2001:db8::11|v6only.example.org|example.com|2|0|0|t"

# 6. needs_dkim is true exactly where server-generated mail lacked aligned
#    DKIM, computed here independently from dmarc.records.
expect "needs_dkim matches the records (symmetric difference empty)" "
	WITH sg AS (SELECT record_id FROM dmarc.server_generated_mail),
	     want AS (SELECT DISTINCT r.source_ip FROM dmarc.records r JOIN sg ON sg.record_id = r.id
	              WHERE r.dkim_aligned IS DISTINCT FROM 'pass'),
	     got AS (SELECT source_ip FROM dmarc.server_generated_sources WHERE needs_dkim)
	SELECT count(*) FROM ((SELECT * FROM want EXCEPT SELECT * FROM got)
	                      UNION ALL (SELECT * FROM got EXCEPT SELECT * FROM want)) d" "0"
expect "needs_dkim: five servers" \
	"SELECT count(*) FILTER (WHERE needs_dkim), count(*) FILTER (WHERE NOT needs_dkim) FROM dmarc.server_generated_sources" "5|3"

# 7. record_days: the 2.5-day report is shared out 12/60, 24/60, 24/60 in
#    whole messages (10 -> 2+4+4, 7 -> 1+3+3 by cumulative rounding), a
#    one-day report stays on its day, and every record adds up.
expect "multi-day report shared out" "
	SELECT host(source_ip), day, messages, round(messages_exact, 2), report_days
	FROM dmarc.record_days WHERE org_name = 'Receiver B' ORDER BY source_ip, day" \
"192.0.2.10|2024-05-01|2|2.00|3
192.0.2.10|2024-05-02|4|4.00|3
192.0.2.10|2024-05-03|4|4.00|3
192.0.2.30|2024-05-01|1|1.40|3
192.0.2.30|2024-05-02|3|2.80|3
192.0.2.30|2024-05-03|3|2.80|3"
expect "one-day report on one day" \
	"SELECT count(*), count(DISTINCT day), min(day) FROM dmarc.record_days WHERE org_name = 'Receiver A'" \
	"14|1|2024-05-01"
expect "shares add up to every record's count" "
	SELECT count(*) FROM (SELECT record_id, sum(messages) AS s, sum(messages_exact) AS e, min(message_count) AS n
	                      FROM dmarc.record_days GROUP BY record_id) x
	WHERE s <> n OR e <> n" "0"

# 8. daily_summary (hand-computed from rules.xml and multiday.xml).
expect "daily_summary" "
	SELECT day, policy_domain, reports, reporters, source_ips, messages, dmarc_pass_messages,
	       dmarc_fail_messages, server_generated_messages, server_generated_without_dkim
	FROM dmarc.daily_summary ORDER BY day" \
"2024-05-01|example.com|2|2|13|57|29|28|34|18
2024-05-02|example.com|1|1|2|7|3|4|4|4
2024-05-03|example.com|1|1|2|7|3|4|4|4"
expect "daily_summary adds up to the records" \
	"SELECT (SELECT sum(messages) FROM dmarc.daily_summary), (SELECT sum(message_count) FROM dmarc.records)" "71|71"

# 9. The admin queries of docs/README-server-generated.md, as printed there.
readme=$DC_SRC/docs/README-server-generated.md
admin_query() {  # the ```sql block whose first line is "-- $1:"
	awk -v tag="-- $1:" '
		/^```sql/ { inblock = 1; first = 1; buf = ""; next }
		/^```/ && inblock { if (keep) { printf "%s", buf; exit } inblock = 0; keep = 0; next }
		inblock { if (first) { keep = index($0, tag) == 1; first = 0 } buf = buf $0 "\n" }
	' "$readme"
}
for t in Q1 Q2 Q3 Q4 Q5; do [ -n "$(admin_query $t)" ] || fail "README query $t not found"; done
expect "Q1 servers without DKIM" "$(admin_query Q1 | sed 's/, reasons, last_seen/, reasons/')" \
"192.0.2.10|mail.example.com|example.com|16|16|{spf_domain_is_ptr}
192.0.2.41|(no confirmed PTR)|example.com|4|4|{null_sender}
192.0.2.40|(no confirmed PTR)|example.com|3|3|{null_sender}
2001:db8::11|v6only.example.org|example.com|2|2|{spf_domain_is_ptr}
2001:db8::10|mail.example.com|example.com|1|1|{spf_domain_is_ptr}"
# The test data is from May 2024: move the 30-day window there.
expect "Q2 share per domain" "$(admin_query Q2 | sed "s/current_date - 30/DATE '2024-04-30'/")" \
	"example.com|71|42|59.2|26"
expect "Q3 reporters" "$(admin_query Q3)" \
"Receiver A|1|32|16|{envelope_from_is_ptr,null_sender,spf_domain_is_ptr,spf_helo_scope}
Receiver B|1|10|10|{spf_domain_is_ptr}"
expect "Q4 by rule" "$(admin_query Q4)" \
"envelope_from_is_ptr|1|8|0
null_sender|2|7|7
spf_domain_is_ptr|5|22|19
spf_helo_scope|1|5|0"
expect "Q5 unconfirmed senders" "$(admin_query Q5 | sed 's/n.ptr, n.status, n.resolved_at, sum/n.ptr, n.status, sum/')" \
"192.0.2.11|liar.example.net|ok|9
192.0.2.42||nxdomain|5
192.0.2.41||nxdomain|4
192.0.2.40||nxdomain|3
192.0.2.12||nxdomain|2
192.0.2.13|ghost.example.net|ok|1
2001:db8::12||nxdomain|1"

echo "classify.sh: all passed"

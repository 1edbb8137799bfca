#!/usr/bin/env bash
# sender_views.sh - who is sending, in the views (issue 14): dmarc.ip_senders,
# the AS, country and sender columns of record_details, record_days,
# server_generated_sources and daily_sources, and dmarc.new_senders, against
# a real dnsmasq (tests/data/senders/dns.conf) and PostgreSQL, with an IPinfo
# Lite file that tests/lib/write_mmdb.pl writes (layout ipinfo-senders).
#
# The data (tests/data/senders/): the sender map says example.com -> Example
# Mail, hosting.example -> Hosting Co, example.org -> Org Relay (file), and
# `senders set` overrides example.org -> Our Relay.  Per source IP:
#   198.51.100.1   PTR mta1.example.com, confirmed; AS domain hosting.example
#                  (also in the map): the PTR wins, basis ptr
#   198.51.100.2   PTR fake.example.com, NOT confirmed (base domain example.com
#                  is in the map); AS domain unmapped.example: no sender
#   198.51.100.3   no PTR; AS domain "HOSTING.Example." in the file: the AS
#                  domain fallback, basis as_domain
#   198.51.100.4   PTR mx.example.net, confirmed, not in the map; AS domain
#                  hosting.example: basis as_domain
#   198.51.100.5   PTR relay.example.org, confirmed: the local override
#   198.51.100.77  no PTR, in no network: the IP is its own label
#   2001:db8:5::6  PTR v6.example.net, confirmed, not in the map; AS domain
#                  six.example not in the map: labelled by the PTR's base domain
# Reports: a.xml (Receiver A, example.com, 2026-01-10), b.xml (Receiver B,
# EXAMPLE.com, 2026-01-11), c.xml (Receiver A, shop.example, 2026-01-12).
# Also: the classification still uses only the confirmed PTR name (.2's SPF
# domain is its unconfirmed PTR name: not server-generated), and a login in
# dmarc_reader reads the new views.
set -euo pipefail
: "${DC_BIN:?DC_BIN must name the built program}" "${DC_SRC:?DC_SRC must name the source tree}"
data=$DC_SRC/tests/data/senders
if ! perl -MMaxMind::DB::Writer::Tree -e 1 2>/dev/null; then
	echo "sender_views.sh: SKIP: MaxMind::DB::Writer::Tree missing (libmaxmind-db-writer-perl; scripts/install-deps.sh)"
	exit 77
fi
tmp=$(mktemp -d /tmp/dc-it-sender-views.XXXXXX)
chmod 755 "$tmp"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dnsmasq.sh"
cleanup() {
	dc_dns_stop "$tmp/dns" || true
	dc_pg_stop "$tmp/pg" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
export PGTZ=UTC

fail() { echo "sender_views.sh: FAIL: $*" >&2; exit 1; }
# NULL shows as '-', so an empty string and NULL differ
q() { psql -X -At -F'|' -P null=- -v ON_ERROR_STOP=1 "$@"; }
expect() {  # NAME SQL EXPECTED [PSQL ARGS...]
	local name=$1 sql=$2 want=$3 got
	shift 3
	got=$(q "$@" -c "$sql") || fail "$name: query failed"
	[ "$got" = "$want" ] || fail "$name:
--- expected
$want
--- got
$got"
	echo "ok - $name"
}
run() {  # NAME ARGS...: exit 0 wanted, output in $tmp/out
	local name=$1 rc=0
	shift
	"$DC_BIN" --config "$tmp/dc.conf" --db "$db" "$@" >"$tmp/out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || { cat "$tmp/out" >&2; fail "$name: exit $rc"; }
	echo "ok - $name"
}

dc_pg_start "$tmp/pg"
dc_pg_newdb senderviews
db="host=$PGHOST port=$PGPORT user=$PGUSER dbname=senderviews"
dc_dns_start "$tmp/dns" "$data/dns.conf"
perl "$DC_SRC/tests/lib/write_mmdb.pl" ipinfo-senders "$tmp/ipinfo.mmdb" 1700000300 || fail "write_mmdb.pl"
printf '[dns]\nservers = %s\ntimeout_ms = 500\n[enrich]\nasn_db = %s\ncountry_db = %s\n' \
	"$DC_DNS_SERVER" "$tmp/ipinfo.mmdb" "$tmp/ipinfo.mmdb" > "$tmp/dc.conf"

run "migrate" migrate
printf 'base_reverse_dns,name,type\nexample.com,Example Mail,Email Provider\nhosting.example,Hosting Co,Web Host\nexample.org,Org Relay (file),ISP\n' \
	> "$tmp/base_reverse_dns_map.csv"
run "senders load" senders load "$tmp/base_reverse_dns_map.csv"
run "senders set (a local override)" senders set example.org "Our Relay" Self
run "import three reports" import "$data/a.xml" "$data/b.xml" "$data/c.xml"
# after import: the rollups hold the reports; resolve then reclassifies, in
# the rollups, the IPs whose confirmed name it finds (ip_names triggers)
run "resolve" resolve

# ---- dmarc.ip_senders: one row per IP, the rule in order
expect "ip_senders: sender by confirmed PTR, never by an unconfirmed one, else by AS domain" \
	"SELECT host(ip), ptr, ptr_base_domain, forward_confirmed, asn, as_name, as_domain, country,
	        sender_name, sender_type, sender_domain, sender_basis, sender
	 FROM dmarc.ip_senders ORDER BY ip" \
"198.51.100.1|mta1.example.com|example.com|t|64520|Hosting Co Net|hosting.example|DE|Example Mail|Email Provider|example.com|ptr|Example Mail
198.51.100.2|-|-|f|64521|Unmapped Net|unmapped.example|FR|-|-|-|-|AS64521 Unmapped Net
198.51.100.3|-|-|f|64520|Hosting Co Net|hosting.example|DE|Hosting Co|Web Host|hosting.example|as_domain|Hosting Co
198.51.100.4|mx.example.net|example.net|t|64520|Hosting Co Net|hosting.example|DE|Hosting Co|Web Host|hosting.example|as_domain|Hosting Co
198.51.100.5|relay.example.org|example.org|t|64522|Org Net|orgnet.example|NL|Our Relay|Self|example.org|ptr|Our Relay
198.51.100.77|-|-|f|-|-|-|-|-|-|-|-|198.51.100.77
2001:db8:5::6|v6.example.net|example.net|t|64530|Six Net|six.example|JP|-|-|-|-|example.net"
# the unconfirmed name is there, and its base domain is in the map: only
# the view keeps it out
expect "198.51.100.2: an unconfirmed PTR name whose base domain is in the map" \
	"SELECT n.ptr, n.ptr_base_domain, n.forward_confirmed, s.name FROM dmarc.ip_names n
	 JOIN dmarc.senders s ON s.base_domain = n.ptr_base_domain WHERE n.ip = '198.51.100.2'" \
	"fake.example.com|example.com|f|Example Mail"
expect "the file's row for example.org is still there, below the override" \
	"SELECT name, source FROM dmarc.sender_map WHERE base_domain = 'example.org' ORDER BY source" \
	"Org Relay (file)|base_reverse_dns_map
Our Relay|local"

# ---- record_details: the 1.0 columns as before, the new ones at the end
expect "record_details: PTR (confirmed, raw), classification, AS, country, sender" \
	"SELECT report_ext_id, ordinal, host(source_ip), ptr, ptr_raw, server_generated_reason, dmarc_pass,
	        asn, as_name, country, sender_name, sender_type
	 FROM dmarc.record_details ORDER BY report_ext_id, ordinal" \
"senders-a|1|198.51.100.1|mta1.example.com|mta1.example.com|-|t|64520|Hosting Co Net|DE|Example Mail|Email Provider
senders-a|2|198.51.100.2|-|fake.example.com|-|f|64521|Unmapped Net|FR|-|-
senders-a|3|198.51.100.3|-|-|null_sender|f|64520|Hosting Co Net|DE|Hosting Co|Web Host
senders-a|4|198.51.100.4|mx.example.net|mx.example.net|spf_domain_is_ptr|t|64520|Hosting Co Net|DE|Hosting Co|Web Host
senders-a|5|198.51.100.5|relay.example.org|relay.example.org|envelope_from_is_ptr|f|64522|Org Net|NL|Our Relay|Self
senders-a|6|198.51.100.77|-|-|-|f|-|-|-|-|-
senders-b|1|198.51.100.1|mta1.example.com|mta1.example.com|-|t|64520|Hosting Co Net|DE|Example Mail|Email Provider
senders-b|2|2001:db8:5::6|v6.example.net|v6.example.net|spf_domain_is_ptr|f|64530|Six Net|JP|-|-
senders-b|3|198.51.100.2|-|fake.example.com|-|t|64521|Unmapped Net|FR|-|-
senders-b|4|198.51.100.4|mx.example.net|mx.example.net|-|f|64520|Hosting Co Net|DE|Hosting Co|Web Host
senders-c|1|198.51.100.1|mta1.example.com|mta1.example.com|-|t|64520|Hosting Co Net|DE|Example Mail|Email Provider"
expect "record_details: the new columns come last" \
	"SELECT string_agg(attname, ',' ORDER BY attnum) FROM (SELECT attname, attnum FROM pg_attribute
	 WHERE attrelid = 'dmarc.record_details'::regclass AND attnum > 0 ORDER BY attnum DESC LIMIT 6) a" \
	"server_generated_reason,asn,as_name,country,sender_name,sender_type"

# ---- server_generated_sources: the four server-generated sources
expect "server_generated_sources with AS, country and sender" \
	"SELECT host(source_ip), ptr, messages, dmarc_pass_messages, reasons, needs_dkim,
	        asn, as_name, country, sender_name, sender_type
	 FROM dmarc.server_generated_sources ORDER BY source_ip" \
"198.51.100.3|-|3|0|{null_sender}|t|64520|Hosting Co Net|DE|Hosting Co|Web Host
198.51.100.4|mx.example.net|5|5|{spf_domain_is_ptr}|f|64520|Hosting Co Net|DE|Hosting Co|Web Host
198.51.100.5|relay.example.org|6|0|{envelope_from_is_ptr}|t|64522|Org Net|NL|Our Relay|Self
2001:db8:5::6|v6.example.net|7|0|{spf_domain_is_ptr}|t|64530|Six Net|JP|-|-"

# ---- daily_sources (the rollups, as import and resolve left them): the
# failing and server-generated mail per day and IP
expect "daily_sources with AS, country and sender" \
	"SELECT day, policy_domain, org_name, host(source_ip), server_generated_reason, messages,
	        asn, as_name, country, sender_name, sender_type
	 FROM dmarc.daily_sources ORDER BY day, source_ip" \
"2026-01-10|example.com|Receiver A|198.51.100.2|-|4|64521|Unmapped Net|FR|-|-
2026-01-10|example.com|Receiver A|198.51.100.3|null_sender|3|64520|Hosting Co Net|DE|Hosting Co|Web Host
2026-01-10|example.com|Receiver A|198.51.100.4|spf_domain_is_ptr|5|64520|Hosting Co Net|DE|Hosting Co|Web Host
2026-01-10|example.com|Receiver A|198.51.100.5|envelope_from_is_ptr|6|64522|Org Net|NL|Our Relay|Self
2026-01-10|example.com|Receiver A|198.51.100.77|-|2|-|-|-|-|-
2026-01-11|example.com|Receiver B|198.51.100.4|-|2|64520|Hosting Co Net|DE|Hosting Co|Web Host
2026-01-11|example.com|Receiver B|2001:db8:5::6|spf_domain_is_ptr|7|64530|Six Net|JP|-|-"

# ---- record_days: the README's query, failing mail by sender and type
# (over fixed days here instead of the last 30)
expect "record_days: failing mail by sender and type" \
	"SELECT coalesce(sender_name, ptr_base_domain, 'AS' || asn || ' ' || as_name, host(source_ip)) AS sender,
	        sender_type, sum(messages) AS failing_messages, count(DISTINCT source_ip) AS source_ips
	 FROM dmarc.record_days
	 WHERE day BETWEEN '2026-01-10' AND '2026-01-12' AND NOT dmarc_pass
	 GROUP BY 1, 2 ORDER BY 3 DESC, 1" \
"example.net|-|7|1
Our Relay|Self|6|1
Hosting Co|Web Host|5|2
AS64521 Unmapped Net|-|4|1
198.51.100.77|-|2|1"

# ---- new_senders: per domain (lower case) and sender, newest first
expect "new_senders" \
	"SELECT * FROM dmarc.new_senders" \
"shop.example|Example Mail|Example Mail|Email Provider|2026-01-12 00:00:00+00|2026-01-12 23:59:59+00|1|1|1
example.com|example.net|-|-|2026-01-11 00:00:00+00|2026-01-11 23:59:59+00|1|7|0
example.com|198.51.100.77|-|-|2026-01-10 00:00:00+00|2026-01-10 23:59:59+00|1|2|0
example.com|AS64521 Unmapped Net|-|-|2026-01-10 00:00:00+00|2026-01-11 23:59:59+00|1|5|1
example.com|Example Mail|Example Mail|Email Provider|2026-01-10 00:00:00+00|2026-01-11 23:59:59+00|1|30|30
example.com|Hosting Co|Hosting Co|Web Host|2026-01-10 00:00:00+00|2026-01-11 23:59:59+00|2|10|5
example.com|Our Relay|Our Relay|Self|2026-01-10 00:00:00+00|2026-01-10 23:59:59+00|1|6|0"

# ---- a query that uses none of the new columns does not join for them
# (dmarc.senders reads dmarc.sender_current, whose primary key is
# base_domain, so PostgreSQL drops the joins):
# the panels' reads of daily_sources cost what they did in 1.0
plan=$(q -c "EXPLAIN (COSTS OFF) SELECT source_ip, messages FROM dmarc.daily_sources WHERE NOT dmarc_pass")
if grep -Eq 'ip_names|sender_map|sender_current' <<<"$plan"; then
	fail "daily_sources without the sender columns still joins:
$plan"
fi
plan=$(q -c "EXPLAIN (COSTS OFF) SELECT record_id, server_generated_reason FROM dmarc.record_details")
if [ "$(grep -c 'ip_names' <<<"$plan")" != 1 ] || grep -Eq 'sender_map|sender_current' <<<"$plan"; then
	fail "record_details without the sender columns joins more than 1.0's ip_names:
$plan"
fi
echo "ok - unused sender columns cost no join"

# ---- the map changes, the views follow at once (no rollup to rebuild)
run "senders unset" senders unset example.org
expect "after unset the file's name is the sender again" \
	"SELECT sender_name, sender_type, sender_basis FROM dmarc.ip_senders WHERE ip = '198.51.100.5'" \
	"Org Relay (file)|ISP|ptr"
expect "daily_sources follows" \
	"SELECT DISTINCT sender_name FROM dmarc.daily_sources WHERE source_ip = '198.51.100.5'" "Org Relay (file)"

# ---- a login in dmarc_reader reads the new views
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE ROLE it_reader LOGIN IN ROLE dmarc_reader" >/dev/null
expect "dmarc_reader reads the views with the new columns" \
	"SELECT (SELECT count(*) FROM dmarc.ip_senders), (SELECT count(*) FROM dmarc.new_senders),
	        (SELECT count(sender_name) FROM dmarc.record_details), (SELECT count(sender_name) FROM dmarc.record_days),
	        (SELECT count(sender_name) FROM dmarc.server_generated_sources),
	        (SELECT count(sender_name) FROM dmarc.daily_sources)" \
	"7|7|7|7|3|4" -U it_reader
if q -U it_reader -c "SELECT count(*) FROM dmarc.ip_names" >/dev/null 2>&1; then
	fail "dmarc_reader reads the table dmarc.ip_names"
fi
echo "ok - dmarc_reader still cannot read the table behind them"
echo "sender_views.sh: all ok"

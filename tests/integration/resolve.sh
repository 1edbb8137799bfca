#!/usr/bin/env bash
# resolve.sh - `dmarc-collector resolve` against a real dnsmasq and a DNS
# server that never answers, on a real PostgreSQL.
#
# Shows: an import completes while the DNS server is a black hole (resolving
# is not part of ingestion); resolve then stores 'timeout' for every IP and
# exits 75; failed lookups are not retried before [dns] retry_after and are
# retried after it; confirmed, unconfirmed (the name does not resolve back),
# NXDOMAIN, a PTR name that does not exist, IPv6, a mixed-case PTR name;
# 'ok' entries refreshed only after 30 days; a transient failure keeps the
# name already known; a dead resolver makes resolve give up after one window
# of lookups; check-config's DNS probe; a bad [dns] servers value.
set -euo pipefail
: "${DC_BIN:?DC_BIN must name the built program}" "${DC_SRC:?DC_SRC must name the source tree}"
data=$DC_SRC/tests/data/classify
tmp=$(mktemp -d /tmp/dc-it-resolve.XXXXXX)
chmod 755 "$tmp"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dnsmasq.sh"
cleanup() {
	dc_dns_blackhole_stop "$tmp/bh" || true
	dc_dns_stop "$tmp/dns" || true
	dc_pg_stop "$tmp/pg" || true
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "resolve.sh: FAIL: $*" >&2; exit 1; }
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
run() {  # CONFIG ARGS...: the program's exit status, output in $tmp/out
	local conf=$1 rc=0
	shift
	"$DC_BIN" --config "$conf" --db "$db" "$@" >"$tmp/out" 2>&1 || rc=$?
	return $rc
}
expect_rc() {  # NAME WANT CONFIG ARGS...
	local name=$1 want=$2 rc=0
	shift 2
	run "$@" || rc=$?
	[ "$rc" = "$want" ] || { cat "$tmp/out" >&2; fail "$name: exit $rc, want $want"; }
	echo "ok - $name (exit $rc)"
}

dc_pg_start "$tmp/pg"
dc_pg_newdb resolve
db="host=$PGHOST port=$PGPORT user=$PGUSER dbname=resolve"
dc_dns_start "$tmp/dns" "$data/dns.conf"
dc_dns_blackhole_start "$tmp/bh"

printf '[dns]\nservers = %s\ntimeout_ms = 200\nin_flight = 2\n' "$DC_DNS_SERVER" > "$tmp/dns.conf"   # in_flight: any limit gives the same names
printf '[dns]\nservers = %s\ntimeout_ms = 200\n' "$DC_DNS_BLACKHOLE" > "$tmp/blackhole.conf"
printf '[dns]\nservers = not-an-address:x\n' > "$tmp/bad.conf"

expect_rc "migrate" 0 "$tmp/dns.conf" migrate

# 1. Ingestion does not wait for DNS: the import stores everything while the
#    configured DNS server swallows every query, and looks nothing up.
expect_rc "import while DNS is a black hole" 0 "$tmp/blackhole.conf" import "$data/rules.xml"
expect "records stored" "SELECT count(*) FROM dmarc.records" "14"
expect "import does no lookups" "SELECT count(*) FROM dmarc.ip_names" "0"

# 2. resolve against the black hole: every distinct IP times out, is stored
#    as 'timeout' with no name, and the command exits 75 (DNS unreachable).
expect_rc "resolve against a black hole" 75 "$tmp/blackhole.conf" resolve
grep -q 'no DNS server answered' "$tmp/out" || fail "resolve did not say the DNS server was unreachable"
expect "every IP recorded as timeout" \
	"SELECT status, count(*), count(ptr) FROM dmarc.ip_names GROUP BY status" "timeout|13|0"

# 3. A failed lookup is not retried before retry_after (default one day)...
expect_rc "resolve again at once" 0 "$tmp/dns.conf" resolve
expect "timeouts not retried early" \
	"SELECT status, count(*) FROM dmarc.ip_names GROUP BY status" "timeout|13"

# 4. ...and is retried after it.
q "UPDATE dmarc.ip_names SET resolved_at = resolved_at - interval '25 hours'" >/dev/null
expect_rc "resolve after retry_after" 0 "$tmp/dns.conf" resolve
expect "statuses, names, confirmation" "
	SELECT host(ip), status, coalesce(ptr, '-'), coalesce(ptr_base_domain, '-'), forward_confirmed
	FROM dmarc.ip_names ORDER BY family(ip), ip" \
"192.0.2.10|ok|mail.example.com|example.com|t
192.0.2.11|ok|liar.example.net|example.net|f
192.0.2.12|nxdomain|-|-|f
192.0.2.13|ok|ghost.example.net|example.net|f
192.0.2.14|ok|mixed.example.com|example.com|t
192.0.2.20|ok|relay.example.org|example.org|t
192.0.2.30|ok|out.example.com|example.com|t
192.0.2.40|nxdomain|-|-|f
192.0.2.41|nxdomain|-|-|f
192.0.2.42|nxdomain|-|-|f
2001:db8::10|ok|mail.example.com|example.com|t
2001:db8::11|ok|v6only.example.org|example.org|t
2001:db8::12|nxdomain|-|-|f"

# 5. Fresh entries are left alone: an 'ok' entry is refreshed only after 30
#    days.  Tamper with two names; age one past 30 days, the other 29.
q "UPDATE dmarc.ip_names SET ptr = 'stale.example.com', resolved_at = now() - interval '31 days' WHERE ip = '192.0.2.10';
   UPDATE dmarc.ip_names SET ptr = 'kept.example.com', resolved_at = now() - interval '29 days' WHERE ip = '192.0.2.30'" >/dev/null
expect_rc "resolve refreshes old names" 0 "$tmp/dns.conf" resolve
expect "refresh after 30 days only" \
	"SELECT host(ip), ptr FROM dmarc.ip_names WHERE ip IN ('192.0.2.10', '192.0.2.30') ORDER BY ip" \
"192.0.2.10|mail.example.com
192.0.2.30|kept.example.com"

# 6. A second report whose IPs are all known and fresh: nothing is looked up.
before=$(q "SELECT string_agg(host(ip) || resolved_at::text, ',' ORDER BY ip) FROM dmarc.ip_names")
expect_rc "import a second report" 0 "$tmp/dns.conf" import "$data/multiday.xml"
expect_rc "resolve with nothing new" 0 "$tmp/dns.conf" resolve
after=$(q "SELECT string_agg(host(ip) || resolved_at::text, ',' ORDER BY ip) FROM dmarc.ip_names")
[ "$before" = "$after" ] || fail "resolve touched entries that were fresh"
echo "ok - fresh entries untouched"

# 7. A transient failure keeps the name already known: age everything past the
#    refresh time and resolve against the black hole.
q "UPDATE dmarc.ip_names SET resolved_at = now() - interval '40 days'" >/dev/null
expect_rc "resolve against a black hole again" 75 "$tmp/blackhole.conf" resolve
expect "timeout keeps the known name" \
	"SELECT status, ptr, forward_confirmed FROM dmarc.ip_names WHERE ip = '2001:db8::10'" \
	"timeout|mail.example.com|t"
expect "classification keeps working through a timeout" \
	"SELECT server_generated_reason FROM dmarc.record_details WHERE source_ip = '2001:db8::10'" \
	"spf_domain_is_ptr"

# 8. A dead resolver does not cost every IP its timeout: after a window of
#    lookups in a row without an answer (64, the lookups in flight), resolve
#    stops, stores what it tried and leaves the rest for the next run.
{
	printf '<?xml version="1.0"?>\n<feedback><report_metadata><org_name>Many</org_name><email>m@example.org</email>'
	printf '<report_id>many-1</report_id><date_range><begin>1714521600</begin><end>1714607999</end></date_range>'
	printf '</report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>\n'
	for i in $(seq 1 200); do
		printf '<record><row><source_ip>198.51.%d.%d</source_ip><count>1</count><policy_evaluated>' $((100 + i / 250)) $((i % 250))
		printf '<disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>'
		printf '<identifiers><header_from>example.com</header_from></identifiers>'
		printf '<auth_results><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record>\n'
	done
	printf '</feedback>\n'
} > "$tmp/many.xml"
expect_rc "import 200 new IPs" 0 "$tmp/dns.conf" import "$tmp/many.xml"
expect_rc "resolve against a black hole gives up early" 75 "$tmp/blackhole.conf" resolve
grep -q 'lookups in a row' "$tmp/out" || { cat "$tmp/out" >&2; fail "resolve did not say it gave up on the DNS server"; }
expect "gave up after one window, not 200 timeouts" "
	SELECT count(*) >= 64, count(*) < 200 FROM dmarc.ip_names WHERE ip << '198.51.0.0/16'" "t|t"
tried=$(q "SELECT count(*) FROM dmarc.ip_names WHERE ip << '198.51.0.0/16' AND status = 'timeout'")
expect_rc "the next run does the rest" 0 "$tmp/dns.conf" resolve
expect "the rest looked up, the timeouts wait for retry_after" "
	SELECT status, count(*) FROM dmarc.ip_names WHERE ip << '198.51.0.0/16' GROUP BY status ORDER BY status" \
"nxdomain|$((200 - tried))
timeout|$tried"

# 9. check-config's DNS probe: a server that answers, one that does not.
expect_rc "check-config with dnsmasq" 0 "$tmp/dns.conf" check-config
expect_rc "check-config with a black hole" 75 "$tmp/blackhole.conf" check-config
grep -q 'no answer' "$tmp/out" || fail "check-config did not name the DNS failure"

# 10. A [dns] servers value c-ares cannot read is a configuration error.
expect_rc "bad [dns] servers" 2 "$tmp/bad.conf" resolve

echo "resolve.sh: all passed"

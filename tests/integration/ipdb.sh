#!/usr/bin/env bash
# ipdb.sh - [enrich] asn_db and country_db: `resolve` stores the AS and the
# country of each source IP in dmarc.ip_names, from MaxMind DB files that
# tests/lib/write_mmdb.pl writes (libmaxmind-db-writer-perl), against a real
# dnsmasq and PostgreSQL.
#
# Shows: the GeoLite2-ASN and GeoLite2-Country layouts as two files (the
# country's fallback to registered_country), IPv4 and IPv6, IPs in no
# network (no data, not an error); the IPinfo Lite layout as one file for
# both ("AS64510" parsed, as_domain lower-cased); a changed file (new build
# epoch) re-enriches every IP on the next resolve without new DNS lookups,
# before any retry_after; a file that is not a MaxMind DB fails resolve.
# DB-IP Lite's files have GeoLite2's layout.
set -euo pipefail
: "${DC_BIN:?DC_BIN must name the built program}" "${DC_SRC:?DC_SRC must name the source tree}"
data=$DC_SRC/tests/data/classify
if ! perl -MMaxMind::DB::Writer::Tree -e 1 2>/dev/null; then
	echo "ipdb.sh: SKIP: MaxMind::DB::Writer::Tree missing (libmaxmind-db-writer-perl; scripts/install-deps.sh)"
	exit 77
fi
tmp=$(mktemp -d /tmp/dc-it-ipdb.XXXXXX)
chmod 755 "$tmp"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dnsmasq.sh"
cleanup() {
	dc_dns_stop "$tmp/dns" || true
	dc_pg_stop "$tmp/pg" || true
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "ipdb.sh: FAIL: $*" >&2; exit 1; }
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
expect_rc() {  # NAME WANT CONFIG ARGS...
	local name=$1 want=$2 conf=$3 rc=0
	shift 3
	"$DC_BIN" --config "$conf" --db "$db" "$@" >"$tmp/out" 2>&1 || rc=$?
	[ "$rc" = "$want" ] || { cat "$tmp/out" >&2; fail "$name: exit $rc, want $want"; }
	echo "ok - $name (exit $rc)"
}
mmdb() { perl "$DC_SRC/tests/lib/write_mmdb.pl" "$@" || fail "write_mmdb.pl $*"; }
conf() {  # FILE ASN_DB COUNTRY_DB (empty: not set)
	{
		printf '[dns]\nservers = %s\ntimeout_ms = 500\n' "$DC_DNS_SERVER"
		printf '[enrich]\n'
		[ -z "$2" ] || printf 'asn_db = %s\n' "$2"
		[ -z "$3" ] || printf 'country_db = %s\n' "$3"
	} > "$1"
}
# Every IP's enrichment, one line each.
enriched="SELECT host(ip), coalesce(asn::text, '-'), coalesce(as_name, '-'), coalesce(as_domain, '-'),
	coalesce(country, '-') FROM dmarc.ip_names ORDER BY family(ip), ip"

dc_pg_start "$tmp/pg"
dc_pg_newdb ipdb
db="host=$PGHOST port=$PGPORT user=$PGUSER dbname=ipdb"
dc_dns_start "$tmp/dns" "$data/dns.conf"

mmdb geolite2-asn "$tmp/asn.mmdb" 1700000000
mmdb geolite2-country "$tmp/country.mmdb" 1700000100
mmdb ipinfo-lite "$tmp/ipinfo.mmdb" 1700000200
conf "$tmp/none.conf" "" ""
conf "$tmp/geolite.conf" "$tmp/asn.mmdb" "$tmp/country.mmdb"
conf "$tmp/ipinfo.conf" "$tmp/ipinfo.mmdb" "$tmp/ipinfo.mmdb"
conf "$tmp/asnonly.conf" "$tmp/asn.mmdb" ""

expect_rc "migrate" 0 "$tmp/none.conf" migrate
expect_rc "import" 0 "$tmp/none.conf" import "$data/rules.xml"

# 1. GeoLite2-ASN + GeoLite2-Country, looked up with the names.  192.0.2.0/28
#    and .16/28 have an AS, 192.0.2.32 and up none; the country file covers
#    192.0.2.0/27 (country DE) and 2001:db8::/32 (only registered_country NL).
expect_rc "resolve with GeoLite2 files" 0 "$tmp/geolite.conf" resolve
grep -q '13 IPs looked up in the IP databases' "$tmp/out" || { cat "$tmp/out"; fail "no enrichment summary"; }
expect "GeoLite2 layout, IPv4 and IPv6, IPs in no network" "$enriched" \
"192.0.2.10|64500|Example Mail GmbH ä|-|DE
192.0.2.11|64500|Example Mail GmbH ä|-|DE
192.0.2.12|64500|Example Mail GmbH ä|-|DE
192.0.2.13|64500|Example Mail GmbH ä|-|DE
192.0.2.14|64500|Example Mail GmbH ä|-|DE
192.0.2.20|64501|Relay Org|-|DE
192.0.2.30|64501|Relay Org|-|DE
192.0.2.40|-|-|-|-
192.0.2.41|-|-|-|-
192.0.2.42|-|-|-|-
2001:db8::10|64502|V6 Net|-|NL
2001:db8::11|64502|V6 Net|-|NL
2001:db8::12|64502|V6 Net|-|NL"
expect "names stored as before" \
	"SELECT count(*) FILTER (WHERE status = 'ok'), count(*) FILTER (WHERE forward_confirmed) FROM dmarc.ip_names" "8|6"
expect "epochs of both files recorded" \
	"SELECT DISTINCT asn_db_epoch, country_db_epoch FROM dmarc.ip_names" "1700000000|1700000100"
resolved=$(q "SELECT string_agg(host(ip) || resolved_at::text, ',' ORDER BY ip) FROM dmarc.ip_names")

# 2. Nothing changed: nothing is looked up again.
expect_rc "resolve again, same files" 0 "$tmp/geolite.conf" resolve
grep -q ' 0 IPs looked up in the IP databases' "$tmp/out" || { cat "$tmp/out"; fail "looked up again"; }

# 3. IPinfo Lite, one file for both: every IP's epoch differs, so all are
#    looked up again, without DNS (resolved_at unchanged).
expect_rc "resolve with the IPinfo Lite file" 0 "$tmp/ipinfo.conf" resolve
expect "IPinfo Lite layout: AS parsed, as_domain, country_code" "$enriched" \
"192.0.2.10|64510|Info Net|example.net|FR
192.0.2.11|64510|Info Net|example.net|FR
192.0.2.12|64510|Info Net|example.net|FR
192.0.2.13|64510|Info Net|example.net|FR
192.0.2.14|64510|Info Net|example.net|FR
192.0.2.20|64510|Info Net|example.net|FR
192.0.2.30|64510|Info Net|example.net|FR
192.0.2.40|-|-|-|-
192.0.2.41|-|-|-|-
192.0.2.42|-|-|-|-
2001:db8::10|64511|Info V6|v6.example.org|JP
2001:db8::11|64511|Info V6|v6.example.org|JP
2001:db8::12|64511|Info V6|v6.example.org|JP"
expect "one file: one epoch for both" \
	"SELECT DISTINCT asn_db_epoch, country_db_epoch FROM dmarc.ip_names" "1700000200|1700000200"
after=$(q "SELECT string_agg(host(ip) || resolved_at::text, ',' ORDER BY ip) FROM dmarc.ip_names")
[ "$resolved" = "$after" ] || fail "re-enriching looked names up again"
echo "ok - re-enriched without DNS lookups"

# 4. A changed ASN file (new build epoch, 192.0.2.0/28 now AS64600) and no
#    country_db: the AS columns follow the new file, country stays as it was,
#    long before retry_after (one day).
mmdb geolite2-asn-changed "$tmp/asn.mmdb" 1700086400
expect_rc "resolve after the file changed" 0 "$tmp/asnonly.conf" resolve
expect "changed file applied, country kept" "$enriched" \
"192.0.2.10|64600|Changed Net|-|FR
192.0.2.11|64600|Changed Net|-|FR
192.0.2.12|64600|Changed Net|-|FR
192.0.2.13|64600|Changed Net|-|FR
192.0.2.14|64600|Changed Net|-|FR
192.0.2.20|64501|Relay Org|-|FR
192.0.2.30|64501|Relay Org|-|FR
192.0.2.40|-|-|-|-
192.0.2.41|-|-|-|-
192.0.2.42|-|-|-|-
2001:db8::10|64502|V6 Net|-|JP
2001:db8::11|64502|V6 Net|-|JP
2001:db8::12|64502|V6 Net|-|JP"
expect "new ASN epoch, country epoch kept" \
	"SELECT DISTINCT asn_db_epoch, country_db_epoch FROM dmarc.ip_names" "1700086400|1700000200"

# 5. A new IP is looked up with its name: the second report's IPs.
expect_rc "import a second report" 0 "$tmp/none.conf" import "$data/multiday.xml"
expect_rc "resolve new IPs" 0 "$tmp/geolite.conf" resolve
expect "no IP left without the current epochs" \
	"SELECT count(*) FROM dmarc.ip_names WHERE asn_db_epoch IS DISTINCT FROM 1700086400
	   OR country_db_epoch IS DISTINCT FROM 1700000100" "0"

# 6. A file that is not a MaxMind DB, or is missing: resolve fails with a
#    configuration error (2) naming the key; check-config opens the files.
printf 'not a database\n' > "$tmp/bad.mmdb"
conf "$tmp/bad.conf" "$tmp/bad.mmdb" ""
conf "$tmp/missing.conf" "" "$tmp/missing.mmdb"
expect_rc "resolve with a file that is not a MaxMind DB" 2 "$tmp/bad.conf" resolve
grep -q 'asn_db: .*bad.mmdb' "$tmp/out" || { cat "$tmp/out"; fail "the error does not name the file"; }
expect_rc "resolve with a missing file" 2 "$tmp/missing.conf" resolve
grep -q 'country_db: .*missing.mmdb' "$tmp/out" || { cat "$tmp/out"; fail "the error does not name the file"; }
expect_rc "check-config with a bad file" 2 "$tmp/bad.conf" check-config
grep -q 'asn_db: .*bad.mmdb' "$tmp/out" || { cat "$tmp/out"; fail "check-config: no error for the file"; }
expect_rc "check-config with the GeoLite2 files" 0 "$tmp/geolite.conf" check-config
grep -q 'asn_db: .*asn.mmdb, GeoLite2-ASN, built 1700086400' "$tmp/out" &&
	grep -q 'country_db: .*country.mmdb, GeoLite2-Country, built 1700000100' "$tmp/out" ||
	{ cat "$tmp/out"; fail "check-config did not describe the files"; }
echo "ipdb.sh: all ok"

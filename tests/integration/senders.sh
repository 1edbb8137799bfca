#!/usr/bin/env bash
# senders.sh - the sender map: `senders load FILE [--source NAME]`,
# `senders set DOMAIN NAME TYPE`, `senders unset DOMAIN` and the view
# dmarc.senders, on a real PostgreSQL.
#
# Shows: a file in parsedmarc's format with a UTF-8 byte order mark, CRLF
# line ends, quoted fields holding commas and doubled quotes, a non-ASCII
# name, mixed-case domains with a trailing dot and a domain given twice
# (the last row wins) is stored as it means; the source is the file's base
# name; loading a second version of that source replaces its rows (and only
# them); a local override wins in dmarc.senders, and unset brings the
# file's row back; a later source wins over an earlier one; an unterminated
# quote, invalid UTF-8, a wrong header, an empty name and an empty file each
# exit 2 with one line naming the file's line, and change nothing; a login
# in dmarc_writer loads, sets and unsets, a login in dmarc_reader reads
# dmarc.senders but not the table.  After every change to the map,
# dmarc.sender_current (kept by triggers) holds what the rule gives, computed
# here from dmarc.sender_map with the DISTINCT ON of the former view: after
# loads, reloads, set, unset, failed loads, an UPDATE moving a row to
# another domain and a TRUNCATE.
set -euo pipefail
: "${DC_BIN:?DC_BIN must name the built program}" "${DC_SRC:?DC_SRC must name the source tree}"
tmp=$(mktemp -d /tmp/dc-it-senders.XXXXXX)
chmod 755 "$tmp"
. "$DC_SRC/tests/lib/pg.sh"
cleanup() {
	dc_pg_stop "$tmp/pg" || true
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "senders.sh: FAIL: $*" >&2; exit 1; }
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
expect_rc() {  # NAME WANT ARGS...: output in $tmp/out
	local name=$1 want=$2 rc=0
	shift 2
	"$DC_BIN" --db "$db" "$@" >"$tmp/out" 2>&1 || rc=$?
	[ "$rc" = "$want" ] || { cat "$tmp/out" >&2; fail "$name: exit $rc, want $want"; }
	echo "ok - $name (exit $rc)"
}
# the rule of dmarc.senders, straight from the map (the view before 008)
RULE="SELECT DISTINCT ON (base_domain) base_domain, name, type, source, loaded_at FROM dmarc.sender_map
      ORDER BY base_domain, (source = 'local') DESC, loaded_at DESC, source"
current_ok() {  # NAME [empty]: sender_current is the rule's result (not empty unless told)
	local want got
	want=$(q "$RULE") || fail "$1: the rule's query failed"
	got=$(q "SELECT base_domain, name, type, source, loaded_at FROM dmarc.sender_current ORDER BY base_domain") ||
		fail "$1: reading dmarc.sender_current failed"
	[ -n "$want" ] || [ "${2:-}" = empty ] || fail "$1: the map is empty"
	[ "$got" = "$want" ] || fail "$1: dmarc.sender_current is not the rule's result:
--- expected
$want
--- got
$got"
	echo "ok - $1: sender_current is the rule's result"
}
expect_out() {  # NAME REGEX: in $tmp/out
	grep -Eq -- "$2" "$tmp/out" || { cat "$tmp/out" >&2; fail "$1: output lacks /$2/"; }
	echo "ok - $1"
}

dc_pg_start "$tmp/pg"
dc_pg_newdb senders
db="host=$PGHOST port=$PGPORT user=$PGUSER dbname=senders"
expect_rc "migrate" 0 migrate
MAP="SELECT base_domain, name, type, source FROM dmarc.sender_map ORDER BY source, base_domain"
WIN="SELECT base_domain, name, type, source FROM dmarc.senders ORDER BY base_domain"

# ---- a first file: BOM, CRLF, quoting, UTF-8, case, trailing dot, a duplicate
printf '\xef\xbb\xbfbase_reverse_dns,name,type\r\n' >"$tmp/base_reverse_dns_map.csv"
printf 'google.com,Google,Email Provider\r\n' >>"$tmp/base_reverse_dns_map.csv"
printf 'Example.NET.,"Example, Inc.","Marketing, Email"\r\n' >>"$tmp/base_reverse_dns_map.csv"
printf 'quote.example,"The ""Best"" Mail",ISP\r\n' >>"$tmp/base_reverse_dns_map.csv"
printf 'muenchen.example,M\xc3\xbcnchen Stadtwerke \xe2\x80\x93 Mail,Government\r\n' >>"$tmp/base_reverse_dns_map.csv"
printf 'dup.example,First,ISP\r\n' >>"$tmp/base_reverse_dns_map.csv"
printf 'notype.example,No Type,\r\n' >>"$tmp/base_reverse_dns_map.csv"
printf 'DUP.example,Second,ISP\r\n' >>"$tmp/base_reverse_dns_map.csv"
expect_rc "load a file with a BOM, CRLF and quoting" 0 senders load "$tmp/base_reverse_dns_map.csv"
expect_out "summary line" "senders: 7 rows loaded from .*base_reverse_dns_map.csv \(source base_reverse_dns_map\): 6 domains, 0 replaced, 6 new, 0 removed, 1 duplicate rows"
expect "rows as the file means them" "$MAP" "dup.example|Second|ISP|base_reverse_dns_map
example.net|Example, Inc.|Marketing, Email|base_reverse_dns_map
google.com|Google|Email Provider|base_reverse_dns_map
muenchen.example|München Stadtwerke – Mail|Government|base_reverse_dns_map
notype.example|No Type||base_reverse_dns_map
quote.example|The \"Best\" Mail|ISP|base_reverse_dns_map"
current_ok "first load"

# ---- another source, then a second version of the first (LF, no BOM)
printf 'base_reverse_dns,name,type\ngoogle.com,Google Workspace (mine),Email Provider\nmine.example,Mine,Self\n' >"$tmp/own.csv"
expect_rc "load a second source" 0 senders load "$tmp/own.csv" --source own
expect "the later source wins in dmarc.senders" \
	"SELECT name, source FROM dmarc.senders WHERE base_domain = 'google.com'" "Google Workspace (mine)|own"
current_ok "a second source"
printf 'base_reverse_dns,name,type\ngoogle.com,Google,Email Provider\nnew.example,New,ISP\nquote.example,"Quote ""2""",ISP\n' \
	>"$tmp/v2.csv"
expect_rc "load version 2 of the first source" 0 senders load "$tmp/v2.csv" --source=base_reverse_dns_map
expect_out "summary of version 2" "3 rows loaded .* \(source base_reverse_dns_map\): 3 domains, 2 replaced, 1 new, 4 removed, 0 duplicate rows"
expect "version 2 replaced the source's rows, the other source untouched" "$MAP" "google.com|Google|Email Provider|base_reverse_dns_map
new.example|New|ISP|base_reverse_dns_map
quote.example|Quote \"2\"|ISP|base_reverse_dns_map
google.com|Google Workspace (mine)|Email Provider|own
mine.example|Mine|Self|own"
expect "reloaded last, the first source wins now" \
	"SELECT name, source FROM dmarc.senders WHERE base_domain = 'google.com'" "Google|base_reverse_dns_map"
current_ok "a reload that replaces and removes rows"

# ---- local overrides
expect_rc "set" 0 senders set Google.COM. "Our Google" "Email Provider"
expect_out "set says added" "added the local override for Google.COM.: Our Google \(Email Provider\)"
expect_rc "set again" 0 senders set google.com "Our Google (2)" "Email Provider"
expect_out "set says replaced" "replaced the local override"
current_ok "set, set again"
expect "the local override wins" "$WIN" "google.com|Our Google (2)|Email Provider|local
mine.example|Mine|Self|own
new.example|New|ISP|base_reverse_dns_map
quote.example|Quote \"2\"|ISP|base_reverse_dns_map"
expect_rc "a file reloaded after the override" 0 senders load "$tmp/v2.csv" --source base_reverse_dns_map
expect "the local override still wins" \
	"SELECT name, source FROM dmarc.senders WHERE base_domain = 'google.com'" "Our Google (2)|local"
current_ok "a reload under an override"
expect_rc "set with an empty name" 2 senders set x.example "" ISP
expect_rc "set with a space in the domain" 2 senders set "x example" X ISP
expect_rc "unset" 0 senders unset GOOGLE.com
expect_out "unset says removed" "removed the local override for GOOGLE.com"
current_ok "unset"
expect "after unset the file's row is back" \
	"SELECT name, source FROM dmarc.senders WHERE base_domain = 'google.com'" "Google|base_reverse_dns_map"
expect_rc "unset again" 0 senders unset google.com
expect_out "unset again says none" "there was no local override for google.com"

# ---- bad files: exit 2, the line named, nothing changed
before=$(q "SELECT base_domain, name, type, source, loaded_at FROM dmarc.sender_map ORDER BY 1, 4")
bad() {  # NAME REGEX: the file $tmp/bad.csv
	expect_rc "$1" 2 senders load "$tmp/bad.csv" --source base_reverse_dns_map
	expect_out "$1: the reason" "$2"
	[ "$(grep -c . "$tmp/out")" = 1 ] || { cat "$tmp/out" >&2; fail "$1: not one line"; }
	sed 's/^/    /' "$tmp/out"
	[ "$(q "SELECT base_domain, name, type, source, loaded_at FROM dmarc.sender_map ORDER BY 1, 4")" = "$before" ] \
		|| fail "$1: the map changed"
	echo "ok - $1: nothing changed"
}
printf 'base_reverse_dns,name,type\r\na.example,A,ISP\r\nb.example,"B unterminated,ISP\r\nc.example,C,ISP\r\n' >"$tmp/bad.csv"
bad "an unterminated quote" "senders: .*bad.csv: line [0-9]+: unterminated CSV quoted field"
printf 'base_reverse_dns,name,type\na.example,A,ISP\nb.example,B\xff,ISP\n' >"$tmp/bad.csv"
bad "invalid UTF-8" "senders: .*bad.csv: line 3: invalid byte sequence for encoding \"UTF8\": 0xff"
printf 'domain,name,type\na.example,A,ISP\n' >"$tmp/bad.csv"
bad "a wrong header" "senders: .*bad.csv: line 1: .*header"
printf 'base_reverse_dns,name,type\na.example,A,ISP\nb.example,A,ISP,extra\n' >"$tmp/bad.csv"
bad "an extra column" "senders: .*bad.csv: line 3: extra data after last expected column"
printf 'base_reverse_dns,name,type\na.example,A,ISP\n"two\nlines.example",A,ISP\nb.example,,ISP\n' >"$tmp/bad.csv"
bad "a domain spanning lines" "senders: .*bad.csv: line 3: base_reverse_dns holds a space or control character"
printf 'base_reverse_dns,name,type\na.example,A,ISP\nb.example,  ,ISP\n' >"$tmp/bad.csv"
bad "an empty name" "senders: .*bad.csv: line 3: empty name"
printf 'base_reverse_dns,name,type\na.example,A,ISP\n,B,ISP\n' >"$tmp/bad.csv"
bad "an empty domain" "senders: .*bad.csv: line 3: empty base_reverse_dns"
printf '\xef\xbb\xbfbase_reverse_dns,name,type\r\n' >"$tmp/bad.csv"
bad "no rows" "senders: .*bad.csv: no rows after the header"
expect_rc "a file that does not exist" 2 senders load "$tmp/none.csv"
expect_out "a file that does not exist: the reason" "senders: .*none.csv: No such file or directory"
expect_rc "a file over 64 MiB" 2 senders load /dev/zero
expect_out "a file over 64 MiB: the reason" "larger than 64 MiB"
current_ok "failed loads"
expect_rc "load without FILE" 2 senders load
expect_rc "an unknown subcommand" 2 senders list

# ---- roles: the writer loads, the reader reads the view only
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE ROLE it_writer LOGIN IN ROLE dmarc_writer" \
	-c "CREATE ROLE it_reader LOGIN IN ROLE dmarc_reader" >/dev/null
rc=0
"$DC_BIN" --db "host=$PGHOST port=$PGPORT user=it_writer dbname=senders" senders load "$tmp/own.csv" \
	>"$tmp/out" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$tmp/out" >&2; fail "a dmarc_writer login cannot load (exit $rc)"; }
echo "ok - a dmarc_writer login loads"
current_ok "a load by dmarc_writer"
for args in "set writer.example Writer ISP" "set mine.example Mine2 Self" "unset mine.example"; do
	rc=0
	# shellcheck disable=SC2086 # the words of $args are the arguments
	"$DC_BIN" --db "host=$PGHOST port=$PGPORT user=it_writer dbname=senders" senders $args >"$tmp/out" 2>&1 || rc=$?
	[ $rc = 0 ] || { cat "$tmp/out" >&2; fail "a dmarc_writer login cannot senders $args (exit $rc)"; }
	current_ok "senders $args by dmarc_writer"
done
n=$(psql -X -At -U it_reader -c "SELECT count(*) FROM dmarc.senders") || fail "dmarc_reader cannot read dmarc.senders"
[ "$n" = 5 ] || fail "dmarc_reader reads $n rows of dmarc.senders, want 5"
echo "ok - dmarc_reader reads dmarc.senders"
if psql -X -At -U it_reader -c "SELECT count(*) FROM dmarc.sender_map" >/dev/null 2>&1; then
	fail "dmarc_reader reads the table dmarc.sender_map"
fi
echo "ok - dmarc_reader cannot read the table"
if psql -X -At -U it_reader -c "SELECT count(*) FROM dmarc.sender_current" >/dev/null 2>&1; then
	fail "dmarc_reader reads the table dmarc.sender_current"
fi
echo "ok - dmarc_reader cannot read dmarc.sender_current"

# ---- changes no command makes: an UPDATE that moves rows to another
# domain (both domains recomputed), a TRUNCATE
q "UPDATE dmarc.sender_map SET base_domain = 'moved.example' WHERE base_domain = 'google.com' AND source = 'own'" >/dev/null
expect "the moved row" "SELECT name, source FROM dmarc.senders WHERE base_domain IN ('google.com', 'moved.example') ORDER BY 1" \
	"Google|base_reverse_dns_map
Google Workspace (mine)|own"
current_ok "an UPDATE of base_domain"
# ---- a database from before migration 008, its map already filled: back
# to that schema (no sender_current, no triggers, the former dmarc.senders
# and the views on it to be made again), rows added meanwhile, then migrate
psql -X -q -v ON_ERROR_STOP=1 -c "DROP TABLE dmarc.sender_current CASCADE" \
	-c "DROP FUNCTION dmarc.sender_map_changed() CASCADE" -c "DROP FUNCTION dmarc.sender_current_sync(text[])" \
	-c "DELETE FROM dmarc.schema_migrations WHERE name = '008_sender_current.sql'" \
	-c "DELETE FROM dmarc.schema_objects" \
	-c "INSERT INTO dmarc.sender_map (base_domain, name, type, source) VALUES ('old.example', 'Old', 'ISP', 'local'),
	    ('new.example', 'New (local)', 'ISP', 'local')" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; fail "back to 007"; }
expect_rc "migrate a database from before 008" 0 migrate
current_ok "migration 008 on a filled map"
expect "the view reads it" "SELECT name FROM dmarc.senders WHERE base_domain = 'new.example'" "New (local)"
q "TRUNCATE dmarc.sender_map" >/dev/null
current_ok "TRUNCATE" empty
expect "TRUNCATE empties dmarc.senders" "SELECT count(*) FROM dmarc.senders" 0
echo "senders.sh: all passed"

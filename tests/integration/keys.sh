#!/bin/bash
# keys.sh - the scale-out keys of schema 1.0 (issue 11, SPEC section 8),
# checked in the catalog of a freshly migrated database:
#   * dmarc.reports and dmarc.records are range-partitioned on date_begin;
#   * every primary key and unique constraint or index on them (and on each
#     of their partitions) contains date_begin, the partition column, and
#     policy_domain, the column a distributed PostgreSQL (Citus) would
#     shard on, so `create_distributed_table('dmarc.reports', 'policy_domain')`
#     and the same for records would accept them;
#   * records has no foreign key, and the only one of reports is
#     original_id -> originals (docs/README-storage.md says what to do
#     with it on Citus);
#   * a report month written by `import` lands in its own partition.
set -euo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg"
dc_pg_newdb keys
"$DC_BIN" -q --db "dbname=keys" migrate

fail=0
q() { psql -X -At -v ON_ERROR_STOP=1 -d keys -c "$1"; }
check() {  # what, got, want
  if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: got [$2], want [$3]"; fail=1; fi
}

check "partitioned on date_begin" \
  "$(q "SELECT string_agg(c.relname || ':' || pg_get_partkeydef(c.oid), ' ' ORDER BY c.relname)
        FROM pg_class c WHERE c.relnamespace = 'dmarc'::regnamespace AND c.relkind = 'p'")" \
  "records:RANGE (date_begin) reports:RANGE (date_begin)"

# every unique index (primary keys and unique constraints have one) on the
# two tables and on their partitions, with the columns it covers
keys=$(q "SELECT i.indexrelid::regclass || ':' ||
                 (SELECT string_agg(a.attname, ',' ORDER BY a.attname) FROM pg_attribute a
                  WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey))
          FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
          WHERE i.indisunique AND t.relnamespace = 'dmarc'::regnamespace
            AND (t.relname IN ('reports', 'records') OR t.relname ~ '^(reports|records)_(default|[0-9]{4}_[0-9]{2})$')
          ORDER BY 1")
[ -n "$keys" ] || { echo "FAIL: no unique index found at all"; fail=1; }
bad=$(grep -Ev ':([a-z_]+,)*date_begin(,[a-z_]+)*$' <<<"$keys" || true)
check "every unique key contains date_begin" "$bad" ""
bad=$(grep -Ev ':([a-z_]+,)*policy_domain(,[a-z_]+)*$' <<<"$keys" || true)
check "every unique key contains policy_domain" "$bad" ""
check "unique keys of the parents" \
  "$(grep -E '^dmarc\.(reports|records)_(pkey|unique_report):' <<<"$keys" | tr '\n' ' ')" \
  "dmarc.reports_pkey:date_begin,id,policy_domain dmarc.reports_unique_report:date_begin,date_end,org_name,policy_domain,report_id "

check "foreign keys of the report tables" \
  "$(q "SELECT string_agg(conrelid::regclass || '->' || confrelid::regclass, ' ' ORDER BY 1)
        FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('dmarc.reports'::regclass, 'dmarc.records'::regclass)")" \
  "dmarc.reports->dmarc.originals"

# a report of an old month goes into that month's partition
cat > "$tmp/old.xml" <<'XML'
<?xml version="1.0"?>
<feedback><report_metadata><org_name>keys.example</org_name><email>r@keys.example</email>
<report_id>keys-1</report_id><date_range><begin>1588291200</begin><end>1588377599</end></date_range></report_metadata>
<policy_published><domain>example.com</domain><p>none</p></policy_published>
<record><row><source_ip>192.0.2.7</source_ip><count>3</count><policy_evaluated><disposition>none</disposition>
<dkim>pass</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers>
<auth_results><dkim><domain>example.com</domain><result>pass</result></dkim><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record>
</feedback>
XML
"$DC_BIN" -q --db "dbname=keys" import "$tmp/old.xml"
check "the report's partition" "$(q "SELECT tableoid::regclass FROM dmarc.reports")" "dmarc.reports_2020_05"
check "its records' partition" "$(q "SELECT tableoid::regclass FROM dmarc.records")" "dmarc.records_2020_05"
check "nothing in the default partitions" \
  "$(q "SELECT (SELECT count(*) FROM dmarc.reports_default) + (SELECT count(*) FROM dmarc.records_default)")" "0"

exit $fail

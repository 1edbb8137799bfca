#!/usr/bin/env python3
"""Generates one DMARC aggregate report with N records (default 1,000,000).

Usage: gen_report.py N OUT.xml [TSVDIR REPORT_DB_ID]
With TSVDIR, also writes the same records as records.tsv, one line per record in the
column order of bench/import.sh's flat table (dmarc.records' columns, the first DKIM
and SPF result inline, as the writer stores them), for the `psql \copy` baseline
(record ids 1..N, report id REPORT_DB_ID).
Records are shaped like a large receiver's: distinct source IPs, one DKIM and one
SPF result each, a mix of regular and server-generated mail.  Deterministic.
"""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
out = sys.argv[2] if len(sys.argv) > 2 else "report.xml"
T0 = 1764115200
tsv = sys.argv[3] if len(sys.argv) > 3 else None
rep = sys.argv[4] if len(sys.argv) > 4 else "1"
if tsv:
    import os
    begin = "2025-11-26 00:00:00+00"
    ft = open(os.path.join(tsv, "records.tsv"), "w", buffering=1 << 20)
with open(out, "w", buffering=1 << 20) as f:
    w = f.write
    w('<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n  <report_metadata>\n'
      '    <org_name>bench.example</org_name>\n    <email>dmarc@bench.example</email>\n'
      f'    <report_id>bench-{n}</report_id>\n    <date_range>\n      <begin>{T0}</begin>\n'
      f'      <end>{T0 + 86399}</end>\n    </date_range>\n  </report_metadata>\n'
      '  <policy_published>\n    <domain>example.com</domain>\n    <adkim>r</adkim>\n'
      '    <aspf>r</aspf>\n    <p>reject</p>\n    <sp>reject</sp>\n    <pct>100</pct>\n'
      '  </policy_published>\n')
    for i in range(n):
        ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        if i % 10 == 0:
            env, scope, spfdom = "", "helo", f"host{i}.example.com"
        else:
            env, scope, spfdom = "example.com", "mfrom", "example.com"
        dkim = "pass" if i % 7 else "fail"
        if tsv:
            rid = i + 1
            # id, report_id, date_begin, policy_domain, ordinal, source_ip, message_count,
            # disposition, dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to,
            # reasons, dkim_count, spf_count, dkim_*, spf_*, dkim_more, spf_more
            ft.write(f"{rid}\t{rep}\t{begin}\texample.com\t{rid}\t{ip}\t{1 + i % 50}\tnone\t{dkim}\tpass\t"
                     f"example.com\t{env}\t\\N\t\\N\t1\t1\texample.com\ts1\t{dkim}\t\\N\t"
                     f"{spfdom}\t{scope}\tpass\t\\N\t\\N\t\\N\n")
        w('  <record>\n    <row>\n'
          f'      <source_ip>{ip}</source_ip>\n      <count>{1 + i % 50}</count>\n'
          '      <policy_evaluated>\n        <disposition>none</disposition>\n'
          f'        <dkim>{dkim}</dkim>\n        <spf>pass</spf>\n      </policy_evaluated>\n'
          '    </row>\n    <identifiers>\n      <header_from>example.com</header_from>\n'
          f'      <envelope_from>{env}</envelope_from>\n    </identifiers>\n'
          '    <auth_results>\n      <dkim>\n        <domain>example.com</domain>\n'
          f'        <selector>s1</selector>\n        <result>{dkim}</result>\n      </dkim>\n'
          f'      <spf>\n        <domain>{spfdom}</domain>\n        <scope>{scope}</scope>\n'
          '        <result>pass</result>\n      </spf>\n    </auth_results>\n  </record>\n')
    w('</feedback>\n')
if tsv:
    ft.close()

#!/usr/bin/env python3
"""Writes a synthetic DMARC aggregate report with N records to stdout, for
measuring dc_xml against `xmllint --stream --noout` (docs/README-xml.md):

    python3 gen_report.py 1000000 > big.xml     # 673 MB

Every 5th source is IPv6, every 3rd record has an empty envelope_from and an
SPF result with scope helo; counts cycle 1..9 (total 4,999,996 for 1M)."""
import sys
n = int(sys.argv[1])
out = sys.stdout
out.write('<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n  <version>1.0</version>\n  <report_metadata>\n    <org_name>bench.example</org_name>\n    <email>dmarc@bench.example</email>\n    <report_id>bench-1</report_id>\n    <date_range>\n      <begin>1700000000</begin>\n      <end>1700086399</end>\n    </date_range>\n  </report_metadata>\n  <policy_published>\n    <domain>example.com</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>none</p>\n    <sp>none</sp>\n    <pct>100</pct>\n  </policy_published>\n')
tmpl = '''  <record>
    <row>
      <source_ip>%s</source_ip>
      <count>%d</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>example.com</header_from>
      <envelope_from>%s</envelope_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>example.com</domain>
        <selector>s%d</selector>
        <result>pass</result>
      </dkim>
      <spf>
        <domain>mx%d.example.net</domain>
        <scope>%s</scope>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
'''
buf = []
for i in range(n):
    ip = '10.%d.%d.%d' % ((i >> 16) & 255, (i >> 8) & 255, i & 255) if i % 5 else '2001:db8::%x:%x' % (i >> 16, i & 0xffff)
    buf.append(tmpl % (ip, i % 9 + 1, '' if i % 3 == 0 else 'bounce.example.com', i % 4, i % 100, 'helo' if i % 3 == 0 else 'mfrom'))
    if len(buf) >= 10000:
        out.write(''.join(buf)); buf = []
out.write(''.join(buf))
out.write('</feedback>\n')

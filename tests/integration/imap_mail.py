#!/usr/bin/env python3
"""Report e-mails for the IMAP tests and bench/imap.sh (deterministic).

  imap_mail.py reports DIR N [RECORDS] [TAG]
      N aggregate-report e-mails in DIR (0001.eml ...), each with one report of
      RECORDS records (default 5), alternately gzip and zip attachments.  Report i
      has report_id TAG-i (TAG default "imap"), org_name gen.example, and
      Message-ID <TAG-i@gen.example>; the Subject carries the Report-ID so a test
      can tell which report a message in a folder holds.
  imap_mail.py several OUT XML...
      one e-mail holding every XML file given, as a plain application/xml
      attachment, a gzip and a zip in turn (several reports in one message).
"""
import email.utils
import gzip
import io
import os
import sys
import zipfile
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

T0 = 1764115200  # 2025-11-26 00:00:00 UTC


def report_xml(tag, i, records):
    day = T0 + 86400 * (i % 30)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n  <report_metadata>\n'
           '    <org_name>gen.example</org_name>\n    <email>noreply-dmarc@gen.example</email>\n'
           f'    <report_id>{tag}-{i}</report_id>\n    <date_range>\n      <begin>{day}</begin>\n'
           f'      <end>{day + 86399}</end>\n    </date_range>\n  </report_metadata>\n'
           '  <policy_published>\n    <domain>example.com</domain>\n    <adkim>r</adkim>\n'
           '    <aspf>r</aspf>\n    <p>none</p>\n    <sp>none</sp>\n    <pct>100</pct>\n'
           '  </policy_published>\n']
    for r in range(records):
        ip = f"192.0.2.{(i * records + r) % 250 + 1}"
        helo = r % 3 == 0
        env = "" if helo else "example.com"
        spfdom = f"mx{r}.example.com" if helo else "example.com"
        scope = "helo" if helo else "mfrom"
        out.append('  <record>\n    <row>\n'
                   f'      <source_ip>{ip}</source_ip>\n      <count>{1 + (i + r) % 20}</count>\n'
                   '      <policy_evaluated>\n        <disposition>none</disposition>\n'
                   f'        <dkim>{"pass" if r % 2 else "fail"}</dkim>\n        <spf>pass</spf>\n'
                   '      </policy_evaluated>\n    </row>\n    <identifiers>\n'
                   f'      <header_from>example.com</header_from>\n      <envelope_from>{env}</envelope_from>\n'
                   '    </identifiers>\n    <auth_results>\n      <dkim>\n'
                   f'        <domain>example.com</domain>\n        <selector>s{r}</selector>\n'
                   f'        <result>{"pass" if r % 2 else "fail"}</result>\n      </dkim>\n'
                   f'      <spf>\n        <domain>{spfdom}</domain>\n        <scope>{scope}</scope>\n'
                   '        <result>pass</result>\n      </spf>\n    </auth_results>\n  </record>\n')
    out.append('</feedback>\n')
    return "".join(out).encode()


def gz(data):
    return gzip.compress(data, mtime=0)


def zipped(name, data):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        zi = zipfile.ZipInfo(name, date_time=(2025, 11, 26, 0, 0, 0))
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, data)
    return b.getvalue()


def message(subject, msgid, parts):
    m = MIMEMultipart()
    m["From"] = "DMARC Reports <noreply-dmarc@gen.example>"
    m["To"] = "rua@example.com"
    m["Subject"] = subject
    m["Date"] = email.utils.formatdate(T0, usegmt=True)
    m["Message-ID"] = msgid
    m.attach(MIMEText("This is an aggregate DMARC report.\n"))
    for ctype, name, data in parts:
        a = MIMEApplication(data, ctype.split("/")[1])
        a.add_header("Content-Disposition", "attachment", filename=name)
        m.attach(a)
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def reports(d, n, records=5, tag="imap"):
    os.makedirs(d, exist_ok=True)
    for i in range(1, n + 1):
        xml = report_xml(tag, i, records)
        base = f"gen.example!example.com!{T0}!{T0 + 86399}!{tag}-{i}"
        if i % 2:
            part = ("application/gzip", base + ".xml.gz", gz(xml))
        else:
            part = ("application/zip", base + ".zip", zipped(base + ".xml", xml))
        subj = f"Report Domain: example.com Submitter: gen.example Report-ID: <{tag}-{i}>"
        with open(os.path.join(d, f"{i:05d}.eml"), "wb") as f:
            f.write(message(subj, f"<{tag}-{i}@gen.example>", [part]))


def several(out, xmls):
    parts = []
    for k, x in enumerate(xmls):
        data = open(x, "rb").read()
        name = os.path.basename(x)
        if k % 3 == 0:
            parts.append(("application/xml", name, data))
        elif k % 3 == 1:
            parts.append(("application/gzip", name + ".gz", gz(data)))
        else:
            parts.append(("application/zip", name + ".zip", zipped(name, data)))
    with open(out, "wb") as f:
        f.write(message("Several DMARC reports", "<several@gen.example>", parts))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "reports":
        reports(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 5,
                sys.argv[5] if len(sys.argv) > 5 else "imap")
    elif len(sys.argv) >= 4 and sys.argv[1] == "several":
        several(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)

#!/usr/bin/env python3
"""Writes the crafted test messages of tests/data/unpack/ (python3 standard
library only; output is deterministic).  Run from anywhere:
    python3 tests/data/unpack/make.py
Each file is described in tests/data/unpack/README.md."""
import base64
import gzip
import io
import os
import quopri
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def report(rid, ip='192.0.2.1', count=3):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n'
            '  <report_metadata><org_name>unpack.test</org_name><email>d@unpack.test</email>'
            '<report_id>%s</report_id><date_range><begin>1700000000</begin><end>1700086399</end>'
            '</date_range></report_metadata>\n'
            '  <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf>'
            '<p>none</p><sp>none</sp><pct>100</pct></policy_published>\n'
            '  <record><row><source_ip>%s</source_ip><count>%d</count><policy_evaluated>'
            '<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>'
            '<identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim>'
            '<domain>example.com</domain><result>pass</result></dkim><spf><domain>example.com</domain>'
            '<result>fail</result></spf></auth_results></record>\n</feedback>\n' % (rid, ip, count)).encode()


def gz(b):
    return gzip.compress(b, mtime=0)


def zipped(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return buf.getvalue()


def b64(b):
    s = base64.b64encode(b).decode()
    return '\r\n'.join(s[i:i + 76] for i in range(0, len(s), 76))


HDR = ('From: reports@unpack.test\r\nTo: rua@example.com\r\nSubject: {subj}\r\n'
       'Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <{mid}@unpack.test>\r\nMIME-Version: 1.0\r\n')


def write(name, text):
    with open(os.path.join(HERE, name), 'wb') as f:
        f.write(text.encode() if isinstance(text, str) else text)


def main():
    # 1. base64 gzip attachment next to a text body
    write('base64.eml', HDR.format(subj='base64', mid='b64') +
          'Content-Type: multipart/mixed; boundary="B1"\r\n\r\n'
          '--B1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nReport attached.\r\n'
          '--B1\r\nContent-Type: application/gzip; name="r1.xml.gz"\r\n'
          'Content-Disposition: attachment; filename="r1.xml.gz"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(gz(report('B64-1'))) + '\r\n--B1--\r\n')
    # 2. the report itself as a quoted-printable text/xml body
    qp = quopri.encodestring(report('QP-1'), quotetabs=False).decode().replace('\n', '\r\n')
    write('qp.eml', HDR.format(subj='qp', mid='qp') +
          'Content-Type: text/xml; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n' + qp)
    # 3. a forwarded message (message/rfc822) holding a zip
    inner = (HDR.format(subj='inner', mid='inner') +
             'Content-Type: multipart/mixed; boundary="IN"\r\n\r\n'
             '--IN\r\nContent-Type: text/plain\r\n\r\nOriginal report.\r\n'
             '--IN\r\nContent-Type: application/zip; name="r.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
             + b64(zipped([('nested-1.xml', report('NESTED-1'))])) + '\r\n--IN--\r\n')
    write('nested.eml', HDR.format(subj='Fwd: report', mid='fwd') +
          'Content-Type: multipart/mixed; boundary="OUT"\r\n\r\n'
          '--OUT\r\nContent-Type: text/plain\r\n\r\nForwarding the report below.\r\n'
          '--OUT\r\nContent-Type: message/rfc822\r\n\r\n' + inner + '\r\n--OUT--\r\n')
    # 4. RFC 2231 and RFC 2047 file names
    write('rfc2231.eml', HDR.format(subj='names', mid='names') +
          'Content-Type: multipart/mixed; boundary="N"\r\n\r\n'
          '--N\r\nContent-Type: application/gzip\r\n'
          "Content-Disposition: attachment; filename*=utf-8''r%C3%A9port%201.xml.gz\r\n"
          'Content-Transfer-Encoding: base64\r\n\r\n' + b64(gz(report('NAME-1'))) + '\r\n'
          '--N\r\nContent-Type: application/gzip; name="=?UTF-8?B?' + base64.b64encode('résumé.xml.gz'.encode()).decode()
          + '?="\r\nContent-Transfer-Encoding: base64\r\n\r\n' + b64(gz(report('NAME-2'))) + '\r\n'
          '--N\r\nContent-Type: application/octet-stream\r\n'
          'Content-Disposition: attachment;\r\n filename*0*=utf-8\'\'long%20name%20;\r\n filename*1="part two.xml"\r\n'
          'Content-Transfer-Encoding: base64\r\n\r\n' + b64(report('NAME-3')) + '\r\n--N--\r\n')
    # 5. several attachments of different kinds, mislabelled on purpose
    write('several.eml', HDR.format(subj='several', mid='several') +
          'Content-Type: multipart/mixed; boundary="S"\r\n\r\n'
          '--S\r\nContent-Type: text/plain\r\n\r\nThree reports.\r\n'
          '--S\r\nContent-Type: application/gzip; name="a.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(zipped([('a.xml', report('SEV-1')), ('b.xml', report('SEV-2', '192.0.2.2', 5))])) + '\r\n'
          '--S\r\nContent-Type: application/octet-stream; name="c.xml"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(gz(report('SEV-3'))) + '\r\n'
          '--S\r\nContent-Type: image/png; name="logo.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(b'\x89PNG\r\n\x1a\n' + bytes(range(64))) + '\r\n--S--\r\n')
    # 6. multipart/report with a text and an HTML part besides the report
    write('report-html.eml', HDR.format(subj='html', mid='html') +
          'Content-Type: multipart/report; report-type=dmarc; boundary="R"\r\n\r\n'
          '--R\r\nContent-Type: multipart/alternative; boundary="A"\r\n\r\n'
          '--A\r\nContent-Type: text/plain\r\n\r\nThis is a DMARC aggregate report.\r\n'
          '--A\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
          '<!DOCTYPE html>\r\n<html><body><p style=3D"x">This is a DMARC aggregate report.</p></body></html>\r\n'
          '--A--\r\n'
          '--R\r\nContent-Type: application/gzip; name="h.xml.gz"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(gz(report('HTML-1'))) + '\r\n--R--\r\n')
    # 7. whitespace before the first header line (as in amail+comfirm tests/mail)
    write('leading-ws.eml', ' ' * 40 + '\r\n\r\n' + HDR.format(subj='ws', mid='ws') +
          'Content-Type: application/gzip; name="w.xml.gz"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(gz(report('WS-1'))) + '\r\n')
    # 8. an mbox "From " line before the headers
    write('mbox-from.eml', 'From reports@unpack.test Tue Nov 14 22:13:20 2023\n' +
          HDR.format(subj='mbox', mid='mbox').replace('\r\n', '\n') +
          'Content-Type: application/zip; name="m.zip"\nContent-Transfer-Encoding: base64\n\n'
          + b64(zipped([('m.xml', report('MBOX-1'))])).replace('\r\n', '\n') + '\n')
    # 9. a message with no report at all (text, HTML and a picture)
    write('no-report.eml', HDR.format(subj='hello', mid='none') +
          'Content-Type: multipart/mixed; boundary="X"\r\n\r\n'
          '--X\r\nContent-Type: text/plain\r\n\r\nJust saying hello.\r\n'
          '--X\r\nContent-Type: text/html\r\n\r\n<html><body>hello</body></html>\r\n'
          '--X\r\nContent-Type: image/png; name="cat.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(b'\x89PNG\r\n\x1a\n' + bytes(100)) + '\r\n--X--\r\n')
    # 10. a zip with one good and one broken member (the broken one is not XML)
    write('good-and-bad.zip', zipped([('good.xml', report('GB-1')), ('bad.xml', b'this is not xml\n')]))
    # 11. the same report twice in one message (the second is a duplicate for a deduplicating sink)
    write('twice.eml', HDR.format(subj='twice', mid='twice') +
          'Content-Type: multipart/mixed; boundary="T"\r\n\r\n'
          '--T\r\nContent-Type: application/gzip; name="t1.xml.gz"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(gz(report('TWICE-1'))) + '\r\n'
          '--T\r\nContent-Type: application/gzip; name="t2.xml.gz"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
          + b64(gz(report('TWICE-1'))) + '\r\n--T--\r\n')
    # 12. the bare report, for byte comparisons
    write('report.xml', report('BARE-1'))
    # 13. messages inside a zip: one with a report, one without
    with open(os.path.join(HERE, 'base64.eml'), 'rb') as f:
        b64msg = f.read()
    with open(os.path.join(HERE, 'no-report.eml'), 'rb') as f:
        nomsg = f.read()
    write('eml-in-zip.zip', zipped([('fwd.eml', b64msg), ('hello.eml', nomsg)]))


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""Writes the example report e-mails in examples/reports/ (run once; output committed).

Synthetic but shaped like real receivers' reports for example.com, with documentation
addresses (RFC 5737, RFC 3849). They show every case the views separate:
regular mail passing by SPF and DKIM, forwarded mail failing SPF, and server-generated
mail (auto-replies, bounces) by each of the four rules: empty envelope_from, '<>',
an SPF result with scope helo, and an SPF domain / envelope_from equal to the
sending host's PTR name (the demo's DNS server answers those PTRs).  Besides
them, one DMARC failure report (06) about an auto-reply of the help desk.
"""
import gzip, io, os, zipfile, email.utils
from xml.sax.saxutils import escape
from email.message import EmailMessage

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reports")
DAY = 86400
T0 = 1764115200  # 2025-11-26 00:00:00 UTC

def record(ip, count, disp, dkim, spf, header_from, env_from, dkims, spfs, reason=None):
    x = ["    <record>", "      <row>", f"        <source_ip>{ip}</source_ip>",
         f"        <count>{count}</count>", "        <policy_evaluated>",
         f"          <disposition>{disp}</disposition>", f"          <dkim>{dkim}</dkim>",
         f"          <spf>{spf}</spf>"]
    if reason:
        x += ["          <reason>", f"            <type>{reason[0]}</type>",
              f"            <comment>{reason[1]}</comment>", "          </reason>"]
    x += ["        </policy_evaluated>", "      </row>", "      <identifiers>",
          f"        <header_from>{header_from}</header_from>"]
    if env_from is not None:
        x.append(f"        <envelope_from>{escape(env_from)}</envelope_from>" if env_from else "        <envelope_from/>")
    x += ["      </identifiers>", "      <auth_results>"]
    for d, sel, res in dkims:
        x += ["        <dkim>", f"          <domain>{d}</domain>", f"          <selector>{sel}</selector>",
              f"          <result>{res}</result>", "        </dkim>"]
    for d, scope, res in spfs:
        x += ["        <spf>", f"          <domain>{d}</domain>"]
        if scope:
            x.append(f"          <scope>{scope}</scope>")
        x += [f"          <result>{res}</result>", "        </spf>"]
    x += ["      </auth_results>", "    </record>"]
    return "\n".join(x)

def report(org, email, rid, begin, end, records, rfc9990=False):
    ns = ' xmlns="urn:ietf:params:xml:ns:dmarc-2.0"' if rfc9990 else ""
    ver = "    <version>1.0</version>\n" if rfc9990 else ""
    np = "    <np>reject</np>\n    <testing>n</testing>\n    <discovery_method>treewalk</discovery_method>\n" if rfc9990 else "    <pct>100</pct>\n"
    gen = f"      <generator>{org} reporter 2.1</generator>\n" if rfc9990 else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<feedback{ns}>\n{ver}'
            f"  <report_metadata>\n    <org_name>{org}</org_name>\n    <email>{email}</email>\n"
            f"    <report_id>{rid}</report_id>\n    <date_range>\n      <begin>{begin}</begin>\n"
            f"      <end>{end}</end>\n    </date_range>\n{gen}  </report_metadata>\n"
            f"  <policy_published>\n    <domain>example.com</domain>\n    <adkim>r</adkim>\n"
            f"    <aspf>r</aspf>\n    <p>quarantine</p>\n    <sp>quarantine</sp>\n{np}"
            f"  </policy_published>\n" + "\n".join(records) + "\n</feedback>\n")

def mail(org, rid, begin, end, fname, payload, ctype):
    m = EmailMessage()
    m["From"] = f"noreply-dmarc-support@{org}"
    m["To"] = "dmarc-rua@example.com"
    m["Subject"] = f"Report domain: example.com Submitter: {org} Report-ID: {rid}"
    m["Date"] = email.utils.formatdate(end + 3600, usegmt=True)
    m["Message-ID"] = f"<{rid}@{org}>"
    m.set_content(f"This is an aggregate report from {org}.\n")
    maintype, subtype = ctype.split("/")
    m.add_attachment(payload, maintype=maintype, subtype=subtype, filename=fname)
    return m.as_bytes()

regular = lambda ip, n: record(ip, n, "none", "pass", "pass", "example.com", "example.com",
                               [("example.com", "s2025", "pass")], [("example.com", "mfrom", "pass")])
forwarded = record("198.51.100.77", 3, "quarantine", "fail", "fail", "example.com", "lists.example.org",
                   [("example.com", "s2025", "fail")], [("lists.example.org", "mfrom", "pass")],
                   reason=("forwarded", "looks forwarded"))
# auto-replies from the help desk host: empty Return-Path, SPF checked on HELO, no DKIM
autoreply_empty = record("192.0.2.25", 14, "quarantine", "fail", "fail", "example.com", "",
                         [], [("helpdesk.example.com", "helo", "pass")])
# bounces from the MX: '<>' envelope, but DKIM-signed, so they pass
bounce_signed = record("192.0.2.10", 6, "none", "pass", "fail", "example.com", "<>",
                       [("example.com", "s2025", "pass")], [("mx1.example.com", "helo", "pass")])
# system notifications from a NAS: receiver gives no scope and no envelope_from;
# the SPF domain is the host's own (forward-confirmed) PTR name -> rule 3
nas_notify = record("203.0.113.40", 5, "quarantine", "fail", "fail", "example.com", None,
                    [], [("nas.example.com", None, "pass")])
# a printer that mails scans with its own host name as envelope sender; the
# receiver reports only the DKIM result -> rule 4
printer = record("203.0.113.41", 2, "quarantine", "fail", "fail", "example.com", "printer.example.com",
                 [("printer.example.com", "default", "pass")], [])
# the same help desk seen by Google, which never reports envelope_from: only
# the SPF scope shows the null sender -> rule 2
autoreply_google = record("192.0.2.25", 14, "quarantine", "fail", "fail", "example.com", None,
                          [], [("helpdesk.example.com", "helo", "pass")])
# claims a PTR name it does not own (the name does not resolve back): not counted
spoof = record("203.0.113.99", 1, "reject", "fail", "fail", "example.com", None,
               [], [("mail.example.com", None, "softfail")])
v6 = record("2001:db8::25", 9, "none", "pass", "pass", "example.com", "example.com",
            [("example.com", "s2025", "pass")], [("example.com", "mfrom", "pass")])

os.makedirs(OUT, exist_ok=True)
msgs = []
# google.com style: zip attachment
rid = "17730521448855312001"
x = report("google.com", "noreply-dmarc-support@google.com", rid, T0, T0 + DAY - 1,
           [regular("192.0.2.5", 1520), autoreply_google, bounce_signed, forwarded])
z = io.BytesIO()
with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
    zf.writestr(f"google.com!example.com!{T0}!{T0 + DAY - 1}.xml", x)
msgs.append(("01-google-zip.eml", mail("google.com", rid, T0, T0 + DAY - 1,
             f"google.com!example.com!{T0}!{T0 + DAY - 1}.zip", z.getvalue(), "application/zip")))
# outlook style: RFC 9990 namespace, gzip attachment labelled octet-stream
rid = "c1a9e7f0b3a64f7f9c6f2f8d7a0b1e55"
x = report("Enterprise Outlook", "dmarcreport@microsoft.com", rid, T0, T0 + DAY,
           [regular("192.0.2.5", 310), nas_notify, printer, v6], rfc9990=True)
msgs.append(("02-outlook-gzip.eml", mail("protection.outlook.com", rid, T0, T0 + DAY,
             f"protection.outlook.com!example.com!{T0}!{T0 + DAY}.xml.gz",
             gzip.compress(x.encode(), mtime=0), "application/octet-stream")))
# yahoo style: plain XML attachment, a report spanning three days
rid = "1764115200.118832"
x = report("Yahoo", "dmarchelp@yahooinc.com", rid, T0, T0 + 3 * DAY - 1,
           [regular("192.0.2.6", 96), autoreply_empty.replace("<count>14</count>", "<count>4</count>"), spoof])
msgs.append(("03-yahoo-xml.eml", mail("yahoo.com", rid, T0, T0 + 3 * DAY - 1,
             f"yahoo.com!example.com!{T0}!{T0 + 3 * DAY - 1}.xml", x.encode(), "text/xml")))
# a message that is not a report: goes to the invalid folder with a failure row
m = EmailMessage()
m["From"] = "someone@example.org"; m["To"] = "dmarc-rua@example.com"
m["Subject"] = "Out of office"; m["Message-ID"] = "<ooo-1@example.org>"
m["Date"] = email.utils.formatdate(T0 + 7200, usegmt=True)
m.set_content("I am away until Monday.\n")
msgs.append(("04-not-a-report.eml", m.as_bytes()))
# a DMARC failure report (RFC 6591 ARF, ruf=) about one of the help desk's
# auto-replies from 192.0.2.25: its original shows the null sender and
# Auto-Submitted, the evidence view sets it against Google's aggregate record
# of the same IP and day (server-generated by the SPF helo rule: agrees)
arrival = email.utils.formatdate(T0 + 10 * 3600 + 17 * 60, usegmt=True)
arf = f"""From: dmarc-failure@mail.example.net
To: dmarc-rua@example.com
Subject: DMARC failure report for example.com (192.0.2.25)
Date: {email.utils.formatdate(T0 + 10 * 3600 + 20 * 60, usegmt=True)}
Message-ID: <arf-{T0}-1@mail.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="arf-{T0}"

--arf-{T0}
Content-Type: text/plain; charset=us-ascii

This is an authentication failure report for a message from 192.0.2.25
that failed the DMARC policy of example.com.

--arf-{T0}
Content-Type: message/feedback-report

Feedback-Type: auth-failure
User-Agent: example-mta/3.1
Version: 1
Original-Mail-From: <>
Original-Rcpt-To: <customer@example.net>
Arrival-Date: {arrival}
Reporting-MTA: dns; mail.example.net
Source-IP: 192.0.2.25
Authentication-Results: mail.example.net; dmarc=fail (p=quarantine) header.from=example.com;
\tspf=pass smtp.helo=helpdesk.example.com; dkim=none
Auth-Failure: dmarc
Delivery-Result: spam
Identity-Alignment: none
Reported-Domain: example.com

--arf-{T0}
Content-Type: text/rfc822-headers

Return-Path: <>
Received: from helpdesk.example.com (helpdesk.example.com [192.0.2.25])
\tby mail.example.net with ESMTP; {arrival}
From: Example Help Desk <helpdesk@example.com>
To: customer@example.net
Subject: Automatic reply: your ticket 4711
Auto-Submitted: auto-replied
Message-ID: <ticket-4711-ack@helpdesk.example.com>
Date: {arrival}
Content-Type: text/plain; charset=utf-8

--arf-{T0}--
"""
msgs.append(("06-failure-report.eml", arf.encode()))
for name, data in msgs:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(msgs)} messages to {OUT}")

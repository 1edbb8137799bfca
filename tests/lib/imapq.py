#!/usr/bin/env python3
"""IMAP queries for the tests, the same against any server (tests/lib/imap.sh).

  imapq.py DIR append FOLDER FILE...   APPEND each file (an RFC 5322 message,
                                       line ends made CRLF) to FOLDER, created
                                       if missing, with no flags: it arrives
                                       unread
  imapq.py DIR count FOLDER            messages in FOLDER (STATUS); 0 if none
  imapq.py DIR seen                    messages flagged \\Seen in all folders
  imapq.py DIR deleted                 messages flagged \\Deleted in all folders
  imapq.py DIR subscribed              subscribed folders, one a line (LSUB)
  imapq.py DIR message-ids FOLDER      Message-ID of each message in FOLDER

DIR is a server directory of tests/lib/dovecot.sh or cyrus.sh: its files
`ports` (imap and imaps port), `imap.pass` and `cert.pem` say where to connect
and how; the user is rua@example.com.  Connects by imaps to localhost with the
certificate checked; folder names use "/" (both servers are set up with it).
A FOLDER in ASCII is sent as given, so modified UTF-7 ("Archiv/Berichte-&ANw-")
works, as with dovecot.sh; one with other characters is encoded first.  Names
printed are the server's (modified UTF-7).
Exit status 0, or 1 with a message on stderr.
"""
import base64
import imaplib
import os
import re
import socket
import ssl
import sys

USER = "rua@example.com"


def connect(d):
    with open(os.path.join(d, "ports")) as f:
        imaps = int(f.read().split()[1])
    with open(os.path.join(d, "imap.pass")) as f:
        password = f.read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
    m = imaplib.IMAP4_SSL("localhost", imaps, ssl_context=ctx, timeout=60)
    # imaplib writes an APPEND's literal and its closing CRLF separately:
    # without this, Nagle's algorithm and delayed ACKs cost 40 ms a message
    m.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    m.login(USER, password)
    return m


def mutf7(name):
    """FOLDER in modified UTF-7 (RFC 3501 5.1.3), as IMAP wants it."""
    out, run = [], []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def quote(name):
    if not name.isascii():   # an ASCII name is taken as on the wire already
        name = mutf7(name)
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ok(res, what):
    typ, data = res
    if typ != "OK":
        raise RuntimeError(f"{what}: {typ} {data}")
    return data


def folders(m):
    """Selectable folder names (LIST "" "*")."""
    out = []
    for line in ok(m.list('""', '"*"'), "LIST"):
        if not line:
            continue
        mt = re.match(rb'\(([^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', line)
        if not mt:
            raise RuntimeError(f"LIST: cannot read {line!r}")
        attrs, name = mt.group(1).lower(), mt.group(2)
        if b"\\noselect" in attrs or b"\\nonexistent" in attrs:
            continue
        if name.startswith(b'"'):
            name = re.sub(rb'\\(.)', rb'\1', name[1:-1])
        out.append(name.decode())
    return out


def cmd_append(m, folder, *files):
    if m.status(quote(folder), "(MESSAGES)")[0] != "OK":
        ok(m.create(quote(folder)), "CREATE")
    # CRLF line ends, as IMAP sends them back
    msgs = []
    for path in files:
        with open(path, "rb") as f:
            msgs.append(f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    # no flags, no date: unread, like a delivery.  MULTIAPPEND (RFC 3502) with
    # LITERAL+ (RFC 7888): a few commands instead of one per message (Cyrus
    # takes 20 ms an APPEND, 1 ms a message this way)
    if "MULTIAPPEND" in m.capabilities and "LITERAL+" in m.capabilities:
        i = 0
        while i < len(msgs):
            tag = m._new_tag()
            parts, size = [tag + b" APPEND " + quote(folder).encode()], 0
            while i < len(msgs) and (size == 0 or size + len(msgs[i]) < 8 << 20):
                parts.append(b" () {%d+}\r\n" % len(msgs[i]) + msgs[i])
                size += len(msgs[i])
                i += 1
            m.send(b"".join(parts) + b"\r\n")
            ok(m._get_tagged_response(tag), "MULTIAPPEND")
    else:
        for path, data in zip(files, msgs):
            ok(m.append(quote(folder), "()", None, data), f"APPEND {path}")


def cmd_count(m, folder):
    typ, data = m.status(quote(folder), "(MESSAGES)")
    if typ != "OK":
        print(0)
        return
    mt = re.search(rb"MESSAGES (\d+)", data[0])
    print(int(mt.group(1)))


def flagged(m, key):
    n = 0
    for folder in folders(m):
        if m.select(quote(folder), readonly=True)[0] != "OK":
            continue   # not selectable (a parent Cyrus made for Archive/DMARC)
        data = ok(m.search(None, key), f"SEARCH {key}")
        n += len(data[0].split())
        m.close()
    print(n)


def cmd_seen(m):
    flagged(m, "SEEN")


def cmd_deleted(m):
    flagged(m, "DELETED")


def cmd_subscribed(m):
    names = []
    for line in ok(m.lsub('""', '"*"'), "LSUB"):
        if not line:
            continue
        mt = re.match(rb'\([^)]*\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', line)
        name = mt.group(1)
        if name.startswith(b'"'):
            name = re.sub(rb'\\(.)', rb'\1', name[1:-1])
        names.append(name.decode())
    for name in sorted(names):
        print(name)


def cmd_message_ids(m, folder):
    typ, data = m.select(quote(folder), readonly=True)
    if typ != "OK":
        return
    if int(data[0]) == 0:
        m.close()
        return
    data = ok(m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"), "FETCH")
    for item in data:
        if isinstance(item, tuple):
            mt = re.search(rb"(?im)^message-id:\s*(<[^>]*>)", item[1])
            if mt:
                print(mt.group(1).decode())
    m.close()


COMMANDS = {"append": cmd_append, "count": cmd_count, "seen": cmd_seen, "deleted": cmd_deleted,
            "subscribed": cmd_subscribed, "message-ids": cmd_message_ids}


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        m = connect(sys.argv[1])
        try:
            COMMANDS[sys.argv[2]](m, *sys.argv[3:])
        finally:
            m.logout()
    except (OSError, imaplib.IMAP4.error, RuntimeError) as e:
        print(f"imapq.py {sys.argv[2]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

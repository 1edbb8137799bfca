#!/usr/bin/env python3
"""imap_quirks_server.py - a small IMAP4rev1 server for imap_quirks.sh: one user,
plain text on loopback (the collector's `tls = none`), an INBOX seeded from files,
and quirks real servers have, each switched on by the JSON config:

  "size":   {"UID": N}   RFC822.SIZE says N, whatever the message's length
  "reverse": true        FETCH bodies answered in descending UID order
  "expunge": [UID]       the message is expunged by "another session" when a body
                         FETCH asks for it: an untagged EXPUNGE, and no body
  "twice":  [UID]        that body is sent twice in one FETCH
  "omit":   [UID]        the first body FETCH that asks for it leaves it out
                         (the message stays: a server that failed to read it)
  "bye_after": K         the first session sends BYE and closes after K bodies

Usage: imap_quirks_server.py CONFIG.json PORTFILE STATEFILE FILE...
The files become UIDs 1, 2, ... in INBOX.  After every command that changes
the mailbox, STATEFILE holds {"folder": [file names...], ...} as JSON.  Only
the commands the collector sends are understood; anything else is BAD.
"""
import json
import os
import re
import socketserver
import sys
import threading

cfg = json.load(open(sys.argv[1]))
portfile, statefile, files = sys.argv[2], sys.argv[3], sys.argv[4:]
lock = threading.Lock()
folders = {"INBOX": {}}                      # folder -> {uid: (name, bytes)}
for i, f in enumerate(files, 1):
    folders["INBOX"][i] = (os.path.basename(f), open(f, "rb").read())
next_uid = {"INBOX": len(files) + 1}
sessions = [0]


def dump():
    state = {k: [v[u][0] for u in sorted(v)] for k, v in folders.items()}
    tmp = statefile + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(state, fh, sort_keys=True)
    os.replace(tmp, statefile)


def uid_set(s, known):
    out = set()
    top = max(known) if known else 0
    for part in s.split(","):
        a, _, b = part.partition(":")
        lo = top if a == "*" else int(a)
        hi = lo if not b else (top if b == "*" else int(b))
        lo, hi = min(lo, hi), max(lo, hi)
        out.update(u for u in known if lo <= u <= hi)
    return sorted(out)


def astring(s):
    """The first astring of s (quoted or atom) and the rest."""
    s = s.lstrip(" ")
    if s.startswith('"'):
        m = re.match(r'"((?:[^"\\]|\\.)*)"', s)
        return re.sub(r"\\(.)", r"\1", m.group(1)), s[m.end():]
    m = re.match(r"[^ ]*", s)
    return m.group(0), s[m.end():]


class Session(socketserver.StreamRequestHandler):
    def send(self, text):
        self.wfile.write(text if isinstance(text, bytes) else text.encode())

    def handle(self):
        with lock:
            sessions[0] += 1
            self.first = sessions[0] == 1
        self.selected = None
        self.send("* OK quirks server ready\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            tag, _, rest = line.partition(" ")
            cmd, _, args = rest.partition(" ")
            cmd = cmd.upper()
            if cmd == "UID":
                sub, _, args = args.partition(" ")
                cmd = "UID " + sub.upper()
            with lock:
                if not self.command(tag, cmd, args):
                    return

    def command(self, tag, cmd, args):
        inbox = folders["INBOX"]
        if cmd == "CAPABILITY":
            self.send("* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n%s OK done\r\n" % tag)
        elif cmd == "LOGIN":
            self.send("%s OK logged in\r\n" % tag)
        elif cmd == "NOOP":
            self.send("%s OK done\r\n" % tag)
        elif cmd == "LOGOUT":
            self.send("* BYE bye\r\n%s OK done\r\n" % tag)
            return False
        elif cmd == "LIST":
            _, rest = astring(args)
            name, _ = astring(rest)
            if name == "":
                self.send('* LIST (\\Noselect) "/" ""\r\n')
            elif name in folders:
                self.send('* LIST () "/" "%s"\r\n' % name)
            self.send("%s OK done\r\n" % tag)
        elif cmd in ("CREATE", "SUBSCRIBE"):
            name, _ = astring(args)
            if cmd == "CREATE":
                folders.setdefault(name, {})
                next_uid.setdefault(name, 1)
                dump()
            self.send("%s OK done\r\n" % tag)
        elif cmd == "SELECT":
            self.selected, _ = astring(args)
            self.send("* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT %d] ok\r\n"
                      "%s OK [READ-WRITE] done\r\n" % (len(inbox), next_uid["INBOX"], tag))
        elif cmd == "UID FETCH" and args.endswith("(UID RFC822.SIZE)"):
            for u in uid_set(args.split(" ")[0], inbox):
                size = cfg.get("size", {}).get(str(u), len(inbox[u][1]))
                self.send("* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (sorted(inbox).index(u) + 1, u, size))
            self.send("%s OK done\r\n" % tag)
        elif cmd == "UID FETCH" and args.endswith("BODY.PEEK[]"):
            uids = uid_set(args.split(" ")[0], inbox)
            for u in uids:
                if u in cfg.get("expunge", []):
                    self.send("* %d EXPUNGE\r\n" % (sorted(inbox).index(u) + 1))
                    del inbox[u]
                    dump()
            uids = [u for u in uids if u in inbox]
            for u in [u for u in uids if u in cfg.get("omit", [])]:
                cfg["omit"].remove(u)
                uids.remove(u)
            if cfg.get("reverse"):
                uids.reverse()
            sent = 0
            for u in uids:
                for _ in range(2 if u in cfg.get("twice", []) else 1):
                    if self.first and sent == cfg.get("bye_after", -1):
                        self.send("* BYE going down\r\n")
                        return False
                    body = inbox[u][1]
                    self.send(b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n"
                              % (sorted(inbox).index(u) + 1, u, len(body), body))
                    sent += 1
            self.send("%s OK done\r\n" % tag)
        elif cmd == "UID MOVE":
            s, rest = args.split(" ", 1)
            name, _ = astring(rest)
            if name not in folders:
                self.send("%s NO [TRYCREATE] no such folder\r\n" % tag)
                return True
            for u in uid_set(s, inbox):
                folders[name][next_uid[name]] = inbox.pop(u)
                next_uid[name] += 1
                self.send("* 1 EXPUNGE\r\n")
            dump()
            self.send("%s OK moved\r\n" % tag)
        else:
            self.send("%s BAD not understood\r\n" % tag)
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Session)
dump()
with open(portfile + ".tmp", "w") as fh:
    fh.write("%d\n" % srv.server_address[1])
os.replace(portfile + ".tmp", portfile)
srv.serve_forever()

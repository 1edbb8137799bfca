#!/usr/bin/env python3
"""faultproxy.py - a fault-injecting TCP proxy for the tests (loopback only).

  faultproxy.py serve CTL_SOCKET TARGET_PORT [--max-seconds S]
      listens on 127.0.0.1 (a free port, printed as the first line on stdout and
      written to CTL_SOCKET.port), forwards every connection to 127.0.0.1:TARGET_PORT,
      and takes commands on the Unix socket CTL_SOCKET.  Exits after S seconds
      (default 3600) whatever happens, so a test that dies cannot leave it behind.
  faultproxy.py ctl CTL_SOCKET COMMAND...
      sends one command, prints the answer (one line) and exits 0 when it was "ok ...".

Commands (one line each; each replaces the mode in force):
  pass          forward everything as it comes (the default)
  reset         reset every open connection now: both sides get a RST (SO_LINGER 0)
  stall SECS    forward nothing for SECS seconds (connections are accepted and
                held, nothing is read: the kernel's buffers push back), then pass
  cut BYTES     the first connection, open or new, to receive BYTES more bytes from
                the server is reset there (the cut lands inside whatever the server
                was sending, e.g. a FETCH literal); then back to pass (one cut)
  slow MS       both directions one byte at a time, MS milliseconds apart; until
                the next command
  stats         answers "ok open=N accepted=N resets=N cuts=N bytes_up=N bytes_down=N
                mode=..." (resets: connections reset by `reset`; cuts: by `cut`)

The same stats line is kept in CTL_SOCKET.stats (replaced, at most ten times a
second, when it changes), so a test can sample it without starting a process.

Bounded: at most MAX_CONN connections (more are refused with a RST), at most BUF
bytes buffered per direction, one thread, select() with a short timeout.  TLS
passes through untouched: the proxy sees bytes only.
"""
import os
import select
import socket
import struct
import sys
import time

MAX_CONN = 64
BUF = 256 * 1024
LOOPBACK = "127.0.0.1"


def rst_close(s):
    """Closes s so that the peer gets a RST instead of a FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


class Conn:
    def __init__(self, client, server):
        self.c = client
        self.s = server
        self.up = bytearray()     # client -> server
        self.down = bytearray()   # server -> client
        self.c_eof = False
        self.s_eof = False
        self.cut_left = None      # bytes from the server before the cut
        self.next_slow = 0.0
        self.dead = False

    def close(self, reset):
        if self.dead:
            return
        self.dead = True
        for s in (self.c, self.s):
            if reset:
                rst_close(s)
            else:
                s.close()


class Proxy:
    def __init__(self, ctl_path, target):
        self.target = target
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOOPBACK, 0))
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        if os.path.exists(ctl_path):
            os.unlink(ctl_path)
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ctl.bind(ctl_path)
        self.ctl.listen(8)
        self.ctl.setblocking(False)
        self.ctl_path = ctl_path
        self.conns = []
        self.mode = "pass"
        self.stall_until = 0.0
        self.cut_bytes = None
        self.slow_s = 0.0
        self.stats = dict(accepted=0, refused=0, resets=0, cuts=0, bytes_up=0, bytes_down=0)
        self.stats_written = None
        self.stats_at = 0.0

    def stats_line(self):
        st = " ".join(f"{k}={v}" for k, v in self.stats.items())
        return f"ok open={len(self.conns)} {st} mode={self.mode}"

    def write_stats(self, now):
        line = self.stats_line()
        if line == self.stats_written or now - self.stats_at < 0.1:
            return
        tmp = self.ctl_path + ".stats.tmp"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.rename(tmp, self.ctl_path + ".stats")
        self.stats_written, self.stats_at = line, now

    # ---- control
    def command(self, line):
        w = line.split()
        if not w:
            return "error empty command"
        now = time.monotonic()
        if w[0] == "stats":
            return self.stats_line()
        if w[0] in ("pass", "reset", "stall", "cut", "slow"):
            arg = None
            if w[0] in ("stall", "cut", "slow"):
                try:
                    arg = float(w[1])
                except (IndexError, ValueError):
                    return f"error {w[0]} needs a number"
            self.mode, self.stall_until, self.cut_bytes, self.slow_s = "pass", 0.0, None, 0.0
            for c in self.conns:
                c.cut_left = None
            if w[0] == "reset":
                n = len(self.conns)
                for c in self.conns:
                    c.close(True)
                self.conns = []
                self.stats["resets"] += n
                return f"ok reset {n}"
            if w[0] == "stall":
                self.mode, self.stall_until = f"stall {arg:g}", now + arg
            elif w[0] == "cut":
                self.mode, self.cut_bytes = f"cut {int(arg)}", int(arg)
                for c in self.conns:
                    c.cut_left = self.cut_bytes
            elif w[0] == "slow":
                self.mode, self.slow_s = f"slow {arg:g}", arg / 1000.0
            return f"ok {self.mode}"
        return f"error unknown command {w[0]}"

    def serve_ctl(self):
        try:
            cs, _ = self.ctl.accept()
        except BlockingIOError:
            return
        cs.settimeout(2)
        try:
            data = b""
            while not data.endswith(b"\n") and len(data) < 1024:
                b = cs.recv(1024)
                if not b:
                    break
                data += b
            cs.sendall((self.command(data.decode(errors="replace").strip()) + "\n").encode())
        except OSError:
            pass
        cs.close()

    # ---- forwarding
    def accept(self):
        try:
            cs, _ = self.lsock.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        if len(self.conns) >= MAX_CONN:
            self.stats["refused"] += 1
            rst_close(cs)
            return
        try:
            ss = socket.create_connection((LOOPBACK, self.target), timeout=2)
        except OSError:
            rst_close(cs)   # the server is down: the client sees what it would see
            return
        cs.setblocking(False)
        ss.setblocking(False)
        c = Conn(cs, ss)
        if self.cut_bytes is not None:
            c.cut_left = self.cut_bytes
        self.conns.append(c)
        self.stats["accepted"] += 1

    def stalled(self, now):
        if self.stall_until and now >= self.stall_until:
            self.mode, self.stall_until = "pass", 0.0
        return self.stall_until > 0

    def pump(self, c, now, readable, writable):
        # read
        if c.c in readable and not c.c_eof and len(c.up) < BUF:
            try:
                b = c.c.recv(BUF - len(c.up))
            except (BlockingIOError, InterruptedError):
                b = None
            except OSError:
                c.close(True)
                return
            if b == b"":
                c.c_eof = True
            elif b:
                c.up += b
        if c.s in readable and not c.s_eof and len(c.down) < BUF:
            try:
                b = c.s.recv(BUF - len(c.down))
            except (BlockingIOError, InterruptedError):
                b = None
            except OSError:
                c.close(True)
                return
            if b == b"":
                c.s_eof = True
            elif b:
                c.down += b
        # write
        for buf, dst, key in ((c.up, c.s, "bytes_up"), (c.down, c.c, "bytes_down")):
            if not buf or dst not in writable:
                continue
            n = len(buf)
            if self.slow_s:
                if now < c.next_slow:
                    continue
                n = 1
            if key == "bytes_down" and c.cut_left is not None:
                n = min(n, c.cut_left)
            try:
                sent = dst.send(bytes(buf[:n])) if n else 0
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                c.close(True)
                return
            del buf[:sent]
            self.stats[key] += sent
            if sent and self.slow_s:
                c.next_slow = now + self.slow_s
            if key == "bytes_down" and c.cut_left is not None:
                c.cut_left -= sent
                if c.cut_left <= 0:
                    self.stats["cuts"] += 1
                    c.close(True)
                    self.mode, self.cut_bytes = "pass", None   # one cut per command
                    for o in self.conns:
                        o.cut_left = None
                    return
        # a side that closed: pass the FIN on once its bytes are through
        if c.c_eof and not c.up:
            try:
                c.s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if c.s_eof and not c.down:
            try:
                c.c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if c.c_eof and c.s_eof and not c.up and not c.down:
            c.close(False)

    def run(self, max_seconds):
        end = time.monotonic() + max_seconds
        while time.monotonic() < end:
            now = time.monotonic()
            stalled = self.stalled(now)
            rd, wr = [self.lsock, self.ctl], []
            if not stalled:
                for c in self.conns:
                    if not c.c_eof and len(c.up) < BUF:
                        rd.append(c.c)
                    if not c.s_eof and len(c.down) < BUF:
                        rd.append(c.s)
                    if c.up:
                        wr.append(c.s)
                    if c.down:
                        wr.append(c.c)
            timeout = 0.2
            if self.slow_s:
                timeout = max(0.0, min(self.slow_s, 0.2))
            if stalled:
                timeout = max(0.0, min(self.stall_until - now, 0.2))
            try:
                readable, writable, _ = select.select(rd, wr, [], timeout)
            except OSError:
                # a socket closed under us; drop the dead ones and go on
                self.conns = [c for c in self.conns if not c.dead]
                continue
            now = time.monotonic()
            if self.ctl in readable:
                self.serve_ctl()
            if self.lsock in readable:
                self.accept()
            if not self.stalled(now):
                for c in list(self.conns):
                    if not c.dead:
                        self.pump(c, now, readable, writable)
            self.conns = [c for c in self.conns if not c.dead]
            self.write_stats(now)
        for c in self.conns:
            c.close(True)
        for f in (self.ctl_path, self.ctl_path + ".stats"):
            if os.path.exists(f):
                os.unlink(f)


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "serve":
        max_seconds = 3600.0
        if len(a) >= 5 and a[3] == "--max-seconds":
            max_seconds = float(a[4])
        p = Proxy(a[1], int(a[2]))
        with open(a[1] + ".port", "w") as f:
            f.write(f"{p.port}\n")
        print(p.port, flush=True)
        p.run(max_seconds)
        return 0
    if len(a) >= 3 and a[0] == "ctl":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(a[1])
        s.sendall((" ".join(a[2:]) + "\n").encode())
        ans = b""
        while not ans.endswith(b"\n"):
            b = s.recv(1024)
            if not b:
                break
            ans += b
        print(ans.decode().strip())
        return 0 if ans.startswith(b"ok") else 1
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""resolve_delay.py - a UDP DNS relay that holds every answer for a fixed
delay before passing it on, to give the loopback benchmark the round-trip time
of a real resolver (a local dnsmasq answers in microseconds, so concurrency has
no latency to hide there).

    resolve_delay.py LISTEN_PORT UPSTREAM_PORT DELAY_MS READY_FILE

Queries from any client go to 127.0.0.1:UPSTREAM_PORT unchanged; each answer
goes back to the client that sent the query with the same DNS id, DELAY_MS
after it arrived.  For the benchmark only: one client, no TCP.
"""
import asyncio
import sys


class Relay:
    def __init__(self, loop, upstream, delay):
        self.loop = loop
        self.upstream = upstream
        self.delay = delay
        self.pending = {}  # DNS id -> client address
        self.front = None
        self.back = None

    def from_client(self, data, addr):
        if len(data) < 12:
            return
        self.pending[data[:2]] = addr
        self.back.sendto(data, self.upstream)

    def from_upstream(self, data):
        addr = self.pending.pop(data[:2], None)
        if addr is not None:
            self.loop.call_later(self.delay, self.front.sendto, data, addr)


class Front(asyncio.DatagramProtocol):
    def __init__(self, relay):
        self.relay = relay

    def datagram_received(self, data, addr):
        self.relay.from_client(data, addr)


class Back(asyncio.DatagramProtocol):
    def __init__(self, relay):
        self.relay = relay

    def datagram_received(self, data, addr):
        self.relay.from_upstream(data)


async def main():
    port, upstream, delay_ms, ready = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    loop = asyncio.get_running_loop()
    relay = Relay(loop, ("127.0.0.1", upstream), delay_ms / 1000.0)
    relay.front, _ = await loop.create_datagram_endpoint(lambda: Front(relay), local_addr=("127.0.0.1", port))
    relay.back, _ = await loop.create_datagram_endpoint(lambda: Back(relay), local_addr=("127.0.0.1", 0))
    with open(ready, "w") as f:
        f.write("ready\n")
    await asyncio.Event().wait()


asyncio.run(main())

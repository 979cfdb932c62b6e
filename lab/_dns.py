"""The lab's DNS: dnsmasq (the resolver) behind a packet-rate policer (the network interface).

In production the registrars and the vm-presence host asked the cloud provider's VPC
resolver, which accepts at most 1,024 packets per second per network interface and
silently drops the rest: the client sees a timeout, not an error. The lab models
the two parts separately, with real processes:

- `dnsmasq` answers the lab's zone (`lab.test`): the presence service's NAPTR, SRV
  and A records (they point at the proxy, where vm-presence sends its PUBLISHes) and
  the outbound carrier's SRV and A records (they point at the far-end UA). TTL 0:
  nothing is cached downstream, as in the incident.
- `Policer`, a UDP relay on port 53 of a loopback address of its own, in front of it:
  a token bucket of `cap` queries per second (depth `cap / 20`, 50 ms of traffic);
  a query beyond it is dropped, like the VPC resolver's limit. It counts every query
  and every drop by client, from the query name: `carrier` (the registrar routing
  a call) and `presence` (vm-presence finding the presence service).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
ZONE = "lab.test"
PRESENCE_SERVICE = f"presence.{ZONE}"  # vm-presence: NAPTR -> SRV -> A, per PUBLISH
CARRIER_DOMAIN = f"carrier.{ZONE}"  # the registrar: SRV -> A, per outbound call
CLIENTS = ("carrier", "presence")


def classify(qname: str) -> str:
    name = qname.lower().rstrip(".")
    if name.endswith(CARRIER_DOMAIN):
        return "carrier"
    if name.endswith(PRESENCE_SERVICE):
        return "presence"
    return "other"


def question_name(packet: bytes) -> str:
    """The first question's name of a DNS message ('' when it cannot be read)."""
    labels: list[str] = []
    at = 12
    try:
        while True:
            length = packet[at]
            if length == 0 or length & 0xC0:
                break
            labels.append(packet[at + 1 : at + 1 + length].decode("ascii", "replace"))
            at += 1 + length
    except IndexError:
        return ""
    return ".".join(labels)


def dnsmasq_argv(port: int, proxy_port: int, far_end_port: int) -> list[str]:
    """dnsmasq in the foreground, authoritative for lab.test only, no upstream, no cache."""
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        f"--listen-address={LOOPBACK}",
        f"--port={port}",
        "--pid-file=",
        "--user=root",
        "--cache-size=0",
        "--local-ttl=0",
        f"--local=/{ZONE}/",
        "--log-facility=-",
        f"--naptr-record={PRESENCE_SERVICE},10,50,S,SIP+D2U,,_sip._udp.{PRESENCE_SERVICE}",
        f"--srv-host=_sip._udp.{PRESENCE_SERVICE},proxy.{ZONE},{proxy_port},0,0",
        f"--naptr-record={PRESENCE_SERVICE},20,50,S,SIP+D2T,,_sip._tcp.{PRESENCE_SERVICE}",
        f"--srv-host=_sip._tcp.{PRESENCE_SERVICE},proxy.{ZONE},{proxy_port},0,0",
        f"--host-record=proxy.{ZONE},{LOOPBACK}",
        f"--srv-host=_sip._udp.{CARRIER_DOMAIN},gw.{CARRIER_DOMAIN},{far_end_port},0,0",
        f"--host-record=gw.{CARRIER_DOMAIN},{LOOPBACK}",
    ]


def resolv_conf(nameserver: str, timeout: int, attempts: int) -> str:
    """The resolv.conf Kamailio sees (bind-mounted in its own mount namespace)."""
    return f"nameserver {nameserver}\noptions timeout:{timeout} attempts:{attempts}\n"


@dataclass
class PolicerCounts:
    """Per client: wall-clock times of the queries received, dropped and answered."""

    queries: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CLIENTS})
    dropped: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CLIENTS})
    answered: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CLIENTS})

    def add(self, kind: dict[str, list[float]], client: str, at: float) -> None:
        kind.setdefault(client, []).append(at)

    def totals(self) -> dict[str, dict[str, int]]:
        return {
            name: {client: len(times) for client, times in kind.items()}
            for name, kind in (
                ("queries", self.queries),
                ("dropped", self.dropped),
                ("answered", self.answered),
            )
        }

    def events(self) -> dict[str, dict[str, list[float]]]:
        return {"queries": self.queries, "dropped": self.dropped, "answered": self.answered}


class _Bucket:
    """Token bucket: `rate` tokens per second, at most `depth` saved."""

    def __init__(self, rate: float, depth: float) -> None:
        self.rate = rate
        self.depth = depth
        self.tokens = depth
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.depth, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Side(asyncio.DatagramProtocol):
    def __init__(self, policer: Policer, upstream_side: bool) -> None:
        self.policer = policer
        self.upstream_side = upstream_side

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        if self.upstream_side:
            self.policer.from_upstream(data)
        else:
            self.policer.from_client(data, (str(addr[0]), int(addr[1])))


class Policer:
    """UDP relay that forwards at most `cap` queries/s to the resolver and drops the rest."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], cap: float) -> None:
        self.listen = listen
        self.upstream = upstream
        self.bucket = _Bucket(cap, max(1.0, cap / 20))
        self.counts = PolicerCounts()
        self._ids = itertools.cycle(range(1, 65536))
        self._pending: dict[int, tuple[tuple[str, int], bytes, str]] = {}
        self._front: asyncio.DatagramTransport | None = None
        self._back: asyncio.DatagramTransport | None = None

    async def start(self) -> Policer:
        loop = asyncio.get_running_loop()
        front, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self, False), local_addr=self.listen
        )
        back, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self, True), local_addr=(LOOPBACK, 0)
        )
        self._front = front
        self._back = back
        return self

    def from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or self._back is None:
            return
        now = time.time()
        client = classify(question_name(data))
        self.counts.add(self.counts.queries, client, now)
        if not self.bucket.take():
            self.counts.add(self.counts.dropped, client, now)
            return
        relay_id = next(self._ids)
        self._pending[relay_id] = (addr, data[:2], client)
        self._back.sendto(relay_id.to_bytes(2, "big") + data[2:], self.upstream)

    def from_upstream(self, data: bytes) -> None:
        if len(data) < 12 or self._front is None:
            return
        entry = self._pending.pop(int.from_bytes(data[:2], "big"), None)
        if entry is None:
            return
        addr, original_id, client = entry
        self.counts.add(self.counts.answered, client, time.time())
        self._front.sendto(original_id + data[2:], addr)

    def close(self) -> None:
        for transport in (self._front, self._back):
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.close()

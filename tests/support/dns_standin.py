"""A tiny authoritative DNS server on a loopback UDP port, for resolver tests.

Records are added as text; unknown names get NXDOMAIN, known names without the asked
type get an empty NOERROR answer, names in `silent` get no answer at all (timeouts).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsStandin(asyncio.DatagramProtocol):
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.records: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self.silent: set[str] = set()
        self.servfail: set[str] = set()
        self.queries: Counter[tuple[str, str]] = Counter()
        self._transport: asyncio.DatagramTransport | None = None

    def add(self, name: str, rdtype: str, ttl: int, *rdatas: str) -> None:
        """Add (replace) an RRset: add("_sip._udp.x.test", "SRV", 60, "10 5 5070 a.x.test.")."""
        self.records[(_norm(name), rdtype.upper())] = (ttl, list(rdatas))

    def remove(self, name: str) -> None:
        for key in [k for k in self.records if k[0] == _norm(name)]:
            del self.records[key]

    async def start(self) -> DnsStandin:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, 0))
        self.port = int(transport.get_extra_info("sockname")[1])
        return self

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        if not query.question:
            return
        question = query.question[0]
        name = _norm(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        if name in self.silent:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, rdtype) in self.records:
            ttl, rdatas = self.records[(name, rdtype)]
            rrset = dns.rrset.from_text_list(question.name, ttl, dns.rdataclass.IN, rdtype, rdatas)
            response.answer.append(rrset)
        elif not any(key[0] == name for key in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self._transport is not None
        self._transport.sendto(response.to_wire(), addr)


def _norm(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()

"""A tiny authoritative DNS server on a loopback UDP port, for resolver tests.

Records are added as text; unknown names get NXDOMAIN, known names without the asked
type get an empty NOERROR answer, names in `silent` get no answer at all (timeouts).
"""

from __future__ import annotations

from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from testbed.udp import Datagrams


class DnsStandin:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.records: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self.silent: set[str] = set()
        self.servfail: set[str] = set()
        self.queries: Counter[tuple[str, str]] = Counter()
        self._udp = Datagrams(self._query)

    def add(self, name: str, rdtype: str, ttl: int, *rdatas: str) -> None:
        """Add (replace) an RRset: add("_sip._udp.x.test", "SRV", 60, "10 5 5070 a.x.test.")."""
        self.records[(_norm(name), rdtype.upper())] = (ttl, list(rdatas))

    def remove(self, name: str) -> None:
        for key in [k for k in self.records if k[0] == _norm(name)]:
            del self.records[key]

    async def start(self) -> DnsStandin:
        await self._udp.open((self.host, 0))
        self.port = self._udp.port
        return self

    def stop(self) -> None:
        self._udp.close()

    def _query(self, data: bytes, addr: tuple[str, int]) -> None:
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
        self._udp.send(response.to_wire(), addr)


def _norm(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()

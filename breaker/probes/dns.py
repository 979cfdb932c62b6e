"""Find where a SIP target lives (RFC 3263: SRV, then A/AAAA), cached by the records' TTL.

Resolution runs inside the probe's timeout, so it is asynchronous (dnspython) and cached:
a healthy probe costs no DNS traffic until the records expire. Failures are values, not
exceptions: the probe turns them into a `dns` result.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from breaker._config import Target

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
SRV_PREFIXES = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
LOCAL_NAMES = ("localhost",)  # answered from /etc/hosts, never from DNS (RFC 6761 6.3)


@dataclass(frozen=True, slots=True)
class Resolution:
    """Addresses to try in order, or an error text when resolution failed."""

    addresses: tuple[tuple[str, int], ...] = ()
    error: str | None = None
    ttl: float = 0.0  # seconds this answer may be cached (min TTL of the chain)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.addresses)


class _Failed(Exception):
    """Internal: a lookup step failed; carries the user-facing text."""


class SipResolver:
    """RFC 3263 resolution with a TTL cache. Pass `nameservers`/`port` to pin a server (tests).

    Without nameservers the system configuration (/etc/resolv.conf) is read on first use.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        timeout: float = 2.0,
        min_ttl: float = 1.0,
        max_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nameservers = list(nameservers) if nameservers is not None else None
        self._port = port
        self._timeout = timeout
        self._min_ttl = min_ttl
        self._max_ttl = max_ttl
        self._clock = clock
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._cache: dict[tuple[str, int | None, str], tuple[float, Resolution]] = {}

    async def resolve(self, target: Target, *, lifetime: float | None = None) -> Resolution:
        """Addresses for a SIP target: IP literal, host:port (A/AAAA) or domain (SRV first)."""
        transport = target.transport or "udp"
        return await self._cached(target.host, target.port, transport, lifetime)

    async def resolve_host(
        self, host: str, port: int, *, lifetime: float | None = None
    ) -> Resolution:
        """A/AAAA only, for targets that name their port (TCP and SIP with a port)."""
        return await self._cached(host, port, "tcp", lifetime)

    def clear(self) -> None:
        self._cache.clear()

    async def _cached(
        self, host: str, port: int | None, transport: str, lifetime: float | None
    ) -> Resolution:
        host = host.rstrip(".").lower() if not _is_ip(host) else host
        if _is_ip(host):
            return Resolution(((host, port or DEFAULT_PORTS[transport]),), ttl=self._max_ttl)
        key = (host, port, transport)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        lifetime = self._timeout if lifetime is None else min(self._timeout, lifetime)
        try:
            if host in LOCAL_NAMES or host.endswith(".localhost"):
                resolution = await self._local(host, port or DEFAULT_PORTS[transport])
            elif port is not None:
                resolution = await self._address(host, port, lifetime)
            else:
                resolution = await self._srv(host, transport, lifetime)
        except _Failed as exc:
            return Resolution(error=str(exc))
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            return Resolution(error=f"resolving {host}: {exc}")
        ttl = min(max(resolution.ttl, self._min_ttl), self._max_ttl)
        resolution = Resolution(resolution.addresses, ttl=ttl)
        self._cache[key] = (self._clock() + ttl, resolution)
        return resolution

    async def _srv(self, host: str, transport: str, lifetime: float) -> Resolution:
        name = SRV_PREFIXES[transport] + host
        try:
            answer = await self._query(name, "SRV", lifetime)
        except _NoRecords:
            return await self._address(host, DEFAULT_PORTS[transport], lifetime)
        records = sorted(answer.rrset or (), key=lambda r: (r.priority, -r.weight))
        last_error = f"SRV {name} lists no usable target"
        for record in records:
            srv_target = record.target.to_text(omit_final_dot=True)
            if srv_target in ("", "."):
                continue  # RFC 2782: "." means the service is not available here
            try:
                found = await self._address(srv_target, int(record.port), lifetime)
            except _Failed as exc:
                last_error = str(exc)
                continue
            ttl = min(answer.chaining_result.minimum_ttl, found.ttl)
            return Resolution(found.addresses, ttl=ttl)
        raise _Failed(last_error)

    async def _address(self, host: str, port: int, lifetime: float) -> Resolution:
        """A records, else AAAA records: IPv4 first, as most presence deployments are."""
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._query(host, rdtype, lifetime)
            except _NoRecords as exc:
                if exc.nxdomain:
                    raise _Failed(f"NXDOMAIN {host}") from None
                continue
            addresses = tuple((rdata.to_text(), port) for rdata in answer.rrset or ())
            if addresses:
                return Resolution(addresses, ttl=answer.chaining_result.minimum_ttl)
        raise _Failed(f"no A/AAAA record for {host}")

    async def _local(self, host: str, port: int) -> Resolution:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = sorted(
            {(str(info[4][0]), port, info[0]) for info in infos}, key=lambda a: (a[2], a[0])
        )
        if not found:
            raise _Failed(f"{host} has no address in the hosts file")
        return Resolution(tuple((ip, p) for ip, p, _ in found), ttl=self._max_ttl)

    async def _query(self, name: str, rdtype: str, lifetime: float) -> dns.resolver.Answer:
        resolver = self._get_resolver()
        try:
            return await resolver.resolve(name, rdtype, search=False, lifetime=lifetime)
        except dns.resolver.NXDOMAIN:
            raise _NoRecords(nxdomain=True) from None
        except dns.resolver.NoAnswer:
            raise _NoRecords(nxdomain=False) from None
        except dns.resolver.LifetimeTimeout:
            raise _Failed(f"DNS timeout resolving {rdtype} {name}") from None
        except dns.resolver.NoNameservers:
            raise _Failed(f"no nameserver answered {rdtype} {name} (SERVFAIL or refused)") from None

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            if self._nameservers is None:
                try:
                    resolver = dns.asyncresolver.Resolver()
                except dns.resolver.NoResolverConfiguration:
                    raise _Failed("no DNS resolver configured") from None
            else:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = list(self._nameservers)
                resolver.port = self._port
            resolver.cache = None  # this class caches whole RFC 3263 chains itself
            self._resolver = resolver
        return self._resolver


class _NoRecords(Exception):
    """Internal: the name does not exist (NXDOMAIN) or has no record of the type asked."""

    def __init__(self, *, nxdomain: bool) -> None:
        super().__init__("NXDOMAIN" if nxdomain else "no answer")
        self.nxdomain = nxdomain


@functools.lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    """Cached: every probe asks, and targets rarely change."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

"""RFC 3263 resolution against a tiny DNS stand-in on a loopback port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from breaker._config import parse_target
from breaker.probes import SipProbe, SipResolver, TcpProbe
from testbed.sip_standin import SipStandin
from tests.probes.helpers import TIMEOUT, expect, explain, make_cfg
from tests.support.dns_standin import DnsStandin

ProbeFactory = Callable[..., SipProbe]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsStandin]:
    server = await DnsStandin().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def resolver(dns_server: DnsStandin, clock: Clock) -> SipResolver:
    return SipResolver(["127.0.0.1"], port=dns_server.port, timeout=0.5, clock=clock)


SRV_CHOICES = {
    "srv-port": (["10 5 5071 sip1.example.test."], ["sip1"], 5071),
    "lowest-priority-then-highest-weight": (
        ["20 100 5001 a.example.test.", "10 1 5002 b.example.test.", "10 9 5003 c.example.test."],
        ["a", "b", "c"],
        5003,
    ),
    "target-without-address-falls-to-the-next": (
        ["10 5 5001 gone.example.test.", "20 5 5002 b.example.test."],
        ["b"],
        5002,
    ),
}


@pytest.mark.parametrize(("records", "with_a", "port"), SRV_CHOICES.values(), ids=list(SRV_CHOICES))
async def test_srv_gives_the_port_of_the_best_target_that_has_an_address(
    dns_server: DnsStandin, resolver: SipResolver, records: list[str], with_a: list[str], port: int
) -> None:
    """Lowest priority first, then highest weight; a target without an address is skipped."""
    dns_server.add("_sip._udp.example.test", "SRV", 60, *records)
    for host in with_a:
        dns_server.add(f"{host}.example.test", "A", 60, "127.0.0.1")
    found = await resolver.resolve(parse_target("sip:example.test"))
    assert found.ok, found.error
    assert found.addresses == (("127.0.0.1", port),), f"expected port {port}; seen {found}"


async def test_no_srv_falls_back_to_a_on_5060(
    dns_server: DnsStandin, resolver: SipResolver
) -> None:
    dns_server.add("example.test", "A", 60, "127.0.0.1")
    found = await resolver.resolve(parse_target("sip:example.test"))
    assert found.addresses == (("127.0.0.1", 5060),), found
    assert dns_server.queries[("_sip._udp.example.test.", "SRV")] == 1


async def test_aaaa_is_used_when_there_is_no_a(
    dns_server: DnsStandin, resolver: SipResolver
) -> None:
    dns_server.add("example.test", "AAAA", 60, "::1")
    found = await resolver.resolve(parse_target("sip:example.test:5070"))
    assert found.addresses == (("::1", 5070),), found


@pytest.mark.parametrize(
    ("uri", "srv_name", "default_port"),
    [
        ("sip:example.test;transport=tcp", "_sip._tcp.example.test.", 5060),
        ("sips:example.test", "_sips._tcp.example.test.", 5061),
    ],
)
async def test_transport_picks_the_srv_name_and_default_port(
    dns_server: DnsStandin, resolver: SipResolver, uri: str, srv_name: str, default_port: int
) -> None:
    dns_server.add("example.test", "A", 60, "127.0.0.1")
    found = await resolver.resolve(parse_target(uri))
    assert found.addresses == (("127.0.0.1", default_port),), found
    assert dns_server.queries[(srv_name, "SRV")] == 1, dict(dns_server.queries)


async def test_explicit_port_skips_srv(dns_server: DnsStandin, resolver: SipResolver) -> None:
    dns_server.add("example.test", "A", 60, "127.0.0.1")
    found = await resolver.resolve(parse_target("sip:example.test:5099"))
    assert found.addresses == (("127.0.0.1", 5099),), found
    assert [q for q in dns_server.queries if q[1] == "SRV"] == [], dict(dns_server.queries)


async def test_ip_literal_needs_no_dns(dns_server: DnsStandin, resolver: SipResolver) -> None:
    found = await resolver.resolve(parse_target("sip:[::1]"))
    assert found.addresses == (("::1", 5060),), found
    assert not dns_server.queries, dict(dns_server.queries)


async def test_localhost_comes_from_the_hosts_file_not_dns(
    dns_server: DnsStandin, resolver: SipResolver
) -> None:
    found = await resolver.resolve(parse_target("sip:localhost:5070"))
    assert found.ok and ("127.0.0.1", 5070) in found.addresses, found
    assert not dns_server.queries, dict(dns_server.queries)


async def test_answer_is_cached_for_the_minimum_ttl_of_the_chain(
    dns_server: DnsStandin, resolver: SipResolver, clock: Clock
) -> None:
    dns_server.add("_sip._udp.example.test", "SRV", 30, "10 5 5071 sip1.example.test.")
    dns_server.add("sip1.example.test", "A", 10, "127.0.0.1")
    target = parse_target("sip:example.test")
    first = await resolver.resolve(target)
    assert first.ttl == 10, f"expected min(30, 10); seen {first.ttl}"
    clock.now += 9.9
    await resolver.resolve(target)
    assert dns_server.queries[("sip1.example.test.", "A")] == 1, "expected the cached answer"
    clock.now += 0.2
    await resolver.resolve(target)
    assert dns_server.queries[("sip1.example.test.", "A")] == 2, "expected a new query after TTL"


@pytest.mark.parametrize(("record_ttl", "cached_ttl"), [(0, 1.0), (86400, 300.0)])
async def test_ttl_has_a_floor_and_a_cap(
    dns_server: DnsStandin, resolver: SipResolver, record_ttl: int, cached_ttl: float
) -> None:
    dns_server.add("example.test", "A", record_ttl, "127.0.0.1")
    found = await resolver.resolve(parse_target("sip:example.test:5060"))
    assert found.ttl == cached_ttl, f"expected {cached_ttl}, seen {found.ttl}"


async def test_nxdomain_is_a_resolution_error(
    dns_server: DnsStandin, resolver: SipResolver
) -> None:
    found = await resolver.resolve(parse_target("sip:nowhere.test"))
    assert not found.ok and found.error is not None and "NXDOMAIN" in found.error, found


async def test_cached_answer_is_served_while_valid_when_dns_breaks(
    dns_server: DnsStandin, resolver: SipResolver, clock: Clock
) -> None:
    dns_server.add("example.test", "A", 60, "127.0.0.1")
    target = parse_target("sip:example.test:5060")
    assert (await resolver.resolve(target)).ok
    dns_server.remove("example.test")
    clock.now += 59
    assert (await resolver.resolve(target)).ok, "expected the still-valid cached answer"
    clock.now += 2
    found = await resolver.resolve(target)
    assert not found.ok and "NXDOMAIN" in (found.error or ""), found


async def test_failure_is_not_cached(dns_server: DnsStandin, resolver: SipResolver) -> None:
    target = parse_target("sip:late.test:5060")
    assert not (await resolver.resolve(target)).ok
    dns_server.add("late.test", "A", 60, "127.0.0.1")
    assert (await resolver.resolve(target)).ok, "expected a new lookup after a failure"


async def test_servfail_is_a_resolution_error(
    dns_server: DnsStandin, resolver: SipResolver
) -> None:
    dns_server.servfail.add("broken.test.")
    found = await resolver.resolve(parse_target("sip:broken.test:5060"))
    assert not found.ok and found.error, found


async def test_probe_reports_nxdomain_as_dns_failure(
    resolver: SipResolver, sip_probe: ProbeFactory
) -> None:
    result = await sip_probe(make_cfg("sip:nowhere.test"), resolver=resolver).check()
    expect(result, "dns")
    assert "NXDOMAIN" in result.detail, explain(result)


async def test_probe_reports_silent_dns_as_dns_failure_within_its_timeout(
    dns_server: DnsStandin, resolver: SipResolver, sip_probe: ProbeFactory
) -> None:
    dns_server.silent.add("mute.test.")
    started = time.monotonic()
    result = await sip_probe(make_cfg("sip:mute.test:5060"), resolver=resolver).check()
    elapsed = time.monotonic() - started
    expect(result, "dns")
    assert elapsed < TIMEOUT + 0.2, f"expected to give up within the timeout, took {elapsed:.3f}s"


async def test_probe_follows_srv_to_the_server(
    dns_server: DnsStandin, resolver: SipResolver, udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    dns_server.add(
        "_sip._udp.example.test", "SRV", 60, f"10 5 {udp_standin.port} sip1.example.test."
    )
    dns_server.add("sip1.example.test", "A", 60, "127.0.0.1")
    probe = sip_probe(make_cfg("sip:example.test"), resolver=resolver)
    for _ in range(3):
        expect(await probe.check(), "ok")
    assert udp_standin.requests[0].request.uri == "sip:example.test"
    assert dns_server.queries[("sip1.example.test.", "A")] == 1, "expected the answer cached"


async def test_new_srv_answer_after_ttl_moves_the_socket(
    dns_server: DnsStandin,
    resolver: SipResolver,
    clock: Clock,
    udp_standin: SipStandin,
    sip_probe: ProbeFactory,
) -> None:
    other = await SipStandin().start()
    try:
        dns_server.add(
            "_sip._udp.example.test", "SRV", 5, f"10 5 {udp_standin.port} a.example.test."
        )
        dns_server.add("a.example.test", "A", 5, "127.0.0.1")
        probe = sip_probe(make_cfg("sip:example.test"), resolver=resolver)
        expect(await probe.check(), "ok")
        dns_server.add("_sip._udp.example.test", "SRV", 5, f"10 5 {other.port} a.example.test.")
        clock.now += 6
        expect(await probe.check(), "ok")
        assert (udp_standin.total, other.total) == (1, 1), "expected the 2nd probe on the new port"
        assert probe.connections_opened == 2, f"expected a new socket, {probe.connections_opened}"
    finally:
        await other.stop()


async def test_tcp_probe_reports_nxdomain_as_dns_failure(resolver: SipResolver) -> None:
    result = await TcpProbe(make_cfg("tcp://nowhere.test:80"), resolver=resolver).check()
    expect(result, "dns")

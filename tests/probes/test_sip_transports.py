"""What holds over every SIP transport: one socket or connection reused, a frozen server
times out within the timeout and is seen again when it resumes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from breaker.probes import SipProbe
from tests.probes.helpers import SLACK, TIMEOUT, expect, explain, make_cfg
from tests.support.sip_standin import SipStandin

ProbeFactory = Callable[..., SipProbe]


@pytest.fixture(params=["udp", "tcp"])
def each_transport(request: pytest.FixtureRequest) -> tuple[str, SipStandin]:
    """Each transport in turn, with its stand-in started."""
    transport = str(request.param)
    return transport, request.getfixturevalue(f"{transport}_standin")


def probe_for(sip_probe: ProbeFactory, transport: str, standin: SipStandin) -> SipProbe:
    return sip_probe(make_cfg(f"sip:127.0.0.1:{standin.port};transport={transport}"))


async def test_one_socket_or_connection_is_reused_for_50_probes(
    each_transport: tuple[str, SipStandin], sip_probe: ProbeFactory
) -> None:
    transport, standin = each_transport
    probe = probe_for(sip_probe, transport, standin)
    for i in range(50):
        result = await probe.check()
        assert result.ok, f"probe {i}: {explain(result)}"
    assert standin.counts["OPTIONS"] == 50, f"expected 50 OPTIONS, seen {standin.counts}"
    seen = len(standin.udp_sources) if transport == "udp" else standin.tcp_connections
    assert seen == 1, f"expected one source port or connection at the server, seen {seen}"
    assert probe.connections_opened == 1, f"expected 1 socket, seen {probe.connections_opened}"


async def test_frozen_server_times_out_within_timeout_and_is_seen_again_on_resume(
    each_transport: tuple[str, SipStandin], sip_probe: ProbeFactory
) -> None:
    transport, standin = each_transport
    probe = probe_for(sip_probe, transport, standin)
    expect(await probe.check(), "ok")
    standin.freeze()
    started = time.monotonic()
    result = await probe.check()
    elapsed = time.monotonic() - started
    expect(result, "timeout")
    assert result.rtt is None, explain(result)
    await standin.wait_for(lambda: standin.counts["OPTIONS"] == 2, what="2 OPTIONS received")
    assert TIMEOUT - 0.01 <= elapsed < TIMEOUT + SLACK, f"expected ~{TIMEOUT}s, seen {elapsed:.3f}s"
    standin.resume()
    expect(await probe.check(), "ok")

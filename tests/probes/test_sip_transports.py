"""What holds over every SIP transport: a well-formed OPTIONS, a 503 is a failure, one
socket or connection reused, a frozen server times out within the timeout and is seen
again when it resumes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from breaker.probes import SipProbe
from testbed.sip_standin import SipStandin
from tests.probes.helpers import SLACK, TIMEOUT, expect, explain, make_cfg

ProbeFactory = Callable[..., SipProbe]


@pytest.fixture(params=["udp", "tcp"])
def each_transport(request: pytest.FixtureRequest) -> tuple[str, SipStandin]:
    """Each transport in turn, with its stand-in started."""
    transport = str(request.param)
    return transport, request.getfixturevalue(f"{transport}_standin")


def probe_for(sip_probe: ProbeFactory, transport: str, standin: SipStandin) -> SipProbe:
    return sip_probe(make_cfg(f"sip:127.0.0.1:{standin.port};transport={transport}"))


async def test_options_request_is_well_formed(
    each_transport: tuple[str, SipStandin], sip_probe: ProbeFactory
) -> None:
    transport, standin = each_transport
    probe = probe_for(sip_probe, transport, standin)
    result = await probe.check()
    expect(result, "ok")
    assert result.rtt is not None, explain(result)
    request = standin.requests[0].request
    local = probe.local_address
    assert local is not None and standin.requests[0].source == local
    uri_tail = ";transport=tcp" if transport == "tcp" else ""  # UDP is the default
    assert request.uri == f"sip:127.0.0.1:{standin.port}{uri_tail}", request.uri
    via = request.get("via") or ""
    assert via.startswith(f"SIP/2.0/{transport.upper()} 127.0.0.1:{local[1]};branch=z9hG4bK"), via
    assert via.endswith(";rport"), via
    assert request.get("max-forwards") == "70"
    assert ";tag=" in (request.get("from") or ""), request.get("from")
    assert request.get("to") == f"<sip:127.0.0.1:{standin.port}{uri_tail}>", request.get("to")
    assert request.get("call-id"), "expected a Call-ID"
    assert (request.get("cseq") or "").endswith(" OPTIONS"), request.get("cseq")
    contact = f"<sip:breaker-probe@127.0.0.1:{local[1]}{uri_tail}>"
    assert request.get("contact") == contact, request.get("contact")
    assert request.get("user-agent") == "breaker"
    assert request.get("content-length") == "0"


async def test_503_is_failure_status_503_with_rtt(
    each_transport: tuple[str, SipStandin], sip_probe: ProbeFactory
) -> None:
    transport, standin = each_transport
    standin.code = 503
    result = await probe_for(sip_probe, transport, standin).check()
    expect(result, "status 503")
    assert result.detail == "SIP/2.0 503 Service Unavailable", explain(result)
    assert result.rtt is not None, f"expected an rtt for an answer; {explain(result)}"


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

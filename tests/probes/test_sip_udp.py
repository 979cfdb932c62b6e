"""SIP OPTIONS over UDP against the in-process stand-in."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from breaker.probes import SipProbe
from breaker.probes._sipmsg import parse_request
from testbed.procs import free_port
from testbed.sip_standin import SipStandin
from tests.probes.helpers import TIMEOUT, expect, explain, make_cfg

ProbeFactory = Callable[..., SipProbe]


def target(standin: SipStandin) -> str:
    return f"sip:127.0.0.1:{standin.port}"


async def test_options_200_is_ok_with_rtt(udp_standin: SipStandin, sip_probe: ProbeFactory) -> None:
    before = time.time()
    result = await sip_probe(make_cfg(target(udp_standin))).check()
    expect(result, "ok")
    assert result.rtt is not None and 0 <= result.rtt < TIMEOUT, explain(result)
    assert result.detail == "SIP/2.0 200 OK", explain(result)
    assert before <= result.at <= time.time(), f"expected `at` to be now; {explain(result)}"
    assert udp_standin.counts == {"OPTIONS": 1}, f"expected one OPTIONS, seen {udp_standin.counts}"


async def test_answer_slower_than_slow_threshold_is_slow(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    udp_standin.delay = 0.15
    result = await sip_probe(make_cfg(target(udp_standin), slow=0.05)).check()
    expect(result, "slow")
    assert result.rtt is not None and result.rtt >= 0.15, explain(result)


async def test_closed_udp_port_is_icmp_unreachable_before_timeout(sip_probe: ProbeFactory) -> None:
    port = free_port()
    started = time.monotonic()
    result = await sip_probe(make_cfg(f"sip:127.0.0.1:{port}")).check()
    elapsed = time.monotonic() - started
    expect(result, "icmp-unreachable")
    assert elapsed < TIMEOUT, f"expected an immediate failure, took {elapsed:.3f}s"


async def test_provisional_100_then_200_is_ok(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    udp_standin.provisional = True
    udp_standin.delay = 0.02
    result = await sip_probe(make_cfg(target(udp_standin))).check()
    expect(result, "ok")
    assert result.detail == "SIP/2.0 200 OK", explain(result)


async def test_provisional_only_times_out_and_says_so(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    udp_standin.responder = lambda req: [udp_standin.answer(req, 100)]
    result = await sip_probe(make_cfg(target(udp_standin))).check()
    expect(result, "timeout")
    assert "100 Trying" in result.detail, explain(result)


async def test_each_probe_is_a_new_transaction(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(make_cfg(target(udp_standin)))
    for _ in range(3):
        await probe.check()
    txns = [r.request.transaction for r in udp_standin.requests]
    assert all(t is not None for t in txns)
    branches = {t.branch for t in txns if t}
    cseqs = [t.cseq for t in txns if t]
    assert len(branches) == 3, f"expected 3 distinct branches, seen {branches}"
    assert cseqs == sorted(set(cseqs)), f"expected increasing CSeq, seen {cseqs}"


async def test_dead_codes_decide_when_alive_codes_unset(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    udp_standin.code = 404
    expect(await sip_probe(make_cfg(target(udp_standin))).check(), "ok")
    udp_standin.code = 480
    cfg = make_cfg(target(udp_standin), dead_codes=(480,))
    expect(await sip_probe(cfg).check(), "status 480")


async def test_alive_codes_when_set_are_the_only_alive_codes(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    cfg = make_cfg(target(udp_standin), alive_codes=(200,))
    udp_standin.code = 404
    expect(await sip_probe(cfg).check(), "status 404")
    udp_standin.code = 503
    cfg = make_cfg(target(udp_standin), alive_codes=(200, 503))
    expect(await sip_probe(cfg).check(), "ok")


async def test_localhost_target_works_without_dns(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    result = await sip_probe(make_cfg(f"sip:localhost:{udp_standin.port}")).check()
    expect(result, "ok")
    request = udp_standin.requests[0].request
    assert request.uri == f"sip:localhost:{udp_standin.port}", request.uri


async def test_unexpected_internal_error_is_a_result_not_an_exception(
    udp_standin: SipStandin, sip_probe: ProbeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = sip_probe(make_cfg(target(udp_standin)))

    def broken(*args: object) -> bytes:
        raise RuntimeError("bug")

    monkeypatch.setattr(probe, "_options_request", broken)
    result = await probe.check()
    expect(result, "error")
    assert "bug" in result.detail, explain(result)


async def test_request_parsing_sanity(udp_standin: SipStandin, sip_probe: ProbeFactory) -> None:
    # the stand-in's parser must see exactly what was sent: a request, not garbage
    await sip_probe(make_cfg(target(udp_standin))).check()
    assert udp_standin.garbage == 0
    assert parse_request(b"not sip") is None

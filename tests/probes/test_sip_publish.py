"""PUBLISH probes (RFC 3903): one publication, refreshed by entity-tag, re-created on 412."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from breaker._config import BreakerConfig
from breaker.probes import SipProbe
from testbed.sip_standin import SipStandin
from tests.probes.helpers import expect, explain, make_cfg

ProbeFactory = Callable[..., SipProbe]


def publish_cfg(standin: SipStandin, transport: str = "", **kw: object) -> BreakerConfig:
    return make_cfg(f"sip:127.0.0.1:{standin.port}{transport}", method="PUBLISH", **kw)


async def test_initial_publish_carries_the_mwi_document(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(publish_cfg(udp_standin, interval=8.0))
    expect(await probe.check(), "ok")
    request = udp_standin.requests[0].request
    assert request.method == "PUBLISH"
    assert request.uri == f"sip:breaker-probe@127.0.0.1:{udp_standin.port}", request.uri
    assert request.get("to") == "<sip:breaker-probe@127.0.0.1>", request.get("to")
    assert (request.get("from") or "").startswith("<sip:breaker-probe@127.0.0.1>;tag=")
    assert request.get("event") == "message-summary"
    assert request.get("content-type") == "application/simple-message-summary"
    assert request.body == b"Messages-Waiting: no\r\n", request.body
    assert request.get("expires") == "80", (
        f"expected max(60, 10 x 8 s), seen {request.get('expires')}"
    )
    assert request.get("sip-if-match") is None
    assert probe.etag == next(iter(udp_standin.publications)), "expected the SIP-ETag kept"


async def test_expires_is_at_least_60_seconds(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    await sip_probe(publish_cfg(udp_standin, interval=0.5)).check()
    assert udp_standin.requests[0].request.get("expires") == "60"


async def test_later_probes_refresh_with_sip_if_match_and_no_body(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(publish_cfg(udp_standin))
    for i in range(10):
        etag_before = probe.etag
        result = await probe.check()
        assert result.ok, f"probe {i}: {explain(result)}"
        request = udp_standin.requests[-1].request
        assert request.get("sip-if-match") == etag_before, f"probe {i}: expected the last etag"
        if etag_before is not None:
            assert request.body == b"" and request.get("content-type") is None, f"probe {i}"
    assert udp_standin.publish_log == ["initial"] + ["refresh"] * 9, udp_standin.publish_log
    assert udp_standin.active_publications() == 1, "expected one publication, not a pile"


async def test_412_on_refresh_publishes_anew_within_the_same_probe(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(publish_cfg(udp_standin))
    expect(await probe.check(), "ok")
    udp_standin.forget_publications()  # the server restarted with an empty table
    result = await probe.check()
    expect(result, "ok")
    assert udp_standin.publish_log == ["initial", "412", "initial"], udp_standin.publish_log
    assert udp_standin.active_publications() == 1
    expect(await probe.check(), "ok")
    assert udp_standin.publish_log[-1] == "refresh", udp_standin.publish_log


async def test_412_without_time_to_spare_publishes_anew_on_the_next_probe(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(publish_cfg(udp_standin, slow=0.25))
    expect(await probe.check(), "ok")
    udp_standin.forget_publications()
    udp_standin.delay = 0.12  # another round trip would not fit in the 0.3 s timeout
    result = await probe.check()
    expect(result, "ok")  # 412 is a final answer that is not dead: the server works
    assert "412" in result.detail, explain(result)
    assert udp_standin.publish_log == ["initial", "412"], udp_standin.publish_log
    expect(await probe.check(), "ok")
    assert udp_standin.publish_log == ["initial", "412", "initial"], udp_standin.publish_log


async def test_412_counts_as_failure_when_only_200_is_alive(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(publish_cfg(udp_standin, alive_codes=(200,), slow=0.25))
    expect(await probe.check(), "ok")
    udp_standin.forget_publications()
    udp_standin.delay = 0.12
    expect(await probe.check(), "status 412")


async def test_423_interval_too_brief_adopts_min_expires(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    udp_standin.min_expires = 120
    probe = sip_probe(publish_cfg(udp_standin, alive_codes=(200,)))
    expect(await probe.check(), "status 423")
    expect(await probe.check(), "ok")
    assert udp_standin.requests[-1].request.get("expires") == "120"


async def test_close_withdraws_the_publication(udp_standin: SipStandin) -> None:
    probe = SipProbe(publish_cfg(udp_standin))
    expect(await probe.check(), "ok")
    await probe.aclose()
    assert udp_standin.publish_log == ["initial", "remove"], udp_standin.publish_log
    last = udp_standin.requests[-1].request
    assert last.get("expires") == "0" and last.get("sip-if-match") is not None
    assert udp_standin.active_publications() == 0


async def test_publish_over_tcp_refreshes_too(
    tcp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(publish_cfg(tcp_standin, ";transport=tcp"))
    for _ in range(3):
        expect(await probe.check(), "ok")
    assert tcp_standin.publish_log == ["initial", "refresh", "refresh"], tcp_standin.publish_log
    assert tcp_standin.requests[0].request.uri.endswith(";transport=tcp")


async def test_presence_event_publishes_a_pidf_document(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    expect(await sip_probe(publish_cfg(udp_standin, event="presence")).check(), "ok")
    request = udp_standin.requests[0].request
    assert request.get("event") == "presence"
    assert request.get("content-type") == "application/pidf+xml"
    assert b'entity="sip:breaker-probe@127.0.0.1"' in request.body, request.body


def test_unsupported_event_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="dialog"):
        SipProbe(make_cfg("sip:127.0.0.1:5060", method="PUBLISH", event="dialog"))

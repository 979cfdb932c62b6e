"""Stray, late, duplicated and malformed messages are ignored; the prober never crashes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from breaker._config import BreakerConfig
from breaker.probes import SipProbe
from breaker.probes._sipmsg import SipRequest, parse_cseq
from testbed.sip_standin import SipStandin
from tests.probes.helpers import eventually, expect, explain, forged, make_cfg

ProbeFactory = Callable[..., SipProbe]


def udp_cfg(standin: SipStandin, **kw: object) -> BreakerConfig:
    return make_cfg(f"sip:127.0.0.1:{standin.port}", **kw)


def tcp_cfg(standin: SipStandin, **kw: object) -> BreakerConfig:
    return make_cfg(f"sip:127.0.0.1:{standin.port};transport=tcp", **kw)


def next_cseq(request: SipRequest) -> str:
    number, method = parse_cseq(request.get("cseq")) or (0, "")
    return f"{number + 1} {method}"


async def ok_after_ignoring(
    standin: SipStandin,
    cfg: BreakerConfig,
    sip_probe: ProbeFactory,
    junk: Callable[[SipRequest], Sequence[bytes]],
    ignored: int,
) -> None:
    """One check with `junk(request)` sent before the right answer: ok, `ignored` dropped."""
    standin.responder = lambda req: [*junk(req), standin.answer(req)]
    probe = sip_probe(cfg)
    expect(await probe.check(), "ok")
    assert probe.ignored == ignored, f"expected {ignored} ignored, seen {probe.ignored}"


GARBAGE: list[bytes] = [
    b"",
    b"\x00\xff\xfe garbage",
    b"\r\n\r\n",
    b"SIP/2.0 200 OK",
    b"SIP/2.0 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"SIP/2.0 2x0 OK\r\nCSeq: 1 OPTIONS\r\n\r\n",
    "SIP/2.0 200 \u00e9t\u00e9\r\nVia: \xff\r\n\r\n".encode("latin-1"),
    b"OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n",
    b"X" * 65000,
]


async def test_garbage_before_the_answer_is_ignored(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    sent = len([g for g in GARBAGE if g])  # asyncio does not send empty datagrams
    await ok_after_ignoring(udp_standin, udp_cfg(udp_standin), sip_probe, lambda _: GARBAGE, sent)


def _wrong_branch(req: SipRequest) -> bytes:
    return forged(req, branch="z9hG4bKnot-ours")


def _wrong_call_id(req: SipRequest) -> bytes:
    return forged(req, call_id="someone-else@example")


def _wrong_cseq_number(req: SipRequest) -> bytes:
    return forged(req, cseq=next_cseq(req))


def _wrong_cseq_method(req: SipRequest) -> bytes:
    number = (parse_cseq(req.get("cseq")) or (0, ""))[0]
    return forged(req, cseq=f"{number} INVITE")


MISMATCHED = pytest.mark.parametrize(
    "mismatch",
    [_wrong_branch, _wrong_call_id, _wrong_cseq_number, _wrong_cseq_method],
    ids=["wrong-branch", "wrong-call-id", "wrong-cseq-number", "wrong-cseq-method"],
)


@MISMATCHED
async def test_mismatched_response_alone_is_ignored_so_the_probe_times_out(
    udp_standin: SipStandin, sip_probe: ProbeFactory, mismatch: Callable[[SipRequest], bytes]
) -> None:
    udp_standin.responder = lambda req: [mismatch(req)]
    probe = sip_probe(udp_cfg(udp_standin))
    expect(await probe.check(), "timeout")
    assert probe.ignored == 1, f"expected 1 ignored response, seen {probe.ignored}"


@MISMATCHED
async def test_mismatched_response_before_the_right_one_does_not_count(
    udp_standin: SipStandin, sip_probe: ProbeFactory, mismatch: Callable[[SipRequest], bytes]
) -> None:
    # the forged one says 503: had it matched, the probe would fail with status 503
    def forged_503(req: SipRequest) -> list[bytes]:
        return [mismatch(req).replace(b"200 OK", b"503 Service Unavailable")]

    await ok_after_ignoring(udp_standin, udp_cfg(udp_standin), sip_probe, forged_503, 1)


@pytest.mark.parametrize(
    ("then_right", "second"), [(False, "timeout"), (True, "ok")], ids=["alone", "then-right"]
)
async def test_late_response_of_previous_probe_does_not_answer_the_next(
    udp_standin: SipStandin, sip_probe: ProbeFactory, then_right: bool, second: str
) -> None:
    """Probe 1's answer (a 503) arrives during probe 2, alone or before probe 2's own."""
    held: list[bytes] = []

    def hold_first(req: SipRequest) -> Sequence[bytes]:
        if not held:
            held.append(udp_standin.answer(req, 503))
            return []  # probe 1 gets nothing now...
        return [held[0], *([udp_standin.answer(req)] if then_right else [])]  # ...but later

    udp_standin.responder = hold_first
    probe = sip_probe(udp_cfg(udp_standin))
    expect(await probe.check(), "timeout")
    expect(await probe.check(), second)
    assert probe.ignored == 1, f"expected the late answer to be ignored, ignored={probe.ignored}"


async def test_duplicated_response_is_harmless_for_the_next_probe(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    udp_standin.responder = lambda req: [udp_standin.answer(req)] * 3
    probe = sip_probe(udp_cfg(udp_standin))
    for i in range(3):
        result = await probe.check()
        assert result.ok, f"probe {i}: {explain(result)}"
    await eventually(lambda: probe.ignored == 6, what="6 duplicates ignored")


async def test_unsolicited_datagram_between_probes_is_ignored(
    udp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(udp_cfg(udp_standin))
    expect(await probe.check(), "ok")
    stray = udp_standin.answer(udp_standin.requests[0].request, 503)
    udp_standin.send_udp(stray)
    expect(await probe.check(), "ok")
    assert probe.ignored == 1, f"expected the stray answer ignored, ignored={probe.ignored}"


@pytest.mark.parametrize("cut", [1, 10, 30, 60, 100, -40, -3, -1])
async def test_truncated_response_is_ignored(
    udp_standin: SipStandin, sip_probe: ProbeFactory, cut: int
) -> None:
    def truncated(req: SipRequest) -> Sequence[bytes]:
        answer = udp_standin.answer(req, 503)
        answer = answer.replace(b"Content-Length: 0", b"Content-Length: 4") + b"body"
        return [answer[:cut]]

    udp_standin.responder = truncated
    probe = sip_probe(udp_cfg(udp_standin))
    expect(await probe.check(), "timeout")
    assert probe.ignored == 1, f"expected 1 ignored, seen {probe.ignored}"


MALFORMED = {
    "bad-status-code": (b"SIP/2.0 503 ", b"SIP/2.0 5o3 "),
    "bad-version": (b"SIP/2.0 503 ", b"SIP/3.0 503 "),
    "content-length-too-long": (b"Content-Length: 0", b"Content-Length: 50"),
    "content-length-not-a-number": (b"Content-Length: 0", b"Content-Length: zero"),
    "header-without-colon": (b"\r\nCSeq:", b"\r\nGarbage line\r\nCSeq:"),
    "no-via": (b"Via:", b"Xia:"),
    "cseq-not-a-number": (b"CSeq: ", b"CSeq: x"),
    "bare-lf": (b"\r\n", b"\n"),
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_response_is_ignored_and_the_right_one_still_matches(
    udp_standin: SipStandin, sip_probe: ProbeFactory, change: tuple[bytes, bytes]
) -> None:
    def malformed(req: SipRequest) -> list[bytes]:
        return [udp_standin.answer(req, 503).replace(*change)]

    await ok_after_ignoring(udp_standin, udp_cfg(udp_standin), sip_probe, malformed, 1)


async def test_response_split_over_tcp_segments_is_reassembled(
    tcp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    def split(req: SipRequest) -> Sequence[bytes]:
        answer = tcp_standin.answer(req)
        return [b"\r\n\r\n", answer[:7], answer[7:40], answer[40:]]

    tcp_standin.responder = split
    expect(await sip_probe(tcp_cfg(tcp_standin)).check(), "ok")


async def test_garbage_messages_on_tcp_are_ignored(
    tcp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    def junk(req: SipRequest) -> list[bytes]:
        framed = b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        return [b"junk\r\n\r\n", framed, _wrong_branch(req)]

    await ok_after_ignoring(tcp_standin, tcp_cfg(tcp_standin), sip_probe, junk, 3)


async def test_unframeable_tcp_stream_fails_the_probe_and_reconnects_next_time(
    tcp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    tcp_standin.responder = lambda req: [b"SIP/2.0 200 OK\r\nContent-Length: lots\r\n\r\n"]
    probe = sip_probe(tcp_cfg(tcp_standin))
    result = await probe.check()
    expect(result, "error")
    assert "Content-Length" in result.detail, explain(result)
    tcp_standin.responder = None
    expect(await probe.check(), "ok")
    assert tcp_standin.tcp_connections == 2, (
        f"expected a reconnect, seen {tcp_standin.tcp_connections}"
    )

"""The TCP/TLS framer reads Content-Length wherever and however a server writes it.

Property tests: header order, the header's spelling (case, compact `l`, spaces before the
colon, folding) and the points where the byte stream is split are all random.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breaker.probes import SipProbe
from breaker.probes._framing import FramingError, StreamFramer
from breaker.probes._sipmsg import SipRequest, parse_response
from testbed.sip_standin import SipStandin
from tests.probes.helpers import expect, forged, make_cfg

OTHER_HEADERS = [
    "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKabc;rport=5060",
    "From: <sip:probe@127.0.0.1>;tag=1",
    "To: <sip:127.0.0.1>;tag=2",
    "Call-ID: abc@breaker",
    "Server: stand-in",
    "Content-Type: text/plain",
    "X-Folded: first part\r\n  second part",
]


def length_header(style: int, length: int) -> str:
    """Content-Length in one of the spellings RFC 3261 allows (7.3.1 and 7.3.3)."""
    return [
        f"Content-Length: {length}",
        f"content-length:{length}",
        f"CONTENT-LENGTH  :   {length}",
        f"l: {length}",
        f"L:{length}",
        f"Content-Length:\r\n {length}",  # folded onto a continuation line
        f"Content-Length: \t{length}\t",
    ][style]


@st.composite
def responses(draw: st.DrawFn, cseq: int) -> tuple[bytes, bytes]:
    """A response with its Content-Length anywhere among the headers; (wire bytes, body)."""
    body = draw(st.binary(max_size=200))
    others = draw(st.permutations(OTHER_HEADERS))
    headers = [*others[: draw(st.integers(0, len(others)))], f"CSeq: {cseq} OPTIONS"]
    style = draw(st.integers(0, 6))
    headers.insert(draw(st.integers(0, len(headers))), length_header(style, len(body)))
    head = "SIP/2.0 200 OK\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return head.encode() + body, body


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    count = draw(st.integers(1, 4))
    return [draw(responses(cseq)) for cseq in range(1, count + 1)]


@given(
    messages=streams(),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    keepalive=st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]),
)
def test_framer_cuts_messages_with_content_length_anywhere_split_anywhere(
    messages: list[tuple[bytes, bytes]], cuts: list[int], keepalive: bytes
) -> None:
    stream = keepalive.join(raw for raw, _ in messages)
    points = sorted({min(c, len(stream)) for c in cuts})
    framer = StreamFramer()
    out: list[bytes] = []
    start = 0
    for point in [*points, len(stream)]:
        out += framer.feed(stream[start:point])
        start = point
    assert out == [raw for raw, _ in messages], "expected each message whole, in order"
    for (raw, body), framed in zip(messages, out, strict=True):
        parsed = parse_response(framed)
        assert parsed is not None, f"expected {framed[:60]!r} to parse"
        assert parsed.body == body, f"expected body {body!r}, parsed {parsed.body!r}"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Content-Length: -1", "negative Content-Length"),
        ("l: -20", "negative Content-Length"),
        ("Content-Length: 99999999999999999999", "absurd Content-Length"),
        ("Content-Length: 1e3", "unreadable Content-Length"),
        ("Content-Length: ", "unreadable Content-Length"),
        ("Content-Length: 10\r\nl: 12", "conflicting Content-Length"),
        ("Content-Length: 9999999", "too large"),
    ],
)
def test_framer_refuses_bad_lengths_with_a_reason(header: str, reason: str) -> None:
    raw = f"SIP/2.0 200 OK\r\n{header}\r\nCSeq: 1 OPTIONS\r\n\r\n".encode()
    with pytest.raises(FramingError, match=reason):
        StreamFramer().feed(raw)


def test_framer_accepts_repeated_equal_lengths() -> None:
    raw = b"SIP/2.0 200 OK\r\nl: 3\r\nContent-Length: 3\r\n\r\nabc"
    assert StreamFramer().feed(raw) == [raw]


async def test_tcp_probe_with_body_and_content_length_first_is_not_confused(
    tcp_standin: SipStandin, sip_probe: Callable[..., SipProbe]
) -> None:
    """A mismatched 503 with a body (Content-Length first) precedes the right 200: the
    framer must cut it whole so its body does not corrupt the real answer."""

    def reply(req: SipRequest) -> list[bytes]:
        wrong = forged(req, 503, branch="z9hG4bKnot-ours")
        head, _, _ = wrong.partition(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.startswith(b"Content-Length")]
        moved = [lines[0], b"Content-Length: 11", *lines[1:]]
        return [b"\r\n".join(moved) + b"\r\n\r\nhello world", tcp_standin.answer(req)]

    tcp_standin.responder = reply
    probe = sip_probe(make_cfg(f"sip:127.0.0.1:{tcp_standin.port};transport=tcp"))
    expect(await probe.check(), "ok")
    expect(await probe.check(), "ok")
    assert probe.ignored == 2, f"expected the 2 mismatched answers ignored, seen {probe.ignored}"
    assert probe.connections_opened == 1, "the stream must stay in sync on one connection"

"""Building and parsing SIP messages: pure functions, so property tests fit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breaker.probes._framing import FramingError, StreamFramer
from breaker.probes._sipmsg import (
    SipResponse,
    Transaction,
    build_request,
    format_message,
    parse_message,
    parse_request,
    parse_response,
)

TXN = Transaction(branch="z9hG4bKabc", call_id="cid@breaker", cseq=7, method="OPTIONS")

RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5555;branch=z9hG4bKabc;rport=5555;received=127.0.0.1\r\n"
    b"From: <sip:breaker-probe@example.com>;tag=1\r\n"
    b"To: <sip:example.com>;tag=2\r\n"
    b"Call-ID: cid@breaker\r\n"
    b"CSeq: 7 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def request(**kw: object) -> bytes:
    args: dict[str, object] = {
        "transport": "UDP",
        "local_host": "127.0.0.1",
        "local_port": 5555,
        "txn": TXN,
        "from_uri": "sip:breaker-probe@example.com",
        "from_tag": "1",
        "to_uri": "sip:example.com",
    }
    args.update(kw)
    return build_request("OPTIONS", "sip:example.com", **args)  # type: ignore[arg-type]


def test_built_request_has_every_mandatory_header_in_order() -> None:
    lines = request(contact_uri="sip:breaker-probe@127.0.0.1:5555").decode().split("\r\n")
    assert lines[0] == "OPTIONS sip:example.com SIP/2.0"
    assert lines[1:10] == [
        "Via: SIP/2.0/UDP 127.0.0.1:5555;branch=z9hG4bKabc;rport",
        "Max-Forwards: 70",
        "From: <sip:breaker-probe@example.com>;tag=1",
        "To: <sip:example.com>",
        "Call-ID: cid@breaker",
        "CSeq: 7 OPTIONS",
        "Contact: <sip:breaker-probe@127.0.0.1:5555>",
        "User-Agent: breaker",
        "Content-Length: 0",
    ]
    assert lines[10:] == ["", ""], "expected the message to end with an empty line"


def test_built_request_parses_back_with_its_transaction() -> None:
    parsed = parse_request(request(body=b"hello", headers=[("Content-Type", "text/plain")]))
    assert parsed is not None and parsed.method == "OPTIONS"
    assert parsed.transaction == TXN
    assert parsed.body == b"hello" and parsed.get("content-length") == "5"


def test_ipv6_local_address_is_bracketed_in_via() -> None:
    assert b"Via: SIP/2.0/UDP [::1]:5555;" in request(local_host="::1")


def test_header_injection_is_refused_when_building() -> None:
    with pytest.raises(ValueError, match="header"):
        request(headers=[("Event", "x\r\nEvil: yes")])


def test_response_transaction_is_read_from_top_via_call_id_and_cseq() -> None:
    parsed = parse_response(RESPONSE)
    assert parsed is not None and parsed.status == 200 and parsed.reason == "OK"
    assert parsed.transaction == TXN


def test_compact_header_names_and_folding_are_understood() -> None:
    raw = (
        b"SIP/2.0 486 Busy Here\r\n"
        b"v: SIP/2.0/TCP 127.0.0.1:5555\r\n ;branch=z9hG4bKabc,"
        b" SIP/2.0/UDP other;branch=z9hG4bKx\r\n"
        b"i: cid@breaker\r\n"
        b"CSeq:   7   OPTIONS  \r\n"
        b"l: 0\r\n\r\n"
    )
    parsed = parse_response(raw)
    assert parsed is not None, "expected compact/folded headers to parse"
    assert parsed.transaction == TXN, parsed.transaction


def test_only_the_top_via_counts() -> None:
    raw = RESPONSE.replace(b"Via:", b"Via: SIP/2.0/UDP proxy;branch=z9hG4bKproxy\r\nVia:", 1)
    parsed = parse_response(raw)
    assert parsed is not None and parsed.transaction is not None
    assert parsed.transaction.branch == "z9hG4bKproxy"


def test_body_is_cut_to_content_length_and_leading_crlf_tolerated() -> None:
    raw = b"\r\n" + RESPONSE.replace(b"Content-Length: 0", b"Content-Length: 3") + b"abcdef"
    parsed = parse_response(raw)
    assert parsed is not None and parsed.body == b"abc"


def test_missing_content_length_over_udp_means_body_to_the_end() -> None:
    raw = RESPONSE.replace(b"Content-Length: 0\r\n", b"") + b"xyz"
    parsed = parse_response(raw)
    assert parsed is not None and parsed.body == b"xyz"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        RESPONSE[:-2],
        RESPONSE.replace(b"Content-Length: 0", b"Content-Length: 9"),
        RESPONSE.replace(b"Content-Length: 0", b"Content-Length: -1"),
        RESPONSE.replace(b"Content-Length: 0", b"Content-Length: 0\r\nContent-Length: 1"),
        RESPONSE.replace(b"SIP/2.0 200", b"SIP/2.0 700"),
        RESPONSE.replace(b"SIP/2.0 200", b"SIP/2.0 099"),
        RESPONSE.replace(b"SIP/2.0 200 OK", b"SIP/2.0 200 O\x01K"),
        RESPONSE.replace(b"\r\nFrom", b"\r\nBad Header: x\r\nFrom"),
        b" continuation first\r\n" + RESPONSE,
    ],
    ids=[
        "empty",
        "no-blank-line",
        "truncated-body",
        "negative-length",
        "conflicting-lengths",
        "status-700",
        "status-099",
        "control-char",
        "space-in-name",
        "leading-fold",
    ],
)
def test_malformed_messages_parse_to_none(raw: bytes) -> None:
    assert parse_message(raw) is None, f"expected None for {raw[:60]!r}"


def test_transaction_is_none_without_branch_or_with_bad_cseq() -> None:
    no_branch = parse_response(RESPONSE.replace(b";branch=z9hG4bKabc", b""))
    bad_cseq = parse_response(RESPONSE.replace(b"CSeq: 7 OPTIONS", b"CSeq: 99999999999 OPTIONS"))
    assert no_branch is not None and no_branch.transaction is None
    assert bad_cseq is not None and bad_cseq.transaction is None


@settings(max_examples=500)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parsed = parse_message(data)
    if parsed is not None:
        _ = parsed.transaction


SIP_FRAGMENTS = st.sampled_from(
    [
        b"SIP/2.0 ",
        b"200 OK",
        b"183",
        b"\r\n",
        b"\r\n\r\n",
        b": ",
        b"Via",
        b"v",
        b";branch=",
        b"z9hG4bK",
        b",",
        b"CSeq",
        b" 1 OPTIONS",
        b"Call-ID",
        b"Content-Length",
        b"l",
        b"0",
        b"99",
        b" ",
        b"\t",
        b"\xff",
        b"\x00",
        b"\xc3\xa9",
    ]
)


@settings(max_examples=500)
@given(st.lists(SIP_FRAGMENTS, max_size=60).map(b"".join))
def test_sip_like_noise_never_raises(data: bytes) -> None:
    parsed = parse_message(data)
    if parsed is not None:
        _ = parsed.transaction


TOKEN_CHARS = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
HEADER_NAMES = st.text(TOKEN_CHARS, min_size=2, max_size=20).filter(
    lambda n: n.lower() != "content-length"
)
HEADER_VALUES = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=40
).map(str.strip)
REASONS = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(str.strip)


@given(
    status=st.integers(100, 699),
    reason=REASONS,
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8),
    body=st.binary(max_size=300),
)
def test_well_formed_response_round_trips(
    status: int, reason: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    raw = format_message(f"SIP/2.0 {status} {reason}".rstrip(), headers, body)
    parsed = parse_response(raw)
    assert parsed is not None, f"expected {raw[:80]!r} to parse"
    assert (parsed.status, parsed.reason, parsed.body) == (status, reason, body)
    expected = [(n.lower(), v) for n, v in headers] + [("content-length", str(len(body)))]
    assert list(parsed.headers) == expected


@given(
    bodies=st.lists(st.binary(max_size=100), min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 50), max_size=20),
    keepalives=st.booleans(),
)
def test_stream_framer_recovers_messages_from_any_chunking(
    bodies: list[bytes], cuts: list[int], keepalives: bool
) -> None:
    messages = [
        format_message("SIP/2.0 200 OK", [("CSeq", f"{i} OPTIONS")], b)
        for i, b in enumerate(bodies)
    ]
    stream = (b"\r\n\r\n" if keepalives else b"").join(messages)
    framer = StreamFramer()
    out: list[bytes] = []
    position = 0
    for cut in cuts:
        out += framer.feed(stream[position : position + cut])
        position += cut
    out += framer.feed(stream[position:])
    assert out == messages


@given(st.binary(max_size=3000))
def test_stream_framer_on_noise_only_raises_framing_error(data: bytes) -> None:
    framer = StreamFramer(max_message=1000)
    try:
        for message in framer.feed(data):
            parse_message(message)
    except FramingError:
        pass


def test_stream_framer_refuses_unreadable_content_length() -> None:
    with pytest.raises(FramingError, match="Content-Length"):
        StreamFramer().feed(b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n")


def test_stream_framer_refuses_endless_headers() -> None:
    with pytest.raises(FramingError):
        StreamFramer(max_message=100).feed(b"A" * 101)


def test_status_line_is_rebuilt_for_details() -> None:
    assert (
        SipResponse(503, "Service Unavailable", headers=()).status_line
        == "SIP/2.0 503 Service Unavailable"
    )

"""Hostile SIP at the proxy: Kamailio answers or drops, never crashes, never forwards presence
traffic the verdict holds back, and handles the next valid request correctly."""

from __future__ import annotations

import socket
import uuid

import pytest

from tests.kamailio.harness import BreakerHash, Kamailio, Responder
from tests.kamailio.sip import SipClient


def publish(
    to: str | None = "<sip:mbox1@127.0.0.1>",
    ruri: str = "sip:mbox1@127.0.0.1",
    extra: str = "",
    length: str | None = None,
    body: str = "Messages-Waiting: yes\r\n",
) -> bytes:
    call_id = f"{uuid.uuid4().hex}@hostile"
    lines = [
        f"PUBLISH {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
        "Max-Forwards: 70",
        "From: <sip:mbox1@127.0.0.1>;tag=1",
    ]
    if to is not None:
        lines.append(f"To: {to}")
    lines += [
        f"Call-ID: {call_id}",
        "CSeq: 1 PUBLISH",
        "Event: message-summary",
        "Expires: 3600",
        "Content-Type: application/simple-message-summary",
    ]
    if extra:
        lines.append(extra)
    lines.append(f"Content-Length: {length if length is not None else len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


HOSTILE: dict[str, bytes] = {
    "no-to": publish(to=None),
    "empty-to": publish(to=""),
    "to-not-a-uri": publish(to="<>"),
    "to-garbage": publish(to="\x01\x02 <sip:@@@>;;;tag="),
    "huge-ruri": publish(ruri="sip:" + "a" * 30000 + "@127.0.0.1"),
    "huge-to": publish(to="<sip:" + "b" * 30000 + "@127.0.0.1>"),
    "odd-ruri-empty-user": publish(ruri="sip:@127.0.0.1"),
    "odd-ruri-tel": publish(ruri="tel:+15551234"),
    "odd-ruri-bad-port": publish(ruri="sip:mbox1@127.0.0.1:999999"),
    "odd-ruri-open-bracket": publish(ruri="sip:mbox1@[::1"),
    "odd-ruri-percent-nul": publish(ruri="sip:%00%ff@127.0.0.1"),
    "oversized-header": publish(extra="X-Big: " + "c" * 60000),
    "thousand-headers": publish(extra="\r\n".join(f"X-H{i}: {i}" for i in range(1000))),
    "content-length-negative": publish(length="-5"),
    "content-length-too-long": publish(length="99999"),
    "content-length-garbage": publish(length="ten"),
    "no-via": publish().replace(b"Via: ", b"X-Via: ", 1),
    "binary-noise": bytes(range(256)) * 8,
    "crlf-only": b"\r\n\r\n",
    "start-line-only": b"PUBLISH sip:mbox1@127.0.0.1 SIP/2.0\r\n\r\n",
}


def send_raw(proxy: Kamailio, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for data in datagrams:
            sock.sendto(data, proxy.address)


def answer_codes(proxy: Kamailio, count: int = 20) -> set[int]:
    with SipClient(proxy.address) as client:
        got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(count)], timeout=5)
    assert len(got) == count, f"expected {count} answers after the barrage, got {len(got)}"
    return {r.code for r in got.values()}


def assert_alive(proxy: Kamailio) -> None:
    assert proxy.proc is not None and proxy.proc.alive(), f"died:\n{proxy.output()[-3000:]}"


@pytest.mark.parametrize("state", ["open", "half_open"])
def test_hostile_requests_while_held_back_are_never_forwarded_and_kamailio_survives(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash, state: str
) -> None:
    epoch = breaker_hash.set(state, admit=0)
    proxy.wait_verdict(state=state, epoch=epoch, source="redis")
    send_raw(proxy, list(HOSTILE.values()) * 3)
    assert answer_codes(proxy) == {503}, f"expected the valid requests held back in {state}"
    assert_alive(proxy)
    assert responder.count() == 0, (
        f"{responder.count()} requests reached the presence server while {state} at admit 0"
    )


def test_hostile_requests_while_closed_leave_kamailio_correct(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash
) -> None:
    epoch = breaker_hash.set("closed")
    proxy.wait_verdict(state="closed", epoch=epoch, source="redis")
    send_raw(proxy, list(HOSTILE.values()) * 3)
    assert answer_codes(proxy) == {200}, "expected valid requests forwarded after the barrage"
    assert_alive(proxy)
    epoch = breaker_hash.set("open", retry_after=5)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    before = responder.count()
    assert answer_codes(proxy) == {503}, "expected the breaker still obeyed after the barrage"
    assert responder.count() == before, "nothing may be forwarded once open"

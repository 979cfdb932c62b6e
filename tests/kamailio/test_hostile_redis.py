"""Garbage in the verdict hash, as Kamailio sees it: no crash, no forwarding while the last
valid verdict was open, the fail mode otherwise (one log line per change), and no
unclamped Retry-After."""

from __future__ import annotations

import pytest
from redis.typing import EncodableT, FieldT

from testbed.waiting import wait_until
from tests.kamailio.conftest import StartProxy
from tests.kamailio.harness import BreakerHash, Kamailio, Responder
from tests.kamailio.sip import SipClient

GARBAGE: dict[str, dict[FieldT, EncodableT]] = {
    "unknown-state": {"state": "banana"},
    "half-open-admit-not-a-number": {"state": "half_open", "admit": "lots"},
    "half-open-admit-negative": {"state": "half_open", "admit": "-5"},
    "half-open-admit-over-100": {"state": "half_open", "admit": "150"},
    "half-open-admit-huge": {"state": "half_open", "admit": "99999999999999999999"},
    "epoch-not-a-number": {"state": "closed", "epoch": "seven"},
    "epoch-negative": {"state": "closed", "epoch": "-1"},
}


def codes(proxy: Kamailio, count: int = 30) -> set[int]:
    with SipClient(proxy.address) as client:
        requests = [client.mwi_publish(f"mbox{i}") for i in range(count)]
        got = client.send_all(requests, timeout=5)
    assert len(got) == count, f"expected {count} answers, got {len(got)}"
    return {r.code for r in got.values()}


def alive(proxy: Kamailio) -> None:
    assert proxy.proc is not None and proxy.proc.alive(), (
        f"kamailio died:\n{proxy.output()[-3000:]}"
    )


def test_garbage_after_a_valid_open_verdict_never_forwards(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash
) -> None:
    epoch = breaker_hash.set("open", retry_after=20)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    for name, fields in GARBAGE.items():
        breaker_hash.client.hset(breaker_hash.key, mapping=fields)
        proxy.wait_verdict(state="open", source="fallback", cause="invalid")
        seen = codes(proxy)
        assert seen == {503}, f"{name}: expected only 503 while the last valid verdict is open"
        breaker_hash.set("open", retry_after=20)  # valid again before the next garbage
        proxy.wait_verdict(state="open", source="redis")
    breaker_hash.delete()
    breaker_hash.client.set(breaker_hash.key, "not a hash")  # wrong key type
    proxy.wait_verdict(state="open", source="fallback", cause="invalid")
    assert codes(proxy) == {503}, "a wrong key type must not reopen the gate"
    alive(proxy)
    assert responder.count() == 0, f"{responder.count()} requests reached the presence server"


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_after_closed_applies_the_fail_mode_with_one_log_line(
    start_proxy: StartProxy, responder: Responder, breaker_hash: BreakerHash, name: str
) -> None:
    proxy = start_proxy(responder.port)
    epoch = breaker_hash.set("closed")
    proxy.wait_verdict(state="closed", epoch=epoch, source="redis")
    breaker_hash.client.hset(breaker_hash.key, mapping=GARBAGE[name])
    proxy.wait_verdict(state="closed", source="fallback", cause="invalid")
    polled = proxy.htable_get("breaker", "polled")
    wait_until(
        lambda: proxy.htable_get("breaker", "polled") != polled, 5, what="another poll or two"
    )
    assert codes(proxy) == {200}, f"{name}: fail mode closed must forward"
    lines = [v for v in proxy.verdicts() if v.fields.get("cause") == "invalid"]
    assert len(lines) == 1, f"{name}: expected one log line for the change, saw {len(lines)}"
    alive(proxy)


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        ("999999999", 1800, 5400),  # clamped to 3600, then +/-50 %
        ("99999999999999999999", 5, 15),  # not a sane number: the default (10)
        ("soon", 5, 15),
        ("-30", 5, 15),
    ],
)
def test_garbage_retry_after_never_reaches_a_header_unclamped(
    proxy: Kamailio, breaker_hash: BreakerHash, retry_after: str, low: int, high: int
) -> None:
    epoch = breaker_hash.set("open")
    breaker_hash.client.hset(breaker_hash.key, "retry_after", retry_after)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    with SipClient(proxy.address) as client:
        got = client.send_all([client.mwi_publish(f"m{i}") for i in range(40)], timeout=5)
    seen = sorted({int(r.header("retry-after") or -1) for r in got.values()})
    assert seen and low <= seen[0] and seen[-1] <= high, (
        f"Retry-After for retry_after={retry_after!r}: expected {low}..{high}, saw {seen}"
    )


def test_control_characters_in_the_reason_do_not_forge_log_lines(
    proxy: Kamailio, breaker_hash: BreakerHash
) -> None:
    forged = "x\nevent=breaker.verdict name=presence state=closed admit=100 epoch=999"
    epoch = breaker_hash.set("open", reason=forged + "\r\n" + "y" * 5000)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    forged_lines = [v.fields for v in proxy.verdicts() if v.fields.get("epoch") == "999"]
    assert not forged_lines, f"a forged verdict line was logged: {forged_lines}"
    line = next(line for line in proxy.output().splitlines() if f"epoch={epoch} " in line)
    assert "\r" not in line and 'reason="x_event=' in line, f"expected CR/LF replaced: {line}"
    assert len(line) < 800, f"expected the reason capped, saw a {len(line)}-character line"

"""The whole chain with nothing simulated: stand-in ← sidecar → Redis → Kamailio proxy."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.redis import Redis
from tests.kamailio.conftest import StartProxy
from tests.kamailio.harness import Kamailio, Responder
from tests.kamailio.sip import SipClient
from tests.support.sidecar import Sidecar

INTERVAL, TIMEOUT, FALL = 0.2, 0.1, 3
POLL = 0.3  # breaker.cfg's default BREAKER_POLL_MS
SLACK = 0.7  # scheduling slack on a busy 2-core machine


@pytest.fixture
def chain(
    tmp_path: Path, responder: Responder, redis_server: Redis, start_proxy: StartProxy
) -> Iterator[tuple[Sidecar, Kamailio]]:
    target = f"sip:127.0.0.1:{responder.port};transport=udp"
    (tmp_path / "sidecar").mkdir()
    sidecar = Sidecar(
        tmp_path / "sidecar", redis_server.url, target, interval=INTERVAL, timeout=TIMEOUT,
        fall=FALL,
    )  # fmt: skip
    sidecar.start()
    proxy = start_proxy(responder.port)
    try:
        proxy.wait_verdict(state="closed", source="redis")
        yield sidecar, proxy
    finally:
        sidecar.stop()


def test_lockup_turns_into_local_503_within_bound(
    chain: tuple[Sidecar, Kamailio], responder: Responder
) -> None:
    _, proxy = chain
    bound = FALL * INTERVAL + TIMEOUT + POLL
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_publish("mbox1")).code == 200, "closed: forwarded"
        responder.freeze()
        frozen_at = time.monotonic()
        proxy.wait_verdict(timeout=10, state="open", source="redis")
        detected = time.monotonic() - frozen_at
        requests = [client.mwi_publish(f"mbox{i}") for i in range(30)]
        answers = [client.transact(r, 1.0) for r in requests]
    assert detected <= bound + SLACK, f"proxy saw open after {detected:.2f}s, bound {bound}s"
    assert all(a.code == 503 and a.header("Retry-After") for a in answers), [
        (a.code, a.header("Retry-After")) for a in answers
    ]
    # Thaw and flush: the stand-in handles datagrams in order, so once it has logged a
    # marker sent after the PUBLISHes, anything the proxy forwarded would be logged too.
    responder.thaw()
    with SipClient(responder.address) as direct:
        marker = direct.options()
        direct.transact(marker, 5.0)
    forwarded = responder.count(call_ids={r.call_id for r in requests})
    assert forwarded == 0, f"{forwarded} PUBLISH reached the frozen server after detection"


def test_killed_sidecar_falls_back_to_forwarding_after_ttl(
    chain: tuple[Sidecar, Kamailio], responder: Responder
) -> None:
    sidecar, proxy = chain
    forced = sidecar.put(
        "/v1/breakers/presence/force", {"state": "open", "ttl": 300, "reason": "drill"}
    )
    assert forced.status_code == 200
    proxy.wait_verdict(state="open", source="redis")
    assert sidecar.proc is not None
    sidecar.proc.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    proxy.wait_verdict(timeout=10, state="closed", source="fallback")
    fell_back = time.monotonic() - killed_at
    ttl = 2.0  # max(3 x 0.2, 2)
    assert fell_back <= ttl + POLL + SLACK, f"fallback after {fell_back:.2f}s, TTL is {ttl}s"
    before = responder.count("PUBLISH")
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_publish("mbox7")).code == 200
    assert responder.count("PUBLISH") == before + 1, "fallback `closed` forwards"

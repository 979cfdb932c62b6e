"""BREAKER_PRESENCE_FR_MS: presence transactions get their own short final-response timer."""

from __future__ import annotations

import time

from tests.kamailio.conftest import StartProxy
from tests.kamailio.harness import BreakerHash, Responder
from tests.kamailio.sip import SipClient


def test_a_frozen_presence_server_gives_408_after_the_short_presence_timer(
    start_proxy: StartProxy, responder: Responder, breaker_hash: BreakerHash
) -> None:
    """The host's PRESENCE_FR_TIMER says 5 s; the breaker's presence timer (300 ms) wins."""
    proxy = start_proxy(responder.port, PRESENCE_FR_TIMER=5000, BREAKER_PRESENCE_FR_MS=300)
    epoch = breaker_hash.set("closed")
    proxy.wait_verdict(state="closed", epoch=epoch)
    responder.freeze()
    with SipClient(proxy.address) as client:
        started = time.monotonic()
        got = client.transact(client.mwi_publish("mbox1"), timeout=6)
        took = time.monotonic() - started
    assert got.code == 408, f"expected a local 408 from the frozen server, got {got.code}"
    assert 0.25 <= took < 2.0, (
        f"expected the 408 after ~0.3 s (not the host's 5 s), took {took:.2f}s"
    )
    assert breaker_hash.wait_passive("failed", 1)["forwarded"] == 1

"""Passive signal: forwarded/failed presence transactions reach breaker:{presence}:passive."""

from __future__ import annotations

import time
from pathlib import Path

from testbed.kamailio import enforced
from testbed.procs import stopping
from testbed.waiting import wait_until
from tests.kamailio.conftest import StartProxy
from tests.kamailio.harness import BreakerHash, Kamailio, Responder
from tests.kamailio.sip import SipClient


def test_timeouts_to_a_frozen_presence_server_are_counted_in_redis(
    start_proxy: StartProxy, responder: Responder, breaker_hash: BreakerHash
) -> None:
    proxy = start_proxy(responder.port, PRESENCE_FR_TIMER=500)
    enforced(proxy, breaker_hash, "closed")
    responder.freeze()
    with SipClient(proxy.address) as client:
        got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(5)], timeout=5)
    assert sorted(r.code for r in got.values()) == [408] * 5, (
        f"expected 5 local timeouts (408), got {[r.code for r in got.values()]}"
    )
    passive = breaker_hash.wait_passive("failed", 5)
    assert passive["forwarded"] == 5
    assert abs(passive["updated"] - time.time()) < 5, "updated is unix seconds of the write"
    ttl = breaker_hash.client.ttl(breaker_hash.passive_key)
    assert 3500 < ttl <= 3600, f"passive hash TTL should be refreshed to 1 h, is {ttl}"

    with SipClient(proxy.address) as client:
        client.send_all([client.mwi_publish(f"mbox{i}") for i in range(3)], timeout=5)
    wait_until(
        lambda: breaker_hash.passive().get("failed") == 8,
        5,
        what="failed grows by HINCRBY (5 -> 8)",
    )


def test_5xx_from_the_presence_server_counts_as_failed(
    start_proxy: StartProxy, breaker_hash: BreakerHash, tmp_path: Path
) -> None:
    with stopping(Responder(tmp_path / "broken", code=500).start()) as broken:
        proxy = start_proxy(broken.port)
        with SipClient(proxy.address) as client:
            got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(7)])
        assert {r.code for r in got.values()} == {500}
        passive = breaker_hash.wait_passive("failed", 7)
        assert passive["forwarded"] == 7


def test_successful_transactions_are_forwarded_not_failed(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash
) -> None:
    with SipClient(proxy.address) as client:
        got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(20)])
    assert {r.code for r in got.values()} == {200}
    wait_until(lambda: breaker_hash.passive().get("forwarded") == 20, 5, what="forwarded=20")
    assert breaker_hash.passive().get("failed") == 0


def test_rejected_requests_are_not_counted(proxy: Kamailio, breaker_hash: BreakerHash) -> None:
    enforced(proxy, breaker_hash, "open")
    with SipClient(proxy.address) as client:
        got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(20)])
        assert {r.code for r in got.values()} == {503}
        enforced(proxy, breaker_hash, "closed")
        assert client.transact(client.mwi_publish("mbox1")).code == 200
    passive = wait_until(lambda: breaker_hash.passive(), 5, what="passive counters written")
    assert passive["forwarded"] == 1 and passive["failed"] == 0, (
        f"only the one forwarded PUBLISH counts, got {passive}"
    )

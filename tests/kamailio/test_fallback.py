"""Redis or the sidecar gone: SIP keeps flowing and BREAKER_FAIL_MODE decides presence."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from testbed.procs import free_port
from testbed.redis import Redis
from tests.kamailio.conftest import StartProxy
from tests.kamailio.harness import BreakerHash, Kamailio, Responder, quoted
from tests.kamailio.sip import SipClient, latency


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_redis_outage_keeps_sip_fast_and_falls_back_once(
    start_proxy: StartProxy,
    responder: Responder,
    redis_server: Redis,
    breaker_hash: BreakerHash,
    tmp_path: Path,
    outage: str,
) -> None:
    """Timeouts of 1 s would show up as >= 1 s latencies if a worker ever waited on Redis."""
    proxy = start_proxy(
        responder.port,
        BREAKER_REDIS_CONNECT_TIMEOUT=1000,
        BREAKER_REDIS_CMD_TIMEOUT=1000,
        BREAKER_REDIS_DISABLE_TIME=1,
    )
    epoch = breaker_hash.set("open", retry_after=10)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    phone = Responder(tmp_path / "phone").start()
    assert redis_server.proc is not None
    seen_before = len(proxy.verdicts())
    try:
        if outage == "stopped":
            redis_server.stop()
        else:
            redis_server.proc.signal(signal.SIGSTOP)
        latencies: list[float] = []
        with SipClient(proxy.address) as client:
            # ~4 s: several reconnect attempts by the poller (each blocks it up to 2 s)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                latencies.append(latency(client.transact(client.options(), timeout=2)))
                invite = client.invite(f"sip:bob@127.0.0.1:{phone.port}")
                latencies.append(latency(client.transact(invite, timeout=2)))
                time.sleep(0.01)
            fallback = proxy.wait_verdict(state="closed", source="fallback", cause="unreachable")
            publish = client.transact(client.mwi_publish("mbox1"))
        after = proxy.verdicts()[seen_before:]
    finally:
        phone.stop()
        if outage == "frozen" and redis_server.proc:
            redis_server.proc.signal(signal.SIGCONT)
    assert fallback["epoch"] == str(epoch), "fallback keeps the last known epoch"
    assert max(latencies) < 0.2, (
        f"SIP handling slowed down while Redis was {outage}: max {max(latencies):.3f}s "
        f"over {len(latencies)} requests"
    )
    assert publish.code == 200, "default fail mode forwards presence as if closed"
    assert len(after) == 1, f"one log line per change of mode, got {[v.fields for v in after]}"


def test_redis_down_at_start_falls_back_and_recovers(
    start_proxy: StartProxy, responder: Responder, tmp_path: Path
) -> None:
    port = free_port()
    proxy = start_proxy(
        responder.port, BREAKER_REDIS_SERVER=quoted(f"name=breaker;addr=127.0.0.1;port={port};db=0")
    )
    proxy.wait_verdict(state="closed", source="fallback", cause="unreachable")
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_publish("mbox1")).code == 200
    redis = Redis(tmp_path / "late-redis", port=port).start()
    try:
        hash_ = BreakerHash(port)
        epoch = hash_.set("open", retry_after=3)
        proxy.wait_verdict(timeout=10, state="open", epoch=epoch, source="redis")
        with SipClient(proxy.address) as client:
            assert client.transact(client.mwi_publish("mbox1")).code == 503
        hash_.client.close()
    finally:
        redis.stop()


def test_expired_hash_falls_back_to_forwarding(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash
) -> None:
    epoch = breaker_hash.set("open", retry_after=10, ttl_ms=800)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_publish("mbox1")).code == 503
        proxy.wait_verdict(state="closed", source="fallback", cause="missing")
        assert client.transact(client.mwi_publish("mbox1")).code == 200
    assert responder.count("PUBLISH") == 1


def test_fail_mode_open_rejects_without_a_verdict(
    start_proxy: StartProxy, responder: Responder, breaker_hash: BreakerHash
) -> None:
    proxy = start_proxy(
        responder.port, BREAKER_FAIL_MODE=quoted("open"), BREAKER_DEFAULT_RETRY_AFTER=8
    )
    proxy.wait_verdict(state="open", source="fallback", cause="missing")
    with SipClient(proxy.address) as client:
        got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(100)])
        options = client.transact(client.options())
    assert {r.code for r in got.values()} == {503} and len(got) == 100
    retry_after = {int(r.header("retry-after") or -1) for r in got.values()}
    assert min(retry_after) >= 4 and max(retry_after) <= 12, f"8 +/- 50 %: {retry_after}"
    assert options.code == 200
    epoch = breaker_hash.set("closed")
    proxy.wait_verdict(state="closed", epoch=epoch, source="redis")
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_publish("mbox1")).code == 200
    assert responder.count() == 1


def test_fail_mode_last_holds_the_last_verdict_then_forwards(
    start_proxy: StartProxy, responder: Responder, breaker_hash: BreakerHash
) -> None:
    proxy = start_proxy(responder.port, BREAKER_FAIL_MODE=quoted("last"), BREAKER_LAST_HOLD=2)
    epoch = breaker_hash.set("open", retry_after=10)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    breaker_hash.delete()  # the sidecar died
    held = proxy.wait_verdict(state="open", source="fallback", cause="missing")
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_publish("mbox1")).code == 503
        proxy.wait_verdict(timeout=5, state="closed", source="fallback", cause="missing")
        assert client.transact(client.mwi_publish("mbox1")).code == 200
    assert "fail_mode=last" in held["reason"]
    assert responder.count("PUBLISH") == 1


def test_one_log_line_per_verdict_change(proxy: Kamailio, breaker_hash: BreakerHash) -> None:
    before = len(proxy.verdicts())
    epoch = breaker_hash.set("open", retry_after=10)
    proxy.wait_verdict(state="open", epoch=epoch)
    for _ in range(5):  # the sidecar rewrites the same verdict every interval
        breaker_hash.client.hset(breaker_hash.key, "updated", f"{time.time():.3f}")
        time.sleep(0.15)
    epoch = breaker_hash.set("half_open", admit=20, retry_after=5)
    proxy.wait_verdict(state="half_open", admit=20, epoch=epoch)
    epoch = breaker_hash.set("closed")
    last = proxy.wait_verdict(state="closed", admit=100, epoch=epoch)
    lines = proxy.verdicts()[before:]
    assert [v["state"] for v in lines] == ["open", "half_open", "closed"], (
        f"expected one line per change, got {[v.fields for v in lines]}"
    )
    assert last["source"] == "redis" and last["reason"] == "test"

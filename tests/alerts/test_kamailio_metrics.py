"""The proxy's own view over xhttp_prom: verdict, age, fallback, 503s, forwarded, failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testbed.procs import free_port
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.kamailio.harness import BreakerHash, Kamailio, Responder
from tests.kamailio.sip import SipClient
from tests.support.kamailio_metrics import metrics_proxy, value


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kamailio-metrics")


@pytest.fixture(scope="module")
def responder(workdir: Path) -> Iterator[Responder]:
    # answers 500: every forwarded request is also a failed one
    stand_in = Responder(workdir / "responder", code=500).start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> int:
    return free_port()


@pytest.fixture(scope="module")
def proxy(
    workdir: Path, module_redis: Redis, responder: Responder, metrics: int
) -> Iterator[Kamailio]:
    kamailio = metrics_proxy(workdir / "proxy", responder.port, module_redis.port, metrics)
    kamailio.start()
    yield kamailio
    kamailio.stop()


@pytest.fixture(scope="module")
def verdict(module_redis: Redis) -> Iterator[BreakerHash]:
    hash_ = BreakerHash(module_redis.port)
    yield hash_
    hash_.client.close()


def publish(proxy: Kamailio, count: int) -> set[int]:
    with SipClient(proxy.address) as client:
        got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(count)])
    return {r.code for r in got.values()}


def test_forwarded_and_failed_requests_are_counted(
    proxy: Kamailio, verdict: BreakerHash, metrics: int
) -> None:
    epoch = verdict.set("closed")
    proxy.wait_verdict(state="closed", epoch=epoch, source="redis")
    port = metrics
    before = value(port, "kamailio_breaker_forwarded_total", name="presence") or 0
    failed_before = value(port, "kamailio_breaker_failed_total", name="presence") or 0
    assert publish(proxy, 20) == {500}
    wait_until(
        lambda: value(port, "kamailio_breaker_failed_total", name="presence") == failed_before + 20,
        5,
        what="20 more failed",
    )
    forwarded = value(port, "kamailio_breaker_forwarded_total", name="presence")
    assert forwarded == before + 20, f"expected {before + 20} forwarded, saw {forwarded}"
    assert value(port, "kamailio_breaker_verdict", name="presence", state="closed") == 1
    assert value(port, "kamailio_breaker_admit_percent", name="presence") == 100


def test_local_503s_and_the_open_verdict_are_exported(
    proxy: Kamailio, verdict: BreakerHash, metrics: int
) -> None:
    epoch = verdict.set("open", retry_after=10)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    port = metrics
    before = value(port, "kamailio_breaker_rejected_total", name="presence") or 0
    forwarded = value(port, "kamailio_breaker_forwarded_total", name="presence")
    assert publish(proxy, 30) == {503}
    rejected = value(port, "kamailio_breaker_rejected_total", name="presence")
    assert rejected == before + 30, f"expected {before + 30} local 503s, saw {rejected}"
    assert value(port, "kamailio_breaker_forwarded_total", name="presence") == forwarded
    assert value(port, "kamailio_breaker_verdict", name="presence", state="open") == 1
    assert value(port, "kamailio_breaker_verdict", name="presence", state="closed") == 0
    assert value(port, "kamailio_breaker_fallback_active", name="presence") == 0


def test_missing_verdict_shows_fallback_and_a_growing_verdict_age(
    proxy: Kamailio, verdict: BreakerHash, metrics: int
) -> None:
    verdict.delete()
    proxy.wait_verdict(source="fallback", cause="missing")
    port = metrics
    wait_until(
        lambda: value(port, "kamailio_breaker_fallback_active", name="presence") == 1,
        5,
        what="fallback_active 1",
    )
    wait_until(
        lambda: (value(port, "kamailio_breaker_verdict_age_seconds", name="presence") or 0) >= 2,
        6,
        what="verdict age to reach 2 s",
    )
    assert value(port, "kamailio_breaker_verdict", name="presence", state="closed") == 1


def test_metrics_port_answers_nothing_but_metrics(proxy: Kamailio, metrics: int) -> None:
    got = httpx.get(f"http://127.0.0.1:{metrics}/admin", timeout=2)
    assert got.status_code == 404, f"expected 404 off /metrics, got {got.status_code}"

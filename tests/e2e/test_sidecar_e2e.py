"""The whole sidecar as a user runs it: real `breaker serve`, real SIP stand-in, real Redis."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.procs import Child
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.support.sidecar import TOKEN, Sidecar

SCHEDULING_SLACK = 0.5  # seconds: a busy 2-core CI box delays timers


@pytest.fixture
def sidecar(tmp_path: Path, redis_server: Redis, standin: tuple[Child, int]) -> Iterator[Sidecar]:
    _, port = standin
    sc = Sidecar(tmp_path, redis_server.url, f"sip:127.0.0.1:{port};transport=udp").start()
    try:
        yield sc
    finally:
        sc.stop()


def redis_state(redis: Redis) -> str:
    try:
        return redis.cli("HGET", "breaker:{presence}", "state")
    except Exception:
        return ""


def test_freeze_opens_breaker_within_bound(
    sidecar: Sidecar, redis_server: Redis, standin: tuple[Child, int]
) -> None:
    proc, _ = standin
    wait_until(lambda: redis_state(redis_server) == "closed", 10, what="closed in Redis")
    # interval + (fall - 1) x max(fast_interval, timeout) + timeout, fast_interval = timeout
    bound = sidecar.get("/v1/breakers/presence").json()["detection_bound"]
    assert bound == pytest.approx(0.2 + 2 * 0.1 + 0.1), (
        f"expected the bound 0.5 s, API says {bound}"
    )
    frozen_at = time.monotonic()
    proc.signal(signal.SIGSTOP)
    wait_until(lambda: redis_state(redis_server) == "open", 10, interval=0.005, what="open")
    detection = time.monotonic() - frozen_at
    assert detection <= bound + SCHEDULING_SLACK, (
        f"expected open within {bound}s (+{SCHEDULING_SLACK}s slack), took {detection:.3f}s"
    )
    body = sidecar.get("/v1/breakers/presence").json()
    assert body["state"] == "open" and body["reason"] == "timeout", body
    allow = sidecar.get("/v1/breakers/presence/allow")
    assert allow.status_code == 503 and int(allow.headers["Retry-After"]) >= 1


def test_resume_ramps_through_half_open_to_closed(
    sidecar: Sidecar, redis_server: Redis, standin: tuple[Child, int]
) -> None:
    proc, _ = standin
    wait_until(lambda: redis_state(redis_server) == "closed", 10, what="closed")
    proc.signal(signal.SIGSTOP)
    wait_until(lambda: redis_state(redis_server) == "open", 10, what="open")
    proc.signal(signal.SIGCONT)
    wait_until(lambda: redis_state(redis_server) == "half_open", 10, what="half_open")
    admit = int(redis_server.cli("HGET", "breaker:{presence}", "admit"))
    assert 0 < admit < 100, f"half_open must admit a share strictly inside (0, 100), saw {admit}"
    wait_until(lambda: redis_state(redis_server) == "closed", 10, what="closed after the ramp")
    log = redis_server.cli("XRANGE", "breaker:{presence}:log", "-", "+")
    for state in ("open", "half_open", "closed"):
        assert state in log, f"expected a {state} transition in the audit stream"


def test_force_and_release_over_http_reach_redis(sidecar: Sidecar, redis_server: Redis) -> None:
    forced = sidecar.put(
        "/v1/breakers/presence/force", {"state": "open", "ttl": 60, "reason": "e2e drill"}
    )
    assert forced.status_code == 200, forced.text
    wait_until(lambda: redis_state(redis_server) == "open", 5, what="forced open in Redis")
    assert redis_server.cli("HGET", "breaker:{presence}", "forced_by") == "default"
    released = sidecar.delete("/v1/breakers/presence/force")
    assert released.status_code == 200
    wait_until(lambda: redis_state(redis_server) == "closed", 5, what="released in Redis")


def test_killed_sidecar_state_expires(sidecar: Sidecar, redis_server: Redis) -> None:
    wait_until(lambda: redis_state(redis_server) == "closed", 10, what="closed")
    assert sidecar.proc is not None
    sidecar.proc.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: redis_server.cli("EXISTS", "breaker:{presence}") == "0", 10, what="expiry")
    gone_after = time.monotonic() - killed_at
    assert gone_after <= 2.0 + SCHEDULING_SLACK, f"TTL is 2 s, hash lived {gone_after:.2f}s"


def test_redis_restart_mid_run_republishes_force(sidecar: Sidecar, redis_server: Redis) -> None:
    wait_until(lambda: redis_state(redis_server) == "closed", 10, what="closed")
    redis_server.stop()
    wait_until(lambda: sidecar.get("/readyz").status_code == 503, 5, what="readyz 503")
    forced = sidecar.put(
        "/v1/breakers/presence/force", {"state": "open", "ttl": 120, "reason": "redis away"}
    )
    assert forced.status_code == 200, "force must work from memory while Redis is down"
    redis_server.start()
    wait_until(lambda: redis_state(redis_server) == "open", 10, what="force republished")
    assert redis_server.cli("HGET", "breaker:{presence}", "forced_reason") == "redis away"
    assert sidecar.get("/readyz").status_code == 200
    assert sidecar.proc is not None and sidecar.proc.alive()
    assert "Traceback" not in sidecar.proc.output()


def test_secrets_never_reach_the_log(tmp_path: Path, standin: tuple[Child, int]) -> None:
    _, port = standin
    redis = Redis(tmp_path / "redis", password="redis-secret-123456").start()
    wrong_url = redis.url.replace("redis-secret-123456", "wrong-secret-654321")
    sidecar = Sidecar(tmp_path, wrong_url, f"sip:127.0.0.1:{port}").start()
    try:
        sidecar.put("/v1/breakers/presence/force", {"state": "open", "ttl": 5, "reason": "x"})
        wait_until(lambda: "store.unavailable" in sidecar.proc.output(), 5, what="an auth error")  # type: ignore[union-attr]
        assert sidecar.get("/readyz").status_code == 503
    finally:
        sidecar.stop()
        redis.stop()
    log = (tmp_path / "sidecar.log").read_text()
    for secret in ("redis-secret-123456", "wrong-secret-654321", TOKEN):
        assert secret not in log, f"a secret leaked into the sidecar log: {secret[:6]}…"

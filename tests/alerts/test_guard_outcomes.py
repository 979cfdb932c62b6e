"""`breaker guard` counts its outcomes under the names the Redis contract lists."""

from __future__ import annotations

import subprocess
import sys

from breaker.guard._exit import OUTCOMES
from breaker.store import GUARD_OUTCOMES
from testbed.redis import Redis
from tests.kamailio.harness import BreakerHash


def test_guard_outcomes_in_the_contract_are_what_the_guard_records() -> None:
    recorded = set(OUTCOMES.values()) | {"ran"}
    assert recorded == set(GUARD_OUTCOMES), f"guard records {recorded}, contract {GUARD_OUTCOMES}"


def guard(redis: Redis, *command: str) -> int:
    return subprocess.run(
        [sys.executable, "-m", "breaker", "guard", "presence", "--", *command],
        env={"BREAKER_REDIS_URL": redis.url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=30,
    ).returncode


def test_each_guard_run_counts_its_outcome_in_redis(redis_server: Redis) -> None:
    verdict = BreakerHash(redis_server.port)
    try:
        verdict.set("closed")
        # a job that itself exits 75 (EX_TEMPFAIL) ran; only the guard's refusal is "refused"
        assert guard(redis_server, "sh", "-c", "exit 75") == 75
        verdict.set("open")
        assert guard(redis_server, "true") == 75
    finally:
        verdict.client.close()
    counts = redis_server.cli("HGETALL", "breaker:{presence}:guard").split("\n")
    found = dict(zip(counts[::2], counts[1::2], strict=True))
    assert found == {"ran": "1", "refused_open": "1"}, f"expected one ran, one refused: {found}"

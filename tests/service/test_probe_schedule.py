"""The service follows the core's schedule: confirmations at fast_interval, passive windows
counted as soon as they close. Scripted probes, a real Redis."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from breaker._config import BreakerConfig
from breaker.core import State
from breaker.service import Service
from testbed.redis import Redis
from testbed.waiting import eventually
from tests.support.scripted import ScriptedProbe, ScriptedProbes, settings_for


class TimedProbes(ScriptedProbes):
    """Remembers when each probe was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[float, bool]] = []

    def __call__(self, cfg: BreakerConfig) -> ScriptedProbe:
        probe = super().__call__(cfg)
        check = probe.check

        async def timed() -> Any:
            self.sent.append((time.monotonic(), probe.ok))
            return await check()

        probe.check = timed  # type: ignore[method-assign]
        return probe


Running = Callable[..., Any]


@pytest.fixture
async def start(redis_server: Redis) -> AsyncIterator[Running]:
    services: list[Service] = []

    async def run(probes: ScriptedProbes, **breaker: Any) -> Service:
        service = Service(settings_for(redis_server.url, **breaker), probe_factory=probes)
        await service.start()
        services.append(service)
        return service

    yield run
    for service in services:
        await service.stop()


async def test_a_failed_probe_is_confirmed_at_fast_interval_not_interval(start: Running) -> None:
    probes = TimedProbes()
    service = await start(probes, interval=2.0, timeout=0.05, fast_interval=0.1, fall=3)
    await eventually(lambda: len(probes.sent) >= 1, what="a first probe")
    probes.by_name["presence"].ok = False
    await eventually(
        lambda: service.status("presence").verdict.computed is State.OPEN,
        within=6,
        what="open after three failed probes",
    )
    failing = [at for at, ok in probes.sent if not ok]
    assert len(failing) == 3, f"expected 3 failed probes to open, saw {len(failing)}"
    gaps = [b - a for a, b in itertools.pairwise(failing)]
    assert all(gap < 1.0 for gap in gaps), f"expected confirmations ~0.1 s apart, not 2 s: {gaps}"
    await asyncio.sleep(0.5)
    assert len([1 for _, ok in probes.sent if not ok]) == 3, "open: back to one probe per interval"


async def test_failing_passive_windows_open_the_breaker_between_probes(
    start: Running, redis_server: Redis
) -> None:
    """Probes keep succeeding (every 5 s); Kamailio's counters show every request failing."""
    probes = ScriptedProbes()
    service = await start(probes, interval=5.0, timeout=0.5, fall=3, passive_failure_ratio=0.5)
    key = "breaker:{presence}:passive"
    deadline = time.monotonic() + 4.0
    while service.status("presence").verdict.computed is not State.OPEN:
        assert time.monotonic() < deadline, "expected the passive windows to open it within 4 s"
        redis_server.cli("HINCRBY", key, "forwarded", "25")
        redis_server.cli("HINCRBY", key, "failed", "25")
        await asyncio.sleep(0.3)
    assert service.status("presence").verdict.reason == "passive"
    assert probes.by_name["presence"].calls <= 1, "opened by live traffic, not by probes"

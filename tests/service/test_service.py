"""The wired service with scripted probes and a real Redis: publishing and fault handling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from breaker.core import State
from breaker.service import Service
from testbed.redis import Redis
from testbed.waiting import eventually
from tests.support.scripted import ScriptedProbes, settings_for


@pytest.fixture
async def running(redis_server: Redis) -> AsyncIterator[tuple[Service, ScriptedProbes]]:
    probes = ScriptedProbes()
    service = Service(settings_for(redis_server.url), probe_factory=probes)
    await service.start()
    try:
        yield service, probes
    finally:
        await service.stop()


def hash_field(server: Redis, field: str) -> str:
    try:
        return server.cli("HGET", "breaker:{presence}", field)
    except Exception:
        return ""


async def test_failing_probes_open_the_breaker_in_redis(
    running: tuple[Service, ScriptedProbes], redis_server: Redis
) -> None:
    _, probes = running
    await eventually(lambda: hash_field(redis_server, "state") == "closed", what="closed in Redis")
    probes.by_name["presence"].ok = False
    await eventually(lambda: hash_field(redis_server, "state") == "open", what="open in Redis")
    assert hash_field(redis_server, "reason") == "timeout"
    assert hash_field(redis_server, "admit") == "0"


async def test_recovery_ramps_then_closes(
    running: tuple[Service, ScriptedProbes], redis_server: Redis
) -> None:
    _, probes = running
    probes.by_name["presence"].ok = False
    await eventually(lambda: hash_field(redis_server, "state") == "open", what="open")
    probes.by_name["presence"].ok = True
    await eventually(lambda: hash_field(redis_server, "state") == "half_open", what="half_open")
    admits = set()
    deadline = time.monotonic() + 5
    while hash_field(redis_server, "state") == "half_open" and time.monotonic() < deadline:
        admits.add(int(hash_field(redis_server, "admit") or 0))
        await asyncio.sleep(0.05)
    assert hash_field(redis_server, "state") == "closed", "expected the ramp to end closed"
    inside = {a for a in admits if 0 < a < 100}
    assert len(inside) >= 3, f"expected a ramp of several admit steps, saw {sorted(admits)}"


async def test_redis_restart_publishes_the_force_and_the_net_change_once(
    running: tuple[Service, ScriptedProbes], redis_server: Redis
) -> None:
    """While Redis is away nothing is queued: when it returns, the first vote publishes
    what changed meanwhile, one event per change of the published verdict."""
    service, probes = running
    await eventually(lambda: hash_field(redis_server, "state") == "closed", what="first write")
    redis_server.stop()
    service.force("presence", State.OPEN, 300, "alice", "presence upgrade")
    probes.by_name["presence"].ok = False  # computed state moves while Redis is away
    await eventually(
        lambda: service.status("presence").verdict.computed is State.OPEN, what="computed open"
    )
    await eventually(lambda: not service.redis_up, what="service to notice Redis down")
    shown = service.status("presence").verdict
    assert shown.state is State.OPEN and shown.force is not None, f"own view while down: {shown}"
    redis_server.start()  # comes back empty
    await eventually(lambda: hash_field(redis_server, "forced") == "open", what="force published")
    assert hash_field(redis_server, "forced_by") == "alice"
    assert hash_field(redis_server, "computed") == "open"
    log = redis_server.cli("XRANGE", "breaker:{presence}:log", "-", "+")
    events = [line for line in log.splitlines() if line in ("transition", "force")]
    assert sorted(events) == ["force", "transition"], f"expected one force, one open: {log}"


async def test_an_epoch_left_in_redis_is_adopted_not_rolled_back(
    running: tuple[Service, ScriptedProbes], redis_server: Redis
) -> None:
    service, probes = running
    await eventually(lambda: hash_field(redis_server, "state") == "closed", what="first write")
    redis_server.cli("HSET", "breaker:{presence}", "epoch", "500")
    await eventually(lambda: service.status("presence").verdict.epoch == 500, what="adopted")
    probes.by_name["presence"].ok = False
    await eventually(lambda: hash_field(redis_server, "state") == "open", what="open")
    assert hash_field(redis_server, "epoch") == "501", "the next change must count on from 500"


async def test_force_expiry_is_noticed_without_a_probe(redis_server: Redis) -> None:
    service = Service(
        settings_for(redis_server.url, interval=5.0, timeout=0.5), probe_factory=ScriptedProbes()
    )
    await service.start()
    try:
        service.force("presence", State.OPEN, 0.3, "alice", "short")
        await eventually(
            lambda: service.status("presence").verdict.state is State.CLOSED,
            2.0,
            what="expiry within the tick",
        )
        await eventually(lambda: hash_field(redis_server, "forced") == "", what="expiry in Redis")
    finally:
        await service.stop()


async def test_redis_down_at_start_does_not_stop_probing(tmp_path: Path) -> None:
    server = Redis(tmp_path)  # not started
    probes = ScriptedProbes()
    service = Service(settings_for(server.url), probe_factory=probes)
    await service.start()
    try:
        probes_before = probes.by_name["presence"].calls
        await eventually(
            lambda: probes.by_name["presence"].calls > probes_before + 5, what="probes"
        )
        assert not service.redis_up
        server.start()
        await eventually(lambda: service.redis_up, what="connect once Redis appears")
        await eventually(lambda: hash_field(server, "state") == "closed", what="state written")
    finally:
        await service.stop()
        server.stop()


async def test_hash_deleted_behind_our_back_is_rewritten_whole(
    running: tuple[Service, ScriptedProbes], redis_server: Redis
) -> None:
    await eventually(lambda: hash_field(redis_server, "state") == "closed", what="first write")
    redis_server.cli("DEL", "breaker:{presence}")
    await eventually(lambda: hash_field(redis_server, "state") == "closed", what="full rewrite")
    assert hash_field(redis_server, "contract") == "1"


async def test_a_probe_that_raises_counts_as_a_failure_and_probing_goes_on(
    redis_server: Redis,
) -> None:
    probes = ScriptedProbes()
    service = Service(settings_for(redis_server.url), probe_factory=probes)

    async def broken() -> None:
        raise RuntimeError("bug in a probe")

    probes.by_name["presence"].check = broken  # type: ignore[method-assign,assignment]
    await service.start()
    try:
        await eventually(
            lambda: service.status("presence").probe_failures_total >= 3, what="failures"
        )
        status = service.status("presence")
        assert status.last_probe is not None and status.last_probe.reason == "error"
        assert status.verdict.state is State.OPEN, "a probe that keeps crashing opens the breaker"
    finally:
        await service.stop()

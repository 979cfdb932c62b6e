"""A restarted sidecar resumes from what it left in Redis: forces, epoch and verdict."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from breaker._config import ClusterConfig, Settings
from breaker.core import State
from breaker.service import Service
from testbed.redis import Redis
from testbed.waiting import eventually
from tests.support.scripted import ScriptedProbes, settings_for

KEY = "breaker:{presence}"


def field(server: Redis, name: str) -> str:
    try:
        return server.cli("HGET", KEY, name)
    except Exception:
        return ""


async def states_during(server: Redis, seconds: float) -> list[tuple[str, str]]:
    """(state, admit) as often as Redis answers, without blocking the service's loop."""
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            state, admit = await client.hmget(KEY, "state", "admit")
            seen.append((str(state or ""), str(admit or "")))
            await asyncio.sleep(0.002)
    finally:
        await client.aclose()
    return seen


async def test_force_and_epoch_survive_a_restart_after_the_hash_expired(
    redis_server: Redis,
) -> None:
    settings = settings_for(redis_server.url)
    first = Service(settings, probe_factory=ScriptedProbes())
    await first.start()
    first.force("presence", State.OPEN, 3600, "alice", "maintenance")
    await eventually(lambda: field(redis_server, "forced") == "open", what="force written")
    epoch_before = int(field(redis_server, "epoch"))
    await first.stop()
    redis_server.cli("DEL", KEY)  # the sidecar stayed away longer than state_ttl

    second = Service(settings, probe_factory=ScriptedProbes())
    await second.start()
    try:
        await eventually(lambda: field(redis_server, "forced") == "open", what="force restored")
        v = second.status("presence").verdict
        assert v.force is not None and v.force.actor == "alice", f"force lost: {v}"
        assert v.force.until > time.time() + 3500, f"force expiry moved: {v.force.until}"
        assert v.epoch == epoch_before, (
            f"epoch went from {epoch_before} to {v.epoch}: nothing changed"
        )
        await eventually(
            lambda: int(field(redis_server, "epoch") or 0) == v.epoch, what="new epoch stored"
        )
    finally:
        await second.stop()


def voting(settings: Settings, cluster: bool) -> Settings:
    """The same settings, alone or as observer `a` of a fleet ([cluster])."""
    if not cluster:
        return settings
    return settings.model_copy(update={"cluster": ClusterConfig(observer="a")})


@pytest.mark.parametrize("cluster", [False, True], ids=["alone", "observer"])
async def test_a_restart_during_an_outage_never_publishes_closed(
    redis_server: Redis, cluster: bool
) -> None:
    settings = voting(settings_for(redis_server.url), cluster)
    probes = ScriptedProbes()
    first = Service(settings, probe_factory=probes)
    await first.start()
    probes.by_name["presence"].ok = False
    await eventually(lambda: field(redis_server, "state") == "open", what="open")
    await first.stop()

    again = ScriptedProbes()
    second = Service(settings, probe_factory=again)
    await second.start()
    again.by_name["presence"].ok = False  # the server is still dead
    try:
        seen = {state for state, _ in await states_during(redis_server, 1.0)}
        assert seen == {"open"}, f"expected only open while the server is dead, saw {seen}"
        again.by_name["presence"].ok = True
        await eventually(lambda: field(redis_server, "state") == "half_open", what="half_open")
    finally:
        await second.stop()


@pytest.mark.parametrize("cluster", [False, True], ids=["alone", "observer"])
async def test_a_restart_during_half_open_resumes_the_ramp(
    redis_server: Redis, cluster: bool
) -> None:
    settings = voting(settings_for(redis_server.url, slow_start=4.0), cluster)
    probes = ScriptedProbes()
    first = Service(settings, probe_factory=probes)
    await first.start()
    probes.by_name["presence"].ok = False
    await eventually(lambda: field(redis_server, "state") == "open", what="open")
    probes.by_name["presence"].ok = True
    await eventually(lambda: int(field(redis_server, "admit") or 0) >= 40, 5, what="mid-ramp")
    await first.stop()
    admit_before = int(field(redis_server, "admit"))

    second = Service(settings, probe_factory=ScriptedProbes())
    await second.start()
    try:
        samples = await states_during(redis_server, 0.5)
        skipped = [s for s in samples if s[0] != "half_open"]
        assert not skipped, f"ramp skipped after the restart: {skipped[:3]}"
        admits = [int(a) for _, a in samples]
        assert min(admits) >= admit_before - 1, f"ramp went back from {admit_before}: {admits[:5]}"
        assert max(admits) < 100, f"expected the ramp to continue, saw {max(admits)}"
        await eventually(lambda: field(redis_server, "state") == "closed", 5, what="ramp end")
    finally:
        await second.stop()

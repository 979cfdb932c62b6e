"""Two sidecars with the same pool on one real Redis: the pool's verdict is derived in
Redis from the members' voted verdicts, with one audit event per pool change."""

from __future__ import annotations

from breaker._config import ClusterConfig, Settings
from breaker.core import State
from breaker.service import Service
from testbed.redis import Redis
from testbed.waiting import eventually
from tests.support.scripted import ScriptedProbes

MEMBERS = ("presence-a", "presence-b", "presence-c")
POOL = "breaker:{presence}"


def pool_settings(redis_url: str, observer: str) -> Settings:
    breakers = [
        {"name": name, "target": f"sip:127.0.0.1:{5071 + i}", "interval": 0.1, "timeout": 0.05,
         "fall": 2, "rise": 2, "slow_start": 60.0}
        for i, name in enumerate(MEMBERS)
    ]  # fmt: skip
    return Settings(
        redis={"url": redis_url},  # type: ignore[arg-type]
        breakers=breakers,  # type: ignore[arg-type]
        pools=[{"name": "presence", "members": list(MEMBERS)}],  # type: ignore[list-item]
        cluster=ClusterConfig(observer=observer),
    )


def pool_events(redis: Redis) -> list[str]:
    """`from>to` of each transition in the pool's audit stream, oldest first."""
    lines = redis.cli("XRANGE", f"{POOL}:log", "-", "+").splitlines()
    return [f"{lines[i + 1]}>{lines[i + 3]}" for i, v in enumerate(lines) if v == "from"]


async def test_two_sidecars_derive_one_pool_verdict_with_one_event_per_change(
    redis_server: Redis,
) -> None:
    probes = {o: ScriptedProbes() for o in ("a", "b")}
    services = [
        Service(pool_settings(redis_server.url, o), probe_factory=probes[o]) for o in probes
    ]
    for service in services:
        await service.start()
    try:
        await eventually(lambda: redis_server.cli("HGET", POOL, "state") == "closed", what="pool")
        for name in MEMBERS[1:]:  # both observers see two members die: the pool halves
            for p in probes.values():
                p.by_name[name].ok = False
        await eventually(
            lambda: redis_server.cli("HGET", POOL, "state") == "half_open", what="half_open"
        )
        for service in services:
            await eventually(
                lambda s=service: s.verdict_of("presence").state is State.HALF_OPEN,  # type: ignore[misc]
                what="each sidecar to show the published pool verdict",
            )
        epochs = {s.verdict_of("presence").epoch for s in services}
        assert pool_events(redis_server) == ["closed>half_open"], pool_events(redis_server)
        assert epochs == {1}, f"both sidecars show the one pool epoch, saw {epochs}"
        for p in probes.values():
            p.by_name[MEMBERS[0]].ok = False
        await eventually(lambda: redis_server.cli("HGET", POOL, "state") == "open", what="open")
        events = pool_events(redis_server)
        assert events == ["closed>half_open", "half_open>open"], f"one event per change: {events}"
    finally:
        for service in services:
            await service.stop()

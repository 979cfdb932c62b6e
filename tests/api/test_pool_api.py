"""Pools in the HTTP API and in Redis (scripted member probes, real Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from breaker._config import Settings
from breaker.api import TokenRegistry, create_app
from breaker.service import Service
from testbed.redis import Redis
from testbed.waiting import eventually
from tests.support.scripted import ScriptedProbes

OPERATE = "operate-token-0123456789"
AUTH = {"Authorization": f"Bearer {OPERATE}"}
MEMBERS = ("presence-a", "presence-b", "presence-c")


def pool_settings(redis_url: str) -> Settings:
    breakers: list[dict[str, Any]] = [
        {
            "name": name,
            "target": f"sip:127.0.0.1:{5071 + i}",
            "interval": 0.1,
            "timeout": 0.05,
            "fall": 2,
            "rise": 2,
            "slow_start": 60.0,
        }
        for i, name in enumerate(MEMBERS)
    ]
    breakers.append(
        {"name": "mwi", "target": "sip:127.0.0.1:5080", "interval": 0.1, "timeout": 0.05}
    )
    return Settings(
        redis={"url": redis_url},  # type: ignore[arg-type]
        breakers=breakers,  # type: ignore[arg-type]
        pools=[{"name": "presence", "members": list(MEMBERS)}],  # type: ignore[list-item]
    )


@pytest.fixture
async def probes() -> ScriptedProbes:
    return ScriptedProbes()


@pytest.fixture
async def service(redis_server: Redis, probes: ScriptedProbes) -> AsyncIterator[Service]:
    svc = Service(pool_settings(redis_server.url), probe_factory=probes)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


def client_for(service: Service) -> httpx.AsyncClient:
    app = create_app(service, TokenRegistry([("alice", "operate", OPERATE)]), True)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://breaker")


async def test_pool_is_listed_and_read_like_a_breaker_with_its_members(service: Service) -> None:
    async with client_for(service) as client:
        listing = (await client.get("/v1/breakers")).json()
        pool = (await client.get("/v1/breakers/presence")).json()
        member = (await client.get("/v1/breakers/presence-a")).json()
    names = [b["name"] for b in listing["breakers"]]
    assert names == ["mwi", *MEMBERS, "presence"], f"breakers then pools, got {names}"
    assert (pool["kind"], pool["state"], pool["min_healthy"]) == ("pool", "closed", 2)
    assert [m["name"] for m in pool["members"]] == list(MEMBERS)
    assert (member["kind"], member["pool"]) == ("breaker", "presence")


async def test_one_member_down_keeps_the_pool_closed_two_down_halves_it_all_down_opens_it(
    service: Service, probes: ScriptedProbes, redis_server: Redis
) -> None:
    def pool_state() -> tuple[str, int]:
        v = service.verdict_of("presence")
        return v.state.value, v.admit

    probes.by_name["presence-b"].ok = False
    await eventually(lambda: service.status("presence-b").verdict.state.value == "open", what="b")
    assert pool_state() == ("closed", 100)
    probes.by_name["presence-c"].ok = False
    await eventually(lambda: pool_state() == ("half_open", 50), what="pool half_open 50")
    probes.by_name["presence-a"].ok = False
    await eventually(lambda: pool_state()[0] == "open", what="pool open")
    async with client_for(service) as client:
        allow = await client.get("/v1/breakers/presence/allow", params={"key": "sip:1@x"})
        force = await client.put(
            "/v1/breakers/presence/force",
            json={"state": "closed", "ttl": 60, "reason": "x"},
            headers=AUTH,
        )
    assert allow.status_code == 503 and int(allow.headers["Retry-After"]) >= 1
    assert force.status_code == 409 and "pool" in force.json()["error"]
    store = aioredis.Redis(port=redis_server.port, decode_responses=True)
    try:
        stored: bytes | str = ""
        for _ in range(100):
            stored = await store.hget("breaker:{presence}", "state") or ""
            if stored == "open":
                break
            await asyncio.sleep(0.05)
        assert stored == "open", f"breaker:{{presence}} in Redis: expected open, got {stored!r}"
        since = float(await store.hget("breaker:{presence}", "since") or 0)
        assert abs(since - time.time()) < 60, f"the pool's since must be unix time, got {since}"
        async with client_for(service) as api:
            history = (await api.get("/v1/breakers/presence/history")).json()
        assert [e["to"] for e in history["events"]][:2] == ["open", "half_open"], history
        assert {e["actor"] for e in history["events"]} == {"pool"}
    finally:
        await store.aclose()


async def test_a_newer_pool_epoch_left_in_redis_is_overtaken_not_rolled_back(
    redis_server: Redis, probes: ScriptedProbes
) -> None:
    """The pool epoch is derived (sum of members'); a restarted sidecar must still move it up."""
    client = aioredis.Redis(port=redis_server.port, decode_responses=True)
    await client.hset("breaker:{presence}", mapping={"state": "open", "epoch": "1000"})
    svc = Service(pool_settings(redis_server.url), probe_factory=probes)
    await svc.start()
    try:
        stored: dict[str, str] = {}
        for _ in range(100):
            stored = {
                str(k): str(v) for k, v in (await client.hgetall("breaker:{presence}")).items()
            }
            if stored.get("state") == "closed":
                break
            await asyncio.sleep(0.05)
        assert stored.get("state") == "closed", f"expected the pool rewritten closed: {stored}"
        assert int(stored["epoch"]) > 1000, f"expected an epoch above 1000, got {stored['epoch']}"
        assert svc.verdict_of("presence").epoch == int(stored["epoch"])
    finally:
        await svc.stop()
        await client.aclose()

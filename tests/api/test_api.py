"""HTTP API over a running service (scripted probes, real Redis)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from breaker.api import TokenRegistry
from breaker.core import State
from breaker.service import Service
from testbed.procs import free_port
from testbed.redis import Redis
from testbed.waiting import eventually
from tests.api.helpers import AUTH, READ, client_for
from tests.support.scripted import ScriptedProbes, settings_for


async def test_list_and_get_show_state_and_last_probe(service: Service) -> None:
    await eventually(lambda: service.status("presence").last_probe is not None, what="a probe")
    async with client_for(service) as client:
        listing = (await client.get("/v1/breakers")).json()
        one = (await client.get("/v1/breakers/presence")).json()
    assert [b["name"] for b in listing["breakers"]] == ["presence"]
    assert one["state"] == "closed" and one["admit"] == 100 and one["forced"] is None
    assert one["last_probe"]["ok"] is True and one["last_probe"]["rtt_ms"] == 1.0
    assert one["counters"]["probes"] >= 1


async def test_unknown_breaker_is_404_naming_known_ones(service: Service) -> None:
    async with client_for(service) as client:
        response = await client.get("/v1/breakers/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown breaker 'nope'; known: presence"


async def test_force_needs_a_token(service: Service) -> None:
    body = {"state": "open", "ttl": 60, "reason": "test"}
    async with client_for(service) as client:
        missing = await client.put("/v1/breakers/presence/force", json=body)
        wrong = await client.put(
            "/v1/breakers/presence/force", json=body, headers={"Authorization": "Bearer nope"}
        )
        reader = await client.put(
            "/v1/breakers/presence/force", json=body, headers={"Authorization": f"Bearer {READ}"}
        )
    assert (missing.status_code, wrong.status_code, reader.status_code) == (401, 401, 403)
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert service.status("presence").verdict.force is None, "a rejected force must change nothing"


async def test_writes_are_disabled_without_any_operate_token(service: Service) -> None:
    async with client_for(service, TokenRegistry([])) as client:
        response = await client.delete("/v1/breakers/presence/force", headers=AUTH)
    assert response.status_code == 401 and "writes are disabled" in response.json()["error"]


async def test_force_and_release_round_trip_with_actor(service: Service) -> None:
    async with client_for(service) as client:
        forced = await client.put(
            "/v1/breakers/presence/force",
            json={"state": "open", "ttl": 120, "reason": "presence upgrade"},
            headers=AUTH,
        )
        allow = await client.get("/v1/breakers/presence/allow")
        released = await client.delete("/v1/breakers/presence/force", headers=AUTH)
    assert forced.status_code == 200, forced.text
    body = forced.json()
    assert body["state"] == "open" and body["forced"]["by"] == "alice"
    assert body["forced"]["reason"] == "presence upgrade" and body["computed"] == "closed"
    assert allow.status_code == 503 and 1 <= int(allow.headers["Retry-After"]) <= 60
    assert released.json()["state"] == "closed" and released.json()["forced"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "half_open", "ttl": 60, "reason": "x"}, "body.state"),
        ({"state": "open", "ttl": -1, "reason": "x"}, "body.ttl"),
        ({"state": "open", "ttl": 60, "reason": ""}, "body.reason"),
        ({"state": "open", "ttl": 60}, "body.reason"),
        ({"state": "open", "ttl": 60, "reason": "x", "extra": 1}, "body.extra"),
    ],
)
async def test_bad_force_body_is_422_naming_the_field(
    service: Service, body: dict[str, object], field: str
) -> None:
    async with client_for(service) as client:
        response = await client.put("/v1/breakers/presence/force", json=body, headers=AUTH)
    assert response.status_code == 422 and response.json()["error"].startswith(field), response.text


async def test_force_longer_than_policy_allows_is_422(service: Service) -> None:
    async with client_for(service) as client:
        response = await client.put(
            "/v1/breakers/presence/force",
            json={"state": "open", "ttl": 10**6, "reason": "too long"},
            headers=AUTH,
        )
    assert response.status_code == 422 and "force_max_ttl" in response.json()["error"]


async def test_allow_in_half_open_admits_share_stable_per_key(service: Service) -> None:
    rt = service.runtimes["presence"]
    rt.policy = replace(rt.policy, slow_start=3600.0)  # so the share barely moves during the test
    now = service.clock()
    rt.breaker = replace(
        rt.breaker, computed=State.HALF_OPEN, ramp_start=now - 1420.0, epoch=rt.breaker.epoch + 1
    )  # 10 % + 90 % * 1420/3600 = 45.5 %: mid-way between two whole percents
    async with client_for(service) as client:
        keys = [f"sip:{i}@example.net" for i in range(400)]
        first = [
            (await client.get("/v1/breakers/presence/allow", params={"key": k})).status_code
            for k in keys
        ]
        again = [
            (await client.get("/v1/breakers/presence/allow", params={"key": k})).status_code
            for k in keys
        ]
    share = first.count(200) / len(first)
    assert 0.36 < share < 0.56, f"expected about 46 % admitted, saw {share:.0%}"
    assert first == again, "the same key must get the same answer"


async def test_reads_need_a_token_when_open_reads_is_off(service: Service) -> None:
    async with client_for(service, open_reads=False) as client:
        anonymous = await client.get("/v1/breakers")
        viewer = await client.get("/v1/breakers", headers={"Authorization": f"Bearer {READ}"})
    assert (anonymous.status_code, viewer.status_code) == (401, 200)


async def test_history_falls_back_to_memory_when_redis_is_down(
    service: Service, redis_server: Redis
) -> None:
    service.force("presence", State.OPEN, 60, "alice", "drill")
    async with client_for(service) as client:
        await eventually(lambda: not service.publisher.unsent, what="events in Redis")
        from_redis = (await client.get("/v1/breakers/presence/history")).json()
        redis_server.stop()
        from_memory = (await client.get("/v1/breakers/presence/history")).json()
    assert from_redis["source"] == "redis" and from_redis["events"][0]["actor"] == "alice"
    assert from_memory["source"] == "memory" and from_memory["events"][0]["actor"] == "alice"


async def test_readyz_follows_redis_and_metrics_are_exposed(redis_server: Redis) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    svc = Service(settings_for(url), probe_factory=ScriptedProbes())
    await svc.start()
    try:
        await eventually(lambda: svc.status("presence").probes_total > 0, what="a probe")
        async with client_for(svc) as client:
            ready = await client.get("/readyz")
            health = await client.get("/healthz")
            metrics = (await client.get("/metrics")).text
    finally:
        await svc.stop()
    assert (ready.status_code, health.status_code) == (503, 200)
    for name in ("breaker_state{", "breaker_redis_up", "breaker_probe_duration_seconds_bucket"):
        assert name in metrics, f"expected {name} in /metrics"

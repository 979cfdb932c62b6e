"""The Redis adapter against a real redis-server: the contract as consumers see it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from breaker import core
from breaker._config import RedisConfig
from breaker._errors import StoreUnavailable
from breaker.core import State
from breaker.store import ForceOp, RedisStore, state_key, stored_from_fields
from breaker.store._contract import verdict_fields
from testbed.procs import Child, free_port, port_open
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.store.votes import cast, vote
from tests.support.tls import self_signed

DOC = Path(__file__).parents[2] / "docs" / "redis-contract.md"


async def test_a_vote_sets_every_contract_field_with_ttl(redis_server: Redis) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("a", State.OPEN, ttl=3.0))
    stored = await store.read_state("presence")
    assert stored["state"] == "open" and stored["admit"] == "0" and stored["epoch"] == "1"
    assert stored["reason"] == "timeout" and stored["contract"] == "1", stored
    ttl_ms = int(redis_server.cli("PTTL", "breaker:{presence}"))
    assert 2000 < ttl_ms <= 3000, f"expected a TTL near 3 s, saw {ttl_ms} ms"
    await store.aclose()


async def test_contract_doc_lists_every_hash_field(redis_server: Redis) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("a", State.CLOSED))
    fields = set(await store.read_state("presence"))
    documented = set(re.findall(r"^\| `([a-z_]+)` \| `", DOC.read_text(), re.M))
    assert fields == documented, f"code writes {sorted(fields)}, doc lists {sorted(documented)}"
    encoded = set(
        verdict_fields(core.verdict(core.new_breaker("presence", 0.0), core.Policy(), 0.0), 0.0)
    )
    assert fields == encoded, (
        f"the script writes {sorted(fields)}, verdict_fields {sorted(encoded)}"
    )
    await store.aclose()


async def test_an_epoch_left_in_the_hash_is_never_rolled_back(redis_server: Redis) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("a", State.CLOSED))
    redis_server.cli("HSET", "breaker:{presence}", "epoch", "500")
    out = await cast(store, vote("a", State.CLOSED))
    assert out.verdict is not None and out.verdict.epoch == 500, f"expected 500: {out}"
    out = await cast(store, vote("a", State.OPEN))
    assert out.verdict is not None and out.verdict.epoch == 501, f"expected 501: {out}"
    await store.aclose()


async def test_events_go_to_stream_and_channel(redis_server: Redis) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    listener = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe("breaker:events")
    await pubsub.get_message(timeout=1.0)  # subscription confirmation
    await cast(store, vote("a", State.OPEN))
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2.0)
    assert message is not None, "expected one event on breaker:events"
    event = json.loads(message["data"])
    assert event["event"] == "transition" and event["to"] == "open" and event["epoch"] == 1
    history = await store.history("presence")
    assert [e["to"] for e in history] == ["open"], f"stream holds {history}"
    assert history[0]["epoch"] == 1 and history[0]["actor"] == "probe"
    await pubsub.aclose()
    await listener.aclose()
    await store.aclose()


async def test_history_is_newest_first_and_filters_by_time(redis_server: Redis) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    force = ForceOp("set", State.OPEN, 60, "alice", "upgrade")
    await cast(store, vote("a", State.CLOSED, force_op=force))
    await asyncio.sleep(0.05)
    between = time.time()
    await asyncio.sleep(0.05)
    await cast(store, vote("a", State.CLOSED, force_op=ForceOp("release", None, 0, "bob", "")))
    history = await store.history("presence")
    assert [(e["event"], e["actor"]) for e in history] == [("release", "bob"), ("force", "alice")]
    assert await store.history("presence", since=between) == [history[0]]
    await store.aclose()


async def test_unreachable_redis_raises_store_unavailable_quickly() -> None:
    store = RedisStore(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(StoreUnavailable, match="Redis unavailable"):
        await asyncio.wait_for(store.ping(), 2.0)
    await store.aclose()


async def test_password_from_url_authenticates(tmp_path: Path) -> None:
    server = Redis(tmp_path, password="s3cret-pass-word").start()
    try:
        store = RedisStore(RedisConfig(url=server.url))
        await store.ping()
        await store.aclose()
        wrong = RedisStore(RedisConfig(url=server.url.replace("s3cret", "wrong")))
        with pytest.raises(StoreUnavailable) as info:
            await wrong.ping()
        assert "s3cret" not in str(info.value) and "wrong-pass" not in str(info.value)
        await wrong.aclose()
    finally:
        server.stop()


async def test_password_file_authenticates(tmp_path: Path) -> None:
    server = Redis(tmp_path, password="from-a-file-123").start()
    try:
        secret = tmp_path / "redis.pass"
        secret.write_text("from-a-file-123\n")
        url = f"redis://127.0.0.1:{server.port}/0"
        store = RedisStore(RedisConfig(url=url, password_file=secret))
        await store.ping()
        await store.aclose()
    finally:
        server.stop()


def test_state_key_uses_a_cluster_hash_tag() -> None:
    assert state_key("breaker:", "presence") == "breaker:{presence}"


async def test_rediss_with_ca_file_connects_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    server = Child(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
         "--tls-auth-clients", "no", "--save", "", "--dir", str(tmp_path)],
        tmp_path / "redis-tls.log",
    )  # fmt: skip
    try:
        wait_until(lambda: port_open(port), 10, what="redis TLS port")
        store = RedisStore(RedisConfig(url=f"rediss://127.0.0.1:{port}/0", ssl_ca_file=cert))
        await store.ping()
        await store.aclose()
        untrusted = RedisStore(RedisConfig(url=f"rediss://127.0.0.1:{port}/0"))
        with pytest.raises(StoreUnavailable):
            await untrusted.ping()
        await untrusted.aclose()
    finally:
        server.stop()


async def test_every_vote_renews_updated_and_the_ttl(redis_server: Redis) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("a", State.CLOSED, ttl=3.0))
    first = float((await store.read_state("presence"))["updated"])
    redis_server.cli("PEXPIRE", "breaker:{presence}", "500")
    await asyncio.sleep(0.01)
    await cast(store, vote("a", State.CLOSED, ttl=3.0))
    updated = float((await store.read_state("presence"))["updated"])
    assert updated > first, f"expected updated to move past {first}, saw {updated}"
    assert int(redis_server.cli("PTTL", "breaker:{presence}")) > 2000, "TTL must be renewed"
    await store.aclose()


async def test_a_wrong_type_key_fails_only_its_own_breaker_and_is_repaired(
    redis_server: Redis,
) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    redis_server.cli("SET", "breaker:{x}", "1")
    redis_server.cli("SET", "breaker:{y}:log", "1")
    items = [vote("a", State.OPEN, name=n) for n in ("presence", "x", "y")]
    outcomes, _ = await store.vote(items)
    assert [o.error for o in outcomes] == [None, None, None], f"saw {outcomes}"
    assert [o.repaired for o in outcomes] == [False, True, True], f"saw {outcomes}"
    assert redis_server.cli("TYPE", "breaker:{x}") == "hash"
    assert redis_server.cli("TYPE", "breaker:{y}:log") == "stream"
    await store.aclose()


async def test_forces_and_epoch_outlive_the_verdict_hash(redis_server: Redis) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    force = ForceOp("set", State.OPEN, 3600, "alice", "upgrade")
    await cast(store, vote("a", State.CLOSED, force_op=force))
    redis_server.cli("DEL", "breaker:{presence}")  # as if the TTL ran out during a long outage
    assert redis_server.cli("TTL", "breaker:{presence}:meta") == "-1", "meta must not expire"
    fields = await store.read_stored("presence")
    stored = stored_from_fields(fields, 0.0)
    assert stored is not None and stored.force is not None, f"no force in {fields}"
    assert stored.force.until > time.time() + 3500 and stored.force.actor == "alice"
    assert stored.epoch == 1, f"expected epoch 1, saw {stored.epoch}"
    out = await cast(store, vote("b", State.CLOSED))
    assert out.verdict is not None and out.verdict.force is not None, f"force lost: {out}"
    assert out.verdict.epoch == 1, f"the epoch must survive the hash: {out.verdict.epoch}"
    await store.aclose()


async def test_meta_of_a_breaker_gone_from_every_config_is_cleaned_up(
    redis_server: Redis,
) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    await store.vote([vote("a", State.CLOSED, name=n) for n in ("presence", "old", "elsewhere")])
    redis_server.cli("DEL", "breaker:{old}")  # nobody publishes `old` any more
    forgotten = await store.forget_unconfigured({"presence"})
    assert forgotten == ["old"], f"expected only 'old' forgotten, saw {forgotten}"
    assert redis_server.cli("EXISTS", "breaker:{elsewhere}:meta") == "1", "a live one stays"
    assert redis_server.cli("EXISTS", "breaker:{old}:meta") == "0"
    await store.aclose()


async def test_garbage_passive_counters_raise_value_error_not_store_unavailable(
    redis_server: Redis,
) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    redis_server.cli("HSET", "breaker:{presence}:passive", "forwarded", "lots", "failed", "1")
    with pytest.raises(ValueError, match="non-integer"):
        await store.read_passive("presence")
    redis_server.cli("DEL", "breaker:{presence}:passive")
    redis_server.cli("SET", "breaker:{presence}:passive", "x")
    with pytest.raises(ValueError, match="not a hash"):
        await store.read_passive("presence")
    await store.aclose()

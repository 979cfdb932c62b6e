"""The Redis adapter against a real redis-server: the contract as consumers see it."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from breaker import core
from breaker._config import RedisConfig
from breaker._errors import StoreUnavailable
from breaker.core import Policy, State
from breaker.store import RedisStore, WriteItem, state_key, stored_from_fields
from breaker.store._contract import verdict_fields
from tests.support.procs import Proc, RedisServer, free_port, port_open, wait_until
from tests.support.tls import self_signed

POLICY = Policy(fall=1, rise=1, interval=1.0, slow_start=10.0)
DOC = Path(__file__).parents[2] / "docs" / "redis-contract.md"


def opened(now: float = 1000.0) -> core.Step:
    b = core.new_breaker("presence", now)
    return core.observe(b, POLICY, False, "timeout", now + 1)


async def test_write_sets_every_contract_field_with_ttl(redis_server: RedisServer) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    step = opened()
    verdict = core.verdict(step.breaker, POLICY, 1001.0)
    [outcome] = await store.write([WriteItem(verdict, step.events, 3.0)], 1001.0)
    assert outcome.written, f"expected the first write to land, got {outcome}"
    stored = await store.read_state("presence")
    assert stored["state"] == "open" and stored["admit"] == "0" and stored["epoch"] == "1"
    assert stored["reason"] == "timeout"
    ttl_ms = int(redis_server.cli("PTTL", "breaker:{presence}"))
    assert 2000 < ttl_ms <= 3000, f"expected a TTL near 3 s, saw {ttl_ms} ms"
    await store.aclose()


def test_contract_doc_lists_every_hash_field() -> None:
    step = opened()
    fields = set(verdict_fields(core.verdict(step.breaker, POLICY, 1001.0), 1001.0))
    documented = set(re.findall(r"^\| `([a-z_]+)` \| `", DOC.read_text(), re.M))
    assert fields == documented, f"code writes {sorted(fields)}, doc lists {sorted(documented)}"


async def test_older_epoch_never_overwrites_newer(redis_server: RedisServer) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    step = opened()
    newer = core.verdict(step.breaker, POLICY, 1001.0)
    await store.write([WriteItem(newer, (), 3.0)], 1001.0)
    older = core.verdict(core.new_breaker("presence", 1000.0), POLICY, 1000.0)
    [outcome] = await store.write([WriteItem(older, (), 3.0)], 1002.0)
    assert not outcome.written and outcome.stored_epoch == 1, f"stale write landed: {outcome}"
    assert (await store.read_state("presence"))["state"] == "open"
    await store.aclose()


async def test_events_go_to_stream_and_channel(redis_server: RedisServer) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    listener = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe("breaker:events")
    await pubsub.get_message(timeout=1.0)  # subscription confirmation
    step = opened()
    await store.write(
        [WriteItem(core.verdict(step.breaker, POLICY, 1001.0), step.events, 3.0)], 1001.0
    )
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


async def test_history_is_newest_first_and_filters_by_time(redis_server: RedisServer) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    b = core.new_breaker("presence", 1000.0)
    s1 = core.force(b, POLICY, State.OPEN, 60, "alice", "upgrade", 1000.0)
    s2 = core.release(s1.breaker, POLICY, "bob", 1010.0)
    for step, now in ((s1, 1000.0), (s2, 1010.0)):
        v = core.verdict(step.breaker, POLICY, now)
        await store.write([WriteItem(v, step.events, 3.0)], now)
    history = await store.history("presence")
    assert [(e["event"], e["actor"]) for e in history] == [("release", "bob"), ("force", "alice")]
    assert await store.history("presence", since=1005.0) == [history[0]]
    await store.aclose()


async def test_unreachable_redis_raises_store_unavailable_quickly() -> None:
    store = RedisStore(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(StoreUnavailable, match="Redis unavailable"):
        await asyncio.wait_for(store.ping(), 2.0)
    await store.aclose()


async def test_password_from_url_authenticates(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="s3cret-pass-word").start()
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
    server = RedisServer(tmp_path, password="from-a-file-123").start()
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
    server = Proc(
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


async def test_refresh_of_an_untouched_hash_bumps_updated_and_ttl(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    step = opened()
    verdict = core.verdict(step.breaker, POLICY, 1001.0)
    await store.write([WriteItem(verdict, step.events, 3.0)], 1001.0)
    redis_server.cli("PEXPIRE", "breaker:{presence}", "500")
    [outcome] = await store.write([WriteItem(verdict, (), 3.0, refresh_only=True)], 1002.0)
    stored = await store.read_state("presence")
    assert outcome.written and not outcome.repaired, f"expected a plain refresh, got {outcome}"
    assert stored["updated"] == "1002.000", f"expected updated 1002.000, saw {stored['updated']}"
    assert int(redis_server.cli("PTTL", "breaker:{presence}")) > 2000, "TTL must be renewed"
    await store.aclose()


async def test_refresh_of_a_foreign_edit_asks_for_a_full_write(redis_server: RedisServer) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    verdict = core.verdict(core.new_breaker("presence", 1000.0), POLICY, 1000.0)
    await store.write([WriteItem(verdict, (), 3.0)], 1000.0)
    redis_server.cli("HSET", "breaker:{presence}", "state", "open")
    [outcome] = await store.write([WriteItem(verdict, (), 3.0, refresh_only=True)], 1001.0)
    assert outcome.missing and outcome.repaired and not outcome.written, (
        f"expected the refresh to notice the edit and ask for a full write, got {outcome}"
    )
    [outcome] = await store.write([WriteItem(verdict, (), 3.0)], 1001.0)
    assert outcome.written and (await store.read_state("presence"))["state"] == "closed"
    await store.aclose()


async def test_a_wrong_type_key_fails_only_its_own_breaker_and_is_repaired(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    redis_server.cli("SET", "breaker:{x}", "1")
    redis_server.cli("SET", "breaker:{y}:log", "1")
    items = [
        WriteItem(core.verdict(opened().breaker, POLICY, 1001.0), opened().events, 3.0),
        WriteItem(core.verdict(core.new_breaker("x", 1000.0), POLICY, 1001.0), (), 3.0),
        WriteItem(core.verdict(opened().breaker, POLICY, 1001.0), (), 3.0),
    ]
    items[2] = WriteItem(replace(items[2].verdict, name="y"), opened().events, 3.0)
    outcomes = await store.write(items, 1001.0)
    assert [o.written for o in outcomes] == [True, True, True], f"saw {outcomes}"
    assert [o.repaired for o in outcomes] == [False, True, True], f"saw {outcomes}"
    assert redis_server.cli("TYPE", "breaker:{x}") == "hash"
    assert redis_server.cli("TYPE", "breaker:{y}:log") == "stream"
    await store.aclose()


async def test_forces_and_epoch_outlive_the_verdict_hash(redis_server: RedisServer) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    b = core.new_breaker("presence", 1000.0)
    step = core.force(b, POLICY, State.OPEN, 3600, "alice", "upgrade", 1000.0)
    await store.write(
        [WriteItem(core.verdict(step.breaker, POLICY, 1000.0), step.events, 3.0)], 1000.0
    )
    redis_server.cli("DEL", "breaker:{presence}")  # as if the TTL ran out during a long outage
    assert redis_server.cli("TTL", "breaker:{presence}:meta") == "-1", "meta must not expire"
    fields = await store.read_stored("presence")
    stored = stored_from_fields(fields, 0.0)
    assert stored is not None and stored.force is not None, f"no force in {fields}"
    assert stored.force.until == 4600.0 and stored.force.actor == "alice" and stored.epoch == 1
    older = core.verdict(core.new_breaker("presence", 1000.0), POLICY, 1000.0)
    [outcome] = await store.write([WriteItem(older, (), 3.0)], 1001.0)
    assert not outcome.written and outcome.stored_epoch == 1, f"epoch 0 beat 1: {outcome}"
    await store.aclose()


async def test_meta_of_a_breaker_gone_from_every_config_is_cleaned_up(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    for name in ("presence", "old", "elsewhere"):
        v = core.verdict(core.new_breaker(name, 1000.0), POLICY, 1000.0)
        await store.write([WriteItem(v, (), 30.0)], 1000.0)
    redis_server.cli("DEL", "breaker:{old}")  # nobody publishes `old` any more
    forgotten = await store.forget_unconfigured({"presence"})
    assert forgotten == ["old"], f"expected only 'old' forgotten, saw {forgotten}"
    assert redis_server.cli("EXISTS", "breaker:{elsewhere}:meta") == "1", "a live one stays"
    assert redis_server.cli("EXISTS", "breaker:{old}:meta") == "0"
    await store.aclose()


async def test_garbage_passive_counters_raise_value_error_not_store_unavailable(
    redis_server: RedisServer,
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


async def test_refresh_of_a_missing_hash_asks_for_a_full_write(redis_server: RedisServer) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    verdict = core.verdict(opened().breaker, POLICY, 1001.0)
    [outcome] = await store.write([WriteItem(verdict, (), 3.0, refresh_only=True)], 1002.0)
    assert outcome.missing and not outcome.written
    assert redis_server.cli("EXISTS", "breaker:{presence}") == "0", "no half-written hash"
    await store.aclose()

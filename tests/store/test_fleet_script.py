"""The fleet script against a real redis-server: votes, quorum, one ramp, forces, one epoch."""

from __future__ import annotations

import asyncio

from breaker._config import RedisConfig
from breaker.core import State
from breaker.store import ForceOp, RedisStore
from tests.store.votes import cast, vote


async def test_one_partitioned_observer_cannot_open_the_fleet(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    for obs in ("b", "c"):
        await cast(store, vote(obs, State.CLOSED))
    for _ in range(5):
        out = await cast(store, vote("a", State.OPEN))
    assert out.verdict.state is State.CLOSED and out.live == 3, out
    assert redis_server.cli("XLEN", "breaker:{presence}:log") == "0", "no transition expected"
    out = await cast(store, vote("b", State.OPEN))
    assert out.verdict.state is State.OPEN, f"two of three must open it: {out}"
    assert redis_server.cli("XLEN", "breaker:{presence}:log") == "1", "one event per change"
    await store.aclose()


async def test_votes_expire_so_a_lone_survivor_decides(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    for obs in ("b", "c"):
        await cast(store, vote(obs, State.CLOSED))
    out = await cast(store, vote("a", State.OPEN))
    assert out.verdict.state is State.CLOSED
    await asyncio.sleep(0.7)  # b and c stop voting: their votes expire
    out = await cast(store, vote("a", State.OPEN))
    assert out.verdict.state is State.OPEN and out.live == 1, out
    await store.aclose()


async def test_one_fleet_ramp_whoever_writes(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("a", State.OPEN))
    out = await cast(store, vote("a", State.HALF_OPEN))
    assert out.verdict.state is State.HALF_OPEN
    admits = []
    for i in range(20):
        out = await cast(store, vote("ab"[i % 2], State.HALF_OPEN if i % 2 else State.CLOSED))
        admits.append(out.verdict.admit)
        await asyncio.sleep(0.03)
    assert admits == sorted(admits), f"admit must never jump back between writers: {admits}"
    await asyncio.sleep(0.5)
    out = await cast(store, vote("a", State.CLOSED))
    assert out.verdict.state is State.CLOSED
    await store.aclose()


async def test_force_through_one_observer_holds_for_all_and_epoch_only_grows(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    op = ForceOp("set", State.OPEN, 60.0, "alice", "upgrade")
    out = await cast(store, vote("a", State.CLOSED, force_op=op))
    epochs = [out.verdict.epoch]
    out = await cast(store, vote("b", State.CLOSED))
    v = out.verdict
    assert v.state is State.OPEN and v.force is not None and v.force.actor == "alice", v
    epochs.append(v.epoch)
    release = ForceOp("release", None, 0.0, "bob", "")
    out = await cast(store, vote("b", State.CLOSED, force_op=release))
    epochs.append(out.verdict.epoch)
    assert out.verdict.state is State.CLOSED and epochs == sorted(epochs), epochs
    log = redis_server.cli("XRANGE", "breaker:{presence}:log", "-", "+")
    assert "force" in log and "release" in log
    await store.aclose()


async def test_differing_settings_are_reported(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("b", State.CLOSED, settings="interval=0.5"))
    out = await cast(store, vote("a", State.CLOSED))
    assert out.other == "b|interval=0.5", out
    await store.aclose()


async def test_garbage_votes_are_dropped(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    redis_server.cli("HSET", "breaker:{presence}:votes", "x", "open|soon|?", "y", "nonsense")
    out = await cast(store, vote("a", State.CLOSED))
    assert out.live == 1 and out.verdict.state is State.CLOSED, out
    assert redis_server.cli("HKEYS", "breaker:{presence}:votes") == "a"
    await store.aclose()


async def test_a_fleet_force_expires_by_itself_once(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    op = ForceOp("set", State.OPEN, 0.2, "alice", "short")
    out = await cast(store, vote("a", State.CLOSED, force_op=op))
    assert out.verdict.state is State.OPEN
    await asyncio.sleep(0.3)
    for observer in ("b", "a"):
        out = await cast(store, vote(observer, State.CLOSED))
        assert out.verdict.state is State.CLOSED and out.verdict.force is None, out
    log = redis_server.cli("XRANGE", "breaker:{presence}:log", "-", "+")
    assert log.count("expire") == 1, f"expected one expire event, saw {log.count('expire')}"
    await store.aclose()


async def test_every_vote_rewrites_a_foreign_edit(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("a", State.CLOSED))
    redis_server.cli("HSET", "breaker:{presence}", "state", "open", "admit", "0")
    out = await cast(store, vote("a", State.CLOSED))
    assert out.verdict.state is State.CLOSED
    assert redis_server.cli("HGET", "breaker:{presence}", "state") == "closed"
    assert redis_server.cli("HGET", "breaker:{presence}", "admit") == "100"
    await store.aclose()


async def test_a_second_instance_under_one_observer_id_is_reported(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    out = await cast(store, vote("host", State.CLOSED, instance="one"))
    assert not out.twin, f"a first vote has no twin: {out}"
    out = await cast(store, vote("host", State.CLOSED, instance="one"))
    assert not out.twin, f"its own earlier vote is no twin: {out}"
    out = await cast(store, vote("host", State.CLOSED, instance="two"))
    assert out.twin and out.live == 1, f"expected the other live instance reported: {out}"
    await store.aclose()


async def test_a_vote_without_an_instance_from_an_older_sidecar_still_counts(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    far = "9" * 15
    redis_server.cli("HSET", "breaker:{presence}:votes", "old", f"open|{far}|interval=0.1")
    out = await cast(store, vote("a", State.OPEN))
    assert out.live == 2 and out.verdict is not None and out.verdict.state is State.OPEN, out
    assert not out.other, f"same settings expected, saw {out.other!r}"
    await store.aclose()


async def test_the_fleet_reports_when_its_ramp_ends_and_its_force_runs_out(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    out = await cast(store, vote("a", State.CLOSED))
    assert out.due is None, f"a closed fleet changes by itself never: {out.due}"
    await cast(store, vote("a", State.OPEN))
    out = await cast(store, vote("a", State.HALF_OPEN))
    assert out.due is not None and 0.3 < out.due <= 0.5, f"ramp of 0.5 s: due {out.due}"
    op = ForceOp("set", State.OPEN, 0.2, "alice", "short")
    out = await cast(store, vote("a", State.HALF_OPEN, force_op=op))
    assert out.due is not None and 0.1 < out.due <= 0.2, f"force of 0.2 s: due {out.due}"
    await store.aclose()

"""The fleet script against a real redis-server: votes, quorum, one ramp, forces, one epoch."""

from __future__ import annotations

import asyncio

from breaker._config import RedisConfig
from breaker.core import Policy, State
from breaker.store import ForceOp, RedisStore, VoteItem

POLICY = Policy(fall=1, rise=1, interval=0.1, slow_start=0.5)


def vote(observer: str, state: State, **kw: object) -> VoteItem:
    fields: dict[str, object] = {
        "name": "presence", "observer": observer, "vote": state, "reason": "timeout",
        "settings": "interval=0.1", "policy": POLICY, "quorum": "majority", "vote_ttl": 0.6,
        "ttl": 2.0,
    }  # fmt: skip
    fields.update(kw)
    return VoteItem(**fields)  # type: ignore[arg-type]


async def cast(store: RedisStore, item: VoteItem) -> object:
    [outcome] = await store.vote([item])
    assert outcome.error is None and outcome.verdict is not None, outcome
    return outcome


async def test_one_partitioned_observer_cannot_open_the_fleet(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    for obs in ("b", "c"):
        await cast(store, vote(obs, State.CLOSED))
    for _ in range(5):
        out = await cast(store, vote("a", State.OPEN))
    assert out.verdict.state is State.CLOSED and out.live == 3, out  # type: ignore[attr-defined]
    assert redis_server.cli("XLEN", "breaker:{presence}:log") == "0", "no transition expected"
    out = await cast(store, vote("b", State.OPEN))
    assert out.verdict.state is State.OPEN, f"two of three must open it: {out}"  # type: ignore[attr-defined]
    assert redis_server.cli("XLEN", "breaker:{presence}:log") == "1", "one event per change"
    await store.aclose()


async def test_votes_expire_so_a_lone_survivor_decides(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    for obs in ("b", "c"):
        await cast(store, vote(obs, State.CLOSED))
    out = await cast(store, vote("a", State.OPEN))
    assert out.verdict.state is State.CLOSED  # type: ignore[attr-defined]
    await asyncio.sleep(0.7)  # b and c stop voting: their votes expire
    out = await cast(store, vote("a", State.OPEN))
    assert out.verdict.state is State.OPEN and out.live == 1, out  # type: ignore[attr-defined]
    await store.aclose()


async def test_one_fleet_ramp_whoever_writes(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("a", State.OPEN))
    out = await cast(store, vote("a", State.HALF_OPEN))
    assert out.verdict.state is State.HALF_OPEN  # type: ignore[attr-defined]
    admits = []
    for i in range(20):
        out = await cast(store, vote("ab"[i % 2], State.HALF_OPEN if i % 2 else State.CLOSED))
        admits.append(out.verdict.admit)  # type: ignore[attr-defined]
        await asyncio.sleep(0.03)
    assert admits == sorted(admits), f"admit must never jump back between writers: {admits}"
    await asyncio.sleep(0.5)
    out = await cast(store, vote("a", State.CLOSED))
    assert out.verdict.state is State.CLOSED  # type: ignore[attr-defined]
    await store.aclose()


async def test_force_through_one_observer_holds_for_all_and_epoch_only_grows(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    op = ForceOp("set", State.OPEN, 60.0, "alice", "upgrade")
    out = await cast(store, vote("a", State.CLOSED, force_op=op))
    epochs = [out.verdict.epoch]  # type: ignore[attr-defined]
    out = await cast(store, vote("b", State.CLOSED))
    v = out.verdict  # type: ignore[attr-defined]
    assert v.state is State.OPEN and v.force.actor == "alice", v
    epochs.append(v.epoch)
    release = ForceOp("release", None, 0.0, "bob", "")
    out = await cast(store, vote("b", State.CLOSED, force_op=release))
    epochs.append(out.verdict.epoch)  # type: ignore[attr-defined]
    assert out.verdict.state is State.CLOSED and epochs == sorted(epochs), epochs  # type: ignore[attr-defined]
    log = redis_server.cli("XRANGE", "breaker:{presence}:log", "-", "+")
    assert "force" in log and "release" in log
    await store.aclose()


async def test_differing_settings_are_reported(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("b", State.CLOSED, settings="interval=0.5"))
    out = await cast(store, vote("a", State.CLOSED))
    assert out.other == "b|interval=0.5", out  # type: ignore[attr-defined]
    await store.aclose()


async def test_garbage_votes_are_dropped(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    redis_server.cli("HSET", "breaker:{presence}:votes", "x", "open|soon|?", "y", "nonsense")
    out = await cast(store, vote("a", State.CLOSED))
    assert out.live == 1 and out.verdict.state is State.CLOSED, out  # type: ignore[attr-defined]
    assert redis_server.cli("HKEYS", "breaker:{presence}:votes") == "a"
    await store.aclose()


async def test_a_fleet_force_expires_by_itself_once(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    op = ForceOp("set", State.OPEN, 0.2, "alice", "short")
    out = await cast(store, vote("a", State.CLOSED, force_op=op))
    assert out.verdict.state is State.OPEN  # type: ignore[attr-defined]
    await asyncio.sleep(0.3)
    for observer in ("b", "a"):
        out = await cast(store, vote(observer, State.CLOSED))
        assert out.verdict.state is State.CLOSED and out.verdict.force is None, out  # type: ignore[attr-defined]
    log = redis_server.cli("XRANGE", "breaker:{presence}:log", "-", "+")
    assert log.count("expire") == 1, f"expected one expire event, saw {log.count('expire')}"
    await store.aclose()


async def test_every_vote_rewrites_a_foreign_edit(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisStore(RedisConfig(url=redis_server.url))
    await cast(store, vote("a", State.CLOSED))
    redis_server.cli("HSET", "breaker:{presence}", "state", "open", "admit", "0")
    out = await cast(store, vote("a", State.CLOSED))
    assert out.verdict.state is State.CLOSED  # type: ignore[attr-defined]
    assert redis_server.cli("HGET", "breaker:{presence}", "state") == "closed"
    assert redis_server.cli("HGET", "breaker:{presence}", "admit") == "100"
    await store.aclose()

"""The pool script against a real redis-server: the same rule as breaker.core's pool,
one event per pool change however many sidecars run it, an epoch that only grows."""

from __future__ import annotations

import itertools

from breaker import core
from breaker._config import RedisConfig
from breaker.core import State, Verdict
from breaker.store import PoolItem, PoolOutcome, RedisStore
from testbed.redis import Redis

MEMBERS = ("m0", "m1", "m2")
# (state, admit, retry_after) a member can publish; None: its hash is missing
SHAPES: tuple[tuple[State, int, int] | None, ...] = (
    (State.CLOSED, 100, 0),
    (State.OPEN, 0, 5),
    (State.HALF_OPEN, 10, 3),
    (State.HALF_OPEN, 55, 2),
    None,
)


def member(name: str, shape: tuple[State, int, int] | None) -> Verdict:
    """How the rule sees a member; a missing one takes no traffic and names no wait."""
    state, admit, retry = shape or (State.OPEN, 0, 0)
    return Verdict(name, state, admit, 1, 0.0, "", retry, state, None)


async def derive(store: RedisStore, min_healthy: int, pool: str = "presence") -> PoolOutcome:
    _, [outcome] = await store.vote([], [PoolItem(pool, MEMBERS, min_healthy, 5.0)])
    assert outcome.error is None and outcome.verdict is not None, outcome
    return outcome


async def test_the_script_derives_what_the_core_derives_for_every_member_mix(
    redis_server: Redis,
) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    try:
        for shapes in itertools.product(SHAPES, repeat=len(MEMBERS)):
            for name, shape in zip(MEMBERS, shapes, strict=True):
                key = f"breaker:{{{name}}}"
                await store.client.delete(key)
                if shape is not None:
                    state, admit, retry = shape
                    fields = {"state": state.value, "admit": admit, "retry_after": retry}
                    await store.client.hset(key, mapping=fields)  # type: ignore[misc,arg-type]
            members = [member(n, s) for n, s in zip(MEMBERS, shapes, strict=True)]
            for min_healthy in (1, 2, 3):
                got = (await derive(store, min_healthy)).verdict
                want = core.pool_verdict("presence", members, min_healthy, 0.0)
                assert got is not None
                seen = (got.state, got.admit, got.retry_after, got.reason)
                expected = (want.state, want.admit, want.retry_after, want.reason)
                assert seen == expected, f"{shapes} min_healthy {min_healthy}: {seen} != {expected}"
    finally:
        await store.aclose()


async def test_several_sidecars_deriving_one_pool_write_one_event_per_change(
    redis_server: Redis,
) -> None:
    stores = [RedisStore(RedisConfig(url=redis_server.url)) for _ in range(3)]
    try:
        for name in MEMBERS:
            redis_server.cli("HSET", f"breaker:{{{name}}}", "state", "closed", "admit", "100")
        first = [await derive(s, 2) for s in stores]
        assert {o.verdict.epoch for o in first if o.verdict} == {0}, "no change yet, no epoch"
        for name in MEMBERS[:2]:
            redis_server.cli("HSET", f"breaker:{{{name}}}", "state", "open", "admit", "0")
        outcomes = [await derive(s, 2) for s in stores for _ in range(3)]
        assert sum(o.changes for o in outcomes) == 1, "exactly one run makes the change"
        epochs = {o.verdict.epoch for o in outcomes if o.verdict}
        assert epochs == {1}, f"one change, one epoch step: saw {epochs}"
        log = redis_server.cli("XRANGE", "breaker:{presence}:log", "-", "+")
        assert log.count("transition") == 1 and "pool" in log, f"one event by actor pool: {log}"
        assert redis_server.cli("HGET", "breaker:{presence}", "state") == "half_open"
    finally:
        for s in stores:
            await s.aclose()


async def test_a_pool_epoch_survives_its_hash_and_a_foreign_edit_is_rewritten(
    redis_server: Redis,
) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url))
    try:
        for name in MEMBERS:
            redis_server.cli("HSET", f"breaker:{{{name}}}", "state", "open", "admit", "0")
        redis_server.cli("HSET", "breaker:{presence}", "state", "closed", "epoch", "40")
        out = await derive(store, 2)
        assert out.verdict is not None and out.verdict.epoch == 41, f"40 + one change: {out}"
        redis_server.cli("DEL", "breaker:{presence}")
        redis_server.cli("HSET", "breaker:{presence}", "state", "closed", "admit", "100")
        out = await derive(store, 2)
        assert out.verdict is not None and out.verdict.state is State.OPEN, out
        assert out.verdict.epoch == 41 and out.changes == 0, f"an edit is no change: {out}"
        assert redis_server.cli("HGET", "breaker:{presence}", "state") == "open"
    finally:
        await store.aclose()

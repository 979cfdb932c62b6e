"""Redis adapter: sends votes (the scripts write verdicts and events), reads history and
passive counters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)

from breaker._config import RedisConfig
from breaker._errors import StoreUnavailable
from breaker.store._connect import connect
from breaker.store._contract import (
    CONTRACT_VERSION,
    event_from_stream,
    events_channel,
    guard_runs_key,
    log_key,
    meta_key,
    passive_key,
    state_key,
    votes_key,
)
from breaker.store._fleet import FLEET_SCRIPT, VoteItem, VoteOutcome, vote_outcome
from breaker.store._pool import POOL_SCRIPT, PoolItem, PoolOutcome, pool_outcome

# What each Redis-wide failure means for an operator, logged once when it starts.
HINTS = {
    "unreachable": "check that Redis runs and [redis] url points at it",
    "auth": "check the Redis password ([redis] password_file or BREAKER_REDIS_PASSWORD)",
    "readonly": "[redis] url points at a read-only replica: use the master, or Sentinel",
    "oom": "Redis hit maxmemory: raise it, or use a volatile-* eviction policy",
    "noperm": "the Redis user lacks a permission: allow HGETALL HMGET EVALSHA SCRIPT SCAN DEL "
    "XREVRANGE PING on the breaker keys and PUBLISH on the events channel",
    "error": "Redis refused the command; see the error",
}
# Kinds that concern one key only; the others concern the whole server.
KEY_KINDS = frozenset({"wrongtype", "script"})


def classify(exc: BaseException) -> str:
    """One word for what went wrong: a metric label and the key into HINTS."""
    text = str(exc)
    code = text.split(" ", 1)[0].upper()
    if isinstance(exc, ReadOnlyError) or "READONLY" in code:
        return "readonly"
    if isinstance(exc, OutOfMemoryError) or code.startswith("OOM") or "OOM command" in text:
        return "oom"
    if isinstance(exc, NoPermissionError) or "NOPERM" in text:
        return "noperm"
    if isinstance(exc, AuthenticationError) or code in ("WRONGPASS", "NOAUTH"):
        return "auth"
    if "WRONGTYPE" in text:
        return "wrongtype"
    if isinstance(exc, ResponseError):
        return "script" if "script" in text.lower() else "error"
    return "unreachable"


class RedisStore:
    """Talks to one Redis; every method raises StoreUnavailable on any Redis failure."""

    def __init__(self, cfg: RedisConfig, client: aioredis.Redis | None = None) -> None:
        self.cfg = cfg
        self.prefix = cfg.key_prefix
        self.client = client or connect(cfg)
        self._vote = self.client.register_script(FLEET_SCRIPT)
        self._pool = self.client.register_script(POOL_SCRIPT)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        await self._call(self.client.ping())

    async def vote(
        self, items: Sequence[VoteItem], pools: Sequence[PoolItem] = ()
    ) -> tuple[list[VoteOutcome], list[PoolOutcome]]:
        """Send this observer's votes (and force ops), then re-derive the pools, in one
        round trip; get back each fleet verdict and each pool's.

        One bad key fails only its breaker; Redis-wide refusals (read-only replica, OOM,
        NOPERM, auth) raise StoreUnavailable with their kind.
        """
        channel = events_channel(self.prefix)
        async with self.client.pipeline(transaction=False) as pipe:
            for item in items:
                keys = [*self._verdict_keys(item.name), votes_key(self.prefix, item.name)]
                args = item.args(self.cfg.log_maxlen, channel, CONTRACT_VERSION)
                # a Cluster pipeline runs scripts too (store/_connect.py)
                await self._vote(keys=keys, args=args, client=pipe)  # type: ignore[arg-type]
            for pool in pools:
                keys = [
                    *self._verdict_keys(pool.name),
                    *(state_key(self.prefix, m) for m in pool.members),
                ]
                args = pool.args(self.cfg.log_maxlen, channel, CONTRACT_VERSION)
                await self._pool(keys=keys, args=args, client=pipe)  # type: ignore[arg-type]
            replies = await self._call(pipe.execute(raise_on_error=False))
        outcomes = [
            VoteOutcome(item.name, None, error=_key_error(reply))
            if isinstance(reply, BaseException)
            else vote_outcome(item.name, reply)
            for item, reply in zip(items, replies[: len(items)], strict=True)
        ]
        pooled = [
            PoolOutcome(pool.name, None, error=_key_error(reply))
            if isinstance(reply, BaseException)
            else pool_outcome(pool.name, reply)
            for pool, reply in zip(pools, replies[len(items) :], strict=True)
        ]
        return outcomes, pooled

    def _verdict_keys(self, name: str) -> list[str]:
        """What both scripts write first: the verdict hash, its audit stream, its meta."""
        return [
            state_key(self.prefix, name),
            log_key(self.prefix, name),
            meta_key(self.prefix, name),
        ]

    async def read_state(self, name: str) -> dict[str, str]:
        result: dict[str, str] = await self._call(self.client.hgetall(state_key(self.prefix, name)))
        return result

    async def read_stored(self, name: str) -> dict[str, str]:
        """What a previous sidecar left: the non-expiring meta hash, else the verdict hash.

        A key of the wrong type reads as nothing (the next write repairs it).
        """
        for key in (meta_key(self.prefix, name), state_key(self.prefix, name)):
            try:
                fields: dict[str, str] = await self._call(self.client.hgetall(key))
            except StoreUnavailable as exc:
                if exc.kind not in KEY_KINDS:
                    raise
                continue
            if fields:
                return fields
        return {}

    async def forget_unconfigured(self, names: set[str]) -> list[str]:
        """Delete the meta hash of breakers no longer configured anywhere.

        A name another sidecar still publishes (its verdict hash exists) is kept:
        sidecars of one fleet may run different configs for a while.
        """
        pattern = meta_key(self.prefix, "*")
        forgotten: list[str] = []
        async for key in self.client.scan_iter(match=pattern, count=500):
            name = key[len(self.prefix) + 1 : -len("}:meta")]
            if name in names or meta_key(self.prefix, name) != key:
                continue
            if await self._call(self.client.exists(state_key(self.prefix, name))):
                continue
            await self._call(self.client.delete(key))
            forgotten.append(name)
        return forgotten

    async def history(
        self, name: str, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first. `since` is unix seconds; stream IDs carry write time."""
        low = f"{int(since * 1000)}-0" if since is not None else "-"
        entries = await self._call(
            self.client.xrevrange(log_key(self.prefix, name), "+", low, count=limit)
        )
        events = [event_from_stream(entry_id, fields) for entry_id, fields in entries]
        if since is not None:
            events = [e for e in events if (e.get("at") or 0) >= since]
        return events

    async def read_passive(self, name: str) -> tuple[int, int] | None:
        """Kamailio's counters; ValueError when the key holds something else than counters."""
        try:
            fields = await self._call(
                self.client.hmget(passive_key(self.prefix, name), "forwarded", "failed")
            )
        except StoreUnavailable as exc:
            if exc.kind in KEY_KINDS:
                raise ValueError(f"{passive_key(self.prefix, name)} is not a hash") from None
            raise
        if fields[0] is None:
            return None
        try:
            counts = int(fields[0] or 0), int(fields[1] or 0)
        except ValueError:
            raise ValueError(
                f"{passive_key(self.prefix, name)} holds non-integer counters"
            ) from None
        return counts

    async def read_guard_runs(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        """Every breaker's `breaker guard` outcome counts, in one pipelined round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(guard_runs_key(self.prefix, name))
            replies = await self._call(pipe.execute(raise_on_error=False))
        counts: dict[str, dict[str, int]] = {}
        for name, fields in zip(names, replies, strict=True):
            if isinstance(fields, BaseException):  # a foreign key of the wrong type: skip it
                continue
            counts[name] = {k: int(v) for k, v in fields.items() if str(v).isdigit()}
        return counts

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py turns a cancellation mid-command into a connection error;
                # give the cancellation back so shutdown is not swallowed.
                raise asyncio.CancelledError from exc
            kind = classify(exc)
            raise StoreUnavailable(f"Redis unavailable: {_describe(exc)}", kind) from exc


def _key_error(reply: BaseException) -> str:
    """The kind of a failure that concerns one key; raise for one that concerns Redis."""
    kind = classify(reply)
    if kind not in KEY_KINDS:
        raise StoreUnavailable(f"Redis refused a write: {_describe(reply)}", kind)
    return kind


def _describe(exc: BaseException) -> str:
    """Error text without the URL: it may carry a password."""
    text = str(exc) or type(exc).__name__
    return text.split("\n", 1)[0][:200]

"""Keeps Redis in step with memory without ever making a probe wait for Redis.

Probe loops mark a breaker dirty and return at once; one task sends the dirty
breakers' votes (and the pools holding them) in one round trip. The scripts write
the verdicts and the audit events, so nothing is queued here: while Redis is away
only the latest vote of each breaker waits, and the first vote after Redis returns
publishes the net change (docs/model.md, "Redis away").
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence

from breaker._errors import StoreUnavailable
from breaker._metrics import Metrics
from breaker.store._fleet import VoteItem, VoteOutcome
from breaker.store._pool import PoolItem, PoolOutcome
from breaker.store._redis import HINTS, RedisStore

log = logging.getLogger("breaker.store")

BACKOFF_START = 0.1
# Capped low so a Sentinel failover's new master is found within ~1 s (docs/redis-ha.md).
BACKOFF_MAX = 1.0


class Publisher:
    def __init__(
        self,
        store: RedisStore,
        metrics: Metrics,
        names: Iterable[str],
        voter: Callable[[str], VoteItem],
        on_voted: Callable[[VoteItem, VoteOutcome], None],
        pools: Callable[[Sequence[str]], list[PoolItem]] = lambda names: [],
        on_pooled: Callable[[PoolOutcome], None] = lambda outcome: None,
        on_connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.names = tuple(names)
        self.voter = voter  # this observer's vote (and force op) for one breaker
        self.on_voted = on_voted
        self.pools = pools  # the pools to re-derive after these members' votes
        self.on_pooled = on_pooled
        self.on_connect = on_connect
        self.up = False
        self.ever_connected = False
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._backoff = BACKOFF_START
        self._flushed = asyncio.Event()
        self.down_kind: str | None = None  # why Redis is unusable, while it is
        self._logged: set[tuple[str, str]] = set()  # (breaker, kind) already warned about

    def mark_dirty(self, name: str) -> None:
        """Send this breaker's vote at the next flush (now, unless one is running)."""
        self._dirty.add(name)
        self._wake.set()

    @property
    def unsent(self) -> int:
        """Breakers whose latest vote (or force) has not reached Redis yet."""
        return len(self._dirty)

    async def run(self) -> None:
        self._wake.set()  # a restarted run picks up whatever is dirty
        while True:
            _reraise_swallowed_cancel()
            await self._wake.wait()
            self._wake.clear()
            try:
                if not self.up:
                    await self._connect()
                await self._flush()
                self._backoff = BACKOFF_START
                if not self.up:
                    self._came_up()
            except StoreUnavailable as exc:
                self._went_down(exc)
                await asyncio.sleep(self._backoff * random.uniform(0.5, 1.5))
                self._backoff = min(BACKOFF_MAX, self._backoff * 2)
                self._wake.set()

    async def wait_flushed(self) -> None:
        """For shutdown and read-your-writes: wait for one clean flush."""
        self._flushed.clear()
        self._wake.set()
        await self._flushed.wait()

    async def _connect(self) -> None:
        """Ping and restore; `up` waits for a write that lands (a replica answers PING too)."""
        await self.store.ping()
        if self.on_connect is not None:
            await self.on_connect()
        self._dirty.update(self.names)  # vote for everything: keys may have expired

    def _came_up(self) -> None:
        self.up = True
        self.metrics.redis_up.set(1)
        log.info(
            "store.connected" if not self.ever_connected else "store.reconnected",
            extra={"breakers": len(self.names)},
        )
        self.ever_connected = True
        self.down_kind = None

    async def _flush(self) -> None:
        names = sorted(self._dirty)
        if names:
            items = [self.voter(n) for n in names]
            pools = self.pools(names)
            self._dirty.difference_update(names)
            try:
                outcomes, pooled = await self.store.vote(items, pools)
            except StoreUnavailable:
                self._dirty.update(names)
                raise
            for item, outcome in zip(items, outcomes, strict=True):
                if self._failed(outcome.name, outcome.repaired, outcome.error):
                    self._dirty.add(outcome.name)
                else:
                    self.on_voted(item, outcome)
            for pool in pooled:
                if not self._failed(pool.name, pool.repaired, pool.error):
                    self.on_pooled(pool)
        if not self._dirty:
            self._flushed.set()

    def _failed(self, name: str, repaired: bool, error: str | None) -> bool:
        """Warn once about a repaired key or a key that fails; True when it failed."""
        if repaired:
            self._warn_once(name, "foreign_edit", "store.foreign_edit_repaired")
        if error is None:
            return False
        self._warn_once(name, error, "store.write_failed")
        self.metrics.redis_errors.labels("write", error).inc()
        return True

    def _went_down(self, exc: StoreUnavailable) -> None:
        """Log once per outage and cause, not once per retry."""
        self.metrics.redis_errors.labels("write", exc.kind).inc()
        if self.up or exc.kind != self.down_kind:
            log.error(
                "store.unavailable",
                extra={"kind": exc.kind, "error": str(exc), "hint": HINTS.get(exc.kind, "")},
            )
        self.down_kind = exc.kind
        self.up = False
        self.metrics.redis_up.set(0)

    def _warn_once(self, name: str, kind: str, message: str) -> None:
        if (name, kind) not in self._logged:
            self._logged.add((name, kind))
            log.warning(message, extra={"breaker": name, "kind": kind})


def _reraise_swallowed_cancel() -> None:
    """redis-py can absorb a cancellation that lands mid-command; don't let shutdown hang."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

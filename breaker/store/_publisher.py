"""Keeps Redis in step with memory without ever making a probe wait for Redis.

Probe loops hand over their latest verdict and events and return at once; one
task writes them, queues events while Redis is away (bounded, oldest dropped
first) and, when Redis returns, rewrites every verdict and replays the queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from breaker._errors import StoreUnavailable
from breaker._metrics import Metrics
from breaker.core import Event, Verdict
from breaker.store._fleet import VoteItem, VoteOutcome
from breaker.store._redis import HINTS, RedisStore, WriteItem

log = logging.getLogger("breaker.store")

BACKOFF_START = 0.1
# Capped low so a Sentinel failover's new master is found within ~1 s (docs/redis-ha.md).
BACKOFF_MAX = 1.0


class Publisher:
    def __init__(
        self,
        store: RedisStore,
        ttl_by_name: Mapping[str, float],
        metrics: Metrics,
        clock: Callable[[], float],
        on_stale: Callable[[str, int], None],
        on_connect: Callable[[], Awaitable[None]] | None = None,
        pending_max: int = 10000,
        voter: Callable[[str], VoteItem] | None = None,
        on_voted: Callable[[VoteItem, VoteOutcome], None] | None = None,
    ) -> None:
        self.store = store
        self.ttl_by_name = dict(ttl_by_name)
        self.metrics = metrics
        self.clock = clock
        self.on_stale = on_stale
        self.on_connect = on_connect
        self.pending_max = pending_max
        # Fleet mode: send votes, the script derives and audits the verdict (no local queue).
        self.voter = voter
        self.on_voted = on_voted
        self.up = False
        self.ever_connected = False
        self._latest: dict[str, Verdict] = {}
        self._written: dict[str, Verdict] = {}  # last verdict Redis took, per breaker
        self._dirty: set[str] = set()
        self._pending: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._backoff = BACKOFF_START
        self._flushed = asyncio.Event()
        self.down_kind: str | None = None  # why Redis is unusable, while it is
        self._logged: set[tuple[str, str]] = set()  # (breaker, kind) already warned about

    def submit(self, verdict: Verdict, events: tuple[Event, ...] = ()) -> None:
        self._latest[verdict.name] = verdict
        self._dirty.add(verdict.name)
        if self.voter is not None:
            events = ()  # the fleet script writes the fleet's events
        for event in events:
            if len(self._pending) >= self.pending_max:
                self._pending.popleft()
                self.metrics.dropped_events.inc()
                log.warning("store.event_dropped", extra={"pending_max": self.pending_max})
            self._pending.append(event)
        self.metrics.pending_events.set(len(self._pending))
        self._wake.set()

    @property
    def pending_events(self) -> int:
        return len(self._pending)

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
        """For shutdown: wait for one clean flush after the last submit."""
        self._flushed.clear()
        self._wake.set()
        await self._flushed.wait()

    async def _connect(self) -> None:
        """Ping and restore; `up` waits for a write that lands (a replica answers PING too)."""
        await self.store.ping()
        if self.on_connect is not None:
            await self.on_connect()
        self._written.clear()
        self._dirty.update(self._latest)  # rewrite everything in full: keys may have expired

    def _came_up(self) -> None:
        self.up = True
        self.metrics.redis_up.set(1)
        log.info(
            "store.connected" if not self.ever_connected else "store.reconnected",
            extra={"pending_events": len(self._pending), "breakers": len(self._latest)},
        )
        self.ever_connected = True
        self.down_kind = None

    async def _flush(self) -> None:
        if self.voter is not None:
            await self._flush_votes()
            return
        names = sorted(self._dirty)
        if names:
            events = list(self._pending)
            by_name: dict[str, list[Event]] = {}
            for event in events:
                by_name.setdefault(event.name, []).append(event)
            items = [
                WriteItem(
                    self._latest[n],
                    by_name.get(n, []),
                    self.ttl_by_name[n],
                    refresh_only=self._written.get(n) == self._latest[n],
                )
                for n in names
            ]
            self._dirty.difference_update(names)
            try:
                outcomes = await self.store.write(items, self.clock())
            except StoreUnavailable:
                self._dirty.update(names)
                self._written.clear()  # Redis may come back empty
                raise
            for item, outcome in zip(items, outcomes, strict=True):
                if outcome.written:
                    self._written[outcome.name] = item.verdict
                else:
                    self._written.pop(outcome.name, None)
            written = {o.name for o in outcomes if o.written}
            # Drop exactly the events that went out; stale-refused ones stay queued.
            sent = {id(e) for e in events if e.name in written}
            self._pending = deque(e for e in self._pending if id(e) not in sent)
            self.metrics.pending_events.set(len(self._pending))
            for outcome in outcomes:
                if outcome.repaired:
                    self._warn_once(outcome.name, "foreign_edit", "store.foreign_edit_repaired")
                if outcome.error is not None:  # this breaker's keys are broken; retry it later
                    self._warn_once(outcome.name, outcome.error, "store.write_failed")
                    self.metrics.redis_errors.labels("write", outcome.error).inc()
                    self._dirty.add(outcome.name)
                elif outcome.missing:  # expired, Redis restarted, or edited: rewrite it whole
                    self._dirty.add(outcome.name)
                    self._wake.set()
                elif not outcome.written:
                    if (outcome.name, "stale") not in self._logged:  # once: a fight repeats
                        self._logged.add((outcome.name, "stale"))
                        log.warning(
                            "store.stale_epoch",
                            extra={
                                "breaker": outcome.name,
                                "stored_epoch": outcome.stored_epoch,
                                "hint": "if several sidecars publish this breaker, give "
                                "each a [cluster] section so they vote instead of fighting",
                            },
                        )
                    self.on_stale(outcome.name, outcome.stored_epoch)
        if not self._dirty:
            self._flushed.set()

    async def _flush_votes(self) -> None:
        assert self.voter is not None and self.on_voted is not None
        names = sorted(self._dirty)
        if names:
            items = [self.voter(n) for n in names]
            self._dirty.difference_update(names)
            try:
                outcomes = await self.store.vote(items)
            except StoreUnavailable:
                self._dirty.update(names)
                raise
            for item, outcome in zip(items, outcomes, strict=True):
                if outcome.repaired:
                    self._warn_once(outcome.name, "foreign_edit", "store.foreign_edit_repaired")
                if outcome.error is not None:
                    self._warn_once(outcome.name, outcome.error, "store.write_failed")
                    self.metrics.redis_errors.labels("vote", outcome.error).inc()
                    self._dirty.add(outcome.name)
                else:
                    self.on_voted(item, outcome)
        if not self._dirty:
            self._flushed.set()

    def mark_dirty(self, name: str) -> None:
        self._dirty.add(name)
        self._wake.set()

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

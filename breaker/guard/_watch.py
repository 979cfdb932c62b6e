"""The Redis watcher: holds the job lock and re-reads the verdict until the policy says stop.

What to do is decided by breaker.core._guard (pure); this module does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from breaker._errors import GuardRefused, GuardStopped
from breaker.client._lock import JobLock, LockState
from breaker.client._redis import (
    EventFeed,
    VerdictReader,
    check_cancelled,
    default_redis_url,
    redis_client,
)
from breaker.core._guard import Action, Cause, Decision, OnUnknown, decide
from breaker.guard._exit import REFUSED, STOPPED, ExitCode
from breaker.guard._options import GuardOptions
from breaker.store import guard_runs_key

SUBSCRIBE_WAIT = 2.0  # at start, how long to wait for the events subscription
STOP_WAIT = 2.0  # every step of the guard's own shutdown is bounded


class Watch:
    """Keeps the lock and re-reads the verdict until the policy says stop."""

    def __init__(self, opts: GuardOptions, say: Callable[[str], None]) -> None:
        self.opts = opts
        self.say = say
        self._client = redis_client(opts.redis_url or default_redis_url(), opts.prefix)
        self._reader = VerdictReader(self._client, opts.name, opts.prefix)
        self._wake = asyncio.Event()
        self._feed = EventFeed(self._client, opts.name, self._wake.set, opts.prefix)
        self._feed_task: asyncio.Task[None] | None = None
        self._lock = JobLock(self._client, opts.lock_key, opts.lock_ttl) if opts.lock_key else None
        self._acquiring: asyncio.Task[LockState] | None = None
        self._renew_at = 0.0
        self._unknown_since: float | None = None
        self._last: Decision | None = None

    async def start(self) -> None:
        """Return if the job may start; raise GuardRefused otherwise."""
        self._feed_task = asyncio.create_task(self._feed.run(), name="guard:events")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_WAIT):
                await self._feed.ready.wait()
        decision = await self._look(running=False)
        if decision.action is Action.REFUSE:
            raise GuardRefused(REFUSED[decision.cause], decision.message)
        if self._lock is not None:
            await self._take_lock()

    async def _take_lock(self) -> None:
        assert self._lock is not None
        # shielded: a guard interrupted now must still learn whether it took the lock,
        # so that close() releases it (else it would block the next run for --lock-ttl)
        self._acquiring = asyncio.ensure_future(self._lock.acquire())
        state = await asyncio.shield(self._acquiring)
        if state is LockState.BUSY:
            left = await self._lock.ttl_left()
            expires = f", expires in {left:.0f}s unless renewed" if left else ""
            raise GuardRefused(
                ExitCode.LOCKED,
                f"another instance holds the lock {self._lock.key}{expires}; not started",
            )
        if state is LockState.UNKNOWN:
            if self.opts.on_unknown is OnUnknown.REFUSE:
                raise GuardRefused(
                    ExitCode.UNKNOWN,
                    f"cannot take the lock {self._lock.key}: Redis unreachable; "
                    "not started (--on-unknown refuse)",
                )
            self.say(f"cannot take the lock {self._lock.key} (Redis unreachable); running without")
        self._renew_at = time.monotonic() + self._renew_period(state)

    async def until_stop(self) -> GuardStopped:
        """Watch while the job runs; return (never raise) the reason to stop it."""
        while True:
            check_cancelled()  # in case a library swallowed the stop request
            now = time.monotonic()
            wait = self.opts.poll
            if self._lock is not None:
                wait = max(0.0, min(wait, self._renew_at - now))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            if self._lock is not None and time.monotonic() >= self._renew_at:
                state = await self._lock.renew()
                self._renew_at = time.monotonic() + self._renew_period(state)
                if state is LockState.BUSY:
                    return GuardStopped(
                        ExitCode.STOPPED_UNKNOWN,
                        f"lost the lock {self._lock.key} to another instance; stopping the job",
                    )
            decision = await self._look(running=True)
            if decision.action is Action.STOP:
                return GuardStopped(STOPPED[decision.cause], decision.message)

    async def _look(self, running: bool) -> Decision:
        reading = await self._reader.read()
        now = time.monotonic()
        if reading.known:
            self._unknown_since = None
        elif self._unknown_since is None:
            self._unknown_since = now
        decision = decide(
            reading,
            running=running,
            key=self.opts.key,
            on_unknown=self.opts.on_unknown,
            unknown_for=now - self._unknown_since if self._unknown_since is not None else 0.0,
            grace=self.opts.grace,
        )
        previous, self._last = self._last, decision
        changed = previous is None or previous.cause is not decision.cause
        if changed and decision.action in (Action.START, Action.KEEP):
            if decision.cause is Cause.UNKNOWN:
                self.say(decision.message)
            elif previous is not None and previous.cause is Cause.UNKNOWN:
                self.say(f"state known again: {decision.message}")
        return decision

    def _renew_period(self, state: LockState) -> float:
        ttl = self.opts.lock_ttl
        return ttl / 3 if state is LockState.HELD else min(self.opts.poll, ttl / 3)

    async def count(self, outcome: str) -> None:
        """Best effort: HINCRBY the outcome so the sidecar can export it (docs/metrics.md)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.5):
                await self._client.hincrby(
                    guard_runs_key(self.opts.prefix, self.opts.name), outcome
                )

    async def close(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            await asyncio.wait([self._feed_task], timeout=STOP_WAIT)
        if self._acquiring is not None:
            await asyncio.wait([self._acquiring], timeout=STOP_WAIT)
        if self._lock is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._lock.release()
        with contextlib.suppress(Exception):
            await self._client.aclose()


def stop_reason(watcher: asyncio.Task[GuardStopped]) -> GuardStopped:
    """What the watcher returned; if it crashed, that is a reason to stop too (fail safe)."""
    try:
        return watcher.result()
    except Exception as exc:
        return GuardStopped(
            ExitCode.STOPPED_UNKNOWN,
            f"the guard's watcher failed ({type(exc).__name__}: {exc}); stopping the job",
        )

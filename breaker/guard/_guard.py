"""`Guard`: run a block of async code only while a breaker lets traffic through."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Self

from breaker._errors import GuardStopped
from breaker.client._redis import DEFAULT_PREFIX
from breaker.core._guard import OnUnknown
from breaker.guard._options import GuardOptions, default_lock_key
from breaker.guard._watch import STOP_WAIT, Watch, stop_reason

log = logging.getLogger("breaker.guard")


class Guard:
    """Run a block of async code only while breaker `name` lets traffic through.

        async with Guard("presence", "vm-presence"):
            for mailbox in mailboxes:
                await send_mwi(mailbox)

    Entering raises GuardRefused (breaker open, another instance running, state
    unknown). If the breaker opens while the block runs, the block is cancelled and
    GuardStopped is raised from the `async with`. `job` names the lock
    (`breaker:{presence}:guard:vm-presence`) and is the key for the half_open share.
    """

    def __init__(
        self,
        name: str,
        job: str,
        *,
        key: str | None = None,
        lock: bool = True,
        lock_ttl: float = 60.0,
        on_unknown: OnUnknown | str = OnUnknown.REFUSE,
        grace: float = 10.0,
        poll: float = 1.0,
        redis_url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.options = GuardOptions(
            name=name,
            key=key or job,
            lock_key=default_lock_key(name, job, prefix) if lock else None,
            lock_ttl=lock_ttl,
            on_unknown=OnUnknown(on_unknown),
            grace=grace,
            poll=poll,
            redis_url=redis_url or "",
            prefix=prefix,
        )
        self._say = say or log.warning
        self._watch: Watch | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._task: asyncio.Task[object] | None = None
        self.stopped: GuardStopped | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.current_task()
        self._watch = Watch(self.options, self._say)
        try:
            await self._watch.start()
        except BaseException:
            await self._watch.close()
            raise
        self._monitor = asyncio.create_task(self._watch_body(self._watch), name="guard:watch")
        return self

    async def _watch_body(self, watch: Watch) -> None:
        watcher = asyncio.create_task(watch.until_stop(), name="guard:until_stop")
        try:
            await asyncio.wait([watcher])
        finally:
            watcher.cancel()
            await asyncio.wait([watcher], timeout=STOP_WAIT)
        self.stopped = stop_reason(watcher)
        self._say(str(self.stopped))
        if self._task is not None:
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.wait([self._monitor], timeout=STOP_WAIT)
        if self._watch is not None:
            await self._watch.close()
        stopped = self.stopped
        if stopped is None or self._task is None:
            return
        ours = self._task.uncancel() == 0  # else the caller cancelled too: let that win
        if ours and exc_type in (None, asyncio.CancelledError):
            raise stopped from None

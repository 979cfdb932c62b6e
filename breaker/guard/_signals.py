"""The guard's SIGINT/SIGTERM/SIGHUP: caught for its whole life, so none is lost or kills it.

Caught from before the guard looks at Redis until it has cleaned up, in three phases:

- before the job starts, the first one means "do not start it": the guard stops
  waiting for Redis, releases what it took and exits 128 + N (130, 143, 129);
- while the job runs (and while its leftovers are stopped), each one is forwarded
  to the job's process group;
- around the fork, they are blocked, so the child cannot take one in the moment
  between fork and exec, when it still runs the guard's code.

A signal ignored when the guard started (`nohup`, `cmd &` in a script) is left
ignored, by the guard and by the job.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager

from breaker.guard._watch import STOP_WAIT

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Signals:
    """SIGINT/SIGTERM/SIGHUP for one guard run: install, then `first`, then `forward_to`."""

    def __init__(self) -> None:
        self.caught: tuple[int, ...] = ()
        self.received: int | None = None  # the first one that came before the job started
        self._interrupted = asyncio.Event()
        self._target: Callable[[int], None] | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        self.caught = tuple(s for s in FORWARDED if signal.getsignal(s) is not signal.SIG_IGN)
        for sig in self.caught:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.caught:
            loop.remove_signal_handler(sig)

    def forward_to(self, target: Callable[[int], None]) -> None:
        """From now on every caught signal goes to `target` (the job's process group)."""
        self._target = target

    def _on_signal(self, sig: int) -> None:
        if self._target is not None:
            self._target(sig)
        elif self.received is None:
            self.received = sig
            self._interrupted.set()

    async def first(self, step: Awaitable[None]) -> bool:
        """Run `step` unless a signal comes first: True if it ran, False if it was cut short
        (cancelled, or its outcome dropped: the signal wins). Its exceptions propagate."""
        task = asyncio.ensure_future(step)
        interrupted = asyncio.create_task(self._interrupted.wait())
        try:
            await asyncio.wait({task, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupted.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=STOP_WAIT)
        if self.received is not None:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a refusal that lost the race is not news
            return False
        task.result()
        return True

    def describe(self) -> str:
        assert self.received is not None
        return signal.Signals(self.received).name

    @contextmanager
    def blocked(self) -> Iterator[Callable[[], None]]:
        """Block the caught signals around a fork; yields the child's set-up (preexec).

        In the parent a blocked signal stays pending and is handled (forwarded) once the
        fork is done. The child starts with them blocked, drops any that reached it while
        it was still in the guard's process group (the guard forwards its own copy), and
        unblocks them with their default action before exec.
        """
        caught = self.caught
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, caught)
        try:
            yield lambda: _child_defaults(caught, mask)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _child_defaults(caught: Iterable[int], mask: Iterable[int]) -> None:
    for sig in caught:
        signal.signal(sig, signal.SIG_IGN)  # discards a pending one
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)

"""What both scenarios' timelines do the same way: start and stop their processes around
the run, wait on the loop clock, tail a log."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")


class Environment(Protocol):
    """A run's processes: started in order, always stopped (whatever start got to)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


async def run_in(environment: Environment, drive: Callable[[], Awaitable[T]]) -> T:
    """Start the environment (in a thread), drive the run, stop everything on the way out.

    SIGTERM (like Ctrl-C) cancels the run; a start under way is finished before the stop.
    """
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    if me is not None:
        loop.add_signal_handler(signal.SIGTERM, me.cancel)
    starting = asyncio.ensure_future(asyncio.to_thread(environment.start))
    try:
        await asyncio.shield(starting)
        return await drive()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await asyncio.wait({starting})  # never stop while a start is still under way
        await asyncio.to_thread(environment.stop)


async def sleep_until(when: float) -> None:
    """Sleep until `when` on the running loop's clock (at once if it has passed)."""
    delay = when - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def tail_lines(log: Path, on_line: Callable[[float, str], None]) -> None:
    """Call on_line(wall-clock time, line) for each whole line the log gains (every 50 ms).

    Runs until cancelled; a log that is missing or unreadable is tried again.
    """
    position = 0
    partial = ""
    while True:
        await asyncio.sleep(0.05)
        try:
            with log.open("r", errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
        except OSError:
            continue
        now = time.time()
        lines = (partial + chunk).split("\n")
        partial = lines.pop()
        for line in lines:
            on_line(now, line)

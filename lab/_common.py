"""What both scenarios' timelines do the same way: wait on the loop clock, tail a log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path


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

"""Waiting on conditions: always with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from testbed.procs import LabError

T = TypeVar("T")


class TimedOut(LabError, AssertionError):
    """A condition did not hold in time: a lab error, and a failed assertion in a test."""


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "", interval: float = 0.02
) -> T:
    """Poll until `predicate` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


async def eventually(predicate: Callable[[], object], within: float = 5.0, what: str = "") -> None:
    """`wait_until` for asyncio code: the loop runs while it waits."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {within:g}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)

"""Two clocks: the machine runs on monotonic seconds, the contract speaks unix seconds.

Every duration and deadline (hold, ramp, backoff, force expiry) is kept on one
monotonic clock the shell passes in, so an NTP step of the wall clock cannot
stretch or skip any of them. Wall time appears only at the edge, converted with
an offset (wall minus monotonic) the shell measures when it publishes.
"""

from __future__ import annotations

from dataclasses import replace

from breaker.core._machine import Event, Force, Verdict


def verdict_on_wall(verdict: Verdict, offset: float) -> Verdict:
    """The verdict with `since` and the force's times as unix seconds."""
    force = force_shifted(verdict.force, offset) if verdict.force else None
    return replace(verdict, since=verdict.since + offset, force=force)


def event_on_wall(event: Event, offset: float) -> Event:
    until = event.until + offset if event.until is not None else None
    return replace(event, at=event.at + offset, until=until)


def force_shifted(force: Force, offset: float) -> Force:
    """Move a force between clocks: +offset to wall, -offset back to monotonic."""
    return replace(force, until=force.until + offset, at=force.at + offset)

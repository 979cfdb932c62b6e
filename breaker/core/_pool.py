"""A pool's verdict, derived from its members' verdicts: pure, time passed in.

A pool is a set of presence servers behind one proxy (a Kamailio dispatcher set).
The proxy fails a member's subscribers over to the others, so the pool can take
traffic while enough members can:

    closed     while at least `min_healthy` members are closed
    half_open  fewer: admit = the members' summed admit shares / min_healthy
               (e.g. 1 of min_healthy=2 closed -> 50 %), capped to 1..99
    open       no member admits anything

A pool has no probe, no force and no state of its own: its epoch is the sum of
its members' epochs (plus a base raised when Redis holds a newer one), so it only
grows, as the contract requires, without remembering anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from breaker.core._machine import Event, State, Verdict

POOL_ACTOR = "pool"


def default_min_healthy(members: int) -> int:
    """N-1 servers must carry N servers' load: one member down is still closed."""
    return max(1, members - 1)


def pool_verdict(
    name: str,
    members: Sequence[Verdict],
    min_healthy: int,
    now: float,
    previous: Verdict | None = None,
    epoch_base: int = 0,
) -> Verdict:
    """The pool's verdict from its members'; `previous` keeps `since` while the state holds."""
    total = len(members)
    closed = sum(1 for v in members if v.state is State.CLOSED)
    capacity = sum(v.admit for v in members)  # in percent of one member
    not_closed = [v.retry_after for v in members if v.state is not State.CLOSED]
    waits = [r for r in not_closed if r > 0]
    retry = min(waits) if waits else 0
    if closed >= min_healthy:
        state, admit, retry = State.CLOSED, 100, 0
        reason = f"{closed} of {total} members closed (min_healthy {min_healthy})"
    elif capacity <= 0:
        state, admit = State.OPEN, 0
        reason = f"no member can take traffic (0 of {total} closed)"
        retry = retry or 1
    else:
        state = State.HALF_OPEN
        admit = max(1, min(99, capacity // min_healthy))
        reason = f"{closed} of {total} members closed (min_healthy {min_healthy})"
        retry = retry or 1
    since = previous.since if previous is not None and previous.state is state else now
    return Verdict(
        name=name,
        state=state,
        admit=admit,
        epoch=epoch_base + sum(v.epoch for v in members),
        since=since,
        reason=reason,
        retry_after=retry,
        computed=state,
        force=None,
    )


def pool_events(previous: Verdict | None, current: Verdict) -> tuple[Event, ...]:
    """One `transition` event when the pool's state changes (none for the first verdict)."""
    if previous is None or previous.state is current.state:
        return ()
    return (
        Event(
            kind="transition",
            name=current.name,
            from_state=previous.state,
            to_state=current.state,
            state=current.state,
            admit=current.admit,
            epoch=current.epoch,
            at=current.since,
            reason=current.reason,
            actor=POOL_ACTOR,
        ),
    )

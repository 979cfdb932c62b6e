"""Builders shared by the core tests: a fixed policy and breakers driven to a known state."""

from __future__ import annotations

from dataclasses import dataclass, field

from breaker.core import Breaker, Event, Policy, State, new_breaker, observe, tick

NAME = "presence"

# The defaults spelled out, so a change of defaults does not silently change the tests.
P = Policy(
    fall=3,
    rise=2,
    interval=1.0,
    slow_start=30.0,
    initial_admit=10,
    retry_after_max=60,
    reopen_window=300.0,
    reopen_backoff=5.0,
    reopen_backoff_max=120.0,
    jitter=0.2,
    force_max_ttl=86400.0,
)


@dataclass
class Run:
    breaker: Breaker
    events: list[Event] = field(default_factory=list)
    t: float = 0.0  # time of the last observation


def feed(
    b: Breaker, policy: Policy, pattern: str, start: float, dt: float = 1.0, rand: float = 0.5
) -> Run:
    """Observe `pattern` ("F" failure, "S" success) at start, start + dt, ...

    The builders below feed one result a second, whatever the policy's interval.
    """
    run = Run(b, [], start)
    t = start
    for i, char in enumerate(pattern):
        t = start + i * dt
        ok = char == "S"
        step = observe(run.breaker, policy, ok, "ok" if ok else "timeout", t, rand)
        run.breaker = step.breaker
        run.events.extend(step.events)
    run.t = t
    return run


def opened(policy: Policy = P, at: float = 100.0) -> Breaker:
    """A breaker opened (for the first time, so without backoff) at `at`."""
    b = new_breaker(NAME, 0.0)
    b = feed(b, policy, "F" * policy.fall, at - (policy.fall - 1)).breaker
    assert b.computed is State.OPEN, f"setup: expected open, saw {b.computed}"
    return b


def half_opened(policy: Policy = P, at: float = 200.0) -> Breaker:
    """A breaker whose ramp started at `at` (opened once, at `at` - 100)."""
    b = opened(policy, at=at - 100.0)
    b = feed(b, policy, "S" * policy.rise, at - (policy.rise - 1)).breaker
    assert b.computed is State.HALF_OPEN, f"setup: expected half_open, saw {b.computed}"
    assert b.ramp_start == at, f"setup: expected ramp start {at}, saw {b.ramp_start}"
    return b


def flap(b: Breaker, policy: Policy, t: float, rand: float = 0.5) -> tuple[Breaker, float]:
    """From open: recover to half_open as early as allowed, then fail once.

    Returns the reopened breaker and the time it reopened.
    """
    for _ in range(policy.rise):
        t += policy.interval
        b = observe(b, policy, True, "ok", t).breaker
    if b.computed is State.OPEN:
        t = max(t, b.hold_until)
        b = tick(b, policy, t).breaker
    assert b.computed is State.HALF_OPEN, f"setup: expected half_open, saw {b.computed}"
    t += policy.interval
    b = observe(b, policy, False, "timeout", t, rand).breaker
    assert b.computed is State.OPEN, f"setup: expected reopened, saw {b.computed}"
    return b, t


def kinds(events: list[Event] | tuple[Event, ...]) -> list[str]:
    return [e.kind for e in events]


def moves(events: list[Event] | tuple[Event, ...]) -> list[tuple[str, str]]:
    """(from, to) of the transition events, as strings."""
    return [(e.from_state.value, e.to_state.value) for e in events if e.kind == "transition"]

"""The circuit-breaker state machine: pure values in, values out, time passed in.

Nothing here awaits, sleeps, reads a clock or touches a socket, so every path is
tested exhaustively and the service can replay it deterministically.

    closed --fall failures--> open --rise successes (after backoff)--> half_open
       ^                        ^                                          |
       |                        +------------- any failure ---------------+
       +------------------------ ramp reaches 100 % ----------------------+

A force (open or closed, with an expiry) overrides the *effective* state; the
computed state keeps evolving underneath so releasing a force lands on the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

EventKind = Literal["transition", "force", "release", "expire", "resync"]


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class InvalidForce(ValueError):
    """A force request the policy does not allow; the message says why."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How probe results become a verdict. Mirrors the breaker's config keys."""

    fall: int = 3
    rise: int = 2
    interval: float = 1.0
    slow_start: float = 30.0
    initial_admit: int = 10
    retry_after_max: int = 60
    reopen_window: float = 300.0
    reopen_backoff: float = 5.0
    reopen_backoff_max: float = 120.0
    jitter: float = 0.2
    force_max_ttl: float = 86400.0
    fast_interval: float = 0.5  # probe gap while confirming a failure (core/_schedule.py)


@dataclass(frozen=True, slots=True)
class Force:
    state: State
    until: float
    actor: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class Breaker:
    """Everything the machine remembers about one breaker."""

    name: str
    computed: State = State.CLOSED
    computed_since: float = 0.0
    reason: str = "start"  # why the computed state is what it is
    failures: int = 0  # consecutive failed probes
    successes: int = 0  # consecutive good probes
    ramp_start: float = 0.0  # when half_open began
    hold_until: float = 0.0  # no half_open before this (reopen backoff)
    reopen_streak: int = 0  # reopens in a row, each within reopen_window of the last
    last_open_at: float | None = None
    force: Force | None = None
    epoch: int = 0
    since: float = 0.0  # when the effective state began

    @property
    def state(self) -> State:
        return self.force.state if self.force else self.computed


@dataclass(frozen=True, slots=True)
class Event:
    """One audited change. `from_state`/`to_state` are computed states for a
    `transition`, effective states for everything else; `state` is always the
    effective state after the change."""

    kind: EventKind
    name: str
    from_state: State
    to_state: State
    state: State
    admit: int
    epoch: int
    at: float
    reason: str
    actor: str
    forced: State | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """What a previous sidecar left in Redis, times already on this sidecar's clock."""

    computed: State
    admit: int
    epoch: int
    since: float
    reason: str
    force: Force | None = None


@dataclass(frozen=True, slots=True)
class Step:
    breaker: Breaker
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What consumers see: the published view of a breaker at one instant."""

    name: str
    state: State
    admit: int
    epoch: int
    since: float
    reason: str
    retry_after: int
    computed: State
    force: Force | None


def new_breaker(name: str, now: float, epoch: int = 0) -> Breaker:
    """Start closed: a sidecar that just started must not block traffic on a guess."""
    return Breaker(name=name, computed_since=now, since=now, epoch=epoch)


# ---------------------------------------------------------------- reading


def admit_percent(breaker: Breaker, policy: Policy, now: float) -> int:
    """Share of traffic to let through: 0 open, 100 closed, a linear ramp in half_open."""
    state = breaker.state
    if state is State.OPEN:
        return 0
    if state is State.CLOSED:
        return 100
    if policy.slow_start <= 0:
        return 99
    elapsed = max(0.0, now - breaker.ramp_start)
    share = policy.initial_admit + (100 - policy.initial_admit) * elapsed / policy.slow_start
    return max(policy.initial_admit, min(99, math.floor(share)))


def retry_after(breaker: Breaker, policy: Policy, now: float) -> int:
    """Seconds a rejected client should wait: roughly when it could next get through."""
    state = breaker.state
    if state is State.CLOSED:
        return 0
    if breaker.force is not None:
        wait = breaker.force.until - now
    elif state is State.OPEN:
        wait = max(0.0, breaker.hold_until - now) + policy.rise * policy.interval
    else:
        wait = breaker.ramp_start + policy.slow_start - now
    return max(1, min(policy.retry_after_max, math.ceil(wait)))


def verdict(breaker: Breaker, policy: Policy, now: float) -> Verdict:
    reason = f"forced: {breaker.force.reason}" if breaker.force else breaker.reason
    return Verdict(
        name=breaker.name,
        state=breaker.state,
        admit=admit_percent(breaker, policy, now),
        epoch=breaker.epoch,
        since=breaker.since,
        reason=reason,
        retry_after=retry_after(breaker, policy, now),
        computed=breaker.computed,
        force=breaker.force,
    )


def next_change(breaker: Breaker, policy: Policy) -> float | None:
    """When `tick` would next change something without a new probe result, if ever.

    Lets the shell skip ticking the (usually all) breakers that time alone won't move.
    """
    deadlines: list[float] = []
    if breaker.force is not None:
        deadlines.append(breaker.force.until)
    if breaker.computed is State.OPEN and breaker.successes >= policy.rise:
        deadlines.append(breaker.hold_until)
    if breaker.computed is State.HALF_OPEN:
        deadlines.append(breaker.ramp_start + policy.slow_start)
    return min(deadlines) if deadlines else None


# ---------------------------------------------------------------- changing


def observe(
    breaker: Breaker, policy: Policy, ok: bool, reason: str, now: float, rand: float = 0.5
) -> Step:
    """Feed one probe result. `rand` in [0, 1) jitters the reopen backoff."""
    step = tick(breaker, policy, now)
    b = step.breaker
    if ok:
        b = replace(b, failures=0, successes=b.successes + 1)
    else:
        b = replace(b, failures=b.failures + 1, successes=0)

    if b.computed is State.CLOSED and not ok and b.failures >= policy.fall:
        return _chain(step, _open(b, policy, reason, now, rand))
    if b.computed is State.HALF_OPEN and not ok:
        return _chain(step, _open(b, policy, reason, now, rand))
    return _chain(step, tick(b, policy, now))


def tick(breaker: Breaker, policy: Policy, now: float) -> Step:
    """Advance what time alone changes: force expiry, backoff end, ramp end."""
    b = breaker
    events: list[Event] = []
    if b.force is not None and now >= b.force.until:
        before = b.state
        b = _bump(replace(b, force=None), before, now)
        events.append(_event(b, policy, "expire", before, b.state, now, b.reason, "sidecar"))
    if b.computed is State.OPEN and b.successes >= policy.rise and now >= b.hold_until:
        step = _transition(replace(b, ramp_start=now), policy, State.HALF_OPEN, "probes ok", now)
        b = step.breaker
        events.extend(step.events)
    if b.computed is State.HALF_OPEN and now >= b.ramp_start + policy.slow_start:
        step = _transition(b, policy, State.CLOSED, "recovered", now)
        b = step.breaker
        events.extend(step.events)
    return Step(b, tuple(events))


def force(
    breaker: Breaker,
    policy: Policy,
    state: State,
    ttl: float,
    actor: str,
    reason: str,
    now: float,
) -> Step:
    """Override the effective state until now + ttl. A new force replaces an old one."""
    if state is State.HALF_OPEN:
        raise InvalidForce("a breaker can only be forced open or closed")
    if not math.isfinite(ttl) or ttl <= 0:
        raise InvalidForce("ttl must be a positive number of seconds")
    if ttl > policy.force_max_ttl:
        raise InvalidForce(
            f"ttl {ttl:g}s exceeds the maximum of {policy.force_max_ttl:g}s (force_max_ttl)"
        )
    if not reason.strip():
        raise InvalidForce("a reason is required")
    if now + ttl <= now:
        raise InvalidForce(f"ttl {ttl:g}s is too small to set an expiry")
    step = tick(breaker, policy, now)
    before = step.breaker.state
    new_force = Force(state=state, until=now + ttl, actor=actor, reason=reason.strip(), at=now)
    b = _bump(replace(step.breaker, force=new_force), before, now)
    event = _event(
        b, policy, "force", before, b.state, now, new_force.reason, actor, state, new_force.until
    )
    return _chain(step, Step(b, (event,)))


def release(breaker: Breaker, policy: Policy, actor: str, now: float) -> Step:
    """Drop the force, if any; idempotent so a retried release is harmless."""
    step = tick(breaker, policy, now)
    if step.breaker.force is None:
        return step
    before = step.breaker.state
    b = _bump(replace(step.breaker, force=None), before, now)
    event = _event(b, policy, "release", before, b.state, now, "released", actor)
    return _chain(step, Step(b, (event,)))


def resync(breaker: Breaker, policy: Policy, stored_epoch: int, now: float) -> Step:
    """Jump past an epoch found in Redis so our next write is not refused as stale."""
    step = tick(breaker, policy, now)
    if stored_epoch < step.breaker.epoch:
        return step
    b = replace(step.breaker, epoch=stored_epoch + 1)
    event = _event(b, policy, "resync", b.state, b.state, now, f"epoch {stored_epoch}", "sidecar")
    return _chain(step, Step(b, (event,)))


def restore(breaker: Breaker, policy: Policy, stored: Stored, now: float) -> Step:
    """Resume from the verdict a previous sidecar left, so a restart moves nothing.

    Only a breaker that has decided nothing yet adopts the stored computed state:
    an open one stays open until `rise` good probes (a crash-looping sidecar never
    sends full traffic to a dead server), a half_open one continues its ramp where
    it was. The stored epoch is adopted (no event: nothing changed for consumers);
    a live force is restored on top.
    """
    step = tick(breaker, policy, now)
    b = step.breaker
    undecided = b.reason == "start" and b.computed is State.CLOSED and b.force is None
    if b.epoch == 0 and stored.epoch > 0:
        b = replace(b, epoch=stored.epoch)
    elif stored.epoch >= b.epoch:
        step = _chain(step, resync(b, policy, stored.epoch, now))
        b = step.breaker
    if undecided and stored.computed is not State.CLOSED:
        since = min(stored.since, now)
        reason = stored.reason if not stored.reason.startswith("forced") else "restored"
        b = replace(b, computed=stored.computed, computed_since=since, reason=reason, since=since)
        if stored.computed is State.OPEN:
            b = replace(b, successes=0, failures=0, hold_until=now, last_open_at=now)
        else:
            b = replace(b, ramp_start=now - _ramp_elapsed(policy, stored.admit))
    elif undecided:
        b = replace(b, since=min(stored.since, now))
    step = Step(b, step.events)
    if stored.force is not None:
        step = _chain(step, restore_force(b, policy, stored.force, now))
    return step


def _ramp_elapsed(policy: Policy, admit: int) -> float:
    """How far into the ramp a published `admit` share was."""
    if policy.slow_start <= 0 or policy.initial_admit >= 100:
        return 0.0
    share = (min(max(admit, policy.initial_admit), 99) - policy.initial_admit) / (
        100 - policy.initial_admit
    )
    return share * policy.slow_start


def restore_force(breaker: Breaker, policy: Policy, stored: Force, now: float) -> Step:
    """Adopt a force found in Redis after a sidecar restart, if it is still valid."""
    step = tick(breaker, policy, now)
    current = step.breaker
    valid = math.isfinite(stored.until) and stored.until > now
    if current.force is not None or not valid or stored.state is State.HALF_OPEN:
        return step
    ttl = min(stored.until - now, policy.force_max_ttl)
    restored = replace(stored, until=now + ttl)
    before = current.state
    b = _bump(replace(current, force=restored), before, now)
    event = _event(
        b,
        policy,
        "force",
        before,
        b.state,
        now,
        restored.reason,
        restored.actor,
        restored.state,
        restored.until,
    )
    return _chain(step, Step(b, (event,)))


# ---------------------------------------------------------------- internals


def _open(breaker: Breaker, policy: Policy, reason: str, now: float, rand: float) -> Step:
    recent = breaker.last_open_at is not None and now - breaker.last_open_at <= policy.reopen_window
    streak = breaker.reopen_streak + 1 if recent else 0
    hold = 0.0
    if streak:
        doublings = min(streak - 1, 62)  # past this the cap has long won; avoids overflow
        base = min(policy.reopen_backoff_max, policy.reopen_backoff * 2.0**doublings)
        hold = base * (1 + policy.jitter * (2 * rand - 1))
    b = replace(
        breaker,
        reopen_streak=streak,
        last_open_at=now,
        hold_until=now + hold,
        successes=0,
    )
    return _transition(b, policy, State.OPEN, reason, now)


def _transition(breaker: Breaker, policy: Policy, to: State, reason: str, now: float) -> Step:
    before_effective = breaker.state
    before = breaker.computed
    b = replace(breaker, computed=to, computed_since=now, reason=reason)
    if to is not State.OPEN:
        b = replace(b, failures=0)
    b = _bump(b, before_effective, now)
    return Step(b, (_event(b, policy, "transition", before, to, now, reason, "probe"),))


def _bump(breaker: Breaker, effective_before: State, now: float) -> Breaker:
    since = breaker.since if breaker.state is effective_before else now
    return replace(breaker, epoch=breaker.epoch + 1, since=since)


def _event(
    b: Breaker,
    policy: Policy,
    kind: EventKind,
    from_state: State,
    to_state: State,
    now: float,
    reason: str,
    actor: str,
    forced: State | None = None,
    until: float | None = None,
) -> Event:
    if b.force is not None and forced is None:
        forced, until = b.force.state, b.force.until
    return Event(
        kind=kind,
        name=b.name,
        from_state=from_state,
        to_state=to_state,
        state=b.state,
        admit=admit_percent(b, policy, now),
        epoch=b.epoch,
        at=now,
        reason=reason,
        actor=actor,
        forced=forced,
        until=until,
    )


def _chain(first: Step, second: Step) -> Step:
    return Step(second.breaker, first.events + second.events)

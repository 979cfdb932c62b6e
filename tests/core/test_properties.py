"""Property tests: random policies and operation sequences, invariants after every step."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from breaker.core import (
    Breaker,
    Force,
    InvalidForce,
    Policy,
    State,
    Step,
    admit_percent,
    force,
    new_breaker,
    next_change,
    observe,
    release,
    restore_force,
    resync,
    tick,
    verdict,
)

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

EDGES = {
    (State.CLOSED, State.OPEN),
    (State.OPEN, State.HALF_OPEN),
    (State.HALF_OPEN, State.OPEN),
    (State.HALF_OPEN, State.CLOSED),
}

# ---------------------------------------------------------------- strategies

policies = st.builds(
    Policy,
    fall=st.integers(1, 10),
    rise=st.integers(1, 10),
    interval=st.floats(0.05, 10.0),
    # 0 is its own edge; sub-millisecond ramps are not a real configuration (see the report)
    slow_start=st.one_of(st.just(0.0), st.floats(0.001, 120.0)),
    initial_admit=st.integers(1, 99),
    retry_after_max=st.integers(1, 3600),
    reopen_window=st.floats(0.0, 600.0),
    reopen_backoff=st.floats(0.0, 60.0),
    reopen_backoff_max=st.floats(0.0, 300.0),
    jitter=st.floats(0.0, 0.99),
    force_max_ttl=st.floats(1.0, 86400.0),
)

dts = st.one_of(st.just(0.0), st.floats(0.0, 3.0), st.floats(0.0, 400.0))
actors = st.sampled_from(["alice", "bob", "oncall"])
good_reasons = st.text(min_size=1, max_size=8).filter(lambda s: bool(s.strip()))
ttls = st.one_of(
    st.floats(0.001, 10.0),
    st.floats(0.001, 1e5),
    st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf]),
)


@dataclass(frozen=True)
class Op:
    kind: str
    dt: float
    ok: bool = True
    reason: str = ""
    rand: float = 0.5
    state: State = State.OPEN
    ttl: float = 60.0
    actor: str = "alice"
    offset: int = 0
    cap: bool = False  # force: cut ttl down to force_max_ttl, so most forces are valid

    def __repr__(self) -> str:  # short falsifying examples
        fields = {
            "observe": f"ok={self.ok}, reason={self.reason!r}, rand={self.rand}",
            "tick": "",
            "force": f"{self.state.value}, ttl={self.ttl}, reason={self.reason!r}",
            "release": f"actor={self.actor!r}",
            "resync": f"epoch+{self.offset}",
            "restore": f"{self.state.value}, until=now+{self.ttl}",
        }[self.kind]
        return f"{self.kind}(dt={self.dt}, {fields})"


rands = st.floats(0.0, 1.0, exclude_max=True)
observe_ops = st.builds(
    Op,
    kind=st.just("observe"),
    dt=dts,
    ok=st.booleans(),
    reason=st.text(max_size=6),
    rand=rands,
)
tick_ops = st.builds(Op, kind=st.just("tick"), dt=dts)
force_ops = st.builds(
    Op,
    kind=st.just("force"),
    dt=dts,
    state=st.sampled_from([State.OPEN, State.CLOSED]),
    ttl=ttls,
    actor=actors,
    reason=st.one_of(good_reasons, st.sampled_from(["", "  "])),
    cap=st.booleans(),
)
release_ops = st.builds(Op, kind=st.just("release"), dt=dts, actor=actors)
resync_ops = st.builds(Op, kind=st.just("resync"), dt=dts, offset=st.integers(-3, 5))
restore_ops = st.builds(
    Op,
    kind=st.just("restore"),
    dt=dts,
    state=st.sampled_from([State.OPEN, State.CLOSED]),
    ttl=st.floats(-100.0, 1e5),
    actor=actors,
)


@st.composite
def bursts(draw: st.DrawFn) -> list[Op]:
    """A run of 1-12 observations with the same outcome, one probe interval-ish apart:
    runs are what move a breaker (fall failures, rise successes), so draw them as runs."""
    ok = draw(st.booleans())
    dt = draw(st.floats(0.0, 3.0))
    return [
        Op("observe", dt, ok=ok, reason=draw(st.text(max_size=6)), rand=draw(rands))
        for _ in range(draw(st.integers(1, 12)))
    ]


others = st.one_of(tick_ops, force_ops, release_ops, resync_ops, restore_ops)
# one_of picks its branches evenly, so weight them by choosing among indices
operations = st.integers(0, 9).flatmap(
    lambda i: bursts() if i < 6 else (observe_ops if i < 7 else others).map(lambda op: [op])
)
sequences = st.lists(operations, min_size=8, max_size=30).map(
    lambda chunks: [op for chunk in chunks for op in chunk]
)
starts = st.one_of(st.just(0.0), st.floats(0.0, 2e9))


def force_is_valid(policy: Policy, op: Op) -> bool:
    return (
        op.state is not State.HALF_OPEN
        and math.isfinite(op.ttl)
        and 0 < op.ttl <= policy.force_max_ttl
        and bool(op.reason.strip())
    )


def apply(b: Breaker, policy: Policy, op: Op, now: float) -> Step:
    if op.kind == "observe":
        return observe(b, policy, op.ok, op.reason, now, op.rand)
    if op.kind == "tick":
        return tick(b, policy, now)
    if op.kind == "force":
        return force(b, policy, op.state, op.ttl, op.actor, op.reason, now)
    if op.kind == "release":
        return release(b, policy, op.actor, now)
    if op.kind == "resync":
        return resync(b, policy, b.epoch + op.offset, now)
    stored = Force(state=op.state, until=now + op.ttl, actor=op.actor, reason="restored", at=now)
    return restore_force(b, policy, stored, now)


def capped(policy: Policy, op: Op) -> Op:
    if op.kind == "force" and op.cap and op.ttl > 0:
        return replace(op, ttl=min(op.ttl, policy.force_max_ttl))
    return op


# ---------------------------------------------------------------- invariants


@dataclass
class Checker:
    policy: Policy
    last_event_epoch: int
    ramp: tuple[int, int] | None = None  # (epoch, admit) last seen in half_open

    def step(self, before: Breaker, op: Op, now: float, step: Step) -> None:
        p = self.policy
        after = step.breaker
        events = step.events
        ctx = f"after {op!r} at {now}"

        # epochs: strictly increasing, +1 per event (a resync jumps), final == last event
        epoch = before.epoch
        for e in events:
            if e.kind == "resync":
                assert e.epoch > epoch, f"{ctx}: expected resync epoch > {epoch}, saw {e.epoch}"
                if op.kind == "resync":
                    stored = before.epoch + op.offset
                    assert e.epoch == stored + 1, (
                        f"{ctx}: expected resync to epoch {stored + 1}, saw {e.epoch}"
                    )
            else:
                assert e.epoch == epoch + 1, (
                    f"{ctx}: expected {e.kind} event epoch {epoch + 1}, saw {e.epoch}"
                )
            assert e.epoch > self.last_event_epoch, (
                f"{ctx}: expected event epochs to increase past {self.last_event_epoch}, "
                f"saw {e.epoch}"
            )
            epoch = self.last_event_epoch = e.epoch
        assert after.epoch == epoch, f"{ctx}: expected epoch {epoch}, saw {after.epoch}"
        assert after.epoch >= before.epoch, (
            f"{ctx}: epoch went from {before.epoch} to {after.epoch}"
        )
        if not any(e.kind == "resync" for e in events):
            assert after.epoch - before.epoch == len(events), (
                f"{ctx}: expected epoch +{len(events)} (one per event), "
                f"saw +{after.epoch - before.epoch}"
            )

        # events: time, name, actor, chains of computed and effective states, admit
        effective, computed, changed = before.state, before.computed, False
        opened_here = False
        for e in events:
            assert (e.at, e.name) == (now, before.name), f"{ctx}: event at/name wrong: {e}"
            expected_actor = {
                "transition": "probe",
                "expire": "sidecar",
                "resync": "sidecar",
                "force": op.actor,
                "release": op.actor,
            }[e.kind]
            assert e.actor == expected_actor, (
                f"{ctx}: expected {e.kind} actor {expected_actor!r}, saw {e.actor!r}"
            )
            if e.kind == "transition":
                assert e.from_state is computed, (
                    f"{ctx}: expected transition from computed {computed}, saw {e.from_state}"
                )
                assert (e.from_state, e.to_state) in EDGES, (
                    f"{ctx}: illegal transition {e.from_state} -> {e.to_state}"
                )
                if e.to_state is State.HALF_OPEN:
                    hold = after.hold_until if opened_here else before.hold_until
                    assert now >= hold, (
                        f"{ctx}: entered half_open at {now}, before hold_until {hold}"
                    )
                opened_here = opened_here or e.to_state is State.OPEN
                computed = e.to_state
            else:
                assert e.from_state is effective, (
                    f"{ctx}: expected {e.kind} from effective {effective}, saw {e.from_state}"
                )
                assert e.to_state is e.state, f"{ctx}: {e.kind} to/state differ: {e}"
            if e.kind == "force":
                assert e.forced is op.state and e.forced is not State.HALF_OPEN, f"{ctx}: {e}"
            if e.kind in ("expire", "release"):
                assert e.forced is None and e.until is None, f"{ctx}: {e}"
            check_admit(e.state, e.admit, f"{ctx}: {e.kind} event")
            changed = changed or e.state is not effective
            effective = e.state
        assert computed is after.computed, (
            f"{ctx}: expected computed {computed} from the events, saw {after.computed}"
        )
        assert effective is after.state, (
            f"{ctx}: expected effective {effective} from the events, saw {after.state}"
        )

        # since moves exactly when the effective state changes
        expected_since = now if changed else before.since
        assert after.since == expected_since, (
            f"{ctx}: expected since {expected_since} (effective state changed: {changed}), "
            f"saw {after.since}"
        )

        # the effective state is the force's, else the computed one
        expected_state = after.force.state if after.force else after.computed
        assert after.state is expected_state, f"{ctx}: expected {expected_state}, saw {after.state}"

        # every operation applies time first: a force never outlives its expiry, and
        # nothing is left for a tick at the same instant
        assert after.force is None or after.force.until > now, (
            f"{ctx}: expected no force past its expiry, saw until {after.force.until}"
        )
        assert tick(after, p, now).events == (), f"{ctx}: expected nothing left to tick"
        once = tick(after, p, now)
        twice = tick(once.breaker, p, now)
        assert twice.events == () and twice.breaker == once.breaker, (
            f"{ctx}: expected a second tick at the same instant to change nothing, saw {twice}"
        )
        if after.force is not None:
            assert after.force.state is not State.HALF_OPEN, f"{ctx}: forced half_open"
            slack = 1e-6 * max(1.0, abs(now))  # now + ttl - now is ttl only up to rounding
            assert after.force.until - now <= p.force_max_ttl + slack, (
                f"{ctx}: force lasts {after.force.until - now}s > {p.force_max_ttl}"
            )

        # the published view
        v = verdict(after, p, now)
        assert (v.state, v.computed, v.epoch, v.since, v.force) == (
            after.state,
            after.computed,
            after.epoch,
            after.since,
            after.force,
        ), f"{ctx}: verdict disagrees with the breaker: {v}"
        check_admit(v.state, v.admit, ctx)
        if v.state is State.CLOSED:
            assert v.retry_after == 0, (
                f"{ctx}: expected retry_after 0 when closed, saw {v.retry_after}"
            )
        else:
            assert 1 <= v.retry_after <= p.retry_after_max, (
                f"{ctx}: expected retry_after in [1, {p.retry_after_max}], saw {v.retry_after}"
            )

        # the ramp never goes down while it runs uninterrupted
        if v.state is State.HALF_OPEN:
            if self.ramp is not None and self.ramp[0] == after.epoch and not events:
                assert v.admit >= self.ramp[1], (
                    f"{ctx}: expected the ramp not to go down from {self.ramp[1]}, saw {v.admit}"
                )
            self.ramp = (after.epoch, v.admit)
        else:
            self.ramp = None


def check_admit(state: State, admit: int, ctx: str) -> None:
    if state is State.OPEN:
        assert admit == 0, f"{ctx}: expected admit 0 when open, saw {admit}"
    elif state is State.CLOSED:
        assert admit == 100, f"{ctx}: expected admit 100 when closed, saw {admit}"
    else:
        assert 0 < admit < 100, f"{ctx}: expected 0 < admit < 100 in half_open, saw {admit}"


def run_ops(
    policy: Policy, start: float, ops: list[Op]
) -> Iterator[tuple[Breaker, Op, float, Step]]:
    """Apply ops at non-decreasing times; yield (before, op, now, step) for each one applied.

    An invalid force must raise InvalidForce (and is then skipped)."""
    now = start
    b = new_breaker("presence", start)
    for raw in ops:
        op = capped(policy, raw)
        now += op.dt
        if op.kind == "force" and not force_is_valid(policy, op):
            try:
                apply(b, policy, op, now)
            except InvalidForce:
                continue
            raise AssertionError(f"expected InvalidForce for {op!r} with {policy}, saw none")
        step = apply(b, policy, op, now)
        yield b, op, now, step
        b = step.breaker


@SETTINGS
@given(policy=policies, start=starts, ops=sequences)
@example(  # resync once kept a force that had run out (it did not apply time first)
    policy=Policy(),
    start=0.0,
    ops=[Op("force", 0.0, state=State.OPEN, ttl=10.0, reason="x"), Op("resync", 20.0)],
)
@example(  # so did restore_force, which then ignored the stored force
    policy=Policy(),
    start=0.0,
    ops=[Op("force", 0.0, state=State.OPEN, ttl=10.0, reason="x"), Op("restore", 20.0, ttl=5.0)],
)
def test_invariants_hold_over_random_operation_sequences(
    policy: Policy, start: float, ops: list[Op]
) -> None:
    checker = Checker(policy, last_event_epoch=0)
    for before, op, now, step in run_ops(policy, start, ops):
        checker.step(before, op, now, step)


# ---------------------------------------------------------------- a model of the computed state


@dataclass
class Model:
    """The computed state as the spec describes it, independently of the code's counters."""

    policy: Policy
    computed: State = State.CLOSED
    fails: int = 0  # consecutive failed observations
    oks: int = 0  # consecutive good observations (since the last open)
    hold_until: float = 0.0
    ramp_start: float = 0.0
    last_open: float | None = None
    streak: int = 0

    def advance(self, now: float) -> None:
        p = self.policy
        if self.computed is State.OPEN and self.oks >= p.rise and now >= self.hold_until:
            self.computed, self.ramp_start = State.HALF_OPEN, now
        if self.computed is State.HALF_OPEN and now >= self.ramp_start + p.slow_start:
            self.computed = State.CLOSED

    def observe(self, ok: bool, now: float, rand: float) -> None:
        self.advance(now)
        self.fails, self.oks = (0, self.oks + 1) if ok else (self.fails + 1, 0)
        if not ok and (
            (self.computed is State.CLOSED and self.fails >= self.policy.fall)
            or self.computed is State.HALF_OPEN
        ):
            self.open(now, rand)
        else:
            self.advance(now)

    def open(self, now: float, rand: float) -> None:
        p = self.policy
        recent = self.last_open is not None and now - self.last_open <= p.reopen_window
        self.streak = self.streak + 1 if recent else 0
        hold = 0.0
        if self.streak:
            base = min(p.reopen_backoff_max, p.reopen_backoff * 2.0 ** min(self.streak - 1, 60))
            hold = base * (1 + p.jitter * (2 * rand - 1))
        self.computed, self.last_open, self.hold_until, self.oks = State.OPEN, now, now + hold, 0


@SETTINGS
@given(policy=policies, start=starts, ops=sequences)
def test_computed_state_follows_the_spec_model(policy: Policy, start: float, ops: list[Op]) -> None:
    """Forces, releases, resyncs and restores must not disturb the computed state."""
    model = Model(policy)
    for _before, op, now, step in run_ops(policy, start, ops):
        if op.kind == "observe":
            model.observe(op.ok, now, op.rand)
        else:
            model.advance(now)
        b = step.breaker
        seen = (b.computed, b.reopen_streak, b.last_open_at)
        expected = (model.computed, model.streak, model.last_open)
        assert seen == expected, f"after {op!r} at {now}: expected {expected}, saw {seen}"
        assert math.isclose(b.hold_until, model.hold_until, rel_tol=1e-12, abs_tol=1e-9), (
            f"after {op!r} at {now}: expected hold_until {model.hold_until}, saw {b.hold_until}"
        )
        if b.computed is State.HALF_OPEN:
            assert b.ramp_start == model.ramp_start, (
                f"after {op!r} at {now}: expected ramp start {model.ramp_start}, saw {b.ramp_start}"
            )


# ---------------------------------------------------------------- focused properties


@SETTINGS
@given(
    policy=policies,
    times=st.lists(st.floats(0.0, 200.0), min_size=2, max_size=20),
)
def test_ramp_admit_is_bounded_and_non_decreasing(policy: Policy, times: list[float]) -> None:
    b = Breaker(name="presence", computed=State.HALF_OPEN, ramp_start=1000.0)
    seen = [admit_percent(b, policy, 1000.0 + t) for t in sorted(times)]
    assert all(0 < a < 100 for a in seen), f"expected 0 < admit < 100, saw {seen}"
    assert seen == sorted(seen), f"expected a non-decreasing ramp, saw {seen}"
    if policy.slow_start > 0:
        assert seen[0] >= policy.initial_admit, (
            f"expected at least initial_admit {policy.initial_admit}, saw {seen[0]}"
        )


@SETTINGS
@given(policy=policies, streak=st.integers(1, 40), rand=st.floats(0.0, 1.0, exclude_max=True))
def test_backoff_hold_is_the_capped_exponential_within_jitter(
    policy: Policy, streak: int, rand: float
) -> None:
    policy = replace(policy, fall=1)
    b = Breaker(name="presence", reopen_streak=streak - 1, last_open_at=1000.0)
    after = observe(b, policy, False, "timeout", 1000.0, rand).breaker
    base = min(policy.reopen_backoff_max, policy.reopen_backoff * 2 ** (streak - 1))
    hold = after.hold_until - 1000.0
    assert after.computed is State.OPEN and after.reopen_streak == streak, f"saw {after}"
    slack = 1e-9 * max(1.0, base)
    assert base * (1 - policy.jitter) - slack <= hold <= base * (1 + policy.jitter) + slack, (
        f"expected hold within {base} ± {policy.jitter * 100:.0f}%, saw {hold}"
    )


@SETTINGS
@given(policy=policies, start=starts, ops=sequences, probe=st.floats(0.0, 400.0))
def test_tick_before_next_change_changes_nothing(
    policy: Policy, start: float, ops: list[Op], probe: float
) -> None:
    """The service skips ticking a breaker until next_change; that must never miss an event."""
    for _, _, now, step in run_ops(policy, start, ops):
        b = step.breaker
        deadline = next_change(b, policy)
        at = now + probe
        if deadline is None or at < deadline:
            assert tick(b, policy, at).events == (), (
                f"tick at {at} produced events though next_change said {deadline}"
            )
        else:
            assert tick(b, policy, max(at, deadline)).events, (
                f"next_change promised a change at {deadline}; tick at {max(at, deadline)}: none"
            )

"""Example tests for the breaker state machine: one behaviour per test."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from breaker.core import (
    Force,
    InvalidForce,
    State,
    admit_percent,
    force,
    new_breaker,
    observe,
    release,
    restore_force,
    resync,
    retry_after,
    tick,
    verdict,
)
from tests.core.helpers import NAME, P, feed, flap, half_opened, kinds, moves, opened

# ---------------------------------------------------------------- closed -> open


def test_new_breaker_starts_closed_admitting_everything() -> None:
    b = new_breaker(NAME, 42.0)
    v = verdict(b, P, 42.0)
    assert (v.state, v.computed, v.admit, v.retry_after) == (State.CLOSED, State.CLOSED, 100, 0), (
        f"expected closed/closed/100/0, saw {v.state}/{v.computed}/{v.admit}/{v.retry_after}"
    )
    assert (b.epoch, b.since, b.computed_since) == (0, 42.0, 42.0), (
        f"expected epoch 0 and since 42.0, saw epoch {b.epoch} since {b.since}"
    )
    assert b.force is None, f"expected no force, saw {b.force}"


def test_new_breaker_can_start_at_a_given_epoch() -> None:
    b = new_breaker(NAME, 0.0, epoch=17)
    assert b.epoch == 17, f"expected epoch 17, saw {b.epoch}"


def test_fewer_than_fall_failures_keep_it_closed() -> None:
    run = feed(new_breaker(NAME, 0.0), P, "FF", 1.0)
    assert run.breaker.state is State.CLOSED, f"expected closed, saw {run.breaker.state}"
    assert run.events == [], f"expected no events, saw {kinds(run.events)}"
    assert run.breaker.failures == 2, f"expected 2 failures counted, saw {run.breaker.failures}"


def test_fall_consecutive_failures_open_the_breaker() -> None:
    run = feed(new_breaker(NAME, 0.0), P, "FFF", 1.0)
    b = run.breaker
    assert b.state is State.OPEN, f"expected open after {P.fall} failures, saw {b.state}"
    assert moves(run.events) == [("closed", "open")], (
        f"expected one closed->open transition, saw {moves(run.events)}"
    )
    assert run.events[0].at == 3.0, f"expected the transition at 3.0, saw {run.events[0].at}"
    assert admit_percent(b, P, 3.0) == 0, f"expected admit 0, saw {admit_percent(b, P, 3.0)}"


def test_a_success_resets_the_failure_count() -> None:
    run = feed(new_breaker(NAME, 0.0), P, "FFSFF", 1.0)
    assert run.breaker.state is State.CLOSED, (
        f"expected closed (never {P.fall} failures in a row), saw {run.breaker.state}"
    )
    assert run.breaker.failures == 2, f"expected 2 failures counted, saw {run.breaker.failures}"
    run = feed(run.breaker, P, "F", 6.0)
    assert run.breaker.state is State.OPEN, (
        f"expected open on the 3rd in a row, saw {run.breaker.state}"
    )


def test_opening_records_the_failure_reason() -> None:
    b = new_breaker(NAME, 0.0)
    for t in (1.0, 2.0):
        b = observe(b, P, False, "timeout", t).breaker
    step = observe(b, P, False, "503 Service Unavailable", 3.0)
    assert step.breaker.reason == "503 Service Unavailable", (
        f"expected the last failure's reason, saw {step.breaker.reason!r}"
    )
    assert step.events[0].reason == "503 Service Unavailable", (
        f"expected the event to carry the reason, saw {step.events[0].reason!r}"
    )
    assert verdict(step.breaker, P, 3.0).reason == "503 Service Unavailable"


def test_fall_1_opens_on_the_first_failure() -> None:
    policy = replace(P, fall=1)
    run = feed(new_breaker(NAME, 0.0), policy, "F", 1.0)
    assert run.breaker.state is State.OPEN, (
        f"expected open after 1 failure, saw {run.breaker.state}"
    )


def test_successes_while_closed_emit_nothing() -> None:
    b = new_breaker(NAME, 0.0)
    run = feed(b, P, "SSSSS", 1.0)
    assert run.events == [], f"expected no events, saw {kinds(run.events)}"
    assert run.breaker.epoch == 0, f"expected epoch 0, saw {run.breaker.epoch}"


def test_ticking_a_closed_breaker_changes_nothing() -> None:
    b = new_breaker(NAME, 0.0)
    step = tick(b, P, 1e6)
    assert step.events == () and step.breaker == b, f"expected no change, saw {step}"


# ---------------------------------------------------------------- open -> half_open


def test_first_open_has_no_hold() -> None:
    b = opened(at=100.0)
    assert b.hold_until == 100.0, f"expected hold_until == open time 100.0, saw {b.hold_until}"
    assert b.reopen_streak == 0, f"expected streak 0, saw {b.reopen_streak}"


def test_open_needs_rise_successes_to_half_open() -> None:
    b = opened(at=100.0)
    run = feed(b, P, "S", 101.0)
    assert run.breaker.state is State.OPEN, (
        f"expected still open after 1 success, saw {run.breaker.state}"
    )
    assert run.events == [], f"expected no events, saw {kinds(run.events)}"
    run = feed(run.breaker, P, "S", 102.0)
    assert run.breaker.state is State.HALF_OPEN, (
        f"expected half_open after {P.rise} successes, saw {run.breaker.state}"
    )
    assert moves(run.events) == [("open", "half_open")], f"saw {moves(run.events)}"
    assert run.breaker.ramp_start == 102.0, (
        f"expected ramp start 102.0, saw {run.breaker.ramp_start}"
    )
    assert run.breaker.reason == "probes ok", f"saw reason {run.breaker.reason!r}"


def test_a_failure_while_open_resets_the_success_count() -> None:
    b = opened(at=100.0)
    run = feed(b, P, "SFS", 101.0)
    assert run.breaker.state is State.OPEN, (
        f"expected open (never {P.rise} successes in a row), saw {run.breaker.state}"
    )
    run = feed(run.breaker, P, "S", 104.0)
    assert run.breaker.state is State.HALF_OPEN, f"expected half_open, saw {run.breaker.state}"


def test_failures_while_open_emit_nothing_and_keep_it_open() -> None:
    b = opened(at=100.0)
    run = feed(b, P, "FFFFFF", 101.0)
    assert run.events == [], f"expected no events, saw {kinds(run.events)}"
    assert run.breaker.state is State.OPEN
    assert run.breaker.last_open_at == 100.0, (
        f"expected failures while open not to count as reopening, saw last_open_at "
        f"{run.breaker.last_open_at}"
    )


def test_rise_1_half_opens_on_the_first_success() -> None:
    policy = replace(P, rise=1)
    b = opened(policy, at=100.0)
    run = feed(b, policy, "S", 101.0)
    assert run.breaker.state is State.HALF_OPEN, f"expected half_open, saw {run.breaker.state}"


def test_fall_1_rise_1_flips_on_every_change() -> None:
    policy = replace(P, fall=1, rise=1, slow_start=10.0)
    run = feed(new_breaker(NAME, 0.0), policy, "FSF", 1.0)
    assert moves(run.events) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
    ], f"saw {moves(run.events)}"


def test_ticking_an_open_breaker_without_successes_keeps_it_open() -> None:
    b = opened(at=100.0)
    step = tick(b, P, 10_000.0)
    assert step.breaker.state is State.OPEN and step.events == (), f"saw {step}"


def test_half_open_starts_the_ramp_at_initial_admit() -> None:
    b = half_opened(at=200.0)
    assert admit_percent(b, P, 200.0) == P.initial_admit, (
        f"expected {P.initial_admit}, saw {admit_percent(b, P, 200.0)}"
    )


# ---------------------------------------------------------------- half_open


@pytest.mark.parametrize("after", [0.0, 0.5, 15.0, 29.99])
def test_any_failure_in_half_open_reopens(after: float) -> None:
    b = half_opened(at=200.0)
    step = observe(b, P, False, "timeout", 200.0 + after)
    assert step.breaker.state is State.OPEN, (
        f"expected one failure {after}s into the ramp to reopen, saw {step.breaker.state}"
    )
    assert moves(step.events) == [("half_open", "open")], f"saw {moves(step.events)}"
    assert step.breaker.successes == 0, f"expected successes reset, saw {step.breaker.successes}"


def test_successes_in_half_open_keep_ramping() -> None:
    b = half_opened(at=200.0)
    run = feed(b, P, "SSSSS", 201.0)
    assert run.breaker.state is State.HALF_OPEN and run.events == [], f"saw {kinds(run.events)}"
    assert run.breaker.ramp_start == 200.0, (
        f"expected ramp start kept, saw {run.breaker.ramp_start}"
    )


def test_ramp_end_closes() -> None:
    b = half_opened(at=200.0)
    step = tick(b, P, 230.0)
    assert step.breaker.state is State.CLOSED, (
        f"expected closed at ramp end, saw {step.breaker.state}"
    )
    assert moves(step.events) == [("half_open", "closed")], f"saw {moves(step.events)}"
    assert step.breaker.reason == "recovered", f"saw reason {step.breaker.reason!r}"
    assert step.events[0].admit == 100, f"expected event admit 100, saw {step.events[0].admit}"


def test_ramp_does_not_close_before_its_end() -> None:
    b = half_opened(at=200.0)
    step = tick(b, P, 229.999)
    assert step.breaker.state is State.HALF_OPEN and step.events == (), f"saw {step}"


def test_ramp_end_closes_on_an_observation_too() -> None:
    b = half_opened(at=200.0)
    step = observe(b, P, True, "ok", 231.0)
    assert step.breaker.state is State.CLOSED, f"expected closed, saw {step.breaker.state}"


def test_a_failure_right_at_ramp_end_counts_against_closed() -> None:
    b = half_opened(at=200.0)
    step = observe(b, P, False, "timeout", 230.0)
    assert step.breaker.state is State.CLOSED, (
        f"expected the ramp to end first and one failure not to reach fall={P.fall}, "
        f"saw {step.breaker.state}"
    )
    assert step.breaker.failures == 1, f"expected 1 failure counted, saw {step.breaker.failures}"


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(0.0, 10), (1.0, 13), (10.0, 40), (15.0, 55), (20.0, 70), (29.0, 97), (29.9, 99)],
)
def test_admit_at_specific_ramp_instants(elapsed: float, expected: int) -> None:
    b = half_opened(at=200.0)
    seen = admit_percent(b, P, 200.0 + elapsed)
    assert seen == expected, f"expected admit {expected} at {elapsed}s into the ramp, saw {seen}"


def test_admit_ramp_from_1_over_100_seconds() -> None:
    policy = replace(P, initial_admit=1, slow_start=100.0)
    b = half_opened(policy, at=200.0)
    seen = [admit_percent(b, policy, 200.0 + e) for e in (0.0, 50.0, 99.0, 99.99)]
    assert seen == [1, 50, 99, 99], f"expected [1, 50, 99, 99], saw {seen}"


def test_admit_never_reaches_100_before_ramp_end() -> None:
    b = half_opened(at=200.0)
    seen = admit_percent(b, P, 229.9999)
    assert seen == 99, f"expected 99 just before the ramp ends, saw {seen}"


def test_initial_admit_99_stays_at_99() -> None:
    policy = replace(P, initial_admit=99)
    b = half_opened(policy, at=200.0)
    seen = {admit_percent(b, policy, 200.0 + e) for e in (0.0, 10.0, 29.9)}
    assert seen == {99}, f"expected admit 99 throughout, saw {seen}"


def test_admit_is_100_once_closed() -> None:
    b = tick(half_opened(at=200.0), P, 230.0).breaker
    assert admit_percent(b, P, 230.0) == 100, f"saw {admit_percent(b, P, 230.0)}"


def test_slow_start_0_passes_through_half_open_to_closed_at_once() -> None:
    policy = replace(P, slow_start=0.0)
    b = opened(policy, at=100.0)
    run = feed(b, policy, "SS", 101.0)
    assert moves(run.events) == [("open", "half_open"), ("half_open", "closed")], (
        f"expected open->half_open->closed in one step, saw {moves(run.events)}"
    )
    assert {e.at for e in run.events} == {102.0}, f"saw times {[e.at for e in run.events]}"
    assert run.breaker.state is State.CLOSED
    assert admit_percent(run.breaker, policy, 102.0) == 100


def test_slow_start_0_half_open_admits_99() -> None:
    policy = replace(P, slow_start=0.0)
    b = replace(new_breaker(NAME, 0.0), computed=State.HALF_OPEN, ramp_start=5.0)
    assert admit_percent(b, policy, 5.0) == 99, f"saw {admit_percent(b, policy, 5.0)}"
    run = feed(opened(policy, at=100.0), policy, "SS", 101.0)
    assert run.events[0].admit == 99, (
        f"expected the transient half_open event to admit 99, saw {run.events[0].admit}"
    )


# ---------------------------------------------------------------- reopen backoff


def test_reopen_within_window_backs_off_exponentially() -> None:
    b = opened(at=100.0)
    t = 100.0
    holds = []
    for _ in range(4):
        b, t = flap(b, P, t, rand=0.5)
        holds.append(b.hold_until - t)
    assert holds == [5.0, 10.0, 20.0, 40.0], f"expected holds [5, 10, 20, 40], saw {holds}"
    assert b.reopen_streak == 4, f"expected streak 4, saw {b.reopen_streak}"


def test_hold_delays_half_open_even_after_rise_successes() -> None:
    b = opened(at=100.0)
    b, t = flap(b, P, 100.0)  # reopened with a 5 s hold
    hold_until = b.hold_until
    run = feed(b, P, "SSS", t + 1.0)
    assert run.t < hold_until, "setup: the successes must all come before the hold ends"
    assert run.breaker.state is State.OPEN, (
        f"expected open until hold_until {hold_until}, saw {run.breaker.state} at {run.t}"
    )


def test_half_open_comes_on_a_tick_once_the_hold_ends() -> None:
    b = opened(at=100.0)
    b, t = flap(b, P, 100.0)
    b = feed(b, P, "SS", t + 1.0).breaker
    before = tick(b, P, b.hold_until - 0.001)
    assert before.breaker.state is State.OPEN, f"saw {before.breaker.state} before hold_until"
    at = tick(b, P, b.hold_until)
    assert at.breaker.state is State.HALF_OPEN, f"saw {at.breaker.state} at hold_until"
    assert at.breaker.ramp_start == b.hold_until, (
        f"expected the ramp to start at hold_until {b.hold_until}, saw {at.breaker.ramp_start}"
    )


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.8), (0.25, 0.9), (0.5, 1.0), (0.75, 1.1)])
def test_backoff_is_capped_and_jittered(rand: float, factor: float) -> None:
    b = opened(at=100.0)
    t = 100.0
    for _ in range(7):  # streak 7 already asks 5 * 2**6 = 320 s, capped at 120 s
        b, t = flap(b, P, t, rand=0.5)
    b, t = flap(b, P, t, rand=rand)
    hold = b.hold_until - t
    assert math.isclose(hold, 120.0 * factor), (
        f"expected hold 120 * {factor} with rand {rand}, saw {hold}"
    )


def test_jitter_stays_within_plus_minus_jitter() -> None:
    b = opened(at=100.0)
    b, t = flap(b, P, 100.0)
    low, t_low = flap(b, P, t, rand=0.0)
    high, t_high = flap(b, P, t, rand=0.999999)
    lo, hi = low.hold_until - t_low, high.hold_until - t_high
    assert math.isclose(lo, 10.0 * 0.8), f"expected the lowest hold 8.0, saw {lo}"
    assert 10.0 * 1.19 < hi < 10.0 * 1.2, f"expected the highest hold just under 12.0, saw {hi}"


def test_jitter_0_gives_the_exact_backoff() -> None:
    policy = replace(P, jitter=0.0)
    b = opened(policy, at=100.0)
    b, t = flap(b, policy, 100.0, rand=0.0)
    b, t = flap(b, policy, t, rand=0.9)
    assert b.hold_until - t == 10.0, f"expected exactly 10.0, saw {b.hold_until - t}"


def test_reopen_after_window_has_no_backoff() -> None:
    policy = replace(P, reopen_window=10.0, slow_start=100.0)
    b = opened(policy, at=100.0)
    b = feed(b, policy, "SS", 101.0).breaker  # half_open at 102
    step = observe(b, policy, False, "timeout", 110.5)
    assert step.breaker.reopen_streak == 0, f"expected streak 0, saw {step.breaker.reopen_streak}"
    assert step.breaker.hold_until == 110.5, (
        f"expected no hold (hold_until == 110.5), saw {step.breaker.hold_until}"
    )


def test_reopen_exactly_at_the_window_edge_backs_off() -> None:
    policy = replace(P, reopen_window=10.0, slow_start=100.0)
    b = opened(policy, at=100.0)
    b = feed(b, policy, "SS", 101.0).breaker
    step = observe(b, policy, False, "timeout", 110.0)
    assert step.breaker.hold_until == 115.0, (
        f"expected a 5 s hold for a reopen exactly reopen_window after the open, "
        f"saw hold_until {step.breaker.hold_until}"
    )


def test_reopening_from_closed_within_window_backs_off() -> None:
    b = half_opened(at=200.0)  # opened at 100
    b = tick(b, P, 230.0).breaker
    run = feed(b, P, "FFF", 231.0)
    assert run.breaker.state is State.OPEN
    assert run.breaker.hold_until == 238.0, (
        f"expected a 5 s hold (reopened 133 s after the last open), saw {run.breaker.hold_until}"
    )


def test_streak_resets_after_a_quiet_window() -> None:
    b = opened(at=100.0)
    b, t = flap(b, P, 100.0)
    b, t = flap(b, P, t)
    assert b.reopen_streak == 2, f"setup: expected streak 2, saw {b.reopen_streak}"
    b = feed(b, P, "SS", t + 100.0).breaker
    b = tick(b, P, t + 200.0).breaker
    assert b.state is State.CLOSED, f"setup: expected closed, saw {b.state}"
    run = feed(b, P, "FFF", t + 400.0)
    assert run.breaker.reopen_streak == 0, f"expected streak 0, saw {run.breaker.reopen_streak}"
    assert run.breaker.hold_until == run.t, (
        f"expected no hold, saw {run.breaker.hold_until - run.t}"
    )
    b, t2 = flap(run.breaker, P, run.t)
    assert b.hold_until - t2 == 5.0, (
        f"expected the backoff to restart at 5 s, saw {b.hold_until - t2}"
    )


def test_reopen_backoff_0_never_holds() -> None:
    policy = replace(P, reopen_backoff=0.0)
    b = opened(policy, at=100.0)
    t = 100.0
    for _ in range(5):
        b, t = flap(b, policy, t)
        assert b.hold_until == t, f"expected no hold, saw {b.hold_until - t}"


def test_long_flapping_does_not_overflow_the_backoff() -> None:
    """A server that flaps for a day and a half with the default policy.

    Every reopen is ~122 s after the previous one, inside the 300 s window, so the
    streak grows without bound; `reopen_backoff * 2 ** (streak - 1)` used to raise
    OverflowError at streak 1025, after which the breaker could never reopen.
    """
    b = opened(at=100.0)
    t = 100.0
    for i in range(1100):
        try:
            b, t = flap(b, P, t)
        except OverflowError as exc:
            pytest.fail(
                f"expected reopen #{i + 1} (streak {b.reopen_streak + 1}) to work, saw {exc!r}"
            )
    assert b.hold_until - t == 120.0, f"expected the capped 120 s hold, saw {b.hold_until - t}"


# ---------------------------------------------------------------- force


def test_force_open_overrides_closed_and_computed_keeps_evolving() -> None:
    b = new_breaker(NAME, 0.0)
    step = force(b, P, State.OPEN, 600.0, "alice", "upgrade", 10.0)
    b = step.breaker
    assert (b.state, b.computed) == (State.OPEN, State.CLOSED), f"saw {b.state}/{b.computed}"
    assert admit_percent(b, P, 10.0) == 0, f"expected admit 0, saw {admit_percent(b, P, 10.0)}"
    run = feed(b, P, "FFF", 11.0)
    assert (run.breaker.state, run.breaker.computed) == (State.OPEN, State.OPEN), (
        f"expected forced open over computed open, saw {run.breaker.state}/{run.breaker.computed}"
    )
    run = feed(run.breaker, P, "SS", 14.0)
    assert (run.breaker.state, run.breaker.computed) == (State.OPEN, State.HALF_OPEN), (
        f"expected forced open over computed half_open, saw "
        f"{run.breaker.state}/{run.breaker.computed}"
    )
    assert admit_percent(run.breaker, P, 15.0) == 0


def test_force_closed_overrides_open_and_computed_keeps_evolving() -> None:
    b = opened(at=100.0)
    b = force(b, P, State.CLOSED, 600.0, "alice", "trust me", 101.0).breaker
    assert (b.state, b.computed) == (State.CLOSED, State.OPEN), f"saw {b.state}/{b.computed}"
    assert admit_percent(b, P, 101.0) == 100
    b = feed(b, P, "SS", 102.0).breaker
    assert (b.state, b.computed) == (State.CLOSED, State.HALF_OPEN), f"saw {b.state}/{b.computed}"
    b = tick(b, P, 133.0).breaker
    assert (b.state, b.computed) == (State.CLOSED, State.CLOSED), f"saw {b.state}/{b.computed}"
    assert b.force is not None, "expected the force to still be there"


def test_force_expiry_returns_to_computed_state() -> None:
    b = opened(at=100.0)
    b = force(b, P, State.CLOSED, 60.0, "alice", "trust me", 101.0).breaker
    step = tick(b, P, 161.0)
    assert step.breaker.force is None, f"expected the force gone, saw {step.breaker.force}"
    assert step.breaker.state is State.OPEN, f"expected computed open, saw {step.breaker.state}"
    assert kinds(step.events) == ["expire"], f"saw {kinds(step.events)}"
    e = step.events[0]
    assert (e.from_state, e.to_state, e.state, e.actor) == (
        State.CLOSED,
        State.OPEN,
        State.OPEN,
        "sidecar",
    ), f"saw {e}"
    assert (e.forced, e.until) == (None, None), f"expected no force on the event, saw {e}"


def test_force_still_holds_just_before_until() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 60.0, "alice", "x", 10.0).breaker
    step = tick(b, P, 69.999)
    assert step.breaker.state is State.OPEN and step.events == (), f"saw {step}"


def test_force_expires_exactly_at_until() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 60.0, "alice", "x", 10.0).breaker
    step = tick(b, P, 70.0)
    assert step.breaker.state is State.CLOSED, f"expected closed at until, saw {step.breaker.state}"
    assert kinds(step.events) == ["expire"], f"saw {kinds(step.events)}"


def test_force_expiry_lands_on_the_state_computed_meanwhile() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 20.0, "alice", "x", 10.0).breaker
    b = feed(b, P, "FFFSS", 11.0).breaker  # computed: open at 13, half_open at 15
    step = tick(b, P, 30.0)
    assert step.breaker.state is State.HALF_OPEN, f"expected half_open, saw {step.breaker.state}"
    assert kinds(step.events) == ["expire"], f"saw {kinds(step.events)}"
    assert step.events[0].admit == 55, (
        f"expected the expire event to admit 55 (15 s into the ramp), saw {step.events[0].admit}"
    )


def test_release_returns_to_computed_state() -> None:
    b = opened(at=100.0)
    b = force(b, P, State.CLOSED, 600.0, "alice", "x", 101.0).breaker
    step = release(b, P, "bob", 102.0)
    assert step.breaker.force is None and step.breaker.state is State.OPEN, f"saw {step.breaker}"
    assert kinds(step.events) == ["release"], f"saw {kinds(step.events)}"
    e = step.events[0]
    assert (e.from_state, e.to_state, e.actor, e.reason) == (
        State.CLOSED,
        State.OPEN,
        "bob",
        "released",
    ), f"saw {e}"


def test_release_is_idempotent() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 600.0, "alice", "x", 10.0).breaker
    first = release(b, P, "bob", 11.0)
    second = release(first.breaker, P, "bob", 11.0)
    assert second.events == (), (
        f"expected no events on a repeated release, saw {kinds(second.events)}"
    )
    assert second.breaker == first.breaker, "expected a repeated release to change nothing"


def test_release_without_a_force_changes_nothing() -> None:
    b = new_breaker(NAME, 0.0)
    step = release(b, P, "bob", 5.0)
    assert step.events == () and step.breaker == b, f"saw {step}"


def test_release_after_expiry_emits_only_the_expiry() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 60.0, "alice", "x", 10.0).breaker
    step = release(b, P, "bob", 80.0)
    assert kinds(step.events) == ["expire"], f"expected only the expiry, saw {kinds(step.events)}"


def test_a_new_force_replaces_the_old_one() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 600.0, "alice", "x", 10.0).breaker
    step = force(b, P, State.CLOSED, 30.0, "bob", "y", 20.0)
    f = step.breaker.force
    assert f is not None and (f.state, f.until, f.actor, f.reason, f.at) == (
        State.CLOSED,
        50.0,
        "bob",
        "y",
        20.0,
    ), f"expected bob's force closed until 50.0, saw {f}"
    assert step.breaker.state is State.CLOSED


def test_force_strips_the_reason() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 60.0, "alice", "  upgrade \n", 10.0).breaker
    assert b.force is not None and b.force.reason == "upgrade", f"saw {b.force}"


def test_force_accepts_ttl_equal_to_force_max_ttl() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, P.force_max_ttl, "alice", "x", 10.0).breaker
    assert b.force is not None and b.force.until == 10.0 + P.force_max_ttl, f"saw {b.force}"


def test_force_event_carries_the_forced_state_and_until() -> None:
    step = force(new_breaker(NAME, 0.0), P, State.OPEN, 60.0, "alice", "upgrade", 10.0)
    e = step.events[0]
    assert (e.kind, e.from_state, e.to_state, e.state, e.forced, e.until) == (
        "force",
        State.CLOSED,
        State.OPEN,
        State.OPEN,
        State.OPEN,
        70.0,
    ), f"saw {e}"
    assert (e.actor, e.reason, e.admit) == ("alice", "upgrade", 0), f"saw {e}"


INVALID_FORCES = {
    "half-open": (State.HALF_OPEN, 60.0, "x", "open or closed"),
    "zero-ttl": (State.OPEN, 0.0, "x", "ttl"),
    "negative-ttl": (State.OPEN, -5.0, "x", "ttl"),
    "too-long-ttl": (State.OPEN, P.force_max_ttl + 1, "x", "force_max_ttl"),
    "nan-ttl": (State.OPEN, math.nan, "x", "ttl"),
    "infinite-ttl": (State.OPEN, math.inf, "x", "ttl"),
    "empty-reason": (State.OPEN, 60.0, "", "reason"),
    "blank-reason": (State.OPEN, 60.0, " \t\n", "reason"),
}


@pytest.mark.parametrize(
    ("state", "ttl", "reason", "names"), INVALID_FORCES.values(), ids=list(INVALID_FORCES)
)
def test_force_rejects_an_invalid_request_naming_what_is_wrong(
    state: State, ttl: float, reason: str, names: str
) -> None:
    with pytest.raises(InvalidForce, match=names):
        force(new_breaker(NAME, 0.0), P, state, ttl, "alice", reason, 10.0)


def test_force_rejects_a_ttl_too_small_to_move_the_expiry() -> None:
    """now + ttl == now for ttl below half an ulp of now (~1.2e-7 s at unix times):
    such a force would be born expired (until == now) yet reported as active."""
    now = 1_764_091_234.5
    with pytest.raises(InvalidForce, match="ttl"):
        force(new_breaker(NAME, now), P, State.OPEN, 1e-7, "alice", "x", now)


# ---------------------------------------------------------------- since


def test_since_moves_when_a_transition_changes_the_effective_state() -> None:
    run = feed(new_breaker(NAME, 0.0), P, "FFF", 1.0)
    assert run.breaker.since == 3.0, f"expected since 3.0, saw {run.breaker.since}"
    assert run.breaker.computed_since == 3.0


def test_since_is_unchanged_by_a_computed_transition_under_a_force() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.CLOSED, 600.0, "alice", "x", 10.0).breaker
    run = feed(b, P, "FFF", 11.0)
    assert run.breaker.computed is State.OPEN
    assert run.breaker.since == 0.0, (
        f"expected since to stay at 0.0 (effective state closed all along), saw {run.breaker.since}"
    )
    assert run.breaker.computed_since == 13.0, (
        f"expected computed_since 13.0, saw {run.breaker.computed_since}"
    )


def test_since_is_unchanged_when_forcing_the_current_effective_state() -> None:
    b = opened(at=100.0)
    b = force(b, P, State.OPEN, 600.0, "alice", "x", 150.0).breaker
    assert b.since == 100.0, f"expected since 100.0 (still open), saw {b.since}"


def test_since_moves_when_a_force_changes_the_effective_state() -> None:
    b = opened(at=100.0)
    b = force(b, P, State.CLOSED, 600.0, "alice", "x", 150.0).breaker
    assert b.since == 150.0, f"expected since 150.0, saw {b.since}"


def test_since_is_unchanged_by_an_expiry_onto_the_same_state() -> None:
    b = opened(at=100.0)
    b = force(b, P, State.OPEN, 60.0, "alice", "x", 150.0).breaker
    b = tick(b, P, 210.0).breaker
    assert b.force is None and b.since == 100.0, f"expected since 100.0, saw {b.since}"


def test_since_is_unchanged_by_a_release_onto_the_same_state() -> None:
    b = force(new_breaker(NAME, 5.0), P, State.CLOSED, 60.0, "alice", "x", 10.0).breaker
    b = release(b, P, "bob", 20.0).breaker
    assert b.since == 5.0, f"expected since 5.0, saw {b.since}"


# ---------------------------------------------------------------- retry_after


def test_retry_after_closed_is_0() -> None:
    assert retry_after(new_breaker(NAME, 0.0), P, 1.0) == 0


def test_retry_after_forced_closed_is_0() -> None:
    b = force(opened(at=100.0), P, State.CLOSED, 600.0, "alice", "x", 101.0).breaker
    assert retry_after(b, P, 101.0) == 0, f"saw {retry_after(b, P, 101.0)}"


def test_retry_after_open_without_hold_is_rise_intervals() -> None:
    b = opened(at=100.0)
    assert retry_after(b, P, 100.0) == 2, (
        f"expected rise*interval = 2, saw {retry_after(b, P, 100.0)}"
    )


def test_retry_after_open_adds_the_hold_left() -> None:
    b, t = flap(opened(at=100.0), P, 100.0)  # 5 s hold
    assert retry_after(b, P, t) == 7, f"expected 5 + 2 = 7, saw {retry_after(b, P, t)}"
    assert retry_after(b, P, t + 2.0) == 5, f"expected 3 + 2 = 5, saw {retry_after(b, P, t + 2.0)}"


def test_retry_after_half_open_is_the_ramp_time_left() -> None:
    b = half_opened(at=200.0)
    seen = [retry_after(b, P, 200.0 + e) for e in (0.0, 10.0, 10.5, 29.5)]
    assert seen == [30, 20, 20, 1], f"expected [30, 20, 20, 1], saw {seen}"


def test_retry_after_forced_open_is_the_force_time_left() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 30.0, "alice", "x", 10.0).breaker
    seen = [retry_after(b, P, t) for t in (10.0, 20.0, 39.8)]
    assert seen == [30, 20, 1], f"expected [30, 20, 1], saw {seen}"


def test_retry_after_forced_open_is_capped_at_retry_after_max() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 3600.0, "alice", "x", 10.0).breaker
    assert retry_after(b, P, 10.0) == 60, f"expected 60, saw {retry_after(b, P, 10.0)}"


def test_retry_after_half_open_is_capped_at_retry_after_max() -> None:
    policy = replace(P, retry_after_max=10)
    b = half_opened(policy, at=200.0)
    assert retry_after(b, policy, 200.0) == 10, f"saw {retry_after(b, policy, 200.0)}"


def test_retry_after_open_is_capped_at_retry_after_max() -> None:
    policy = replace(P, retry_after_max=5)
    b, t = flap(opened(policy, at=100.0), policy, 100.0)
    assert retry_after(b, policy, t) == 5, f"expected 5 (7 capped), saw {retry_after(b, policy, t)}"


def test_retry_after_open_rounds_up_to_whole_seconds() -> None:
    policy = replace(P, rise=1, interval=0.1)
    b = opened(policy, at=100.0)
    assert retry_after(b, policy, 100.0) == 1, f"expected 1, saw {retry_after(b, policy, 100.0)}"


# ---------------------------------------------------------------- events and epoch


def test_events_carry_epoch_and_actor() -> None:
    b = new_breaker(NAME, 0.0, epoch=5)
    events = []
    run = feed(b, P, "FFF", 1.0)  # transition closed->open
    events += run.events
    step = force(run.breaker, P, State.CLOSED, 10.0, "alice", "x", 4.0)
    events += step.events
    step = tick(step.breaker, P, 14.0)  # expire
    events += step.events
    step = force(step.breaker, P, State.OPEN, 10.0, "carol", "y", 15.0)
    events += step.events
    step = release(step.breaker, P, "bob", 16.0)
    events += step.events
    step = resync(step.breaker, P, 40, 17.0)
    events += step.events
    seen = [(e.kind, e.epoch, e.actor, e.name, e.at) for e in events]
    expected = [
        ("transition", 6, "probe", NAME, 3.0),
        ("force", 7, "alice", NAME, 4.0),
        ("expire", 8, "sidecar", NAME, 14.0),
        ("force", 9, "carol", NAME, 15.0),
        ("release", 10, "bob", NAME, 16.0),
        ("resync", 41, "sidecar", NAME, 17.0),
    ]
    assert seen == expected, f"expected {expected}, saw {seen}"
    assert step.breaker.epoch == 41, f"expected epoch 41, saw {step.breaker.epoch}"


def test_every_transition_bumps_the_epoch_once() -> None:
    b = half_opened(at=200.0)  # closed->open->half_open
    assert b.epoch == 2, f"expected epoch 2, saw {b.epoch}"
    b = tick(b, P, 230.0).breaker
    assert b.epoch == 3, f"expected epoch 3, saw {b.epoch}"


def test_transition_events_name_computed_states_under_a_force() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.CLOSED, 600.0, "alice", "x", 10.0).breaker
    run = feed(b, P, "FFF", 11.0)
    e = run.events[0]
    assert (e.kind, e.from_state, e.to_state, e.state) == (
        "transition",
        State.CLOSED,
        State.OPEN,
        State.CLOSED,
    ), f"expected computed closed->open with effective closed, saw {e}"
    assert (e.forced, e.until, e.admit) == (State.CLOSED, 610.0, 100), (
        f"expected the event to name the force and admit 100, saw {e}"
    )


def test_event_admit_is_the_admit_after_the_change() -> None:
    run = feed(new_breaker(NAME, 0.0), P, "FFF", 1.0)
    run2 = feed(run.breaker, P, "SS", 4.0)
    step = tick(run2.breaker, P, 35.0)
    seen = [e.admit for e in run.events + run2.events + list(step.events)]
    assert seen == [0, P.initial_admit, 100], f"expected [0, {P.initial_admit}, 100], saw {seen}"


def test_one_observation_can_emit_several_events_in_order() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 10.0, "alice", "x", 0.0).breaker
    b = feed(b, P, "FF", 1.0).breaker
    step = observe(b, P, False, "timeout", 20.0)
    assert kinds(step.events) == ["expire", "transition"], f"saw {kinds(step.events)}"
    assert [e.epoch for e in step.events] == [b.epoch + 1, b.epoch + 2], (
        f"expected consecutive epochs, saw {[e.epoch for e in step.events]}"
    )
    assert [e.state for e in step.events] == [State.CLOSED, State.OPEN], (
        f"saw {[e.state for e in step.events]}"
    )


# ---------------------------------------------------------------- resync


def test_resync_jumps_past_stored_epoch() -> None:
    b = half_opened(at=200.0)  # epoch 2
    step = resync(b, P, 10, 201.0)
    assert step.breaker.epoch == 11, f"expected epoch 11, saw {step.breaker.epoch}"
    assert kinds(step.events) == ["resync"], f"saw {kinds(step.events)}"
    e = step.events[0]
    assert (e.epoch, e.from_state, e.to_state, e.state, e.reason) == (
        11,
        State.HALF_OPEN,
        State.HALF_OPEN,
        State.HALF_OPEN,
        "epoch 10",
    ), f"saw {e}"


def test_resync_moves_past_an_equal_stored_epoch() -> None:
    b = half_opened(at=200.0)
    step = resync(b, P, b.epoch, 201.0)
    assert step.breaker.epoch == b.epoch + 1, f"expected {b.epoch + 1}, saw {step.breaker.epoch}"


def test_resync_ignores_an_older_stored_epoch() -> None:
    b = half_opened(at=200.0)
    step = resync(b, P, b.epoch - 1, 201.0)
    assert step.events == () and step.breaker == b, f"expected no change, saw {step}"


def test_resync_changes_nothing_but_the_epoch() -> None:
    b = force(half_opened(at=200.0), P, State.CLOSED, 60.0, "alice", "x", 201.0).breaker
    after = resync(b, P, 99, 202.0).breaker
    assert replace(after, epoch=b.epoch) == b, f"expected only the epoch to change, saw {after}"


def test_resync_expires_a_force_that_ran_out() -> None:
    """Like every other operation, resync applies time first: a force that ran out
    before it must not survive it (nor be named by the resync event)."""
    b = force(new_breaker(NAME, 0.0), P, State.OPEN, 10.0, "alice", "x", 0.0).breaker
    step = resync(b, P, 50, 20.0)
    assert step.breaker.force is None, (
        f"expected the force that ended at 10.0 to be gone after resync at 20.0, "
        f"saw {step.breaker.force}"
    )
    assert step.breaker.state is State.CLOSED, f"expected closed, saw {step.breaker.state}"
    assert kinds(step.events) == ["expire", "resync"], f"saw {kinds(step.events)}"
    assert step.events[-1].forced is None, f"expected no force on the event, saw {step.events[-1]}"


# ---------------------------------------------------------------- restore_force


def _stored(state: State = State.OPEN, until: float = 500.0) -> Force:
    return Force(state=state, until=until, actor="alice", reason="upgrade", at=50.0)


def test_restore_force_adopts_only_unexpired() -> None:
    b = new_breaker(NAME, 100.0, epoch=3)
    step = restore_force(b, P, _stored(until=500.0), 100.0)
    f = step.breaker.force
    assert f is not None and (f.state, f.until, f.actor, f.reason) == (
        State.OPEN,
        500.0,
        "alice",
        "upgrade",
    ), f"expected alice's force open until 500.0, saw {f}"
    assert step.breaker.state is State.OPEN and step.breaker.epoch == 4, f"saw {step.breaker}"
    assert kinds(step.events) == ["force"], f"saw {kinds(step.events)}"
    assert (step.events[0].actor, step.events[0].until) == ("alice", 500.0), f"saw {step.events[0]}"


def test_restore_force_ignores_a_force_ending_now() -> None:
    b = new_breaker(NAME, 100.0)
    step = restore_force(b, P, _stored(until=100.0), 100.0)
    assert step.events == () and step.breaker == b, f"expected nothing adopted, saw {step}"


def test_restore_force_ignores_an_expired_force() -> None:
    b = new_breaker(NAME, 100.0)
    step = restore_force(b, P, _stored(until=99.0), 100.0)
    assert step.events == () and step.breaker == b, f"expected nothing adopted, saw {step}"


def test_restore_force_caps_at_force_max_ttl() -> None:
    policy = replace(P, force_max_ttl=60.0)
    b = new_breaker(NAME, 100.0)
    f = restore_force(b, policy, _stored(until=1e9), 100.0).breaker.force
    assert f is not None and f.until == 160.0, f"expected until capped at 160.0, saw {f}"


def test_restore_force_keeps_a_local_force() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.CLOSED, 600.0, "bob", "local", 100.0).breaker
    step = restore_force(b, P, _stored(), 100.0)
    assert step.events == () and step.breaker == b, f"expected the local force kept, saw {step}"


def test_restore_force_replaces_a_local_force_that_ran_out() -> None:
    b = force(new_breaker(NAME, 0.0), P, State.CLOSED, 10.0, "bob", "local", 0.0).breaker
    step = restore_force(b, P, _stored(until=500.0), 100.0)
    assert kinds(step.events) == ["expire", "force"], f"saw {kinds(step.events)}"
    f = step.breaker.force
    assert f is not None and (f.actor, f.until) == ("alice", 500.0), (
        f"expected alice's stored force adopted once bob's ran out, saw {f}"
    )


def test_restore_force_ignores_half_open() -> None:
    b = new_breaker(NAME, 100.0)
    step = restore_force(b, P, _stored(state=State.HALF_OPEN), 100.0)
    assert step.events == () and step.breaker == b, f"expected nothing adopted, saw {step}"


def test_restore_force_rejects_a_nan_until() -> None:
    """A corrupted `forced_until` field ("nan") reads back as float('nan').

    It used to be adopted (`nan <= now` is False), giving a force that never expires
    (`now >= nan` is always False) and a verdict() that raises in math.ceil(nan).
    """
    b = new_breaker(NAME, 100.0)
    step = restore_force(b, P, _stored(until=math.nan), 100.0)
    assert step.breaker.force is None, (
        f"expected a force with a nan expiry to be ignored, saw {step.breaker.force}"
    )
    assert verdict(step.breaker, P, 100.0).state is State.CLOSED


# ---------------------------------------------------------------- verdict


def test_verdict_reports_the_effective_view() -> None:
    b = half_opened(at=200.0)
    v = verdict(b, P, 215.0)
    seen = (
        v.name,
        v.state,
        v.admit,
        v.epoch,
        v.since,
        v.reason,
        v.retry_after,
        v.computed,
        v.force,
    )
    expected = (NAME, State.HALF_OPEN, 55, 2, 200.0, "probes ok", 15, State.HALF_OPEN, None)
    assert seen == expected, f"expected {expected}, saw {seen}"


def test_verdict_reason_names_the_force() -> None:
    b = force(opened(at=100.0), P, State.CLOSED, 60.0, "alice", "upgrade", 101.0).breaker
    v = verdict(b, P, 101.0)
    assert (v.reason, v.state, v.computed, v.force) == (
        "forced: upgrade",
        State.CLOSED,
        State.OPEN,
        b.force,
    ), f"saw {v}"


def test_state_is_the_force_state_when_forced_else_computed() -> None:
    b = opened(at=100.0)
    assert b.state is b.computed is State.OPEN
    forced = force(b, P, State.CLOSED, 60.0, "alice", "x", 101.0).breaker
    assert forced.state is State.CLOSED and forced.computed is State.OPEN, (
        f"saw state {forced.state} computed {forced.computed}"
    )

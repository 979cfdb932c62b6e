"""The probe schedule: one probe per interval, confirmations at fast_interval, never a burst."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breaker.core import (
    RTT_SAMPLES,
    Breaker,
    Policy,
    State,
    adaptive_timeout,
    confirming,
    detection_bound,
    new_breaker,
    next_probe_at,
    observe,
    passive_read_period,
    passive_window_closed,
    probe_gap,
)
from breaker.core._schedule import RTT_MIN_SAMPLES

P = Policy(fall=3, interval=1.0, fast_interval=0.5)


def _after(pattern: str, policy: Policy = P) -> Breaker:
    b = new_breaker("presence", 0.0)
    for i, c in enumerate(pattern):
        b = observe(b, policy, c == "S", "timeout", float(i)).breaker
    return b


@pytest.mark.parametrize("n", range(1, 4))
def test_every_result_sequence_gets_the_gap_its_state_calls_for(n: int) -> None:
    """Exhaustive over all S/F sequences up to `fall + 1` long (with fall 3)."""
    for seq in itertools.product("SF", repeat=n + 1):
        pattern = "".join(seq)
        b = _after(pattern)
        trailing = len(pattern) - len(pattern.rstrip("F"))
        expected_fast = b.computed is State.CLOSED and 0 < trailing < P.fall
        assert confirming(b, P) is expected_fast, f"{pattern}: expected {expected_fast}"
        expected = P.fast_interval if expected_fast else P.interval
        assert probe_gap(b, P) == expected, f"{pattern}: expected gap {expected}"


def test_steady_state_is_one_probe_per_interval() -> None:
    b = _after("SSS")
    assert next_probe_at(10.0, 10.002, b, P) == 11.0


def test_a_failure_brings_the_next_probe_forward_to_fast_interval() -> None:
    assert next_probe_at(10.0, 10.5, _after("SF"), P) == 10.5
    assert next_probe_at(10.5, 11.0, _after("SFF"), P) == 11.0


def test_a_success_returns_to_the_steady_interval() -> None:
    assert next_probe_at(10.5, 10.51, _after("SFS"), P) == 11.5


def test_once_open_probing_returns_to_the_steady_interval() -> None:
    b = _after("FFF")
    assert b.computed is State.OPEN
    assert next_probe_at(2.0, 2.5, b, P) == 3.0


def test_a_confirmation_whose_slot_passed_goes_at_once_without_overlap() -> None:
    """fast_interval shorter than the timeout: the next probe follows the failed one at once."""
    policy = replace(P, fast_interval=0.2)
    assert next_probe_at(10.0, 10.5, _after("F", policy), policy) == 10.5


def test_a_late_steady_probe_waits_for_its_next_slot_instead_of_bursting() -> None:
    assert next_probe_at(10.0, 13.25, _after("S"), P) == pytest.approx(14.0)


def test_detection_bound_defaults() -> None:
    assert detection_bound(1.0, 0.5, 0.5, 3) == 2.5
    assert detection_bound(1.0, 1.0, 0.5, 3) == 3.5  # fast_interval = interval: the old formula
    assert detection_bound(1.0, 0.2, 0.5, 3) == 2.5  # confirmations never overlap a timeout
    assert detection_bound(1.0, 0.5, 0.5, 1) == 1.5


@settings(max_examples=500, deadline=None)
@given(
    interval=st.floats(0.05, 10),
    fast_ratio=st.floats(0.01, 1),
    timeout_ratio=st.floats(0.01, 0.99),
    fall=st.integers(1, 6),
    phase=st.floats(0, 1, exclude_max=True),
    probe_ms=st.floats(0, 5),
)
def test_a_lock_up_opens_within_the_bound_and_probes_never_overlap(
    interval: float,
    fast_ratio: float,
    timeout_ratio: float,
    fall: int,
    phase: float,
    probe_ms: float,
) -> None:
    """Simulate the probe loop against a server that locks up at a random phase."""
    timeout = interval * timeout_ratio
    policy = Policy(fall=fall, interval=interval, fast_interval=interval * fast_ratio)
    answer = probe_ms / 1000 * timeout  # healthy answers come back this fast
    lock = 5 * interval + phase * interval
    b = new_breaker("presence", 0.0)
    slot, done = 0.0, -1.0
    sent = 0
    while b.computed is not State.OPEN:
        assert slot >= done, f"probe at {slot} overlaps the previous one, done at {done}"
        if slot < lock:
            sent += 1
        done = slot + (timeout if slot >= lock else answer)
        b = observe(b, policy, slot < lock, "timeout", done).breaker
        slot = next_probe_at(slot, done, b, policy)
        assert slot - done < interval + 1e-9, "never more than one interval idle"
    bound = detection_bound(interval, policy.fast_interval, timeout, fall)
    assert done - lock <= bound + 1e-9, f"opened {done - lock} after lock-up, bound {bound}"
    assert sent <= 6, f"steady state sent {sent} probes in 5 intervals before the lock-up"


def test_adaptive_timeout_is_the_configured_one_until_enough_rtts_are_known() -> None:
    assert adaptive_timeout([0.001] * (RTT_MIN_SAMPLES - 1), 0.5, 0.2) == 0.5
    assert adaptive_timeout([0.001] * RTT_MIN_SAMPLES, 0.5, 0.2) == 0.2


def test_adaptive_timeout_follows_a_high_percentile_of_the_rtt() -> None:
    rtts = [0.01] * 99 + [0.09]  # the p99 of 100 samples is the 99th smallest
    assert adaptive_timeout(rtts, 0.5, 0.02) == pytest.approx(4 * 0.01)
    assert adaptive_timeout([0.01] * 98 + [0.09] * 2, 0.5, 0.02) == pytest.approx(4 * 0.09)


def test_adaptive_timeout_never_leaves_floor_and_timeout() -> None:
    assert adaptive_timeout([0.3] * 20, 0.5, 0.2) == 0.5  # a slow server: the cap
    assert adaptive_timeout([0.0001] * 20, 0.5, 0.2) == 0.2  # loopback: the floor
    assert adaptive_timeout([0.0001] * 20, 0.1, 0.2) == 0.1  # floor above the cap: the cap


@settings(max_examples=300, deadline=None)
@given(
    rtts=st.lists(st.floats(0, 10), max_size=RTT_SAMPLES),
    timeout=st.floats(0.01, 5),
    floor=st.floats(0.001, 5),
)
def test_adaptive_timeout_stays_within_its_bounds(
    rtts: list[float], timeout: float, floor: float
) -> None:
    wait = adaptive_timeout(rtts, timeout, floor)
    assert wait <= timeout, f"waited {wait} > the configured timeout {timeout}"
    assert wait >= min(floor, timeout), f"waited {wait} < floor {floor}"
    longer = adaptive_timeout([r * 2 for r in rtts], timeout, floor)
    assert longer >= wait, "slower answers never shorten the wait"


@pytest.mark.parametrize(
    ("forwarded", "age", "closed"),
    [(0, 0.1, False), (19, 0.9, False), (20, 0.1, True), (0, 1.0, True), (5, 1.5, True)],
)
def test_a_passive_window_closes_on_enough_requests_or_after_an_interval(
    forwarded: int, age: float, closed: bool
) -> None:
    assert passive_window_closed(forwarded, age, 20, 1.0) is closed


def test_passive_counters_are_read_twice_per_confirmation_gap() -> None:
    assert passive_read_period(P) == 0.25
    assert passive_read_period(replace(P, fast_interval=1.0)) == 0.5

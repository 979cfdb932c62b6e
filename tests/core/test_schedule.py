"""The probe schedule: one probe per interval, confirmations at fast_interval, never a burst."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breaker.core import (
    Breaker,
    Policy,
    State,
    confirming,
    detection_bound,
    new_breaker,
    next_probe_at,
    observe,
    probe_gap,
)

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

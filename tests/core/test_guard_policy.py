"""The guard's pure policy: start, refuse, keep or stop, from one reading of the verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breaker.core import State, admitted
from breaker.core._guard import Action, Cause, OnUnknown, Reading, decide, lets_through

KEY = "vm-presence"
CLOSED = Reading("presence", State.CLOSED, admit=100)
OPEN = Reading("presence", State.OPEN, admit=0, reason="timeout", retry_after=12)
UNKNOWN = Reading("presence", None, detail="Redis unreachable")


def half_open(admit: int) -> Reading:
    return Reading("presence", State.HALF_OPEN, admit=admit, reason="probes ok", retry_after=3)


def admitted_key(admit: int, inside: bool) -> str:
    """A key that is (or is not) inside the crc32 share at `admit` percent."""
    for i in range(10_000):
        key = f"job-{i}"
        if admitted(admit, key) is inside:
            return key
    raise AssertionError(f"no key {'inside' if inside else 'outside'} {admit}%")


@pytest.mark.parametrize("on_unknown", list(OnUnknown))
def test_closed_starts_and_keeps_running_whatever_on_unknown_says(on_unknown: OnUnknown) -> None:
    start = decide(CLOSED, running=False, key=KEY, on_unknown=on_unknown)
    keep = decide(CLOSED, running=True, key=KEY, on_unknown=on_unknown)
    assert (start.action, start.cause) == (Action.START, Cause.ALLOWED)
    assert (keep.action, keep.cause) == (Action.KEEP, Cause.ALLOWED)


@pytest.mark.parametrize("on_unknown", list(OnUnknown))
def test_open_refuses_to_start_and_stops_a_running_job(on_unknown: OnUnknown) -> None:
    refuse = decide(OPEN, running=False, key=KEY, on_unknown=on_unknown)
    stop = decide(OPEN, running=True, key=KEY, on_unknown=on_unknown, unknown_for=0, grace=60)
    assert (refuse.action, refuse.cause) == (Action.REFUSE, Cause.OPEN)
    assert (stop.action, stop.cause) == (Action.STOP, Cause.OPEN), "open stops at once, no grace"
    assert refuse.message == "presence is open (timeout), retry after 12s; not started"
    assert stop.message.endswith("; stopping the job")


def test_half_open_lets_an_admitted_key_start() -> None:
    key = admitted_key(30, inside=True)
    decision = decide(half_open(30), running=False, key=key, on_unknown=OnUnknown.REFUSE)
    assert decision.action is Action.START and decision.cause is Cause.ALLOWED
    assert "half_open at 30%" in decision.message


def test_half_open_refuses_a_key_outside_the_share() -> None:
    key = admitted_key(30, inside=False)
    decision = decide(half_open(30), running=False, key=key, on_unknown=OnUnknown.RUN)
    assert decision.action is Action.REFUSE and decision.cause is Cause.OPEN
    assert "outside the admitted share" in decision.message and "retry after 3s" in decision.message


def test_unknown_refuse_does_not_start() -> None:
    decision = decide(UNKNOWN, running=False, key=KEY, on_unknown=OnUnknown.REFUSE)
    assert (decision.action, decision.cause) == (Action.REFUSE, Cause.UNKNOWN)
    assert "Redis unreachable" in decision.message and "--on-unknown refuse" in decision.message


def test_unknown_run_starts_and_keeps_running_however_long() -> None:
    start = decide(UNKNOWN, running=False, key=KEY, on_unknown=OnUnknown.RUN)
    keep = decide(UNKNOWN, running=True, key=KEY, on_unknown=OnUnknown.RUN, unknown_for=1e6)
    assert (start.action, start.cause) == (Action.START, Cause.UNKNOWN)
    assert (keep.action, keep.cause) == (Action.KEEP, Cause.UNKNOWN)


def test_unknown_refuse_tolerates_a_running_job_until_grace_then_stops() -> None:
    def at(unknown_for: float) -> Action:
        return decide(
            UNKNOWN,
            running=True,
            key=KEY,
            on_unknown=OnUnknown.REFUSE,
            unknown_for=unknown_for,
            grace=10.0,
        ).action

    assert [at(0.0), at(9.99), at(10.0), at(500.0)] == [
        Action.KEEP,
        Action.KEEP,
        Action.STOP,
        Action.STOP,
    ]


def test_zero_grace_stops_at_the_first_unknown_reading() -> None:
    decision = decide(UNKNOWN, running=True, key=KEY, on_unknown=OnUnknown.REFUSE, grace=0.0)
    assert (decision.action, decision.cause) == (Action.STOP, Cause.UNKNOWN)


# ---------------------------------------------------------------- properties

states = st.sampled_from([*State, None])
readings = st.builds(
    Reading,
    name=st.just("presence"),
    state=states,
    admit=st.integers(0, 100),
    reason=st.text(max_size=20),
    retry_after=st.integers(0, 60),
    detail=st.text(max_size=20),
)
keys = st.text(min_size=1, max_size=40)


@given(reading=readings, key=keys, on_unknown=st.sampled_from(list(OnUnknown)))
def test_a_running_job_is_kept_exactly_when_it_would_be_started(
    reading: Reading, key: str, on_unknown: OnUnknown
) -> None:
    """Within the grace period the running verdict mirrors the start verdict, except that
    an unknown state under `refuse` is tolerated for a running job."""
    start = decide(reading, running=False, key=key, on_unknown=on_unknown)
    keep = decide(reading, running=True, key=key, on_unknown=on_unknown, grace=10.0)
    assert start.cause is keep.cause
    assert start.action in (Action.START, Action.REFUSE)
    assert keep.action in (Action.KEEP, Action.STOP)
    tolerated = not reading.known and on_unknown is OnUnknown.REFUSE
    expected_keep = start.action is Action.START or tolerated
    assert (keep.action is Action.KEEP) is expected_keep


@given(reading=readings, key=keys, unknown_for=st.floats(0, 1e6), grace=st.floats(0, 1e4))
def test_a_known_verdict_never_depends_on_how_long_it_was_unknown(
    reading: Reading, key: str, unknown_for: float, grace: float
) -> None:
    if not reading.known:
        return
    base = decide(reading, running=True, key=key, on_unknown=OnUnknown.REFUSE)
    other = decide(
        reading,
        running=True,
        key=key,
        on_unknown=OnUnknown.REFUSE,
        unknown_for=unknown_for,
        grace=grace,
    )
    assert base == other


@given(key=keys, low=st.integers(0, 100), high=st.integers(0, 100))
def test_a_key_admitted_in_half_open_stays_admitted_as_the_share_grows(
    key: str, low: int, high: int
) -> None:
    low, high = min(low, high), max(low, high)
    if lets_through(half_open(low), key):
        assert lets_through(half_open(high), key)


@given(key=keys, admit=st.integers(0, 100))
def test_half_open_uses_the_same_rule_as_the_api(key: str, admit: int) -> None:
    assert lets_through(half_open(admit), key) is admitted(admit, key)

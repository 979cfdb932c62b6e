"""core.restore and the clock edge: pure, so every case is cheap to pin down."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from breaker.core import (
    Force,
    State,
    Stored,
    admit_percent,
    force_shifted,
    new_breaker,
    observe,
    restore,
    verdict,
    verdict_on_wall,
)
from tests.core.helpers import NAME, P, opened


def stored(computed: State, admit: int = 0, epoch: int = 7, **kw: object) -> Stored:
    fields: dict[str, object] = {
        "computed": computed, "admit": admit, "epoch": epoch, "since": 50.0, "reason": "timeout",
    }  # fmt: skip
    fields.update(kw)
    return Stored(**fields)  # type: ignore[arg-type]


def test_a_stored_open_stays_open_until_rise_good_probes() -> None:
    b = restore(new_breaker(NAME, 100.0), P, stored(State.OPEN), 100.0).breaker
    assert b.computed is State.OPEN and b.epoch == 7 and b.since == 50.0, b
    b = observe(b, P, True, "ok", 101.0).breaker
    assert b.computed is State.OPEN, "one good probe must not be enough"
    b = observe(b, P, True, "ok", 102.0).breaker
    assert b.computed is State.HALF_OPEN, f"rise={P.rise} good probes: half_open, saw {b}"


def test_a_stored_ramp_continues_from_its_admit() -> None:
    b = restore(new_breaker(NAME, 100.0), P, stored(State.HALF_OPEN, admit=55), 100.0).breaker
    assert b.computed is State.HALF_OPEN
    assert admit_percent(b, P, 100.0) == 55, f"expected 55, saw {admit_percent(b, P, 100.0)}"
    assert admit_percent(b, P, 115.0) > 55


def test_a_breaker_that_already_decided_keeps_its_own_state() -> None:
    b = opened(P, at=100.0)
    step = restore(b, P, stored(State.CLOSED, admit=100, epoch=40), 101.0)
    assert step.breaker.computed is State.OPEN and step.breaker.epoch == 41, step.breaker
    assert [e.kind for e in step.events] == ["resync"]


def test_no_event_when_nothing_changes_for_consumers() -> None:
    step = restore(new_breaker(NAME, 100.0), P, stored(State.CLOSED, admit=100), 100.0)
    assert step.events == () and step.breaker.epoch == 7


def test_a_live_stored_force_is_restored_an_expired_one_not() -> None:
    live = Force(State.OPEN, 500.0, "alice", "upgrade", 40.0)
    b = restore(new_breaker(NAME, 100.0), P, stored(State.CLOSED, force=live), 100.0).breaker
    assert b.force is not None and b.force.until == 500.0 and b.state is State.OPEN
    gone = Force(State.OPEN, 90.0, "alice", "upgrade", 40.0)
    b = restore(new_breaker(NAME, 100.0), P, stored(State.CLOSED, force=gone), 100.0).breaker
    assert b.force is None


@given(offset=st.floats(-1e9, 1e9), until=st.floats(0, 1e6))
def test_wall_conversion_only_moves_times(offset: float, until: float) -> None:
    b = restore(
        new_breaker(NAME, 0.0),
        P,
        stored(State.OPEN, force=Force(State.OPEN, until + 1, "a", "r", 0.0)),
        0.0,
    ).breaker
    v = verdict(b, P, 0.0)
    w = verdict_on_wall(v, offset)
    assert (w.state, w.admit, w.epoch, w.retry_after) == (v.state, v.admit, v.epoch, v.retry_after)
    assert w.since == v.since + offset
    if v.force is not None and w.force is not None:
        assert force_shifted(w.force, -offset).until == v.force.until + offset - offset

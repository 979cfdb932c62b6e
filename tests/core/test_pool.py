"""The pool verdict derived from member verdicts (breaker.core._pool)."""

from __future__ import annotations

from breaker.core import State, Verdict, default_min_healthy, pool_events, pool_verdict


def member(
    name: str, state: State, admit: int | None = None, epoch: int = 1, retry: int = 0
) -> Verdict:
    admit = {State.CLOSED: 100, State.OPEN: 0}.get(state, 50) if admit is None else admit
    return Verdict(name, state, admit, epoch, 0.0, "t", retry, state, None)


def test_one_of_three_down_is_closed_with_the_default_min_healthy() -> None:
    members = [
        member("a", State.CLOSED),
        member("b", State.OPEN, retry=7),
        member("c", State.CLOSED),
    ]
    v = pool_verdict("p", members, default_min_healthy(3), now=10.0)
    assert (v.state, v.admit, v.retry_after) == (State.CLOSED, 100, 0)


def test_fewer_closed_than_min_healthy_admits_the_members_share() -> None:
    members = [
        member("a", State.CLOSED),
        member("b", State.OPEN, retry=7),
        member("c", State.OPEN, retry=3),
    ]
    v = pool_verdict("p", members, 2, now=10.0)
    assert (v.state, v.admit, v.retry_after) == (State.HALF_OPEN, 50, 3)


def test_half_open_members_count_with_their_admitted_share() -> None:
    members = [member("a", State.HALF_OPEN, 20), member("b", State.OPEN), member("c", State.OPEN)]
    v = pool_verdict("p", members, 2, now=10.0)
    assert (v.state, v.admit) == (State.HALF_OPEN, 10)


def test_no_member_taking_traffic_is_open_with_a_retry_after() -> None:
    members = [member("a", State.OPEN, retry=9), member("b", State.OPEN, retry=4)]
    v = pool_verdict("p", members, 1, now=10.0)
    assert (v.state, v.admit, v.retry_after) == (State.OPEN, 0, 4)


def test_epoch_is_the_members_sum_plus_base_and_since_holds_while_the_state_does() -> None:
    first = pool_verdict(
        "p", [member("a", State.CLOSED, epoch=3), member("b", State.CLOSED, epoch=4)], 1, 5.0
    )
    again = pool_verdict(
        "p",
        [member("a", State.CLOSED, epoch=3), member("b", State.OPEN, epoch=5)],
        1,
        9.0,
        first,
        10,
    )
    assert (first.epoch, again.epoch, again.since) == (7, 18, 5.0)


def test_a_state_change_is_one_transition_event() -> None:
    closed = pool_verdict("p", [member("a", State.CLOSED)], 1, 1.0)
    opened = pool_verdict("p", [member("a", State.OPEN, epoch=2)], 1, 2.0, closed)
    (event,) = pool_events(closed, opened)
    assert (event.from_state, event.to_state, event.actor) == (State.CLOSED, State.OPEN, "pool")
    assert pool_events(None, closed) == () and pool_events(opened, opened) == ()

"""Votes for the store tests: one observer's VoteItem with test defaults."""

from __future__ import annotations

from dataclasses import dataclass

from breaker.core import Policy, State, Verdict
from breaker.store import RedisStore, VoteItem

POLICY = Policy(fall=1, rise=1, interval=0.1, slow_start=0.5)


def vote(observer: str, state: State, **kw: object) -> VoteItem:
    fields: dict[str, object] = {
        "name": "presence", "observer": observer, "vote": state, "reason": "timeout",
        "settings": "interval=0.1", "policy": POLICY, "quorum": "majority", "vote_ttl": 0.6,
        "ttl": 2.0, "instance": f"i-{observer}",
    }  # fmt: skip
    fields.update(kw)
    return VoteItem(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Voted:
    """A vote that landed: the fleet verdict and what the script said about the votes."""

    verdict: Verdict
    live: int
    other: str
    twin: bool
    due: float | None


async def cast(store: RedisStore, item: VoteItem) -> Voted:
    """One vote; fails the test when Redis refused it."""
    [outcome], _ = await store.vote([item])
    assert outcome.error is None and outcome.verdict is not None, outcome
    return Voted(outcome.verdict, outcome.live, outcome.other, outcome.twin, outcome.due)

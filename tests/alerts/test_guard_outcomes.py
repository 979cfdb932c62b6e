"""`breaker guard` counts its outcomes under the names the Redis contract lists."""

from __future__ import annotations

from breaker.guard import _OUTCOMES
from breaker.store import GUARD_OUTCOMES


def test_guard_outcomes_in_the_contract_are_what_the_guard_records() -> None:
    recorded = set(_OUTCOMES.values()) | {"ran"}
    assert recorded == set(GUARD_OUTCOMES), f"guard records {recorded}, contract {GUARD_OUTCOMES}"

"""`breaker status` groups members under their pool (rendering only, from API answers)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from breaker.cli._status import _render
from breaker.client import Overview
from breaker.client._models import parse_overview


def answer(name: str, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "state": state, "admit": 100 if state == "closed" else 0, "epoch": 1,
        "since": time.time(), "reason": "r", "retry_after": 0, "computed": state,
        "forced": None, "last_probe": None, "target": "", **extra,
    }  # fmt: skip


def rendered(overview: Overview) -> list[str]:
    console = Console(width=200, record=True, color_system=None)
    console.print(_render(overview, time.time()))
    return [line.rstrip() for line in console.export_text().splitlines() if line.strip()]


def test_status_lists_each_pool_then_its_members_indented_then_the_rest() -> None:
    members = [{"name": n, "state": "closed", "admit": 100, "retry_after": 0} for n in "ab"]
    overview = parse_overview(
        {
            "redis_up": True,
            "breakers": [
                answer("a", "closed", kind="breaker", pool="presence"),
                answer("b", "open", kind="breaker", pool="presence"),
                answer("mwi", "closed", kind="breaker"),
                answer("presence", "closed", kind="pool", members=members),
            ],
        }
    )
    names = [
        line.split()[0] + (" (pool)" if "(pool)" in line else "") for line in rendered(overview)[1:]
    ]
    lines = rendered(overview)[1:]
    assert names == ["presence (pool)", "a", "b", "mwi"], names
    assert lines[1].startswith("  a") and lines[2].startswith("  b") and lines[3].startswith("mwi")
    assert [b.kind for b in overview.breakers] == ["breaker", "breaker", "breaker", "pool"]
    assert overview.breakers[3].members == ("a", "b") and overview.breakers[0].pool == "presence"

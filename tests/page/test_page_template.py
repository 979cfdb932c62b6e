"""The status page works offline: nothing in it is fetched from anywhere but the sidecar."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "breaker" / "api" / "templates" / "status.html"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an identifier, never fetched


def test_page_loads_nothing_from_elsewhere() -> None:
    page = TEMPLATE.read_text()
    external = [u for u in re.findall(r"https?://[^\s\"')]+", page) if u != SVG_NAMESPACE]
    assert not external, f"expected no external URLs in the page, found {external}"
    for marker in ("<script src", "<link", "@import", "url("):
        assert marker not in page, f"expected no {marker!r} in a self-contained page"


def test_page_never_puts_the_token_in_a_url_or_cookie() -> None:
    page = TEMPLATE.read_text()
    assert "document.cookie" not in page and "localStorage" not in page
    assert "?token" not in page and "&token" not in page


def test_snapshot_shows_pools_with_their_members_after_the_breakers() -> None:
    from breaker._config import Settings
    from breaker.api._page import snapshot
    from breaker.service import Service

    settings = Settings(
        breakers=[  # type: ignore[arg-type]
            {"name": n, "target": f"sip:127.0.0.1:{5071 + i}"} for i, n in enumerate("abc")
        ],
        pools=[{"name": "presence", "members": ["a", "b", "c"]}],  # type: ignore[list-item]
    )
    snap = snapshot(Service(settings))
    names = [b["name"] for b in snap["breakers"]]
    assert names == ["a", "b", "c", "presence"], f"breakers then pools, got {names}"
    pool = snap["breakers"][-1]
    assert pool["kind"] == "pool" and [m["name"] for m in pool["members"]] == ["a", "b", "c"]
    assert pool["rtts"] == [] and pool["last_probe"] is None, pool

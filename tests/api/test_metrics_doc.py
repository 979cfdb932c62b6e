"""docs/metrics.md is the one list of the sidecar's metrics: it must name each one, no more."""

from __future__ import annotations

import re
from pathlib import Path

from breaker._metrics import Metrics

DOC = Path(__file__).parents[2] / "docs" / "metrics.md"


def test_metrics_doc_lists_exactly_the_metrics_the_sidecar_exports() -> None:
    text = DOC.read_text()
    section = text[text.index("## Sidecar") : text.index("### `breaker guard` outcomes")]
    documented = set(re.findall(r"^\| `(breaker_[a-z_]+)` \|", section, re.M))
    exported = set()
    for family in Metrics().registry.collect():
        # a counter family is named without _total; the exposition (and the doc) has it
        exported.add(f"{family.name}_total" if family.type == "counter" else family.name)
    assert documented == exported, (
        f"only in the doc: {sorted(documented - exported)}; "
        f"exported but undocumented: {sorted(exported - documented)}"
    )

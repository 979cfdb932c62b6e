"""`python -m bench --quick` runs every benchmark and writes valid results (not their goals:
quick mode on a shared machine is a smoke test, not a measurement)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import BENCHMARKS
from tests.support.run import run_ok

NAMES = BENCHMARKS  # every registered benchmark


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("bench")
    argv = [sys.executable, "-m", "bench", "--quick", "--out", str(out)]
    run_ok([*argv, "--docs", str(out / "benchmarks.md")], timeout=420)
    yield out


def _result(out: Path, name: str) -> dict[str, Any]:
    path = out / f"{name}.json"
    assert path.exists(), f"{name}.json not written"
    return json.loads(path.read_text())


@pytest.mark.timeout(450)
@pytest.mark.parametrize("name", NAMES)
def test_quick_bench_writes_a_valid_result(quick_bench: Path, name: str) -> None:
    result = _result(quick_bench, name)
    assert result["name"] == name
    assert result["quick"] is True
    assert isinstance(result["met"], bool), f"{name}: no verdict ({result['summary']})"
    assert result["goal"] and result["summary"] and result["data"]
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu_model"]


@pytest.mark.timeout(450)
def test_quick_bench_measures_ratios_against_a_same_run_baseline(quick_bench: Path) -> None:
    hot = _result(quick_bench, "hot_path")["data"]["variants"]
    assert hot[0]["answered_ratio"] == 1.0 and all(v["answered_per_s"] > 0 for v in hot)
    redis = _result(quick_bench, "redis_load")["data"]["rates"]
    assert [r["sip_rate_target"] for r in redis] == [10, 1000, 5000]
    assert all(r["commands_sent_per_s"] > 0 for r in redis)
    api = _result(quick_bench, "api")["data"]
    assert api["redis_get_baseline"]["requests_per_s"] > 0
    assert api["fixed_rate"]["completed"] > 0 and api["fixed_rate"]["p99_ms"] > 0
    scale = _result(quick_bench, "probe_scale")["data"]["rows"]
    assert [r["targets"] for r in scale] == [1, 100, 1000]
    detection = _result(quick_bench, "detection")["data"]
    pool = _result(quick_bench, "pool")["data"]
    assert [(r["members"], r["sip_rate_target"]) for r in pool["redis_load"]] == [
        (3, 10), (3, 2000), (30, 10), (30, 2000)
    ]  # fmt: skip
    assert pool["hot_path"][0]["cpu_capacity_ratio"] == 1.0
    assert pool["failover"]["frozen_member_subscribers"] > 0
    bound = detection["bound"]
    assert bound["freezes"] >= 1 and bound["open"]["p50_ratio"] > 0
    peer = detection["peer"]["rows"]
    assert peer["dispatcher"]["n"] >= 1 and peer["presence"]["p50_ratio"] > 0, peer
    alarms = _result(quick_bench, "false_alarms")["data"]
    assert alarms["relays"]["loss2"]["forwarded"] > 0 and alarms["probes"]["loss2"]["probes"] > 0


@pytest.mark.timeout(450)
def test_quick_bench_generates_the_markdown_report(quick_bench: Path) -> None:
    text = (quick_bench / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks")
    assert "cores" in text and "quick mode" in text
    for title in (
        "Kamailio hot path",
        "Redis load",
        "HTTP API",
        "Probe scale",
        "Detection",
        "Peer",
        "False alarms",
    ):
        assert title in text

"""`python -m lab --quick` end to end: real Redis, Kamailio proxy and presence server, sidecar,
vm-presence instances, `breaker guard`; both timelines, then the files and the headline."""

from __future__ import annotations

import pytest

from tests.lab.conftest import LabRun


@pytest.mark.timeout(200)
def test_lab_writes_results_with_both_runs_second_by_second(lab_run: LabRun) -> None:
    params = lab_run.results["params"]
    duration = params["normal"] + params["freeze"] + params["settle"]
    assert duration <= 30, f"--quick timeline should be short, got {duration} s"
    assert set(lab_run.results["runs"]) == {"baseline", "protected"}
    for mode in ("baseline", "protected"):
        series = lab_run.series(mode)
        assert len(series) == int(duration), f"{mode}: {len(series)} rows for a {duration} s run"
        assert {row["phase"] for row in series} == {"normal", "locked_up", "restarted"}
        assert sum(row["presence_requests"] for row in series) > 0, f"{mode}: no traffic seen"
        assert all(row["calls_started"] > 0 for row in series), f"{mode}: a second without calls"
    assert lab_run.results["machine"]["cores"] >= 1


@pytest.mark.timeout(200)
def test_lab_draws_both_runs_into_a_png(lab_run: LabRun) -> None:
    png = lab_run.directory / "lab.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "lab.png is not a PNG"
    assert len(data) > 20_000, f"lab.png is suspiciously small ({len(data)} bytes)"


@pytest.mark.timeout(200)
def test_lab_prints_the_markdown_summary_table(lab_run: LabRun) -> None:
    assert "| | baseline | protected | bound / goal |" in lab_run.stdout
    assert "lock-up → first local 503" in lab_run.stdout
    assert (lab_run.directory / "summary.md").read_text().count("|") > 40


@pytest.mark.timeout(200)
def test_protected_run_detects_the_lockup_within_its_bound(lab_run: LabRun) -> None:
    protected, baseline = lab_run.headline("protected"), lab_run.headline("baseline")
    bound = protected["detection_bound_s"]
    assert protected["detection_s"] is not None, "no local 503 during the lock-up"
    assert protected["detection_s"] <= 1.25 * bound, (
        f"first local 503 after {protected['detection_s']} s, bound {bound} s"
    )
    assert baseline["detection_s"] is None, "the baseline proxy has no breaker, yet sent a 503"


@pytest.mark.timeout(200)
def test_protected_run_forwards_nothing_to_the_frozen_server_after_detection(
    lab_run: LabRun,
) -> None:
    protected = lab_run.headline("protected")
    assert protected["forwarded_after_detection"] == 0, (
        f"{protected['forwarded_after_detection']} new requests reached the frozen server "
        "after the first local 503"
    )
    baseline = lab_run.headline("baseline")
    assert protected["sent_to_frozen_requests"] < baseline["sent_to_frozen_requests"], (
        f"protected sent {protected['sent_to_frozen_requests']} requests toward the frozen "
        f"server, baseline {baseline['sent_to_frozen_requests']}"
    )


@pytest.mark.timeout(200)
def test_protected_run_never_loads_the_restarted_server_above_capacity(lab_run: LabRun) -> None:
    protected = lab_run.headline("protected")
    capacity = protected["capacity"]
    after = [r for r in lab_run.series("protected") if r["phase"] == "restarted"]
    over = [(r["t"], r["presence_load"]) for r in after if r["presence_load"] > capacity]
    assert not over, f"above capacity {capacity}/s after the restart (t, requests/s): {over}"
    assert protected["peak_after_restart_rps"] <= capacity


@pytest.mark.timeout(200)
def test_protected_run_keeps_one_vm_presence_instance_at_a_time(lab_run: LabRun) -> None:
    protected = lab_run.headline("protected")
    assert protected["max_vm_presence_instances"] <= 1
    outcomes = {c["outcome"] for c in lab_run.results["runs"]["protected"]["cycles"]}
    assert any(o.startswith(("refused", "stopped")) for o in outcomes), (
        f"breaker guard never refused or stopped a run: {outcomes}"
    )
    assert lab_run.headline("baseline")["max_vm_presence_instances"] >= 2, (
        "the baseline should pile up vm-presence instances during the lock-up"
    )


@pytest.mark.timeout(200)
def test_baseline_calls_fail_after_the_restart_because_the_resolver_drops_lookups(
    lab_run: LabRun,
) -> None:
    baseline = lab_run.headline("baseline")
    share = baseline["calls_success_restart"]
    assert share is not None and share <= 0.5, (
        f"expected ≤ 50 % of baseline calls OK in the restart window, saw {share} "
        f"({baseline['calls_ok_restart']}/{baseline['calls_restart']})"
    )
    assert baseline["dns_dropped_carrier"] > 0, "no registrar lookup dropped at the resolver"
    assert baseline["dns_dropped_presence"] > 0, "no vm-presence lookup dropped at the resolver"
    assert baseline["job_dns_timeouts"] > 0, "vm-presence saw no DNS timeout"


@pytest.mark.timeout(200)
def test_protected_run_keeps_calls_up_and_the_resolver_under_its_cap(lab_run: LabRun) -> None:
    protected = lab_run.headline("protected")
    share = protected["calls_success_restart"]
    assert share is not None and share >= 0.99, (
        f"expected ≥ 99 % of protected calls OK in the restart window, saw {share} "
        f"({protected['calls_ok_restart']}/{protected['calls_restart']})"
    )
    dropped = protected["dns_dropped_carrier"] + protected["dns_dropped_presence"]
    assert dropped == 0, f"expected no DNS query dropped in the protected run, saw {dropped}"

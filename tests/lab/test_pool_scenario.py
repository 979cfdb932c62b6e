"""`python -m lab --scenario pool --quick` end to end: three real presence servers, their
counting relays, Kamailio's dispatcher (baseline) and the breaker pool route with a real
sidecar and Redis (protected); both timelines, then the files and the figures."""

from __future__ import annotations

import pytest

from tests.lab.conftest import LabRun


@pytest.mark.timeout(200)
def test_pool_scenario_writes_table_plot_and_both_runs(pool_run: LabRun) -> None:
    assert pool_run.results["scenario"] == "pool"
    assert set(pool_run.results["runs"]) == {"baseline", "protected"}
    assert "| frozen member's subscribers with a 200 during the lock-up |" in pool_run.stdout
    png = (pool_run.directory / "pool.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, "pool.png missing or tiny"
    for mode in ("baseline", "protected"):
        homes = pool_run.results["runs"][mode]["homes"]
        assert len(homes) == 3 and min(homes.values()) > 0, f"{mode}: subscribers' homes {homes}"


@pytest.mark.timeout(200)
def test_pool_breaker_serves_the_frozen_members_subscribers_elsewhere(pool_run: LabRun) -> None:
    protected, baseline = pool_run.headline("protected"), pool_run.headline("baseline")
    assert protected["served_share"] >= 0.9, (
        f"expected ≥ 90 % of the frozen member's subscribers answered 200 by another member "
        f"during the lock-up, saw {protected['served_during_lockup']}/"
        f"{protected['frozen_subscribers']}"
    )
    assert baseline["served_share"] < protected["served_share"], (
        f"dispatcher alone served {baseline['served_share']}, the breaker "
        f"{protected['served_share']}"
    )
    assert protected["failover_s"] is not None
    assert protected["failover_s"] <= 1.5 * protected["failover_bound_s"], (
        f"first failed-over 200 after {protected['failover_s']} s, "
        f"bound {protected['failover_bound_s']} s"
    )


@pytest.mark.timeout(200)
def test_pool_breaker_spares_the_restarted_member_the_recovery_burst(pool_run: LabRun) -> None:
    protected, baseline = pool_run.headline("protected"), pool_run.headline("baseline")
    assert protected["queued_requests"] < baseline["queued_requests"], (
        f"requests queued at the frozen member: protected {protected['queued_requests']}, "
        f"baseline {baseline['queued_requests']}"
    )
    assert protected["peak_after_restart_rps"] < baseline["peak_after_restart_rps"], (
        f"peak answers/s after the restart: protected {protected['peak_after_restart_rps']}, "
        f"baseline {baseline['peak_after_restart_rps']}"
    )
    assert protected["peak_after_restart_rps"] <= protected["capacity"], (
        f"protected: {protected['peak_after_restart_rps']} requests/s reached the restarted "
        f"member, capacity {protected['capacity']}/s"
    )
    assert protected["back_in_rotation_s"] is not None, "the proxy never read it half_open"

"""The shipped alert rules: promtool check and unit tests, metadata, the example route."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "breaker.rules.yml"
UNIT_TESTS = Path(__file__).resolve().parent / "breaker.rules.test.yml"
RUNBOOK = REPO / "docs" / "runbook.md"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.example.yml"
SEVERITIES = {"page", "warning", "info", "none"}


def tool(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed: apt-get install prometheus prometheus-alertmanager")
    return path


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_shipped_rules_pass_promtool_check() -> None:
    result = run([tool("promtool"), "check", "rules", str(RULES)])
    assert result.returncode == 0, f"promtool check rules failed:\n{result.stdout}{result.stderr}"


def test_every_alert_fires_and_stays_quiet_as_the_unit_tests_expect(tmp_path: Path) -> None:
    # Annotations are templated prose; promtool would compare them verbatim. The unit tests
    # pin expressions, `for:` and labels; test_every_alert_has_... below checks annotations.
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    result = run([tool("promtool"), "test", "rules", UNIT_TESTS.name], cwd=tmp_path)
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}{result.stderr}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = [
        case
        for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    missing = []
    for name in (a["alert"] for a in alerts()):
        mine = [c for c in cases if c["alertname"] == name]
        if not any(c["exp_alerts"] for c in mine):
            missing.append(f"{name}: no firing case")
        if not any(not c["exp_alerts"] for c in mine) and name != "BreakerWatchdog":
            missing.append(f"{name}: no quiet case")
    assert not missing, f"expected a firing and a quiet case per alert; missing: {missing}"


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("#")
    }
    problems = []
    for alert in alerts():
        name, labels, notes = alert["alert"], alert.get("labels", {}), alert.get("annotations", {})
        if labels.get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity {labels.get('severity')!r}")
        for key in ("summary", "description", "runbook_url"):
            if not notes.get(key):
                problems.append(f"{name}: no {key}")
        url = notes.get("runbook_url", "")
        path, _, anchor = url.partition("#")
        if path != "docs/runbook.md" or anchor not in headings:
            problems.append(f"{name}: runbook_url {url!r} is not a section of docs/runbook.md")
    assert not problems, f"expected complete alert metadata; problems: {problems}"


def test_alertmanager_example_route_is_valid() -> None:
    result = run([tool("amtool"), "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, f"amtool check-config failed:\n{result.stdout}{result.stderr}"

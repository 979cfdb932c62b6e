"""`python -m lab --quick` run once per test module that asks for it, as a developer runs it
(`make lab`: from the checkout), for either scenario."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.run import run_ok


@dataclass
class LabRun:
    """One `python -m lab` run: its timestamped directory, results.json and stdout."""

    directory: Path
    results: dict[str, Any]
    stdout: str

    def headline(self, mode: str) -> dict[str, Any]:
        return self.results["runs"][mode]["headline"]

    def series(self, mode: str) -> list[dict[str, Any]]:
        return self.results["runs"][mode]["series"]


def run_lab_quick(out: Path, *args: str) -> LabRun:
    """`python -m lab --quick ARGS --out OUT`; its one timestamped directory."""
    done = run_ok([sys.executable, "-m", "lab", *args, "--quick", "--out", str(out)], timeout=170)
    directories = [p for p in out.iterdir() if p.is_dir()]
    assert len(directories) == 1, f"expected one timestamped directory in {out}, saw {directories}"
    directory = directories[0]
    return LabRun(directory, json.loads((directory / "results.json").read_text()), done.stdout)


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> LabRun:
    """The incident scenario."""
    return run_lab_quick(tmp_path_factory.mktemp("lab-results"))


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory: pytest.TempPathFactory) -> LabRun:
    """The pool scenario."""
    return run_lab_quick(tmp_path_factory.mktemp("pool-results"), "--scenario", "pool")

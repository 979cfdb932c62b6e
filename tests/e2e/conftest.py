"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.procs import Child, free_port
from testbed.waiting import wait_until
from tests.support.fleet import start_standin


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[Child, int]]:
    port = free_port()
    counts = tmp_path / "standin.json"
    proc = Child(
        [
            sys.executable,
            "-m",
            "testbed.sip_standin",
            "--port",
            str(port),
            "--count-file",
            str(counts),
        ],
        tmp_path / "standin.log",
    )
    wait_until(counts.exists, 10, what="stand-in to listen")
    try:
        yield proc, port
    finally:
        proc.stop()


@pytest.fixture
def standins(tmp_path: Path) -> Iterator[list[tuple[Child, int]]]:
    """Two SIP stand-ins (SIGSTOP-able), e.g. one that freezes and one that stays healthy."""
    started = [start_standin(tmp_path / f"standin-{i}") for i in range(2)]
    try:
        yield started
    finally:
        for proc, _ in started:
            proc.stop()

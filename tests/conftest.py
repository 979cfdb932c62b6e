from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from testbed.procs import stopping
from testbed.redis import Redis

# CI explores a fixed set of examples so a run is reproducible; developers get fresh ones.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    with stopping(Redis(tmp_path / "redis").start()) as server:
        yield server


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """One redis-server for a module whose tests share a set of processes."""
    with stopping(Redis(tmp_path_factory.mktemp("redis")).start()) as server:
        yield server

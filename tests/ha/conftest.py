"""Fixtures for Redis high availability: Sentinel and Cluster from Debian's packages."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kamailio.conftest import responder  # noqa: F401  (the fixture, shared)
from tests.support.redis_ha import ClusterSet, SentinelSet, cluster_set, sentinel_set


@pytest.fixture(scope="session", autouse=True)
def ha_tools_installed() -> None:
    """A missing binary is a failure, not a skip (scripts/bootstrap.sh installs them)."""
    for tool in ("redis-server", "redis-sentinel", "redis-cli", "kamailio"):
        if shutil.which(tool) is None:
            raise AssertionError(f"{tool} is not installed: run scripts/bootstrap.sh")


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSet]:
    with sentinel_set(tmp_path / "sentinel") as ha:
        yield ha


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterSet]:
    with cluster_set(tmp_path / "cluster") as nodes:
        yield nodes

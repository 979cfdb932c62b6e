from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.harness import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One sidecar per test module; `sidecar` resets it before every test."""
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def sidecar(stack: Stack) -> Stack:
    stack.reset()
    return stack

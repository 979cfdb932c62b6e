"""One exception tree: every public exception lives in breaker/_errors.py, callers import
them from breaker.client, and no document points a user at a private module."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import breaker
import breaker._errors as errors
import breaker.client as client

REPO = Path(__file__).resolve().parents[2]
# Outside the tree on purpose (see the _errors docstring): the pure core's own error.
OUTSIDE = {"breaker.core._machine.InvalidForce"}


def public_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(breaker.__path__, "breaker."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("breaker")
                and not name.startswith("_")
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_public_exception_is_in_the_tree_or_listed_outside_it() -> None:
    stray = {
        name
        for name, cls in public_exceptions().items()
        if cls.__module__ != "breaker._errors"
        and name not in OUTSIDE
        and name != "breaker.probes._framing.FramingError"  # internal: ends as a ProbeResult
    }
    assert not stray, f"expected every public exception in breaker/_errors.py, also saw {stray}"


def test_the_tree_is_drawn_in_the_docstring_and_rooted_at_breaker_error() -> None:
    doc = errors.__doc__ or ""
    for name, cls in vars(errors).items():
        if inspect.isclass(cls) and issubclass(cls, Exception):
            assert name in doc, f"expected {name} drawn in the _errors docstring"
            assert issubclass(cls, errors.BreakerError), f"{name} must be a BreakerError"


def test_breaker_client_reexports_every_error_a_caller_catches() -> None:
    for name, cls in vars(errors).items():
        if inspect.isclass(cls) and issubclass(cls, Exception):
            assert getattr(client, name, None) is cls, f"expected breaker.client.{name}"
            assert name in client.__all__, f"expected {name} in breaker.client.__all__"


def test_no_document_points_users_at_a_private_module() -> None:
    private = re.compile(r"\bbreaker(?:\.[a-z_]+)*\._[a-z]\w*")
    hits = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if "import" in line or "except" in line or "raise" in line.lower():
                hits += [f"{doc.name}:{number}: {m}" for m in private.findall(line)]
    assert not hits, f"expected docs to name public modules only, saw {hits}"

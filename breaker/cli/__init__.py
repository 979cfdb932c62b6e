"""Command-line entry points; each command lives in its own module."""

from breaker.cli import _guard, _ops, _serve  # noqa: F401  (register the commands)
from breaker.cli._app import app, main

__all__ = ["app", "main"]

"""Command-line entry points; each command lives in its own module."""

from breaker.cli import _serve  # noqa: F401  (registers the command)
from breaker.cli._app import app, main

__all__ = ["app", "main"]

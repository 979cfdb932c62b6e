"""Command-line entry points; each command lives in its own module."""

# Registration order is the order `breaker --help` lists the commands in.
from breaker.cli import _guard, _status, _force, _history, _check, _serve  # noqa: F401, I001
from breaker.cli._app import app, main

__all__ = ["app", "main"]

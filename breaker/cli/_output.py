"""What the on-call commands share on output: exit codes, the console, JSON, times."""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.console import Console

EXIT_OK = 0
EXIT_NOT_OK = 1  # status: some breaker not closed; check: not allowed

console = Console(highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


def clock(at: float) -> str:
    """Local time; with the date when it is not today."""
    local = time.localtime(at)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M:%S", local)


def when(at: float) -> str:
    """Local date and time with the zone: for audit lines."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at))

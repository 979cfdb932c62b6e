"""What the lab's helper processes (wire, resolver) share: atomic JSON files, and a stop loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path


def write_json(path: Path, data: object) -> None:
    """Replace `path` atomically, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


async def report_until_stopped(report: Callable[[], None], every: float = 0.2) -> None:
    """Call `report` every `every` seconds until SIGTERM or SIGINT, and once more at the end."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        report()
        try:
            async with asyncio.timeout(every):
                await stop.wait()
        except TimeoutError:
            pass
    report()


def output_options(parser: argparse.ArgumentParser) -> None:
    """--stats FILE (totals, rewritten while running) and --events FILE (timestamps, at exit)."""
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--events", type=Path)


async def serve(
    args: argparse.Namespace, totals: Callable[[], object], events: Callable[[], object]
) -> None:
    """Write the totals to --stats until stopped, then the events to --events if asked."""
    await report_until_stopped(lambda: write_json(args.stats, totals()))
    if args.events:
        write_json(args.events, events())

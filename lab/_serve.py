"""What the lab's helper processes (wire, resolver) share: atomic JSON files, and a stop loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol


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


class _Closable(Protocol):
    def close(self) -> None: ...


async def serve(
    args: argparse.Namespace,
    totals: Callable[[], object],
    events: Callable[[], object],
    closing: Sequence[_Closable | None] = (),
) -> None:
    """Write the totals to --stats until stopped, close what serves, then write the events
    to --events if asked."""
    await report_until_stopped(lambda: write_json(args.stats, totals()))
    for part in closing:
        if part is not None:
            part.close()
    if args.events:
        write_json(args.events, events())


def run_main(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
) -> int:
    """Parse the helper's options (and --stats/--events), run it until stopped; exit status 0."""
    parser.add_argument("--stats", required=True, type=Path, help="totals, rewritten while running")
    parser.add_argument("--events", type=Path, help="timestamps, written at exit")
    asyncio.run(main(parser.parse_args(argv)))
    return 0

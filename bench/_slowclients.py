"""Slow and idle HTTP clients against one port, until killed (for bench.slow_clients).

    python -m bench._slowclients --port 8080 --connections 200 --ready FILE

Half the connections open and say nothing (idle); the other half trickle a request's
headers one byte every `--every` seconds and never finish them (slowloris). Whenever
the server closes one, it is reopened, so the pressure holds for the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

HEADERS = b"GET /v1/breakers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000


async def _client(
    port: int, trickle: bool, every: float, opened: list[int], all_open: asyncio.Event
) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(every)
            continue
        opened[0] += 1
        if opened[0] >= _TOTAL[0]:
            all_open.set()
        try:
            for byte in HEADERS if trickle else b"":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(every)
            await reader.read()  # idle: wait for the server to give up on us
        except OSError:
            pass
        finally:
            writer.close()


_TOTAL = [0]


async def run(port: int, connections: int, every: float, ready: Path) -> None:
    opened = [0]
    _TOTAL[0] = connections
    all_open = asyncio.Event()
    tasks = [
        asyncio.create_task(_client(port, i % 2 == 1, every, opened, all_open))
        for i in range(connections)
    ]
    await all_open.wait()
    await asyncio.to_thread(ready.write_text, str(opened[0]))
    await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slowclients")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--every", type=float, default=1.0, help="seconds between bytes")
    parser.add_argument("--ready", type=Path, required=True)
    args = parser.parse_args(argv)
    coro = run(args.port, args.connections, args.every, args.ready)
    try:
        import uvloop  # it shares a core with the load generator: keep its own cost low
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())

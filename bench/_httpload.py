"""A fixed-rate HTTP/1.1 load generator (wrk2-style), for when wrk has no -R.

    python -m bench._httpload --port 8080 --path /v1/breakers/presence/allow \
        --rate 2000 --duration 10 --connections 64 --out result.json

Requests are scheduled at exact times (i / rate) and latency is measured from the
scheduled time to the last byte of the answer, so a stalled server shows as
latency instead of silently lowering the rate (coordinated omission). Keep-alive
connections, at most one request in flight per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time


async def _connection(
    host: str,
    port: int,
    request: bytes,
    schedule: asyncio.Queue[float | None],
    latencies: list[float],
    errors: list[str],
    statuses: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    try:
        while True:
            due = await schedule.get()
            if due is None:
                return
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies.append(loop.time() - due)
            statuses[status] = statuses.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        errors.append(type(exc).__name__)
    finally:
        writer.close()


async def run(
    host: str, port: int, path: str, rate: float, duration: float, connections: int
) -> dict[str, object]:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    schedule: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors: list[str] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    workers = [
        asyncio.create_task(_connection(host, port, request, schedule, latencies, errors, statuses))
        for _ in range(connections)
    ]
    await asyncio.sleep(0.2)  # connections up
    start = loop.time() + 0.05
    total = int(rate * duration)
    wall = time.time()
    # feed the schedule a little ahead of time so the queue never runs dry
    for i in range(total):
        due = start + i / rate
        ahead = due - loop.time() - 0.05
        if ahead > 0:
            await asyncio.sleep(ahead)
        schedule.put_nowait(due)
    for _ in workers:
        schedule.put_nowait(None)
    try:
        async with asyncio.timeout(duration + 10):
            await asyncio.gather(*workers, return_exceptions=True)
    except TimeoutError:
        errors.append("timeout")
    elapsed = loop.time() - start
    return {
        "started_at": wall,
        "rate_target": rate,
        "sent": total,
        "completed": len(latencies),
        "rate_achieved": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0,
        "elapsed_s": round(elapsed, 3),
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
        "statuses": statuses,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="httpload")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.host != "127.0.0.1":
        parser.error("loopback only")
    coro = run(args.host, args.port, args.path, args.rate, args.duration, args.connections)
    try:
        import uvloop  # the generator's own overhead is part of what it measures: keep it low
    except ImportError:
        data = asyncio.run(coro)
    else:
        data = uvloop.run(coro)
    with open(args.out, "w") as handle:
        json.dump(data, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())

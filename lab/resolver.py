"""The lab's rate-capped DNS in front of dnsmasq (lab/_dns.py), as its own process.

    python -m lab.resolver --upstream 5353 --cap 250 --stats dns.json --events dns-events.json

Binds port 53 on a free address of 127.53.0.0/16 (a resolv.conf names no port), writes
`--stats` (the address and totals) every 200 ms, and every query's time on SIGTERM.
"""

from __future__ import annotations

import argparse
import random
import sys

from lab._dns import LOOPBACK, Policer
from lab._serve import run_main, serve


async def _bind(upstream: int, cap: float) -> Policer:
    last: OSError | None = None
    for _ in range(50):
        address = f"127.53.{random.randint(0, 255)}.{random.randint(2, 254)}"
        try:
            return await Policer((address, 53), (LOOPBACK, upstream), cap).start()
        except OSError as exc:
            last = exc
    raise SystemExit(f"lab resolver: no address of 127.53.0.0/16 free on port 53 ({last})")


async def _main(args: argparse.Namespace) -> None:
    policer = await _bind(args.upstream, args.cap)
    print(f"resolver ready: {policer.listen[0]}:53 -> {args.upstream}, cap {args.cap:g}/s")

    def totals() -> dict[str, object]:
        return {"address": policer.listen[0], "cap": args.cap, **policer.counts.totals()}

    await serve(args, totals, policer.counts.events, [policer])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab-resolver")
    parser.add_argument("--upstream", type=int, required=True, help="dnsmasq's port on 127.0.0.1")
    parser.add_argument("--cap", type=float, required=True, help="queries per second let through")
    return run_main(parser, argv, _main)


if __name__ == "__main__":
    sys.exit(main())

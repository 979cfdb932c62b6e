"""The lab's wire helper: the counting relay in front of the presence server, and the far end.

    python -m lab.wire --listen 5071 --upstream 5070 --far-end 5080 \
        --stats relay.json --events relay-events.json

Runs until SIGTERM; rewrites `--stats` (totals) every 200 ms and writes `--events`
(one timestamp per datagram) on exit.
"""

from __future__ import annotations

import argparse
import sys

from lab._relay import Relay
from lab._serve import run_main, serve
from lab._tcp import Pbx
from lab._uas import FarEnd

LOOPBACK = "127.0.0.1"


async def _main(args: argparse.Namespace) -> None:
    relay = await Relay((LOOPBACK, args.listen), (LOOPBACK, args.upstream)).start()
    far_end = await FarEnd(args.far_end).start() if args.far_end else None
    pbx = await Pbx(args.pbx).start() if args.pbx else None
    print(f"wire ready: relay {args.listen} -> {args.upstream}", flush=True)
    await serve(args, relay.counts.totals, relay.counts.events, [relay, far_end, pbx])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab-wire")
    parser.add_argument("--listen", type=int, required=True, help="relay port the proxy sends to")
    parser.add_argument("--upstream", type=int, required=True, help="the presence server's port")
    parser.add_argument("--far-end", type=int, default=0, help="port of the far-end UA (0: none)")
    parser.add_argument("--pbx", type=int, default=0, help="TCP port of the PBX (0: none)")
    return run_main(parser, argv, _main)


if __name__ == "__main__":
    sys.exit(main())

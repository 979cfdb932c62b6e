"""Redis load from one Kamailio: commands/s at 10, 1,000 and 5,000 SIP requests/s.

One proxy with the breaker route at its default poll interval (BREAKER_POLL_MS=300),
verdict closed, forwarding PUBLISH floods from sipp to a fast stand-in. Before
each rate Redis's statistics are reset (CONFIG RESETSTAT); after it, `INFO
commandstats` says what ran. "sent" counts the commands Kamailio sends (HMGET per
poll, EVAL per poll with something to report, connection setup); "executed" adds
the commands the EVAL script runs inside Redis (HINCRBY x2, HSET, EXPIRE).
"""

from __future__ import annotations

from pathlib import Path

import redis as redis_py

from bench._common import (
    Result,
    fast_responder,
    measured_proxy,
    redis_load_at,
    verdict_writer,
)
from testbed.procs import LOOPBACK
from testbed.redis import Redis

RATES = (10, 1000, 5000)
SENT = ("hmget", "eval", "evalsha", "select", "ping", "auth", "hello", "client")
FLAT = 1.25  # "flat": the highest rate costs at most this much more than the lowest


TITLE = "Redis load from one Kamailio vs. SIP request rate"
GOAL_TEXT = (
    f"flat: commands/s independent of the SIP rate (highest rate within {FLAT}x of the lowest)"
)


def run(result: Result, workdir: Path) -> Result:
    quick = result.quick
    seconds = 3 if quick else 10
    redis = Redis(workdir / "redis").start()
    client = redis_py.Redis(host=LOOPBACK, port=redis.port, decode_responses=True)
    writer = verdict_writer(redis.port)
    rows = []
    try:
        with fast_responder(workdir / "responder") as responder:
            proxy = measured_proxy(workdir, responder.port, redis.port, BREAKER_POLL_MS=300).start()
            try:
                epoch = writer.set("closed")
                proxy.wait_verdict(state="closed", epoch=epoch)
                rows = [
                    redis_load_at(client, proxy.port, rate, seconds, workdir, SENT)
                    for rate in RATES
                ]
            finally:
                proxy.stop()
    finally:
        writer.close()
        client.close()
        redis.stop()
    low = float(rows[0]["commands_sent_per_s"])  # type: ignore[arg-type]
    high = float(rows[-1]["commands_sent_per_s"])  # type: ignore[arg-type]
    ratio = high / low if low else float("inf")
    result.data = {"poll_ms": 300, "rates": rows, "high_to_low_ratio": round(ratio, 3)}
    result.met = ratio <= FLAT
    result.summary = (
        ", ".join(
            f"{r['sip_rate_achieved']:.0f} req/s → {r['commands_sent_per_s']:.2f} commands/s"
            for r in rows
        )
        + f" (x{ratio:.2f} from lowest to highest rate)"
    )
    result.notes.append(
        "expected: one HMGET per poll plus one EVAL per poll in which anything was forwarded, "
        "i.e. ≤ 2 x 1000/300 = 6.7 commands/s sent, whatever the SIP rate"
    )
    return result

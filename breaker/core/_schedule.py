"""When to send the next probe, and how long a lock-up can take to open the breaker.

Pure: times are passed in. The service's probe loop asks `next_probe_at` after
every probe; the config, the API, the benchmarks and the lab ask
`detection_bound`.

    steady state      one probe per `interval`
    after a failure   the next probes at `fast_interval` (HAProxy's `fastinter`)
                      until the breaker opens or a success clears the count

`fall` is unchanged, so one lost datagram still cannot open the breaker; only the
*confirmation* of a suspected lock-up is faster. Probes never overlap: a probe
that ran past its slot is followed by the next one at once (confirming) or on
the next slot of the cadence (steady state, e.g. after a suspended host).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from breaker.core._machine import Breaker, Policy, State


def confirming(breaker: Breaker, policy: Policy) -> bool:
    """Closed with some, but not yet `fall`, consecutive failures: a lock-up is suspected."""
    return breaker.computed is State.CLOSED and 0 < breaker.failures < policy.fall


def probe_gap(breaker: Breaker, policy: Policy) -> float:
    """Seconds from one probe's send to the next one's: `fast_interval` while confirming."""
    return policy.fast_interval if confirming(breaker, policy) else policy.interval


def next_probe_at(sent_at: float, now: float, breaker: Breaker, policy: Policy) -> float:
    """When to send the next probe, given the last one went out at `sent_at` and is done by `now`.

    `breaker` is the state after that probe's result. The slot is `sent_at + gap`;
    if it has passed, a confirmation goes out at once, while a steady-state probe
    waits for the next slot on its own cadence (never a burst).
    """
    gap = probe_gap(breaker, policy)
    due = sent_at + gap
    if due >= now:
        return due
    if confirming(breaker, policy):
        return now
    return now + gap - (now - due) % gap


def detection_bound(interval: float, fast_interval: float, timeout: float, fall: int) -> float:
    """Worst case from lock-up to open.

    The first failing probe goes out within one `interval` of the lock-up; each
    of the `fall - 1` confirmations follows the previous one by `fast_interval`,
    or by `timeout` when that is longer (probes never overlap); the last one
    fails `timeout` after it was sent.
    """
    return interval + (fall - 1) * max(fast_interval, timeout) + timeout


def passive_read_period(policy: Policy) -> float:
    """How often to read the proxies' passive counters: twice per confirmation gap, so a
    failing window reaches the machine well before the next steady probe."""
    return min(policy.interval, policy.fast_interval) / 2


def passive_window_closed(forwarded: int, age: float, min_requests: int, interval: float) -> bool:
    """A passive window is judged once it holds `min_requests` forwarded requests (enough
    evidence), or after one `interval` whatever it holds (too little: not a failure)."""
    return forwarded >= min_requests or age >= interval


RTT_SAMPLES = 100  # answered probes the adaptive timeout looks back on
RTT_MIN_SAMPLES = 10  # below this, the configured timeout
RTT_PERCENTILE = 99
RTT_FACTOR = 4.0


def adaptive_timeout(rtts: Sequence[float], timeout: float, floor: float) -> float:
    """How long the next probe waits for an answer: like TCP's RTO, from measured RTTs.

    `RTT_FACTOR` x the 99th percentile of the recent round-trip times, never below
    `floor` and never above the configured `timeout` (which stays the worst case,
    so the detection bound holds). Too few samples: `timeout`.
    """
    if len(rtts) < RTT_MIN_SAMPLES or floor >= timeout:
        return timeout
    ordered = sorted(rtts)
    rank = max(0, math.ceil(RTT_PERCENTILE / 100 * len(ordered)) - 1)
    return max(floor, min(timeout, RTT_FACTOR * ordered[rank]))

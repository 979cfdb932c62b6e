"""Which requests a half-open breaker lets through."""

from __future__ import annotations

import random
import zlib


def admitted(admit: int, key: str | None = None, rand: random.Random | None = None) -> bool:
    """True if a request falls inside the admitted share.

    With a key (an AoR), the answer is stable: crc32(key) % 100 < admit, so the same
    subscriptions stay admitted while the share grows instead of a fresh random set
    per request. Without a key, a coin weighted by `admit`.
    """
    if admit >= 100:
        return True
    if admit <= 0:
        return False
    if key is not None:
        return zlib.crc32(key.encode("utf-8")) % 100 < admit
    return (rand or random).random() * 100 < admit


def passive_failure(forwarded: int, failed: int, ratio: float, min_requests: int) -> bool:
    """Whether proxies' own failures in one interval amount to a failed probe."""
    if forwarded < min_requests or forwarded <= 0:
        return False
    return failed / forwarded > ratio

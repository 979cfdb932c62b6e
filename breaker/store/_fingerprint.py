"""The probe settings a vote carries, so observers that disagree on them say so.

Two observers of one breaker with different probe settings would vote on different
questions (a 0.2 s interval opens sooner than a 1 s one); the vote script reports
a live vote whose fingerprint differs, and the sidecar names each difference once.
"""

from __future__ import annotations

from breaker._config import BreakerConfig


def probe_settings(cfg: BreakerConfig) -> str:
    """What every observer of one breaker must share for their votes to mean the same."""
    return ",".join(
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in (
            ("interval", cfg.interval),
            ("timeout", cfg.timeout),
            ("slow", cfg.slow_threshold),
            ("fast_interval", cfg.confirm_interval),
            ("adaptive_timeout", cfg.adaptive_timeout),
            ("fall", cfg.fall),
            ("rise", cfg.rise),
            ("method", cfg.method),
            ("slow_start", cfg.slow_start),
            ("initial_admit", cfg.initial_admit),
        )
    )


def settings_differences(mine: str, theirs: str) -> list[str]:
    """`interval 0.2 here, 0.5 there` for each key whose value differs."""
    a = dict(kv.partition("=")[::2] for kv in mine.split(","))
    b = dict(kv.partition("=")[::2] for kv in theirs.split(","))
    return [
        f"{k} {a.get(k, '?')} here, {b.get(k, '?')} there"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]

"""Durations as operators type them: `90s`, `30m`, `2h`, `1d`, `1h30m`, or plain seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_PLAIN = re.compile(r"\d+(?:\.\d+)?")

HINT = "use e.g. 90s, 30m, 2h, 1h30m or plain seconds"


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with a one-line hint when it is not a duration."""
    raw = text.strip().lower()
    if _PLAIN.fullmatch(raw):
        seconds = float(raw)
    else:
        parts = _PART.findall(raw)
        if not parts or "".join(n + u for n, u in parts) != raw:
            raise ValueError(f"{text!r} is not a duration; {HINT}")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero; {HINT}")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form, largest units first: `45s`, `29m`, `2h5m`, `3d4h`."""
    seconds = max(0.0, seconds)
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"

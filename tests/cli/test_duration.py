"""Durations as operators type them on the command line."""

from __future__ import annotations

import pytest

from breaker._duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("45", 45.0),
        ("2.5", 2.5),
        (" 10S ", 10.0),
    ],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "", "m", "-3s", "0", "0s", "1h 30m", "s30", "inf", "nan"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"use e\.g\. 90s, 30m, 2h"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0.4s"), (45, "45s"), (90, "1m30s"), (1800, "30m"), (7500, "2h5m"), (90000, "1d1h")],
)
def test_durations_format_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text

"""Which requests a half-open breaker lets through, and when passive failures count."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breaker.core import admitted, passive_failure

KEYS = [f"sip:user{i}@presence.example.com" for i in range(10_000)]


def share(admit: int) -> float:
    return sum(admitted(admit, key) for key in KEYS) / len(KEYS) * 100


# ---------------------------------------------------------------- admitted, by key


def test_admitted_is_stable_per_key() -> None:
    for admit in (1, 10, 37, 50, 99):
        first = [admitted(admit, key) for key in KEYS[:500]]
        again = [admitted(admit, key) for key in KEYS[:500]]
        assert first == again, f"expected the same answers for the same keys at admit {admit}"


@pytest.mark.parametrize("admit", [1, 5, 10, 25, 50, 75, 90, 99])
def test_admitted_share_over_distinct_keys_matches_admit(admit: int) -> None:
    seen = share(admit)
    assert abs(seen - admit) <= 2.0, (
        f"expected {admit} % ± 2 of 10,000 keys admitted, saw {seen:.2f} %"
    )


def test_admitted_is_monotone_in_admit() -> None:
    for key in KEYS[:2000]:
        answers = [admitted(a, key) for a in range(0, 101)]
        first = answers.index(True)
        assert all(answers[first:]), (
            f"expected {key!r} to stay admitted from admit {first} up, saw {answers}"
        )


def test_admit_0_never_admits() -> None:
    assert not any(admitted(0, key) for key in KEYS), "expected no key admitted at 0"


def test_admit_100_always_admits() -> None:
    assert all(admitted(100, key) for key in KEYS), "expected every key admitted at 100"


def test_admit_out_of_range_is_clamped() -> None:
    assert not admitted(-5, "sip:a@b"), "expected a negative admit to admit nothing"
    assert admitted(150, "sip:a@b"), "expected an admit above 100 to admit everything"


def test_admitted_follows_the_documented_crc32_rule() -> None:
    """docs/redis-contract.md: admitted when crc32(key) % 100 < admit."""
    for key in [*KEYS[:300], "", "sip:ünïcode@example.com"]:
        bucket = zlib.crc32(key.encode("utf-8")) % 100
        for admit in (1, bucket, bucket + 1, 99):
            expected = bucket < admit
            assert admitted(admit, key) is expected, (
                f"expected {expected} for {key!r} (bucket {bucket}) at admit {admit}"
            )


def test_the_empty_key_is_a_key() -> None:
    assert admitted(1, ""), "expected the empty key (crc32 0) to be admitted at admit 1"


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=40), a=st.integers(0, 100), b=st.integers(0, 100))
def test_admitted_by_key_is_monotone_for_any_key(key: str, a: int, b: int) -> None:
    low, high = sorted((a, b))
    if admitted(low, key):
        assert admitted(high, key), f"expected {key!r} admitted at {low} to be admitted at {high}"


# ---------------------------------------------------------------- admitted, without a key


@pytest.mark.parametrize("admit", [10, 50, 90])
def test_admitted_without_key_is_a_weighted_coin(admit: int) -> None:
    rng = random.Random(1234)
    seen = sum(admitted(admit, None, rng) for _ in range(10_000)) / 100
    assert abs(seen - admit) <= 2.0, f"expected {admit} % ± 2 admitted, saw {seen:.2f} %"


def test_admitted_without_key_uses_the_given_rand() -> None:
    class Fixed(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def random(self) -> float:
            return self.value

    assert admitted(50, None, Fixed(0.499)), "expected 49.9 < 50 to be admitted"
    assert not admitted(50, None, Fixed(0.5)), "expected 50.0 < 50 to be refused"


def test_admitted_without_key_at_0_and_100() -> None:
    rng = random.Random(7)
    assert not any(admitted(0, None, rng) for _ in range(1000)), "expected none admitted at 0"
    assert all(admitted(100, None, rng) for _ in range(1000)), "expected all admitted at 100"


# ---------------------------------------------------------------- passive_failure


def test_passive_failure_needs_min_requests() -> None:
    assert not passive_failure(19, 19, 0.5, 20), "expected 19 < min_requests 20 not to count"


def test_passive_failure_at_min_requests_counts() -> None:
    assert passive_failure(20, 11, 0.5, 20), "expected 11/20 > 0.5 at min_requests to count"


def test_passive_failure_needs_the_ratio_exceeded() -> None:
    assert not passive_failure(100, 50, 0.5, 20), "expected exactly 0.5 not to exceed 0.5"
    assert passive_failure(100, 51, 0.5, 20), "expected 0.51 to exceed 0.5"


def test_passive_failure_with_no_failures_is_not_a_failure() -> None:
    assert not passive_failure(1000, 0, 0.01, 20), "expected 0 failures not to count"


def test_passive_failure_with_nothing_forwarded_is_not_a_failure() -> None:
    assert not passive_failure(0, 0, 0.5, 0), "expected 0 forwarded not to count (nor divide by 0)"
    assert not passive_failure(0, 3, 0.5, 0), "expected 0 forwarded not to count"


def test_passive_failure_with_negative_deltas_is_not_a_failure() -> None:
    """Counters restart from 0 when Kamailio's hash expires: deltas can go negative."""
    assert not passive_failure(-50, -10, 0.1, 20), "expected negative deltas not to count"


def test_passive_failure_ratio_1_never_fires() -> None:
    assert not passive_failure(100, 100, 1.0, 20), "expected 100 % not to exceed a ratio of 1"


@settings(max_examples=300, deadline=None)
@given(
    forwarded=st.integers(-10, 10_000),
    failed=st.integers(0, 10_000),
    ratio=st.floats(0.001, 1.0),
    min_requests=st.integers(1, 1000),
)
def test_passive_failure_is_exactly_the_rule(
    forwarded: int, failed: int, ratio: float, min_requests: int
) -> None:
    expected = forwarded >= min_requests and failed / forwarded > ratio
    seen = passive_failure(forwarded, failed, ratio, min_requests)
    assert seen is expected, f"expected {expected} for {failed}/{forwarded} vs {ratio}, saw {seen}"

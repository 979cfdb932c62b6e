"""Waiting on conditions inside async tests: testbed's `eventually`."""

from __future__ import annotations

from testbed.waiting import eventually

__all__ = ["eventually"]

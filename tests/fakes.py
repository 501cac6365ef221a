"""Test doubles shared by the client and shell tests."""

from __future__ import annotations

__all__ = ["FakeTime"]


class FakeTime:
    """A monotonic clock that only moves when the shell sleeps; records each sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

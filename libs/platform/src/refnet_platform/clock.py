"""The one way refnet tells the time. A ``Clock`` is a callable returning an aware UTC datetime; services take
one at their bootstrap (``system_clock`` unless a test or a replay passes another) and hand it to the handlers
that need "now", so no handler reads the wall clock itself and a test can move time instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until it is told to move: ``clock.now = ...`` or ``clock.advance(minutes=5)``."""

    def __init__(self, now: datetime) -> None:
        self.now = _aware(now)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        """Moves the clock on by ``delta`` or by timedelta's keyword parts (hours=1, minutes=30); returns the new
        time."""
        self.now += (delta or timedelta()) + timedelta(**parts)
        return self.now

    def set(self, now: datetime) -> None:
        self.now = _aware(now)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("a clock tells aware UTC times: give a datetime with tzinfo")
    return now.astimezone(UTC)

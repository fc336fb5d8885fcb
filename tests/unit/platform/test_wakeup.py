"""A timer's wakeup: work made due wakes the timer before its interval; routine work no sooner than its spacing
after the last run began (many made due in that time are done in one run), an urgent one at once."""

from __future__ import annotations

import asyncio
import threading
import time

from refnet_platform.timers import Wakeup

SPACING_S = 0.3
INTERVAL_S = 5.0


async def waited(wakeup: Wakeup, set_after_s: float, urgent: bool = False) -> float:
    """Seconds one wait took, with set() called from another thread `set_after_s` into it."""
    setter = threading.Timer(set_after_s, lambda: wakeup.set(urgent=urgent))
    started = time.monotonic()
    setter.start()
    try:
        await wakeup.wait(INTERVAL_S, SPACING_S)
    finally:
        setter.cancel()
    return time.monotonic() - started


async def test_routine_work_waits_out_the_spacing_and_urgent_work_does_not() -> None:
    wakeup = Wakeup()
    wakeup.set()  # before the timer first waited: its first wait returns at once
    assert await waited(wakeup, INTERVAL_S * 2) < SPACING_S / 3
    # Set just after the run began: the next run begins a spacing after the last.
    assert SPACING_S * 0.8 < await waited(wakeup, 0.01) < INTERVAL_S / 2
    # Urgent: at once.
    assert await waited(wakeup, 0.01, urgent=True) < SPACING_S / 2
    # Routine, but the last run began longer ago than the spacing: at once.
    await asyncio.sleep(SPACING_S)
    assert await waited(wakeup, 0.01) < SPACING_S / 2


async def test_without_a_set_the_wait_lasts_its_interval() -> None:
    wakeup = Wakeup()
    started = time.monotonic()
    await wakeup.wait(0.2, SPACING_S)
    assert 0.15 < time.monotonic() - started < 1.0

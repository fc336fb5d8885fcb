"""A worker's timers: work run every interval from its own tables (so a restart loses no deadline), or at once
when a handler has just made some due."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refnet.consumer")


class Wakeup:
    """Runs a Tick before its interval is up: a handler that has just made work due calls set() (from any
    thread), so that work does not wait for the timer; set(urgent=True) also cuts short the Tick's spacing."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._urgent = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early = threading.Event()  # set() before the timer first waited
        self._returned_at = -float("inf")

    def set(self, urgent: bool = False) -> None:
        if self._loop is None:
            self._early.set()
        else:
            self._loop.call_soon_threadsafe(self._event.set)
            if urgent:
                self._loop.call_soon_threadsafe(self._urgent.set)

    async def wait(self, timeout: float, spacing_s: float = 0.0) -> None:
        """Returns once set() was called since the last wait, or after `timeout` seconds; after a set() that was
        not urgent, no sooner than `spacing_s` after the last wait returned (an urgent set() meanwhile: at once)."""
        self._loop = asyncio.get_running_loop()
        if self._early.is_set():
            self._early.clear()
            self._event.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        left = self._returned_at + spacing_s - self._loop.time()
        if self._event.is_set() and left > 0 and not self._urgent.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), left)
        self._event.clear()
        self._urgent.clear()
        self._returned_at = self._loop.time()


@dataclass(frozen=True)
class Tick:
    """A timer: every `interval_s` the worker runs `run` (e.g. expire what is overdue), or at once after
    `wakeup` is set (a set that is not urgent: no sooner than `spacing_s` after the last run began, so that work
    coming steadily is done a run for many, not a run each). Deadlines live in the service's own tables, so a
    restart loses none."""

    name: str
    interval_s: float
    run: Callable[[], object]
    wakeup: Wakeup | None = None
    spacing_s: float = 0.0


async def run_tick(tick: Tick, stopping: asyncio.Event) -> None:
    """Runs the timer's work in a thread until `stopping` is set; a failing run is logged and tried again."""
    while not stopping.is_set():
        try:
            with tracer.start_as_current_span(f"timer {tick.name}"):
                await asyncio.to_thread(tick.run)
        except Exception:
            log.exception("timer failed", extra={"fields": {"timer": tick.name}})
        if tick.wakeup is None:
            await asyncio.sleep(tick.interval_s)
        else:
            await tick.wakeup.wait(tick.interval_s, tick.spacing_s)

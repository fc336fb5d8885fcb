"""intake-api's admission: how a request's handler reaches the database. Handlers run on a thread pool of their
own, at most `slots` normal calls at once; the pool keeps `reserved` threads more that only emergencies may use.
Beyond that, calls queue, every emergency ahead of every normal call (first come, first served within each).
So under a flood of normal registrations an emergency waits for no normal call: it runs at once on a reserved
thread, or, if other emergencies hold those, next after them.

Emergency, as for a case (model.Case.emergency): a registration or risk update naming immediate danger or high
risk. Everything else is normal. (The token check before a handler runs is the platform's, on the event loop's
default pool; handlers no longer share that pool, so it stays free for the checks.)"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from intake.domain import commands
from refnet_platform.vocabulary import RiskLevel

T = TypeVar("T")

EMERGENCY, NORMAL = 0, 1
# Handlers mostly wait on the database: on PostgreSQL a few threads keep it busy; more only queue inside it, where
# an emergency could not pass them. SQLite writes one at a time and the GIL runs one handler's Python at a time, so
# there a second normal thread only waits for the write lock (and costs a thread switch per case): one normal call
# runs at once, and an emergency waits for that one only.
NORMAL_SLOTS = 4
SQLITE_NORMAL_SLOTS = 1
EMERGENCY_SLOTS = 1


def is_emergency(command: object) -> bool:
    return isinstance(command, commands.RegisterCase | commands.UpdateRisk) and (
        command.immediate_danger or command.risk_level is RiskLevel.HIGH)


class Admission:
    def __init__(self, slots: int = NORMAL_SLOTS, reserved: int = EMERGENCY_SLOTS) -> None:
        self._limits = {EMERGENCY: slots + reserved, NORMAL: slots}
        self._running = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # (priority, arrival, granted)
        self._arrivals = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=slots + reserved, thread_name_prefix="intake-handler")

    async def run(self, handle: Callable[[Any], T], command: object) -> T:
        """`handle(command)` on the pool once admitted (an emergency before any normal call waiting)."""
        await self._enter(EMERGENCY if is_emergency(command) else NORMAL)
        done = asyncio.get_running_loop().run_in_executor(self._pool, contextvars.copy_context().run, handle, command)
        # The slot is freed when the handler has finished, not when its caller gave up waiting for it.
        done.add_done_callback(lambda _: self._leave())
        return await asyncio.shield(done)

    async def _enter(self, priority: int) -> None:
        while self._waiting and self._waiting[0][2].done():  # callers that gave up while queued
            heapq.heappop(self._waiting)
        # Admitted at once only if nobody of this priority or higher is queued (no overtaking within a lane).
        if self._running < self._limits[priority] and not (self._waiting and self._waiting[0][0] <= priority):
            self._running += 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._leave()  # admitted just as the caller gave up: the slot passes on
            raise

    def _leave(self) -> None:
        self._running -= 1
        while self._waiting:
            priority, _, granted = self._waiting[0]
            if granted.done():  # its caller gave up while queued
                heapq.heappop(self._waiting)
                continue
            if self._running >= self._limits[priority]:
                return
            heapq.heappop(self._waiting)
            self._running += 1
            granted.set_result(None)

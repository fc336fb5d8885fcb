"""intake-api's admission: how a request's handler reaches the database. Handlers run on a thread pool of their
own, at most `slots` normal calls at once; the pool keeps `reserved` threads more that only emergencies may use.
Beyond that, calls queue, every emergency ahead of every normal call (first come, first served within each).
So under a flood of normal registrations an emergency waits for no normal call: it runs at once on a reserved
thread, or, if other emergencies hold those, next after them.

Emergency, as for a case (model.Case.emergency): a registration or risk update naming immediate danger or high
risk. Everything else is normal. (The token check before a handler runs is the platform's, on the event loop's
default pool; handlers no longer share that pool, so it stays free for the checks.)

Normal registrations that queue together are written together (Batches): one transaction, one commit and one
turn on the handler thread for up to BATCH_MOST of them, about a third less CPU a case than one by one. A batch ends
early when an emergency comes: the emergency waits for the registration being written and the batch's commit only.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, TypeVar

from sqlalchemy import Engine

from intake.domain import commands
from refnet_platform.errors import DomainError
from refnet_platform.unit_of_work import BatchTransaction
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
# Registrations written in one transaction at most: 8 took a registration's handler CPU from 1.2 to 0.87 ms (16:
# 0.79).
BATCH_MOST = 8


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
        # Emergencies queued or running: a batch of normal registrations ends early while there are any (Batches).
        self.emergencies = 0

    async def run(self, handle: Callable[[Any], T], command: object) -> T:
        """`handle(command)` on the pool once admitted (an emergency before any normal call waiting)."""
        priority = EMERGENCY if is_emergency(command) else NORMAL
        if priority == EMERGENCY:
            self.emergencies += 1
        try:
            await self._enter(priority)
            done = asyncio.get_running_loop().run_in_executor(self._pool, contextvars.copy_context().run, handle,
                                                              command)
        except BaseException:
            if priority == EMERGENCY:
                self.emergencies -= 1
            raise
        # The slot is freed when the handler has finished, not when its caller gave up waiting for it.
        done.add_done_callback(lambda _: self._leave(priority))
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

    def _leave(self, priority: int | None = None) -> None:
        self._running -= 1
        if priority == EMERGENCY:
            self.emergencies -= 1
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


# What a command came to: its result, or what it raised.
Outcome = tuple[Any, BaseException | None]


class Batches:
    """Normal registrations on their way to the database: those that queue while one is written go together, in one
    transaction (the platform's BatchTransaction: each registration's unit of work in it, its outbox rows written at
    the batch's commit), at most `most` at a time and `lanes` batches at once (the admission's normal slots). A
    registration alone is a batch of one, handled as before. One refused before it wrote anything is answered so
    and the others go on; if anything else in a batch fails (a repeated request id, a lost write), nothing of it was
    committed and each of its registrations is handled again alone, so each caller gets what it would have got
    without batching. Each registration runs in its own call's context
    (caller, trace, causation: what its log lines and outbox rows carry)."""

    def __init__(self, admission: Admission, engine: Engine, handle: Callable[[Any], Any],
                 writing: threading.RLock | None = None, most: int = BATCH_MOST, lanes: int = 1) -> None:
        self.admission = admission
        self.engine = engine
        self.handle = handle
        self.writing = writing  # held for the whole batch; its units of work take it again (re-entrant)
        self.most = most
        self.lanes = lanes
        self._queued: list[tuple[object, contextvars.Context, asyncio.Future[Any]]] = []
        self._draining: set[asyncio.Task[None]] = set()  # kept: the loop holds only weak references to tasks

    async def run(self, command: object) -> Any:
        """`handle(command)`, written with the registrations queued beside it."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((command, contextvars.copy_context(), done))
        if len(self._draining) < self.lanes:
            task = asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())  # no call's own
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        return await done

    async def _drain(self) -> None:
        while self._queued:
            taken = [item for item in self._queued[:self.most] if not item[2].done()]  # callers that gave up: not run
            del self._queued[:self.most]
            if not taken:
                continue
            try:
                outcomes = await self.admission.run(self._write, [(command, ctx) for command, ctx, _ in taken])
            except BaseException as exc:  # not run (the server stopping): each caller is told
                for _, _, done in taken:
                    if not done.done():
                        done.cancel() if isinstance(exc, asyncio.CancelledError) else done.set_exception(exc)
                raise
            for (_, _, done), (result, error) in zip(taken, outcomes, strict=False):
                if not done.done():
                    done.set_exception(error) if error is not None else done.set_result(result)
            self._queued[:0] = taken[len(outcomes):]  # left for an emergency: first of the next batch

    def _write(self, batch: list[tuple[object, contextvars.Context]]) -> list[Outcome]:
        """On the handler thread: the batch in one transaction, else each alone. The outcomes of the first so many:
        a batch ends early when an emergency comes (the others are not run)."""
        if len(batch) > 1:
            try:
                outcomes: list[Outcome] = []
                with self.writing or nullcontext(), BatchTransaction(self.engine) as transaction:
                    for command, ctx in batch:
                        if outcomes and self.admission.emergencies:
                            break  # an emergency waits for the database: it goes next, the rest after it
                        outcomes.append(_refused_or(ctx, self.handle, command))
                    transaction.commit()  # BatchSpoiled if one was refused after it began writing
                return outcomes
            except Exception:  # nothing of it was committed: each is handled alone below, with its own error
                pass
        return [_alone(ctx, self.handle, command) for command, ctx in batch]


def _in_context(ctx: contextvars.Context, handle: Callable[[Any], Any], command: object) -> Any:
    """`handle(command)` seeing its call's context variables as well as this thread's own (the batch transaction)."""
    def run() -> Any:
        for var, value in ctx.items():
            var.set(value)
        return handle(command)

    return contextvars.copy_context().run(run)


def _refused_or(ctx: contextvars.Context, handle: Callable[[Any], Any], command: object) -> Outcome:
    """In a batch: a registration refused before it wrote anything (invalid, outside the caller's provinces) is
    answered so and the others go on; one refused once it had begun writing spoils the batch."""
    try:
        return _in_context(ctx, handle, command), None
    except DomainError as exc:
        return None, exc


def _alone(ctx: contextvars.Context, handle: Callable[[Any], Any], command: object) -> Outcome:
    try:
        return ctx.run(handle, command), None
    except Exception as exc:
        return None, exc

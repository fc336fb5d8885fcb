"""What the in-process handler benches share (referral_routing, intake_recording, notifications_handling): records
handled as the worker handles them (one transaction each, or a batch transaction per N), timed in wall clock and
CPU, and the SQL statements they sent counted."""

from __future__ import annotations

import argparse
import contextvars
import cProfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event

from refnet_platform.context import Causation, Delivery, current_causation, current_delivery
from refnet_platform.envelope import new_event_id
from refnet_platform.unit_of_work import BatchTransaction

M = TypeVar("M")


def run_in_batches(engine: Engine, handle: Callable[[M], Any], messages: Sequence[M], batch: int,
                   consumer: str | None = None) -> list[Any]:
    """Each message handled in a copy of the context, `batch` per transaction; their results in order. With
    `consumer`, each message is a delivery of a new event id to that consumer (its inbox key, set here as the
    consumer sets it) and a batch's inbox rows are looked up in one query before it, as the consumer does;
    without, `handle` sets its own delivery."""
    results: list[Any] = []

    def delivered(event_id: str, message: M) -> Any:
        if consumer is not None:
            current_causation.set(Causation(event_id, event_id))
            current_delivery.set(Delivery(consumer, event_id))
        return handle(message)

    for start in range(0, len(messages), batch):
        group = [(new_event_id(), message) for message in messages[start:start + batch]]
        if batch == 1:
            results.append(contextvars.copy_context().run(delivered, *group[0]))
            continue
        with BatchTransaction(engine) as transaction:
            if consumer is not None:
                transaction.look_up(consumer, [event_id for event_id, _ in group])
            results.extend(contextvars.copy_context().run(delivered, *item) for item in group)
            transaction.commit()
    return results


@dataclass(frozen=True)
class Measured:
    elapsed_s: float
    cpu_s: float
    statements: int
    results: list[Any]


def measured(engine: Engine, call: Callable[[], list[Any]], profile: Path | None = None) -> Measured:
    """Runs `call` once, counting the statements it sends on `engine`; with `profile`, under cProfile (saved there)."""
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    profiler = cProfile.Profile() if profile else None
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        results = call() if profiler is None else profiler.runcall(call)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        event.remove(engine, "before_cursor_execute", count)
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    return Measured(elapsed, cpu, statements, results)


def worker_bench_args(prog: str, description: str | None, cases: int, argv: list[str] | None) -> argparse.Namespace:
    """The options of a bench that runs a worker's handling of `--cases` cases on SQLite (and PostgreSQL)."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{prog}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=cases)
    parser.add_argument("--warmup", type=int, default=cases // 10)
    parser.add_argument("--batch", type=int, default=1, help="records per transaction (default 1)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too (a throwaway cluster)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the SQLite run here")
    return parser.parse_args(argv)

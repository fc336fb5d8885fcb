"""Reservations per second through shelter's handlers and unit of work, on SQLite and PostgreSQL side by side.

Each reservation is what the worker does for one ReserveBed: one transaction that holds a bed with a
conditional UPDATE, records the reservation and writes BedReserved + CapacityChanged to the outbox.
Concurrent threads share one engine, as the worker's and the api's threads do. Two shapes:
  spread   - the reservations spread over 50 shelters (little contention);
  one pool - every thread reserves in the same pool (each waits for the row lock: the worst case).

    .venv/bin/python bench/shelter_reservations.py [--reservations 2000] [--threads 1,4,8]
        [--postgres-url postgresql://...]   (default: a throwaway local PostgreSQL cluster)
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from refnet_platform.bus import MessageBus
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate
from refnet_platform.vocabulary import TargetGroup
from shelter.bootstrap import bootstrap
from shelter.config import MIGRATIONS, Settings
from shelter.domain import commands
from shelter.domain.model import BedPool, ReservationStatus, Shelter

SHELTERS = 50


def prepare(url: str) -> tuple[MessageBus, Engine]:
    settings = Settings(DATABASE_URL=url)
    url, schema = settings.database
    engine = make_engine(url, schema)
    migrate(engine, MIGRATIONS, schema)
    now = datetime.now(UTC)
    bus = bootstrap(settings, engine)
    bus.handle(commands.LoadShelters([
        Shelter(f"bench-{i}", f"Bench shelter {i}", "22", "06673",
                pools=(BedPool(f"bench-{i}", TargetGroup.WOMEN, 1_000_000, 0, 0, now),))
        for i in range(SHELTERS)]))
    return bus, engine


def run(bus: MessageBus, reservations: int, threads: int, shelters: int) -> float:
    """Seconds for `threads` threads to make `reservations` reservations over the first `shelters` shelters."""
    run_id = uuid.uuid4().hex[:8]
    hold = datetime.now(UTC) + timedelta(hours=1)
    start = threading.Barrier(threads + 1)
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        start.wait()
        try:
            for n in range(worker, reservations, threads):
                referral = f"{run_id}-{n}"
                held = bus.handle(commands.ReserveBed(referral, "case", f"bench-{n % shelters}", "22",
                                                      TargetGroup.WOMEN, hold))
                assert held.status is ReservationStatus.HELD, held
        except BaseException as exc:
            failures.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    # Give the beds back so every run starts from the same counts.
    bus.handle(commands.ExpireHolds(now=datetime.now(UTC) + timedelta(days=1)))
    return elapsed


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from refnet_dev.postgres import PostgresCluster

    with PostgresCluster() as cluster:
        yield cluster.create_database(f"bench_{uuid.uuid4().hex[:8]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reservations", type=int, default=2000)
    parser.add_argument("--threads", default="1,4,8")
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    thread_counts = [int(n) for n in args.threads.split(",")]
    rows: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, postgres(args.postgres_url) as pg_url:
        for backend, url in (("SQLite", f"sqlite:///{Path(tmp) / 'shelter.db'}"), ("PostgreSQL", pg_url)):
            bus, engine = prepare(url)
            try:
                run(bus, 100, 2, SHELTERS)  # warm the pool and the caches
                for shape, shelters in (("spread", SHELTERS), ("one pool", 1)):
                    for threads in thread_counts:
                        seconds = run(bus, args.reservations, threads, shelters)
                        rows.setdefault((shape, threads), {})[backend] = args.reservations / seconds
            finally:
                engine.dispose()
    print(f"\nshelter: reservations per second ({args.reservations} per run; handler + unit of work + outbox)\n")
    print(f"{'shape':<10} {'threads':>7} {'SQLite':>10} {'PostgreSQL':>12}")
    for (shape, threads), rates in rows.items():
        print(f"{shape:<10} {threads:>7} {rates['SQLite']:>10.0f} {rates['PostgreSQL']:>12.0f}")


if __name__ == "__main__":
    main()

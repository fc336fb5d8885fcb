"""Referral's routing in one process: what a routed case costs the referral worker, without Kafka.

    python -m bench.referral_routing [--postgres] [--cases 2000] [--batch 1] [--profile FILE]

Each case is the one `make bench` registers (an adult woman in one of the demo directory's three
provinces, police + medical + psychosocial needs, all consented), as intake's CaseRegistered payload.
It goes the worker's way: proto_mapping.command_for, then referral's bus inside the record's inbox
context (the duplicate check and the inbox row), on a database opened and migrated as the worker opens
it, with the demo directory loaded, logging as the worker logs (JSON lines at INFO, here to /dev/null).
`--batch N` handles N records per transaction (their inbox rows looked up in one query first), as the
consumer does with a poll's records. Printed per database: cases/s, ms per case (wall clock), CPU ms per
case (this process's user + system time: less moved by other load than the wall clock) and SQL statements
per case (an executemany counts once). `--profile FILE` writes a cProfile of the SQLite run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from bench.handling import measured, run_in_batches, worker_bench_args
from bench.load import NEEDS, PLACES
from referral.adapters import hsds, proto_mapping
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from referral.domain import commands
from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import events_pb2 as intake_events
from refnet_platform.bus import MessageBus
from refnet_platform.envelope import new_event_id
from refnet_platform.runtime import open_database
from refnet_platform.telemetry import setup_logging

DEMO = Path(__file__).resolve().parents[1] / "demo" / "directory.json"
CONSUMER = "referral-worker"


def case_registered(n: int) -> intake_events.CaseRegistered:
    """The n-th bench case as intake publishes it: codes and ids only."""
    province, commune = PLACES[n % len(PLACES)]
    return intake_events.CaseRegistered(
        case_id=str(uuid.uuid4()), province_code=province, commune_code=commune,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], age_band="18-59", sex=t.SEX_FEMALE,
        needs=[intake_events.NeedRef(need_id=str(uuid.uuid4()), service_type=s, consented=True,
                                     consent_id=new_event_id()) for s in NEEDS],
        risk_level=t.RISK_LEVEL_MEDIUM, case_worker_id="bench-operator")


def _handle(bus: MessageBus, message: intake_events.CaseRegistered) -> None:
    command = proto_mapping.command_for(message)
    assert isinstance(command, commands.RouteCase)
    made = bus.handle(command)
    assert len(made) == len(NEEDS) and all(r.provider_id for r in made), made


@contextlib.contextmanager
def databases(postgres: bool) -> Iterator[list[tuple[str, Settings]]]:
    with tempfile.TemporaryDirectory(prefix="referral-bench-") as tmp:
        found = [("sqlite", Settings(database_url=f"sqlite:///{tmp}/referral.db"))]
        if not postgres:
            yield found
            return
        from refnet_dev.postgres import PostgresCluster

        with PostgresCluster() as cluster:
            # DATABASE_URL as `make bench --postgres` sets it: referral's own schema.
            url = cluster.create_database("referral_bench")
            yield [*found, ("postgresql", Settings(shared_database_url=url))]


def log_as_the_worker() -> None:
    """The worker's JSON log lines at INFO, written to /dev/null: what they cost is part of routing a case."""
    setup_logging("referral")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (the process's to the end, as stderr is)


def measure(name: str, settings: Settings, cases: int, warmup: int, batch: int, profile: Path | None
            ) -> dict[str, float]:
    engine = open_database(settings, MIGRATIONS)
    try:
        bus = bootstrap(settings, engine)
        bus.handle(commands.LoadDirectory(hsds.load_file(DEMO)))
        run_in_batches(engine, partial(_handle, bus), [case_registered(n) for n in range(warmup)], batch,
                       CONSUMER)
        messages = [case_registered(n) for n in range(cases)]
        run = measured(engine, lambda: run_in_batches(engine, partial(_handle, bus), messages, batch, CONSUMER),
                       profile if name == "sqlite" else None)
        return {"cases_per_s": cases / run.elapsed_s, "ms_per_case": run.elapsed_s * 1000 / cases,
                "cpu_ms_per_case": run.cpu_s * 1000 / cases, "statements_per_case": run.statements / cases}
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = worker_bench_args("referral_routing", __doc__, 2000, argv)
    log_as_the_worker()
    print(f"{'database':<11} {'batch':>5} {'cases':>6} {'cases/s':>8} {'ms/case':>8} {'cpu ms/case':>12} "
          f"{'statements/case':>16}")
    with databases(args.postgres) as found:
        for name, settings in found:
            figures = measure(name, settings, args.cases, args.warmup, args.batch, args.profile)
            print(f"{name:<11} {args.batch:>5} {args.cases:>6} {figures['cases_per_s']:>8.0f} "
                  f"{figures['ms_per_case']:>8.2f} {figures['cpu_ms_per_case']:>12.2f} "
                  f"{figures['statements_per_case']:>16.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Notifications' handling of new referrals in one process: what a provider notice costs the notifications
worker, without Kafka.

    python bench/notifications_handling.py [--referrals 2000] [--batch 1] [--profile FILE]

Each record is a ReferralRequested payload as referral publishes it, for one of the demo directory's
providers (their duty desks have an e-mail address, so each referral is two notices: the in-app feed
and an e-mail due for dispatch). It goes the worker's way: proto_mapping.command_for, then notifications'
bus inside the record's inbox context, on a SQLite file opened and migrated as the worker opens it, with
e-mail, SMS and webhook channels configured (nothing is sent: dispatch is not run). `--batch N` handles N
records per transaction, a savepoint each, as the consumer does with a poll's records. Printed: ms per
referral and per notice (wall clock, and this process's CPU time: the figure that load and the disk
disturb least), SQL statements per referral and per notice (an executemany counts once).
Runs as a file, so the same script measures another checkout's code with that checkout's venv.
"""

from __future__ import annotations

import argparse
import contextvars
import cProfile
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from notifications.adapters import proto_mapping
from notifications.adapters.directory_file import load_directory_file
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.messages import Channel
from notifications.domain.retry import DeliveryResult
from refnet.common.v1 import types_pb2 as t
from refnet.referral.v1 import events_pb2 as referral_events
from refnet_platform.bus import MessageBus
from refnet_platform.context import Causation, Delivery, current_causation, current_delivery
from refnet_platform.envelope import new_event_id
from refnet_platform.runtime import open_database
from refnet_platform.unit_of_work import BatchTransaction

DEMO = Path(__file__).resolve().parents[1] / "demo" / "directory.json"
CONSUMER = "notifications-worker"
SERVICE_TYPES = {"police_protection": t.SERVICE_TYPE_POLICE_PROTECTION, "medical": t.SERVICE_TYPE_MEDICAL,
                 "psychosocial": t.SERVICE_TYPE_PSYCHOSOCIAL, "legal_aid": t.SERVICE_TYPE_LEGAL_AID,
                 "shelter": t.SERVICE_TYPE_SHELTER}


class Unused:
    """Channels and sinks that are configured but never reached: dispatch is not run."""

    async def send(self, _message: Any) -> DeliveryResult:
        raise AssertionError("not sent in this bench")

    def publish(self, _letters: Any) -> None:
        raise AssertionError("not published in this bench")


class StatementCounter:
    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_args: Any) -> None:
        self.count += 1


def providers() -> list[dict[str, Any]]:
    data = json.loads(DEMO.read_text(encoding="utf-8"))
    return [p for p in data["providers"] if p.get("service_type") in SERVICE_TYPES]


def referral_requested(n: int, known: list[dict[str, Any]]) -> referral_events.ReferralRequested:
    provider = known[n % len(known)]
    return referral_events.ReferralRequested(
        referral_id=str(uuid.uuid4()), case_id=str(uuid.uuid4()), provider_id=provider["provider_id"],
        service_type=SERVICE_TYPES[provider["service_type"]], province_code=provider["province_code"],
        risk_level=t.RISK_LEVEL_MEDIUM, case_worker_id="bench-operator")


def _handle(bus: MessageBus, message: referral_events.ReferralRequested) -> int:
    event_id = new_event_id()
    current_causation.set(Causation(event_id, event_id))
    current_delivery.set(Delivery(CONSUMER, event_id))
    command = proto_mapping.command_for(message)
    assert isinstance(command, commands.Notify)
    return len(bus.handle(command))


def run(bus: MessageBus, engine: Engine, messages: list[referral_events.ReferralRequested], batch: int) -> int:
    notices = 0
    for start in range(0, len(messages), batch):
        group = messages[start:start + batch]
        if batch == 1:
            notices += contextvars.copy_context().run(_handle, bus, group[0])
            continue
        with BatchTransaction(engine) as transaction:
            for message in group:
                notices += contextvars.copy_context().run(_handle, bus, message)
            transaction.commit()
    return notices


def measure(referrals: int, warmup: int, batch: int, profile: Path | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="notifications-bench-") as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/notifications.db")
        engine = open_database(settings, MIGRATIONS)
        try:
            unused = Unused()
            channels = {c: unused for c in (Channel.EMAIL, Channel.SMS, Channel.WEBHOOK)}
            bus = bootstrap(settings, engine, adapters=channels, contacts=None, dead_letters=unused)
            bus.handle(load_directory_file(DEMO))
            known = providers()
            run(bus, engine, [referral_requested(n, known) for n in range(warmup)], batch)
            messages = [referral_requested(n, known) for n in range(referrals)]
            counter = StatementCounter(engine)
            profiler = cProfile.Profile() if profile else None
            started, cpu_started = time.perf_counter(), time.process_time()
            notices = run(bus, engine, messages, batch) if profiler is None else \
                profiler.runcall(run, bus, engine, messages, batch)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            if profiler is not None and profile is not None:
                profiler.dump_stats(profile)
            return {"ms_per_referral": elapsed * 1000 / referrals, "ms_per_notice": elapsed * 1000 / notices,
                    "cpu_ms_per_referral": cpu * 1000 / referrals, "cpu_ms_per_notice": cpu * 1000 / notices,
                    "statements_per_referral": counter.count / referrals,
                    "statements_per_notice": counter.count / notices, "notices_per_referral": notices / referrals}
        finally:
            engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/notifications_handling.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1, help="records per transaction (default 1)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    args = parser.parse_args(argv)
    f = measure(args.referrals, args.warmup, args.batch, args.profile)
    print(f"batch {args.batch:>3}  referrals {args.referrals:>5}  notices/referral {f['notices_per_referral']:.1f}  "
          f"ms/referral {f['ms_per_referral']:.3f}  ms/notice {f['ms_per_notice']:.3f}  "
          f"CPU ms/referral {f['cpu_ms_per_referral']:.3f}  CPU ms/notice {f['cpu_ms_per_notice']:.3f}  "
          f"statements/referral {f['statements_per_referral']:.1f}  "
          f"statements/notice {f['statements_per_notice']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

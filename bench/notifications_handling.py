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
import json
import sys
import tempfile
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from bench.handling import measured, run_in_batches
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
            run_in_batches(engine, partial(_handle, bus), [referral_requested(n, known) for n in range(warmup)], batch)
            messages = [referral_requested(n, known) for n in range(referrals)]
            run = measured(engine, lambda: run_in_batches(engine, partial(_handle, bus), messages, batch), profile)
            notices = sum(run.results)
            return {"ms_per_referral": run.elapsed_s * 1000 / referrals,
                    "ms_per_notice": run.elapsed_s * 1000 / notices,
                    "cpu_ms_per_referral": run.cpu_s * 1000 / referrals,
                    "cpu_ms_per_notice": run.cpu_s * 1000 / notices,
                    "statements_per_referral": run.statements / referrals,
                    "statements_per_notice": run.statements / notices, "notices_per_referral": notices / referrals}
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

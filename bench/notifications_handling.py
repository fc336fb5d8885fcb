"""Notifications' handling in one process: what a provider notice costs the notifications worker, without Kafka.

    python bench/notifications_handling.py [--mode referrals|dispatch|cases] [--referrals 2000] [--batch 1]
                                           [--profile FILE]

referrals (the default): each record is a ReferralRequested payload as referral publishes it, for one of the
demo directory's providers (their duty desks have an e-mail address, so each referral is two notices: the
in-app feed and an e-mail due for dispatch). It goes the worker's way: proto_mapping.command_for, then
notifications' bus inside the record's inbox context, on a SQLite file opened and migrated as the worker opens
it, with e-mail, SMS and webhook channels configured, logging as the worker logs (JSON lines at INFO, here to
/dev/null). `--batch N` handles N records per transaction, as the consumer does with a poll's records.
dispatch: those referrals are recorded `--batch` at a time (not measured), each batch followed by the DispatchDue
round its commit wakes in the worker, which sends what is due through channels that accept at once (nothing
leaves the process): what a round, and claiming, sending and recording a delivery (its marks and its status
events in the outbox) cost, per dispatched notice (`--profile`: the first round's).
cases: each record is a CaseRegistered (not an emergency; three consented needs), what intake.cases costs.
Printed: ms per record and per notice (wall clock, and this process's CPU time: the figure that load and the
disk disturb least), SQL statements per record and per notice (an executemany counts once).
Runs as a file, so the same script measures another checkout's code with that checkout's venv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import tempfile
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from bench.handling import Measured, measured, run_in_batches
from notifications.adapters import proto_mapping
from notifications.adapters.directory_file import load_directory_file
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.messages import Channel
from notifications.domain.retry import DeliveryResult
from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.referral.v1 import events_pb2 as referral_events
from refnet_platform.bus import MessageBus
from refnet_platform.context import Causation, Delivery, current_causation, current_delivery
from refnet_platform.envelope import new_event_id
from refnet_platform.runtime import open_database
from refnet_platform.telemetry import setup_logging

DEMO = Path(__file__).resolve().parents[1] / "demo" / "directory.json"
CONSUMER = "notifications-worker"
SERVICE_TYPES = {"police_protection": t.SERVICE_TYPE_POLICE_PROTECTION, "medical": t.SERVICE_TYPE_MEDICAL,
                 "psychosocial": t.SERVICE_TYPE_PSYCHOSOCIAL, "legal_aid": t.SERVICE_TYPE_LEGAL_AID,
                 "shelter": t.SERVICE_TYPE_SHELTER}


class Unused:
    """Channels and sinks that are configured but never reached (referrals, cases: dispatch is not run)."""

    async def send(self, _message: Any) -> DeliveryResult:
        raise AssertionError("not sent in this bench")

    def publish(self, _letters: Any) -> None:
        raise AssertionError("not published in this bench")


class Accepting(Unused):
    """A gateway that accepts every message at once (dispatch)."""

    async def send(self, _message: Any) -> DeliveryResult:
        await asyncio.sleep(0)
        return DeliveryResult.sent()


def log_as_the_worker() -> None:
    """The worker's JSON log lines at INFO, written to /dev/null: what they cost is part of a notice's."""
    setup_logging("notifications")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (the process's to the end, as stderr is)


def providers() -> list[dict[str, Any]]:
    data = json.loads(DEMO.read_text(encoding="utf-8"))
    return [p for p in data["providers"] if p.get("service_type") in SERVICE_TYPES]


def referral_requested(n: int, known: list[dict[str, Any]]) -> referral_events.ReferralRequested:
    provider = known[n % len(known)]
    return referral_events.ReferralRequested(
        referral_id=str(uuid.uuid4()), case_id=str(uuid.uuid4()), provider_id=provider["provider_id"],
        service_type=SERVICE_TYPES[provider["service_type"]], province_code=provider["province_code"],
        risk_level=t.RISK_LEVEL_MEDIUM, case_worker_id="bench-operator")


def case_registered(n: int) -> intake_events.CaseRegistered:
    needs = [intake_events.NeedRef(need_id=str(uuid.uuid4()), service_type=service, consented=True)
             for service in (t.SERVICE_TYPE_MEDICAL, t.SERVICE_TYPE_PSYCHOSOCIAL, t.SERVICE_TYPE_LEGAL_AID)]
    return intake_events.CaseRegistered(case_id=str(uuid.uuid4()), province_code="01", needs=needs,
                                        risk_level=t.RISK_LEVEL_MEDIUM, case_worker_id=f"bench-operator-{n % 7}")


def _handle(bus: MessageBus, message: Any) -> int:
    event_id = new_event_id()
    current_causation.set(Causation(event_id, event_id))
    current_delivery.set(Delivery(CONSUMER, event_id))
    command = proto_mapping.command_for(message)
    assert isinstance(command, commands.Notify | commands.NoteCase)
    return len(bus.handle(command))


def _dispatch(bus: MessageBus) -> list[Any]:
    counts = bus.handle(commands.DispatchDue())
    return [sum(counts.values())]


def measure(mode: str, referrals: int, warmup: int, batch: int, profile: Path | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="notifications-bench-") as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/notifications.db")
        engine = open_database(settings, MIGRATIONS)
        try:
            gateway = Accepting() if mode == "dispatch" else Unused()
            channels = {c: gateway for c in (Channel.EMAIL, Channel.SMS, Channel.WEBHOOK)}
            bus = bootstrap(settings, engine, adapters=channels, contacts=None, dead_letters=Unused())
            bus.handle(load_directory_file(DEMO))
            known = providers()
            handle = partial(_handle, bus)
            make = case_registered if mode == "cases" else partial(referral_requested, known=known)
            run_in_batches(engine, handle, [make(n) for n in range(warmup)], batch)
            messages = [make(n) for n in range(referrals)]
            if mode == "dispatch":
                _dispatch(bus)  # the warm-up's
                # As the worker goes: each batch's commit wakes a round that sends what the batch made due.
                recorded, rounds = 0, []
                for start in range(0, referrals, batch):
                    recorded += sum(run_in_batches(engine, handle, messages[start:start + batch], batch))
                    rounds.append(measured(engine, lambda: _dispatch(bus), profile if start == 0 else None))
                run = Measured(sum(r.elapsed_s for r in rounds), sum(r.cpu_s for r in rounds),
                               sum(r.statements for r in rounds), [n for r in rounds for n in r.results])
                sent = sum(run.results)
                assert sent == recorded - referrals, (sent, recorded)  # every notice but the in-app ones
                per_record, per_notice = referrals, sent
            else:
                run = measured(engine, lambda: run_in_batches(engine, handle, messages, batch), profile)
                per_record, per_notice = referrals, sum(run.results) or math.nan  # cases: no notices
            return {"ms_per_record": run.elapsed_s * 1000 / per_record,
                    "ms_per_notice": run.elapsed_s * 1000 / per_notice,
                    "cpu_ms_per_record": run.cpu_s * 1000 / per_record,
                    "cpu_ms_per_notice": run.cpu_s * 1000 / per_notice,
                    "statements_per_record": run.statements / per_record,
                    "statements_per_notice": run.statements / per_notice,
                    "notices_per_record": sum(run.results) / per_record}
        finally:
            engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/notifications_handling.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("referrals", "dispatch", "cases"), default="referrals")
    parser.add_argument("--referrals", type=int, default=2000, help="records (referrals, or cases)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1, help="records per transaction (default 1)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    args = parser.parse_args(argv)
    log_as_the_worker()
    f = measure(args.mode, args.referrals, args.warmup, args.batch, args.profile)
    print(f"{args.mode:<9}  batch {args.batch:>3}  records {args.referrals:>5}  "
          f"notices/record {f['notices_per_record']:.1f}  "
          f"ms/record {f['ms_per_record']:.3f}  ms/notice {f['ms_per_notice']:.3f}  "
          f"CPU ms/record {f['cpu_ms_per_record']:.3f}  CPU ms/notice {f['cpu_ms_per_notice']:.3f}  "
          f"statements/record {f['statements_per_record']:.2f}  "
          f"statements/notice {f['statements_per_notice']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Intake's worker in one process: what recording referral's events on the case costs, without Kafka.

    python -m bench.intake_recording [--postgres] [--cases 700] [--batch 1] [--profile FILE]

The cases are registered first through intake's own bus (as `make bench` registers them: an adult woman, three
consented needs), then each need's ReferralRequested, as referral publishes it, goes the worker's way: decoded
from its envelope's bytes and admitted as the consumer reads a record, proto_mapping.command_for, then
intake's bus inside the record's inbox context, on a database opened and migrated as the worker opens it,
logging as the worker logs (JSON lines at INFO, here to /dev/null). `--batch N` handles N records per
transaction (their inbox rows looked up in one query first), as the consumer does with a poll's records.
Printed per database: records/s, CPU ms per record and per case (three records), SQL statements per record
(an executemany counts once); then CPU ms per record taken the consumer's own way from a polled record on
(its batches of 100: decoding, span context, inbox look-up, handler, counts and metrics, commit; no Kafka
fetch or offset commit), for ReferralRequested and for the records it does nothing with (ReferralEscalated,
ReferralProgressReported). Last, such a record's decoding and mapping to no command alone, beside a
ReferralRequested's decoding. `--profile FILE` writes a cProfile of the SQLite run.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord

from bench.handling import measured, run_in_batches, worker_bench_args
from bench.load import NEEDS, PLACES
from bench.referral_routing import log_as_the_worker
from intake.adapters import proto_mapping
from intake.adapters.crypto import generate_key_b64
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from intake.domain.model import Contact, NeedSpec, Place, Survivor
from refnet.common.v1 import types_pb2 as t
from refnet.referral.v1 import events_pb2 as referral_events
from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller, Role
from refnet_platform.consumer import EventConsumer, admit, dispatching
from refnet_platform.envelope import OutgoingEvent, decode, wrap
from refnet_platform.runtime import open_database
from refnet_platform.topics import topic
from refnet_platform.unit_of_work import BatchTransaction
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex, from_pb

CONSUMER = "intake-worker"
TOPIC = "referral.referrals.v1"
OPERATOR = Caller("bench-operator", Role.OPERATOR, provinces=frozenset(p for p, _ in PLACES), person=True)


def service_type(number: int) -> ServiceType:
    found = from_pb(ServiceType, t.ServiceType, number)
    assert found is not None
    return found


def registration(n: int) -> commands.RegisterCase:
    province, commune = PLACES[n % len(PLACES)]
    return commands.RegisterCase(
        caller=OPERATOR, client_request_id=f"bench-{uuid.uuid4()}", occurred_in=Place(province, commune),
        recorded_at=None, reported_in=None, case_types=[CaseType.DOMESTIC_VIOLENCE],
        survivor=Survivor(is_child=False, age=31, sex=Sex.FEMALE),
        needs=[NeedSpec(service_type(s), consented=True) for s in NEEDS], risk_level=RiskLevel.MEDIUM,
        immediate_danger=False, case_worker_id="", contact=Contact(), narrative="")


def record_bytes(message: referral_events.ReferralRequested | referral_events.ReferralEscalated
                 | referral_events.ReferralProgressReported) -> bytes:
    """The record's value as referral's relay sends it: the payload in its envelope."""
    value: bytes = wrap(OutgoingEvent(message, TOPIC, key=message.province_code,
                                      subject=f"referral/{message.referral_id}"), "referral").SerializeToString()
    return value


def requested_records(bus: MessageBus, cases: int) -> list[bytes]:
    """Each need's ReferralRequested of `cases` new cases, registered here first."""
    records = []
    for n in range(cases):
        case, _ = bus.handle(registration(n))
        for need in case.needs:
            records.append(record_bytes(referral_events.ReferralRequested(
                referral_id=str(uuid.uuid4()), case_id=case.case_id, need_id=need.need_id,
                provider_id=f"bench-provider-{n % 7}", province_code=case.province_code,
                risk_level=t.RISK_LEVEL_MEDIUM, attempt=1)))
    return records


def ignored_records(count: int) -> list[bytes]:
    """Records of the types intake's worker reads and does nothing with."""
    made: list[bytes] = []
    for n in range(count):
        ids = dict(referral_id=str(uuid.uuid4()), case_id=str(uuid.uuid4()), province_code="22")
        made.append(record_bytes(referral_events.ReferralEscalated(**ids, reason="no_provider", emergency=False)
                                 if n % 2 else referral_events.ReferralProgressReported(**ids, provider_id="p")))
    return made


def _read(value: bytes) -> object:
    """As the consumer reads a record: decoded, admitted to its topic, its payload unpacked."""
    envelope = decode(value)
    admit(envelope, topic(TOPIC))
    return proto_mapping.CONSUMED_TYPES.unpack(envelope)


def _handle(bus: MessageBus, value: bytes) -> None:
    command = proto_mapping.command_for(_read(value))
    assert isinstance(command, commands.RecordReferral)
    bus.handle(command)


def through_the_consumer(bus: MessageBus, engine: Any, values: list[bytes]) -> float:
    """CPU ms per record taken the consumer's own way from a polled record on (decoded, admitted, span context,
    the batch's inbox look-up, the handler, counts and metrics, the batch commit), without Kafka: what the
    worker spends on a record short of fetching it and committing its offset."""
    consumer = EventConsumer("intake", "unused:9092", [TOPIC], proto_mapping.CONSUMED_TYPES,
                             dispatching(bus, proto_mapping.command_for), batch=partial(BatchTransaction, engine),
                             batch_budget_s=float("inf"))
    records = [ConsumerRecord(TOPIC, 0, offset, 0, 0, b"22", value, None, 2, len(value), ())
               for offset, value in enumerate(values)]
    started = time.process_time()
    for start in range(0, len(records), consumer.batch_size):
        incoming = [consumer._read(record) for record in records[start:start + consumer.batch_size]]
        done = 0
        while done < len(incoming):
            # In a copy of the context, as the consumer's worker threads run it: the last record's delivery
            # must not stay current (the next database's registrations would be taken for redeliveries).
            taken, stopped = contextvars.copy_context().run(consumer._handle_together, incoming[done:])
            assert taken and not stopped, "a record left the fast path"
            done += taken
    return (time.process_time() - started) * 1000 / len(values)


@contextlib.contextmanager
def databases(postgres: bool) -> Iterator[list[tuple[str, Settings]]]:
    key = generate_key_b64()
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        found = [("sqlite", Settings(database_url=f"sqlite:///{tmp}/intake.db", master_key=key))]
        if not postgres:
            yield found
            return
        from refnet_dev.postgres import PostgresCluster

        with PostgresCluster() as cluster:
            url = cluster.create_database("intake_bench")
            yield [*found, ("postgresql", Settings(shared_database_url=url, master_key=key))]


def measure(name: str, settings: Settings, cases: int, warmup: int, batch: int, profile: Path | None
            ) -> dict[str, float]:
    engine = open_database(settings, MIGRATIONS)
    try:
        bus = bootstrap(settings, engine)
        run_in_batches(engine, partial(_handle, bus), requested_records(bus, warmup), batch, CONSUMER)
        records = requested_records(bus, cases)
        run = measured(engine, lambda: run_in_batches(engine, partial(_handle, bus), records, batch, CONSUMER),
                       profile if name == "sqlite" else None)
        consumed = through_the_consumer(bus, engine, requested_records(bus, cases))
        ignored = through_the_consumer(bus, engine, ignored_records(len(records)))
        return {"records_per_s": len(records) / run.elapsed_s, "cpu_ms_per_record": run.cpu_s * 1000 / len(records),
                "cpu_ms_per_case": run.cpu_s * 1000 / cases, "statements_per_record": run.statements / len(records),
                "consumer_ms_per_record": consumed, "consumer_ms_per_ignored": ignored}
    finally:
        engine.dispose()


def cpu_ms_each(call: object, values: list[bytes]) -> float:
    assert callable(call)
    started = time.process_time()
    for value in values:
        call(value)
    return (time.process_time() - started) * 1000 / len(values)


def main(argv: list[str] | None = None) -> int:
    args = worker_bench_args("intake_recording", __doc__, 700, argv)
    log_as_the_worker()
    print(f"{'database':<11} {'batch':>5} {'records':>7} {'records/s':>9} {'cpu ms/record':>14} "
          f"{'cpu ms/case':>12} {'statements/record':>18} {'consumer ms/record':>19} {'.../ignored':>12}")
    with databases(args.postgres) as found:
        for name, settings in found:
            figures = measure(name, settings, args.cases, args.warmup, args.batch, args.profile)
            print(f"{name:<11} {args.batch:>5} {args.cases * len(NEEDS):>7} {figures['records_per_s']:>9.0f} "
                  f"{figures['cpu_ms_per_record']:>14.3f} {figures['cpu_ms_per_case']:>12.2f} "
                  f"{figures['statements_per_record']:>18.2f} {figures['consumer_ms_per_record']:>19.3f} "
                  f"{figures['consumer_ms_per_ignored']:>12.3f}", flush=True)
    ignored = ignored_records(5000)
    handled_type = [record_bytes(referral_events.ReferralRequested(referral_id=str(uuid.uuid4()), province_code="22"))
                    for _ in range(5000)]
    read_ms = cpu_ms_each(_read, handled_type)
    ignored_ms = cpu_ms_each(lambda value: proto_mapping.command_for(_read(value)), ignored)
    print(f"a record it does nothing with: {ignored_ms:.3f} cpu ms (decoded, admitted, unpacked, no command); "
          f"a ReferralRequested's decoding alone: {read_ms:.3f} cpu ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Outbox, inbox, relay and consumer on real databases (SQLite and PostgreSQL) and a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, func, insert, select, text
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.exc import OperationalError

from refnet.common.v1.envelope_pb2 import DeadLetter, EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet_dev.kafka import KafkaBroker, create_topics, read_records
from refnet_platform import kafka_clients
from refnet_platform.clock import system_clock
from refnet_platform.consumer import EventConsumer
from refnet_platform.context import Delivery, current_delivery
from refnet_platform.engine import make_engine, read_connection
from refnet_platform.envelope import OutgoingEvent, TypeRegistry, wrap
from refnet_platform.outbox import CommitWaiter, Relay
from refnet_platform.tables import create_platform_tables, inbox, outbox
from refnet_platform.telemetry import current_traceparent
from refnet_platform.topics import CASE_EVENTS, Topic
from refnet_platform.unit_of_work import _INBOX_CHUNK, BatchSpoiled, BatchTransaction, Duplicate, UnitOfWork

metadata = MetaData()
notes = Table("notes", metadata, Column("note_id", String(40), primary_key=True))
trace.set_tracer_provider(TracerProvider())


class NotesUnitOfWork(UnitOfWork):
    def open_repositories(self, connection: Connection) -> None:
        self.conn = connection

    def add_note(self, note_id: str, topic: str = "scratch") -> None:
        self.conn.execute(insert(notes).values(note_id=note_id))
        self.publish(OutgoingEvent(intake_events.CaseClosed(case_id=note_id, province_code="22"), topic, "22",
                                   f"case/{note_id}"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        metadata.create_all(conn)
        create_platform_tables(conn)
    yield engine
    engine.dispose()


def count(engine: Engine, table: Table) -> int:
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def run_worker_until(worker: EventConsumer, done: Callable[[], bool], timeout_s: float = 30) -> None:
    """Runs the consumer until `done()` (or the timeout), then stops it as SIGTERM would."""
    async def run() -> None:
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        worker.stop()
        await asyncio.wait_for(task, 20)

    asyncio.run(run())


def dead_letters(bootstrap: str, dlq: str) -> list[DeadLetter]:
    return [DeadLetter.FromString(r.value or b"") for r in read_records(bootstrap, dlq)]


def new_topics(bootstrap: str, *names: str) -> dict[str, Topic]:
    """Scratch topics, and their registry: intake's case events, written by the tests' "test" source."""
    create_topics(bootstrap, *names)
    return {name: Topic(name, "province_code", 1, "test-relay", ("test-worker",), CASE_EVENTS) for name in names}


def test_state_and_its_events_commit_together_or_not_at_all(engine: Engine) -> None:
    with NotesUnitOfWork(engine, "test") as work:
        work.add_note("kept")
        work.commit()
    with pytest.raises(RuntimeError), NotesUnitOfWork(engine, "test") as work:
        work.add_note("lost")
        raise RuntimeError("the handler failed before commit")
    assert (count(engine, notes), count(engine, outbox)) == (1, 1)


def test_a_redelivered_record_changes_nothing(engine: Engine) -> None:
    token = current_delivery.set(Delivery("test-worker", "event-1"))
    try:
        with NotesUnitOfWork(engine, "test") as work:
            work.add_note("once")
            work.commit()
        with pytest.raises(Duplicate), NotesUnitOfWork(engine, "test") as work:
            work.add_note("twice")
            work.commit()
    finally:
        current_delivery.reset(token)
    assert (count(engine, notes), count(engine, outbox)) == (1, 1)


def test_a_record_handled_meanwhile_by_another_consumer_is_a_duplicate_at_commit(engine: Engine) -> None:
    token = current_delivery.set(Delivery("test-worker", "event-raced"))
    try:
        with pytest.raises(Duplicate), NotesUnitOfWork(engine, "test") as work:
            work.add_note("raced")
            # Another consumer of the group (after a rebalance) recorded the same record since this work began.
            work.connection.execute(insert(inbox).values(consumer="test-worker", event_id="event-raced",
                                                         processed_at=system_clock()))
            work.commit()
    finally:
        current_delivery.reset(token)
    assert (count(engine, notes), count(engine, outbox)) == (0, 0)


def test_units_of_work_in_a_batch_commit_together_and_a_repeat_within_it_is_a_duplicate(engine: Engine) -> None:
    committed: list[str] = []
    with BatchTransaction(engine) as batch:
        for note_id in ("first", "second"):
            with NotesUnitOfWork(engine, "test") as work:
                work.add_note(note_id)
                work.on_commit(lambda n=note_id: committed.append(n))  # type: ignore[misc]
                work.commit()
        token = current_delivery.set(Delivery("test-worker", "event-in-batch"))
        try:
            with NotesUnitOfWork(engine, "test") as work:
                work.add_note("once")
                work.commit()
            with pytest.raises(Duplicate), NotesUnitOfWork(engine, "test") as work:  # the same batch sees it
                work.add_note("twice")
        finally:
            current_delivery.reset(token)
        # Nothing is visible to anyone else, nor announced, until the batch commits.
        assert (count(engine, notes), committed) == (0, [])
        batch.commit()
        assert committed == ["first", "second"]
    assert (count(engine, notes), count(engine, outbox), count(engine, inbox)) == (3, 3, 1)
    with engine.connect() as conn:
        assert sorted(conn.execute(select(notes.c.note_id)).scalars()) == ["first", "once", "second"]


def test_a_batch_looks_up_which_of_its_records_were_handled_in_chunks_of_any_size(engine: Engine) -> None:
    handled = ["event-3", f"event-{_INBOX_CHUNK + 1}"]  # one in the first chunk, one in the second
    with engine.begin() as conn:
        conn.execute(insert(inbox), [dict(consumer="test-worker", event_id=event_id, processed_at=system_clock())
                                     for event_id in handled])
        conn.execute(insert(inbox).values(consumer="another-worker", event_id="event-0", processed_at=system_clock()))
    ids = [f"event-{n}" for n in range(_INBOX_CHUNK + 3)]
    with BatchTransaction(engine) as batch:
        batch.look_up("test-worker", ids)
        assert [event_id for event_id in ids if batch.handled("test-worker", event_id)] == handled
        assert batch.handled("test-worker", "event-0") is False  # another consumer's record is not this one's
        assert batch.handled("test-worker", "not-looked-up") is None
        batch.look_up("test-worker", ["event-1"])  # a poll of one
        assert batch.handled("test-worker", "event-1") is False


def test_a_unit_of_work_ending_uncommitted_spoils_its_batch_which_commits_nothing(engine: Engine) -> None:
    committed: list[str] = []
    with BatchTransaction(engine) as batch:
        with NotesUnitOfWork(engine, "test") as work:
            work.add_note("first")
            work.on_commit(lambda: committed.append("first"))
            work.commit()
        with contextlib.suppress(RuntimeError), NotesUnitOfWork(engine, "test") as work:
            work.add_note("fails")
            raise RuntimeError("the handler failed before commit")
        with NotesUnitOfWork(engine, "test").reading():
            pass  # work that only reads leaves nothing to undo
        assert batch.spoiled
        with pytest.raises(BatchSpoiled):
            batch.commit()
    assert (count(engine, notes), count(engine, outbox), committed) == (0, 0, [])


def test_a_batch_not_committed_leaves_nothing(engine: Engine) -> None:
    with BatchTransaction(engine), NotesUnitOfWork(engine, "test") as work:
        work.add_note("lost")
        work.commit()
    assert (count(engine, notes), count(engine, outbox)) == (0, 0)


def test_relay_publishes_in_order_with_the_writers_trace_and_wakes_on_commit(
        engine: Engine, kafka_broker: KafkaBroker) -> None:
    topic = f"scratch.relay-{uuid.uuid4().hex[:8]}.v1"
    new_topics(kafka_broker.bootstrap, topic)
    # A 60 s poll: only the wake-on-commit path can deliver within the test's deadline.
    relay = Relay(engine, kafka_clients.producer(kafka_broker.bootstrap, "refnet-relay"), poll_interval_s=60)
    runner = threading.Thread(target=relay.run, daemon=True)
    runner.start()
    tracer = trace.get_tracer("test")
    traceparents = []
    try:
        time.sleep(1)  # the relay is now waiting for a commit
        started = time.monotonic()
        for n in range(20):
            with tracer.start_as_current_span("write"), NotesUnitOfWork(engine, "test") as work:
                work.add_note(f"n{n:02d}", topic)
                traceparents.append(current_traceparent())
                work.commit()
        received = read_records(kafka_broker.bootstrap, topic, at_least=20)
        elapsed = time.monotonic() - started
    finally:
        relay.stopping.set()
        runner.join(70)
    cases = [EventEnvelope.FromString(r.value) for r in received]
    assert [c.subject for c in cases] == [f"case/n{n:02d}" for n in range(20)]
    assert [dict(r.headers)["traceparent"].decode() for r in received] != traceparents  # a child span each...
    assert [dict(r.headers)["traceparent"].decode()[3:35] for r in received] == [t[3:35] for t in traceparents]
    assert elapsed < 30, f"relay took {elapsed:.1f}s: it did not wake on commit"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar_one() == 0


@pytest.mark.parametrize("lanes, at_once", [
    (["intake.cases.v1"], False),
    (["intake.cases-urgent.v1"], True),
    (["intake.cases.v1", "intake.cases-urgent.v1"], True),  # a batch: one routine unit of work, then an emergency's
])
def test_a_commit_soon_after_a_round_wakes_the_relay_at_once_for_an_emergency_and_at_the_spacing_otherwise(
        engine: Engine, lanes: list[str], at_once: bool) -> None:
    waiter = CommitWaiter(engine, None)

    def write() -> None:
        time.sleep(0.1)
        with BatchTransaction(engine) as batch:
            for n, topic in enumerate(lanes):
                with NotesUnitOfWork(engine, "test") as work:
                    work.add_note(f"n{n}", topic)
                    work.commit()
            batch.commit()

    writer = threading.Thread(target=write)
    try:
        assert not waiter._woken_within(0.3, time.monotonic() + 0.1)  # the spacing alone wakes nothing
        routine_from = time.monotonic() + 1.5
        writer.start()
        assert waiter._woken_within(5.0, routine_from)
        woken = time.monotonic()
    finally:
        writer.join()
        waiter.close()
    if at_once:
        assert woken < routine_from - 1.0, "an emergency's row waited for the routine spacing"
    else:
        assert routine_from <= woken < routine_from + 1.0


def test_relay_publishes_the_urgent_lanes_rows_before_an_older_normal_backlog(
        engine: Engine, kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = uuid.uuid4().hex[:8]
    normal, urgent = f"scratch.relay-{suffix}.v1", f"scratch.relay-urgent-{suffix}.v1"
    new_topics(kafka_broker.bootstrap, normal, urgent)
    monkeypatch.setattr("refnet_platform.outbox.URGENT_TOPICS", [urgent])
    for n in range(6):
        with NotesUnitOfWork(engine, "test") as work:
            work.add_note(f"n{n}", normal)
            work.commit()
    with NotesUnitOfWork(engine, "test") as work:
        work.add_note("emergency", urgent)
        work.commit()
    relay = Relay(engine, kafka_clients.producer(kafka_broker.bootstrap, "refnet-relay"), batch_size=3)
    try:
        assert relay.publish_pending() == 3
        with engine.connect() as conn:
            sent = conn.execute(select(outbox.c.topic).where(outbox.c.sent_at.is_not(None))
                                .order_by(outbox.c.id)).scalars().all()
        assert sent == [normal, normal, urgent]  # the emergency and the two oldest normal rows
        assert relay.publish_pending() == 3 and relay.publish_pending() == 1 and relay.backlog() == 0
    finally:
        relay.producer.close(timeout=10)
    assert [EventEnvelope.FromString(r.value or b"").subject for r in read_records(kafka_broker.bootstrap, normal)
            ] == [f"case/n{n}" for n in range(6)]


def test_consumer_drains_the_urgent_lane_first_and_dead_letters_poison(kafka_broker: KafkaBroker) -> None:
    suffix = uuid.uuid4().hex[:8]
    normal, urgent, dlq = (f"scratch.{n}-{suffix}.v1" for n in ("cases", "cases-urgent", "dlq"))
    registry = new_topics(kafka_broker.bootstrap, normal, urgent, dlq)
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")

    def send(topic: str, case_id: str) -> None:
        event = OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), topic, "22", case_id)
        producer.produce(topic, key=b"22", value=wrap(event, "test").SerializeToString())

    for n in range(30):
        send(normal, f"normal-{n}")
    producer.produce(normal, key=b"22", value=b"\x08\x96\x01 this is not an envelope")
    send(normal, "explodes")
    send(urgent, "emergency")
    producer.flush()
    producer.close()

    handled: list[str] = []

    def handle(envelope: EventEnvelope, message: object) -> None:
        if message.case_id == "explodes":  # type: ignore[attr-defined]
            raise ValueError("handler bug")
        handled.append(message.case_id)  # type: ignore[attr-defined]

    worker = EventConsumer(f"test-{suffix}", kafka_broker.bootstrap, [normal, urgent],
                           TypeRegistry([intake_events]), handle, max_attempts=2, retry_backoff_s=0.01,
                           urgent={urgent}, dlq_topic=dlq, registry=registry)

    run_worker_until(worker, lambda: len(handled) >= 31)
    assert handled[0] == "emergency"
    assert handled[1:] == [f"normal-{n}" for n in range(30)]
    dead = dead_letters(kafka_broker.bootstrap, dlq)
    assert [(d.original_topic, d.original_offset) for d in dead] == [(normal, 30), (normal, 31)]
    assert dead[0].error.startswith("malformed") and dead[0].attempts == 1
    assert dead[1].error == "ValueError: handler bug" and dead[1].attempts == 2 and dead[1].event_id


def test_older_code_starts_on_a_database_migrated_ahead_of_it(database_url: str, tmp_path: Path) -> None:
    from refnet_platform.migrations import migrate

    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text("from alembic import context\nfrom refnet_platform.migrations import "
                                    "run_migrations_online\nrun_migrations_online(context)\n")
    (scripts / "versions" / "0001_a.py").write_text(
        'revision = "0001"\ndown_revision = None\n\ndef upgrade():\n    pass\n')
    engine = make_engine(database_url)
    migrate(engine, scripts)
    with engine.begin() as conn:  # a newer release migrated the database, then was rolled back
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    migrate(engine, scripts)  # must not raise "Can't locate revision"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
    engine.dispose()


def test_a_database_outage_makes_records_wait_while_a_bad_query_is_dead_lettered(kafka_broker: KafkaBroker) -> None:
    suffix = uuid.uuid4().hex[:8]
    source, dlq = f"scratch.outage-{suffix}.v1", f"scratch.outage-dlq-{suffix}.v1"
    registry = new_topics(kafka_broker.bootstrap, source, dlq)
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")
    for case_id in ("waits-out-outage", "bad-sql"):
        event = OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), source, "22", case_id)
        producer.produce(source, key=b"22", value=wrap(event, "test").SerializeToString())
    producer.flush()
    producer.close()
    calls: dict[str, int] = {}

    def handle(envelope: EventEnvelope, message: object) -> None:
        case_id = message.case_id  # type: ignore[attr-defined]
        calls[case_id] = calls.get(case_id, 0) + 1
        if case_id == "bad-sql":
            raise OperationalError("SELECT nope", {}, Exception("no such table: nope"))
        if calls[case_id] <= 5:  # longer than max_attempts: an outage must not use them up
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    worker = EventConsumer(f"test-{suffix}", kafka_broker.bootstrap, [source], TypeRegistry([intake_events]),
                           handle, max_attempts=2, retry_backoff_s=0.01, urgent=set(), dlq_topic=dlq,
                           registry=registry)

    run_worker_until(worker, lambda: calls.get("waits-out-outage", 0) >= 6 and worker.counts["dead_lettered"] >= 1)
    assert calls["waits-out-outage"] == 6 and worker.counts["handled"] == 1
    assert calls["bad-sql"] == 2  # a bug in the SQL is a poison record: bounded retries, then the DLQ
    dead = dead_letters(kafka_broker.bootstrap, dlq)
    assert [d.original_offset for d in dead] == [1] and "no such table" in dead[0].error


def test_a_poll_is_handled_in_few_transactions_with_poison_taken_out_one_at_a_time(
        kafka_broker: KafkaBroker, engine: Engine) -> None:
    suffix = uuid.uuid4().hex[:8]
    source, dlq = f"scratch.batch-{suffix}.v1", f"scratch.batch-dlq-{suffix}.v1"
    registry = new_topics(kafka_broker.bootstrap, source, dlq)
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")
    sent = [f"case-{n}" for n in range(80)]
    sent[40] = "explodes"
    for case_id in sent:
        event = OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), source, "22", case_id)
        producer.produce(source, key=b"22", value=wrap(event, "test").SerializeToString())
        if case_id == "case-20":
            producer.produce(source, key=b"22", value=b"\x08\x96\x01 this is not an envelope")
    producer.flush()
    producer.close()
    commits = []
    sqlalchemy_event.listen(engine, "commit", lambda conn: commits.append(1))
    attempts: dict[str, int] = {}

    def handle(envelope: EventEnvelope, message: object) -> None:
        case_id = message.case_id  # type: ignore[attr-defined]
        attempts[case_id] = attempts.get(case_id, 0) + 1
        with NotesUnitOfWork(engine, "test") as work:
            work.add_note(case_id)
            if case_id == "explodes":
                raise ValueError("handler bug")
            work.commit()

    worker = EventConsumer(f"test-{suffix}", kafka_broker.bootstrap, [source], TypeRegistry([intake_events]),
                           handle, max_attempts=2, retry_backoff_s=0.01, urgent=set(), dlq_topic=dlq,
                           batch=partial(BatchTransaction, engine), batch_budget_s=60, registry=registry)

    run_worker_until(worker, lambda: worker.counts["handled"] + worker.counts["dead_lettered"] >= 81)
    with engine.connect() as conn:
        kept = sorted(conn.execute(select(notes.c.note_id)).scalars())
    assert kept == sorted(c for c in sent if c != "explodes")  # each once, the poison's work undone
    assert count(engine, outbox) == 79
    assert attempts["explodes"] == 3  # once in its batch, then twice on its own
    assert worker.counts == {"handled": 79, "duplicates": 0, "unknown_types": 0, "dead_lettered": 2}
    assert len(commits) < 79 / 4, f"{len(commits)} commits for 79 records: not batched"
    dead = dead_letters(kafka_broker.bootstrap, dlq)
    assert [d.original_offset for d in dead] == [21, 41]
    assert dead[0].error.startswith("malformed") and dead[1].error == "ValueError: handler bug"


def test_an_emergency_arriving_during_a_long_normal_poll_is_handled_between_its_chunks(
        kafka_broker: KafkaBroker, engine: Engine) -> None:
    suffix = uuid.uuid4().hex[:8]
    normal, urgent = f"scratch.chunks-{suffix}.v1", f"scratch.chunks-urgent-{suffix}.v1"
    registry = new_topics(kafka_broker.bootstrap, normal, urgent)
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")

    def send(topic: str, case_id: str) -> None:
        event = OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), topic, "22", case_id)
        producer.produce(topic, key=b"22", value=wrap(event, "test").SerializeToString())
        producer.flush(10)

    for n in range(40):
        send(normal, f"normal-{n}")
    handled: list[str] = []

    def handle(envelope: EventEnvelope, message: object) -> None:
        case_id = message.case_id  # type: ignore[attr-defined]
        handled.append(case_id)
        if case_id == "normal-0":
            send(urgent, "emergency")  # arrives while the rest of this poll waits its turn
        time.sleep(0.02)

    worker = EventConsumer(f"test-{suffix}", kafka_broker.bootstrap, [normal, urgent],
                           TypeRegistry([intake_events]), handle, urgent={urgent},
                           dlq_topic=f"scratch.chunks-dlq-{suffix}.v1", batch=partial(BatchTransaction, engine),
                           batch_budget_s=0.05, registry=registry)

    run_worker_until(worker, lambda: len(handled) >= 41)
    producer.close()
    assert sorted(handled) == sorted([f"normal-{n}" for n in range(40)] + ["emergency"])
    # The poll held all 40 normal records (800 ms of work); the emergency waited one 50 ms chunk or so.
    assert handled.index("emergency") < 10, handled

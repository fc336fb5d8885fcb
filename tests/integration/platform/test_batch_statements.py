"""What the consumer's fast path costs the database, counted in statements (SQLite and PostgreSQL): the platform's
share is a few statements per batch, none per record, and a redelivery stays a no-op, even one handled meanwhile
by another consumer of the group."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from functools import partial

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import Engine, insert, select
from sqlalchemy import event as sqlalchemy_event

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet_dev.kafka import KafkaBroker
from refnet_platform import kafka_clients
from refnet_platform.clock import system_clock
from refnet_platform.consumer import EventConsumer
from refnet_platform.envelope import OutgoingEvent, TypeRegistry, wrap
from refnet_platform.tables import inbox, outbox
from refnet_platform.topics import CASE_EVENTS, Topic
from refnet_platform.unit_of_work import BatchTransaction
from tests.integration.platform.test_delivery import (
    NotesUnitOfWork,
    count,
    engine,  # noqa: F401 (the fixture)
    new_topics,
    notes,
    run_worker_until,
)

TOPIC = "scratch.statements.v1"


def records(case_ids: list[str], event_ids: list[str] | None = None) -> list[ConsumerRecord[bytes, bytes]]:
    made = []
    for offset, case_id in enumerate(case_ids):
        event = OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), TOPIC, "22", case_id)
        value = wrap(event, "test", event_ids[offset] if event_ids else None).SerializeToString()
        made.append(ConsumerRecord(TOPIC, 0, offset, 0, 0, b"22", value, None, 2, len(value), ()))
    return made


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:  # noqa: F811
    executed: list[str] = []

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        executed.append(statement.split()[0].upper())

    sqlalchemy_event.listen(engine, "before_cursor_execute", note)
    yield executed
    sqlalchemy_event.remove(engine, "before_cursor_execute", note)


def worker(engine: Engine, handled: list[str], fail: str = "") -> EventConsumer:  # noqa: F811
    def handle(envelope: EventEnvelope, message: object) -> None:
        case_id = message.case_id  # type: ignore[attr-defined]
        handled.append(case_id)
        with NotesUnitOfWork(engine, "test") as work:
            work.add_note(case_id)
            if case_id == fail:
                raise ValueError("handler bug")
            work.commit()

    registry = {TOPIC: Topic(TOPIC, "province_code", 1, "test-relay", ("test-worker",), CASE_EVENTS)}
    return EventConsumer("test", "127.0.0.1:1", [TOPIC], TypeRegistry([intake_events]), handle,
                         dlq_topic="scratch.statements-dlq.v1", batch=partial(BatchTransaction, engine),
                         batch_budget_s=60, registry=registry)


def together(consumer: EventConsumer, made: list[ConsumerRecord[bytes, bytes]]) -> tuple[int, bool]:
    """The fast path over these records, in a copy of the context as the consumer runs it (in a worker thread)."""
    return contextvars.copy_context().run(consumer._handle_together, [consumer._read(record) for record in made])


def test_a_batch_costs_the_platform_a_few_statements_and_a_record_none(
        engine: Engine, statements: list[str]) -> None:  # noqa: F811
    handled: list[str] = []
    consumer = worker(engine, handled)
    cases = [f"case-{n}" for n in range(consumer.batch_size)]  # a whole poll
    assert together(consumer, records(cases)) == (100, False)
    executed = list(statements)
    assert handled == cases and (count(engine, notes), count(engine, outbox), count(engine, inbox)) == (100,) * 3
    own = executed.count("INSERT") - 2  # the handler's one insert per record; then outbox and inbox, once each
    platform = len(executed) - own
    # The inbox look-up, the outbox rows, the inbox rows (and PostgreSQL's NOTIFY): per batch, never per record.
    # It was five per record: SAVEPOINT, inbox SELECT, outbox INSERT, inbox INSERT, RELEASE; then a SELECT each
    # for the records past the 64th.
    assert own == 100 and platform <= 4, executed
    assert "SAVEPOINT" not in executed and "RELEASE" not in executed


def test_a_redelivered_batch_is_a_no_op_without_calling_the_handler(
        engine: Engine, statements: list[str]) -> None:  # noqa: F811
    handled: list[str] = []
    consumer = worker(engine, handled)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    cases = [f"case-{n}" for n in range(5)]
    assert together(consumer, records(cases, ids)) == (5, False)
    statements.clear()
    # Redelivered, and one record twice within the poll (a relay that resent it): each handled once.
    again = records([*cases, "case-0"], [*ids, ids[0]])
    assert together(consumer, again) == (6, False)
    assert statements == ["SELECT"], statements  # the one look-up
    assert handled == cases and consumer.counts["duplicates"] == 6
    fresh = records(["case-new", "case-new"], [str(uuid.uuid4())] * 2)
    assert together(consumer, fresh) == (2, False)
    assert handled == [*cases, "case-new"] and count(engine, notes) == 6


def test_a_failing_record_undoes_its_batch_and_the_records_before_it_are_redone_once(
        engine: Engine, statements: list[str]) -> None:  # noqa: F811
    handled: list[str] = []
    consumer = worker(engine, handled, fail="case-3")
    cases = [f"case-{n}" for n in range(6)]
    # Three committed (redone once in a new batch), the fourth for the careful path (retries, dead letter).
    assert together(consumer, records(cases)) == (3, True)
    assert handled == ["case-0", "case-1", "case-2", "case-3", "case-0", "case-1", "case-2"]
    with engine.connect() as conn:
        assert sorted(conn.execute(select(notes.c.note_id)).scalars()) == ["case-0", "case-1", "case-2"]
    assert (count(engine, outbox), count(engine, inbox)) == (3, 3)
    assert consumer.counts["handled"] == 3


def test_a_record_another_consumer_handled_meanwhile_turns_the_batch_to_the_careful_path(
        database_url: str, engine: Engine, kafka_broker: KafkaBroker) -> None:  # noqa: F811
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite: the batch holds the write lock from its look-up to its commit; no one records between")
    suffix = uuid.uuid4().hex[:8]
    source = f"scratch.raced-{suffix}.v1"
    registry = new_topics(kafka_broker.bootstrap, source)
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")
    cases = [f"case-{n}" for n in range(10)]
    ids = {case_id: str(uuid.uuid4()) for case_id in cases}
    for case_id in cases:
        event = OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), source, "22", case_id)
        producer.produce(source, key=b"22", value=wrap(event, "test", ids[case_id]).SerializeToString())
    producer.flush()
    producer.close()
    consumer_name = f"test-{suffix}-worker"
    calls: dict[str, int] = {}

    def handle(envelope: EventEnvelope, message: object) -> None:
        case_id = message.case_id  # type: ignore[attr-defined]
        calls[case_id] = calls.get(case_id, 0) + 1
        if case_id == "case-0" and calls[case_id] == 1:
            # Meanwhile another consumer of the group (after a rebalance) handles case-5 and commits.
            with engine.begin() as other:
                other.execute(insert(notes).values(note_id="case-5-by-the-other"))
                other.execute(insert(inbox).values(consumer=consumer_name, event_id=ids["case-5"],
                                                   processed_at=system_clock()))
        with NotesUnitOfWork(engine, "test") as work:
            work.add_note(case_id)
            work.commit()

    worker = EventConsumer(f"test-{suffix}", kafka_broker.bootstrap, [source], TypeRegistry([intake_events]),
                           handle, urgent=set(), dlq_topic=f"scratch.raced-dlq-{suffix}.v1",
                           batch=partial(BatchTransaction, engine), batch_budget_s=60, registry=registry)
    run_worker_until(worker, lambda: worker.counts["handled"] + worker.counts["duplicates"] >= 10)
    with engine.connect() as conn:
        kept = sorted(conn.execute(select(notes.c.note_id)).scalars())
    # Each once: case-5's effect is the other consumer's alone; this worker's batch that also did it was undone
    # whole when its commit met the other's inbox row, and its records were handled again.
    assert kept == sorted([c for c in cases if c != "case-5"] + ["case-5-by-the-other"])
    assert worker.counts["duplicates"] == 1 and worker.counts["handled"] == 9
    assert (calls["case-0"], calls["case-5"]) == (2, 1)
    assert count(engine, inbox) == 10

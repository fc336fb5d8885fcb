"""A relay on SQLite does not wait for a busy writer before it publishes on: a worker's batches hold the write lock
one after another, and a relay that waited for it to mark its last rows sent held back the rows committed
meanwhile (an emergency's among them). Real SQLite file, real broker."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet_dev.kafka import KafkaBroker, create_topics, read_records
from refnet_platform import kafka_clients
from refnet_platform import outbox as outbox_module
from refnet_platform.engine import make_engine, read_connection
from refnet_platform.outbox import Relay
from refnet_platform.tables import create_platform_tables, outbox

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'relay.db'}")
    with engine.begin() as conn:
        create_platform_tables(conn)
    return engine


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    name = f"scratch.relay-busy-{uuid.uuid4().hex[:8]}.v1"
    create_topics(kafka_broker.bootstrap, name)
    return name


def row(topic: str, subject: str) -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "topic": topic, "key": "22", "event_type": "test.Row",
            "value": EventEnvelope(subject=subject).SerializeToString(), "traceparent": "",
            "created_at": datetime.now(UTC)}


def next_batch(writer: Connection) -> None:
    """The writer commits its batch and at once begins the next, holding SQLite's write lock again (its first
    statement takes it: BEGIN IMMEDIATE)."""
    writer.commit()
    writer.exec_driver_sql("SELECT 1")


def unsent(engine: Engine) -> int:
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar_one())


def test_rows_committed_while_a_writer_holds_the_lock_go_out_at_once_and_each_once(
        engine: Engine, topic: str, kafka_broker: KafkaBroker) -> None:
    relay = Relay(engine, kafka_clients.producer(kafka_broker.bootstrap, "refnet-relay"))
    writer = engine.connect()
    try:
        writer.execute(insert(outbox), [row(topic, "first")])
        next_batch(writer)
        # Returns while the writer still holds the lock: marking the row would have waited for it (up to 30 s).
        assert relay.publish_pending() == 1
        assert unsent(engine) == 1

        writer.execute(insert(outbox), [row(topic, "second")])
        next_batch(writer)
        assert relay.publish_pending() == 1  # the new row alone: the first is not sent again
        assert unsent(engine) == 2
    finally:
        writer.rollback()
        writer.close()

    assert relay.publish_pending() == 0  # nothing new; with the lock free, both are marked sent now
    assert unsent(engine) == 0
    records = read_records(kafka_broker.bootstrap, topic, at_least=2, timeout_s=30)
    time.sleep(1)
    records = read_records(kafka_broker.bootstrap, topic, at_least=len(records), timeout_s=5)
    assert [EventEnvelope.FromString(r.value or b"").subject for r in records] == ["first", "second"]


def test_rows_left_unmarked_for_long_are_marked_with_a_writer_s_patience(
        engine: Engine, topic: str, kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "MARK_WITHIN_S", 0.0)
    relay = Relay(engine, kafka_clients.producer(kafka_broker.bootstrap, "refnet-relay"))
    writer = engine.connect()
    try:
        writer.execute(insert(outbox), [row(topic, "only")])
        next_batch(writer)
        publishing = threading.Thread(target=relay.publish_pending, daemon=True)
        publishing.start()
        time.sleep(0.5)
        assert publishing.is_alive()  # waiting for the lock to mark the row, as any writer would
        assert unsent(engine) == 1
    finally:
        writer.rollback()
        writer.close()
    publishing.join(10)
    assert not publishing.is_alive()
    assert unsent(engine) == 0


def test_a_relay_stopping_marks_what_it_sent(engine: Engine, topic: str, kafka_broker: KafkaBroker,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "MARK_WITHIN_S", 60.0)  # while it runs, it would leave the row unmarked
    relay = Relay(engine, kafka_clients.producer(kafka_broker.bootstrap, "refnet-relay"), poll_interval_s=0.05)
    writer = engine.connect()
    runner = threading.Thread(target=relay.run, daemon=True)
    try:
        writer.execute(insert(outbox), [row(topic, "at stop")])
        next_batch(writer)
        runner.start()
        assert len(read_records(kafka_broker.bootstrap, topic, at_least=1, timeout_s=30)) == 1
        relay.stopping.set()
        time.sleep(0.3)
        assert runner.is_alive()  # its last marking waits for the writer
    finally:
        writer.rollback()
        writer.close()
    runner.join(10)
    assert not runner.is_alive()
    assert unsent(engine) == 0

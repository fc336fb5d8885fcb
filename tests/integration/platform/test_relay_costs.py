"""What a relay batch costs and what it must still guarantee, on real databases (SQLite and PostgreSQL) and a
real broker: a published batch costs the relay three statements, and neither its own marking nor a commit
without outbox rows wakes it for an empty round; a row the broker did not acknowledge stays pending; the lease
is renewed in a marking transaction only once a third of it has passed, and a relay that lost it marks
nothing."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaException
from sqlalchemy import Engine, event, func, insert, select, text

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet_dev.kafka import KafkaBroker, create_topics, read_records
from refnet_dev.util import free_port
from refnet_platform import kafka_clients
from refnet_platform.clock import ManualClock
from refnet_platform.engine import is_postgres
from refnet_platform.outbox import Relay
from refnet_platform.relay_lease import LeaseLost, RelayLease
from refnet_platform.tables import inbox, outbox, outbox_channel, relay_lease

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def write_rows(engine: Engine, topic: str, keys: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(outbox), [
            {"event_id": str(uuid.uuid4()), "topic": topic, "key": "22", "event_type": "test.Row",
             "value": EventEnvelope(subject=f"case/{key}").SerializeToString(),
             "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
             "created_at": datetime.now(UTC)} for key in keys])
        if is_postgres(engine):  # as a unit of work does: the commit wakes the relay
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(None)})


def subjects(bootstrap: str, topic: str, at_least: int) -> list[str]:
    return [EventEnvelope.FromString(r.value or b"").subject
            for r in read_records(bootstrap, topic, at_least=at_least, timeout_s=30)]


def pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar_one())


def test_a_published_batch_costs_three_statements_and_neither_its_marking_nor_other_commits_wake_the_relay(
        engine: Engine, kafka_broker: KafkaBroker) -> None:
    topic = f"scratch.relay-cost-{uuid.uuid4().hex[:8]}.v1"
    create_topics(kafka_broker.bootstrap, topic)
    relay = Relay(engine, kafka_clients.producer(kafka_broker.bootstrap, "refnet-relay"), poll_interval_s=60)
    rounds: list[int] = []
    statements = [0]
    publish = relay.publish_pending

    def counted(*args: object) -> int:
        rounds.append(publish(*args))  # type: ignore[arg-type]
        return rounds[-1]

    relay.publish_pending = counted  # type: ignore[method-assign]
    runner = threading.Thread(target=relay.run, daemon=True)

    @event.listens_for(engine, "before_cursor_execute")
    def count(*_: object) -> None:
        if threading.current_thread() is runner:
            statements[0] += 1

    runner.start()
    try:
        time.sleep(1)  # waiting for a commit
        for n in range(5):
            write_rows(engine, topic, [f"r{n}"])
            deadline = time.monotonic() + 20
            while pending(engine) and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)  # an empty round woken by the relay's own marking would come now
        for n in range(3):  # commits that wrote no outbox row (a worker's inbox-only batch) wake no round
            with engine.begin() as conn:
                conn.execute(insert(inbox).values(consumer="test", event_id=f"e{n}", processed_at=datetime.now(UTC)))
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        relay.stopping.set()
        runner.join(70)
    assert subjects(kafka_broker.bootstrap, topic, 5) == [f"case/r{n}" for n in range(5)]
    published = [n for n in rounds if n]
    assert published == [1] * 5
    assert len(rounds) - len(published) <= 1, f"empty rounds: {rounds}"  # the one at start only
    # Per published batch: its read (BEGIN, SELECT) and the marking UPDATE; nothing for the lease or the lanes.
    assert statements[0] <= 3 * len(published) + 2, statements[0]


def test_rows_the_broker_did_not_acknowledge_stay_pending_and_go_out_in_order_later(
        engine: Engine, kafka_broker: KafkaBroker) -> None:
    topic = f"scratch.relay-unacked-{uuid.uuid4().hex[:8]}.v1"
    create_topics(kafka_broker.bootstrap, topic)
    write_rows(engine, topic, ["a", "b", "c"])
    nowhere = kafka_clients.producer(f"127.0.0.1:{free_port()}", "refnet-relay", **{"message.timeout.ms": 1000})
    with pytest.raises(KafkaException):
        Relay(engine, nowhere).publish_pending()
    assert pending(engine) == 3
    relay = Relay(engine, kafka_clients.producer(kafka_broker.bootstrap, "refnet-relay"))
    assert relay.publish_pending() == 3 and pending(engine) == 0
    assert subjects(kafka_broker.bootstrap, topic, 3) == ["case/a", "case/b", "case/c"]


def test_the_lease_is_renewed_while_marking_only_once_a_third_of_it_passed_and_a_lost_one_marks_nothing(
        engine: Engine) -> None:
    clock = ManualClock(T0)
    first, second = (RelayLease(engine, "intake-relay", ttl_s=9, owner=o, clock=clock) for o in ("a", "b"))
    assert first.acquire()

    def expires_at() -> datetime:
        with engine.connect() as conn:
            found: datetime = conn.execute(select(relay_lease.c.expires_at)).scalar_one()
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found

    clock.advance(seconds=2)
    with engine.begin() as conn:
        first.keep_within(conn)  # 7 s left: still ours by its own clock, no statement
    assert expires_at() == T0.replace(second=9)
    clock.advance(seconds=2)
    with engine.begin() as conn:
        first.keep_within(conn)  # a third passed: renewed in the marking transaction
    assert expires_at() == T0.replace(second=13)
    clock.advance(seconds=10)  # the first went silent; the second takes over
    assert second.acquire()
    with pytest.raises(LeaseLost), engine.begin() as conn:
        first.keep_within(conn)
    assert first.remaining_s() == 0

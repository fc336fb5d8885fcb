"""How a worker fetches (refnet_platform.kafka_clients.PREFETCH_BACKOFF_S): the urgent lane is fetched while a normal
backlog waits in the consumer's buffer (aiokafka by default holds back every fetch from a broker for 100 ms after it
buffered records of one of its partitions: with one broker an emergency then waited behind the buffered backlog at
every hop), and records arriving steadily are fetched as they come."""

from __future__ import annotations

import os
import threading
import time
import uuid
from functools import partial

from sqlalchemy import Engine

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet_dev.kafka import KafkaBroker, create_topics
from refnet_platform import kafka_clients
from refnet_platform.consumer import EventConsumer
from refnet_platform.envelope import OutgoingEvent, TypeRegistry, wrap
from refnet_platform.lanes import NORMAL_LANE_NICE
from refnet_platform.topics import CASE_EVENTS, Topic
from refnet_platform.unit_of_work import BatchTransaction
from tests.integration.platform.test_delivery import (
    engine,  # noqa: F401 (the fixture)
    new_topics,
    run_worker_until,
)

# Each normal record takes this long to handle (and a little more to commit): aiokafka's 100 ms is 13-17 records.
HANDLING_S = 0.005


def _handled_with_an_emergency(kafka: KafkaBroker, engine: Engine, batch_size: int,  # noqa: F811
                               budget_s: float) -> list[tuple[str, int]]:
    """200 normal records, and an emergency sent as the first of them is handled: each record handled, in order,
    with the CPU priority (nice) of the thread that handled it."""
    suffix = uuid.uuid4().hex[:8]
    normal, urgent = f"scratch.fetch-{suffix}.v1", f"scratch.fetch-urgent-{suffix}.v1"
    registry = new_topics(kafka.bootstrap, normal, urgent)
    producer = kafka_clients.producer(kafka.bootstrap, "test")

    def send(topic: str, case_id: str) -> None:
        event = OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), topic, "22", case_id)
        producer.produce(topic, key=b"22", value=wrap(event, "test").SerializeToString())

    for n in range(200):  # one fetch brings them into the buffer; a poll takes `batch_size`, the rest wait there
        send(normal, f"normal-{n}")
    producer.flush(10)
    handled: list[tuple[str, int]] = []

    def handle(envelope: EventEnvelope, message: object) -> None:
        case_id = message.case_id  # type: ignore[attr-defined]
        handled.append((case_id, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        if case_id == "normal-0":  # just after the backlog was fetched
            send(urgent, "emergency")
            producer.flush(10)
        time.sleep(HANDLING_S)

    worker = EventConsumer(f"test-{suffix}", kafka.bootstrap, [normal, urgent],
                           TypeRegistry([intake_events]), handle, urgent={urgent},
                           dlq_topic=f"scratch.fetch-dlq-{suffix}.v1", batch=partial(BatchTransaction, engine),
                           batch_size=batch_size, batch_budget_s=budget_s, registry=registry)
    run_worker_until(worker, lambda: any(case_id == "emergency" for case_id, _ in handled))
    producer.close()
    return handled


def _position(handled: list[tuple[str, int]], case_id: str) -> int:
    return [c for c, _ in handled].index(case_id)


def test_an_emergency_sent_while_a_fetched_backlog_waits_is_fetched_and_handled_within_a_few_records(
        kafka_broker: KafkaBroker, engine: Engine) -> None:  # noqa: F811
    handled = _handled_with_an_emergency(kafka_broker, engine, batch_size=20, budget_s=4 * HANDLING_S)
    # Fetched at once (a few ms), handled at the end of the chunk (1-2 records); held back, 13-17 records later.
    assert _position(handled, "emergency") <= 8, handled[:30]


def test_an_emergency_ends_a_batch_of_normal_records_at_the_next_record(
        kafka_broker: KafkaBroker, engine: Engine) -> None:  # noqa: F811
    """A batch of normal records ends once an urgent record is in the consumer's buffer, not at its budget: here
    the budget would let one batch take the whole poll of 100 records, and the emergency waited for all of them."""
    handled = _handled_with_an_emergency(kafka_broker, engine, batch_size=100, budget_s=10.0)
    assert _position(handled, "emergency") <= 8, [c for c, _ in handled][:30]


def test_normal_records_are_handled_below_the_process_priority_and_an_emergency_at_it(
        kafka_broker: KafkaBroker, engine: Engine) -> None:  # noqa: F811
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    handled = _handled_with_an_emergency(kafka_broker, engine, batch_size=20, budget_s=4 * HANDLING_S)
    priorities = dict(handled)
    assert priorities["emergency"] == own
    assert {priorities[c] for c in priorities if c.startswith("normal-")} == {min(19, own + NORMAL_LANE_NICE)}


def test_records_arriving_steadily_on_one_partition_are_fetched_as_they_come(
        kafka_broker: KafkaBroker, engine: Engine) -> None:  # noqa: F811
    """Without a prefetch backoff the next fetch went out before the worker had taken what came, leaving that
    partition out; the broker held the fetch for the quiet others (FETCH_MAX_WAIT_MS), and a record arriving
    meanwhile waited for it: 30-80 ms at a record every 25 ms, where it now takes a few."""
    suffix = uuid.uuid4().hex[:8]
    busy = f"scratch.steady-{suffix}.v1"
    create_topics(kafka_broker.bootstrap, busy, partitions=3)
    registry = {busy: Topic(busy, "province_code", 3, "test-relay", ("test-worker",), CASE_EVENTS)}
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")
    waited_ms: list[float] = []

    def handle(envelope: EventEnvelope, message: object) -> None:
        waited_ms.append((time.time() - float(message.case_id)) * 1000)  # type: ignore[attr-defined]

    worker = EventConsumer(f"test-{suffix}", kafka_broker.bootstrap, [busy], TypeRegistry([intake_events]), handle,
                           urgent=set(), dlq_topic=f"scratch.steady-dlq-{suffix}.v1",
                           batch=partial(BatchTransaction, engine), registry=registry)

    def send_steadily() -> None:
        time.sleep(2)  # the worker has joined its group and fetches
        for _ in range(40):
            sent = f"{time.time():.6f}"
            event = OutgoingEvent(intake_events.CaseClosed(case_id=sent, province_code="22"), busy, "22", sent)
            producer.produce(busy, partition=0, key=b"22", value=wrap(event, "test").SerializeToString())
            producer.flush(10)
            time.sleep(0.025)

    sender = threading.Thread(target=send_steadily)
    sender.start()
    run_worker_until(worker, lambda: len(waited_ms) >= 40)
    sender.join()
    producer.close()
    waited_ms.sort()
    assert len(waited_ms) == 40
    assert waited_ms[len(waited_ms) // 2] < 20 and waited_ms[int(len(waited_ms) * 0.9)] < 40, waited_ms

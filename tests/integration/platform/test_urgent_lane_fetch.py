"""The urgent lane is fetched while a normal backlog waits in the consumer's buffer. aiokafka by default holds
back every fetch from a broker for 100 ms after it buffered records of one of its partitions: with one broker
an emergency then waited behind the buffered backlog at every hop (refnet_platform.consumer.PREFETCH_BACKOFF_S)."""

from __future__ import annotations

import time
import uuid
from functools import partial

from sqlalchemy import Engine

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet_dev.kafka import KafkaBroker
from refnet_platform import kafka_clients
from refnet_platform.consumer import EventConsumer
from refnet_platform.envelope import OutgoingEvent, TypeRegistry, wrap
from refnet_platform.unit_of_work import BatchTransaction
from tests.integration.platform.test_delivery import (
    engine,  # noqa: F401 (the fixture)
    new_topics,
    run_worker_until,
)

# Each normal record takes this long to handle (and a little more to commit): aiokafka's 100 ms is 13-17 records.
HANDLING_S = 0.005


def test_an_emergency_sent_while_a_fetched_backlog_waits_is_fetched_and_handled_within_a_few_records(
        kafka_broker: KafkaBroker, engine: Engine) -> None:  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    normal, urgent = f"scratch.fetch-{suffix}.v1", f"scratch.fetch-urgent-{suffix}.v1"
    registry = new_topics(kafka_broker.bootstrap, normal, urgent)
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")

    def send(topic: str, case_id: str) -> None:
        event = OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), topic, "22", case_id)
        producer.produce(topic, key=b"22", value=wrap(event, "test").SerializeToString())

    for n in range(200):  # one fetch brings them into the buffer; a poll takes 20, the rest wait there
        send(normal, f"normal-{n}")
    producer.flush(10)
    handled: list[str] = []

    def handle(envelope: EventEnvelope, message: object) -> None:
        case_id = message.case_id  # type: ignore[attr-defined]
        handled.append(case_id)
        if case_id == "normal-0":  # just after the backlog was fetched
            send(urgent, "emergency")
            producer.flush(10)
        time.sleep(HANDLING_S)

    worker = EventConsumer(f"test-{suffix}", kafka_broker.bootstrap, [normal, urgent],
                           TypeRegistry([intake_events]), handle, urgent={urgent},
                           dlq_topic=f"scratch.fetch-dlq-{suffix}.v1", batch=partial(BatchTransaction, engine),
                           batch_size=20, batch_budget_s=4 * HANDLING_S, registry=registry)

    run_worker_until(worker, lambda: "emergency" in handled)
    producer.close()
    # Fetched at once (a few ms), handled at the end of the chunk (1-2 records); held back, 13-17 records later.
    assert handled.index("emergency") <= 8, handled[:30]

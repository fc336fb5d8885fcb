"""Dead letters on real Kafka: a worker's real consumer dead-letters a poison record, ops reads it off the
dead-letter topic and replays the original record, byte for byte, once."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from google.protobuf import any_pb2
from sqlalchemy import Engine

from ops.adapters.kafka import DeadLetterSource, KafkaInspector, Replayer
from ops.bootstrap import bootstrap
from ops.config import Settings
from ops.domain import commands
from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet_dev.kafka import KafkaBroker, commit_offsets, end_offsets, read_records, send
from refnet_platform import kafka_clients
from refnet_platform.consumer import EventConsumer
from refnet_platform.envelope import TypeRegistry, new_event_id
from refnet_platform.errors import AlreadyExists

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPIC = "intake.cases.v1"


def poison_envelope() -> EventEnvelope:
    """A well-formed CaseRegistered whose handler below always fails."""
    data = any_pb2.Any()
    data.Pack(intake_events.CaseRegistered(case_id=f"poison-{uuid.uuid4().hex[:8]}", province_code="22"))
    return EventEnvelope(id=new_event_id(), source="refnet/intake", type="refnet.intake.v1.CaseRegistered",
                         subject="case/poison", partition_key="22", specversion="1.0", data=data)


async def dead_letter_one(bootstrap: str, envelope: EventEnvelope) -> None:
    """Runs a real EventConsumer (as the test's own "ops" group) whose handler rejects the record."""
    def handle(env: EventEnvelope, message: object) -> None:
        if env.id == envelope.id:
            raise ValueError("province 22 has no such commune")

    consumer = EventConsumer("ops", bootstrap, [TOPIC], TypeRegistry([intake_events]), handle, max_attempts=2,
                             retry_backoff_s=0.01)
    # ops-worker's own group: a letter is replayed only to a topic its consumer group reads. The record is
    # produced after whatever the group committed before, so it is read either way.
    send(kafka_clients.producer(bootstrap, "ops-test"), TOPIC, envelope.SerializeToString(), key=b"22")
    task = asyncio.create_task(consumer.run())
    deadline = time.monotonic() + 40
    while consumer.counts["dead_lettered"] < 1 and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.1)
    consumer.stop()
    await asyncio.wait_for(task, timeout=20)
    assert consumer.counts["dead_lettered"] >= 1


def read_at(bootstrap: str, topic: str, partition: int, offset: int) -> tuple[bytes | None, bytes | None]:
    record = read_records(bootstrap, topic, start={partition: offset}, at_least=1)[0]
    return record.key, record.value


async def test_a_poison_record_is_dead_lettered_listed_and_replayed_once(
        kafka_broker: KafkaBroker, ops_settings: Settings, ops_engine: Engine) -> None:
    envelope = poison_envelope()
    await dead_letter_one(kafka_broker.bootstrap, envelope)

    source, replayer = DeadLetterSource(kafka_broker.bootstrap), Replayer(kafka_broker.bootstrap)
    bus = bootstrap(ops_settings, ops_engine, source=source, replayer=replayer)
    try:
        assert await asyncio.to_thread(bus.handle, commands.CollectDeadLetters()) >= 1
        assert await asyncio.to_thread(bus.handle, commands.CollectDeadLetters()) == 0  # nothing new since
        [letter] = [v for v in bus.handle(commands.ListDeadLetters()) if v.event_id == envelope.id]
        assert letter.dlq_topic == "ops.dlq.v1" and letter.original_topic == TOPIC
        assert letter.error == "ValueError: province 22 has no such commune" and letter.attempts == 2

        result = await asyncio.to_thread(bus.handle, commands.ReplayDeadLetter(letter.letter_id, "ops-anna"))
        key, value = read_at(kafka_broker.bootstrap, TOPIC, letter.original_partition, int(result["offset"]))
        assert key == b"22" and value == envelope.SerializeToString()  # same bytes, so the same envelope id
        with pytest.raises(AlreadyExists):
            await asyncio.to_thread(bus.handle, commands.ReplayDeadLetter(letter.letter_id, "ops-bao"))
    finally:
        source.close()
        replayer.close()


def test_the_inspector_sees_topics_and_group_lag(kafka_broker: KafkaBroker) -> None:
    group = f"ops-lag-{uuid.uuid4().hex[:6]}"
    topic = "notifications.deliveries.v1"
    producer = kafka_clients.producer(kafka_broker.bootstrap, "ops-test")
    for _ in range(3):
        send(producer, topic, b"x", key=b"92", partition=0)
    end = end_offsets(kafka_broker.bootstrap, [(topic, 0)])[(topic, 0)]
    commit_offsets(kafka_broker.bootstrap, group, {(topic, 0): end - 2})

    inspector = KafkaInspector(kafka_broker.bootstrap)
    try:
        [row] = [r for r in inspector.lag() if r.group == group]
        assert (row.topic, row.partition, row.lag, row.end) == (topic, 0, 2, end)
        topics = {t.name: t for t in inspector.topics()}
        assert topics[topic].partitions == 6 and topics[topic].records >= 3
        assert topics["ops.dlq.v1"].lane == "dead-letter"
    finally:
        inspector.close()

"""A forged event type on a topic, and an event from a source that does not write the topic, are
dead-lettered with the reason by a real consumer on real Kafka: not handled, not lost, the offset committed
past them. The topic is a scratch twin of intake's case stream with the registry's own entry for it."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message

from refnet.common.v1.envelope_pb2 import DeadLetter, EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.referral.v1 import events_pb2 as referral_events
from refnet_dev.kafka import KafkaBroker, committed_offsets, create_topics, read_records, send
from refnet_platform import kafka_clients
from refnet_platform.consumer import EventConsumer
from refnet_platform.envelope import TypeRegistry, new_event_id
from refnet_platform.topics import topic
from tests.integration.platform.test_delivery import run_worker_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def envelope(message: Message, source: str) -> EventEnvelope:
    data = any_pb2.Any()
    data.Pack(message)
    return EventEnvelope(id=new_event_id(), source=source, type=message.DESCRIPTOR.full_name,
                         subject="case/forged", partition_key="22", specversion="1.0", data=data)


def test_a_forged_event_type_and_a_wrong_source_are_dead_lettered_with_the_reason(kafka_broker: KafkaBroker) -> None:
    suffix = uuid.uuid4().hex[:8]
    cases, dlq = f"scratch.cases-{suffix}.v1", f"scratch.dlq-{suffix}.v1"
    create_topics(kafka_broker.bootstrap, cases, dlq)
    registry = {cases: replace(topic("intake.cases.v1"), name=cases, partitions=1)}  # the registry's own rule
    case_id = f"case-{suffix}"
    escalated = referral_events.ReferralEscalated(referral_id="r-1", case_id=case_id, province_code="22")
    registered = intake_events.CaseRegistered(case_id=case_id, province_code="22")
    records = {
        # a real type, a real source, but intake's stream does not carry referral's escalations
        "forged type": envelope(escalated, "refnet/intake"),
        # intake's type on intake's stream, from someone who is not intake
        "wrong source": envelope(registered, "refnet/referral"),
        "genuine": envelope(registered, "refnet/intake"),
    }
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")
    sent = {name: send(producer, cases, e.SerializeToString(), key=b"22") for name, e in records.items()}
    handled: list[str] = []

    def handle(env: EventEnvelope, message: object) -> None:
        handled.append(env.id)

    worker = EventConsumer(f"test-{suffix}", kafka_broker.bootstrap, [cases],
                           TypeRegistry([intake_events, referral_events]), handle, urgent=set(), dlq_topic=dlq,
                           registry=registry)
    run_worker_until(worker, lambda: worker.counts["dead_lettered"] >= 2 and bool(handled))

    assert handled == [records["genuine"].id]  # the consumer acted on the genuine one only
    letters = {letter.original_offset: letter for letter in
               (DeadLetter.FromString(r.value or b"") for r in read_records(kafka_broker.bootstrap, dlq, at_least=2))}
    forged, wrong = letters[sent["forged type"].offset], letters[sent["wrong source"].offset]
    assert forged.error == (f"unregistered: refnet.referral.v1.ReferralEscalated is not registered for {cases}")
    assert wrong.error == (f"unregistered: source 'refnet/referral' does not write {cases} "
                           "(its writer is intake-relay, source 'refnet/intake')")
    for letter, name in ((forged, "forged type"), (wrong, "wrong source")):  # nothing lost: the record itself
        assert (letter.consumer, letter.original_topic, letter.event_id) == (f"test-{suffix}-worker", cases,
                                                                            records[name].id)
        assert letter.original_value == records[name].SerializeToString()
    # The offset is committed past all three: the partition moves on.
    assert committed_offsets(kafka_broker.bootstrap, f"test-{suffix}-worker") == {(cases, 0): 3}
    assert worker.counts == {"handled": 1, "duplicates": 0, "unknown_types": 0, "dead_lettered": 2}

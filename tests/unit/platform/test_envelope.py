from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.consumer import EventConsumer, admit, writer_source
from refnet_platform.context import Causation, current_causation
from refnet_platform.envelope import (
    MalformedEvent,
    OutgoingEvent,
    TypeRegistry,
    UnknownEventType,
    UnregisteredEvent,
    decode,
    new_event_id,
    wrap,
)
from refnet_platform.topics import CASE_EVENTS, TOPICS, topic


def _event() -> OutgoingEvent:
    return OutgoingEvent(intake_events.CaseClosed(case_id="c1", province_code="22"), "intake.cases.v1", "22", "case/c1")


def test_wrap_fills_cloudevents_attributes_with_a_uuid7_id() -> None:
    envelope = wrap(_event(), "intake")
    assert uuid.UUID(envelope.id).version == 7
    assert (envelope.source, envelope.type, envelope.subject) == ("refnet/intake", "refnet.intake.v1.CaseClosed",
                                                                  "case/c1")
    assert (envelope.partition_key, envelope.specversion) == ("22", "1.0")
    # The first event of a flow correlates with itself.
    assert envelope.correlation_id == envelope.id and envelope.causation_id == ""


def test_event_ids_keep_their_order_and_the_clock_when_minted_by_the_thousand() -> None:
    # A draining worker mints thousands of ids a second: each must sort after the one before, and the time in it
    # must stay the clock's (an id generator that moved a millisecond ahead per id ran seconds ahead here).
    ids = [new_event_id() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    last_ms = uuid.UUID(ids[-1]).int >> 80
    assert abs(last_ms - time.time() * 1000) < 1000


def test_wrap_carries_the_flow_it_is_part_of() -> None:
    token = current_causation.set(Causation(correlation_id="flow-1", causation_id="event-9"))
    try:
        envelope = wrap(_event(), "referral")
    finally:
        current_causation.reset(token)
    assert (envelope.correlation_id, envelope.causation_id) == ("flow-1", "event-9")


def test_round_trip_through_bytes_and_the_registry() -> None:
    registry = TypeRegistry([intake_events])
    decoded = decode(wrap(_event(), "intake").SerializeToString())
    message = registry.unpack(decoded)
    assert isinstance(message, intake_events.CaseClosed) and message.case_id == "c1"


@pytest.mark.parametrize("value", [None, b"", b"\xff\xff\xff", EventEnvelope(type="x").SerializeToString(),
                                   EventEnvelope(id="1", type="x").SerializeToString()])
def test_decode_refuses_what_is_not_a_whole_envelope(value: bytes | None) -> None:
    with pytest.raises(MalformedEvent):
        decode(value)


def test_unknown_types_are_told_apart_from_malformed_ones() -> None:
    envelope = wrap(_event(), "intake")
    with pytest.raises(UnknownEventType):
        TypeRegistry([shelter_events]).unpack(envelope)
    envelope.type = "refnet.shelter.v1.BedReserved"  # says one type, carries another
    with pytest.raises(MalformedEvent):
        TypeRegistry([shelter_events]).unpack(envelope)


# --- what a topic admits: the registry's types for it, from its one writer -----------------------------------

def test_every_registered_type_from_the_topic_writer_is_admitted() -> None:
    for registered in (t for t in TOPICS if not t.dead_letter):
        for type_name in registered.message_types:
            admit(EventEnvelope(id="e", type=type_name, source=writer_source(registered)), registered)


def test_the_writer_source_is_the_relay_service_even_on_a_command_topic() -> None:
    assert writer_source(topic("intake.cases.v1")) == "refnet/intake"
    assert writer_source(topic("shelter.bed-commands.v1")) == "refnet/referral"  # owned by shelter, sent by referral


def test_a_type_not_registered_for_the_topic_is_refused_naming_both() -> None:
    cases = topic("intake.cases.v1")
    forged = EventEnvelope(id="e", type="refnet.referral.v1.ReferralEscalated", source="refnet/intake")
    with pytest.raises(UnregisteredEvent, match=r"refnet\.referral\.v1\.ReferralEscalated is not registered for "
                                                r"intake\.cases\.v1") as refused:
        admit(forged, cases)
    assert refused.value.envelope is forged and isinstance(refused.value, MalformedEvent)


def test_an_event_from_another_source_is_refused_naming_the_writer() -> None:
    commands = topic("shelter.bed-commands.v1")
    with pytest.raises(UnregisteredEvent, match=r"source 'refnet/web' does not write shelter.bed-commands.v1 "
                                                r"\(its writer is referral-relay"):
        admit(EventEnvelope(id="e", type="refnet.shelter.v1.ReserveBed", source="refnet/web"), commands)


def test_a_type_its_owner_adds_to_the_registry_is_admitted_with_no_consumer_change() -> None:
    grown = replace(topic("intake.cases.v1"), message_types=(*CASE_EVENTS, "refnet.intake.v1.SomethingNew"))
    new = EventEnvelope(id="e", type="refnet.intake.v1.SomethingNew", source="refnet/intake")
    admit(new, grown)
    with pytest.raises(UnregisteredEvent):
        admit(new, topic("intake.cases.v1"))


def test_a_consumer_refuses_topics_the_registry_does_not_list() -> None:
    with pytest.raises(ValueError, match=r"topics: scratch.nowhere.v1 not in the topic registry"):
        EventConsumer("intake", "b:9092", ["scratch.nowhere.v1"], TypeRegistry(), lambda e, m: None)

from __future__ import annotations

import uuid

import pytest

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.context import Causation, current_causation
from refnet_platform.envelope import MalformedEvent, OutgoingEvent, TypeRegistry, UnknownEventType, decode, wrap


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

"""The one module that maps shelter's protobuf messages to and from its domain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from refnet.common.v1 import types_pb2
from refnet.shelter.v1 import events_pb2
from refnet.shelter.v1 import shelter_service_pb2 as pb
from refnet_platform.envelope import OutgoingEvent, TypeRegistry
from refnet_platform.vocabulary import TargetGroup, from_pb, to_pb
from shelter.domain import commands, events
from shelter.domain.model import Shelter

BEDS_TOPIC = "shelter.beds.v1"
CONSUMED_TYPES = TypeRegistry([events_pb2])


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def availability_to_pb(s: Shelter) -> pb.Availability:
    return pb.Availability(shelter_id=s.shelter_id, province_code=s.province_code,
                           target_group=to_pb(s.target_group, types_pb2.TargetGroup), capacity=s.capacity,
                           reserved=s.reserved, occupied=s.occupied, free=s.free,
                           confirmed_at=_timestamp(s.confirmed_at))


def event_to_record(event: object) -> OutgoingEvent:
    if isinstance(event, events.BedReserved):
        r = event.reservation
        message = events_pb2.BedReserved(referral_id=r.referral_id, case_id=r.case_id, shelter_id=r.shelter_id,
                                         province_code=r.province_code, hold_until=_timestamp(r.hold_until),
                                         free_after=event.free_after)
        return OutgoingEvent(message, BEDS_TOPIC, key=r.province_code, subject=f"shelter/{r.shelter_id}")
    if isinstance(event, events.BedReservationRejected):
        rejected = events_pb2.BedReservationRejected(
            referral_id=event.referral_id, case_id=event.case_id, shelter_id=event.shelter_id,
            province_code=event.province_code, reason=event.reason)
        return OutgoingEvent(rejected, BEDS_TOPIC, key=event.province_code, subject=f"shelter/{event.shelter_id}")
    if isinstance(event, events.CapacityChanged):
        s = event.shelter
        changed = events_pb2.CapacityChanged(
            shelter_id=s.shelter_id, province_code=s.province_code,
            target_group=to_pb(s.target_group, types_pb2.TargetGroup), capacity=s.capacity, reserved=s.reserved,
            occupied=s.occupied)
        return OutgoingEvent(changed, BEDS_TOPIC, key=s.province_code, subject=f"shelter/{s.shelter_id}")
    raise TypeError(f"no record mapping for {type(event).__name__}")


def command_for(message: object) -> object | None:
    if isinstance(message, events_pb2.ReserveBed):
        return commands.ReserveBed(
            referral_id=message.referral_id, case_id=message.case_id, shelter_id=message.shelter_id,
            province_code=message.province_code,
            target_group=from_pb(TargetGroup, types_pb2.TargetGroup, message.target_group),
            hold_until=message.hold_until.ToDatetime(tzinfo=UTC))
    return None


def load_directory_file(path: Path) -> commands.LoadShelters:
    data = json.loads(path.read_text(encoding="utf-8"))
    now = datetime.now(UTC)
    return commands.LoadShelters([
        Shelter(shelter_id=p["shelter"]["shelter_id"], name=p["name"], province_code=p["province_code"],
                commune_code=p["commune_code"], target_group=TargetGroup(p["shelter"]["target_group"]),
                capacity=p["shelter"]["capacity"], reserved=0, occupied=0, confirmed_at=now,
                address=p["shelter"]["address"])
        for p in data["providers"] if "shelter" in p
    ])

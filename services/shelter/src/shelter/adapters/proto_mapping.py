"""The one module that maps shelter's protobuf messages to and from its domain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from google.protobuf.duration_pb2 import Duration

from refnet.common.v1 import types_pb2
from refnet.shelter.v1 import events_pb2
from refnet.shelter.v1 import shelter_service_pb2 as pb
from refnet_platform.caller import Caller
from refnet_platform.clock import system_clock
from refnet_platform.envelope import OutgoingEvent, TypeRegistry
from refnet_platform.phone import normalise_phone
from refnet_platform.timestamps import from_timestamp, to_timestamp
from refnet_platform.vocabulary import RELEASE_REASONS, ReleaseReason, TargetGroup, from_pb, parse_code, to_pb
from shelter.domain import commands, events
from shelter.domain.model import (
    Accessibility,
    Availability,
    BedPool,
    Reservation,
    Shelter,
    SmsReport,
    StaffPhone,
)

BEDS_TOPIC = "shelter.beds.v1"
CONSUMED_TYPES = TypeRegistry([events_pb2])
# What an unset time in a consumed CapacityChanged stands for.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _group(value: TargetGroup | None) -> int:
    return to_pb(value, types_pb2.TargetGroup)


def _group_from(number: int) -> TargetGroup | None:
    return from_pb(TargetGroup, types_pb2.TargetGroup, number)


def _accessibility(values: frozenset[Accessibility]) -> list[int]:
    return [to_pb(a, pb.Accessibility) for a in sorted(values)]


def _accessibility_from(numbers: Any) -> frozenset[Accessibility]:
    return frozenset(a for n in numbers if (a := from_pb(Accessibility, pb.Accessibility, n)) is not None)


# --- replies -------------------------------------------------------------------------------------


def availability_to_pb(a: Availability) -> pb.Availability:
    """`commune_code` as the handlers left it: blank already for a caller who may not see it (see
    service_layer/authorization.py)."""
    p = a.pool
    age = Duration()
    age.FromTimedelta(a.age)
    return pb.Availability(
        shelter_id=a.shelter_id, province_code=a.province_code, target_group=_group(p.target_group),
        capacity=p.capacity, reserved=p.reserved, occupied=p.occupied, free=a.free,
        confirmed_at=to_timestamp(p.confirmed_at), name=a.name, commune_code=a.commune_code,
        accessibility=_accessibility(a.accessibility), stale=a.stale, age=age, reported_free=p.free,
        proximity=to_pb(a.proximity, pb.Proximity), version=p.version)


def shelter_to_pb(shelter: Shelter, pools: list[Availability]) -> pb.Shelter:
    return pb.Shelter(shelter_id=shelter.shelter_id, name=shelter.name, province_code=shelter.province_code,
                      commune_code=shelter.commune_code, accessibility=_accessibility(shelter.accessibility),
                      pools=[availability_to_pb(a) for a in pools], address=shelter.address)


def reservation_to_pb(r: Reservation) -> pb.Reservation:
    return pb.Reservation(referral_id=r.referral_id, case_id=r.case_id, shelter_id=r.shelter_id,
                          province_code=r.province_code, target_group=_group(r.target_group),
                          status=to_pb(r.status, pb.ReservationStatus), hold_until=to_timestamp(r.hold_until),
                          reason=r.reason)


def sms_report_to_pb(report: SmsReport) -> pb.ReportBySmsResponse:
    reply = pb.ReportBySmsResponse(shelter_id=report.shelter_id, language=report.language,
                                   pools=[availability_to_pb(a) for a in report.pools],
                                   problem=to_pb(report.problem, pb.SmsReportProblem))
    if report.reservation is not None:
        reply.reservation.CopyFrom(reservation_to_pb(report.reservation))
    return reply


# --- requests ------------------------------------------------------------------------------------


def list_availability_command(request: pb.ListAvailabilityRequest, caller: Caller) -> commands.ListAvailability:
    return commands.ListAvailability(
        caller, province_code=request.province_code, commune_code=request.commune_code,
        target_group=_group_from(request.target_group), accessibility=_accessibility_from(request.accessibility),
        include_neighbours=request.include_neighbours)


def update_availability_command(request: pb.UpdateAvailabilityRequest, caller: Caller
                                ) -> commands.UpdateAvailability:
    return commands.UpdateAvailability(caller, request.shelter_id, _group_from(request.target_group),
                                       request.capacity)


def report_by_sms_command(request: pb.ReportBySmsRequest, caller: Caller) -> commands.ReportBySms:
    return commands.ReportBySms(caller, request.sender_phone,
                                tuple((_group_from(c.target_group), c.free) for c in request.free_beds),
                                request.arrived_reference, request.left_reference)


def watch_command(request: pb.WatchAvailabilityRequest, caller: Caller) -> commands.WatchAvailability:
    return commands.WatchAvailability(caller, province_code=request.province_code, commune_code=request.commune_code,
                                      target_group=_group_from(request.target_group),
                                      include_neighbours=request.include_neighbours)


# --- Kafka ---------------------------------------------------------------------------------------


def _record(message: Any, province_code: str, shelter_id: str) -> OutgoingEvent:
    return OutgoingEvent(message, BEDS_TOPIC, key=province_code, subject=f"shelter/{shelter_id}")


def event_to_record(event: object) -> OutgoingEvent:
    """Ids, codes and counts only: never a name or the shelter's address."""
    if isinstance(event, events.CapacityChanged):
        p = event.pool
        changed = events_pb2.CapacityChanged(
            shelter_id=p.shelter_id, province_code=event.province_code, target_group=_group(p.target_group),
            capacity=p.capacity, reserved=p.reserved, occupied=p.occupied, confirmed_at=to_timestamp(p.confirmed_at),
            commune_code=event.commune_code, version=p.version)
        return _record(changed, event.province_code, p.shelter_id)
    if isinstance(event, events.BedReserved):
        r = event.reservation
        reserved = events_pb2.BedReserved(
            referral_id=r.referral_id, case_id=r.case_id, shelter_id=r.shelter_id, province_code=r.province_code,
            target_group=_group(r.target_group), hold_until=to_timestamp(r.hold_until), free_after=event.free_after)
        return _record(reserved, r.province_code, r.shelter_id)
    if isinstance(event, events.BedReservationRejected):
        rejected = events_pb2.BedReservationRejected(
            referral_id=event.referral_id, case_id=event.case_id, shelter_id=event.shelter_id,
            province_code=event.province_code, reason=event.reason)
        return _record(rejected, event.province_code, event.shelter_id)
    if isinstance(event, events.BedOccupied):
        r = event.reservation
        occupied = events_pb2.BedOccupied(referral_id=r.referral_id, shelter_id=r.shelter_id,
                                          province_code=r.province_code, case_id=r.case_id,
                                          target_group=_group(r.target_group))
        return _record(occupied, r.province_code, r.shelter_id)
    if isinstance(event, events.BedReleased):
        r = event.reservation
        released = events_pb2.BedReleased(referral_id=r.referral_id, shelter_id=r.shelter_id,
                                          province_code=r.province_code, reason=event.reason, case_id=r.case_id,
                                          target_group=_group(r.target_group))
        return _record(released, r.province_code, r.shelter_id)
    if isinstance(event, events.HoldExpired):
        r = event.reservation
        expired = events_pb2.HoldExpired(referral_id=r.referral_id, case_id=r.case_id, shelter_id=r.shelter_id,
                                         province_code=r.province_code, hold_until=to_timestamp(r.hold_until),
                                         target_group=_group(r.target_group))
        return _record(expired, r.province_code, r.shelter_id)
    raise TypeError(f"no record mapping for {type(event).__name__}")


def command_for(message: object) -> object | None:
    if isinstance(message, events_pb2.ReserveBed):
        return commands.ReserveBed(
            referral_id=message.referral_id, case_id=message.case_id, shelter_id=message.shelter_id,
            province_code=message.province_code, target_group=_group_from(message.target_group),
            hold_until=from_timestamp(message, "hold_until"))
    if isinstance(message, events_pb2.ReleaseBed):
        # Referral's reason for giving the bed back; one this build does not know releases it as cancelled.
        reason = cast("ReleaseReason | None", parse_code(message.reason, RELEASE_REASONS))
        return commands.ReleaseBed(referral_id=message.referral_id, shelter_id=message.shelter_id, reason=reason)
    return None


def capacity_changed_from(message: events_pb2.CapacityChanged) -> events.CapacityChanged | None:
    """A bed event as the api's watchers see it; None for a pool of a group this build does not know."""
    group = _group_from(message.target_group)
    if group is None:
        return None
    pool = BedPool(shelter_id=message.shelter_id, target_group=group, capacity=message.capacity,
                   reserved=message.reserved, occupied=message.occupied,
                   confirmed_at=from_timestamp(message, "confirmed_at") or EPOCH, version=message.version)
    return events.CapacityChanged(message.province_code, message.commune_code, pool)


# --- the directory file ----------------------------------------------------------------------------


def load_directory_file(path: Path, now: datetime | None = None) -> commands.LoadShelters:
    """Shelters from a directory file: providers with a "shelter" entry holding either one pool
    ("target_group", "capacity") or several ("beds": [{"target_group", "capacity"}, ...]), plus
    "address" (confidential), optional "accessibility" codes and optional "sms_staff" ([{"phone", "language"}]:
    the phones whose texts report for the shelter). Their counts are confirmed at `now` (the
    clock's, if not given)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    now = now or system_clock()
    loaded = []
    staff: list[StaffPhone] = []
    for provider in data["providers"]:
        entry = provider.get("shelter")
        if not entry:
            continue
        beds = entry.get("beds") or [{"target_group": entry["target_group"], "capacity": entry["capacity"]}]
        shelter_id = entry["shelter_id"]
        for person in entry.get("sms_staff", ()):
            phone = normalise_phone(str(person.get("phone", "")))
            if not phone:
                raise ValueError(f"{path}: shelter {shelter_id}: sms_staff phone is not a phone number")
            staff.append(StaffPhone(phone, shelter_id, str(person.get("language") or "vi")))
        loaded.append(Shelter(
            shelter_id=shelter_id, name=provider["name"], province_code=provider["province_code"],
            commune_code=provider["commune_code"],
            accessibility=frozenset(Accessibility(a) for a in entry.get("accessibility", ())),
            address=entry["address"],
            pools=tuple(BedPool(shelter_id, TargetGroup(b["target_group"]), int(b["capacity"]), 0, 0, now)
                        for b in beds)))
    return commands.LoadShelters(loaded, staff)


"""The one module that maps referral's protobuf messages to and from its domain."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from referral.domain import commands, events
from referral.domain.model import Provider, Referral, Status
from refnet.common.v1 import types_pb2
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.referral.v1 import events_pb2
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.envelope import OutgoingEvent, TypeRegistry
from refnet_platform.topics import urgent_lane
from refnet_platform.vocabulary import RiskLevel, ServiceType, TargetGroup, from_pb, to_pb

REFERRALS_TOPIC = "referral.referrals.v1"
BED_COMMANDS_TOPIC = "shelter.bed-commands.v1"
CONSUMED_TYPES = TypeRegistry([intake_events, shelter_events])


def _timestamp(value: object) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)  # type: ignore[arg-type]
    return stamp


def status_to_pb(status: Status) -> int:
    return int(pb.ReferralStatus.Value(f"REFERRAL_STATUS_{status.name}"))


def referral_to_pb(r: Referral) -> pb.Referral:
    return pb.Referral(
        referral_id=r.referral_id, case_id=r.case_id, need_id=r.need_id,
        service_type=to_pb(r.service_type, types_pb2.ServiceType), provider_id=r.provider_id,
        province_code=r.province_code, status=status_to_pb(r.status), emergency=r.emergency,
        requested_at=_timestamp(r.requested_at), shelter_id=r.shelter_id,
    )


def provider_to_pb(p: Provider) -> pb.Provider:
    return pb.Provider(provider_id=p.provider_id, name=p.name,
                       service_type=to_pb(p.service_type, types_pb2.ServiceType), province_code=p.province_code,
                       commune_code=p.commune_code, public_contact=p.public_contact, open_24_7=p.open_24_7)


def event_to_record(event: object) -> OutgoingEvent:
    if isinstance(event, events.ReferralRequested):
        r = event.referral
        message = events_pb2.ReferralRequested(
            referral_id=r.referral_id, case_id=r.case_id, need_id=r.need_id,
            service_type=to_pb(r.service_type, types_pb2.ServiceType), provider_id=r.provider_id,
            province_code=r.province_code, emergency=r.emergency,
            risk_level=to_pb(r.risk_level, types_pb2.RiskLevel), shelter_id=r.shelter_id,
            case_worker_id=r.case_worker_id)
        return _referral_record(message, r)
    if isinstance(event, events.ReferralStatusChanged):
        r = event.referral
        message = events_pb2.ReferralStatusChanged(
            referral_id=r.referral_id, case_id=r.case_id, provider_id=r.provider_id,
            province_code=r.province_code, from_status=status_to_pb(event.previous),
            to_status=status_to_pb(r.status), reason=r.reason, case_worker_id=r.case_worker_id)
        return _referral_record(message, r)
    if isinstance(event, events.BedRequested):
        r = event.referral
        message = shelter_events.ReserveBed(
            referral_id=r.referral_id, case_id=r.case_id, shelter_id=r.shelter_id, province_code=r.province_code,
            target_group=to_pb(TargetGroup.WOMEN, types_pb2.TargetGroup), hold_until=_timestamp(event.hold_until),
            emergency=r.emergency)
        # Keyed by shelter: every decision for one shelter is serial in one partition.
        return OutgoingEvent(message, BED_COMMANDS_TOPIC, key=r.shelter_id, subject=f"referral/{r.referral_id}")
    raise TypeError(f"no record mapping for {type(event).__name__}")


def _referral_record(message: object, r: Referral) -> OutgoingEvent:
    topic = urgent_lane(REFERRALS_TOPIC) if r.emergency else REFERRALS_TOPIC
    return OutgoingEvent(message, topic, key=r.province_code, subject=f"referral/{r.referral_id}")  # type: ignore[arg-type]


def command_for(message: object) -> object | None:
    if isinstance(message, intake_events.CaseRegistered):
        return commands.RouteCase(
            case_id=message.case_id, province_code=message.province_code, commune_code=message.commune_code,
            needs=[commands.NeedToRoute(n.need_id, st, n.consented) for n in message.needs
                   if (st := from_pb(ServiceType, types_pb2.ServiceType, n.service_type)) is not None],
            risk_level=from_pb(RiskLevel, types_pb2.RiskLevel, message.risk_level) or RiskLevel.MEDIUM,
            emergency=message.emergency, case_worker_id=message.case_worker_id)
    if isinstance(message, shelter_events.BedReserved):
        return commands.RecordBedDecision(message.referral_id, reserved=True)
    if isinstance(message, shelter_events.BedReservationRejected):
        return commands.RecordBedDecision(message.referral_id, reserved=False, reason=message.reason)
    return None


def load_directory_file(path: Path) -> commands.LoadDirectory:
    data = json.loads(path.read_text(encoding="utf-8"))
    return commands.LoadDirectory([
        Provider(provider_id=p["provider_id"], name=p["name"], sector=p["sector"],
                 service_type=ServiceType(p["service_type"]), province_code=p["province_code"],
                 commune_code=p["commune_code"], public_contact=p["public_contact"], open_24_7=p["open_24_7"],
                 shelter_id=p.get("shelter", {}).get("shelter_id", ""))
        for p in data["providers"]
    ])

"""The one module that maps intake's protobuf messages to and from its domain."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from intake.domain import commands, events
from intake.domain.model import Case, Contact, Need, Survivor
from refnet.common.v1 import types_pb2
from refnet.intake.v1 import events_pb2
from refnet.intake.v1 import intake_service_pb2 as pb
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet_platform.envelope import OutgoingEvent, TypeRegistry
from refnet_platform.errors import InvalidArgument
from refnet_platform.topics import urgent_lane
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex, from_pb, to_pb

CASES_TOPIC = "intake.cases.v1"
CONSUMED_TYPES = TypeRegistry([referral_events])


def register_case_command(request: pb.RegisterCaseRequest) -> commands.RegisterCase:
    case_types = []
    for index, number in enumerate(request.case_types):
        case_type = from_pb(CaseType, types_pb2.CaseType, number)
        if case_type is None:
            raise InvalidArgument(f"case_types[{index}]", "unknown or unspecified case type")
        case_types.append(case_type)
    risk = from_pb(RiskLevel, types_pb2.RiskLevel, request.risk_level)
    if risk is None:
        raise InvalidArgument("risk_level", "is required (low, medium or high)")
    needs = []
    for index, need in enumerate(request.needs):
        service_type = from_pb(ServiceType, types_pb2.ServiceType, need.service_type)
        if service_type is None:
            raise InvalidArgument(f"needs[{index}].service_type", "is required")
        needs.append(Need(need_id="", service_type=service_type, consented=need.consented))
    survivor = Survivor(
        is_child=request.survivor.is_child,
        age=request.survivor.age if request.survivor.age > 0 else None,
        sex=from_pb(Sex, types_pb2.Sex, request.survivor.sex),
    )
    contact = Contact(name=request.contact.name, phone=request.contact.phone, address=request.contact.address,
                      safe_contact_note=request.contact.safe_contact_note)
    return commands.RegisterCase(
        client_request_id=request.client_request_id, province_code=request.province_code,
        commune_code=request.commune_code, case_types=case_types, survivor=survivor, needs=needs,
        risk_level=risk, immediate_danger=request.immediate_danger, case_worker_id=request.case_worker_id,
        contact=contact, narrative=request.narrative,
    )


def case_to_pb(case: Case) -> pb.Case:
    registered = Timestamp()
    registered.FromDatetime(case.registered_at)
    return pb.Case(
        case_id=case.case_id, province_code=case.province_code, commune_code=case.commune_code,
        case_types=[to_pb(t, types_pb2.CaseType) for t in case.case_types],
        survivor=pb.Survivor(is_child=case.survivor.is_child, age=case.survivor.age or 0,
                             sex=to_pb(case.survivor.sex, types_pb2.Sex)),
        needs=[pb.CaseNeed(need_id=n.need_id, service_type=to_pb(n.service_type, types_pb2.ServiceType),
                           consented=n.consented, referral_id=n.referral_id, referral_status=n.referral_status,
                           provider_id=n.provider_id) for n in case.needs],
        risk_level=to_pb(case.risk_level, types_pb2.RiskLevel), emergency=case.emergency,
        registered_at=registered, case_worker_id=case.case_worker_id,
    )


def event_to_record(event: object) -> OutgoingEvent:
    if isinstance(event, events.CaseRegistered):
        case = event.case
        message = events_pb2.CaseRegistered(
            case_id=case.case_id, province_code=case.province_code, commune_code=case.commune_code,
            case_types=[to_pb(t, types_pb2.CaseType) for t in case.case_types],
            is_child=case.survivor.is_child, age_band=case.survivor.age_band,
            sex=to_pb(case.survivor.sex, types_pb2.Sex),
            needs=[events_pb2.NeedRef(need_id=n.need_id, service_type=to_pb(n.service_type, types_pb2.ServiceType),
                                      consented=n.consented) for n in case.needs],
            risk_level=to_pb(case.risk_level, types_pb2.RiskLevel), emergency=case.emergency,
            case_worker_id=case.case_worker_id,
        )
        topic = urgent_lane(CASES_TOPIC) if case.emergency else CASES_TOPIC
        return OutgoingEvent(message, topic, key=case.province_code, subject=f"case/{case.case_id}")
    raise TypeError(f"no record mapping for {type(event).__name__}")


def command_for(message: object) -> commands.RecordReferral | None:
    if isinstance(message, referral_events.ReferralRequested):
        return commands.RecordReferral(case_id=message.case_id, need_id=message.need_id,
                                       referral_id=message.referral_id, status="requested",
                                       provider_id=message.provider_id)
    if isinstance(message, referral_events.ReferralStatusChanged):
        status = referral_pb.ReferralStatus.Name(message.to_status).removeprefix("REFERRAL_STATUS_").lower()
        return commands.RecordReferral(case_id=message.case_id, need_id="", referral_id=message.referral_id,
                                       status=status, provider_id=message.provider_id)
    return None

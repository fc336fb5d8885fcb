"""The one module that maps intake's protobuf messages to and from its domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from intake.domain import commands, events
from intake.domain.model import (
    Call,
    CallChannel,
    CallDetails,
    CallOutcome,
    CallTopic,
    Case,
    CloseOutcome,
    Consent,
    ConsentGiver,
    ConsentStatus,
    ConsentTerms,
    Contact,
    EraseReason,
    Need,
    NeedSpec,
    Place,
    SafeTime,
    Survivor,
)
from refnet.common.v1 import types_pb2
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import events_pb2
from refnet.intake.v1 import intake_service_pb2 as pb
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet_platform.caller import Caller
from refnet_platform.clock import system_clock
from refnet_platform.envelope import OutgoingEvent, TypeRegistry
from refnet_platform.errors import InvalidArgument
from refnet_platform.timestamps import from_timestamp, to_timestamp
from refnet_platform.topics import urgent_lane
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex, from_pb, to_pb

CASES_TOPIC = "intake.cases.v1"
CONSUMED_TYPES = TypeRegistry([referral_events])


# ---------------------------------------------------------------------------------------------
# Requests -> commands


def _place(message: Any) -> Place:
    return Place(message.province_code, message.commune_code, getattr(message, "district_code", ""))


def _call_details(message: pb.CallDetails, prefix: str) -> CallDetails:
    return CallDetails(
        channel=from_pb(CallChannel, intake_types.CallChannel, message.channel),
        topic=from_pb(CallTopic, intake_types.CallTopic, message.topic),
        anonymous=message.anonymous, started_at=from_timestamp(message, "started_at", f"{prefix}started_at"),
        duration_seconds=message.duration_seconds,
    )


def _terms(message: pb.Consent, prefix: str) -> ConsentTerms:
    return ConsentTerms(
        given_by=from_pb(ConsentGiver, intake_types.ConsentGiver, message.given_by),
        data_categories=tuple(message.data_categories), recipient_sectors=tuple(message.recipient_sectors),
        legal_basis=message.legal_basis, expires_at=from_timestamp(message, "expires_at", f"{prefix}expires_at"),
    )


def _need(message: pb.Need, prefix: str) -> NeedSpec:
    return NeedSpec(
        service_type=from_pb(ServiceType, types_pb2.ServiceType, message.service_type),
        consented=message.consented,
        consent=_terms(message.consent, f"{prefix}consent.") if message.HasField("consent") else None,
    )


def log_call_command(request: pb.LogCallRequest, caller: Caller) -> commands.LogCall:
    return commands.LogCall(
        caller=caller, client_request_id=request.client_request_id,
        place=Place(request.province_code, request.commune_code), details=_call_details(request.call, "call."),
        outcome=from_pb(CallOutcome, intake_types.CallOutcome, request.outcome), case_id=request.case_id,
    )


def register_case_command(request: pb.RegisterCaseRequest, caller: Caller) -> commands.RegisterCase:
    case_types = []
    for index, number in enumerate(request.case_types):
        case_type = from_pb(CaseType, types_pb2.CaseType, number)
        if case_type is None:
            raise InvalidArgument(f"case_types[{index}]", "unknown or unspecified case type")
        case_types.append(case_type)
    s = request.survivor
    survivor = Survivor(is_child=s.is_child, age=s.age if s.age != 0 else None,
                        sex=from_pb(Sex, types_pb2.Sex, s.sex), age_band_given=s.age_band or None)
    c = request.contact
    contact = Contact(name=c.name, phone=c.phone, address=c.address, safe_contact_note=c.safe_contact_note,
                      phone_is_safe=c.phone_is_safe,
                      safe_times=tuple(SafeTime(tuple(t.weekdays), t.start, t.end) for t in c.safe_times))
    return commands.RegisterCase(
        caller=caller, client_request_id=request.client_request_id, occurred_in=_place(request),
        recorded_at=from_timestamp(request, "recorded_at"),
        reported_in=_place(request.reported_in) if request.HasField("reported_in") else None,
        case_types=case_types, survivor=survivor,
        needs=[_need(n, f"needs[{i}].") for i, n in enumerate(request.needs)],
        risk_level=from_pb(RiskLevel, types_pb2.RiskLevel, request.risk_level),
        immediate_danger=request.immediate_danger, case_worker_id=request.case_worker_id, contact=contact,
        narrative=request.narrative,
        call=_call_details(request.call, "call.") if request.HasField("call") else None,
    )


def add_need_command(request: pb.AddNeedRequest, caller: Caller) -> commands.AddNeed:
    return commands.AddNeed(caller, request.client_request_id, request.case_id, _need(request.need, "need."))


def update_risk_command(request: pb.UpdateRiskRequest, caller: Caller) -> commands.UpdateRisk:
    return commands.UpdateRisk(caller, request.client_request_id, request.case_id,
                               from_pb(RiskLevel, types_pb2.RiskLevel, request.risk_level), request.immediate_danger)


def give_consent_command(request: pb.GiveConsentRequest, caller: Caller) -> commands.GiveConsent:
    terms = _terms(request.consent, "consent.") if request.HasField("consent") else None
    return commands.GiveConsent(caller, request.client_request_id, request.case_id, request.need_id, terms)


def withdraw_consent_command(request: pb.WithdrawConsentRequest, caller: Caller) -> commands.WithdrawConsent:
    return commands.WithdrawConsent(caller, request.client_request_id, request.case_id, request.need_id)


def override_consent_command(request: pb.OverrideConsentRequest, caller: Caller) -> commands.OverrideConsent:
    terms = ConsentTerms(
        given_by=ConsentGiver.SUPERVISOR_OVERRIDE, data_categories=tuple(request.data_categories),
        recipient_sectors=tuple(request.recipient_sectors), legal_basis=request.legal_basis,
        expires_at=from_timestamp(request, "expires_at"),
    )
    return commands.OverrideConsent(caller, request.client_request_id, request.case_id, request.need_id, terms)


def close_case_command(request: pb.CloseCaseRequest, caller: Caller) -> commands.CloseCase:
    return commands.CloseCase(caller, request.client_request_id, request.case_id,
                              from_pb(CloseOutcome, intake_types.CloseOutcome, request.outcome))


def erase_case_command(request: pb.EraseCaseRequest, caller: Caller) -> commands.EraseCase:
    return commands.EraseCase(caller, request.client_request_id, request.case_id,
                              from_pb(EraseReason, intake_types.EraseReason, request.reason))


def get_case_contact_command(request: contact_pb.GetCaseContactRequest, caller: Caller) -> commands.GetCaseContact:
    return commands.GetCaseContact(
        caller=caller, case_id=request.case_id, referral_id=request.referral_id, recipient_id=request.recipient_id,
        recipient_sector=request.recipient_sector,
        service_type=from_pb(ServiceType, types_pb2.ServiceType, request.service_type), purpose=request.purpose,
    )


# ---------------------------------------------------------------------------------------------
# Domain -> responses


def _consent_record(need: Need, now: datetime) -> pb.ConsentRecord:
    consent = need.consent
    status = to_pb(need.consent_status(now), intake_types.ConsentStatus)
    if consent is None:
        return pb.ConsentRecord(status=status)
    return pb.ConsentRecord(
        consent_id=consent.consent_id, status=status,
        given_by=to_pb(consent.given_by, intake_types.ConsentGiver), legal_basis=consent.legal_basis,
        recipient_sectors=consent.recipient_sectors, data_categories=consent.data_categories,
        given_at=to_timestamp(consent.given_at), expires_at=to_timestamp(consent.expires_at),
        withdrawn_at=to_timestamp(consent.withdrawn_at),
        override=consent.override,
    )


def case_to_pb(case: Case, now: datetime | None = None) -> pb.Case:
    """The case as the API shows it, its consents valid or not at `now` (the clock's, if not given)."""
    now = now or system_clock()
    s = case.survivor
    return pb.Case(
        case_id=case.case_id, province_code=case.province_code, commune_code=case.commune_code,
        case_types=[to_pb(t, types_pb2.CaseType) for t in case.case_types],
        survivor=pb.Survivor(is_child=s.is_child, age=s.age or 0, sex=to_pb(s.sex, types_pb2.Sex),
                             age_band=s.age_band),
        needs=[pb.CaseNeed(need_id=n.need_id, service_type=to_pb(n.service_type, types_pb2.ServiceType),
                           consented=n.consent_status(now) is ConsentStatus.VALID, referral_id=n.referral_id,
                           referral_status=n.referral_status, provider_id=n.provider_id,
                           consent=_consent_record(n, now)) for n in case.needs],
        risk_level=to_pb(case.risk_level, types_pb2.RiskLevel), emergency=case.emergency,
        registered_at=to_timestamp(case.registered_at), case_worker_id=case.case_worker_id,
        immediate_danger=case.immediate_danger, status=to_pb(case.status, intake_types.CaseStatus),
        reported_in=pb.Place(province_code=case.reported_in.province_code,
                             commune_code=case.reported_in.commune_code) if case.reported_in else None,
        child_protection_deadline=to_timestamp(case.child_protection_deadline), call_id=case.call_id,
        closed_at=to_timestamp(case.closed_at), close_outcome=to_pb(case.close_outcome, intake_types.CloseOutcome),
        erased_at=to_timestamp(case.erased_at),
    )


def call_to_pb(call: Call) -> pb.Call:
    d = call.details
    return pb.Call(
        call_id=call.call_id, province_code=call.province_code, commune_code=call.commune_code,
        details=pb.CallDetails(channel=to_pb(d.channel, intake_types.CallChannel),
                               topic=to_pb(d.topic, intake_types.CallTopic), anonymous=d.anonymous,
                               started_at=to_timestamp(d.started_at), duration_seconds=d.duration_seconds),
        outcome=to_pb(call.outcome, intake_types.CallOutcome), case_id=call.case_id, logged_by=call.logged_by,
        logged_at=to_timestamp(call.logged_at),
    )


def contact_to_pb(contact: Contact, categories: tuple[str, ...]) -> contact_pb.GetCaseContactResponse:
    return contact_pb.GetCaseContactResponse(
        name=contact.name, phone=contact.phone, address=contact.address,
        safe_contact_note=contact.safe_contact_note, categories=categories, phone_is_safe=contact.phone_is_safe,
        safe_times=[intake_types.SafeContactTime(weekdays=t.weekdays, start=t.start, end=t.end)
                    for t in contact.safe_times], sms_stopped=contact.sms_stopped)


# ---------------------------------------------------------------------------------------------
# Domain events -> outbox records (ids and codes only)


def _need_ref(need: Need, at: datetime) -> events_pb2.NeedRef:
    consent = need.valid_consent(at)
    ref = events_pb2.NeedRef(need_id=need.need_id, service_type=to_pb(need.service_type, types_pb2.ServiceType),
                             consented=consent is not None)
    if consent is not None:
        ref.consent_id = consent.consent_id
        ref.recipient_sectors.extend(consent.recipient_sectors)
        ref.consent_expires_at.CopyFrom(to_timestamp(consent.expires_at))
    return ref


def _consent_given(case: Case, need: Need, consent: Consent) -> events_pb2.ConsentGiven:
    return events_pb2.ConsentGiven(
        case_id=case.case_id, province_code=case.province_code, need_id=need.need_id,
        service_type=to_pb(need.service_type, types_pb2.ServiceType), recipient_sectors=consent.recipient_sectors,
        data_categories=consent.data_categories, expires_at=to_timestamp(consent.expires_at), override=consent.override,
        consent_id=consent.consent_id)


def _case_message(event: object) -> Message | None:
    if isinstance(event, events.CaseRegistered):
        case = event.case
        return events_pb2.CaseRegistered(
            case_id=case.case_id, province_code=case.province_code, commune_code=case.commune_code,
            case_types=[to_pb(t, types_pb2.CaseType) for t in case.case_types],
            is_child=case.survivor.is_child, age_band=case.survivor.age_band,
            sex=to_pb(case.survivor.sex, types_pb2.Sex), needs=[_need_ref(n, event.at) for n in case.needs],
            risk_level=to_pb(case.risk_level, types_pb2.RiskLevel), emergency=case.emergency,
            case_worker_id=case.case_worker_id, child_protection_deadline=to_timestamp(case.child_protection_deadline),
            immediate_danger=case.immediate_danger)
    if isinstance(event, events.NeedAdded):
        case = event.case
        return events_pb2.NeedAdded(
            case_id=case.case_id, province_code=case.province_code, commune_code=case.commune_code,
            need=_need_ref(event.need, event.at), risk_level=to_pb(case.risk_level, types_pb2.RiskLevel),
            emergency=case.emergency, is_child=case.survivor.is_child, sex=to_pb(case.survivor.sex, types_pb2.Sex),
            case_worker_id=case.case_worker_id)
    if isinstance(event, events.RiskUpdated):
        case = event.case
        return events_pb2.RiskUpdated(
            case_id=case.case_id, province_code=case.province_code,
            risk_level=to_pb(case.risk_level, types_pb2.RiskLevel), immediate_danger=case.immediate_danger,
            emergency=case.emergency, child_protection_deadline=to_timestamp(case.child_protection_deadline))
    if isinstance(event, events.ConsentGiven):
        return _consent_given(event.case, event.need, event.consent)
    if isinstance(event, events.ConsentWithdrawn):
        return events_pb2.ConsentWithdrawn(
            case_id=event.case.case_id, province_code=event.case.province_code, need_id=event.need.need_id,
            service_type=to_pb(event.need.service_type, types_pb2.ServiceType), consent_id=event.consent.consent_id)
    if isinstance(event, events.CaseClosed):
        return events_pb2.CaseClosed(case_id=event.case.case_id, province_code=event.case.province_code,
                                     outcome=str(event.case.close_outcome or ""))
    if isinstance(event, events.CaseErased):
        return events_pb2.CaseErased(case_id=event.case.case_id, province_code=event.case.province_code)
    return None


def event_to_record(event: object) -> OutgoingEvent:
    """Case events are keyed by the case's province, on the priority lane while the case is an emergency."""
    message = _case_message(event)
    if message is not None:
        case: Case = event.case  # type: ignore[attr-defined]
        topic = urgent_lane(CASES_TOPIC) if case.emergency else CASES_TOPIC
        return OutgoingEvent(message, topic, key=case.province_code, subject=f"case/{case.case_id}")
    if isinstance(event, events.CallLogged):
        call = event.call
        d = call.details
        message = events_pb2.CallLogged(
            call_id=call.call_id, province_code=call.province_code, commune_code=call.commune_code,
            channel=to_pb(d.channel, intake_types.CallChannel), topic=to_pb(d.topic, intake_types.CallTopic),
            anonymous=d.anonymous, outcome=to_pb(call.outcome, intake_types.CallOutcome), case_id=call.case_id,
            started_at=to_timestamp(d.started_at), duration_seconds=d.duration_seconds, operator_id=call.logged_by)
        return OutgoingEvent(message, CASES_TOPIC, key=call.province_code, subject=f"call/{call.call_id}")
    raise TypeError(f"no record mapping for {type(event).__name__}")


# ---------------------------------------------------------------------------------------------
# Referral's events -> commands


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


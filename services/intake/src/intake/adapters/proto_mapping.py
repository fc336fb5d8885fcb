"""The one module that maps intake's protobuf messages to and from its domain."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

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
    CloseReason,
    Consent,
    ConsentGiver,
    ConsentStatus,
    ConsentTerms,
    Contact,
    Disability,
    EraseReason,
    LegalBasis,
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
V = TypeVar("V", bound=StrEnum)  # a vocabulary (refnet_platform.vocabulary)


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
    basis, note = _legal_basis(message)
    return ConsentTerms(
        given_by=from_pb(ConsentGiver, intake_types.ConsentGiver, message.given_by),
        data_categories=tuple(message.data_categories), recipient_sectors=tuple(message.recipient_sectors),
        legal_basis=basis, legal_basis_note=note,
        expires_at=from_timestamp(message, "expires_at", f"{prefix}expires_at"),
    )


def _legal_basis(message: pb.Consent | pb.OverrideConsentRequest) -> tuple[LegalBasis | None, str]:
    """The code and note; an older client's free text (the deprecated `legal_basis`) becomes OTHER with that
    text as the note, so it is sealed like any note instead of kept in clear."""
    basis = from_pb(LegalBasis, intake_types.LegalBasis, message.legal_basis_code)
    legacy = message.legal_basis.strip()
    if basis is None and legacy:
        return LegalBasis.OTHER, legacy
    return basis, message.legal_basis_note


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
    case_types = _case_types(request.case_types, "")
    survivor = _survivor(request.survivor)
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
        reporting_consent=not request.HasField("reporting_consent") or request.reporting_consent,
    )


def _survivor(s: pb.Survivor) -> Survivor:
    return Survivor(is_child=s.is_child, age=s.age if s.age != 0 else None, sex=from_pb(Sex, types_pb2.Sex, s.sex),
                    age_band_given=s.age_band or None,
                    disability=from_pb(Disability, intake_types.Disability, s.disability))


def _case_types(numbers: Any, prefix: str) -> list[CaseType]:
    return vocabulary_list(CaseType, types_pb2.CaseType, numbers, f"{prefix}case_types", "case type")


def vocabulary_list(kind: type[V], pb_enum: Any, numbers: Any, field: str, what: str) -> list[V]:
    """A repeated enum field's numbers as the vocabulary's values; an unknown or unspecified one is refused,
    naming its index (field[index])."""
    found = []
    for index, number in enumerate(numbers):
        value = from_pb(kind, pb_enum, number)
        if value is None:
            raise InvalidArgument(f"{field}[{index}]", f"unknown or unspecified {what}")
        found.append(value)
    return found


def import_history_command(request: pb.ImportHistoryRequest, caller: Caller) -> commands.ImportHistory:
    cases = [commands.ImportedCase(
        idempotency_key=row.idempotency_key, occurred_in=_place(row),
        reported_in=_place(row.reported_in) if row.HasField("reported_in") else None,
        national_line=row.national_line, case_types=_case_types(row.case_types, f"cases[{i}]."),
        survivor=_survivor(row.survivor), risk_level=from_pb(RiskLevel, types_pb2.RiskLevel, row.risk_level),
        immediate_danger=row.immediate_danger,
        registered_at=from_timestamp(row, "registered_at", f"cases[{i}].registered_at"),
        closed_at=from_timestamp(row, "closed_at", f"cases[{i}].closed_at"),
        close_outcome=from_pb(CloseOutcome, intake_types.CloseOutcome, row.close_outcome),
        reporting_consent=not row.HasField("reporting_consent") or row.reporting_consent,
    ) for i, row in enumerate(request.cases)]
    calls = [commands.ImportedCall(
        idempotency_key=row.idempotency_key, place=_place(row), details=_call_details(row.call, f"calls[{i}].call."),
        outcome=from_pb(CallOutcome, intake_types.CallOutcome, row.outcome), case_key=row.case_key,
    ) for i, row in enumerate(request.calls)]
    return commands.ImportHistory(caller, cases, calls)


def import_history_response(result: tuple[list[tuple[str, str, bool]], list[tuple[str, str, bool]]]
                            ) -> pb.ImportHistoryResponse:
    cases, calls = result
    return pb.ImportHistoryResponse(
        cases=[pb.ImportedRow(idempotency_key=k, id=i, created=c) for k, i, c in cases],
        calls=[pb.ImportedRow(idempotency_key=k, id=i, created=c) for k, i, c in calls])


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
    basis, note = _legal_basis(request)
    terms = ConsentTerms(
        given_by=ConsentGiver.SUPERVISOR_OVERRIDE, data_categories=tuple(request.data_categories),
        recipient_sectors=tuple(request.recipient_sectors), legal_basis=basis, legal_basis_note=note,
        expires_at=from_timestamp(request, "expires_at"),
    )
    return commands.OverrideConsent(caller, request.client_request_id, request.case_id, request.need_id, terms)


def close_case_command(request: pb.CloseCaseRequest, caller: Caller) -> commands.CloseCase:
    return commands.CloseCase(caller, request.client_request_id, request.case_id,
                              from_pb(CloseOutcome, intake_types.CloseOutcome, request.outcome),
                              from_pb(CloseReason, intake_types.CloseReason, request.reason))


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
        given_by=to_pb(consent.given_by, intake_types.ConsentGiver), legal_basis=str(consent.legal_basis or ""),
        legal_basis_code=to_pb(consent.legal_basis, intake_types.LegalBasis),
        has_legal_basis_note=consent.has_legal_basis_note,
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
                             age_band=s.age_band, disability=to_pb(s.disability, intake_types.Disability)),
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
        erased_at=to_timestamp(case.erased_at), close_reason=to_pb(case.close_reason, intake_types.CloseReason),
        current_step=to_pb(case.current_step, intake_types.CaseStep), next_due_at=to_timestamp(case.next_due_at),
        reporting_consent=case.reporting_consent, handling_line=case.handling_line, imported=case.imported,
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
            immediate_danger=case.immediate_danger, reporting_consent=case.reporting_consent,
            handling_line=case.handling_line,
            reported_in_province_code=case.reported_in.province_code if case.reported_in else "",
            disability=to_pb(case.survivor.disability, intake_types.Disability), imported=case.imported,
            registered_at=to_timestamp(case.registered_at))
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
                                     outcome=str(event.case.close_outcome or ""),
                                     reason=str(event.case.close_reason or ""), imported=event.case.imported,
                                     closed_at=to_timestamp(event.case.closed_at))
    if isinstance(event, events.CaseErased):
        return events_pb2.CaseErased(case_id=event.case.case_id, province_code=event.case.province_code)
    return _casework_message(event)


def event_to_record(event: object) -> OutgoingEvent:
    """Case events are keyed by the case's province, on the priority lane while the case is an emergency."""
    message = _case_message(event)
    if message is not None:
        case: Case = event.case  # type: ignore[attr-defined]
        # The past is never urgent: an imported case takes the normal lane.
        topic = urgent_lane(CASES_TOPIC) if case.emergency and not case.imported else CASES_TOPIC
        return OutgoingEvent(message, topic, key=case.province_code, subject=f"case/{case.case_id}")
    if isinstance(event, events.CallLogged):
        call = event.call
        d = call.details
        message = events_pb2.CallLogged(
            call_id=call.call_id, province_code=call.province_code, commune_code=call.commune_code,
            channel=to_pb(d.channel, intake_types.CallChannel), topic=to_pb(d.topic, intake_types.CallTopic),
            anonymous=d.anonymous, outcome=to_pb(call.outcome, intake_types.CallOutcome), case_id=call.case_id,
            started_at=to_timestamp(d.started_at), duration_seconds=d.duration_seconds, operator_id=call.logged_by,
            handling_line=call.handling_line, imported=call.imported)
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



# ---------------------------------------------------------------------------------------------
# Case work's events -> outbox records (ids and codes only; its requests and responses: casework_mapping)


def _casework_message(event: object) -> Message | None:
    """Case work's events: ids and codes only. A follow-up's note, a goal's description, an assessment's summary,
    difficulties and accessibility needs are never mapped."""
    if isinstance(event, events.CaseAssessed):
        a, case = event.assessment, event.case
        return events_pb2.CaseAssessed(
            case_id=case.case_id, province_code=case.province_code, assessment_id=a.assessment_id,
            risk_level=to_pb(a.risk_level, types_pb2.RiskLevel), immediate_danger=a.immediate_danger,
            needs=[to_pb(n, types_pb2.ServiceType) for n in a.needs], assessed_by=a.assessed_by,
            assessed_at=to_timestamp(a.assessed_at), case_worker_id=case.case_worker_id,
            accessibility_needs=a.accessibility_needs)
    if isinstance(event, events.CasePlanRecorded):
        plan, case = event.plan, event.case
        return events_pb2.CasePlanRecorded(
            case_id=case.case_id, province_code=case.province_code, plan_id=plan.plan_id, version=plan.version,
            goals=[events_pb2.GoalRef(goal_id=g.goal_id, services=[to_pb(x, types_pb2.ServiceType) for x in g.services],
                                      responsible_kind=to_pb(g.responsible_kind, intake_types.ResponsibleKind),
                                      responsible_id=g.responsible_id, due_at=to_timestamp(g.due_at),
                                      status=to_pb(g.status, intake_types.GoalStatus)) for g in plan.goals],
            recorded_by=plan.recorded_by, review_due_at=to_timestamp(plan.review_due_at),
            case_worker_id=case.case_worker_id)
    if isinstance(event, events.FollowUpRecorded):
        f, case = event.follow_up, event.case
        return events_pb2.FollowUpRecorded(
            case_id=case.case_id, province_code=case.province_code, follow_up_id=f.follow_up_id,
            kind=to_pb(f.kind, intake_types.FollowUpKind), recorded_by=f.recorded_by,
            occurred_at=to_timestamp(f.occurred_at), case_worker_id=case.case_worker_id)
    if isinstance(event, events.CaseReviewed):
        r, case = event.review, event.case
        return events_pb2.CaseReviewed(
            case_id=case.case_id, province_code=case.province_code, review_id=r.review_id,
            outcome=to_pb(r.outcome, intake_types.ReviewOutcome), reviewed_by=r.reviewed_by,
            next_review_at=to_timestamp(r.next_review_at), case_worker_id=case.case_worker_id)
    if isinstance(event, events.CaseReassigned):
        case = event.case
        return events_pb2.CaseReassigned(
            case_id=case.case_id, province_code=case.province_code, from_case_worker_id=event.from_case_worker_id,
            to_case_worker_id=case.case_worker_id, reason=to_pb(event.reason, intake_types.ReassignReason),
            reassigned_by=event.by)
    if isinstance(event, events.CaseStepChanged):
        step, case = event.step, event.case
        return events_pb2.CaseStepChanged(
            case_id=case.case_id, province_code=case.province_code, step=to_pb(step.step, intake_types.CaseStep),
            status=to_pb(step.status, intake_types.StepStatus), due_at=to_timestamp(step.due_at),
            case_worker_id=case.case_worker_id, changed_by=event.by)
    if isinstance(event, events.CaseStepOverdue):
        step, case = event.step, event.case
        return events_pb2.CaseStepOverdue(
            case_id=case.case_id, province_code=case.province_code, step=to_pb(step.step, intake_types.CaseStep),
            due_at=to_timestamp(step.due_at), case_worker_id=case.case_worker_id, is_child=case.survivor.is_child,
            emergency=case.emergency)
    return None


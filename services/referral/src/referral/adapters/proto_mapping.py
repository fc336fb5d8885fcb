"""The one module that maps referral's protobuf messages to and from its domain."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from referral.domain import commands, events
from referral.domain.model import Progress, Referral, SafeTime, SmsAnswer, Status, Survivor, SurvivorContact
from referral.domain.providers import DirectoryEntry
from refnet.common.v1 import types_pb2
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.referral.v1 import events_pb2
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform import vocabulary
from refnet_platform.caller import Caller
from refnet_platform.envelope import OutgoingEvent, TypeRegistry
from refnet_platform.errors import InvalidArgument
from refnet_platform.timestamps import from_timestamp, to_timestamp
from refnet_platform.topics import urgent_lane
from refnet_platform.vocabulary import (
    ACCESSIBILITY_CODES,
    BedRejectionReason,
    DeclineReason,
    FailureReason,
    Outcome,
    RiskLevel,
    ServiceType,
    Sex,
    TargetGroup,
    from_pb,
    parse,
)

REFERRALS_TOPIC = "referral.referrals.v1"
BED_COMMANDS_TOPIC = "shelter.bed-commands.v1"
CONSUMED_TYPES = TypeRegistry([intake_events, shelter_events])

# An enum member's number, and a number's member, are the same every time: remembered rather than looked up by
# name for every field of every event (a tenth of mapping a case). Typed: members of two enums may be equal
# strings. Bounded: a number comes from the wire.
to_pb = lru_cache(maxsize=256, typed=True)(vocabulary.to_pb)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stamp(value: datetime | None) -> Timestamp | None:
    """to_timestamp, made from the datetime's distance to the epoch (Timestamp.FromDatetime goes by a time tuple,
    several times slower, and an event carries two or three)."""
    if value is None:
        return None
    since = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


@lru_cache(maxsize=64)
def _service(number: int) -> ServiceType | None:
    return from_pb(ServiceType, types_pb2.ServiceType, number)


@lru_cache(maxsize=64)
def _risk(number: int) -> RiskLevel:
    # An unspecified risk is routed as medium: neither ignored nor raised to an emergency.
    return from_pb(RiskLevel, types_pb2.RiskLevel, number) or RiskLevel.MEDIUM


@lru_cache(maxsize=64)
def _survivor(is_child: bool, sex: int) -> Survivor:
    return Survivor(is_child=is_child, sex=from_pb(Sex, types_pb2.Sex, sex))


def status_to_pb(status: Status | None) -> int:
    number: int = to_pb(status, pb.ReferralStatus)
    return number


def referral_to_pb(r: Referral) -> pb.Referral:
    return pb.Referral(
        referral_id=r.referral_id, case_id=r.case_id, need_id=r.need_id,
        service_type=to_pb(r.service_type, types_pb2.ServiceType), provider_id=r.provider_id,
        province_code=r.province_code, status=status_to_pb(r.status), emergency=r.emergency,
        requested_at=to_timestamp(r.requested_at), shelter_id=r.shelter_id, reason=r.reason,
        accept_by=to_timestamp(r.accept_by), start_by=to_timestamp(r.start_by), attempt=r.attempt,
        previous_referral_id=r.previous_referral_id, risk_level=to_pb(r.risk_level, types_pb2.RiskLevel),
        updated_at=to_timestamp(r.updated_at), version=r.version, last_progress=to_pb(r.progress, pb.Progress))


def entry_to_pb(entry: DirectoryEntry) -> pb.Provider:
    """A provider as it may leave referral: a shelter shows its province and public contact point only."""
    p = entry.provider
    return pb.Provider(
        provider_id=p.provider_id, name=p.name, service_type=to_pb(p.service_type, types_pb2.ServiceType),
        province_code=p.province_code, commune_code="" if p.is_shelter else p.commune_code,
        public_contact=p.public_contact, open_24_7=p.open_24_7, organization_id=p.organization_id,
        organization_name=p.organization_name, sector=p.sector, age_group=to_pb(p.age_group, pb.AgeGroup),
        sexes=sorted(to_pb(s, types_pb2.Sex) for s in p.sexes),
        target_groups=sorted(to_pb(t, types_pb2.TargetGroup) for t in p.target_groups),
        service_area_codes=sorted(p.service_areas),
        opening_hours=[pb.OpeningHours(weekdays=sorted(h.weekdays), opens_at=h.opens_at, closes_at=h.closes_at)
                       for h in p.opening_hours],
        open_now=entry.open_now, beds_available=entry.beds_free or 0, beds_capacity=entry.beds_capacity or 0)


def contact_to_pb(contact: SurvivorContact) -> pb.GetSurvivorContactResponse:
    return pb.GetSurvivorContactResponse(
        name=contact.name, phone=contact.phone, address=contact.address, safe_contact_note=contact.safe_contact_note,
        categories=list(contact.categories), phone_is_safe=contact.phone_is_safe,
        safe_times=[intake_types.SafeContactTime(weekdays=list(t.weekdays), start=t.start, end=t.end)
                    for t in contact.safe_times])


def contact_request(case_id: str, referral_id: str, recipient_id: str, recipient_sector: str,
                    service_type: ServiceType, purpose: str) -> contact_pb.GetCaseContactRequest:
    return contact_pb.GetCaseContactRequest(case_id=case_id, referral_id=referral_id, recipient_id=recipient_id,
                                            recipient_sector=recipient_sector,
                                            service_type=to_pb(service_type, types_pb2.ServiceType), purpose=purpose)


def contact_from_pb(reply: contact_pb.GetCaseContactResponse) -> SurvivorContact:
    return SurvivorContact(name=reply.name, phone=reply.phone, address=reply.address,
                           safe_contact_note=reply.safe_contact_note, categories=tuple(reply.categories),
                           phone_is_safe=reply.phone_is_safe,
                           safe_times=tuple(SafeTime(tuple(t.weekdays), t.start, t.end) for t in reply.safe_times))


# --- gRPC requests -> commands -----------------------------------------------------------------


class _Idempotent(Protocol):
    client_request_id: str
    request_id: str


def client_request_id(request: _Idempotent) -> str:
    """The request's id: `client_request_id`, or the deprecated `request_id` old clients send. Both given
    and different is INVALID_ARGUMENT naming client_request_id."""
    new, old = request.client_request_id, request.request_id
    if new and old and new != old:
        raise InvalidArgument("client_request_id", "differs from the deprecated request_id: send only one")
    return new or old


def list_command(request: pb.ListReferralsRequest, caller: Caller) -> commands.ListReferrals:
    statuses = frozenset(s for n in request.statuses if (s := from_pb(Status, pb.ReferralStatus, n)) is not None)
    return commands.ListReferrals(caller, request.provider_id, request.case_id, statuses, request.page_size,
                                  request.page_token)


def decline_command(request: pb.DeclineReferralRequest, caller: Caller) -> commands.DeclineReferral:
    return commands.DeclineReferral(caller, request.referral_id, client_request_id(request),
                                    from_pb(DeclineReason, pb.DeclineReason, request.reason))


def answer_by_sms_command(request: pb.AnswerBySmsRequest, caller: Caller) -> commands.AnswerBySms:
    return commands.AnswerBySms(caller, request.sender_phone, request.reference, request.accept,
                                from_pb(DeclineReason, pb.DeclineReason, request.reason), request.client_request_id)


def sms_answer_to_pb(answer: SmsAnswer) -> pb.AnswerBySmsResponse:
    reply = pb.AnswerBySmsResponse(provider_id=answer.provider_id, language=answer.language,
                                   problem=to_pb(answer.problem, pb.SmsAnswerProblem))
    if answer.referral is not None:
        reply.referral.CopyFrom(referral_to_pb(answer.referral))
    return reply


def progress_command(request: pb.ReportProgressRequest, caller: Caller) -> commands.ReportProgress:
    return commands.ReportProgress(caller, request.referral_id, client_request_id(request),
                                   from_pb(Progress, pb.Progress, request.progress))


def complete_command(request: pb.CompleteReferralRequest, caller: Caller) -> commands.CompleteReferral:
    return commands.CompleteReferral(caller, request.referral_id, client_request_id(request),
                                     from_pb(Outcome, pb.Outcome, request.outcome))


def failure_command(request: pb.ReportFailureRequest, caller: Caller) -> commands.ReportFailure:
    return commands.ReportFailure(caller, request.referral_id, client_request_id(request),
                                  from_pb(FailureReason, pb.FailureReason, request.reason))


def rank_command(request: pb.RankProvidersRequest) -> commands.RankProviders:
    return commands.RankProviders(request.province_code, request.commune_code, _service(request.service_type),
                                  _survivor(request.is_child, request.sex), _risk(request.risk_level),
                                  request.emergency)


def list_providers_command(request: pb.ListProvidersRequest) -> commands.ListProviders:
    return commands.ListProviders(request.province_code, _service(request.service_type))


# --- domain events -> outbox records -----------------------------------------------------------


def event_to_record(event: object) -> OutgoingEvent:
    if isinstance(event, events.ReferralRequested):
        r = event.referral
        return _referral_record(events_pb2.ReferralRequested(
            referral_id=r.referral_id, case_id=r.case_id, need_id=r.need_id,
            service_type=to_pb(r.service_type, types_pb2.ServiceType), provider_id=r.provider_id,
            province_code=r.province_code, emergency=r.emergency,
            risk_level=to_pb(r.risk_level, types_pb2.RiskLevel), shelter_id=r.shelter_id,
            case_worker_id=r.case_worker_id, accept_by=_stamp(r.accept_by),
            start_by=_stamp(r.start_by),
            attempt=r.attempt, previous_referral_id=r.previous_referral_id,
            provider_province_code=r.provider_province_code, provider_sector=event.provider_sector), r)
    if isinstance(event, events.ReferralStatusChanged):
        r = event.referral
        return _referral_record(events_pb2.ReferralStatusChanged(
            referral_id=r.referral_id, case_id=r.case_id, provider_id=r.provider_id,
            province_code=r.province_code, from_status=status_to_pb(event.previous),
            to_status=status_to_pb(r.status), reason=r.reason, case_worker_id=r.case_worker_id, need_id=r.need_id,
            service_type=to_pb(r.service_type, types_pb2.ServiceType), emergency=r.emergency, attempt=r.attempt,
            changed_at=_stamp(r.updated_at), risk_level=to_pb(r.risk_level, types_pb2.RiskLevel)), r)
    if isinstance(event, events.ReferralEscalated):
        r, new = event.referral, event.rerouted
        return _referral_record(events_pb2.ReferralEscalated(
            referral_id=r.referral_id, case_id=r.case_id, need_id=r.need_id, province_code=r.province_code,
            service_type=to_pb(r.service_type, types_pb2.ServiceType), provider_id=r.provider_id,
            reason=event.reason, sla=event.sla, deadline=_stamp(event.deadline),
            rerouted_referral_id=new.referral_id if new else "", rerouted_provider_id=new.provider_id if new else "",
            case_worker_id=r.case_worker_id, emergency=r.emergency,
            risk_level=to_pb(r.risk_level, types_pb2.RiskLevel)), r)
    if isinstance(event, events.ReferralProgressReported):
        r = event.referral
        return _referral_record(events_pb2.ReferralProgressReported(
            referral_id=r.referral_id, case_id=r.case_id, provider_id=r.provider_id, province_code=r.province_code,
            progress=to_pb(event.progress, pb.Progress), case_worker_id=r.case_worker_id,
            reported_at=_stamp(event.reported_at), emergency=r.emergency), r)
    if isinstance(event, events.BedRequested):
        r = event.referral
        return _bed_command(shelter_events.ReserveBed(
            referral_id=r.referral_id, case_id=r.case_id, shelter_id=r.shelter_id, province_code=r.province_code,
            target_group=to_pb(event.target_group, types_pb2.TargetGroup),
            hold_until=_stamp(event.hold_until),
            emergency=r.emergency), r)
    if isinstance(event, events.BedReleaseRequested):
        r = event.referral
        return _bed_command(shelter_events.ReleaseBed(referral_id=r.referral_id, shelter_id=r.shelter_id,
                                                      reason=event.reason), r)
    raise TypeError(f"no record mapping for {type(event).__name__}")


def _referral_record(message: Message, r: Referral) -> OutgoingEvent:
    topic = urgent_lane(REFERRALS_TOPIC) if r.emergency else REFERRALS_TOPIC
    return OutgoingEvent(message, topic, key=r.province_code, subject=f"referral/{r.referral_id}")


def _bed_command(message: Message, r: Referral) -> OutgoingEvent:
    # Keyed by shelter: every decision for one shelter is serial in one partition, so a release
    # always comes after the reservation it undoes.
    return OutgoingEvent(message, BED_COMMANDS_TOPIC, key=r.shelter_id, subject=f"referral/{r.referral_id}")


# --- consumed events -> commands ---------------------------------------------------------------


def _needs(refs: Any) -> list[commands.NeedToRoute]:
    return [commands.NeedToRoute(n.need_id, st, n.consented, n.consent_id, frozenset(n.recipient_sectors),
                                 from_timestamp(n, "consent_expires_at"))
            for n in refs if (st := _service(n.service_type)) is not None]


def command_for(message: object) -> object | None:
    if isinstance(message, intake_events.CaseRegistered | intake_events.CaseClosed) and message.imported:
        return None  # a record from before refnet (ImportHistory): counted in reports, never routed
    if isinstance(message, intake_events.CaseRegistered):
        return commands.RouteCase(
            case_id=message.case_id, province_code=message.province_code, commune_code=message.commune_code,
            needs=_needs(message.needs), risk_level=_risk(message.risk_level), emergency=message.emergency,
            case_worker_id=message.case_worker_id, survivor=_survivor(message.is_child, message.sex),
            child_deadline=from_timestamp(message, "child_protection_deadline"))
    if isinstance(message, intake_events.NeedAdded):
        added = _needs([message.need])
        if not added:
            return None
        return commands.AddNeed(
            case_id=message.case_id, province_code=message.province_code, commune_code=message.commune_code,
            need=added[0], risk_level=_risk(message.risk_level), emergency=message.emergency,
            case_worker_id=message.case_worker_id, survivor=_survivor(message.is_child, message.sex))
    if isinstance(message, intake_events.RiskUpdated):
        return commands.UpdateRisk(message.case_id, _risk(message.risk_level), message.emergency,
                                   from_timestamp(message, "child_protection_deadline"))
    if isinstance(message, intake_events.ConsentGiven):
        service = _service(message.service_type)
        if service is None:
            return None
        return commands.GiveConsent(message.case_id, message.need_id, service, frozenset(message.recipient_sectors),
                                    from_timestamp(message, "expires_at"), message.consent_id)
    if isinstance(message, intake_events.ConsentWithdrawn):
        return commands.WithdrawConsent(message.case_id, message.need_id, _service(message.service_type),
                                        message.consent_id)
    if isinstance(message, intake_events.CaseClosed):
        return commands.CloseCase(message.case_id)
    if isinstance(message, intake_events.CaseErased):
        return commands.EraseCase(message.case_id)
    if isinstance(message, intake_events.CaseAssessed):
        return commands.NoteAccessibility(message.case_id, frozenset(
            code for code in message.accessibility_needs if code in ACCESSIBILITY_CODES))
    if isinstance(message, intake_events.CaseReassigned):
        return commands.ReassignCaseWorker(message.case_id, message.to_case_worker_id)
    return _bed_command_for(message)


def _pool(number: int) -> TargetGroup | None:
    return from_pb(TargetGroup, types_pb2.TargetGroup, number)


def _bed_command_for(message: object) -> object | None:
    if isinstance(message, shelter_events.BedReserved):
        return commands.RecordBedReserved(message.referral_id, message.shelter_id, message.free_after,
                                          _pool(message.target_group))
    if isinstance(message, shelter_events.BedReservationRejected):
        return commands.RecordBedRejected(message.referral_id, message.shelter_id,
                                          parse(BedRejectionReason, message.reason))
    if isinstance(message, shelter_events.HoldExpired):
        return commands.RecordHoldExpired(message.referral_id, message.shelter_id, _pool(message.target_group))
    if isinstance(message, shelter_events.BedReleased):
        return commands.RecordBedReleased(message.referral_id, message.shelter_id, _pool(message.target_group))
    if isinstance(message, shelter_events.BedOccupied):
        return commands.RecordBedOccupied(message.referral_id, message.shelter_id)
    if isinstance(message, shelter_events.CapacityChanged):
        group = _pool(message.target_group)
        if group is None:
            # Counts of no known pool would be filed under the wrong beds: dead-lettered, naming the field.
            raise InvalidArgument("target_group", f"CapacityChanged of shelter {message.shelter_id} names no bed pool")
        return commands.RecordCapacity(message.shelter_id, message.province_code, group, message.capacity,
                                       message.reserved, message.occupied)
    return None

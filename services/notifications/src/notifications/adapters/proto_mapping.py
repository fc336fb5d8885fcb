"""The one module that maps notifications' protobuf messages to and from its domain."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from notifications.domain import commands, events
from notifications.domain.messages import (
    BedOutcome,
    BedUpdate,
    EmergencyCase,
    Escalation,
    InvalidEvent,
    NewReferral,
    ReferralStatus,
    StatusChange,
    StepOverdue,
    Urgency,
)
from notifications.domain.notices import ContactRefused, Notice, SurvivorContact
from notifications.domain.safe_contact import ContactWindow
from refnet.common.v1 import types_pb2
from refnet.common.v1.envelope_pb2 import DeadLetter
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.notifications.v1 import events_pb2
from refnet.notifications.v1 import notifications_service_pb2 as pb
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.context import current_causation
from refnet_platform.envelope import OutgoingEvent, TypeRegistry
from refnet_platform.timestamps import from_timestamp, to_timestamp
from refnet_platform.vocabulary import BedReleaseReason, RiskLevel, ServiceType, from_pb, to_pb

DELIVERIES_TOPIC = "notifications.deliveries.v1"
WORKER = "notifications-worker"
CONSUMED_TYPES = TypeRegistry([referral_events, intake_events, shelter_events])
SURVIVOR_NOTICE_PURPOSE = "survivor_notice"


# --- the API ---------------------------------------------------------------------------------------


def notice_to_pb(n: Notice) -> pb.Notice:
    return pb.Notice(notice_id=n.notice_id, recipient_id=n.recipient_id, channel=n.channel, subject=n.subject,
                     body=n.body, referral_id=n.referral_id, case_id=n.case_id, created_at=to_timestamp(n.created_at),
                     status=n.status, kind=n.kind, urgency=n.urgency, province_code=n.province_code,
                     sequence=n.sequence)


# --- status events and dead letters -----------------------------------------------------------------


def _ref_fields(n: events.NoticeRef) -> dict[str, Any]:
    return dict(notice_id=n.notice_id, recipient_id=n.recipient_id, channel=n.channel, referral_id=n.referral_id,
                case_id=n.case_id, province_code=n.province_code, source_event_id=n.source_event_id, kind=n.kind,
                role=n.role, emergency=n.emergency)


def _subject(n: events.NoticeRef) -> str:
    return f"referral/{n.referral_id}" if n.referral_id else f"case/{n.case_id}"


def event_to_record(event: object) -> OutgoingEvent:
    message: Message
    if isinstance(event, events.NotificationSent):
        message = events_pb2.NotificationSent(**_ref_fields(event.notice), attempts=event.attempts,
                                              sent_at=to_timestamp(event.at))
    elif isinstance(event, events.NotificationDelivered):
        message = events_pb2.NotificationDelivered(**_ref_fields(event.notice), attempts=event.attempts,
                                                   delivered_at=to_timestamp(event.at))
    elif isinstance(event, events.NotificationFailed):
        message = events_pb2.NotificationFailed(**_ref_fields(event.notice), attempts=event.attempts,
                                                failed_at=to_timestamp(event.at), reason=event.reason,
                                                detail=event.detail)
    else:
        raise TypeError(f"no record mapping for {type(event).__name__}")
    notice = event.notice
    return OutgoingEvent(message, DELIVERIES_TOPIC, key=notice.province_code, subject=_subject(notice))


def dead_letter(failed: events.NotificationFailed) -> DeadLetter:
    """A failed delivery on notifications.dlq.v1. It failed after its event was consumed, so there is no
    original record to replay (original_topic is empty); event_id names the event that caused the notice,
    and the error names the notice, its channel and why."""
    n = failed.notice
    return DeadLetter(
        consumer=WORKER, original_key=n.province_code.encode(),
        error=f"delivery {failed.reason}: {failed.detail} (notice {n.notice_id}, {n.role} {n.kind} by {n.channel})",
        attempts=failed.attempts, failed_at=to_timestamp(failed.at), event_id=n.source_event_id,
        event_type=events_pb2.NotificationFailed.DESCRIPTOR.full_name,
    )


# --- intake's contact API ----------------------------------------------------------------------------


def contact_request(case_id: str, referral_id: str, service_type: ServiceType | None,
                    sector: str) -> contact_pb.GetCaseContactRequest:
    return contact_pb.GetCaseContactRequest(
        case_id=case_id, referral_id=referral_id, recipient_id="notifications",
        service_type=to_pb(service_type, types_pb2.ServiceType), purpose=SURVIVOR_NOTICE_PURPOSE,
        recipient_sector=sector)


def contact_from_pb(reply: contact_pb.GetCaseContactResponse) -> SurvivorContact:
    """Raises ContactRefused when her safe times cannot be read: she is not contacted at a time not known
    to be safe (intake validates them, so this is a bug to look into, not a retry)."""
    try:
        windows = tuple(ContactWindow.from_safe_time(t.weekdays, t.start, t.end) for t in reply.safe_times)
    except ValueError:
        raise ContactRefused("invalid_safe_times") from None
    return SurvivorContact(phone=reply.phone, phone_is_safe=reply.phone_is_safe, categories=tuple(reply.categories),
                           windows=windows, sms_stopped=reply.sms_stopped)


# --- consumed events -> commands ---------------------------------------------------------------------


def _service(number: int) -> ServiceType | None:
    return from_pb(ServiceType, types_pb2.ServiceType, number)


def _urgency(emergency: bool, risk: int) -> Urgency:
    return Urgency.of(emergency, from_pb(RiskLevel, types_pb2.RiskLevel, risk))


def _status(number: int) -> ReferralStatus | None:
    return from_pb(ReferralStatus, referral_pb.ReferralStatus, number)


def command_for(message: Message) -> object | None:
    cause = current_causation.get()
    event_id = cause.causation_id if cause else ""
    m: Any = message
    if isinstance(message, referral_events.ReferralRequested):
        service = _service(m.service_type)
        if service is None:
            raise InvalidEvent("service_type", "is unspecified")
        return commands.Notify(NewReferral(
            event_id, m.referral_id, m.case_id, service, m.provider_id, m.province_code,
            _urgency(m.emergency, m.risk_level), m.case_worker_id, m.shelter_id))
    if isinstance(message, referral_events.ReferralStatusChanged):
        to_status = _status(m.to_status)
        if to_status is None:
            raise InvalidEvent("to_status", "is unspecified")
        return commands.Notify(StatusChange(
            event_id, m.referral_id, m.case_id, m.provider_id, m.province_code, _status(m.from_status), to_status,
            m.reason, m.case_worker_id, _service(m.service_type), _urgency(m.emergency, m.risk_level)))
    if isinstance(message, referral_events.ReferralEscalated):
        return commands.Notify(Escalation(
            event_id, m.referral_id, m.case_id, m.province_code, _service(m.service_type), m.provider_id, m.reason,
            m.sla, from_timestamp(m, "deadline"), bool(m.rerouted_referral_id), m.case_worker_id,
            _urgency(m.emergency, m.risk_level)))
    if isinstance(message, shelter_events.BedReserved):
        return commands.Notify(BedUpdate(event_id, BedOutcome.RESERVED, m.referral_id, m.case_id, m.shelter_id,
                                         m.province_code, hold_until=from_timestamp(m, "hold_until")))
    if isinstance(message, shelter_events.BedReservationRejected):
        return commands.Notify(BedUpdate(event_id, BedOutcome.REJECTED, m.referral_id, m.case_id, m.shelter_id,
                                         m.province_code, reason=m.reason))
    if isinstance(message, shelter_events.BedReleased):
        return commands.Notify(BedUpdate(event_id, BedOutcome.RELEASED, m.referral_id, m.case_id, m.shelter_id,
                                         m.province_code, reason=m.reason))
    if isinstance(message, shelter_events.HoldExpired):
        return commands.Notify(BedUpdate(event_id, BedOutcome.RELEASED, m.referral_id, m.case_id, m.shelter_id,
                                         m.province_code, reason=BedReleaseReason.HOLD_EXPIRED,
                                         hold_until=from_timestamp(m, "hold_until")))
    return _case_command(message, event_id)


def _case_command(message: Message, event_id: str) -> object | None:
    m: Any = message
    if isinstance(message, intake_events.CaseRegistered) and m.imported:
        return None  # a record from before refnet (ImportHistory): nobody is told about the past
    if isinstance(message, intake_events.CaseRegistered):
        consented = frozenset(s for n in m.needs if n.consented and (s := _service(n.service_type)) is not None)
        emergency = EmergencyCase(event_id, m.case_id, m.province_code, m.case_worker_id,
                                  referral_count=len(consented)) if m.emergency else None
        return commands.NoteCase(m.case_id, m.province_code, m.case_worker_id, consented, emergency)
    if isinstance(message, intake_events.NeedAdded):
        service = _service(m.need.service_type)
        return commands.NoteConsent(m.case_id, service) if m.need.consented and service else None
    if isinstance(message, intake_events.ConsentGiven):
        service = _service(m.service_type)
        return commands.NoteConsent(m.case_id, service) if service else None
    if isinstance(message, intake_events.ConsentWithdrawn):
        return commands.WithdrawConsent(m.case_id, _service(m.service_type))
    if isinstance(message, intake_events.CaseErased):
        return commands.EraseCase(m.case_id)
    if isinstance(message, intake_events.CaseStepOverdue):
        step = intake_types.CaseStep.Name(m.step).removeprefix("CASE_STEP_").lower() if m.step else ""
        return commands.Notify(StepOverdue(event_id, m.case_id, m.province_code, step, from_timestamp(m, "due_at"),
                                           m.case_worker_id, Urgency.EMERGENCY if m.emergency else Urgency.HIGH))
    if isinstance(message, intake_events.CaseReassigned):
        # The new case worker is told what happens on the case from now on.
        return commands.NoteCase(m.case_id, m.province_code, m.to_case_worker_id, frozenset())
    return None

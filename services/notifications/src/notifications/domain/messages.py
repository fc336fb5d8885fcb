"""Who is told about a referral, case or bed event, and what they read. No I/O, no protobuf.

The worker turns each consumed event into one of the summaries below (ids and codes only: the
events carry no personal data, and neither do these), then:

1. ``recipients_for(event, survivor)`` says who is told and which notice each one gets;
2. for staff (provider duty contact, case worker, supervisor), ``rendering.staff_messages(event, addressee,
   contact, links)`` renders one message per channel the contact has, in the contact's language;
3. for the survivor, ``safe_contact.survivor_message(...)`` applies her safe-contact rules.

Rendering only ever sees a context built here from validated ids and closed vocabularies (service,
urgency, status, reason codes), so no free text from an event can reach a message. A referral or
case id that is not a canonical UUID, or a province code that is not two digits, is refused with
``InvalidEvent`` rather than rendered: an id field is never a place for a name or a phone number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from refnet_platform.vocabulary import (
    ESCALATION_REASONS,
    NOTIFIED_REASONS,
    DeclineReason,
    ReferralReason,
    ReferralStatus,
    RiskLevel,
    ServiceType,
    codes,
)


class InvalidEvent(ValueError):
    """An event summary that must not be rendered (malformed id or code): dead-letter it."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field_name = field_name
        self.problem = problem


# --- vocabulary (ReferralStatus is the shared one) ------------------------------------------------


class Urgency(StrEnum):
    EMERGENCY = "emergency"
    HIGH = "high"
    ROUTINE = "routine"

    @classmethod
    def of(cls, emergency: bool, risk_level: RiskLevel | None = None) -> Urgency:
        if emergency:
            return cls.EMERGENCY
        if risk_level is RiskLevel.HIGH:
            return cls.HIGH
        return cls.ROUTINE

    @property
    def priority(self) -> int:
        """Lower is sooner: emergencies are sent before anything else."""
        return {Urgency.EMERGENCY: 0, Urgency.HIGH: 1, Urgency.ROUTINE: 2}[self]


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
    IN_APP = "in_app"


class Language(StrEnum):
    VI = "vi"
    EN = "en"

    @classmethod
    def parse(cls, value: str | None) -> Language:
        """'vi', 'vi-VN', 'EN_us' -> a supported language; anything else -> Vietnamese."""
        head = (value or "").strip().lower().replace("_", "-").split("-", 1)[0]
        return cls(head) if head in cls._value2member_map_ else cls.VI


class Role(StrEnum):
    PROVIDER = "provider"  # the provider's duty contact; recipient_id is the provider_id
    CASE_WORKER = "case_worker"  # recipient_id is the case_worker_id
    SUPERVISOR = "supervisor"  # the province's supervisor; recipient_id is the province code
    SURVIVOR = "survivor"  # recipient_id is the case_id; contact only through safe_contact


class NoticeKind(StrEnum):
    REFERRAL_NEW = "referral_new"  # provider: a new referral to accept or decline
    REFERRAL_CANCELLED = "referral_cancelled"  # provider: no longer theirs (cancelled or expired)
    REFERRAL_STATUS = "referral_status"  # case worker: every status change
    REFERRAL_ESCALATED = "referral_escalated"  # supervisor
    SLA_BREACHED = "sla_breached"  # supervisor
    CASE_EMERGENCY = "case_emergency"  # supervisor: an emergency case was registered
    CASE_STEP_OVERDUE = "case_step_overdue"  # case worker: a step of her case missed its deadline
    CASE_STEP_ESCALATED = "case_step_escalated"  # supervisor: the same, escalated
    BED_RESERVED = "bed_reserved"  # case worker
    BED_REJECTED = "bed_rejected"  # case worker
    BED_RELEASED = "bed_released"  # case worker
    SURVIVOR_CONFIRMED = "survivor_confirmed"  # survivor: neutral "appointment confirmed"
    SURVIVOR_CHANGED = "survivor_changed"  # survivor: neutral "appointment changed"

    @property
    def for_survivor(self) -> bool:
        return self in (NoticeKind.SURVIVOR_CONFIRMED, NoticeKind.SURVIVOR_CHANGED)


class BedOutcome(StrEnum):
    RESERVED = "reserved"
    REJECTED = "rejected"
    RELEASED = "released"


# Coded reasons the templates can name: every code a producer can put in a reason field (the vocabulary's reason
# enums), and "other". Any other code renders as "other", never verbatim.
KNOWN_REASONS = codes(NOTIFIED_REASONS) | {"other"}
KNOWN_SLAS = frozenset({"accept", "start", "other"})
_SLA_REASONS = ESCALATION_REASONS - {ReferralReason.NO_PROVIDER}
# The survivor chose to stop, or her case is gone: she is not told anything more about it.
SILENT_REASONS = frozenset({ReferralReason.CONSENT_WITHDRAWN, ReferralReason.CASE_ERASED,
                             DeclineReason.SURVIVOR_DECLINED})


# --- event summaries (ids and codes only) ------------------------------------------------------


@dataclass(frozen=True)
class NewReferral:
    """From referral.v1.ReferralRequested."""

    event_id: str
    referral_id: str
    case_id: str
    service_type: ServiceType
    provider_id: str
    province_code: str
    urgency: Urgency = Urgency.ROUTINE
    case_worker_id: str = ""
    shelter_id: str = ""


@dataclass(frozen=True)
class StatusChange:
    """From referral.v1.ReferralStatusChanged. service_type and urgency come from the stored
    referral when the event lacks them; without a service type the survivor is never told."""

    event_id: str
    referral_id: str
    case_id: str
    provider_id: str
    province_code: str
    from_status: ReferralStatus | None
    to_status: ReferralStatus
    reason: str = ""
    case_worker_id: str = ""
    service_type: ServiceType | None = None
    urgency: Urgency = Urgency.ROUTINE


@dataclass(frozen=True)
class Escalation:
    """From referral.v1.ReferralEscalated: a referral missed its SLA (reason "not_accepted_in_time",
    "not_started_in_time" or "hold_expired"; sla "accept" or "start"), or no provider was found
    (reason "no_provider"). rerouted: the need went on to another provider."""

    event_id: str
    referral_id: str
    case_id: str
    province_code: str
    service_type: ServiceType | None
    provider_id: str = ""
    reason: str = ""
    sla: str = ""
    deadline: datetime | None = None
    rerouted: bool = False
    case_worker_id: str = ""
    urgency: Urgency = Urgency.ROUTINE

    @property
    def sla_breached(self) -> bool:
        return bool(self.sla) or self.reason in _SLA_REASONS


@dataclass(frozen=True)
class BedUpdate:
    """From shelter.v1.BedReserved / BedReservationRejected / BedReleased."""

    event_id: str
    outcome: BedOutcome
    referral_id: str
    case_id: str
    shelter_id: str
    province_code: str
    reason: str = ""
    hold_until: datetime | None = None
    case_worker_id: str = ""
    urgency: Urgency = Urgency.ROUTINE


@dataclass(frozen=True)
class EmergencyCase:
    """From intake.v1.CaseRegistered with emergency set (non-emergency cases notify nobody)."""

    event_id: str
    case_id: str
    province_code: str
    case_worker_id: str = ""
    referral_count: int = 0


# A child's case-management steps (intake's CaseStep names, Decree 56/2017); any other code renders as "other".
KNOWN_STEPS = frozenset({"receive_and_assess", "emergency_measures", "support_plan", "carry_out", "review", "close",
                         "other"})


@dataclass(frozen=True)
class StepOverdue:
    """From intake.v1.CaseStepOverdue: a step of a case missed its deadline (step: a KNOWN_STEPS code)."""

    event_id: str
    case_id: str
    province_code: str
    step: str
    due_at: datetime | None = None
    case_worker_id: str = ""
    urgency: Urgency = Urgency.HIGH


Event = NewReferral | StatusChange | Escalation | BedUpdate | EmergencyCase | StepOverdue


def event_referral_id(event: Event) -> str:
    return "" if isinstance(event, EmergencyCase | StepOverdue) else event.referral_id


def event_urgency(event: Event) -> Urgency:
    return Urgency.EMERGENCY if isinstance(event, EmergencyCase) else event.urgency


def event_service(event: Event) -> ServiceType | None:
    if isinstance(event, NewReferral | StatusChange | Escalation):
        return event.service_type
    if isinstance(event, BedUpdate):
        return ServiceType.SHELTER
    return None


# --- who is told -------------------------------------------------------------------------------


class SurvivorConsent(Protocol):
    """What recipients_for needs to know of the survivor (safe_contact.SurvivorProfile is one)."""

    def covers(self, service_type: ServiceType) -> bool: ...


@dataclass(frozen=True)
class Addressee:
    role: Role
    recipient_id: str
    kind: NoticeKind


def recipients_for(event: Event, survivor: SurvivorConsent | None = None) -> tuple[Addressee, ...]:
    """Who is told about ``event``, at most one notice per (role, recipient), most specific first.

    - NewReferral: the provider's duty contact. Without a provider, nobody: the referral service
      follows it with ReferralEscalated(reason "no_provider"), which tells the supervisor.
    - StatusChange: the referring case worker, always (the supervisor instead when the referral has
      no case worker, so nothing goes unseen); the provider when its referral is cancelled or
      expired; the survivor only when her consent covers the service: "confirmed" on acceptance,
      "changed" when an accepted referral falls through for a reason other than her own choice.
      (EXPIRED and ESCALATED transitions reach the supervisor through the Escalation event that
      accompanies them, once, not once per transition.)
    - Escalation: the province's supervisor (an SLA breach, or no provider found).
    - BedUpdate: the case worker (supervisor fallback as above).
    - EmergencyCase: the province's supervisor.
    - StepOverdue: the case worker (told her step is overdue) and the province's supervisor (escalated).
    """
    out: list[Addressee] = []

    def case_worker(kind: NoticeKind, case_worker_id: str, province_code: str) -> None:
        if case_worker_id:
            out.append(Addressee(Role.CASE_WORKER, case_worker_id, kind))
        else:
            out.append(Addressee(Role.SUPERVISOR, province_code, kind))

    if isinstance(event, NewReferral):
        out.append(Addressee(Role.PROVIDER, event.provider_id, NoticeKind.REFERRAL_NEW))
    elif isinstance(event, StatusChange):
        to = event.to_status
        case_worker(NoticeKind.REFERRAL_STATUS, event.case_worker_id, event.province_code)
        if to in (ReferralStatus.CANCELLED, ReferralStatus.EXPIRED) and event.provider_id:
            out.append(Addressee(Role.PROVIDER, event.provider_id, NoticeKind.REFERRAL_CANCELLED))
        kind = _survivor_kind(event)
        if (
            kind is not None
            and survivor is not None
            and event.service_type is not None
            and survivor.covers(event.service_type)
        ):
            out.append(Addressee(Role.SURVIVOR, event.case_id, kind))
    elif isinstance(event, Escalation):
        kind = NoticeKind.SLA_BREACHED if event.sla_breached else NoticeKind.REFERRAL_ESCALATED
        out.append(Addressee(Role.SUPERVISOR, event.province_code, kind))
    elif isinstance(event, BedUpdate):
        kind = {
            BedOutcome.RESERVED: NoticeKind.BED_RESERVED,
            BedOutcome.REJECTED: NoticeKind.BED_REJECTED,
            BedOutcome.RELEASED: NoticeKind.BED_RELEASED,
        }[event.outcome]
        case_worker(kind, event.case_worker_id, event.province_code)
    elif isinstance(event, StepOverdue):
        if event.case_worker_id:
            out.append(Addressee(Role.CASE_WORKER, event.case_worker_id, NoticeKind.CASE_STEP_OVERDUE))
        out.append(Addressee(Role.SUPERVISOR, event.province_code, NoticeKind.CASE_STEP_ESCALATED))
    else:
        out.append(Addressee(Role.SUPERVISOR, event.province_code, NoticeKind.CASE_EMERGENCY))

    seen: set[tuple[Role, str]] = set()
    unique: list[Addressee] = []
    for addressee in out:
        key = (addressee.role, addressee.recipient_id)
        if addressee.recipient_id and key not in seen:
            seen.add(key)
            unique.append(addressee)
    return tuple(unique)


def _survivor_kind(event: StatusChange) -> NoticeKind | None:
    if event.to_status is ReferralStatus.ACCEPTED:
        return NoticeKind.SURVIVOR_CONFIRMED
    fell_through = event.to_status in (
        ReferralStatus.CANCELLED, ReferralStatus.REJECTED, ReferralStatus.FAILED, ReferralStatus.EXPIRED,
    )
    was_on = event.from_status in (ReferralStatus.ACCEPTED, ReferralStatus.IN_SERVICE)
    if fell_through and was_on and event.reason not in SILENT_REASONS:
        return NoticeKind.SURVIVOR_CHANGED
    return None

"""Who is told about a referral, case or bed event, and what they read. No I/O, no protobuf.

The worker turns each consumed event into one of the summaries below (ids and codes only: the
events carry no personal data, and neither do these), then:

1. ``recipients_for(event, survivor)`` says who is told and which notice each one gets;
2. for staff (provider duty contact, case worker, supervisor), ``staff_messages(event, addressee,
   contact, links)`` renders one message per channel the contact has, in the contact's language;
3. for the survivor, ``safe_contact.survivor_message(...)`` applies her safe-contact rules.

Rendering only ever sees a context built here from validated ids and closed vocabularies (service,
urgency, status, reason codes), so no free text from an event can reach a message. A referral or
case id that is not a canonical UUID, or a province code that is not two digits, is refused with
``InvalidEvent`` rather than rendered: an id field is never a place for a name or a phone number.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from refnet_platform.vocabulary import (
    ESCALATION_REASONS,
    NOTIFIED_REASONS,
    DeclineReason,
    ReferralReason,
    RiskLevel,
    ServiceType,
    codes,
)

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
NOTICE_NAMESPACE = uuid.UUID("6b0f6d43-52c5-4c3c-9d0e-7d6f3b1e5a10")


class InvalidEvent(ValueError):
    """An event summary that must not be rendered (malformed id or code): dead-letter it."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field_name = field_name
        self.problem = problem


# --- vocabulary --------------------------------------------------------------------------------


class ReferralStatus(StrEnum):
    """Mirrors refnet.referral.v1.ReferralStatus by name (use vocabulary.from_pb to map)."""

    REQUESTED = "requested"
    ACCEPTED = "accepted"
    IN_SERVICE = "in_service"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ESCALATED = "escalated"
    FAILED = "failed"


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
_SILENT_REASONS = frozenset({ReferralReason.CONSENT_WITHDRAWN, ReferralReason.CASE_ERASED,
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


Event = NewReferral | StatusChange | Escalation | BedUpdate | EmergencyCase


def event_referral_id(event: Event) -> str:
    return "" if isinstance(event, EmergencyCase) else event.referral_id


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
    if fell_through and was_on and event.reason not in _SILENT_REASONS:
        return NoticeKind.SURVIVOR_CHANGED
    return None


# --- what they read ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Where staff act. partner_portal: the partner portal's base URL; operator_console: the
    hotline operators' screen. Both are configuration, never taken from an event."""

    partner_portal: str
    operator_console: str
    partner_api: str = "refnet.referral.v1.ReferralService"

    def __post_init__(self) -> None:
        for name in ("partner_portal", "operator_console"):
            value = getattr(self, name)
            if not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?", value):
                raise ValueError(f"{name} must be a plain http(s) URL without query, got {value!r}")

    def referral(self, referral_id: str) -> str:
        return f"{self.partner_portal.rstrip('/')}/referrals/{referral_id}"

    def case(self, case_id: str, referral_id: str = "") -> str:
        url = f"{self.operator_console.rstrip('/')}/cases/{case_id}"
        return f"{url}/referrals/{referral_id}" if referral_id else url


def short_ref(referral_id: str) -> str:
    """RF-1A2B3C4D: the last 8 hex digits of the referral's UUID (random in UUIDv4 and v7), so a
    partner can match it by eye against the referral ids in its own list or search for it."""
    return "RF-" + _uuid(referral_id, "referral_id")[-8:].upper()


def short_case_ref(case_id: str) -> str:
    return "CS-" + _uuid(case_id, "case_id")[-8:].upper()


def _uuid(value: str, field_name: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidEvent(field_name, "is not a UUID") from None
    canonical = str(parsed)
    if value.lower() != canonical:
        raise InvalidEvent(field_name, "is not a canonical UUID")
    return canonical


def _province(value: str) -> str:
    if not re.fullmatch(r"[0-9]{2}", value or ""):
        raise InvalidEvent("province_code", "is not a two-digit province code")
    return value


def _code(value: str, known: frozenset[str]) -> str:
    if not value:
        return ""
    return value if value in known else "other"


def _local_time(value: datetime | None, field_name: str) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        raise InvalidEvent(field_name, "is a naive datetime")
    return value.astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")


def context_for(event: Event, addressee: Addressee, links: Links) -> dict[str, object]:
    """The whole of what a template may see. Survivor notices see nothing about the event at all."""
    if addressee.kind.for_survivor:
        return {}
    ctx: dict[str, object] = {
        "urgency": str(event_urgency(event)),
        "province": _province(event.province_code),
    }
    if isinstance(event, EmergencyCase):
        case_id = _uuid(event.case_id, "case_id")
        ctx.update(
            case_ref=short_case_ref(case_id),
            referral_count=max(0, int(event.referral_count)),
            action_url=links.case(case_id),
        )
        return ctx

    referral_id = _uuid(event.referral_id, "referral_id")
    case_id = _uuid(event.case_id, "case_id")
    service = event_service(event)
    ctx.update(
        ref=short_ref(referral_id),
        referral_id=referral_id,
        service=str(service) if service is not None else "",
    )
    if addressee.role is Role.PROVIDER:
        ctx["action_url"] = links.referral(referral_id)
        ctx["partner_api"] = links.partner_api
    else:
        ctx["case_ref"] = short_case_ref(case_id)
        ctx["action_url"] = links.case(case_id, referral_id)

    if isinstance(event, StatusChange):
        reason = _code(event.reason, KNOWN_REASONS)
        if addressee.role is Role.PROVIDER and reason in _SILENT_REASONS:
            reason = ""  # a provider needs to know it is off, not what the survivor decided
        ctx.update(
            from_status=str(event.from_status) if event.from_status is not None else "",
            to_status=str(event.to_status),
            reason=reason,
        )
    elif isinstance(event, Escalation):
        ctx.update(
            reason=_code(event.reason, KNOWN_REASONS),
            sla=_code(event.sla, KNOWN_SLAS) or ("other" if event.sla_breached else ""),
            deadline=_local_time(event.deadline, "deadline"),
            rerouted=bool(event.rerouted),
        )
    elif isinstance(event, BedUpdate):
        ctx.update(
            reason=_code(event.reason, KNOWN_REASONS), hold_until=_local_time(event.hold_until, "hold_until")
        )
    return ctx


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str  # e-mail body, in-app body, webhook text
    sms: str  # one short line
    html: str  # e-mail alternative, autoescaped


@lru_cache(maxsize=1)
def template_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def _block(template: Template, name: str, context: Mapping[str, object]) -> str:
    return "".join(template.blocks[name](template.new_context(dict(context))))


def render(kind: NoticeKind, language: Language, context: Mapping[str, object]) -> Rendered:
    """Render ``{language}/{kind}.j2`` (blocks subject, text, sms) and the HTML e-mail layout."""
    env = template_environment()
    labels = env.get_template(f"{language}/_labels.j2").module
    full = {**context, "L": labels}
    template = env.get_template(f"{language}/{kind}.j2")
    subject = " ".join(_block(template, "subject", full).split())
    text = "\n".join(line.rstrip() for line in _block(template, "text", full).strip().splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text)
    sms = " ".join(_block(template, "sms", full).split())
    html = env.get_template(f"{language}/_email.html.j2").render(
        subject=subject,
        paragraphs=[p.splitlines() for p in text.split("\n\n")],
        action_url=str(context.get("action_url", "")),
        L=labels,
    )
    return Rendered(subject=subject, text=text, sms=sms, html=html)


# --- outbound messages -------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    channel: Channel
    address: str  # e-mail address, phone number, webhook URL, or in-app inbox id


@dataclass(frozen=True)
class Contact:
    """A staff recipient as the directory resolves it (provider duty contact, case worker,
    supervisor): their language and their endpoints, in order of preference."""

    recipient_id: str
    language: Language
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class OutboundMessage:
    """One notice for one recipient on one channel. notice_id is deterministic in
    (event, role, recipient, channel): a redelivered event yields the same id, so storing it under
    a unique key gives exactly one notice however often the event arrives."""

    notice_id: str
    event_id: str
    kind: NoticeKind
    role: Role
    recipient_id: str
    channel: Channel
    address: str
    language: Language
    subject: str
    body: str
    html: str = ""
    payload: Mapping[str, str] = field(default_factory=dict)  # webhook JSON (no personal data)
    priority: int = Urgency.ROUTINE.priority
    not_before: datetime | None = None  # set for survivor messages deferred to her safe window
    case_id: str = ""
    referral_id: str = ""
    province_code: str = ""
    service_type: ServiceType | None = None

    @property
    def for_survivor(self) -> bool:
        return self.role is Role.SURVIVOR


def notice_id(event_id: str, role: Role, recipient_id: str, channel: Channel | str) -> str:
    """Deterministic: the same (event, role, recipient, channel) always gives the same id."""
    return str(uuid.uuid5(NOTICE_NAMESPACE, f"{event_id}|{role}|{recipient_id}|{channel}"))


_PAYLOAD_KEYS = (
    "ref", "referral_id", "case_ref", "service", "urgency", "province", "from_status", "to_status",
    "reason", "sla", "deadline", "hold_until", "action_url", "partner_api",
)


def staff_messages(
    event: Event, addressee: Addressee, contact: Contact, links: Links
) -> list[OutboundMessage]:
    """One message per channel the contact has (the first endpoint of each channel), rendered in
    the contact's language. Raises InvalidEvent for a malformed id, ValueError for a survivor."""
    if addressee.role is Role.SURVIVOR or addressee.kind.for_survivor:
        raise ValueError("survivor messages go through safe_contact.survivor_message")
    context = context_for(event, addressee, links)
    rendered = render(addressee.kind, contact.language, context)
    payload_base = {k: str(context[k]) for k in _PAYLOAD_KEYS if k in context and context[k] != ""}
    messages: list[OutboundMessage] = []
    used: set[Channel] = set()
    for endpoint in contact.endpoints:
        if endpoint.channel in used or not endpoint.address:
            continue
        used.add(endpoint.channel)
        nid = notice_id(event.event_id, addressee.role, addressee.recipient_id, endpoint.channel)
        payload: dict[str, str] = {}
        if endpoint.channel is Channel.WEBHOOK:
            payload = {
                "notice_id": nid,
                "kind": str(addressee.kind),
                "language": str(contact.language),
                **payload_base,
                "subject": rendered.subject,
                "text": rendered.text,
            }
        messages.append(
            OutboundMessage(
                notice_id=nid,
                event_id=event.event_id,
                kind=addressee.kind,
                role=addressee.role,
                recipient_id=addressee.recipient_id,
                channel=endpoint.channel,
                address=endpoint.address,
                language=contact.language,
                subject=rendered.subject,
                body=rendered.sms if endpoint.channel is Channel.SMS else rendered.text,
                html=rendered.html if endpoint.channel is Channel.EMAIL else "",
                payload=payload,
                priority=event_urgency(event).priority,
                case_id=event.case_id,
                referral_id=event_referral_id(event),
                province_code=event.province_code,
                service_type=event_service(event),
            )
        )
    return messages


def by_priority(messages: Sequence[OutboundMessage]) -> list[OutboundMessage]:
    """Emergencies first; otherwise in the order given (stable)."""
    return sorted(messages, key=lambda m: m.priority)

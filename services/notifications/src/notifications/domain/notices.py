"""Notices and their delivery: what is recorded, what a round of dispatch decides. No I/O, no protobuf.

A notice is one message to one recipient on one channel, caused by one event (messages.notice_id).
Its delivery is a row with a status and a next_attempt_at: the handler that learns of the event
records both in its transaction, and the worker's dispatch round sends what is due, emergencies first,
and records what happened. The in-app feed is notifications' own database, so an in-app notice is
delivered in the transaction that records it and never waits for a round. A survivor's notice travels
in its own lane ("survivor"): her address and her safe times are never stored, they are read from
intake just before each send and judged by safe_contact.recheck.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from notifications.domain.events import NoticeRef
from notifications.domain.messages import (
    Addressee,
    Channel,
    Event,
    Language,
    Role,
    Urgency,
    event_referral_id,
    event_service,
    event_urgency,
)
from notifications.domain.rendering import Contact, Endpoint, OutboundMessage, notice_id, render_fixed
from notifications.domain.retry import DeadLetter, DeliveryResult, Jitter, Outcome, Retry, RetryPolicy, next_step
from notifications.domain.safe_contact import (
    SURVIVOR_NOTICE_CHANNEL,
    ContactPoint,
    ContactWindow,
    Defer,
    SurvivorProfile,
    Withhold,
)
from refnet_platform.vocabulary import DeliveryFailureReason, ServiceType

SURVIVOR_LANE = SURVIVOR_NOTICE_CHANNEL
URGENCY_OF_PRIORITY = {u.priority: u for u in Urgency}


class Status(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    DEFERRED = "deferred"  # a survivor's notice waiting for her window; next_attempt_at is when it opens
    SENT = "sent"  # handed over (SMTP relay, SMS gateway)
    DELIVERED = "delivered"  # the receiving system has it (webhook 2xx, in-app feed)
    FAILED = "failed"  # dead-lettered: a permanent failure, or the retries are used up
    CANCELLED = "cancelled"  # never to be sent: withheld, consent withdrawn, case erased

    @property
    def open(self) -> bool:
        return self in (Status.PENDING, Status.DEFERRED)


@dataclass(frozen=True)
class Notice:
    """A notice as a recipient's in-app feed shows it."""

    notice_id: str
    source_event_id: str
    kind: str
    role: str
    recipient_id: str
    channel: str
    subject: str
    body: str
    referral_id: str
    case_id: str
    province_code: str
    urgency: str
    status: str
    created_at: datetime
    sequence: int = 0


@dataclass(frozen=True)
class Planned:
    """A notice to record with its delivery. lane: its channel, or "survivor". sector: for a survivor's
    notice, the sector of the provider it is about (intake checks her consent covers it). attempts: 1 for
    an in-app notice, delivered as it is recorded."""

    message: OutboundMessage
    lane: str
    status: Status
    next_attempt_at: datetime
    sector: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class Due:
    """A delivery a dispatch round has claimed: attempt is the number of this attempt."""

    message: OutboundMessage
    lane: str
    attempt: int
    sector: str = ""
    correlation_id: str = ""
    traceparent: str = ""

    @property
    def for_survivor(self) -> bool:
        return self.lane == SURVIVOR_LANE


# --- who gets which channels -------------------------------------------------------------------


def staff_contact(role: Role, recipient_id: str, known: Contact | None, channels: Iterable[Channel]) -> Contact:
    """The contact to use: the directory's on the configured channels, always with the in-app feed first
    (its inbox is the recipient id itself); someone the directory does not know gets the feed only."""
    usable = set(channels) | {Channel.IN_APP}
    endpoints = [Endpoint(Channel.IN_APP, recipient_id)]
    if known is not None:
        endpoints += [e for e in known.endpoints if e.channel in usable and e.channel is not Channel.IN_APP]
    return Contact(recipient_id, known.language if known else Language.VI, tuple(endpoints))


# --- a survivor's notice, before anyone knows her number ---------------------------------------


def survivor_notice(event: Event, addressee: Addressee, language: Language, sector: str, now: datetime) -> Planned:
    """Her notice, recorded without any address: neutral text in her language, due now. Her route and her
    safe times are known only at send time, from intake's current record: the first dispatch sends it, or
    defers it to her next window (never drops it), or withholds it."""
    if addressee.role is not Role.SURVIVOR or not addressee.kind.for_survivor:
        raise ValueError("not a survivor addressee")
    rendered = render_fixed(addressee.kind, language)
    message = OutboundMessage(
        notice_id=notice_id(event.event_id, Role.SURVIVOR, addressee.recipient_id, SURVIVOR_LANE),
        event_id=event.event_id, kind=addressee.kind, role=Role.SURVIVOR, recipient_id=addressee.recipient_id,
        # The channel is a placeholder until recheck picks her route; the address stays empty here.
        channel=Channel.SMS, address="", language=language, subject=rendered.subject, body=rendered.sms,
        priority=event_urgency(event).priority, case_id=event.case_id, referral_id=event_referral_id(event),
        province_code=event.province_code, service_type=event_service(event),
    )
    return Planned(message, SURVIVOR_LANE, Status.PENDING, now, sector)


def staff_planned(messages: Iterable[OutboundMessage], now: datetime) -> list[Planned]:
    """The in-app notice is delivered as it is recorded (its feed is in the same database); the others are
    due now, for the dispatcher."""
    return [Planned(m, str(m.channel), Status.DELIVERED, now, attempts=1) if m.channel is Channel.IN_APP
            else Planned(m, str(m.channel), Status.PENDING, now) for m in messages]


def notice_ref(message: OutboundMessage, lane: str) -> NoticeRef:
    """What the status events say of a notice: ids and codes only."""
    return NoticeRef(message.notice_id, message.recipient_id, lane, message.referral_id, message.case_id,
                     message.province_code, message.event_id, str(message.kind), str(message.role),
                     message.priority == Urgency.EMERGENCY.priority)


@dataclass(frozen=True)
class SurvivorContact:
    """What intake let notifications read: only the categories her consent covers. Never stored.
    windows: the safe times she gave (only when the consent covers "safe_contact"); none if she gave none."""

    phone: str
    phone_is_safe: bool
    categories: tuple[str, ...]
    windows: tuple[ContactWindow, ...] = ()
    sms_stopped: bool = False  # she texted STOP from her number: no SMS to her


def survivor_profile(
    message: OutboundMessage, contact: SurvivorContact, default_windows: tuple[ContactWindow, ...]
) -> SurvivorProfile:
    """Her profile for this notice: intake answered, so her consent for the service is valid; a phone is
    a contact point only when the consent covers it, and is used only when marked safe; she is contacted
    only at the times she gave, or within the configured default windows when intake returned none."""
    services = frozenset({message.service_type}) if message.service_type else frozenset()
    points = (ContactPoint(Channel.SMS, contact.phone, contact.phone_is_safe),) if contact.phone else ()
    return SurvivorProfile(
        case_id=message.case_id, language=message.language, contact_consented="phone" in contact.categories,
        services=services, channels=(Channel.SMS,), contact_points=points,
        windows=contact.windows or default_windows,
    )


# --- after an attempt --------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    reason: DeliveryFailureReason
    detail: str


@dataclass(frozen=True)
class Recorded:
    """What to store after a claimed delivery was tried (or judged): its new status and when it is due
    next. attempts: the attempts made so far (a deferral gives its attempt back)."""

    status: Status
    attempts: int
    next_attempt_at: datetime | None = None
    detail: str = ""
    failure: Failure | None = None


def after_attempt(
    due: Due, result: DeliveryResult, policy: RetryPolicy, now: datetime, jitter: Jitter | None = None
) -> Recorded:
    step = next_step(policy, due.attempt, result, now, jitter)
    if isinstance(step, Retry):
        return Recorded(Status.PENDING, due.attempt, step.at, result.detail)
    if isinstance(step, DeadLetter):
        return Recorded(Status.FAILED, due.attempt, None, result.detail, Failure(step.reason, step.detail))
    status = Status.DELIVERED if result.outcome is Outcome.DELIVERED else Status.SENT
    return Recorded(status, due.attempt, None, result.detail)


def after_survivor_decision(due: Due, decision: Defer | Withhold) -> Recorded:
    """Not sent this round: deferred to her window (the attempt does not count), or withheld for good."""
    if isinstance(decision, Defer):
        return Recorded(Status.DEFERRED, due.attempt - 1, decision.until, "outside_safe_window")
    return Recorded(Status.CANCELLED, due.attempt, None, decision.reason)


def urgency_of(priority: int) -> Urgency:
    return URGENCY_OF_PRIORITY.get(priority, Urgency.ROUTINE)


@dataclass(frozen=True)
class ConsentedServices:
    """The services a survivor consented to, as the worker learnt them from intake's events (intake has
    the last word when her notice is sent)."""

    services: frozenset[ServiceType]

    def covers(self, service_type: ServiceType) -> bool:
        return service_type in self.services


class ContactRefused(Exception):
    """Intake will not give her contact for this notice (consent withdrawn or expired, case closed or
    erased, not covered): the notice is withheld for good. reason is a code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ContactUnavailable(Exception):
    """Intake could not be asked just now: try again later."""


# --- the in-app feed's live stream -------------------------------------------------------------


class FeedCursor:
    """Where a WatchNotices stream is in a feed. Sequences are handed out when a row is inserted, so with
    several writers a lower one can become visible a moment after a higher one: the cursor keeps
    re-reading above its settled point for `settle_s` and remembers what it already sent, so nothing is
    sent twice and nothing committed within that time is missed. Memory: the notices of `settle_s`."""

    def __init__(self, after: int, settle_s: float = 5.0) -> None:
        self.low = after
        self.settle_s = settle_s
        self._seen: dict[int, float] = {}

    def take(self, notices: Iterable[Notice], now: float) -> list[Notice]:
        fresh = [n for n in notices if n.sequence > self.low and n.sequence not in self._seen]
        for notice in fresh:
            self._seen[notice.sequence] = now
        settled = [s for s, seen_at in self._seen.items() if now - seen_at >= self.settle_s]
        if settled:
            self.low = max(self.low, *settled)
            self._seen = {s: t for s, t in self._seen.items() if s > self.low}
        return sorted(fresh, key=lambda n: n.sequence)

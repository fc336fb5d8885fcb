"""A survivor's safe-contact rules. No I/O, no protobuf.

- She is contacted only if she consented to contact about that service.
- Only on a channel she allowed (SMS or e-mail), in her order of preference, and only at an
  address marked safe: an address not marked safe is never used, and an address marked unsafe
  anywhere in her profile is unsafe everywhere (+84 and 0 forms of a number are the same number).
- Only inside a time window she gave, in Asia/Ho_Chi_Minh time (the configured default windows when
  she gave none). Outside it a message is deferred to the moment the next window opens, never dropped.
- Withdrawing consent stops what is pending for her (``stop_pending``), and every pending message
  is checked again against her current profile when it falls due (``recheck``): the worker sends
  exactly the message it is handed back, to the address in it, never one it stored earlier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Protocol, TypeVar

from notifications.domain.messages import (
    Addressee,
    Channel,
    Event,
    Language,
    NoticeKind,
    Role,
    event_referral_id,
    event_service,
    event_urgency,
)
from notifications.domain.rendering import VIETNAM, OutboundMessage, notice_id, render_fixed
from refnet_platform.vocabulary import ServiceType

EVERY_DAY = frozenset(range(7))
SURVIVOR_CHANNELS = (Channel.SMS, Channel.EMAIL)
DAY = timedelta(days=1)
# A survivor gets at most one notice per event, whichever of her channels it goes out on.
SURVIVOR_NOTICE_CHANNEL = "survivor"


@dataclass(frozen=True)
class ContactPoint:
    channel: Channel
    address: str
    safe: bool


@dataclass(frozen=True)
class ContactWindow:
    """A daily window in Vietnam time, opening on the given weekdays (Monday is 0).

    start < end: the same day; start > end: across midnight into the next day; start == end: a
    whole day from start. The weekday is the day the window opens.
    """

    start: time
    end: time
    weekdays: frozenset[int] = EVERY_DAY

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window times are wall-clock times in Asia/Ho_Chi_Minh, without tzinfo")
        if not self.weekdays or not self.weekdays <= EVERY_DAY:
            raise ValueError("weekdays must be a non-empty subset of 0..6 (Monday is 0)")

    @classmethod
    def parse(cls, text: str, weekdays: Iterable[int] = EVERY_DAY) -> ContactWindow:
        """'07:30-21:00' or '22:00-06:00' (across midnight)."""
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
        if not match:
            raise ValueError(f"not a window like 07:30-21:00: {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        end = time(0, 0) if (h2, m2) == (24, 0) else time(h2, m2)
        return cls(time(h1, m1), end, frozenset(weekdays))

    @classmethod
    def from_safe_time(cls, iso_weekdays: Iterable[int], start: str, end: str) -> ContactWindow:
        """A safe time as intake records it: ISO weekdays (1 = Monday; none: every day), "HH:MM" to "HH:MM"
        (24:00 allowed as the end). Raises ValueError for anything else."""
        days = frozenset(d - 1 for d in iso_weekdays) or EVERY_DAY
        if not re.fullmatch(r"\d{2}:\d{2}", start) or not re.fullmatch(r"\d{2}:\d{2}", end) or start == end:
            raise ValueError("a safe time is HH:MM to a different HH:MM")
        return cls.parse(f"{start}-{end}", days)

    @property
    def duration(self) -> timedelta:
        start, end = _since_midnight(self.start), _since_midnight(self.end)
        return end - start if end > start else DAY - (start - end)


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


ANYTIME = ContactWindow(time(0, 0), time(0, 0))


@dataclass(frozen=True)
class SurvivorProfile:
    """What the case holds about contacting her (decrypted by the worker, never logged)."""

    case_id: str
    language: Language = Language.VI
    contact_consented: bool = False
    services: frozenset[ServiceType] = frozenset()  # services she may be contacted about
    channels: tuple[Channel, ...] = ()  # channels she allowed, most preferred first
    contact_points: tuple[ContactPoint, ...] = ()
    windows: tuple[ContactWindow, ...] = ()  # none: no safe time, so she is never contacted

    def covers(self, service_type: ServiceType) -> bool:
        return self.contact_consented and service_type in self.services


@dataclass(frozen=True)
class ConsentWithdrawal:
    """services=None: she withdrew consent to be contacted at all; otherwise for those services."""

    case_id: str
    services: frozenset[ServiceType] | None = None


def apply_withdrawal(profile: SurvivorProfile, withdrawal: ConsentWithdrawal) -> SurvivorProfile:
    if withdrawal.case_id != profile.case_id:
        return profile
    if withdrawal.services is None:
        return replace(profile, contact_consented=False, services=frozenset())
    return replace(profile, services=profile.services - withdrawal.services)


# --- where ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    channel: Channel
    address: str


def normalize_address(channel: Channel, address: str) -> str:
    """The comparable form: a Vietnamese number as 0xxxxxxxxx, an e-mail address lower-cased."""
    if channel is Channel.SMS:
        digits = re.sub(r"[^\d+]", "", address)
        if digits.startswith("+84"):
            digits = "0" + digits[3:]
        elif digits.startswith("0084"):
            digits = "0" + digits[4:]
        elif digits.startswith("84") and len(digits) >= 11:
            digits = "0" + digits[2:]
        return digits
    return address.strip().lower()


def _usable(channel: Channel, normalized: str) -> bool:
    if channel is Channel.SMS:
        return re.fullmatch(r"\+?\d{8,15}", normalized) is not None
    return re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", normalized) is not None


def choose_route(profile: SurvivorProfile) -> Route | None:
    """Her most preferred allowed channel that has an address marked safe and never marked unsafe."""
    unsafe = {
        (p.channel, normalize_address(p.channel, p.address)) for p in profile.contact_points if not p.safe
    }
    for channel in profile.channels:
        if channel not in SURVIVOR_CHANNELS:
            continue
        for point in profile.contact_points:
            if point.channel is not channel or point.safe is not True:
                continue
            key = (channel, normalize_address(channel, point.address))
            if key not in unsafe and _usable(channel, key[1]):
                return Route(channel, point.address.strip())
    return None


# --- when ----------------------------------------------------------------------------------------


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now


def next_window_open(windows: Iterable[ContactWindow], now: datetime) -> datetime | None:
    """``now`` (in Vietnam time) if inside a window, else when the next window opens; None if there
    is no window at all. Vietnam keeps no daylight saving, so wall-clock arithmetic is exact."""
    local = _require_aware(now).astimezone(VIETNAM)
    best: datetime | None = None
    for window in windows:
        for offset in range(-1, 8):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in window.weekdays:
                continue
            start = datetime.combine(day, window.start, tzinfo=VIETNAM)
            if start <= local < start + window.duration:
                return local
            if start > local and (best is None or start < best):
                best = start
    return best


def in_window(windows: Iterable[ContactWindow], now: datetime) -> bool:
    opens = next_window_open(windows, now)
    return opens is not None and opens <= now


# --- the decision --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    message: OutboundMessage


@dataclass(frozen=True)
class Defer:
    message: OutboundMessage  # message.not_before == until
    until: datetime


@dataclass(frozen=True)
class Withhold:
    """Not sent, and why: "no_consent", "consent_does_not_cover", "no_safe_contact_point",
    "no_safe_time", "case_mismatch". Quiet hours never withhold; they defer."""

    reason: str


SurvivorDecision = Send | Defer | Withhold


def _decide(
    profile: SurvivorProfile,
    service_type: ServiceType | None,
    now: datetime,
) -> Route | Withhold | tuple[Route, datetime]:
    _require_aware(now)
    if not profile.contact_consented:
        return Withhold("no_consent")
    if service_type is None or not profile.covers(service_type):
        return Withhold("consent_does_not_cover")
    route = choose_route(profile)
    if route is None:
        return Withhold("no_safe_contact_point")
    opens = next_window_open(profile.windows, now)
    if opens is None:
        return Withhold("no_safe_time")
    if opens <= now:
        return route
    return route, opens


def _compose(
    base: OutboundMessage | None,
    *,
    event_id: str,
    kind: NoticeKind,
    case_id: str,
    route: Route,
    language: Language,
    priority: int,
    not_before: datetime | None,
    referral_id: str,
    province_code: str,
    service_type: ServiceType | None,
) -> OutboundMessage:
    rendered = render_fixed(kind, language)
    nid = base.notice_id if base else notice_id(event_id, Role.SURVIVOR, case_id, SURVIVOR_NOTICE_CHANNEL)
    return OutboundMessage(
        notice_id=nid,
        event_id=event_id,
        kind=kind,
        role=Role.SURVIVOR,
        recipient_id=case_id,
        channel=route.channel,
        address=route.address,
        language=language,
        subject=rendered.subject,
        body=rendered.sms if route.channel is Channel.SMS else rendered.text,
        html=rendered.html if route.channel is Channel.EMAIL else "",
        payload={},
        priority=priority,
        not_before=not_before,
        case_id=case_id,
        referral_id=referral_id,
        province_code=province_code,
        service_type=service_type,
    )


def _outcome(decision: Route | Withhold | tuple[Route, datetime], build: _Builder) -> SurvivorDecision:
    if isinstance(decision, Withhold):
        return decision
    if isinstance(decision, Route):
        return Send(build(decision, None))
    route, until = decision
    return Defer(build(route, until), until)


class _Builder(Protocol):
    def __call__(self, route: Route, not_before: datetime | None) -> OutboundMessage: ...


def survivor_message(
    event: Event, addressee: Addressee, profile: SurvivorProfile, now: datetime
) -> SurvivorDecision:
    """The survivor's notice for ``event`` under her rules: send now, defer to her window, or withhold.
    The message is neutral (rendered from an empty context) and in her language."""
    if addressee.role is not Role.SURVIVOR or not addressee.kind.for_survivor:
        raise ValueError("not a survivor addressee")
    if addressee.recipient_id != profile.case_id or event.case_id != profile.case_id:
        return Withhold("case_mismatch")
    service = event_service(event)

    def build(route: Route, not_before: datetime | None) -> OutboundMessage:
        return _compose(
            None,
            event_id=event.event_id,
            kind=addressee.kind,
            case_id=profile.case_id,
            route=route,
            language=profile.language,
            priority=event_urgency(event).priority,
            not_before=not_before,
            referral_id=event_referral_id(event),
            province_code=event.province_code,
            service_type=service,
        )

    return _outcome(_decide(profile, service, now), build)


def recheck(message: OutboundMessage, profile: SurvivorProfile, now: datetime) -> SurvivorDecision:
    """A pending survivor message, judged again against her profile as it is now (when its window
    opens, and before every retry): consent, safe address, channel and window may all have
    changed. The same notice id is kept, so it is still one notice."""
    if not message.for_survivor:
        raise ValueError("not a survivor message")
    if message.case_id != profile.case_id:
        return Withhold("case_mismatch")

    def build(route: Route, not_before: datetime | None) -> OutboundMessage:
        return _compose(
            message,
            event_id=message.event_id,
            kind=message.kind,
            case_id=profile.case_id,
            route=route,
            language=profile.language,
            priority=message.priority,
            not_before=not_before,
            referral_id=message.referral_id,
            province_code=message.province_code,
            service_type=message.service_type,
        )

    return _outcome(_decide(profile, message.service_type, now), build)


# --- withdrawal ----------------------------------------------------------------------------------


class Pending(Protocol):
    @property
    def role(self) -> Role: ...

    @property
    def case_id(self) -> str: ...

    @property
    def service_type(self) -> ServiceType | None: ...


P = TypeVar("P", bound=Pending)


def stop_pending(pending: Iterable[P], withdrawal: ConsentWithdrawal) -> tuple[list[P], list[P]]:
    """Split pending messages into (kept, cancelled). Cancelled: every survivor message of that case
    (all of them when contact consent is withdrawn; otherwise those about a withdrawn service, and
    those whose service is unknown, to be safe). Staff messages are never cancelled here: providers
    and case workers learn of the cancellation from the referral events that follow."""
    kept: list[P] = []
    cancelled: list[P] = []
    for item in pending:
        hit = (
            item.role is Role.SURVIVOR
            and item.case_id == withdrawal.case_id
            and (
                withdrawal.services is None
                or item.service_type is None
                or item.service_type in withdrawal.services
            )
        )
        (cancelled if hit else kept).append(item)
    return kept, cancelled

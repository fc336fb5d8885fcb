"""Notifications' use cases: record who is told what when an event arrives (the in-app feed at once), and show
each caller its own feed (sending what is due on the other channels is service_layer.dispatch). Who and what
come from domain.messages, a survivor's rules from domain.safe_contact, what happens after a send from
domain.notices / domain.retry."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Protocol

from notifications.adapters.channels import ChannelAdapter
from notifications.domain import commands
from notifications.domain.events import NotificationFailed, NotificationSent
from notifications.domain.messages import (
    BedUpdate,
    Channel,
    EmergencyCase,
    Event,
    Language,
    NewReferral,
    Role,
    StatusChange,
    StepOverdue,
    Urgency,
    recipients_for,
)
from notifications.domain.notices import (
    ConsentedServices,
    Notice,
    Planned,
    Status,
    SurvivorContact,
    notice_ref,
    staff_contact,
    staff_planned,
    survivor_notice,
    urgency_of,
)
from notifications.domain.rendering import Links, staff_messages
from notifications.domain.retry import Jitter, RetryPolicy
from notifications.domain.safe_contact import (
    ConsentWithdrawal,
    ContactWindow,
    Withhold,
    stop_pending,
)
from notifications.service_layer.authorization import authorize
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from refnet_platform.clock import Clock, system_clock
from refnet_platform.context import current_causation
from refnet_platform.errors import InvalidArgument
from refnet_platform.telemetry import current_traceparent
from refnet_platform.vocabulary import ServiceType

log = logging.getLogger(__name__)

UowFactory = Callable[[], NotificationsUnitOfWork]
MAX_PAGE = 500
DEFAULT_PAGE = 100


class SurvivorContacts(Protocol):
    """Reads her contact from intake for one send; raises ContactRefused or ContactUnavailable."""

    def read(self, case_id: str, referral_id: str, service_type: ServiceType | None,
             sector: str) -> SurvivorContact: ...


class DeadLetterSink(Protocol):
    def publish(self, letters: Sequence[NotificationFailed]) -> None: ...


class Wakeup(Protocol):
    """The worker's dispatch timer (refnet_platform.timers.Wakeup): set() runs it soon, set(urgent=True) at once,
    from any thread."""

    def set(self, urgent: bool = False) -> None: ...


class DueNow:
    """Told by the handlers when they have recorded deliveries that are due now: wakes the worker's dispatch
    timer, and any lane of a round in progress that ran out of work while another lane is still sending."""

    def __init__(self, wakeup: Wakeup | None = None) -> None:
        self.wakeup = wakeup
        self.times = 0  # how often it was told: a lane waiting for work compares it with what it saw last
        self.emergencies = 0  # how often an emergency's delivery was among them (what a lane's emergencies await)

    def set(self, emergency: bool = False) -> None:
        self.times += 1
        if emergency:
            self.emergencies += 1
        if self.wakeup is not None:
            self.wakeup.set(urgent=emergency)


@dataclass(frozen=True)
class Policy:
    """How notifications behaves, from its settings. windows: when a survivor who gave no safe times of her
    own may be contacted. batch: how many due deliveries of a lane one transaction claims; concurrency: how
    many of a lane are sent at once."""

    links: Links
    windows: tuple[ContactWindow, ...]
    survivor_language: Language = Language.VI
    retry: Mapping[Channel, RetryPolicy] = field(default_factory=dict)
    lease: timedelta = timedelta(seconds=60)
    batch: int = 50
    concurrency: int = 16
    round_budget_s: float = 20.0
    clock: Clock = system_clock
    jitter: Jitter | None = None


@dataclass(frozen=True)
class Outlets:
    """The configured external channels (the in-app feed is not among them: it is written as a notice is
    recorded), intake's contact API for survivors (None: no survivor is contacted), where failed deliveries
    are dead-lettered, and whom to tell that deliveries are due."""

    adapters: Mapping[Channel, ChannelAdapter]
    contacts: SurvivorContacts | None
    dead_letters: DeadLetterSink
    due: DueNow = field(default_factory=DueNow)

    @property
    def staff_channels(self) -> frozenset[Channel]:
        return frozenset(self.adapters)

    @property
    def survivor_reachable(self) -> bool:
        return self.contacts is not None and Channel.SMS in self.adapters


# --- events: who is told -----------------------------------------------------------------------


def notify(cmd: commands.Notify, uow: UowFactory, policy: Policy, outlets: Outlets) -> list[str]:
    """Records one notice (and its delivery) per recipient and channel, the in-app ones already in their
    feed; returns the new notice ids."""
    with uow() as work:
        added = _tell(work, cmd.event, policy, outlets)
        _dispatch_soon(work, added, outlets)
        work.commit()
    return [p.message.notice_id for p in added]


def note_case(cmd: commands.NoteCase, uow: UowFactory, policy: Policy, outlets: Outlets) -> list[str]:
    with uow() as work:
        work.cases.note_case(cmd.case_id, cmd.province_code, cmd.case_worker_id)
        work.cases.consent(cmd.case_id, *sorted(cmd.consented))
        added = _tell(work, cmd.emergency, policy, outlets) if cmd.emergency else []
        _dispatch_soon(work, added, outlets)
        work.commit()
    return [p.message.notice_id for p in added]


def _dispatch_soon(work: NotificationsUnitOfWork, added: Sequence[Planned], outlets: Outlets) -> None:
    """Deliveries due now are sent as soon as they are committed (in a consumer's batch: when the batch
    commits), not at the dispatcher's next tick."""
    due = [p for p in added if p.status is Status.PENDING]
    if due:
        emergency = any(p.message.priority == Urgency.EMERGENCY.priority for p in due)
        work.on_commit(partial(outlets.due.set, emergency))


def note_consent(cmd: commands.NoteConsent, uow: UowFactory) -> None:
    with uow() as work:
        work.cases.consent(cmd.case_id, cmd.service_type)
        work.commit()


def withdraw_consent(cmd: commands.WithdrawConsent, uow: UowFactory, policy: Policy) -> int:
    """Her pending notices about the withdrawn service (all of them if unknown) are cancelled."""
    services = frozenset({cmd.service_type}) if cmd.service_type else None
    with uow() as work:
        work.cases.withdraw(cmd.case_id, cmd.service_type)
        pending = {d.message.notice_id: d for d in work.notices.open_for_survivor(cmd.case_id)}
        _, stopped = stop_pending([d.message for d in pending.values()], ConsentWithdrawal(cmd.case_id, services))
        work.notices.cancel([pending[m.notice_id] for m in stopped], "consent_withdrawn", policy.clock())
        work.commit()
    log.info("consent withdrawn", extra={"fields": {"case_id": cmd.case_id, "cancelled": len(stopped)}})
    return len(stopped)


def erase_case(cmd: commands.EraseCase, uow: UowFactory, policy: Policy) -> int:
    """Her pending notices are dropped, what was learnt of the case forgotten, and the text of its
    notices that are done removed (staff notices still due go out: they carry no personal data)."""
    with uow() as work:
        work.notices.cancel(work.notices.open_for_survivor(cmd.case_id), "case_erased", policy.clock())
        work.cases.forget(cmd.case_id)
        blanked = work.notices.blank_finished(cmd.case_id)
        work.commit()
    log.info("case erased", extra={"fields": {"case_id": cmd.case_id, "notices_blanked": blanked}})
    return blanked


def _tell(work: NotificationsUnitOfWork, event: Event, policy: Policy, outlets: Outlets) -> list[Planned]:
    now = policy.clock()
    known = _with_what_is_known(work, event)
    if known is None:
        return []
    if isinstance(known, NewReferral):
        work.cases.note_referral(known.referral_id, known.case_id, known.case_worker_id, known.provider_id,
                                 known.service_type, known.urgency.priority, known.province_code)
    # Only a status change may tell the survivor: no other event needs her consents read.
    survivor = ConsentedServices(work.cases.consented(known.case_id)) if isinstance(known, StatusChange) else None
    planned: list[Planned] = []
    for addressee in recipients_for(known, survivor):
        if addressee.role is Role.SURVIVOR:
            sector = work.directory.sector_of(getattr(known, "provider_id", ""))
            decision = survivor_notice(known, addressee, policy.survivor_language, sector, now) \
                if outlets.survivor_reachable else Withhold("no_survivor_channel")
            if isinstance(decision, Withhold):
                log.info("survivor notice withheld", extra={"fields": {"case_id": known.case_id,
                                                                      "reason": decision.reason}})
                continue
            planned.append(decision)
        else:
            contact = staff_contact(addressee.role, addressee.recipient_id,
                                    work.directory.contact(addressee.role, addressee.recipient_id),
                                    outlets.staff_channels)
            planned.extend(staff_planned(staff_messages(known, addressee, contact, policy.links), now))
    cause = current_causation.get()
    correlation = cause.correlation_id if cause else ""
    traceparent = current_traceparent()
    added = work.notices.add(planned, now, correlation, traceparent)
    delivered = [p for p in added if p.status is Status.DELIVERED]  # in-app: into the feed, now
    work.notices.publish([p.message for p in delivered], now)
    for p in delivered:
        # Only NotificationSent: being in the feed is the delivery, so a NotificationDelivered would say the
        # same thing again (one more event per notice through the relay, Kafka and every reader).
        work.emit(NotificationSent(notice_ref(p.message, p.lane), p.attempts, now))
    # The routine outcome of every event: DEBUG (at INFO its JSON line cost each record about 5 % of its CPU);
    # what is withheld or skipped stays at INFO.
    log.debug("notices recorded", extra={"fields": {"event_id": known.event_id, "case_id": known.case_id,
                                                    "notices": len(added), "repeats": len(planned) - len(added)}})
    return added


def _with_what_is_known(work: NotificationsUnitOfWork, event: Event) -> Event | None:
    """Fills in what an event lacks from what the worker remembers: bed events carry no case worker or
    urgency, and a status change may lack its service."""
    if isinstance(event, EmergencyCase | NewReferral | StepOverdue):
        return event
    referral = work.cases.referral(event.referral_id)
    case_id = event.case_id or (referral["case_id"] if referral else "")
    if not case_id:  # e.g. a bed released after its case was erased: nothing left to tell
        log.info("event for an unknown case skipped", extra={"fields": {"event_id": event.event_id,
                                                                          "referral_id": event.referral_id}})
        return None
    worker = event.case_worker_id or (referral["case_worker_id"] if referral else "") or work.cases.case_worker(case_id)
    if isinstance(event, BedUpdate):
        urgency = urgency_of(referral["priority"]) if referral else event.urgency
        return replace(event, case_id=case_id, case_worker_id=worker, urgency=urgency)
    service = event.service_type or (ServiceType(referral["service_type"]) if referral else None)
    return replace(event, case_id=case_id, case_worker_id=worker, service_type=service)


# --- the directory -----------------------------------------------------------------------------


def load_directory(cmd: commands.LoadDirectory, uow: UowFactory) -> int:
    with uow() as work:
        count = work.directory.replace(cmd.recipients, cmd.supervisors)
        work.on_commit(work.directory_cache.forget)  # again: a lookup meanwhile may have read the old rows
        work.commit()
    log.info("recipients loaded", extra={"fields": {"recipients": count, "supervisors": len(cmd.supervisors)}})
    return count


# --- the in-app feed: each caller its own ------------------------------------------------------


def list_notices(cmd: commands.ListNotices, uow: UowFactory) -> tuple[list[Notice], int]:
    """The caller's notices, newest first; and the sequence to pass for the next page (0: none). Which feeds
    are the caller's is service_layer/authorization.py's table."""
    feeds = authorize("ListNotices", cmd.caller).feed(cmd.caller, cmd.recipient_id)
    if not 0 <= cmd.page_size <= MAX_PAGE:
        raise InvalidArgument("page_size", f"must be 0 (the default, {DEFAULT_PAGE}) to {MAX_PAGE}")
    before = _before(cmd)
    size = cmd.page_size or DEFAULT_PAGE
    with uow() as work:
        page = work.notices.feed_page(feeds.addressee, feeds.recipient_ids, cmd.case_id, before=before, limit=size)
    return page, (page[-1].sequence if len(page) == size else 0)


def page_token(next_before: int) -> str:
    """The next_page_token for a page that ends before `next_before` (0: no next page). Opaque to clients."""
    return str(next_before) if next_before else ""


def _before(cmd: commands.ListNotices) -> int:
    """The sequence a page starts below: page_token's, else the deprecated before_sequence (0: the newest)."""
    if cmd.page_token:
        if not (cmd.page_token.isascii() and cmd.page_token.isdigit()) or len(cmd.page_token) > 19:
            raise InvalidArgument("page_token", "not a next_page_token this service gave")
        return int(cmd.page_token)
    if cmd.before_sequence < 0:
        raise InvalidArgument("before_sequence", "must not be negative")
    return cmd.before_sequence


def notices_after(cmd: commands.NoticesAfter, uow: UowFactory) -> tuple[list[Notice], int]:
    """The caller's notices after a sequence, oldest first, and the highest sequence seen (after None:
    none, and where the caller's feed ends now). WatchNotices polls this."""
    feeds = authorize("WatchNotices", cmd.caller).feed(cmd.caller, cmd.recipient_id)
    if cmd.after_sequence is not None and cmd.after_sequence < 0:
        raise InvalidArgument("after_sequence", "must not be negative")
    with uow() as work:
        if cmd.after_sequence is None:
            return [], work.notices.feed_end(feeds.addressee, feeds.recipient_ids)
        page = work.notices.feed_page(feeds.addressee, feeds.recipient_ids, cmd.case_id, after=cmd.after_sequence,
                                      limit=cmd.limit)
    return page, (page[-1].sequence if page else cmd.after_sequence)

"""Notifications' use cases: record who is told what when an event arrives (the in-app feed at once), send
what is due on the other channels, and show each caller its own feed. Who and what come from
domain.messages, a survivor's rules from domain.safe_contact, what happens after a send from
domain.notices / domain.retry."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace

from notifications.adapters.channels import ChannelAdapter
from notifications.adapters.proto_mapping import DELIVERIES_TOPIC
from notifications.domain import commands
from notifications.domain.events import NoticeRef, NotificationDelivered, NotificationFailed, NotificationSent
from notifications.domain.messages import (
    BedUpdate,
    Channel,
    EmergencyCase,
    Event,
    Language,
    Links,
    NewReferral,
    Role,
    recipients_for,
    staff_messages,
)
from notifications.domain.notices import (
    SURVIVOR_LANE,
    ConsentedServices,
    ContactRefused,
    ContactUnavailable,
    Due,
    Notice,
    Planned,
    Recorded,
    Status,
    SurvivorContact,
    after_attempt,
    after_survivor_decision,
    notice_ref,
    staff_contact,
    staff_planned,
    survivor_notice,
    survivor_profile,
    urgency_of,
)
from notifications.domain.retry import DeliveryResult, Jitter, RetryPolicy, policy_for
from notifications.domain.safe_contact import (
    ConsentWithdrawal,
    ContactWindow,
    Defer,
    Send,
    Withhold,
    recheck,
    stop_pending,
)
from notifications.service_layer.authorization import authorize
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from refnet_platform import metrics
from refnet_platform.clock import Clock, system_clock
from refnet_platform.context import Causation, current_causation
from refnet_platform.db import BatchTransaction
from refnet_platform.errors import InvalidArgument
from refnet_platform.telemetry import context_from_traceparent, current_traceparent
from refnet_platform.vocabulary import ServiceType

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refnet.notifications")

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
    """The worker's dispatch timer (refnet_platform.consumer.Wakeup): set() runs it at once, from any thread."""

    def set(self) -> None: ...


class DueNow:
    """Told by the handlers when they have recorded deliveries that are due now: wakes the worker's dispatch
    timer, and any lane of a round in progress that ran out of work while another lane is still sending."""

    def __init__(self, wakeup: Wakeup | None = None) -> None:
        self.wakeup = wakeup
        self.times = 0  # how often it was told: a lane waiting for work compares it with what it saw last

    def set(self) -> None:
        self.times += 1
        if self.wakeup is not None:
            self.wakeup.set()


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
        for service in cmd.consented:
            work.cases.consent(cmd.case_id, service)
        added = _tell(work, cmd.emergency, policy, outlets) if cmd.emergency else []
        _dispatch_soon(work, added, outlets)
        work.commit()
    return [p.message.notice_id for p in added]


def _dispatch_soon(work: NotificationsUnitOfWork, added: Sequence[Planned], outlets: Outlets) -> None:
    """Deliveries due now are sent as soon as they are committed (in a consumer's batch: when the batch
    commits), not at the dispatcher's next tick."""
    if any(p.status is Status.PENDING for p in added):
        work.on_commit(outlets.due.set)


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
        for message in stopped:
            due = pending[message.notice_id]
            work.notices.record(message.notice_id, Recorded(Status.CANCELLED, due.attempt, None, "consent_withdrawn"),
                                policy.clock())
        work.commit()
    log.info("consent withdrawn", extra={"fields": {"case_id": cmd.case_id, "cancelled": len(stopped)}})
    return len(stopped)


def erase_case(cmd: commands.EraseCase, uow: UowFactory, policy: Policy) -> int:
    """Her pending notices are dropped, what was learnt of the case forgotten, and the text of its
    notices that are done removed (staff notices still due go out: they carry no personal data)."""
    with uow() as work:
        for due in work.notices.open_for_survivor(cmd.case_id):
            work.notices.record(due.message.notice_id, Recorded(Status.CANCELLED, due.attempt, None, "case_erased"),
                                policy.clock())
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
    survivor = ConsentedServices(work.cases.consented(known.case_id))
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
    log.info("notices recorded", extra={"fields": {"event_id": known.event_id, "case_id": known.case_id,
                                                   "notices": len(added), "repeats": len(planned) - len(added)}})
    return added


def _with_what_is_known(work: NotificationsUnitOfWork, event: Event) -> Event | None:
    """Fills in what an event lacks from what the worker remembers: bed events carry no case worker or
    urgency, and a status change may lack its service."""
    if isinstance(event, EmergencyCase | NewReferral):
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


# --- the timer: send what is due ---------------------------------------------------------------

# A lane that has run dry while another lane is still sending looks again this often for retries that
# have come due (work recorded meanwhile wakes it at once).
IDLE_RECHECK_S = 0.5


def dispatch_due(cmd: commands.DispatchDue, uow: UowFactory, together: Callable[[], BatchTransaction], policy: Policy,
                 outlets: Outlets) -> dict[str, int]:
    """One round: each external channel's due deliveries in their own lane (a slow gateway holds up only its
    own), claimed in batches, most urgent first, sent concurrently and recorded a batch at a time. Then the
    dead letters not yet on the DLQ topic are published. Returns how many ended in each status.
    together: one transaction for many units of work (a batch's results)."""
    lanes = [str(channel) for channel in outlets.adapters]
    if outlets.survivor_reachable:
        lanes.append(SURVIVOR_LANE)
    dispatch = _Round(uow, together, policy, outlets, cmd.now, cmd.limit or policy.batch)
    counts = asyncio.run(dispatch.run(lanes)) if lanes else {}
    _publish_dead_letters(uow, outlets.dead_letters, dispatch.now())
    return counts


class _Round:
    def __init__(self, uow: UowFactory, together: Callable[[], BatchTransaction], policy: Policy, outlets: Outlets,
                 now: datetime | None, limit: int) -> None:
        self.uow = uow
        self.together = together
        self.policy = policy
        self.outlets = outlets
        self.fixed_now = now
        self.limit = limit
        self.deadline = time.monotonic() + policy.round_budget_s
        self.counts: Counter[str] = Counter()
        self.busy = 0  # lanes claiming or sending (not waiting for work)

    def now(self) -> datetime:
        """The command's moment when it names one (tests), else the clock at each step, so a lease always
        runs from when its delivery was claimed."""
        return self.fixed_now or self.policy.clock()

    async def run(self, lanes: Sequence[str]) -> dict[str, int]:
        # Threads for every lane's sends at once (the adapters block in threads), and its claims and records:
        # a gateway that hangs takes only its own lane's.
        threads = len(lanes) * (self.policy.concurrency + 1)
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(threads, "dispatch"))
        await asyncio.gather(*(self.lane(lane) for lane in lanes))
        return dict(self.counts)

    async def lane(self, lane: str) -> None:
        in_flight = asyncio.Semaphore(self.policy.concurrency)
        self.busy += 1
        while time.monotonic() < self.deadline:
            told = self.outlets.due.times
            batch = await asyncio.to_thread(self.claim, lane)
            if batch:
                results = await asyncio.gather(*(self.attempt(due, in_flight) for due in batch))
                await asyncio.to_thread(self.record, list(zip(batch, results, strict=True)))
                if len(batch) == self.limit:
                    continue  # there may be more due already
            self.busy -= 1
            if not await self.more_due(told):
                return
            self.busy += 1

    async def more_due(self, told: int) -> bool:
        """Whether a lane that ran dry claims again: yes if work was recorded since `told`, or, while another
        lane is still busy (the round lasts as long), now and then for retries come due; no once every lane
        is waiting."""
        waited = 0.0
        while time.monotonic() < self.deadline:
            if self.outlets.due.times != told:
                return True
            if self.busy == 0:
                return False
            if waited >= IDLE_RECHECK_S:
                return True
            await asyncio.sleep(0.01)
            waited += 0.01
        return False

    def claim(self, lane: str) -> list[Due]:
        now = self.now()
        with self.uow() as work:
            batch = work.notices.claim_due(lane, now, now + self.policy.lease, self.limit)
            work.commit()
        return batch

    async def attempt(self, due: Due, in_flight: asyncio.Semaphore) -> Recorded:
        with _caused_by(due):
            async with in_flight:
                with tracer.start_as_current_span(f"notification send {due.lane}") as span:
                    span.set_attributes({"refnet.notice_id": due.message.notice_id,
                                         "refnet.case_id": due.message.case_id,
                                         "refnet.referral_id": due.message.referral_id, "refnet.attempt": due.attempt})
                    recorded = await self.try_send(due)
                    span.set_attribute("refnet.delivery_status", str(recorded.status))
                    return recorded

    async def try_send(self, due: Due) -> Recorded:
        message = due.message
        if due.for_survivor:
            judged = await asyncio.to_thread(self.judge, due)
            if isinstance(judged, Defer | Withhold):
                return after_survivor_decision(due, judged)
            if isinstance(judged, DeliveryResult):
                return self.after(due, message.channel, judged)
            message = judged.message  # her route, from her current record: used for this send only
        adapter = self.outlets.adapters.get(message.channel)
        result = await adapter.send(message) if adapter else DeliveryResult.permanent(f"{message.channel} is off")
        return self.after(due, message.channel, result)

    def after(self, due: Due, channel: Channel, result: DeliveryResult) -> Recorded:
        return after_attempt(due, result, policy_for(channel, self.policy.retry), self.now(), self.policy.jitter)

    def judge(self, due: Due) -> Send | Defer | Withhold | DeliveryResult:
        """Her notice against her record as intake has it now (her safe number, her safe times): send (and
        where), defer, or withhold."""
        assert self.outlets.contacts is not None
        m = due.message
        try:
            contact = self.outlets.contacts.read(m.case_id, m.referral_id, m.service_type, due.sector)
        except ContactRefused as refused:
            return Withhold(refused.reason)
        except ContactUnavailable as unavailable:
            return DeliveryResult.transient(str(unavailable))
        return recheck(m, survivor_profile(m, contact, self.policy.windows), self.now())

    def record(self, batch: Sequence[tuple[Due, Recorded]]) -> None:
        """What happened to a batch, and its status events, in one transaction (a unit of work per delivery,
        so each status event carries the flow and trace of the event that caused its notice)."""
        now = self.now()
        with self.together() as transaction:
            for due, recorded in batch:
                with _caused_by(due), self.uow() as work:
                    work.notices.record(due.message.notice_id, recorded, now)
                    for event in _status_events(notice_ref(due.message, due.lane), recorded, now):
                        work.emit(event)
                        if isinstance(event, NotificationFailed):
                            work.dead_letters.add(event)
                    work.commit()
            transaction.commit()
        for due, recorded in batch:
            self.counts[recorded.status] += 1
            # The platform's retry and dead-letter counters, with the delivery lane as the type.
            if recorded.status is Status.PENDING:
                metrics.RETRIES.labels(DELIVERIES_TOPIC, f"delivery.{due.lane}").inc()
            elif recorded.status is Status.FAILED:
                metrics.DEAD_LETTERS.labels(DELIVERIES_TOPIC, f"delivery.{due.lane}").inc()
            level = logging.WARNING if recorded.status is Status.FAILED else logging.INFO
            log.log(level, "delivery attempted", extra={"fields": {
                "notice_id": due.message.notice_id, "lane": due.lane, "attempt": due.attempt,
                "status": str(recorded.status), "detail": recorded.detail, "case_id": due.message.case_id,
                "referral_id": due.message.referral_id}})


@contextmanager
def _caused_by(due: Due) -> Iterator[None]:
    """A delivery's send and status events continue the trace and the flow of the event behind its notice."""
    token = otel_context.attach(context_from_traceparent(due.traceparent))
    cause = current_causation.set(Causation(due.correlation_id or due.message.event_id, due.message.event_id))
    try:
        yield
    finally:
        current_causation.reset(cause)
        otel_context.detach(token)


def _status_events(ref: NoticeRef, recorded: Recorded, now: datetime) -> list[object]:
    if recorded.status is Status.SENT:
        return [NotificationSent(ref, recorded.attempts, now)]
    if recorded.status is Status.DELIVERED:
        return [NotificationSent(ref, recorded.attempts, now), NotificationDelivered(ref, recorded.attempts, now)]
    if recorded.status is Status.FAILED and recorded.failure is not None:
        return [NotificationFailed(ref, recorded.attempts, now, recorded.failure.reason, recorded.failure.detail)]
    return []


def _publish_dead_letters(uow: UowFactory, sink: DeadLetterSink, now: datetime) -> None:
    with uow() as work:
        letters = work.dead_letters.unpublished()
    if not letters:
        return
    sink.publish(letters)
    with uow() as work:
        work.dead_letters.mark_published([f.notice.notice_id for f in letters], now)
        work.commit()


# --- the directory -----------------------------------------------------------------------------


def load_directory(cmd: commands.LoadDirectory, uow: UowFactory) -> int:
    with uow() as work:
        count = work.directory.replace(cmd.recipients, cmd.supervisors)
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
    if cmd.before_sequence < 0:
        raise InvalidArgument("before_sequence", "must not be negative")
    size = cmd.page_size or DEFAULT_PAGE
    with uow() as work:
        page = work.notices.feed_page(feeds.addressee, feeds.recipient_ids, cmd.case_id, before=cmd.before_sequence,
                                      limit=size)
    return page, (page[-1].sequence if len(page) == size else 0)


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

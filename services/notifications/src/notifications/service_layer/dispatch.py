"""The dispatch timer: each round claims what is due, lane by lane, sends it on its channel (a survivor's
only within her safe times, rechecked before each send), and records what happened; failures are retried or
dead-lettered."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from functools import cache

from opentelemetry import context as otel_context
from opentelemetry import trace

from notifications.adapters.proto_mapping import DELIVERIES_TOPIC
from notifications.domain import commands
from notifications.domain.events import NoticeRef, NotificationDelivered, NotificationFailed, NotificationSent
from notifications.domain.messages import (
    Channel,
)
from notifications.domain.notices import (
    SURVIVOR_LANE,
    ContactRefused,
    ContactUnavailable,
    Due,
    Recorded,
    Status,
    after_attempt,
    after_survivor_decision,
    notice_ref,
    survivor_profile,
)
from notifications.domain.retry import DeliveryResult, policy_for
from notifications.domain.safe_contact import (
    Defer,
    Send,
    Withhold,
    recheck,
)
from notifications.service_layer.handlers import DeadLetterSink, Outlets, Policy, UowFactory
from refnet_platform import metrics
from refnet_platform.context import Causation, current_causation
from refnet_platform.telemetry import context_from_traceparent, exporting
from refnet_platform.unit_of_work import BatchTransaction

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refnet.notifications")

# A lane that has run dry while another lane is still sending looks again this often for retries that
# have come due (work recorded meanwhile wakes it at once).
IDLE_RECHECK_S = 0.5


def dispatch_due(cmd: commands.DispatchDue, uow: UowFactory, together: Callable[[], BatchTransaction], policy: Policy,
                 outlets: Outlets) -> dict[str, int]:
    """One round: each external channel's due deliveries in their own lane (a slow gateway holds up only its
    own), claimed in batches, most urgent first (and a lane's emergencies also by themselves, never waiting
    for a batch of routine sends to finish), sent concurrently and recorded a batch at a time. Then the dead
    letters not yet on the DLQ topic (this round's, or earlier ones the round found waiting) are published.
    Returns how many ended in each status.
    together: one transaction for many units of work (a batch's results)."""
    lanes = [str(channel) for channel in outlets.adapters]
    if outlets.survivor_reachable:
        lanes.append(SURVIVOR_LANE)
    dispatch = _Round(uow, together, policy, outlets, cmd.now, cmd.limit or policy.batch)
    counts = asyncio.run(dispatch.run(lanes)) if lanes else {}
    # Without lanes no round looked: dead letters left from when a channel was configured are still published.
    if not lanes or dispatch.letters_waiting or counts.get(Status.FAILED):
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
        self.quiet: set[str] = set()  # lanes with nothing due as the round began: their first claim is spared
        self.told_at_start = outlets.due.times
        self.letters_waiting = False  # dead letters of earlier rounds not yet on the DLQ topic

    def now(self) -> datetime:
        """The command's moment when it names one (tests), else the clock at each step, so a lease always
        runs from when its delivery was claimed."""
        return self.fixed_now or self.policy.clock()

    async def run(self, lanes: Sequence[str]) -> dict[str, int]:
        # Each lane twice: all its work, most urgent first, and its emergencies alone, so an emergency recorded
        # while the lane sends a batch of routine notices (at most `concurrency` at a time, each as slow as
        # its gateway) is claimed and sent at once, with sending slots of its own, not after that batch.
        # Threads for every lane's sends at once (the adapters block in threads), and its claims and records:
        # a gateway that hangs takes only its own lane's.
        asyncio.get_running_loop().set_default_executor(_threads(2 * len(lanes) * (self.policy.concurrency + 1)))
        due, self.letters_waiting = await asyncio.to_thread(self.look, lanes)
        self.quiet = set(lanes) - due
        # Emergencies recorded before the round are the lanes' first claims' (most urgent first): a lane's
        # emergencies claim only when one is recorded during the round, so a round costs no more claims.
        before = self.outlets.due.emergencies
        await asyncio.gather(*(self.lane(lane) for lane in lanes),
                             *(self.lane(lane, emergencies_after=before) for lane in lanes))
        return dict(self.counts)

    async def lane(self, lane: str, emergencies_after: int | None = None) -> None:
        """Claims, sends and records the lane's due work until none is left; with emergencies_after, only the
        lane's emergencies, recorded since the count of them was emergencies_after."""
        emergencies_only = emergencies_after is not None
        in_flight = asyncio.Semaphore(self.policy.concurrency)
        if emergencies_after is not None and not await self.more_due(emergencies_after, emergencies_only):
            return
        self.busy += 1
        while time.monotonic() < self.deadline:
            told = self._told(emergencies_only)
            batch = await asyncio.to_thread(self.claim, lane, emergencies_only) if self._worth_claiming(lane) else []
            if batch:
                results = await asyncio.gather(*(self.attempt(due, in_flight) for due in batch))
                await asyncio.to_thread(self.record, list(zip(batch, results, strict=True)))
                if len(batch) == self.limit:
                    continue  # there may be more due already
            self.busy -= 1
            if not await self.more_due(told, emergencies_only):
                return
            self.busy += 1

    def look(self, lanes: Sequence[str]) -> tuple[set[str], bool]:
        """Which lanes have work due as the round begins, and whether dead letters wait to be published: one read
        for the round, where each lane's claim was a write transaction (on SQLite a turn of the write lock), due
        work or not, and the dead letters a read of their own."""
        with self.uow().reading() as work:
            return work.notices.lanes_due(lanes, self.now()), bool(work.dead_letters.unpublished(limit=1))

    def _worth_claiming(self, lane: str) -> bool:
        """False for a lane's first claim if it had nothing due as the round began and nothing was recorded since
        (retries that come due later are claimed after the lane's wait, as before)."""
        if lane not in self.quiet:
            return True
        self.quiet.discard(lane)
        return self.outlets.due.times != self.told_at_start

    def _told(self, emergencies_only: bool) -> int:
        return self.outlets.due.emergencies if emergencies_only else self.outlets.due.times

    async def more_due(self, told: int, emergencies_only: bool = False) -> bool:
        """Whether a lane that ran dry claims again: yes if work was recorded since `told` (for a lane's
        emergencies: an emergency's), or, while another lane is still busy (the round lasts as long), now and
        then for retries come due (not a lane's emergencies: retries are its whole lane's, most urgent first);
        no once every lane is waiting."""
        waited = 0.0
        while time.monotonic() < self.deadline:
            if self._told(emergencies_only) != told:
                return True
            if self.busy == 0:
                return False
            if waited >= IDLE_RECHECK_S and not emergencies_only:
                return True
            await asyncio.sleep(0.01)
            waited += 0.01
        return False

    def claim(self, lane: str, emergencies_only: bool = False) -> list[Due]:
        now = self.now()
        with self.uow() as work:
            batch = work.notices.claim_due(lane, now, now + self.policy.lease, self.limit,
                                           emergencies_only=emergencies_only)
            work.commit()
        return batch

    async def attempt(self, due: Due, in_flight: asyncio.Semaphore) -> Recorded:
        with _caused_by(due):
            async with in_flight:
                if not exporting():  # spans go nowhere: none made (the send still continues its event's trace)
                    return await self.try_send(due)
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
        if contact.sms_stopped and m.channel is Channel.SMS:
            return Withhold("sms_stopped")
        return recheck(m, survivor_profile(m, contact, self.policy.windows), self.now())

    def record(self, batch: Sequence[tuple[Due, Recorded]]) -> None:
        """What happened to a batch, and its status events, in one transaction: the deliveries marked in two
        statements for the batch, then a unit of work per status event's notice (so each event carries the
        flow and trace of the event that caused its notice)."""
        now = self.now()
        with self.together() as transaction:
            with self.uow() as work:
                work.notices.record_all([(due.message.notice_id, recorded) for due, recorded in batch], now)
                work.commit()
            for due, recorded in batch:
                events = _status_events(notice_ref(due.message, due.lane), recorded, now)
                if not events:
                    continue
                with _caused_by(due), self.uow() as work:
                    for event in events:
                        work.emit(event)
                        if isinstance(event, NotificationFailed):
                            work.dead_letters.add(event)
                    work.commit()
            transaction.commit()
        done: Counter[str] = Counter()
        for due, recorded in batch:
            self.counts[recorded.status] += 1
            done[recorded.status] += 1
            # The platform's retry and dead-letter counters, with the delivery lane as the type.
            if recorded.status is Status.PENDING:
                metrics.RETRIES.labels(DELIVERIES_TOPIC, f"delivery.{due.lane}").inc()
            elif recorded.status is Status.FAILED:
                metrics.DEAD_LETTERS.labels(DELIVERIES_TOPIC, f"delivery.{due.lane}").inc()
            if recorded.status in (Status.SENT, Status.DELIVERED):
                continue  # told once for the batch below (and each on notifications.deliveries.v1)
            level = logging.WARNING if recorded.status is Status.FAILED else logging.INFO
            log.log(level, "delivery attempted", extra={"fields": {
                "notice_id": due.message.notice_id, "lane": due.lane, "attempt": due.attempt,
                "status": str(recorded.status), "detail": recorded.detail, "case_id": due.message.case_id,
                "referral_id": due.message.referral_id}})
        told = {str(status): n for status, n in done.items()}
        log.info("deliveries recorded", extra={"fields": {"lane": batch[0][0].lane, **told}})


class _LastingThreads(ThreadPoolExecutor):
    """The rounds' threads, kept from one round to the next: each round's asyncio.run shuts its loop's default
    executor down as it ends, and starting the threads anew at every round was a tenth of a round's CPU. A round
    ends only once all its sends, claims and records are done, so the next one finds its threads free."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Kept for the next round (its idle threads end with the process)."""


@cache
def _threads(count: int) -> ThreadPoolExecutor:
    return _LastingThreads(count, "dispatch")


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



"""Reads the event topics as they fill and keeps, per case, when intake committed it, when referral first
routed it and when each provider was notified. The times are the events' own envelope `time`, stamped by
the services as they commit, so how quickly this reader keeps up does not change a figure. The Kafka record's
timestamp (set by the relay's producer as it sends) splits each hop into the relay's part and the consumer's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from bench.floor import FLOOR_PARTITIONS
from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1.events_pb2 import CaseRegistered
from refnet.notifications.v1.events_pb2 import NotificationSent
from refnet.referral.v1.events_pb2 import ReferralRequested
from refnet_platform import kafka_clients
from refnet_platform.topics import topic

CASE_TOPICS = ("intake.cases.v1", "intake.cases-urgent.v1")
REFERRAL_TOPICS = ("referral.referrals.v1", "referral.referrals-urgent.v1")
NOTICE_TOPIC = "notifications.deliveries.v1"
CASE_REGISTERED = CaseRegistered.DESCRIPTOR.full_name
REFERRAL_REQUESTED = ReferralRequested.DESCRIPTOR.full_name
NOTIFICATION_SENT = NotificationSent.DESCRIPTOR.full_name
FETCH_MAX_WAIT_MS = 100
FETCH_MIN_BYTES = 1 << 20


@dataclass
class Timeline:
    """What the topics said: commit time of each case and the times of its provider notices (seconds)."""

    committed: dict[str, float] = field(default_factory=dict)
    routed: dict[str, float] = field(default_factory=dict)  # the case's first ReferralRequested
    # When the relay sent CaseRegistered, and the case's first ReferralRequested (the record's timestamp).
    published: dict[str, float] = field(default_factory=dict)
    routed_published: dict[str, float] = field(default_factory=dict)
    emergency: set[str] = field(default_factory=set)
    notices: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    floor: dict[int, tuple[float, float]] = field(default_factory=dict)

    def first_notice(self, case_id: str) -> float | None:
        times = self.notices.get(case_id)
        return min(times) if times else None

    def all_notices(self, case_id: str, expected: int) -> float | None:
        """When the case's `expected`-th provider notice came, i.e. every need's provider was told."""
        times = sorted(self.notices.get(case_id, ()))
        return times[expected - 1] if len(times) >= expected else None

    def path(self, case_id: str) -> tuple[float, ...] | None:
        """The case's way to its first provider notice, in five times (bench/run.py HOPS: the four parts between
        them): intake's commit, its relay's send, referral's commit, its relay's send, the notice's commit; None
        while any is not seen."""
        first = self.first_notice(case_id)
        if case_id not in self.committed or case_id not in self.routed or first is None:
            return None
        return (self.committed[case_id], self.published[case_id], self.routed[case_id],
                self.routed_published[case_id], first)

    def notified(self, case_ids: list[str]) -> int:
        return sum(1 for c in case_ids if self.notices.get(c))


class Tap:
    """`async with Tap(bootstrap, case_worker) as tap:` and read `tap.timeline` at any time."""

    def __init__(self, bootstrap: str, case_worker_id: str, floor_topic: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.case_worker_id = case_worker_id
        self.floor_topic = floor_topic
        self.timeline = Timeline()
        self._seen: set[str] = set()  # envelope ids: a relay may publish an event twice after a crash
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tap:
        # Right after the floor's topics are created the first offset lookups may meet a partition with no
        # leader yet; the fetcher retries on its own, so its error lines are noise here.
        logging.getLogger("aiokafka.consumer.fetcher").setLevel(logging.CRITICAL)
        names = [*CASE_TOPICS, *REFERRAL_TOPICS, NOTICE_TOPIC]
        partitions = [TopicPartition(name, p) for name in names for p in range(topic(name).partitions)]
        if self.floor_topic:
            partitions += [TopicPartition(self.floor_topic, p) for p in range(FLOOR_PARTITIONS)]
        # The figures are the records' own times, so the tap may read late: the broker holds each fetch until
        # it has FETCH_MIN_BYTES or FETCH_MAX_WAIT_MS passed. Fetching as soon as any record is there made
        # a fetch round per few records, and that CPU was taken from the network being measured. Only
        # run.py's waits (when to stop the emergencies, a phase's end) see the tap up to 100 ms late.
        self._consumer = kafka_clients.aio_consumer(bootstrap=self.bootstrap, client_id="bench-tap",
                                                    enable_auto_commit=False, fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                                                    fetch_min_bytes=FETCH_MIN_BYTES, auto_offset_reset="earliest")
        await self._consumer.start()
        self._consumer.assign(partitions)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.wait_for(self._consumer.stop(), timeout=10)

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batch.values():
                for record in records:
                    if record.topic == self.floor_topic:
                        self._floor(record.value)
                    else:
                        self._event(record.value, (record.timestamp or 0) / 1000)

    def _event(self, value: bytes | None, sent: float) -> None:
        envelope = EventEnvelope.FromString(value or b"")
        if envelope.id in self._seen:
            return
        self._seen.add(envelope.id)
        # Timestamp.ToNanoseconds and Any.Unpack are pure Python; these are the same figures without them.
        at = (envelope.time.seconds * 1_000_000_000 + envelope.time.nanos) / 1e9
        if envelope.type == CASE_REGISTERED:
            case = CaseRegistered.FromString(envelope.data.value)
            self.timeline.committed[case.case_id] = at
            self.timeline.published[case.case_id] = sent
            if case.emergency:
                self.timeline.emergency.add(case.case_id)
        elif envelope.type == REFERRAL_REQUESTED:
            referral = ReferralRequested.FromString(envelope.data.value)
            if at < self.timeline.routed.get(referral.case_id, at + 1):
                self.timeline.routed[referral.case_id] = at
                self.timeline.routed_published[referral.case_id] = sent
        elif envelope.type == NOTIFICATION_SENT:
            notice = NotificationSent.FromString(envelope.data.value)
            if notice.role == "provider" or (not notice.role and notice.recipient_id != self.case_worker_id):
                self.timeline.notices[notice.case_id].append(at)

    def _floor(self, value: bytes | None) -> None:
        ident, sent, stamped = (value or b"0 0 0").split()
        self.timeline.floor.setdefault(int(ident), (float(sent), float(stamped)))


"""What must hold after any fault, read from the services' own databases and from the topics.

Each check returns an Invariant: held True/False, or None when it could not be checked (e.g. a table a
service has not built yet), with a one-line detail naming the first offenders.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from refnet.common.v1.envelope_pb2 import DeadLetter, EventEnvelope
from refnet.notifications.v1.events_pb2 import NotificationSent
from refnet_dev.kafka import committed_offsets, end_offsets, read_records
from refnet_dev.network import SERVICES
from refnet_platform.topics import TOPICS, read_by, topic

NOT_STARTED = ("requested", "accepted")
NOTICES = topic("notifications.deliveries.v1")


@dataclass
class Invariant:
    name: str
    held: bool | None
    detail: str


@dataclass
class Ledger:
    """What the client side knows: cases intake acknowledged, their needs, and the consents it withdrew."""

    cases: dict[str, list[str]] = field(default_factory=dict)  # case id -> need ids
    withdrawn: set[str] = field(default_factory=set)  # need ids


def _sample(items: Iterable[Any], n: int = 3) -> str:
    items = list(items)
    return ", ".join(str(i) for i in items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def _rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def _utc(value: datetime | str) -> datetime:
    """SQLite hands timestamps back as naive UTC (or text); PostgreSQL as aware ones."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def checked(name: str, check: Callable[[], tuple[bool, str]]) -> Invariant:
    try:
        held, detail = check()
        return Invariant(name, held, detail)
    except Exception as exc:  # a table or column not there (yet): say so instead of failing the run
        return Invariant(name, None, f"could not check: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def cases_accounted_for(ledger: Ledger, db: dict[str, Engine]) -> tuple[bool, str]:
    """Every acknowledged case is in intake; every consented need not withdrawn has a referral (an
    escalation is a referral too); every referral to a provider was notified to it; every referral
    to a shelter got a bed decision."""
    known = {r.case_id for r in _rows(db["intake"], "SELECT case_id FROM cases")}
    missing_cases = [c for c in ledger.cases if c not in known]
    referrals = _rows(db["referral"], "SELECT referral_id, case_id, need_id, provider_id, shelter_id, status "
                                      "FROM referrals")
    by_need = defaultdict(list)
    for r in referrals:
        by_need[r.need_id].append(r)
    ours = set(ledger.cases)
    unrouted = [n for needs in ledger.cases.values() for n in needs if n not in by_need and n not in ledger.withdrawn]
    notified = {(r.referral_id, r.recipient_id) for r in _rows(db["notifications"],
                                                               "SELECT referral_id, recipient_id FROM notices")}
    unnotified = [r.referral_id for r in referrals
                  if r.case_id in ours and r.provider_id and (r.referral_id, r.provider_id) not in notified]
    decided = {r.referral_id for r in _rows(db["shelter"], "SELECT referral_id FROM reservations")}
    undecided = [r.referral_id for r in referrals
                 if r.case_id in ours and r.shelter_id and r.referral_id not in decided]
    needs = sum(len(n) for n in ledger.cases.values())
    escalated = sum(1 for r in referrals if r.case_id in ours and r.status == "escalated")
    problems = [f"{label}: {_sample(items)}" for label, items in (
        ("cases missing in intake", missing_cases), ("needs without a referral", unrouted),
        ("referrals never notified to their provider", unnotified), ("shelter referrals without a bed decision",
                                                                     undecided)) if items]
    return not problems, "; ".join(problems) or (
        f"{len(ledger.cases)} cases, {needs} needs: {sum(len(by_need[n]) for n in by_need)} referrals "
        f"({escalated} escalated), {len(ledger.withdrawn)} withdrawn")


def no_duplicates(db: dict[str, Engine], notices_on_topic: list[EventEnvelope]) -> tuple[bool, str]:
    """One referral per need and provider; one notice per (event, recipient, channel), in the database
    and on the topic (an event published twice keeps its id: that is at-least-once, not a duplicate)."""
    twice = _rows(db["referral"], "SELECT need_id, provider_id, COUNT(*) AS n FROM referrals "
                                  "GROUP BY need_id, provider_id HAVING COUNT(*) > 1")
    notices = _rows(db["notifications"], "SELECT source_event_id, recipient_id, channel, COUNT(*) AS n "
                                         "FROM notices GROUP BY source_event_id, recipient_id, channel "
                                         "HAVING COUNT(*) > 1")
    ids_per_notice: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for envelope in notices_on_topic:
        sent = NotificationSent()
        envelope.data.Unpack(sent)
        ids_per_notice[(sent.source_event_id, sent.recipient_id, sent.channel)].add(sent.notice_id)
    on_topic = [k for k, ids in ids_per_notice.items() if len(ids) > 1]
    republished = len(notices_on_topic) - len({e.id for e in notices_on_topic})
    problems = [f"{label}: {_sample(items)}" for label, items in (
        ("referrals twice to one provider for a need", [f"{r.need_id}->{r.provider_id} x{r.n}" for r in twice]),
        ("notices twice in the database", [f"{r.source_event_id}/{r.recipient_id} x{r.n}" for r in notices]),
        ("notices twice on the topic", on_topic)) if items]
    return not problems, "; ".join(problems) or (
        f"{len(ids_per_notice)} notices on the topic, each once ({republished} records republished with the "
        "same event id after a crash)")


def beds_within_capacity(db: dict[str, Engine], worst_seen: int) -> tuple[bool, str]:
    """No bed pool ever had more beds held or occupied than it has (sampled during the run, and at the end
    from both the pool counters and the reservations themselves)."""
    pools = _rows(db["shelter"], "SELECT shelter_id, target_group, capacity, reserved, occupied FROM bed_pools")
    over = [f"{p.shelter_id}/{p.target_group} {p.reserved}+{p.occupied}>{p.capacity}" for p in pools
            if p.reserved + p.occupied > p.capacity]
    active = _rows(db["shelter"], "SELECT shelter_id, target_group, COUNT(*) AS n FROM reservations "
                                  "WHERE status IN ('held', 'occupied') GROUP BY shelter_id, target_group")
    capacity = {(p.shelter_id, p.target_group): p.capacity for p in pools}
    for a in active:
        pool = (a.shelter_id, a.target_group)
        if a.n > capacity.get(pool, 0):
            over.append(f"{a.shelter_id}/{a.target_group} {a.n} active reservations > {capacity.get(pool, 0)}")
    if worst_seen > 0:
        over.append(f"{worst_seen} beds over capacity in a sample taken during the run")
    held = sum(a.n for a in active)
    return not over, _sample(over) or (f"{len(pools)} pools, {held} beds held or occupied of "
                                       f"{sum(capacity.values())}; never over capacity")


def no_referral_after_withdrawal(ledger: Ledger, db: dict[str, Engine]) -> tuple[bool, str]:
    """A withdrawn need has no referral left waiting to start, and none was made after referral acted on
    the withdrawal (its first cancellation for it). One made before referral heard of the withdrawal and
    then cancelled is what "withdrawal cancels what has not started" means, not a violation."""
    if not ledger.withdrawn:
        return True, "no consent was withdrawn during the run"
    rows = [r for r in _rows(db["referral"], "SELECT referral_id, need_id, status, requested_at FROM referrals")
            if r.need_id in ledger.withdrawn]
    need_of = {r.referral_id: r.need_id for r in rows}
    acted: dict[str, datetime] = {}
    for h in _rows(db["referral"], "SELECT referral_id, at FROM referral_history WHERE reason = 'consent_withdrawn'"):
        need = need_of.get(h.referral_id)
        if need and (need not in acted or _utc(h.at) < acted[need]):
            acted[need] = _utc(h.at)
    waiting = [f"{r.referral_id} ({r.status})" for r in rows if r.status in NOT_STARTED]
    later = [r.referral_id for r in rows if r.need_id in acted and _utc(r.requested_at) > acted[r.need_id]]
    problems = [f"{label}: {_sample(items)}" for label, items in (
        ("still waiting to start after withdrawal", waiting), ("made after referral cancelled for the withdrawal",
                                                               later)) if items]
    return not problems, "; ".join(problems) or (
        f"{len(ledger.withdrawn)} needs withdrawn; of the {len(rows)} referrals made for them none is left "
        "waiting to start")


# -- Kafka: what each consumer group has left, and the dead letters -----------------------------------

def read_topic(bootstrap: str, name: str, partitions: int) -> list[Any]:
    """Every record on the topic, start to end."""
    return list(read_records(bootstrap, name, start=dict.fromkeys(range(partitions), 0), timeout_s=60))


class KafkaView:
    """How far each worker group is behind (asked afresh each call, so a restarted broker is no matter)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def lag(self) -> dict[str, dict[str, int]]:
        """Per worker group, per topic the registry says it reads: records after its committed offset."""
        lag: dict[str, dict[str, int]] = {}
        for group in (f"{service}-worker" for service in SERVICES):
            committed = committed_offsets(self.bootstrap, group)
            tps = [(t.name, p) for t in read_by(group) for p in range(t.partitions)]
            end = end_offsets(self.bootstrap, tps)
            per_topic: Counter[str] = Counter()
            for tp in tps:
                per_topic[tp[0]] += max(end[tp] - committed.get(tp, 0), 0)
            lag[group] = dict(per_topic)
        return lag

    def close(self) -> None:
        """Nothing held between calls."""


def events_processed(bootstrap: str, dead_letters: list[DeadLetter], settle_s: float = 15.0) -> tuple[bool, str]:
    """Every worker group has taken every record off every topic it reads (handled, skipped as a
    duplicate, or dead-lettered); every dead letter says why. Timers still write after the flow stops (an
    escalation, a bed hold running out): their records may be in flight when this looks, so it looks again
    for up to `settle_s` until every group is caught up. A stuck group stays behind all that time."""
    view = KafkaView(bootstrap)
    deadline = time.monotonic() + settle_s
    try:
        while True:
            lag = view.lag()
            left = [f"{group} {topic}: {n}" for group, topics in lag.items() for topic, n in topics.items() if n]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    finally:
        view.close()
    no_reason = [f"{d.consumer} {d.original_topic}@{d.original_offset}" for d in dead_letters if not d.error.strip()]
    problems = [f"{label}: {_sample(items)}" for label, items in (
        ("records not consumed", left), ("dead letters without a reason", no_reason)) if items]
    reasons = Counter(f"{d.consumer}: {d.error.splitlines()[0][:80]}" for d in dead_letters)
    summary = "; ".join(f"{reason} x{n}" for reason, n in reasons.most_common(3))
    return not problems, "; ".join(problems) or (
        f"every group caught up; {len(dead_letters)} dead letters" + (f" ({summary})" if summary else ""))


def dead_letters(bootstrap: str) -> list[DeadLetter]:
    return [DeadLetter.FromString(r.value) for t in TOPICS if t.dead_letter
            for r in read_topic(bootstrap, t.name, t.partitions)]


def notices_on_topic(bootstrap: str) -> list[EventEnvelope]:
    envelopes = [EventEnvelope.FromString(r.value) for r in read_topic(bootstrap, NOTICES.name, NOTICES.partitions)]
    return [e for e in envelopes if e.type == NotificationSent.DESCRIPTOR.full_name]


def check_all(ledger: Ledger, db: dict[str, Engine], bootstrap: str, worst_bed_overbooking: int) -> list[Invariant]:
    return [
        checked("every case accounted for", lambda: cases_accounted_for(ledger, db)),
        checked("no duplicate referral or notification",
                lambda: no_duplicates(db, notices_on_topic(bootstrap))),
        checked("beds never above capacity", lambda: beds_within_capacity(db, worst_bed_overbooking)),
        checked("every event processed or in a DLQ with its reason",
                lambda: events_processed(bootstrap, dead_letters(bootstrap))),
        checked("no referral after consent withdrawal", lambda: no_referral_after_withdrawal(ledger, db)),
    ]

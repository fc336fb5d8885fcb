from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, func, insert, or_, select, update

from ops.adapters import tables as t
from ops.domain.model import DeadLetterRecord, DeadLetterView, ReferralTrack, SpanRecord, province_of_key
from ops.domain.report import CallFact, CaseFact, ReferralFact, StayFact
from refnet_platform.engine import upsert_insert


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything ops stores is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def upsert(conn: Connection, table: Table, keys: Sequence[str], values: dict[str, Any],
           update_only: Iterable[str] | None = None) -> None:
    """Insert, or update the given columns (default: all but the keys) when the row exists."""
    stmt = upsert_insert(conn, table).values(**values)
    columns = list(update_only) if update_only is not None else [c for c in values if c not in keys]
    if columns:
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(stmt)


class FactRepository:
    """Cases, calls, referrals, beds, stays and throughput, as learnt from events."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def count_event(self, minute: datetime, stream: str, province_code: str) -> None:
        stmt = upsert_insert(self.conn, t.throughput).values(minute=minute, stream=stream,
                                                             province_code=province_code, events=1)
        self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["minute", "stream", "province_code"], set_={"events": t.throughput.c.events + 1}))

    def add_case(self, fact: CaseFact) -> None:
        upsert(self.conn, t.cases, ["case_id"], {
            "case_id": fact.case_id, "province_code": fact.province_code, "registered_at": fact.registered_at,
            "case_types": ",".join(fact.case_types), "is_child": fact.is_child, "reportable": fact.reportable,
            "emergency_at": fact.emergency_at, "closed_at": fact.closed_at, "handling_line": fact.handling_line,
            "sex": fact.sex, "age_band": fact.age_band, "disability": fact.disability, "imported": fact.imported})

    def set_case_time(self, case_id: str, column: str, at: datetime) -> None:
        """The first time only: a later emergency or re-closing does not move the date."""
        col = t.cases.c[column]
        self.conn.execute(update(t.cases).where(t.cases.c.case_id == case_id, col.is_(None)).values({column: at}))

    def add_call(self, fact: CallFact) -> None:
        upsert(self.conn, t.calls, ["call_id"], {"call_id": fact.call_id, "province_code": fact.province_code,
                                                  "topic": fact.topic, "at": fact.at,
                                                  "handling_line": fact.handling_line, "channel": fact.channel,
                                                  "outcome": fact.outcome, "imported": fact.imported})

    def referral(self, referral_id: str) -> ReferralTrack | None:
        row = self.conn.execute(select(t.referrals).where(t.referrals.c.referral_id == referral_id)).first()
        return _track(row) if row else None

    def save_referral(self, track: ReferralTrack) -> None:
        upsert(self.conn, t.referrals, ["referral_id"], {
            "referral_id": track.referral_id, "case_id": track.case_id, "province_code": track.province_code,
            "sector": track.sector, "provider_id": track.provider_id, "emergency": track.emergency,
            "requested_at": track.requested_at, "accept_by": track.accept_by, "start_by": track.start_by,
            "status": track.status,
            "accepted_at": track.accepted_at, "started_at": track.started_at, "completed_at": track.completed_at,
            "escalated_at": track.escalated_at, "reason": track.reason, "provider_type": track.provider_type,
            "failed_at": track.failed_at})

    def referrals(self, province_code: str = "", statuses: Sequence[str] = (),
                  within: Collection[str] | None = None) -> list[ReferralTrack]:
        query = select(t.referrals).order_by(t.referrals.c.requested_at)
        if province_code:
            query = query.where(t.referrals.c.province_code == province_code)
        if within is not None:
            query = query.where(t.referrals.c.province_code.in_(sorted(within)))
        if statuses:
            query = query.where(t.referrals.c.status.in_(statuses))
        return [_track(row) for row in self.conn.execute(query)]

    def escalated(self, province_code: str, limit: int, within: Collection[str] | None = None) -> list[ReferralTrack]:
        query = (select(t.referrals).where(t.referrals.c.escalated_at.is_not(None))
                 .order_by(t.referrals.c.escalated_at.desc()).limit(limit))
        if province_code:
            query = query.where(t.referrals.c.province_code == province_code)
        if within is not None:
            query = query.where(t.referrals.c.province_code.in_(sorted(within)))
        return [_track(row) for row in self.conn.execute(query)]

    def case_of(self, subject_id: str) -> str:
        """The case a referral belongs to (or the id itself, when it is a case id)."""
        row = self.conn.execute(select(t.referrals.c.case_id).where(t.referrals.c.referral_id == subject_id)).first()
        return str(row.case_id) if row else subject_id

    def province_of_case(self, case_id: str) -> str:
        """The province a case was registered in (else the one its referrals name); "" when ops never heard of it."""
        row = self.conn.execute(select(t.cases.c.province_code).where(t.cases.c.case_id == case_id)).first()
        if row is None:
            row = self.conn.execute(select(t.referrals.c.province_code)
                                    .where(t.referrals.c.case_id == case_id).limit(1)).first()
        return str(row.province_code) if row else ""

    def referral_ids_of(self, case_id: str) -> list[str]:
        rows = self.conn.execute(select(t.referrals.c.referral_id).where(t.referrals.c.case_id == case_id))
        return [str(r.referral_id) for r in rows]

    def save_capacity(self, shelter_id: str, target_group: str, province_code: str, capacity: int, reserved: int,
                      occupied: int, at: datetime) -> None:
        upsert(self.conn, t.beds, ["shelter_id", "target_group"], {
            "shelter_id": shelter_id, "target_group": target_group, "province_code": province_code,
            "capacity": capacity, "reserved": reserved, "occupied": occupied, "updated_at": at})

    def beds_free(self) -> dict[str, int]:
        free = func.sum(t.beds.c.capacity - t.beds.c.reserved - t.beds.c.occupied)
        rows = self.conn.execute(select(t.beds.c.province_code, free.label("free")).group_by(t.beds.c.province_code))
        return {str(r.province_code): max(int(r.free or 0), 0) for r in rows}

    def save_stay(self, referral_id: str, case_id: str, province_code: str, shelter_id: str, state: str,
                  at: datetime) -> None:
        existing = self.conn.execute(select(t.stays).where(t.stays.c.referral_id == referral_id)).first()
        case_id = case_id or (existing.case_id if existing else "") or self.case_of_referral(referral_id)
        occupied_at = existing.occupied_at if existing else None
        released_at = existing.released_at if existing else None
        if state == "occupied" and occupied_at is None:
            occupied_at = at
        if state == "released" and occupied_at is not None and released_at is None:
            released_at = at
        upsert(self.conn, t.stays, ["referral_id"], {
            "referral_id": referral_id, "case_id": case_id, "province_code": province_code,
            "shelter_id": shelter_id, "state": state, "occupied_at": occupied_at, "released_at": released_at})

    def case_of_referral(self, referral_id: str) -> str:
        row = self.conn.execute(select(t.referrals.c.case_id).where(t.referrals.c.referral_id == referral_id)).first()
        return str(row.case_id) if row else ""

    def throughput(self, since: datetime, province_code: str = "",
                   within: Collection[str] | None = None) -> list[tuple[datetime, str, int]]:
        """(minute, stream, events) since the given time, oldest first."""
        query = (select(t.throughput.c.minute, t.throughput.c.stream, func.sum(t.throughput.c.events).label("n"))
                 .where(t.throughput.c.minute >= since)
                 .group_by(t.throughput.c.minute, t.throughput.c.stream).order_by(t.throughput.c.minute))
        if province_code:
            query = query.where(t.throughput.c.province_code == province_code)
        if within is not None:
            query = query.where(t.throughput.c.province_code.in_(sorted(within)))
        return [(aware(r.minute), str(r.stream), int(r.n)) for r in self.conn.execute(query)]  # type: ignore[misc]

    def events_by_province(self, since: datetime) -> dict[str, int]:
        rows = self.conn.execute(
            select(t.throughput.c.province_code, func.sum(t.throughput.c.events).label("n"))
            .where(t.throughput.c.minute >= since).group_by(t.throughput.c.province_code))
        return {str(r.province_code): int(r.n) for r in rows}

    def cases_by_province(self, since: datetime) -> dict[str, int]:
        rows = self.conn.execute(select(t.cases.c.province_code, func.count().label("n"))
                                 .where(t.cases.c.registered_at >= since).group_by(t.cases.c.province_code))
        return {str(r.province_code): int(r.n) for r in rows}

    def open_referrals_by_province(self, statuses: Sequence[str]) -> dict[str, int]:
        rows = self.conn.execute(select(t.referrals.c.province_code, func.count().label("n"))
                                 .where(t.referrals.c.status.in_(statuses)).group_by(t.referrals.c.province_code))
        return {str(r.province_code): int(r.n) for r in rows}

    # The report's facts: everything that may touch the period (build_report picks what counts).
    # Every case registered before the period's end: the report reads a referral's or stay's line and place off
    # its case (which may be in another province), and picks what counts.
    def case_facts(self, before: datetime) -> list[CaseFact]:
        query = select(t.cases).where(t.cases.c.registered_at < before)
        return [CaseFact(r.case_id, r.province_code, aware(r.registered_at),  # type: ignore[arg-type]
                         tuple(filter(None, r.case_types.split(","))), r.is_child, r.reportable,
                         aware(r.emergency_at), aware(r.closed_at), r.handling_line, r.sex, r.age_band, r.disability,
                         r.imported)
                for r in self.conn.execute(query)]

    def call_facts(self, code: str, start: datetime, before: datetime) -> list[CallFact]:
        query = select(t.calls).where(t.calls.c.at >= start, t.calls.c.at < before)
        if code:
            query = query.where(or_(t.calls.c.province_code == code, t.calls.c.handling_line == code))
        return [CallFact(r.call_id, r.province_code, aware(r.at), r.topic, r.handling_line,  # type: ignore[arg-type]
                         r.channel, r.outcome, r.imported)
                for r in self.conn.execute(query)]

    def referral_facts(self, start: datetime, before: datetime) -> list[ReferralFact]:
        c = t.referrals.c
        query = select(t.referrals).where(or_(
            and_(c.requested_at >= start, c.requested_at < before),
            and_(c.accepted_at >= start, c.accepted_at < before),
            and_(c.started_at >= start, c.started_at < before),
            and_(c.completed_at >= start, c.completed_at < before),
            and_(c.failed_at >= start, c.failed_at < before)))
        return [ReferralFact(r.referral_id, r.case_id, r.province_code, r.sector, aware(r.requested_at),  # type: ignore[arg-type]
                             aware(r.accepted_at), aware(r.completed_at), r.provider_type or "unknown",
                             aware(r.started_at), aware(r.failed_at)) for r in self.conn.execute(query)]

    def stay_facts(self, start: datetime, before: datetime) -> list[StayFact]:
        s = t.stays.c
        query = select(t.stays).where(s.occupied_at < before, or_(s.released_at.is_(None), s.released_at >= start))
        return [StayFact(r.case_id, r.province_code, aware(r.occupied_at), r.shelter_id,  # type: ignore[arg-type]
                         aware(r.released_at), r.referral_id)
                for r in self.conn.execute(query)]


def _track(row: Any) -> ReferralTrack:
    return ReferralTrack(
        referral_id=row.referral_id, case_id=row.case_id, province_code=row.province_code, sector=row.sector,
        provider_id=row.provider_id, emergency=row.emergency, requested_at=aware(row.requested_at),  # type: ignore[arg-type]
        accept_by=aware(row.accept_by), start_by=aware(row.start_by), status=row.status,  # type: ignore[arg-type]
        accepted_at=aware(row.accepted_at),
        started_at=aware(row.started_at), completed_at=aware(row.completed_at),
        escalated_at=aware(row.escalated_at), reason=row.reason, provider_type=row.provider_type,
        failed_at=aware(row.failed_at))


class TraceRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, records: Sequence[SpanRecord], received_at: datetime) -> None:
        for s in records:
            upsert(self.conn, t.spans, ["trace_id", "span_id"], {
                "trace_id": s.trace_id, "span_id": s.span_id, "parent_span_id": s.parent_span_id,
                "service": s.service, "name": s.name[:300], "kind": s.kind, "start_ns": s.start_ns,
                "end_ns": s.end_ns, "status": s.status, "attributes": json.dumps(s.attributes),
                "received_at": received_at}, update_only=())
            for subject in s.subject_ids:
                upsert(self.conn, t.trace_subjects, ["subject_id", "trace_id"],
                       {"subject_id": subject, "trace_id": s.trace_id})

    def trace_ids(self, subject_ids: Iterable[str]) -> list[str]:
        rows = self.conn.execute(select(t.trace_subjects.c.trace_id.distinct())
                                 .where(t.trace_subjects.c.subject_id.in_(list(subject_ids))))
        return [str(r.trace_id) for r in rows]

    def spans(self, trace_ids: Sequence[str]) -> list[SpanRecord]:
        if not trace_ids:
            return []
        rows = self.conn.execute(select(t.spans).where(t.spans.c.trace_id.in_(list(trace_ids)))
                                 .order_by(t.spans.c.start_ns))
        return [SpanRecord(r.trace_id, r.span_id, r.parent_span_id, r.service, r.name, r.kind, r.start_ns, r.end_ns,
                           r.status, json.loads(r.attributes)) for r in rows]

    def forget(self, subject_ids: Sequence[str]) -> None:
        """Drops the traces that touched these subjects, and the index rows that led to them."""
        traces = self.trace_ids(subject_ids)
        if traces:
            self.conn.execute(delete(t.spans).where(t.spans.c.trace_id.in_(traces)))
            self.conn.execute(delete(t.trace_subjects).where(t.trace_subjects.c.trace_id.in_(traces)))

    def prune(self, older_than: datetime) -> int:
        old = select(t.spans.c.trace_id).where(t.spans.c.received_at < older_than).distinct().scalar_subquery()
        self.conn.execute(delete(t.trace_subjects).where(t.trace_subjects.c.trace_id.in_(old)))
        return int(self.conn.execute(delete(t.spans).where(t.spans.c.received_at < older_than)).rowcount)


class DeadLetterRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def positions(self) -> dict[tuple[str, int], int]:
        return {(r.topic, r.partition): int(r.next_offset) for r in self.conn.execute(select(t.dlq_positions))}

    def add(self, letter: DeadLetterRecord) -> None:
        upsert(self.conn, t.dead_letters, ["dlq_topic", "dlq_partition", "dlq_offset"], {
            "dlq_topic": letter.dlq_topic, "dlq_partition": letter.dlq_partition, "dlq_offset": letter.dlq_offset,
            "consumer": letter.consumer, "original_topic": letter.original_topic,
            "original_partition": letter.original_partition, "original_offset": letter.original_offset,
            "original_key": letter.original_key, "original_value": letter.original_value,
            "error": letter.error, "attempts": letter.attempts, "failed_at": letter.failed_at,
            "event_id": letter.event_id, "event_type": letter.event_type, "traceparent": letter.traceparent},
            update_only=())
        upsert(self.conn, t.dlq_positions, ["topic", "partition"],
               {"topic": letter.dlq_topic, "partition": letter.dlq_partition, "next_offset": letter.dlq_offset + 1})

    def get(self, letter_id: int, for_update: bool = False) -> DeadLetterRecord | None:
        query = select(t.dead_letters).where(t.dead_letters.c.id == letter_id)
        if for_update:  # two replays of one letter at once: the second waits, then finds the first's audit row
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            return None
        return DeadLetterRecord(row.dlq_topic, row.dlq_partition, row.dlq_offset, row.consumer, row.original_topic,
                                row.original_partition, row.original_offset, row.original_key, row.original_value,
                                row.error, row.attempts, aware(row.failed_at), row.event_id,  # type: ignore[arg-type]
                                row.event_type, row.traceparent)

    def replay_of(self, letter_id: int) -> Any:
        return self.conn.execute(select(t.replays).where(t.replays.c.letter_id == letter_id)).first()

    def record_replay(self, letter_id: int, actor: str, at: datetime, original_topic: str, event_id: str,
                      published_offset: int, took_ms: float) -> None:
        self.conn.execute(insert(t.replays).values(letter_id=letter_id, actor=actor, at=at,
                                                   original_topic=original_topic, event_id=event_id,
                                                   published_offset=published_offset, took_ms=took_ms))

    def list(self, consumer: str, include_replayed: bool, limit: int,
             within: Collection[str] | None = None) -> list[DeadLetterView]:
        d, r = t.dead_letters.c, t.replays.c
        query = (select(d.id, d.dlq_topic, d.consumer, d.original_topic, d.original_partition, d.original_offset,
                        d.error, d.attempts, d.failed_at, d.event_id, d.event_type, r.at, r.actor, d.original_key)
                 .select_from(t.dead_letters.outerjoin(t.replays, r.letter_id == d.id))
                 .order_by(d.failed_at.desc(), d.id.desc()).limit(limit))
        if consumer:
            query = query.where(d.consumer == consumer)
        if not include_replayed:
            query = query.where(r.id.is_(None))
        if within is not None:
            query = query.where(_keyed_within(within))
        return [DeadLetterView(row.id, row.dlq_topic, row.consumer, row.original_topic, row.original_partition,
                               row.original_offset, row.error, row.attempts, aware(row.failed_at),  # type: ignore[arg-type]
                               row.event_id, row.event_type, aware(row.at), row.actor or "",
                               province_of_key(bytes(row.original_key)))
                for row in self.conn.execute(query)]

    def pending_by_consumer(self, within: Collection[str] | None = None) -> dict[str, int]:
        d, r = t.dead_letters.c, t.replays.c
        query = (select(d.consumer, func.count().label("n"))
                 .select_from(t.dead_letters.outerjoin(t.replays, r.letter_id == d.id))
                 .where(r.id.is_(None)).group_by(d.consumer))
        if within is not None:
            query = query.where(_keyed_within(within))
        return {str(row.consumer): int(row.n) for row in self.conn.execute(query)}


def _keyed_within(within: Collection[str]) -> Any:
    """Letters whose original record is keyed by one of these provinces (every topic is keyed by province)."""
    return t.dead_letters.c.original_key.in_([code.encode() for code in sorted(within)])

"""Notices and their deliveries, the in-app feed, what the worker remembers of cases and referrals, dead
letters and texts received (the directory's recipients: directory.py). Times are stored in UTC (SQLite keeps no
offset) and read back aware."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    TextClause,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.dml import ReturningUpdate

from notifications.adapters.tables import (
    cases,
    consents,
    dead_letters,
    deliveries,
    feed,
    inbound_sms,
    notices,
    referrals,
)
from notifications.domain.events import NoticeRef, NotificationFailed
from notifications.domain.messages import Channel, Language, NoticeKind, Role, Urgency
from notifications.domain.notices import SURVIVOR_LANE, Due, Notice, Planned, Recorded, Status, urgency_of
from notifications.domain.rendering import OutboundMessage
from refnet_platform.clock import system_clock
from refnet_platform.engine import upsert_insert
from refnet_platform.prepared import PreparedStatement, prepared_insert
from refnet_platform.vocabulary import DeliveryFailureReason, ServiceType


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# What the consumer runs for every event, built once with parameters: SQLAlchemy then neither rebuilds the
# statements nor works out their cache keys again at each call.
_CASE_WORKER = select(cases.c.case_worker_id).where(cases.c.case_id == bindparam("case_id"))
_REFERRAL = select(referrals).where(referrals.c.referral_id == bindparam("referral_id"))
_CONSENTED = select(consents.c.service_type).where(consents.c.case_id == bindparam("case_id"))
# What a dispatch round records, executed once for a batch's rows (b_unless: the status a delivery must not
# have for the row to apply).
_RECORD_DELIVERY = (
    update(deliveries)
    .where(deliveries.c.notice_id == bindparam("b_notice_id"), deliveries.c.status != bindparam("b_unless"))
    .values(status=bindparam("b_status"), attempts=bindparam("b_attempts"),
            next_attempt_at=bindparam("b_next_attempt_at"), lease_until=None, detail=bindparam("b_detail"),
            updated_at=bindparam("b_updated_at")))
# A notice's status as its delivery's, where the delivery took it (not where it stayed cancelled).
_RECORD_NOTICE = (
    update(notices)
    .where(notices.c.notice_id == bindparam("b_notice_id"),
           exists().where(deliveries.c.notice_id == notices.c.notice_id,
                          deliveries.c.status == bindparam("b_status")))
    .values(status=bindparam("b_status")))


def upsert(conn: Connection, table: Table, keys: Sequence[str], values: dict[str, Any]) -> None:
    """Inserts the row, or updates the one with the same keys."""
    conn.execute(_upsert_statement(table.name, tuple(keys), tuple(values)), values)


@cache
def _upsert_statement(table: str, keys: tuple[str, ...], columns: tuple[str, ...]) -> TextClause:
    """INSERT ... ON CONFLICT, as SQLite and PostgreSQL both spell it. Written once per shape, with the values
    as parameters: SQLAlchemy's on_conflict constructs are compiled anew at every call (the consumer's path)."""
    updates = [c for c in columns if c not in keys]
    action = f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in updates)}" if updates else "DO NOTHING"
    return text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(f':{c}' for c in columns)}) "
                f"ON CONFLICT ({', '.join(keys)}) {action}")


# What every CaseRegistered and ReferralRequested writes, the times in the table's columns converted (stored
# in UTC).
_NOTE_CASE = PreparedStatement(_upsert_statement("cases", ("case_id",), ("case_id", "province_code", "case_worker_id")))
_NOTE_REFERRAL = PreparedStatement(_upsert_statement("referrals", ("referral_id",), (
    "referral_id", "case_id", "case_worker_id", "provider_id", "service_type", "priority", "province_code")))
# Records notices, those not recorded before (their event redelivered) left as they are: executed once for all
# of an event's notices, and how many rows it inserted says whether they were all new (no RETURNING to read:
# reading it was a third of the statement's cost).
_INSERT_NEW_NOTICES = prepared_insert(notices, conflict="ON CONFLICT (notice_id) DO NOTHING")
_INSERT_DELIVERY = prepared_insert(deliveries)
_INSERT_FEED = prepared_insert(feed, ["notice_id", "role", "recipient_id", "case_id", "published_at"])
_KNOWN_DELIVERIES = select(deliveries.c.notice_id).where(deliveries.c.notice_id.in_(bindparam("ids", expanding=True)))


def _due_in_lane(emergencies_only: bool, lanes: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
    """A lane's deliveries (or `lanes`') that are due at :b_now and not claimed by a round (only emergencies' if
    emergencies_only)."""
    now = bindparam("b_now", type_=deliveries.c.next_attempt_at.type)
    which = deliveries.c.lane == bindparam("b_lane") if lanes is None else lanes
    due = and_(which, deliveries.c.status.in_([Status.PENDING, Status.DEFERRED]), deliveries.c.next_attempt_at <= now,
               or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now))
    return and_(due, deliveries.c.priority == Urgency.EMERGENCY.priority) if emergencies_only else due


def _pick(emergencies_only: bool) -> Select[tuple[str]]:
    return (select(deliveries.c.notice_id).where(_due_in_lane(emergencies_only))
            .order_by(deliveries.c.priority, deliveries.c.next_attempt_at, deliveries.c.created_at)
            .limit(bindparam("b_limit")).with_for_update(skip_locked=True))


def _claim(emergencies_only: bool) -> ReturningUpdate[tuple[str]]:
    return (update(deliveries)
            .where(deliveries.c.notice_id.in_(bindparam("b_picked", expanding=True)), _due_in_lane(emergencies_only))
            .values(attempts=deliveries.c.attempts + 1,
                    lease_until=bindparam("b_lease_until", type_=deliveries.c.lease_until.type),
                    updated_at=bindparam("b_now", type_=deliveries.c.updated_at.type))
            .returning(deliveries.c.notice_id))


@cache
def _consent_statement(services: int) -> PreparedStatement:
    """A case's consents, `services` rows in one INSERT (those known already left as they are)."""
    rows = ", ".join(f"(:case_id, :service_type_{i})" for i in range(services))
    return PreparedStatement(text(f"INSERT INTO consents (case_id, service_type) VALUES {rows} "
                        "ON CONFLICT (case_id, service_type) DO NOTHING"))


class NoticeRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- recording --------------------------------------------------------------------------------

    def add(self, planned: Sequence[Planned], now: datetime, correlation_id: str = "",
            traceparent: str = "") -> list[Planned]:
        """Records each notice and its delivery, and returns those recorded: a notice that exists already
        (its event redelivered) is left as it is."""
        if not planned:
            return []
        at = _utc(now)
        inserted = _INSERT_NEW_NOTICES.execute(self.conn, [dict(
            notice_id=p.message.notice_id, source_event_id=p.message.event_id, recipient_id=p.message.recipient_id,
            channel=p.lane, subject=p.message.subject[:300], body=p.message.body, referral_id=p.message.referral_id,
            case_id=p.message.case_id, province_code=p.message.province_code, status=p.status, created_at=at)
            for p in planned]).rowcount
        if inserted == 0:
            return []
        added = list(planned)
        if inserted < len(planned):
            # Some were recorded before (the event again, after the directory changed): each was recorded with its
            # delivery, so the new ones are those without one yet.
            known = set(self.conn.execute(_KNOWN_DELIVERIES, {"ids": [p.message.notice_id for p in planned]})
                        .scalars())
            added = [p for p in planned if p.message.notice_id not in known]
        _INSERT_DELIVERY.execute(self.conn, [dict(
            notice_id=p.message.notice_id, lane=p.lane, role=p.message.role, kind=p.message.kind,
            priority=p.message.priority, language=p.message.language, address=p.message.address, html=p.message.html,
            payload=json.dumps(dict(p.message.payload)) if p.message.payload else "{}",  # only webhooks' have one
            service_type=str(p.message.service_type or ""), sector=p.sector, status=p.status, attempts=p.attempts,
            next_attempt_at=_utc(p.next_attempt_at) if p.status.open else None, lease_until=None, detail="",
            correlation_id=correlation_id, traceparent=traceparent, created_at=at, updated_at=at)
            for p in added])
        return added

    def claim_due(self, lane: str, now: datetime, lease_until: datetime, limit: int, *,
                  emergencies_only: bool = False) -> list[Due]:
        """Up to `limit` of the lane's due deliveries (only emergencies' if emergencies_only), most urgent first
        (emergencies, then the longest due), claimed for this round: each attempt is counted and nobody else
        takes them before lease_until. Two rounds never get the same one: PostgreSQL skips rows another round
        has locked, and SQLite's transaction holds the write lock from its start."""
        at = {"b_lane": lane, "b_now": _utc(now)}
        pick = _PICK_EMERGENCIES if emergencies_only else _PICK
        picked = list(self.conn.execute(pick, {**at, "b_limit": limit}).scalars())
        if not picked:
            return []
        claim = _CLAIM_EMERGENCIES if emergencies_only else _CLAIM
        mine = set(self.conn.execute(claim, {**at, "b_picked": picked, "b_lease_until": _utc(lease_until)}).scalars())
        rows = {r["notice_id"]: r for r in self.conn.execute(_CLAIMED, {"mine": list(mine)}).mappings()}
        return [_due(rows[notice_id]) for notice_id in picked if notice_id in mine]  # most urgent first

    def lanes_due(self, lanes: Sequence[str], now: datetime) -> set[str]:
        """Which of these lanes have deliveries due now (a read: no claim, no lock)."""
        return set(self.conn.execute(_LANES_DUE, {"b_lanes": list(lanes), "b_now": _utc(now)}).scalars())

    def record(self, notice_id: str, recorded: Recorded, now: datetime) -> None:
        self.record_all([(notice_id, recorded)], now)

    def cancel(self, dues: Iterable[Due], reason: str, now: datetime) -> int:
        """Her notices still due are not sent (consent withdrawn, case erased, SMS stopped): one batch; how many."""
        results = [(due.message.notice_id, Recorded(Status.CANCELLED, due.attempt, None, reason)) for due in dues]
        self.record_all(results, now)
        return len(results)

    def record_all(self, results: Sequence[tuple[str, Recorded]], now: datetime) -> None:
        """Stores what happened to each notice: two statements for them all (a dispatch round's batch). A notice
        cancelled meanwhile (her consent withdrawn while it was being tried) is not made due again: only what
        really happened to it (sent, failed) replaces that, and its notice row follows its delivery's."""
        if not results:
            return
        at = _utc(now)
        rows = [{"b_notice_id": notice_id, "b_status": r.status, "b_attempts": r.attempts,
                 "b_next_attempt_at": _utc(r.next_attempt_at) if r.next_attempt_at else None,
                 "b_detail": r.detail[:300], "b_updated_at": at,
                 "b_unless": Status.CANCELLED if r.status.open else ""}  # "": no status is empty
                for notice_id, r in results]
        self.conn.execute(_RECORD_DELIVERY, rows)
        self.conn.execute(_RECORD_NOTICE, [{"b_notice_id": r["b_notice_id"], "b_status": r["b_status"]}
                                           for r in rows])

    def open_for_survivor(self, case_id: str) -> list[Due]:
        rows = self.conn.execute(_MESSAGE.where(
            notices.c.case_id == case_id, deliveries.c.lane == SURVIVOR_LANE,
            deliveries.c.status.in_([Status.PENDING, Status.DEFERRED]))).mappings().all()
        return [_due(r) for r in rows]

    def blank_finished(self, case_id: str) -> int:
        """Removes the text of the case's notices that are no longer to be sent."""
        finished = select(deliveries.c.notice_id).where(
            deliveries.c.status.not_in([Status.PENDING, Status.DEFERRED])).scalar_subquery()
        ids = select(notices.c.notice_id).where(notices.c.case_id == case_id, notices.c.notice_id.in_(finished))
        done = [r.notice_id for r in self.conn.execute(ids)]
        if done:
            self.conn.execute(update(notices).where(notices.c.notice_id.in_(done)).values(subject="", body=""))
            self.conn.execute(update(deliveries).where(deliveries.c.notice_id.in_(done)).values(html="", payload="{}"))
        return len(done)

    # --- the in-app feed --------------------------------------------------------------------------

    def publish(self, messages: Sequence[OutboundMessage], now: datetime) -> None:
        """Puts newly recorded in-app notices in their recipients' feeds (the feed's notice_id is unique)."""
        if messages:
            _INSERT_FEED.execute(self.conn, [dict(notice_id=m.notice_id, role=m.role, recipient_id=m.recipient_id,
                                                  case_id=m.case_id, published_at=_utc(now)) for m in messages])

    def feed_page(self, role: Role, recipient_ids: Sequence[str] | None, case_id: str, *, before: int = 0,
                  after: int | None = None, limit: int = 100) -> list[Notice]:
        """Newest first below `before` (0: from the newest); or oldest first above `after`. The feeds of
        `role` addressed to `recipient_ids` (None: every recipient of that role), merged by sequence."""
        query = (select(feed.c.sequence, notices.c.notice_id, notices.c.source_event_id, notices.c.recipient_id,
                        notices.c.channel, notices.c.subject, notices.c.body, notices.c.referral_id, notices.c.case_id,
                        notices.c.province_code, notices.c.created_at, deliveries.c.kind, deliveries.c.role,
                        deliveries.c.priority, deliveries.c.status)
                 .join(notices, notices.c.notice_id == feed.c.notice_id)
                 .join(deliveries, deliveries.c.notice_id == feed.c.notice_id)
                 .where(_feeds(role, recipient_ids)))
        if case_id:
            query = query.where(feed.c.case_id == case_id)
        if after is not None:
            query = query.where(feed.c.sequence > after).order_by(feed.c.sequence)
        else:
            if before:
                query = query.where(feed.c.sequence < before)
            query = query.order_by(feed.c.sequence.desc())
        return [_notice(r) for r in self.conn.execute(query.limit(limit)).mappings()]

    def feed_end(self, role: Role, recipient_ids: Sequence[str] | None) -> int:
        query = select(func.max(feed.c.sequence)).where(_feeds(role, recipient_ids))
        return int(self.conn.execute(query).scalar() or 0)


def _feeds(role: Role, recipient_ids: Sequence[str] | None) -> ColumnElement[bool]:
    if recipient_ids is None:
        return feed.c.role == role
    if len(recipient_ids) == 1:
        return and_(feed.c.role == role, feed.c.recipient_id == recipient_ids[0])
    return and_(feed.c.role == role, feed.c.recipient_id.in_(recipient_ids))


_MESSAGE = (
    select(notices.c.notice_id, notices.c.source_event_id, notices.c.recipient_id, notices.c.subject, notices.c.body,
           notices.c.referral_id, notices.c.case_id, notices.c.province_code, deliveries.c.lane, deliveries.c.role,
           deliveries.c.kind, deliveries.c.priority, deliveries.c.language, deliveries.c.address, deliveries.c.html,
           deliveries.c.payload, deliveries.c.service_type, deliveries.c.sector, deliveries.c.attempts,
           deliveries.c.next_attempt_at, deliveries.c.correlation_id, deliveries.c.traceparent)
    .join(deliveries, deliveries.c.notice_id == notices.c.notice_id)
)


# A dispatch round's claim, built once (a lane's claim runs at every round, most of them finding nothing).
_PICK, _PICK_EMERGENCIES = _pick(False), _pick(True)
_CLAIM, _CLAIM_EMERGENCIES = _claim(False), _claim(True)
_LANES_DUE = select(deliveries.c.lane).distinct().where(
    _due_in_lane(False, deliveries.c.lane.in_(bindparam("b_lanes", expanding=True))))
_CLAIMED = _MESSAGE.where(notices.c.notice_id.in_(bindparam("mine", expanding=True)))


def _due(row: RowMapping) -> Due:
    return Due(_message(row), row["lane"], row["attempts"], row["sector"], row["correlation_id"], row["traceparent"])


def _message(row: RowMapping) -> OutboundMessage:
    lane = row["lane"]
    return OutboundMessage(
        notice_id=row["notice_id"], event_id=row["source_event_id"], kind=NoticeKind(row["kind"]),
        role=Role(row["role"]), recipient_id=row["recipient_id"],
        # A survivor's notice: a placeholder channel until safe_contact.recheck picks her route.
        channel=Channel.SMS if lane == SURVIVOR_LANE else Channel(lane), address=row["address"],
        language=Language(row["language"]), subject=row["subject"], body=row["body"], html=row["html"],
        payload=json.loads(row["payload"] or "{}"), priority=row["priority"],
        not_before=_aware(row["next_attempt_at"]), case_id=row["case_id"], referral_id=row["referral_id"],
        province_code=row["province_code"],
        service_type=ServiceType(row["service_type"]) if row["service_type"] else None,
    )


def _notice(row: RowMapping) -> Notice:
    created = _aware(row["created_at"])
    assert created is not None
    return Notice(
        notice_id=row["notice_id"], source_event_id=row["source_event_id"], kind=row["kind"], role=row["role"],
        recipient_id=row["recipient_id"], channel=row["channel"], subject=row["subject"], body=row["body"],
        referral_id=row["referral_id"], case_id=row["case_id"], province_code=row["province_code"],
        urgency=str(urgency_of(row["priority"])), status=row["status"], created_at=created,
        sequence=int(row["sequence"]),
    )


class CaseRepository:
    """What the worker learns from events and needs later: a case's worker, a referral's details (bed
    events carry neither), and which services a survivor consented to."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def note_case(self, case_id: str, province_code: str, case_worker_id: str) -> None:
        _NOTE_CASE.execute(self.conn, {"case_id": case_id, "province_code": province_code,
                                       "case_worker_id": case_worker_id})

    def case_worker(self, case_id: str) -> str:
        row = self.conn.execute(_CASE_WORKER, {"case_id": case_id}).first()
        return row.case_worker_id if row else ""

    def note_referral(self, referral_id: str, case_id: str, case_worker_id: str, provider_id: str,
                      service_type: ServiceType, priority: int, province_code: str) -> None:
        _NOTE_REFERRAL.execute(self.conn, {
            "referral_id": referral_id, "case_id": case_id, "case_worker_id": case_worker_id,
            "provider_id": provider_id, "service_type": service_type, "priority": priority,
            "province_code": province_code})

    def referral(self, referral_id: str) -> RowMapping | None:
        return self.conn.execute(_REFERRAL, {"referral_id": referral_id}).mappings().first()

    def consent(self, case_id: str, *services: ServiceType) -> None:
        """Records her consent to each service: one statement for them all (a new case's consented needs)."""
        if services:
            _consent_statement(len(services)).execute(
                self.conn, {"case_id": case_id, **{f"service_type_{i}": s for i, s in enumerate(services)}})

    def withdraw(self, case_id: str, service_type: ServiceType | None) -> None:
        query = delete(consents).where(consents.c.case_id == case_id)
        if service_type is not None:
            query = query.where(consents.c.service_type == service_type)
        self.conn.execute(query)

    def consented(self, case_id: str) -> frozenset[ServiceType]:
        rows = self.conn.execute(_CONSENTED, {"case_id": case_id})
        return frozenset(ServiceType(r.service_type) for r in rows)

    def forget(self, case_id: str) -> None:
        for table in (consents, referrals, cases):
            self.conn.execute(delete(table).where(table.c.case_id == case_id))


# Looked for after every dispatch round, built once.
_UNPUBLISHED = (select(dead_letters).where(dead_letters.c.published_at.is_(None)).order_by(dead_letters.c.failed_at)
                .limit(bindparam("limit")))


class DeadLetterRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, failed: NotificationFailed) -> None:
        n = failed.notice
        if self.conn.execute(select(dead_letters.c.notice_id).where(dead_letters.c.notice_id == n.notice_id)).first():
            return
        self.conn.execute(insert(dead_letters).values(
            notice_id=n.notice_id, lane=n.channel, recipient_id=n.recipient_id, role=n.role, kind=n.kind,
            referral_id=n.referral_id, case_id=n.case_id, province_code=n.province_code,
            source_event_id=n.source_event_id, emergency=n.emergency, reason=failed.reason,
            detail=failed.detail[:300], attempts=failed.attempts, failed_at=_utc(failed.at), published_at=None))

    def unpublished(self, limit: int = 100) -> list[NotificationFailed]:
        rows = self.conn.execute(_UNPUBLISHED, {"limit": limit}).mappings().all()
        return [NotificationFailed(
            NoticeRef(r["notice_id"], r["recipient_id"], r["lane"], r["referral_id"], r["case_id"],
                      r["province_code"], r["source_event_id"], r["kind"], r["role"], r["emergency"]),
            r["attempts"], _aware(r["failed_at"]) or system_clock(), DeliveryFailureReason(r["reason"]), r["detail"])
            for r in rows]

    def mark_published(self, notice_ids: Sequence[str], now: datetime) -> None:
        if notice_ids:
            self.conn.execute(update(dead_letters).where(dead_letters.c.notice_id.in_(list(notice_ids)))
                              .values(published_at=_utc(now)))


class InboundSmsRepository:
    """Texts received, by gateway message id: the first delivery claims the id, every later one finds it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def claim(self, message_id: str, sender_key: str, received_at: datetime) -> bool:
        """Records the text as being handled; False when its id was delivered before (nothing is changed)."""
        statement = upsert_insert(self.conn, inbound_sms).values(
            message_id=message_id, sender_key=sender_key, received_at=_utc(received_at), outcome="received")
        return bool(self.conn.execute(statement.on_conflict_do_nothing().returning(inbound_sms.c.message_id)).first())

    def release(self, message_id: str) -> None:
        """Forgets a text that could not be handled (an owner did not answer), so the gateway's retry is."""
        self.conn.execute(delete(inbound_sms).where(inbound_sms.c.message_id == message_id))

    def finish(self, message_id: str, outcome: str, reply: str, handled_at: datetime) -> None:
        self.conn.execute(update(inbound_sms).where(inbound_sms.c.message_id == message_id).values(
            outcome=outcome, reply=reply, handled_at=_utc(handled_at)))

    def reply_sent(self, message_id: str, status: str) -> None:
        self.conn.execute(update(inbound_sms).where(inbound_sms.c.message_id == message_id)
                          .values(reply_status=status))

    def outcome(self, message_id: str) -> str | None:
        return self.conn.execute(select(inbound_sms.c.outcome).where(inbound_sms.c.message_id == message_id)
                                 ).scalar_one_or_none()


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

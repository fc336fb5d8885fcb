"""What a dispatch round costs, on real databases (SQLite and PostgreSQL): a round claims only in the lanes with
work due (one read finds them; a round with nothing due writes nothing), a batch's deliveries are marked in a
fixed number of statements however many it holds (two per notice before), and the cheaper marking keeps its
rules: each delivery sent once and its notice row following it, one NotificationSent per e-mail in the outbox,
a notice cancelled while it was being tried left cancelled (only what really happened replaces that), and with
no exporter (no span per send) its status event still in the trace of the event behind it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from sqlalchemy import Engine, event, select

from notifications.adapters.directory_file import load_directory_file
from notifications.adapters.tables import deliveries, notices
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.messages import Channel, NewReferral, Urgency
from notifications.domain.notices import Recorded, Status
from notifications.domain.rendering import OutboundMessage
from notifications.domain.retry import DeliveryResult
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from refnet.notifications.v1 import events_pb2
from refnet_platform import telemetry
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import open_database
from refnet_platform.tables import outbox
from refnet_platform.telemetry import context_from_traceparent
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Accepting:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message.notice_id)
        return DeliveryResult.sent()


class NoDeadLetters:
    def publish(self, letters: Any) -> None:
        raise AssertionError(f"unexpected dead letters: {letters}")


@pytest.fixture
def worker(tmp_path: Path, database_url: str) -> Iterator[tuple[MessageBus, Engine, Accepting, str | None]]:
    yield from started(tmp_path, database_url, email_only=True)


@pytest.fixture
def three_lanes(tmp_path: Path, database_url: str) -> Iterator[tuple[MessageBus, Engine, Accepting, str | None]]:
    """E-mail, SMS and webhook configured; the duty desk has an e-mail address only."""
    yield from started(tmp_path, database_url, email_only=False)


def started(tmp_path: Path, database_url: str, email_only: bool) -> Iterator[tuple[MessageBus, Engine, Accepting,
                                                                                  str | None]]:
    settings = Settings(DATABASE_URL=database_url)
    engine = open_database(settings, MIGRATIONS)
    email = Accepting()
    adapters: dict[Channel, Any] = {Channel.EMAIL: email}
    if not email_only:
        adapters.update({Channel.SMS: Accepting(), Channel.WEBHOOK: Accepting()})
    bus = bootstrap(settings, engine, adapters=adapters, contacts=None, dead_letters=NoDeadLetters())
    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps({"providers": [
        {"provider_id": "duty-1", "sector": "police", "province_code": "22",
         "duty_contact": {"email": "duty-1@police.test", "language": "vi"}}]}))
    bus.handle(load_directory_file(directory))
    try:
        yield bus, engine, email, settings.database[1]
    finally:
        engine.dispose()


def referrals(bus: MessageBus, count: int) -> None:
    for _ in range(count):
        bus.handle(commands.Notify(NewReferral(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()),
                                               ServiceType.POLICE_PROTECTION, "duty-1", "22", Urgency.ROUTINE,
                                               "cw-1")))


def dispatched(bus: MessageBus, engine: Engine) -> tuple[dict[str, int], list[str]]:
    """One round (its batch holds them all) and the statements it sent."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        counts: dict[str, int] = bus.handle(commands.DispatchDue(limit=100))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counts, statements


def test_a_round_claims_only_in_the_lanes_with_work_due_and_a_round_with_none_writes_nothing(
        three_lanes: tuple[MessageBus, Engine, Accepting, str | None]) -> None:
    bus, engine, email, _ = three_lanes
    referrals(bus, 2)
    counts, statements = dispatched(bus, engine)
    assert counts == {"sent": 2} and len(email.sent) == 2
    claims = [s for s in statements if "FROM deliveries" in s and "LIMIT" in s]  # a claim's pick
    assert len(claims) == 1, statements  # the e-mail lane's; SMS and webhook had nothing due
    counts, statements = dispatched(bus, engine)
    assert counts == {}
    written = [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
    assert not written and not [s for s in statements if "FROM deliveries" in s and "LIMIT" in s], statements


def test_a_batch_of_deliveries_is_recorded_in_the_same_statements_however_many_it_holds(
        worker: tuple[MessageBus, Engine, Accepting, str | None]) -> None:
    bus, engine, email, _ = worker
    referrals(bus, 3)
    few, few_statements = dispatched(bus, engine)
    referrals(bus, 30)
    many, many_statements = dispatched(bus, engine)
    assert few == {"sent": 3} and many == {"sent": 30}
    assert len(many_statements) == len(few_statements), (few_statements, many_statements)
    assert len(email.sent) == len(set(email.sent)) == 33
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.status, deliveries.c.attempts, notices.c.status.label("notice"))
                            .join(notices, notices.c.notice_id == deliveries.c.notice_id)
                            .where(deliveries.c.lane == "email")).all()
        types = list(conn.execute(select(outbox.c.event_type)).scalars())
    assert {tuple(r) for r in rows} == {("sent", 1, "sent")} and len(rows) == 33
    sent = events_pb2.NotificationSent.DESCRIPTOR.full_name
    assert types.count(sent) == 33 * 2  # each e-mail's, and each in-app notice's as it was recorded
    assert set(types) == {sent}


def test_a_notice_cancelled_meanwhile_stays_cancelled_while_the_others_of_its_batch_are_recorded(
        worker: tuple[MessageBus, Engine, Accepting, str | None]) -> None:
    bus, engine, _, schema = worker
    referrals(bus, 3)
    with engine.connect() as conn:
        ids = list(conn.execute(select(deliveries.c.notice_id).where(deliveries.c.lane == "email")
                                .order_by(deliveries.c.notice_id)).scalars())
    cancelled, retried, sent = ids
    now = datetime.now(UTC)
    with NotificationsUnitOfWork(engine, schema) as work:
        work.notices.record(cancelled, Recorded(Status.CANCELLED, 1, None, "consent_withdrawn"), now)
        work.commit()
    with NotificationsUnitOfWork(engine, schema) as work:
        work.notices.record_all([
            (cancelled, Recorded(Status.PENDING, 1, now + timedelta(minutes=1), "smtp 451")),  # tried meanwhile
            (retried, Recorded(Status.PENDING, 1, now + timedelta(minutes=1), "smtp 451")),
            (sent, Recorded(Status.SENT, 1, None, ""))], now)
        work.commit()
    with engine.connect() as conn:
        rows = {r.notice_id: (r.status, r.notice, r.detail) for r in conn.execute(
            select(deliveries.c.notice_id, deliveries.c.status, deliveries.c.detail, notices.c.status.label("notice"))
            .join(notices, notices.c.notice_id == deliveries.c.notice_id).where(deliveries.c.notice_id.in_(ids)))}
    assert rows == {cancelled: ("cancelled", "cancelled", "consent_withdrawn"),
                    retried: ("pending", "pending", "smtp 451"), sent: ("sent", "sent", "")}


def test_without_an_exporter_a_send_makes_no_span_yet_its_status_event_continues_the_events_trace(
        worker: tuple[MessageBus, Engine, Accepting, str | None], monkeypatch: pytest.MonkeyPatch) -> None:
    bus, engine, _, _ = worker
    monkeypatch.setattr(telemetry, "_exporting", False)
    token = otel_context.attach(context_from_traceparent(TRACEPARENT))
    try:
        referrals(bus, 1)
    finally:
        otel_context.detach(token)
    assert dispatched(bus, engine)[0] == {"sent": 1}
    with engine.connect() as conn:
        traceparents = list(conn.execute(select(outbox.c.traceparent)).scalars())
    assert len(traceparents) == 2 and {t.split("-")[1] for t in traceparents} == {TRACEPARENT.split("-")[1]}

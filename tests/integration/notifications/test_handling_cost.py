"""What a new referral costs the notifications worker, on real databases (SQLite and PostgreSQL): the SQL
statements per notice stay where they were brought down to, and the cheaper path keeps its guarantees:
exactly one notice per (event, recipient, channel) however often the event comes, the directory's
recipients as last loaded (a reload in this process is seen at once), and a survivor still told only on
the services she consented to."""

from __future__ import annotations

import contextvars
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from notifications.adapters.directory_file import load_directory_file
from notifications.adapters.tables import deliveries, feed, notices, referrals
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.messages import Channel, NewReferral, Urgency
from notifications.domain.rendering import OutboundMessage
from notifications.domain.retry import DeliveryResult
from refnet_platform.bus import MessageBus
from refnet_platform.context import Causation, Delivery, current_causation, current_delivery
from refnet_platform.runtime import open_database
from refnet_platform.tables import outbox
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# A referral to a provider whose duty desk has an e-mail address: its in-app notice and its e-mail. What the
# worker runs for it: the inbox's duplicate check and row, the referral remembered, the new notices recorded
# (one statement, whose count of rows tells that none was known), their deliveries, the feed, the outbox. Not
# the directory (the process's copy) nor the survivor's consents (a new referral never tells her). On PostgreSQL
# the unit of work also wakes the relay (pg_notify) as it commits.
STATEMENTS_PER_REFERRAL = {"sqlite": 7, "postgresql": 8}
NOTICES_PER_REFERRAL = 2


class Unused:
    async def send(self, message: OutboundMessage) -> DeliveryResult:
        raise AssertionError("dispatch is not run here")

    def publish(self, letters: Any) -> None:
        raise AssertionError(f"unexpected dead letters: {letters}")


def write_directory(path: Path, email: str) -> Path:
    path.write_text(json.dumps({"providers": [
        {"provider_id": "duty-1", "sector": "police", "province_code": "22",
         "duty_contact": {"email": email, "language": "vi"}}]}))
    return path


@pytest.fixture
def worker(tmp_path: Path, database_url: str) -> Iterator[tuple[MessageBus, Engine]]:
    settings = Settings(DATABASE_URL=database_url)
    engine = open_database(settings, MIGRATIONS)
    unused = Unused()
    bus = bootstrap(settings, engine, adapters={Channel.EMAIL: unused}, contacts=None, dead_letters=unused)
    bus.handle(load_directory_file(write_directory(tmp_path / "directory.json", "duty-1@police.test")))
    try:
        yield bus, engine
    finally:
        engine.dispose()


def referral() -> NewReferral:
    return NewReferral(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), ServiceType.POLICE_PROTECTION,
                       "duty-1", "22", Urgency.ROUTINE, "cw-1")


def handle_as_consumed(bus: MessageBus, new: NewReferral) -> list[str]:
    """As the consumer runs a record: in a context of its own, in its flow, with its inbox key (the event's id)."""
    def run() -> list[str]:
        current_causation.set(Causation(new.event_id, new.event_id))
        current_delivery.set(Delivery("notifications-worker", new.event_id))
        made: list[str] = bus.handle(commands.Notify(new))
        return made
    return contextvars.copy_context().run(run)


def test_a_new_referral_costs_no_more_statements_per_notice_than_it_was_brought_down_to(
        worker: tuple[MessageBus, Engine]) -> None:
    bus, engine = worker
    handle_as_consumed(bus, referral())  # the directory's copy read once, as at a worker's first event
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    made = [handle_as_consumed(bus, referral()) for _ in range(20)]
    assert all(len(m) == NOTICES_PER_REFERRAL for m in made)
    per_notice = len(statements) / (20 * NOTICES_PER_REFERRAL)
    what = [" ".join(s.split()[:3]) for s in statements[:16]]
    assert per_notice <= STATEMENTS_PER_REFERRAL[engine.dialect.name] / NOTICES_PER_REFERRAL, (per_notice, what)
    assert not any("recipients" in s or "consents" in s for s in statements)


def test_the_same_referral_twice_records_each_notice_once(worker: tuple[MessageBus, Engine]) -> None:
    bus, engine = worker
    new = referral()
    first = bus.handle(commands.Notify(new))  # no inbox key: the notices' own uniqueness is what holds
    again = bus.handle(commands.Notify(new))
    assert len(first) == NOTICES_PER_REFERRAL and again == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(notices)).scalar() == NOTICES_PER_REFERRAL
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar() == NOTICES_PER_REFERRAL
        assert conn.execute(select(func.count()).select_from(feed)).scalar() == 1


def test_an_event_again_after_its_recipient_gained_a_channel_records_only_the_new_notice(
        worker: tuple[MessageBus, Engine], tmp_path: Path) -> None:
    bus, engine = worker
    bus.handle(load_directory_file(write_directory(tmp_path / "in_app_only.json", "")))
    new = referral()
    (in_app,) = bus.handle(commands.Notify(new))  # no inbox key: the notices' own uniqueness is what holds
    bus.handle(load_directory_file(write_directory(tmp_path / "mailed.json", "duty-1@police.test")))
    again = bus.handle(commands.Notify(new))
    assert len(again) == 1 and in_app not in again
    with engine.connect() as conn:
        assert set(conn.execute(select(deliveries.c.lane)).scalars()) == {"in_app", "email"}
        assert conn.execute(select(func.count()).select_from(notices)).scalar() == NOTICES_PER_REFERRAL
        assert list(conn.execute(select(feed.c.notice_id)).scalars()) == [in_app]
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 1  # its NotificationSent, once


def test_a_directory_loaded_again_in_the_worker_is_used_at_once(worker: tuple[MessageBus, Engine],
                                                                 tmp_path: Path) -> None:
    bus, engine = worker
    handle_as_consumed(bus, referral())
    bus.handle(load_directory_file(write_directory(tmp_path / "moved.json", "duty-desk@police.test")))
    made = handle_as_consumed(bus, referral())
    with engine.connect() as conn:
        addresses = set(conn.execute(select(deliveries.c.address).where(deliveries.c.notice_id.in_(made),
                                                                        deliveries.c.lane == "email")).scalars())
    assert addresses == {"duty-desk@police.test"}


def test_a_referrals_rows_hold_its_times_as_sqlalchemy_binds_them(tmp_path: Path, database_url: str) -> None:
    """The worker writes them as the database's own SQL: its times converted as SQLAlchemy converts them (on
    SQLite, the text that every comparison with a bound time expects)."""
    now = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=UTC)
    settings = Settings(DATABASE_URL=database_url)
    engine = open_database(settings, MIGRATIONS)
    try:
        unused = Unused()
        bus = bootstrap(settings, engine, adapters={Channel.EMAIL: unused}, contacts=None, dead_letters=unused,
                        clock=lambda: now)
        bus.handle(load_directory_file(write_directory(tmp_path / "directory.json", "duty-1@police.test")))
        new = referral()
        made = handle_as_consumed(bus, new)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(notices).where(notices.c.created_at == now)
                                ).scalar() == NOTICES_PER_REFERRAL
            assert conn.execute(select(func.count()).select_from(deliveries).where(
                deliveries.c.created_at == now, deliveries.c.updated_at == now)).scalar() == NOTICES_PER_REFERRAL
            assert conn.execute(select(deliveries.c.lane).where(deliveries.c.next_attempt_at == now)
                                ).scalars().all() == ["email"]  # in-app: delivered, nothing to attempt
            assert conn.execute(select(feed.c.notice_id).where(feed.c.published_at == now)).scalars().all() == [
                m for m in made if conn.execute(select(deliveries.c.lane).where(deliveries.c.notice_id == m)
                                                ).scalar() == "in_app"]
            row = conn.execute(select(referrals).where(referrals.c.referral_id == new.referral_id)).mappings().one()
            assert (row["case_id"], row["service_type"], row["priority"]) == (
                new.case_id, ServiceType.POLICE_PROTECTION, Urgency.ROUTINE.priority)
    finally:
        engine.dispose()

"""The dispatcher on real databases (SQLite and PostgreSQL): woken through the worker's own consumer and Tick
as soon as an event has made an e-mail due (a real SMTP server receives it long before the dispatch interval),
batches claimed exactly once however many rounds run at once, and the upgrade from the release that
dispatched the in-app feed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, select, text

from notifications.adapters import proto_mapping
from notifications.adapters.directory_file import load_directory_file
from notifications.adapters.tables import deliveries, feed, notices
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.messages import Channel, NewReferral, Urgency
from notifications.domain.rendering import OutboundMessage
from notifications.domain.retry import DeliveryResult
from notifications.entrypoints.worker import dispatch_tick
from refnet.common.v1 import types_pb2 as t
from refnet.referral.v1 import events_pb2 as referral_events
from refnet_dev.kafka import KafkaBroker, create_topics
from refnet_platform import kafka_clients
from refnet_platform.bus import MessageBus
from refnet_platform.consumer import EventConsumer, dispatching
from refnet_platform.engine import is_postgres, make_engine
from refnet_platform.envelope import OutgoingEvent, wrap
from refnet_platform.migrations import migrate
from refnet_platform.runtime import open_database
from refnet_platform.timers import Wakeup
from refnet_platform.topics import REFERRAL_EVENTS, Topic
from refnet_platform.unit_of_work import BatchTransaction
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PROVIDERS = [f"duty-{n}" for n in range(3)]


class NoDeadLetters:
    def publish(self, letters: Any) -> None:
        raise AssertionError(f"unexpected dead letters: {letters}")


def start(tmp_path: Path, database_url: str, **wiring: Any) -> tuple[Settings, Engine, MessageBus]:
    settings = Settings(DATABASE_URL=database_url, **wiring.pop("env", {}))
    engine = open_database(settings, MIGRATIONS)
    bus = bootstrap(settings, engine, dead_letters=NoDeadLetters(), **wiring)
    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps({"providers": [
        {"provider_id": p, "sector": "police", "province_code": "22",
         "duty_contact": {"email": f"{p}@police.test", "language": "vi"}} for p in PROVIDERS]}))
    bus.handle(load_directory_file(directory))
    return settings, engine, bus


# --- woken, not waiting for the interval --------------------------------------------------------


def test_an_email_goes_out_as_soon_as_its_event_is_handled_not_at_the_dispatch_interval(
    tmp_path: Path, database_url: str, smtp_server: Any, kafka_broker: KafkaBroker,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    source, dlq = f"scratch.referrals-{suffix}.v1", f"scratch.notifications-dlq-{suffix}.v1"
    create_topics(kafka_broker.bootstrap, source, dlq)
    # Scratch topics: registered here as referral's stream is, so the worker admits referral's events on them.
    registry = {source: Topic(source, "province_code", 1, "referral-relay", ("notifications-worker",),
                              REFERRAL_EVENTS)}
    wakeup = Wakeup()
    # Only a wakeup can explain an e-mail sent within seconds: the timer would next run in 30 s.
    settings, engine, bus = start(tmp_path, database_url, wakeup=wakeup, env={
        "smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_sender": "refnet <n@refnet.test>",
        "dispatch_interval_s": 30})
    worker = EventConsumer(f"notifications-{suffix}", kafka_broker.bootstrap, [source], proto_mapping.CONSUMED_TYPES,
                           dispatching(bus, proto_mapping.command_for), ticks=(dispatch_tick(settings, bus, wakeup),),
                           urgent=set(), dlq_topic=dlq, batch=partial(BatchTransaction, engine), registry=registry)

    async def scenario() -> float:
        running = asyncio.create_task(worker.run())
        try:
            await asyncio.sleep(3)  # its first round is done at start: the next tick is 30 s away
            producer = kafka_clients.producer(kafka_broker.bootstrap, "test")
            for provider in PROVIDERS:  # one poll's batch: one transaction, the wakeup after its commit
                referral_id = str(uuid.uuid4())
                message = referral_events.ReferralRequested(
                    referral_id=referral_id, case_id=str(uuid.uuid4()), need_id=str(uuid.uuid4()),
                    service_type=t.SERVICE_TYPE_POLICE_PROTECTION, provider_id=provider, province_code="22",
                    risk_level=t.RISK_LEVEL_MEDIUM, case_worker_id="cw-1")
                event = wrap(OutgoingEvent(message, source, "22", f"referral/{referral_id}"), "referral")
                producer.produce(source, key=b"22", value=event.SerializeToString())
            producer.flush()
            producer.close()
            published = time.monotonic()
            while len(smtp_server.mailbox.messages) < len(PROVIDERS) and time.monotonic() - published < 20:
                await asyncio.sleep(0.02)
            return time.monotonic() - published
        finally:
            worker.stop()
            await asyncio.wait_for(running, 20)

    took = asyncio.run(scenario())
    assert sorted(rcpt[0] for _, rcpt, _ in smtp_server.mailbox.messages) == [f"{p}@police.test" for p in PROVIDERS]
    with engine.connect() as conn:
        waits = [(r.updated_at - r.created_at).total_seconds() for r in conn.execute(
            select(deliveries.c.created_at, deliveries.c.updated_at).where(deliveries.c.lane == "email"))]
    engine.dispose()
    print(f"\npublished -> 3 e-mails received: {took * 1000:.0f} ms; recorded -> sent: "
          f"{', '.join(f'{w * 1000:.0f} ms' for w in waits)}")
    assert took < 10 and max(waits) < 2  # against a 30 s interval


# --- batches, claimed once ----------------------------------------------------------------------


@dataclass
class CountingChannel:
    channel: Channel = Channel.EMAIL
    sent: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        with self.lock:
            self.sent.append(message.notice_id)
        await asyncio.sleep(0.002)  # long enough for the other rounds to claim meanwhile
        return DeliveryResult.sent()


@pytest.fixture
def counting(tmp_path: Path, database_url: str) -> Iterator[tuple[MessageBus, Engine, CountingChannel]]:
    channel = CountingChannel()
    _, engine, bus = start(tmp_path, database_url, adapters={Channel.EMAIL: channel})
    try:
        yield bus, engine, channel
    finally:
        engine.dispose()


def test_rounds_running_at_once_claim_each_delivery_once(counting: tuple[MessageBus, Engine, CountingChannel]) -> None:
    bus, engine, channel = counting
    for n in range(150):
        bus.handle(commands.Notify(NewReferral(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()),
                                               ServiceType.POLICE_PROTECTION, PROVIDERS[n % 3], "22", Urgency.ROUTINE,
                                               "cw-1")))
    rounds = [threading.Thread(target=bus.handle, args=(commands.DispatchDue(limit=7),)) for _ in range(4)]
    for thread in rounds:
        thread.start()
    for thread in rounds:
        thread.join(60)
    sends = Counter(channel.sent)
    assert len(sends) == 150 and set(sends.values()) == {1}
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.status, deliveries.c.attempts, notices.c.status.label("notice"))
                            .join(notices, notices.c.notice_id == deliveries.c.notice_id)
                            .where(deliveries.c.lane == "email")).all()
    assert {tuple(r) for r in rows} == {("sent", 1, "sent")}


# --- upgrading from the release that dispatched the in-app feed ---------------------------------


def test_in_app_notices_left_pending_by_the_previous_release_are_put_in_their_feed(database_url: str) -> None:
    settings = Settings(DATABASE_URL=database_url)
    url, schema = settings.database
    engine = make_engine(url, schema)
    if is_postgres(engine):
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:  # the database as the previous release left it
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        now = datetime.now(UTC)
        for notice_id, lane in (("waiting", "in_app"), ("mail", "email")):
            conn.execute(insert(notices), dict(
                notice_id=notice_id, source_event_id="ev", recipient_id="duty-0", channel=lane, subject="s",
                body="b", referral_id="r", case_id="c", province_code="22", status="pending", created_at=now))
            conn.execute(insert(deliveries), dict(
                notice_id=notice_id, lane=lane, role="provider", kind="referral_new", priority=2, language="vi",
                address="duty-0", html="", payload="{}", service_type="", sector="", status="pending", attempts=0,
                next_attempt_at=now, lease_until=None, detail="", correlation_id="", traceparent="",
                created_at=now, updated_at=now))
    migrate(engine, MIGRATIONS, schema)
    with engine.connect() as conn:
        state = {r.notice_id: (r.status, r.attempts, r.notice) for r in conn.execute(
            select(deliveries.c.notice_id, deliveries.c.status, deliveries.c.attempts, notices.c.status.label("notice"))
            .join(notices, notices.c.notice_id == deliveries.c.notice_id))}
        in_feed = [(r.notice_id, r.role, r.recipient_id) for r in conn.execute(select(feed))]
    engine.dispose()
    assert state == {"waiting": ("delivered", 1, "delivered"), "mail": ("pending", 0, "pending")}
    assert in_feed == [("waiting", "provider", "duty-0")]

"""An emergency's notice does not wait behind routine work in notifications' dispatch (real databases,
SQLite and PostgreSQL): recorded while a round is sending a batch of routine e-mails through a gateway that
is slow to take them, it is sent at once, not after that batch."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from notifications.adapters.directory_file import load_directory_file
from notifications.adapters.tables import deliveries
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.messages import Channel, NewReferral, Urgency
from notifications.domain.rendering import OutboundMessage
from notifications.domain.retry import DeliveryResult
from refnet_platform.runtime import open_database
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROUTINE_HELD_S = 15.0  # how long a routine send waits for the emergency's before it gives up and goes


class NoDeadLetters:
    def publish(self, letters: Any) -> None:
        raise AssertionError(f"unexpected dead letters: {letters}")


@dataclass
class SlowGateway:
    """Takes routine e-mails only once the emergency's has been taken (or after ROUTINE_HELD_S): if the
    emergency waited for the routine batch, the batch would take that long and be sent first."""

    emergency_to: str
    sent: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    emergency_sent: threading.Event = field(default_factory=threading.Event)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        if message.address == self.emergency_to:
            self.sent.append(message.address)
            self.emergency_sent.set()
            return DeliveryResult.sent()
        self.started.set()
        held = time.monotonic() + ROUTINE_HELD_S
        while not self.emergency_sent.is_set() and time.monotonic() < held:
            await asyncio.sleep(0.01)
        self.sent.append(message.address)
        return DeliveryResult.sent()


def test_an_emergency_recorded_while_routine_emails_are_being_sent_goes_before_them(
        tmp_path: Path, database_url: str) -> None:
    gateway = SlowGateway("urgent@police.test")
    settings = Settings(DATABASE_URL=database_url, dispatch_concurrency=2)
    engine = open_database(settings, MIGRATIONS)
    bus = bootstrap(settings, engine, adapters={Channel.EMAIL: gateway}, contacts=None,
                    dead_letters=NoDeadLetters())
    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps({"providers": [
        {"provider_id": p, "sector": "police", "province_code": "22",
         "duty_contact": {"email": f"{p}@police.test", "language": "vi"}} for p in ("routine", "urgent")]}))
    bus.handle(load_directory_file(directory))

    def referral(provider: str, urgency: Urgency) -> commands.Notify:
        return commands.Notify(NewReferral(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()),
                                           ServiceType.POLICE_PROTECTION, provider, "22", urgency, "cw-1"))

    try:
        for _ in range(6):
            bus.handle(referral("routine", Urgency.ROUTINE))
        dispatching = threading.Thread(target=bus.handle, args=(commands.DispatchDue(),))
        dispatching.start()
        assert gateway.started.wait(20)  # the round is sending the routine batch (two at a time)
        recorded = time.monotonic()
        bus.handle(referral("urgent", Urgency.EMERGENCY))
        assert gateway.emergency_sent.wait(ROUTINE_HELD_S / 2), "the emergency waited behind the routine batch"
        took = time.monotonic() - recorded
        dispatching.join(60)
        assert not dispatching.is_alive()
        assert gateway.sent[0] == "urgent@police.test" and len(gateway.sent) == 7
        assert took < 5, took
        with engine.connect() as conn:
            statuses = set(conn.execute(select(deliveries.c.status).where(deliveries.c.lane == "email")).scalars())
        assert statuses == {"sent"}  # each once, the emergency's included
    finally:
        engine.dispose()

"""shelter's handlers through bootstrap on a real SQLite file: no network, no broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.shelter.v1 import events_pb2
from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller, Role, machine
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate
from refnet_platform.tables import outbox
from refnet_platform.vocabulary import TargetGroup
from shelter.bootstrap import bootstrap
from shelter.config import MIGRATIONS, Settings
from shelter.domain import commands
from shelter.domain.model import Accessibility, BedPool, Shelter


@dataclass
class Shelters:
    """The bus on a migrated SQLite file, with helpers to make shelters and commands."""

    bus: MessageBus
    engine: Engine
    operator = Caller("qn-worker-7", Role.OPERATOR, provinces=frozenset({"22"}), person=True)
    routing = machine("referral", Role.SERVICE)  # referral's routing

    @staticmethod
    def staff(shelter_id: str) -> Caller:
        """The shelter's own system (a machine: its certificate CN is the shelter id)."""
        return machine(shelter_id, Role.SHELTER)

    @staticmethod
    def person(user: str, shelter_id: str) -> Caller:
        """A member of a shelter's staff signed in as a person: who acts is not the shelter."""
        return Caller(user, Role.SHELTER, organisation_id=shelter_id, person=True)

    @staticmethod
    def shelter(shelter_id: str, province: str = "22", commune: str = "06673",
                pools: dict[TargetGroup, int] | None = None, accessibility: frozenset[Accessibility] = frozenset(),
                confirmed_at: datetime | None = None) -> Shelter:
        confirmed = confirmed_at or datetime.now(UTC)
        return Shelter(shelter_id, f"Shelter {shelter_id}", province, commune, accessibility,
                       f"secret address of {shelter_id}",
                       tuple(BedPool(shelter_id, g, n, 0, 0, confirmed)
                             for g, n in (pools or {TargetGroup.WOMEN: 2}).items()))

    @staticmethod
    def reserve(referral_id: str, shelter_id: str = "qn-spc", group: TargetGroup | None = TargetGroup.WOMEN,
                hold: timedelta = timedelta(hours=2)) -> commands.ReserveBed:
        return commands.ReserveBed(referral_id, f"case-{referral_id}", shelter_id, "22", group,
                                   datetime.now(UTC) + hold)

    def load(self, *shelters: Shelter) -> None:
        self.bus.handle(commands.LoadShelters(list(shelters)))

    def pool(self, shelter_id: str, group: TargetGroup) -> BedPool:
        found, _ = self.bus.handle(commands.GetShelter(self.operator, shelter_id))
        pool = found.pool(group)
        assert pool is not None
        return pool

    def events(self, kind: type | None = None) -> list:
        """The payloads in the outbox, oldest first (optionally of one type)."""
        with self.engine.connect() as conn:
            values = conn.execute(select(outbox.c.value).order_by(outbox.c.id)).scalars().all()
        found = []
        for value in values:
            envelope = EventEnvelope.FromString(value)
            cls = getattr(events_pb2, envelope.type.rsplit(".", 1)[-1])
            message = cls()
            envelope.data.Unpack(message)
            if kind is None or isinstance(message, kind):
                found.append(message)
        return found


@pytest.fixture
def shelters(tmp_path: Path) -> Iterator[Shelters]:
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'shelter.db'}")
    engine = make_engine(*settings.database)
    migrate(engine, MIGRATIONS)
    try:
        yield Shelters(bootstrap(settings, engine), engine)
    finally:
        engine.dispose()

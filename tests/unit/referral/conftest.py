"""Referral's handlers through bootstrap() on a throwaway SQLite file, with a hand-driven clock and a fake
intake contact API: no network, no Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from referral.adapters import hsds
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from referral.domain import commands
from referral.domain.model import Referral, Survivor, SurvivorContact
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.bus import MessageBus
from refnet_platform.caller import ALL_PROVINCES, Caller, Role, machine
from refnet_platform.clock import ManualClock
from refnet_platform.engine import make_engine
from refnet_platform.envelope import TypeRegistry, decode
from refnet_platform.errors import FailedPrecondition
from refnet_platform.migrations import migrate
from refnet_platform.tables import outbox
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex

EVENTS = TypeRegistry([referral_events, shelter_events, intake_events])
DEMO = Path(__file__).resolve().parents[3] / "demo" / "directory.json"
# Tuesday 2026-03-03 10:00 in Vietnam: offices are open.
TUESDAY_MORNING = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


@dataclass
class FakeContacts:
    """Intake's contact API: records each read, returns what consent covers (here: everything)."""

    reads: list[dict[str, Any]] = field(default_factory=list)
    refuse: str = ""

    def read(self, *, case_id: str, referral_id: str, recipient_id: str, recipient_sector: str,
             service_type: ServiceType, purpose: str) -> SurvivorContact:
        self.reads.append({"case_id": case_id, "referral_id": referral_id, "recipient_id": recipient_id,
                           "recipient_sector": recipient_sector, "service_type": service_type, "purpose": purpose})
        if self.refuse:
            raise FailedPrecondition(self.refuse)
        return SurvivorContact("Trần Thị Mẫu", "0912 345 678", "", "after 18:00", ("name", "phone", "safe_contact"),
                               phone_is_safe=True)


def agency(provider_id: str) -> Caller:
    """The agency's own system (a machine: its certificate's CN is its provider id)."""
    return machine(provider_id, Role.AGENCY)


def person(subject_id: str, role: Role, *provinces: str, organisation_id: str = "") -> Caller:
    """A signed-in person, as identity resolves one from the access token."""
    return Caller(subject_id, role, organisation_id=organisation_id, provinces=frozenset(provinces), person=True)


# Quảng Ninh's (22) hotline; the national 111 line sees every province.
OPERATOR = person("qn-worker-7", Role.OPERATOR, "22")
SUPERVISOR = person("qn-supervisor-1", Role.SUPERVISOR, "22")
NATIONAL = person("111-worker-1", Role.OPERATOR, ALL_PROVINCES)


@dataclass
class Referrals:
    """The bus on a fresh database with the demo directory, and the helpers the tests share (test modules
    cannot import each other or this conftest under --import-mode=importlib)."""

    bus: MessageBus
    engine: Engine
    clock: ManualClock
    contacts: FakeContacts
    operator = OPERATOR
    supervisor = SUPERVISOR
    national = NATIONAL

    @staticmethod
    def agency(provider_id: str) -> Caller:
        return agency(provider_id)

    @staticmethod
    def person(subject_id: str, role: Role, *provinces: str, organisation_id: str = "") -> Caller:
        return person(subject_id, role, *provinces, organisation_id=organisation_id)

    def handle(self, command: object) -> Any:
        return self.bus.handle(command)

    def register(self, *needs: ServiceType | tuple[ServiceType, bool], province: str = "22", commune: str = "06673",
                 risk: RiskLevel = RiskLevel.MEDIUM, emergency: bool = False, is_child: bool = False,
                 sex: Sex | None = Sex.FEMALE) -> tuple[str, dict[ServiceType, str]]:
        """A case with these needs (consented unless given as (type, False)); returns (case_id, need ids)."""
        case_id = str(uuid.uuid4())
        wanted = [n if isinstance(n, tuple) else (n, True) for n in needs]
        need_ids = {service: str(uuid.uuid4()) for service, _ in wanted}
        self.handle(commands.RouteCase(
            case_id=case_id, province_code=province, commune_code=commune,
            needs=[commands.NeedToRoute(need_ids[s], s, consented) for s, consented in wanted],
            risk_level=risk, emergency=emergency, case_worker_id="qn-worker-7",
            survivor=Survivor(is_child=is_child, sex=sex)))
        return case_id, need_ids

    def referrals(self, case_id: str) -> list[Referral]:
        """Every referral of the case, whatever its province (as the national line sees them)."""
        found, _ = self.handle(commands.ListReferrals(NATIONAL, case_id=case_id))
        return list(found)

    def only(self, case_id: str, service: ServiceType, **where: Any) -> Referral:
        found = [r for r in self.referrals(case_id) if r.service_type is service
                 and all(getattr(r, k) == v for k, v in where.items())]
        assert len(found) == 1, found
        return found[0]

    def events(self, kind: str | None = None) -> list[tuple[str, str, Any]]:
        """(topic, key, payload) of every outbox row, oldest first; only payloads named `kind` if given."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).order_by(outbox.c.id)).mappings().all()
        found = []
        for row in rows:
            payload = EVENTS.unpack(decode(row["value"]))
            if kind is None or type(payload).__name__ == kind:
                found.append((row["topic"], row["key"], payload))
        return found

    def accept(self, referral: Referral) -> Referral:
        return self.handle(commands.AcceptReferral(agency(referral.provider_id), referral.referral_id,
                                                   f"accept-{referral.referral_id}"))

    def with_directory(self, *providers: dict[str, Any]) -> None:
        """Replaces the directory with these compact entries (demo/directory.json's shape)."""
        self.handle(commands.LoadDirectory(hsds.read({"providers": list(providers)}), update_existing=True))


def provider(provider_id: str, service: str = "police_protection", province: str = "22", commune: str = "06673",
             **extra: Any) -> dict[str, Any]:
    return {"provider_id": provider_id, "name": provider_id, "sector": extra.pop("sector", "police"),
            "service_type": service, "province_code": province, "commune_code": commune,
            "public_contact": "113", "open_24_7": extra.pop("open_24_7", True), **extra}


def make_referrals(tmp_path: Path, directory: Path | None = DEMO, **settings: Any) -> Iterator[Referrals]:
    url = f"sqlite:///{tmp_path / 'referral.db'}"
    engine = make_engine(url)
    migrate(engine, MIGRATIONS)
    config = Settings(database_url=url, **settings)
    clock = ManualClock(TUESDAY_MORNING)
    contacts = FakeContacts()
    bus = bootstrap(config, engine, contacts=contacts, clock=clock)
    if directory is not None:
        bus.handle(commands.LoadDirectory(hsds.load_file(directory)))
    try:
        yield Referrals(bus, engine, clock, contacts)
    finally:
        engine.dispose()


@pytest.fixture
def referral(tmp_path: Path) -> Iterator[Referrals]:
    yield from make_referrals(tmp_path)


@pytest.fixture
def empty_directory(tmp_path: Path) -> Iterator[Referrals]:
    yield from make_referrals(tmp_path, directory=None)

"""Intake's handlers through bootstrap() on a throwaway SQLite file, with a hand-driven clock: no network, no
Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from intake.adapters.crypto import generate_key_b64
from intake.adapters.tables import metadata, metadata_0002, metadata_0004, metadata_casework
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from intake.domain.model import Contact, NeedSpec, Place, Survivor
from refnet.intake.v1 import events_pb2
from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller, Role, machine
from refnet_platform.clock import ManualClock
from refnet_platform.engine import make_engine
from refnet_platform.envelope import TypeRegistry, decode
from refnet_platform.migrations import migrate
from refnet_platform.tables import outbox
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex

QUANG_NINH, HA_TINH = "22", "42"


def person(subject_id: str, role: Role, *provinces: str) -> Caller:
    return Caller(subject_id, role, provinces=frozenset(provinces), person=True)


# People sign in with their provinces; services are machines named by their certificate's CN.
OPERATOR = person("qn-operator-1", Role.OPERATOR, QUANG_NINH)
SUPERVISOR = person("qn-supervisor-1", Role.SUPERVISOR, QUANG_NINH)
NATIONAL = person("111-operator-1", Role.OPERATOR, "*")  # the national child-protection line
SERVICE = machine("referral", Role.SERVICE)
NOTIFICATIONS = machine("notifications", Role.SERVICE)
AGENCY = machine("qn-police-baichay", Role.AGENCY)
INTAKE_EVENTS = TypeRegistry([events_pb2])


@dataclass
class Intake:
    """The bus on a fresh database, with the callers and helpers the tests share (test modules cannot
    import each other or this conftest under --import-mode=importlib)."""

    bus: MessageBus
    engine: Engine
    clock: ManualClock  # the handlers' now: it stands still until a test moves it
    operator = OPERATOR
    supervisor = SUPERVISOR
    national = NATIONAL
    service = SERVICE
    notifications = NOTIFICATIONS
    agency = AGENCY

    @staticmethod
    def register_command(**overrides: Any) -> commands.RegisterCase:
        return register_command(**overrides)

    def handle(self, command: object) -> Any:
        return self.bus.handle(command)

    def register(self, **overrides: Any) -> Any:
        """A registered adult domestic-violence case in Bãi Cháy, Quảng Ninh; returns the Case."""
        return self.handle(register_command(**overrides))[0]

    def refer(self, case: Any, *statuses: str, referral_id: str = "ref-1", provider_id: str = "qn-police-baichay",
              service: ServiceType = ServiceType.POLICE_PROTECTION) -> None:
        """What intake-worker records from referral's events: the referral requested for the case's need
        for `service`, then each status it moved to ("accepted", "in_service", ...)."""
        need = case.need_for(service)
        self.handle(commands.RecordReferral(case.case_id, need.need_id, referral_id, "requested", provider_id))
        for status in statuses:
            self.handle(commands.RecordReferral(case.case_id, "", referral_id, status, provider_id))

    def events(self, case_id: str | None = None) -> list[tuple[str, str, Any]]:
        """(topic, key, payload) of every outbox row, oldest first, optionally about one case."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).order_by(outbox.c.id)).mappings().all()
        found = []
        for row in rows:
            envelope = decode(row["value"])
            if case_id is None or envelope.subject == f"case/{case_id}":
                found.append((row["topic"], row["key"], INTAKE_EVENTS.unpack(envelope)))
        return found

    def count(self, table: str, where: str = "1=1", **params: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"), params).scalar_one())

    def total_rows(self) -> int:
        """Rows in every intake table: proves a refused request wrote nothing."""
        with self.engine.connect() as conn:
            tables = [*metadata.sorted_tables, *metadata_0002.sorted_tables, *metadata_0004.sorted_tables,
                      *metadata_casework.sorted_tables, outbox]
            return sum(int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables)


def register_command(**overrides: Any) -> commands.RegisterCase:
    fields: dict[str, Any] = dict(
        caller=OPERATOR, client_request_id=f"req-{uuid.uuid4()}", occurred_in=Place("22", "06673"),
        recorded_at=None, reported_in=None, case_types=[CaseType.DOMESTIC_VIOLENCE],
        survivor=Survivor(is_child=False, age=31, sex=Sex.FEMALE),
        needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consented=True), NeedSpec(ServiceType.LEGAL_AID)],
        risk_level=RiskLevel.MEDIUM, immediate_danger=False, case_worker_id="",
        contact=Contact(name="Trần Thị Mẫu", phone="0912 345 678", address="Tổ 5, khu 3",
                        safe_contact_note="after 18:00", phone_is_safe=True),
        narrative="what she said",
    )
    fields.update(overrides)
    return commands.RegisterCase(**fields)


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine = make_engine(url)
    migrate(engine, MIGRATIONS)
    clock = ManualClock(datetime.now(UTC))
    try:
        yield Intake(bootstrap(Settings(database_url=url, master_key=generate_key_b64()), engine, clock=clock), engine,
                     clock)
    finally:
        engine.dispose()

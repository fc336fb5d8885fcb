"""A new case's needs are inserted without being read first (the worker's CPU per case is mostly per-statement
work): on SQLite and PostgreSQL, a need a consent event stored before the registration still wins, found by the
insert's row count; and a redelivered registration, alone or in a batch, changes nothing."""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from referral.adapters import hsds
from referral.adapters.repository import ReferralRepository
from referral.adapters.tables import cases, needs, referral_history, referrals
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from referral.domain import commands
from referral.domain.model import Survivor
from refnet_platform.bus import MessageBus
from refnet_platform.clock import ManualClock
from refnet_platform.context import Delivery, current_delivery
from refnet_platform.engine import make_engine
from refnet_platform.envelope import new_event_id
from refnet_platform.migrations import migrate
from refnet_platform.tables import inbox, outbox
from refnet_platform.unit_of_work import BatchTransaction, Duplicate
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex

DEMO = Path(__file__).resolve().parents[3] / "demo" / "directory.json"
POLICE, MEDICAL, PSYCHOSOCIAL = ServiceType.POLICE_PROTECTION, ServiceType.MEDICAL, ServiceType.PSYCHOSOCIAL
CONSUMER = "referral-worker"
# Tuesday 2026-03-03 10:00 in Vietnam: offices are open.
TUESDAY_MORNING = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


@pytest.fixture
def routing(database_url: str) -> Iterator[tuple[MessageBus, Engine]]:
    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    bus = bootstrap(Settings(database_url=database_url), engine, clock=ManualClock(TUESDAY_MORNING))
    bus.handle(commands.LoadDirectory(hsds.load_file(DEMO)))
    try:
        yield bus, engine
    finally:
        engine.dispose()


def new_case(*services: ServiceType) -> tuple[commands.RouteCase, dict[ServiceType, str]]:
    need_ids = {service: str(uuid.uuid4()) for service in services}
    return commands.RouteCase(
        case_id=str(uuid.uuid4()), province_code="22", commune_code="06673",
        needs=[commands.NeedToRoute(need_ids[s], s, True, consent_id=new_event_id()) for s in services],
        risk_level=RiskLevel.MEDIUM, emergency=False, case_worker_id="qn-worker-7",
        survivor=Survivor(sex=Sex.FEMALE)), need_ids


def delivered(bus: MessageBus, command: object, event_id: str) -> Any:
    """Handled as the worker handles a record: in its inbox context."""
    def handle() -> Any:
        current_delivery.set(Delivery(CONSUMER, event_id))
        return bus.handle(command)

    return contextvars.copy_context().run(handle)


def shapes(engine: Engine) -> tuple[list[str], Any]:
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        flat = " ".join(statement.split())
        table = re.search(r"^(?:INSERT INTO|UPDATE) (\w+)|\bFROM (\w+)", flat)
        if table and flat.split()[0] in ("SELECT", "INSERT", "UPDATE"):
            sent.append(f"{flat.split()[0]} {next(t for t in table.groups() if t)}")

    event.listen(engine, "before_cursor_execute", record)
    return sent, lambda: event.remove(engine, "before_cursor_execute", record)


def counts(engine: Engine, case_id: str) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(referrals).where(referrals.c.case_id == case_id))
                .scalar_one(),
                conn.execute(select(func.count()).select_from(outbox)).scalar_one(),
                conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def test_a_new_case_routes_every_need_without_reading_them(routing: tuple[MessageBus, Engine]) -> None:
    bus, engine = routing
    delivered(bus, new_case(POLICE)[0], new_event_id())  # the first case loads the directory
    command, _ = new_case(POLICE, MEDICAL, PSYCHOSOCIAL)
    sent, stop = shapes(engine)
    try:
        made = delivered(bus, command, new_event_id())
    finally:
        stop()
    assert {r.provider_id for r in made} == {"qn-police-baichay", "qn-hospital", "qn-swc"}
    assert not [s for s in sent if s in ("SELECT needs", "SELECT referrals", "SELECT cases")], sent
    assert sent.count("INSERT needs") == 1


def test_a_consent_that_overtook_the_registration_is_kept(routing: tuple[MessageBus, Engine]) -> None:
    bus, engine = routing
    command, need_ids = new_case(POLICE, MEDICAL, PSYCHOSOCIAL)
    # The police need's consent arrived first, for the health sector only; the medical need was withdrawn first.
    bus.handle(commands.GiveConsent(command.case_id, need_ids[POLICE], POLICE, frozenset({"health"}),
                                    consent_id=new_event_id()))
    bus.handle(commands.WithdrawConsent(command.case_id, need_ids[MEDICAL], MEDICAL))
    sent, stop = shapes(engine)
    try:
        made = delivered(bus, command, new_event_id())
    finally:
        stop()
    assert "SELECT needs" in sent  # the insert's row count told that two were stored already
    routed = {r.service_type: r for r in made}
    assert routed.keys() == {POLICE, PSYCHOSOCIAL}  # the withdrawal stands: medical is never routed
    assert routed[POLICE].provider_id == ""  # no police station is in the health sector: escalated, not sent
    assert routed[PSYCHOSOCIAL].provider_id == "qn-swc"
    with engine.connect() as conn:
        stored = {r.need_id: r for r in conn.execute(select(needs).where(needs.c.case_id == command.case_id))}
    assert stored[need_ids[POLICE]].sectors == "health" and stored[need_ids[MEDICAL]].consent == "withdrawn"
    assert stored[need_ids[PSYCHOSOCIAL]].consent == "given"


def test_a_redelivered_registration_changes_nothing(routing: tuple[MessageBus, Engine]) -> None:
    bus, engine = routing
    command, _ = new_case(POLICE, MEDICAL, PSYCHOSOCIAL)
    event_id = new_event_id()
    assert len(delivered(bus, command, event_id)) == 3
    before = counts(engine, command.case_id)
    with pytest.raises(Duplicate):
        delivered(bus, command, event_id)
    with BatchTransaction(engine) as batch:  # as the consumer's batch sees it: looked up, then not handled
        batch.look_up(CONSUMER, [event_id])
        assert batch.handled(CONSUMER, event_id)
    # The same case under another event id (e.g. replayed from the dead letters) routes nothing new either.
    assert delivered(bus, command, new_event_id()) == []
    after = counts(engine, command.case_id)
    assert after[:2] == before[:2] and after[2] == before[2] + 1


def test_a_routed_cases_rows_hold_its_times_and_flags_as_sqlalchemy_binds_them(database_url: str) -> None:
    """The worker writes a new case, its needs, referrals and their history as the database's own SQL: times
    and flags converted as SQLAlchemy converts them (on SQLite, the text every comparison with a bound time
    expects), found by queries bound with the same values, and by the SLA timer's own read."""
    now = TUESDAY_MORNING.replace(microsecond=123456)
    deadline = now + timedelta(hours=12, microseconds=1)
    engine = make_engine(database_url)
    try:
        migrate(engine, MIGRATIONS)
        bus = bootstrap(Settings(database_url=database_url), engine, clock=ManualClock(now))
        bus.handle(commands.LoadDirectory(hsds.load_file(DEMO)))
        command, need_ids = new_case(POLICE, PSYCHOSOCIAL)
        command = replace(command, emergency=True, child_deadline=deadline)
        made = delivered(bus, command, new_event_id())
        assert len(made) == 2
        with engine.connect() as conn:
            case = conn.execute(select(cases).where(cases.c.child_deadline == deadline, cases.c.emergency.is_(True),
                                                    cases.c.is_child.is_(False))).mappings().one()
            assert (case["case_id"], case["province_code"], case["case_worker_id"]) == (
                command.case_id, "22", "qn-worker-7")
            assert set(conn.execute(select(needs.c.need_id).where(needs.c.case_id == command.case_id,
                                                                  needs.c.consent == "given")).scalars()) == set(
                need_ids.values())
            assert set(conn.execute(select(referrals.c.referral_id).where(
                referrals.c.requested_at == now, referrals.c.updated_at == now, referrals.c.emergency.is_(True),
                referrals.c.due_at > now)).scalars()) == {r.referral_id for r in made}
            assert conn.execute(select(func.count()).select_from(referral_history).where(
                referral_history.c.at == now)).scalar_one() >= len(made)
            due = ReferralRepository(conn).due(now + timedelta(days=30), 10)
            assert set(due) == {r.referral_id for r in made}
            assert ReferralRepository(conn).due(now, 10) == []
    finally:
        engine.dispose()

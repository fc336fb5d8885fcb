"""What a case costs intake in SQL, on SQLite and PostgreSQL: a registration writes each table once (one executemany
for a table of many rows) and reads nothing (its request's record is written first: only an id already used is
read); a referral's progress from referral's events is two statements. These counts fail if a change brings per-row
inserts or needless reads back. What those statements record is checked here too, on both databases (the referral
record's upsert is hand-written SQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from intake.adapters.crypto import generate_key_b64
from intake.adapters.tables import case_steps, cases, needs, referrals
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from intake.domain.model import ConsentGiver, ConsentTerms, Contact, NeedSpec, Place, Survivor
from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller, Role
from refnet_platform.clock import ManualClock
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex

OPERATOR = Caller("qn-operator-1", Role.OPERATOR, provinces=frozenset({"22"}), person=True)
PROVIDER = "qn-police-baichay"
# Per registration: the request's record; cases, case_keys, case_personal_data, needs, consents, contact_phones; the
# outbox. A child's first steps add one (case_steps), with the case row already sorted.
ADULT_STATEMENTS = 8
CHILD_STATEMENTS = ADULT_STATEMENTS + 1
# Per referral event: the need's referral (UPDATE ... RETURNING), then intake's referral record (one upsert).
REFERRAL_STATEMENTS = 2


def registration(child: bool = False) -> commands.RegisterCase:
    consent = ConsentTerms(ConsentGiver.GUARDIAN, ("name", "phone")) if child else None
    return commands.RegisterCase(
        caller=OPERATOR, client_request_id=f"req-{uuid.uuid4()}", occurred_in=Place("22", "06673"), recorded_at=None,
        reported_in=None, case_types=[CaseType.DOMESTIC_VIOLENCE],
        survivor=Survivor(is_child=child, age=12 if child else 31, sex=Sex.FEMALE),
        needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consented=not child, consent=consent),
               NeedSpec(ServiceType.LEGAL_AID, consented=not child, consent=consent),
               NeedSpec(ServiceType.MENTAL_HEALTH)],
        risk_level=RiskLevel.HIGH if child else RiskLevel.MEDIUM, immediate_danger=child, case_worker_id="",
        contact=Contact(name="Trần Thị Mẫu", phone="0912 345 678", address="Tổ 5, khu 3",
                        safe_contact_note="after 18:00", phone_is_safe=True),
        narrative="what she said")


class Counted:
    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Transaction control, and PostgreSQL's wake-up of the relay at commit, are the platform's, not the case's.
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK") \
                and "pg_notify" not in statement:
            self.statements.append(" ".join(statement.split())[:80])

    def during(self, bus: MessageBus, command: object) -> tuple[Any, list[str]]:
        self.statements.clear()
        result = bus.handle(command)
        return result, list(self.statements)


@pytest.fixture
def intake(database_url: str) -> Iterator[tuple[MessageBus, Engine, Counted]]:
    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    clock = ManualClock(datetime.now(UTC))
    bus = bootstrap(Settings(database_url=database_url, master_key=generate_key_b64()), engine, clock=clock)
    bus.handle(registration())  # the first call of each statement compiles it: not counted
    bus.handle(registration(child=True))
    try:
        yield bus, engine, Counted(engine)
    finally:
        engine.dispose()


def test_a_registration_writes_each_table_once(intake: tuple[MessageBus, Engine, Counted]) -> None:
    bus, engine, counted = intake
    (case, created), statements = counted.during(bus, registration())
    assert created and len(statements) == ADULT_STATEMENTS, "\n".join(statements)
    assert not [s for s in statements if s.upper().startswith("SELECT")]
    assert statements[0].startswith("INSERT INTO requests")  # first: a used id fails before anything is done

    (child, _), statements = counted.during(bus, registration(child=True))
    assert len(statements) == CHILD_STATEMENTS, "\n".join(statements)
    with engine.connect() as conn:
        row = conn.execute(select(cases.c.current_step, cases.c.next_due_at).where(
            cases.c.case_id == child.case_id)).one()
        steps = set(conn.execute(select(case_steps.c.step, case_steps.c.status).where(
            case_steps.c.case_id == child.case_id)).all())
    # The case lists sort by the step due first, written with the case: emergency measures within 12 hours.
    assert (row.current_step, child.current_step) == ("emergency_measures", child.current_step)
    assert row.next_due_at.replace(tzinfo=UTC) == child.next_due_at == child.child_protection_deadline
    assert steps == {("receive_and_assess", "open"), ("emergency_measures", "open")}
    assert (case.current_step, case.next_due_at) == (None, None)


def test_a_referral_event_takes_two_statements(intake: tuple[MessageBus, Engine, Counted]) -> None:
    bus, engine, counted = intake
    case = bus.handle(registration())[0]
    police = case.needs[0].need_id
    for command in (commands.RecordReferral(case.case_id, police, "ref-1", "requested", PROVIDER),
                    commands.RecordReferral(case.case_id, "", "ref-1", "accepted", PROVIDER),
                    commands.RecordReferral(case.case_id, "", "ref-1", "in_service", "")):
        _, statements = counted.during(bus, command)
        assert len(statements) == REFERRAL_STATEMENTS, "\n".join(statements)
    with engine.connect() as conn:
        need = conn.execute(select(needs).where(needs.c.need_id == police)).mappings().one()
        record = conn.execute(select(referrals)).mappings().one()
    assert (need["referral_id"], need["referral_status"], need["provider_id"]) == ("ref-1", "in_service", PROVIDER)
    assert (record["referral_id"], record["need_id"], record["provider_id"], record["status"], record["accepted"]) == (
        "ref-1", police, PROVIDER, "in_service", True)


def test_the_referral_record_keeps_its_rules_on_either_database(intake: tuple[MessageBus, Engine, Counted]) -> None:
    bus, engine, _ = intake
    case = bus.handle(registration())[0]
    police, legal = case.needs[0].need_id, case.needs[1].need_id
    for command in (
        commands.RecordReferral(case.case_id, police, "ref-1", "requested", PROVIDER),
        commands.RecordReferral(case.case_id, "", "ref-1", "accepted", "someone-else"),  # the first provider stays
        commands.RecordReferral(case.case_id, police, "ref-1", "requested", PROVIDER),  # redelivered late: no step back
        commands.RecordReferral("another-case", "", "ref-1", "cancelled", PROVIDER),  # not its case: nothing
        commands.RecordReferral(case.case_id, "", "ref-never-requested", "accepted", PROVIDER),  # no need: nothing
        # The legal-aid need is referred twice; the first referral's later news still reaches intake's record.
        commands.RecordReferral(case.case_id, legal, "ref-2", "requested", "qn-legal-aid"),
        commands.RecordReferral(case.case_id, legal, "ref-3", "requested", "qn-legal-aid-2"),
        commands.RecordReferral(case.case_id, "", "ref-2", "declined", ""),
        commands.RecordReferral(case.case_id, "", "ref-3", "accepted", ""),  # names no provider: the need's stays
    ):
        bus.handle(command)
    with engine.connect() as conn:
        rows = {r["referral_id"]: (r["need_id"], r["provider_id"], r["status"], r["accepted"])
                for r in conn.execute(select(referrals)).mappings()}
        legal_need = conn.execute(select(needs.c.referral_id, needs.c.referral_status, needs.c.provider_id)
                                  .where(needs.c.need_id == legal)).one()
    assert rows == {"ref-1": (police, PROVIDER, "accepted", True),
                    "ref-2": (legal, "qn-legal-aid", "declined", False),
                    "ref-3": (legal, "qn-legal-aid-2", "accepted", True)}
    assert tuple(legal_need) == ("ref-3", "accepted", "qn-legal-aid-2")


def test_a_repeated_registration_answers_from_its_record(intake: tuple[MessageBus, Engine, Counted]) -> None:
    bus, engine, counted = intake
    command = registration()
    first, _ = bus.handle(command)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(cases)).scalar_one()
    (again, created), statements = counted.during(bus, command)
    assert (again.case_id, created) == (first.case_id, False)
    # Only the request's record is tried (refused: the id is taken), so nothing of the case is written again.
    writes = [s for s in statements if s.upper().startswith(("INSERT", "UPDATE"))]
    assert [s.split(" (")[0] for s in writes] == ["INSERT INTO requests"], "\n".join(statements)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == stored
    assert timedelta(0) <= again.registered_at - first.registered_at <= timedelta(seconds=1)

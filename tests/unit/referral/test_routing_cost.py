"""What routing a case costs, and the directory each process keeps in memory: read from the database once,
reloaded only after a change (by any process), and never from a change that was rolled back."""

from __future__ import annotations

import contextvars
import dataclasses
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from referral.adapters.directory import DirectoryCache
from referral.adapters.tables import referral_history
from referral.bootstrap import bootstrap
from referral.config import Settings
from referral.domain import commands
from referral.domain.model import Status, Survivor
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.context import Delivery, current_delivery
from refnet_platform.envelope import new_event_id
from refnet_platform.unit_of_work import BatchSpoiled, BatchTransaction
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex

POLICE, MEDICAL, PSYCHOSOCIAL = ServiceType.POLICE_PROTECTION, ServiceType.MEDICAL, ServiceType.PSYCHOSOCIAL


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs (an executemany once)."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def tables(sent: list[str], verb: str) -> Counter[str]:
    """How many statements of this verb name each table."""
    pattern = {"INSERT": r"^INSERT INTO (\w+)", "SELECT": r"\bFROM (\w+)", "UPDATE": r"^UPDATE (\w+)"}[verb]
    return Counter(m.group(1) for s in sent if s.startswith(verb) and (m := re.search(pattern, s)))


def test_a_routed_case_reads_the_directory_from_memory_and_writes_each_table_once(referral) -> None:
    referral.register(POLICE)  # the first case loads the directory
    with statements(referral.engine) as sent:
        case_id, _ = referral.register(POLICE, MEDICAL, PSYCHOSOCIAL)
    assert {r.provider_id for r in referral.referrals(case_id)} == {"qn-police-baichay", "qn-hospital", "qn-swc"}
    read = tables(sent, "SELECT")
    assert not read.keys() & {"providers", "service_areas", "schedules"}
    assert read["directory_version"] == 1  # the staleness check: one row by primary key
    # A new case and its needs are inserted without a read; no need stored yet, so no referral read.
    assert not read.keys() & {"cases", "needs", "referrals"}
    written = tables(sent, "INSERT")
    del written["outbox"]  # the platform's
    assert written == {"cases": 1, "needs": 1, "referrals": 1, "referral_history": 1}
    assert not tables(sent, "UPDATE")


def test_a_need_no_provider_takes_is_stored_escalated_with_its_whole_history(empty_directory) -> None:
    referral = empty_directory
    with statements(referral.engine) as sent:
        case_id, _ = referral.register(POLICE)
    stuck = referral.only(case_id, POLICE)
    assert (stuck.provider_id, stuck.status, stuck.reason) == ("", Status.ESCALATED, "no_provider")
    assert tables(sent, "INSERT")["referrals"] == 1 and not tables(sent, "UPDATE")
    with referral.engine.connect() as conn:
        trail = conn.execute(select(referral_history.c.from_status, referral_history.c.to_status)
                             .where(referral_history.c.referral_id == stuck.referral_id)
                             .order_by(referral_history.c.id)).all()
    assert [tuple(row) for row in trail] == [("", "requested"), ("requested", "expired"), ("expired", "escalated")]


def test_a_directory_import_by_another_process_is_routed_by_at_the_next_case(referral) -> None:
    first, _ = referral.register(POLICE)
    assert referral.only(first, POLICE).provider_id == "qn-police-baichay"
    # Another process (its own bus and cache, e.g. `referral-directory import`) takes that station off.
    other = bootstrap(Settings(database_url=str(referral.engine.url)), referral.engine, contacts=referral.contacts)
    station = other.handle(commands.GetProvider("qn-police-baichay")).provider
    assert other.handle(commands.LoadDirectory([dataclasses.replace(station, active=False)],
                                               update_existing=True)) == 1
    second, _ = referral.register(POLICE)
    assert referral.only(second, POLICE).provider_id == "qn-police-campha"  # same province, next by id
    assert not referral.handle(commands.GetProvider("qn-police-baichay")).provider.active


def test_a_directory_change_rolled_back_is_never_served_from_the_cache(referral) -> None:
    cache = DirectoryCache()
    with ReferralUnitOfWork(referral.engine, None, cache) as work:
        station = work.directory.get("qn-police-baichay")
        assert station is not None and station.active
        work.directory.save(dataclasses.replace(station, active=False), update_existing=True)
        assert not work.directory.get("qn-police-baichay").active  # the transaction sees its own change
    # Rolled back. Then another process commits another change: its stamp is not the rolled-back one.
    with ReferralUnitOfWork(referral.engine, None, DirectoryCache()) as work:
        legal = work.directory.get("qn-legal-aid")
        work.directory.save(dataclasses.replace(legal, public_contact="0203 3825 825"), update_existing=True)
        work.commit()
    with ReferralUnitOfWork(referral.engine, None, cache) as work:
        assert work.directory.get("qn-police-baichay").active
        assert work.directory.get("qn-legal-aid").public_contact == "0203 3825 825"


def shape(sent: list[str]) -> list[str]:
    """Each statement as its verb and table ("SELECT needs", "INSERT referrals")."""
    found = []
    for s in sent:
        table = re.search(r"^(?:INSERT INTO|UPDATE) (\w+)|\bFROM (\w+)", s)
        found.append(" ".join([s.split()[0], *(t for t in (table.groups() if table else ()) if t)]))
    return found


def as_the_worker(referral: Any, *needs: ServiceType) -> str:
    """The case registered as the worker handles a record: in the record's inbox context."""
    def handle() -> str:
        current_delivery.set(Delivery("referral-worker", new_event_id()))
        return referral.register(*needs)[0]

    return contextvars.copy_context().run(handle)


# What routing a new case's three needs costs, statement by statement (the worker's CPU per case is mostly
# per-statement work): the inbox check, the case and its needs inserted unread (a need a consent event stored
# before the registration shows in the insert's row count, and only then are they read), the directory's stamp,
# one insert per table, the inbox row.
ROUTED_CASE = ["SELECT inbox", "INSERT cases", "INSERT needs", "SELECT directory_version", "INSERT referrals",
               "INSERT referral_history", "INSERT outbox", "INSERT inbox"]


def test_routing_a_new_case_costs_these_statements_and_no_more(referral) -> None:
    as_the_worker(referral, POLICE)  # the first case loads the directory
    with statements(referral.engine) as sent:
        case_id = as_the_worker(referral, POLICE, MEDICAL, PSYCHOSOCIAL)
    assert len(referral.referrals(case_id)) == 3
    assert shape(sent) == ROUTED_CASE


def test_a_batch_of_cases_checks_the_directory_once_and_routes_each_alike(referral) -> None:
    as_the_worker(referral, POLICE)
    with statements(referral.engine) as sent, BatchTransaction(referral.engine) as batch:
        cases = [as_the_worker(referral, POLICE, MEDICAL, PSYCHOSOCIAL) for _ in range(3)]
        batch.commit()
    assert all(len(referral.referrals(case_id)) == 3 for case_id in cases)
    # No savepoint each: the batch writes every case's outbox and inbox rows once, at its commit.
    each = [s for s in ROUTED_CASE if s not in ("SELECT directory_version", "INSERT outbox", "INSERT inbox")]
    assert shape(sent) == [*each[:3], "SELECT directory_version", *each[3:], *each, *each,
                           "INSERT outbox", "INSERT inbox"]


def test_a_directory_change_left_uncommitted_in_a_batch_is_never_served_afterwards(referral) -> None:
    cache = DirectoryCache()
    with BatchTransaction(referral.engine) as batch:
        with ReferralUnitOfWork(referral.engine, None, cache) as work:
            assert work.directory.get("qn-police-baichay").active
            work.commit()
        with ReferralUnitOfWork(referral.engine, None, cache) as work:
            station = work.directory.get("qn-police-baichay")
            work.directory.save(dataclasses.replace(station, active=False), update_existing=True)
            assert not work.directory.get("qn-police-baichay").active
        # Ended without committing: the batch refuses to commit and is rolled back (the consumer redoes the rest).
        with pytest.raises(BatchSpoiled):
            batch.commit()
    with ReferralUnitOfWork(referral.engine, None, cache) as work:
        assert work.directory.get("qn-police-baichay").active


def test_a_known_case_registered_again_is_read_and_updated_not_inserted(referral) -> None:
    case_id, needs = referral.register(POLICE)
    again = commands.RouteCase(case_id=case_id, province_code="22", commune_code="06673",
                               needs=[commands.NeedToRoute(needs[POLICE], POLICE, True)], risk_level=RiskLevel.HIGH,
                               emergency=False, case_worker_id="qn-worker-7", survivor=Survivor(sex=Sex.FEMALE))
    with statements(referral.engine) as sent:
        assert referral.handle(again) == []  # its need is with a provider already
    assert tables(sent, "SELECT")["cases"] == 1 and tables(sent, "UPDATE")["cases"] == 1
    assert len(referral.referrals(case_id)) == 1

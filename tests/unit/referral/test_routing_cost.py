"""What routing a case costs, and the directory each process keeps in memory: read from the database once,
reloaded only after a change (by any process), and never from a change that was rolled back."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event, select

from referral.adapters.directory import DirectoryCache
from referral.adapters.tables import referral_history
from referral.bootstrap import bootstrap
from referral.config import Settings
from referral.domain import commands
from referral.domain.model import Status
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.vocabulary import ServiceType

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
    # A new case is inserted without a read; its needs are read once; no need stored yet, so no referral read.
    assert "cases" not in read and read["needs"] == 1 and "referrals" not in read
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

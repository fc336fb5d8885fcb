"""What a registered case costs the notifications worker (it reads every CaseRegistered), on real databases
(SQLite and PostgreSQL): its case worker and all its consents in two statements, however many services she
consented to, and a case noted again (a redelivery, a reassignment) changes nothing but its case worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from notifications.adapters.tables import cases, consents
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import open_database
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CONSENTED = frozenset({ServiceType.MEDICAL, ServiceType.PSYCHOSOCIAL, ServiceType.LEGAL_AID})


class Unused:
    def publish(self, letters: Any) -> None:
        raise AssertionError(f"unexpected dead letters: {letters}")


@pytest.fixture
def worker(database_url: str) -> Iterator[tuple[MessageBus, Engine]]:
    settings = Settings(DATABASE_URL=database_url)
    engine = open_database(settings, MIGRATIONS)
    try:
        yield bootstrap(settings, engine, adapters={}, contacts=None, dead_letters=Unused()), engine
    finally:
        engine.dispose()


def test_a_case_and_all_its_consents_are_noted_in_two_statements(worker: tuple[MessageBus, Engine]) -> None:
    bus, engine = worker
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    bus.handle(commands.NoteCase("case-1", "22", "cw-1", CONSENTED))
    event.remove(engine, "before_cursor_execute", count)
    writes = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(writes) == 2, writes
    bus.handle(commands.NoteCase("case-1", "22", "cw-2", CONSENTED))  # again: nothing twice
    with engine.connect() as conn:
        assert set(conn.execute(select(consents.c.service_type).where(consents.c.case_id == "case-1")).scalars()) \
            == {str(s) for s in CONSENTED}
        assert list(conn.execute(select(cases.c.case_worker_id)).scalars()) == ["cw-2"]

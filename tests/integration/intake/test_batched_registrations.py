"""intake-api's batches of registrations (admission.Batches), on SQLite and PostgreSQL: normal registrations that queue
together are written in one transaction, each caller still gets exactly its own answer (its case, the first case of a
repeated request id, its refusal), and each registration's event carries its own call's causation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from intake.adapters.crypto import generate_key_b64
from intake.adapters.tables import cases
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain.model import Place
from intake.entrypoints.admission import Admission, Batches
from refnet_platform.bus import MessageBus
from refnet_platform.context import Causation, current_causation
from refnet_platform.engine import is_postgres, make_engine
from refnet_platform.envelope import decode
from refnet_platform.errors import PermissionDenied
from refnet_platform.migrations import migrate
from refnet_platform.tables import outbox
from tests.integration.intake.test_statements_per_case import registration


@pytest.fixture
def intake(database_url: str) -> Iterator[tuple[MessageBus, Engine, threading.RLock | None]]:
    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    writing = None if is_postgres(engine) else threading.RLock()  # as intake-api opens it
    bus = bootstrap(Settings(database_url=database_url, master_key=generate_key_b64()), engine, writing=writing)
    try:
        yield bus, engine, writing
    finally:
        engine.dispose()


def commits(engine: Engine) -> list[int]:
    seen: list[int] = []
    event.listen(engine, "commit", lambda _conn: seen.append(1))
    return seen


async def as_calls(batches: Batches, requests: list[Any]) -> list[Any]:
    """Each request as a call of its own (its own causation), all at once; what each came to."""
    async def call(n: int, command: Any) -> Any:
        current_causation.set(Causation(correlation_id=f"call-{n}", causation_id=f"call-{n}"))
        return await batches.run(command)

    return await asyncio.gather(*(call(n, c) for n, c in enumerate(requests)), return_exceptions=True)


def test_queued_registrations_are_written_together_each_with_its_own_event(
        intake: tuple[MessageBus, Engine, threading.RLock | None]) -> None:
    bus, engine, writing = intake
    batches = Batches(Admission(slots=1), engine, bus.handle, writing, most=8)
    committed = commits(engine)
    requests = [registration() for _ in range(17)]

    answers = asyncio.run(as_calls(batches, requests))

    assert [case.client_request_id for case, created in answers] == [r.client_request_id for r in requests]
    assert all(created for _, created in answers)
    assert len(committed) == 3  # 8, 8 and 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == 17
        envelopes = [decode(value) for value in conn.execute(select(outbox.c.value)).scalars()]
    by_case = {e.subject: e.correlation_id for e in envelopes if e.type.endswith("CaseRegistered")}
    assert by_case == {f"case/{case.case_id}": f"call-{n}" for n, (case, _) in enumerate(answers)}
    if writing is not None:
        assert writing.acquire(blocking=False)  # given back
        writing.release()


def test_a_batch_with_a_repeat_and_a_refusal_answers_each_as_alone(
        intake: tuple[MessageBus, Engine, threading.RLock | None]) -> None:
    bus, engine, writing = intake
    batches = Batches(Admission(slots=1), engine, bus.handle, writing, most=8)
    first = registration()
    elsewhere = replace(registration(), occurred_in=Place("42", "18100"))  # Hà Tĩnh: not the operator's province
    requests = [registration(), first, registration(), first, elsewhere, registration()]

    answers = asyncio.run(as_calls(batches, requests))

    assert isinstance(answers[4], PermissionDenied)
    (made, created), (again, created_again) = answers[1], answers[3]
    assert created and not created_again and again.case_id == made.case_id
    assert all(a[1] for n, a in enumerate(answers) if n in (0, 2, 5))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == 4
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 4


def test_a_refusal_before_any_write_leaves_the_rest_of_its_batch_as_it_is(
        intake: tuple[MessageBus, Engine, threading.RLock | None]) -> None:
    bus, engine, writing = intake
    batches = Batches(Admission(slots=1), engine, bus.handle, writing, most=8)
    committed = commits(engine)
    elsewhere = replace(registration(), occurred_in=Place("42", "18100"))  # Hà Tĩnh: not the operator's

    answers = asyncio.run(as_calls(batches, [registration(), registration(), elsewhere, registration()]))

    assert isinstance(answers[2], PermissionDenied)
    assert all(answers[n][1] for n in (0, 1, 3))
    assert len(committed) == 1  # the other three, in one transaction: not each again alone
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 3

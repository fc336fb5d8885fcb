"""intake-api on SQLite: its handler threads take turns for the one write lock on a lock of the process (asleep,
not retrying BEGIN IMMEDIATE). Every registration from many threads at once is stored; a write that fails inside
its transaction gives the turn back; reads never wait for it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.adapters.crypto import generate_key_b64
from intake.adapters.tables import cases, needs
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from refnet_platform.engine import make_engine
from refnet_platform.errors import NotFound
from refnet_platform.migrations import migrate
from refnet_platform.vocabulary import RiskLevel
from tests.integration.intake.test_statements_per_case import OPERATOR, registration


def test_writes_take_turns_on_the_process_lock_and_reads_do_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine = make_engine(url)
    migrate(engine, MIGRATIONS)
    writing = threading.Lock()
    bus = bootstrap(Settings(database_url=url, master_key=generate_key_b64()), engine, writing=writing)
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            made = list(pool.map(lambda _: bus.handle(registration())[0], range(60)))
        assert not writing.locked()
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == 60
            assert conn.execute(select(func.count()).select_from(needs)).scalar_one() == 60 * 3

        with pytest.raises(NotFound):  # fails inside its write transaction: rolled back, the turn given back
            bus.handle(commands.UpdateRisk(OPERATOR, "req-risk", "no-such-case", RiskLevel.LOW, False))
        assert not writing.locked()

        with writing:  # a write of another thread holds the turn: a read goes on regardless
            done = ThreadPoolExecutor(max_workers=1).submit(bus.handle, commands.GetCase(OPERATOR, made[0].case_id))
            assert done.result(timeout=10).case_id == made[0].case_id
    finally:
        engine.dispose()

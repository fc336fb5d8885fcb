from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from refnet_platform.engine import LOCK_WAIT_S, WriteLockBusy, make_engine, read_connection


def test_sqlite_transactions_begin_in_the_dialect_without_connection_events(tmp_path: Path) -> None:
    """An engine with a connection event (e.g. "begin") dispatches events around every statement it runs."""
    engine = make_engine(f"sqlite:///{tmp_path}/begin.db")
    try:
        assert not engine._has_events
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            assert conn.connection.driver_connection.in_transaction  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_a_reader_back_in_the_pool_leaves_the_next_connection_a_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/begin.db")
    try:
        with read_connection(engine) as reader:
            reader.execute(text("SELECT 1"))
        with engine.connect() as writer, engine.connect() as other:
            writer.execute(text("SELECT 1"))  # the write lock, taken up front
            other.execution_options(**{LOCK_WAIT_S: 0.01})
            with pytest.raises(WriteLockBusy):
                other.execute(text("SELECT 1"))
            with read_connection(engine) as reader:  # a reader neither waits for nor blocks the writer
                assert reader.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()

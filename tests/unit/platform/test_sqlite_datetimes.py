from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert, select
from sqlalchemy.dialects import sqlite

from refnet_platform.engine import make_engine

_times = Table("times", MetaData(), Column("id", Integer, primary_key=True), Column("at", DateTime(timezone=True)))

VALUES = [datetime(2026, 12, 7, 13, 21, 33, 698_001, tzinfo=UTC), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59),
          datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=7))), date(2026, 3, 4), None]


@pytest.mark.parametrize("value", VALUES)
def test_sqlite_stores_and_reads_a_time_as_sqlalchemy_does(tmp_path: Path, value: object) -> None:
    """Databases written before keep being read and compared as they were: the same text, read back alike."""
    engine = make_engine(f"sqlite:///{tmp_path}/times.db")
    try:
        _times.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(_times), {"id": 1, "at": value})
            stored = conn.exec_driver_sql("SELECT at FROM times").scalar()
            read = conn.execute(select(_times.c.at)).scalar()
    finally:
        engine.dispose()
    sqlalchemy_text = sqlite.DATETIME().bind_processor(sqlite.dialect())(value)  # type: ignore[misc]
    assert stored == sqlalchemy_text
    assert read == sqlite.DATETIME().result_processor(sqlite.dialect(), None)(sqlalchemy_text)  # type: ignore[misc]

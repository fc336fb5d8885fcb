"""A PreparedStatement stores what SQLAlchemy's own insert stores: each value in its column (the driver's
parameters in the SQL's order, positional or named) and times as the column's type writes them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Column, DateTime, Engine, Integer, MetaData, String, Table, create_engine, insert

from refnet_platform.engine import make_engine
from refnet_platform.prepared import prepared_insert

metadata = MetaData()
# Two tables alike: one written by SQLAlchemy, one by the prepared statement.
ours, theirs = (Table(name, metadata, Column("id", Integer, primary_key=True), Column("label", String(20)),
                      Column("at", DateTime(timezone=True)), Column("flag", Boolean), Column("later", DateTime))
                for name in ("ours", "theirs"))
# Listed in another order than the table's and the rows': a parameter sent in the wrong place stores a wrong row.
COLUMNS = ["later", "label", "id", "flag", "at"]
ROWS = [
    {"id": 1, "label": "one", "at": datetime(2026, 12, 7, 13, 21, 33, 698_001, tzinfo=UTC), "flag": True,
     "later": datetime(2026, 12, 8, 1, 2, 3)},
    {"id": 2, "label": "two", "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=7))),
     "flag": False, "later": None},
]


@pytest.fixture(params=["qmark", "named"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """refnet's SQLite engine (positional parameters), and SQLAlchemy's with named ones (as PostgreSQL's)."""
    url = f"sqlite:///{tmp_path}/prepared.db"
    engine = make_engine(url) if request.param == "qmark" else create_engine(url, paramstyle="named")
    assert engine.dialect.positional == (request.param == "qmark")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def stored(engine: Engine, table: Table) -> list[tuple[object, ...]]:
    with engine.connect() as conn:  # the database's own text, not read back through the types
        return list(conn.exec_driver_sql(f"SELECT id, label, at, flag, later FROM {table.name} ORDER BY id"))


def test_rows_are_stored_as_sqlalchemy_stores_them(engine: Engine) -> None:
    statement = prepared_insert(ours, COLUMNS)
    with engine.begin() as conn:
        conn.execute(insert(theirs), ROWS)
        statement.execute(conn, ROWS[0])  # one row, then again with the statement compiled already
        statement.execute(conn, [{**ROWS[1], "extra": "ignored"}])  # executemany
    assert stored(engine, ours) == stored(engine, theirs)
    assert stored(engine, ours)[0][:2] == (1, "one")
    with engine.connect() as conn:
        assert conn.execute(ours.select().order_by(ours.c.id)).all() == conn.execute(
            theirs.select().order_by(theirs.c.id)).all()


def test_a_conflict_clause_counts_the_rows_inserted(engine: Engine) -> None:
    statement = prepared_insert(ours, conflict="ON CONFLICT (id) DO NOTHING")
    with engine.begin() as conn:
        assert statement.execute(conn, [ROWS[0]]).rowcount == 1
        assert statement.execute(conn, ROWS).rowcount == 1  # the first is stored already and left as it was

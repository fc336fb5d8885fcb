"""PreparedStatement on both databases refnet runs on (PostgreSQL's driver takes named parameters, SQLite's
positional ones): rows stored as SQLAlchemy's own insert stores them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from refnet_platform.engine import make_engine
from tests.unit.platform import test_prepared as unit


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    unit.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_rows_stored_as_sqlalchemy_stores_them(engine: Engine) -> None:
    unit.test_rows_are_stored_as_sqlalchemy_stores_them(engine)


def test_conflicts_counted(engine: Engine) -> None:
    unit.test_a_conflict_clause_counts_the_rows_inserted(engine)

"""ops' integration fixtures: an ops database (SQLite or PostgreSQL) with its migrations applied."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from ops.config import MIGRATIONS, Settings
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate


@pytest.fixture
def ops_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def ops_engine(ops_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(ops_settings.database[0])
    migrate(engine, MIGRATIONS)
    try:
        yield engine
    finally:
        engine.dispose()

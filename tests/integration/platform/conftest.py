from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from refnet_platform.engine import make_engine
from refnet_platform.tables import create_platform_tables


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A fresh database with the platform's own tables (outbox, inbox, relay lease); a module needing more
    tables defines its own."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        create_platform_tables(conn)
    yield engine
    engine.dispose()

from __future__ import annotations

from sqlalchemy import Connection, Engine

from ops.adapters.repository import DeadLetterRepository, FactRepository, TraceRepository
from refnet_platform.unit_of_work import UnitOfWork


class OpsUnitOfWork(UnitOfWork):
    """ops publishes no events: its outbox stays empty; the inbox makes every consumed record count once."""

    facts: FactRepository
    traces: TraceRepository
    letters: DeadLetterRepository

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        super().__init__(engine, "ops", schema)

    def open_repositories(self, connection: Connection) -> None:
        self.facts = FactRepository(connection)
        self.traces = TraceRepository(connection)
        self.letters = DeadLetterRepository(connection)

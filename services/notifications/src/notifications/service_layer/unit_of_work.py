from __future__ import annotations

from sqlalchemy import Connection, Engine

from notifications.adapters.directory import DirectoryCache, DirectoryRepository
from notifications.adapters.proto_mapping import event_to_record
from notifications.adapters.repository import (
    CaseRepository,
    DeadLetterRepository,
    InboundSmsRepository,
    NoticeRepository,
)
from refnet_platform.unit_of_work import UnitOfWork


class NotificationsUnitOfWork(UnitOfWork):
    notices: NoticeRepository
    directory: DirectoryRepository
    cases: CaseRepository
    dead_letters: DeadLetterRepository
    inbound: InboundSmsRepository

    def __init__(self, engine: Engine, schema: str | None = None, directory: DirectoryCache | None = None) -> None:
        super().__init__(engine, "notifications", schema)
        self.directory_cache = directory or DirectoryCache()  # the process's one copy (bootstrap makes it)

    def open_repositories(self, connection: Connection) -> None:
        self.notices = NoticeRepository(connection)
        self.directory = DirectoryRepository(connection, self.directory_cache)
        self.cases = CaseRepository(connection)
        self.dead_letters = DeadLetterRepository(connection)
        self.inbound = InboundSmsRepository(connection)

    def emit(self, event: object) -> None:
        self.publish(event_to_record(event))

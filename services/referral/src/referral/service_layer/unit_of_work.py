from __future__ import annotations

from sqlalchemy import Connection, Engine

from referral.adapters.directory import DirectoryCache, DirectoryRepository
from referral.adapters.proto_mapping import event_to_record
from referral.adapters.repository import BedRepository, CaseRepository, ReferralRepository
from refnet_platform.requests import RequestLog
from refnet_platform.unit_of_work import UnitOfWork


class ReferralUnitOfWork(UnitOfWork):
    directory: DirectoryRepository
    beds: BedRepository
    cases: CaseRepository
    referrals: ReferralRepository
    requests: RequestLog

    def __init__(self, engine: Engine, schema: str | None, directory: DirectoryCache) -> None:
        super().__init__(engine, "referral", schema)
        self.directory_cache = directory  # the process's one copy (bootstrap makes it)

    def open_repositories(self, connection: Connection) -> None:
        self.directory = DirectoryRepository(connection, self.directory_cache)
        self.beds = BedRepository(connection)
        self.cases = CaseRepository(connection)
        self.referrals = ReferralRepository(connection)
        self.requests = RequestLog(connection)

    def emit(self, event: object) -> None:
        self.publish(event_to_record(event))

    def commit(self) -> None:
        # New needs, referrals and history rows are written in one statement per table, with the outbox.
        self.cases.flush()
        self.referrals.flush()
        super().commit()

from __future__ import annotations

from sqlalchemy import Connection, Engine

from referral.adapters.proto_mapping import event_to_record
from referral.adapters.repository import (
    BedRepository,
    CaseRepository,
    DirectoryRepository,
    ReferralRepository,
    RequestRepository,
)
from refnet_platform.db import UnitOfWork


class ReferralUnitOfWork(UnitOfWork):
    directory: DirectoryRepository
    beds: BedRepository
    cases: CaseRepository
    referrals: ReferralRepository
    requests: RequestRepository

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        super().__init__(engine, "referral", schema)

    def open_repositories(self, connection: Connection) -> None:
        self.directory = DirectoryRepository(connection)
        self.beds = BedRepository(connection)
        self.cases = CaseRepository(connection)
        self.referrals = ReferralRepository(connection)
        self.requests = RequestRepository(connection)

    def emit(self, event: object) -> None:
        self.publish(event_to_record(event))

from __future__ import annotations

from sqlalchemy import Connection, Engine

from intake.adapters.casework_repository import CaseWorkRepository
from intake.adapters.crypto import Vault
from intake.adapters.proto_mapping import event_to_record
from intake.adapters.repository import AuditLog, CallRepository, CaseRepository, ReferralLog
from refnet_platform.requests import RequestLog
from refnet_platform.unit_of_work import UnitOfWork


class IntakeUnitOfWork(UnitOfWork):
    cases: CaseRepository
    calls: CallRepository
    requests: RequestLog
    audit: AuditLog
    referrals: ReferralLog
    casework: CaseWorkRepository

    def __init__(self, engine: Engine, vault: Vault, schema: str | None = None) -> None:
        super().__init__(engine, "intake", schema)
        self.vault = vault

    def open_repositories(self, connection: Connection) -> None:
        self.cases = CaseRepository(connection, self.vault)
        self.calls = CallRepository(connection)
        self.requests = RequestLog(connection)
        self.audit = AuditLog(connection)
        self.referrals = ReferralLog(connection)
        self.casework = CaseWorkRepository(connection, self.vault)

    def emit(self, event: object) -> None:
        self.publish(event_to_record(event))

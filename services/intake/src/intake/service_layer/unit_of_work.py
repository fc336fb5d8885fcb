from __future__ import annotations

import threading
from typing import Self

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

    def __init__(self, engine: Engine, vault: Vault, schema: str | None = None,
                 writing: threading.RLock | None = None) -> None:
        """writing: intake-api's one lock for its write transactions on SQLite: a handler thread waits for another
        of this process on it, asleep, instead of retrying BEGIN IMMEDIATE every millisecond (the lock is SQLite's
        one writer either way; the retries only burnt CPU). Re-entrant: a batch of registrations (admission.Batches)
        holds it for its whole transaction, and each of its units of work takes it again. Other processes' writers
        (intake-worker, intake-relay) are still waited for by retrying."""
        super().__init__(engine, "intake", schema)
        self.vault = vault
        self._writing = writing
        self._holding = False

    def __enter__(self) -> Self:
        if self._writing is not None and not self._read_only:
            self._writing.acquire()
            self._holding = True
        try:
            return super().__enter__()
        except BaseException:
            self._release()
            raise

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release()

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            assert self._writing is not None
            self._writing.release()

    def open_repositories(self, connection: Connection) -> None:
        self.cases = CaseRepository(connection, self.vault)
        self.calls = CallRepository(connection)
        self.requests = RequestLog(connection)
        self.audit = AuditLog(connection)
        self.referrals = ReferralLog(connection)
        self.casework = CaseWorkRepository(connection, self.vault)

    def emit(self, event: object) -> None:
        self.publish(event_to_record(event))

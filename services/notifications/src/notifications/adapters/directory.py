"""The directory's recipients, as the worker reads them: every staff notice looks its recipient up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import Row

from notifications.adapters.repository import upsert
from notifications.adapters.tables import recipients, supervisors
from notifications.domain.commands import Recipient
from notifications.domain.messages import Channel, Language, Role
from notifications.domain.rendering import Contact, Endpoint

_ALL_RECIPIENTS = select(recipients.c.role, recipients.c.recipient_id, recipients.c.language, recipients.c.email,
                         recipients.c.phone, recipients.c.webhook_url, recipients.c.sector)


@dataclass(frozen=True)
class _Known:
    contact: Contact
    sector: str


class DirectoryCache:
    """The process's copy of the directory's recipients, shared by its units of work: every staff notice
    looks its recipient up, and the directory changes only when a process loads its file (at its start).
    The copy is read again when it is older than max_age_s (a directory loaded by another process is seen
    within that time) and at once after this process loads one."""

    def __init__(self, max_age_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._copy: dict[tuple[str, str], _Known] | None = None
        self._read_at = 0.0

    def current(self, conn: Connection) -> dict[tuple[str, str], _Known]:
        copy, now = self._copy, self.clock()
        if copy is None or now - self._read_at >= self.max_age_s:
            copy = {(r.role, r.recipient_id): _Known(_contact(r), r.sector) for r in conn.execute(_ALL_RECIPIENTS)}
            self._copy, self._read_at = copy, now
        return copy

    def forget(self) -> None:
        self._copy = None


def _contact(row: Row[Any]) -> Contact:
    endpoints = tuple(Endpoint(channel, address) for channel, address in (
        (Channel.EMAIL, row.email), (Channel.SMS, row.phone), (Channel.WEBHOOK, row.webhook_url)) if address)
    return Contact(row.recipient_id, Language.parse(row.language), endpoints)


class DirectoryRepository:
    def __init__(self, conn: Connection, cache: DirectoryCache) -> None:
        self.conn = conn
        self.cache = cache

    def replace(self, entries: Iterable[Recipient], members: Iterable[tuple[str, str]]) -> int:
        """Writes the recipients; the caller forgets the process's copy once this commits (cache.forget)."""
        self.cache.forget()
        count = 0
        for r in entries:
            upsert(self.conn, recipients, ["role", "recipient_id"], {
                "role": r.role, "recipient_id": r.recipient_id, "language": r.language, "email": r.email,
                "phone": r.phone, "webhook_url": r.webhook_url, "province_code": r.province_code, "sector": r.sector})
            count += 1
        for supervisor_id, province in members:
            upsert(self.conn, supervisors, ["supervisor_id"],
                    {"supervisor_id": supervisor_id, "province_code": province})
        return count

    def contact(self, role: Role, recipient_id: str) -> Contact | None:
        known = self.cache.current(self.conn).get((str(role), recipient_id))
        return known.contact if known else None

    def sector_of(self, provider_id: str) -> str:
        known = self.cache.current(self.conn).get((str(Role.PROVIDER), provider_id))
        return known.sector if known else ""

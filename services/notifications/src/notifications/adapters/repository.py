from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import Connection, insert, select

from notifications.adapters.tables import notices
from notifications.domain.notices import Notice


class NoticeRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, notice: Notice) -> None:
        self.conn.execute(insert(notices).values(**asdict(notice)))

    def exists(self, source_event_id: str, recipient_id: str, channel: str) -> bool:
        query = select(notices.c.notice_id).where(notices.c.source_event_id == source_event_id,
                                                  notices.c.recipient_id == recipient_id, notices.c.channel == channel)
        return self.conn.execute(query).first() is not None

    def for_recipient(self, recipient_id: str, case_id: str = "") -> list[Notice]:
        query = select(notices).where(notices.c.recipient_id == recipient_id)
        if case_id:
            query = query.where(notices.c.case_id == case_id)
        return [Notice(**dict(r)) for r in self.conn.execute(query.order_by(notices.c.created_at)).mappings()]

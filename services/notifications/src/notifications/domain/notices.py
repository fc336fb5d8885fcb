"""A notice: one message to one recipient on one channel, caused by one event. No I/O, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class Notice:
    notice_id: str
    source_event_id: str
    recipient_id: str
    channel: str
    subject: str
    body: str
    referral_id: str
    case_id: str
    province_code: str
    status: str
    created_at: datetime

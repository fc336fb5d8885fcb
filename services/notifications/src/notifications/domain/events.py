"""Delivery status events (ids and codes only: never an address or a body). No I/O, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from refnet_platform.vocabulary import DeliveryFailureReason


@dataclass(frozen=True)
class NoticeRef:
    notice_id: str
    recipient_id: str
    channel: str  # the lane: a channel, or "survivor"
    referral_id: str
    case_id: str
    province_code: str
    source_event_id: str
    kind: str
    role: str
    emergency: bool


@dataclass(frozen=True)
class NotificationSent:
    notice: NoticeRef
    attempts: int
    at: datetime


@dataclass(frozen=True)
class NotificationDelivered:
    notice: NoticeRef
    attempts: int
    at: datetime


@dataclass(frozen=True)
class NotificationFailed:
    """The operations team's alert; the same failure goes to the dead-letter topic."""

    notice: NoticeRef
    attempts: int
    at: datetime
    reason: DeliveryFailureReason
    detail: str

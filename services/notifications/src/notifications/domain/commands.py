from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NotifyReferralEvent:
    """A referral was requested or changed status: tell whoever must act or know."""

    source_event_id: str
    kind: str  # "requested" or the new status
    referral_id: str
    case_id: str
    province_code: str
    provider_id: str
    case_worker_id: str
    service_type: str
    emergency: bool
    reason: str = ""


@dataclass(frozen=True)
class ListNotices:
    recipient_id: str
    case_id: str = ""

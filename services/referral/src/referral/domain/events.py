from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from referral.domain.model import Referral, Status


@dataclass(frozen=True)
class ReferralRequested:
    referral: Referral


@dataclass(frozen=True)
class ReferralStatusChanged:
    referral: Referral
    previous: Status


@dataclass(frozen=True)
class BedRequested:
    """Asks shelter to hold a bed for a referral (a command on shelter's topic)."""

    referral: Referral
    hold_until: datetime

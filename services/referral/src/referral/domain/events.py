from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from referral.domain.model import Progress, Referral, Status
from refnet_platform.vocabulary import ReferralReason, ReleaseReason, TargetGroup


@dataclass(frozen=True)
class ReferralRequested:
    referral: Referral
    # The kind of organisation it went to, as the directory names it (police, health, social_work, womens_union,
    # ...): for the indicator reports' "by provider type". Empty when no provider was found.
    provider_sector: str = ""


@dataclass(frozen=True)
class ReferralStatusChanged:
    referral: Referral
    previous: Status


@dataclass(frozen=True)
class ReferralEscalated:
    """The province's supervisor must know: a deadline was missed, or no provider was found."""

    referral: Referral
    reason: ReferralReason  # one of vocabulary.ESCALATION_REASONS
    sla: str
    deadline: datetime | None
    rerouted: Referral | None


@dataclass(frozen=True)
class ReferralProgressReported:
    referral: Referral
    progress: Progress
    reported_at: datetime


@dataclass(frozen=True)
class BedRequested:
    """Asks shelter to hold a bed for a referral (a command on shelter's topic)."""

    referral: Referral
    hold_until: datetime
    # The kind of bed: the shelter's own group when it keeps one kind, else the survivor's.
    target_group: TargetGroup | None


@dataclass(frozen=True)
class BedReleaseRequested:
    """Gives a bed asked for or held back to the shelter (a command on shelter's topic)."""

    referral: Referral
    reason: ReleaseReason

"""Providers, referrals and routing. No I/O, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from refnet_platform.errors import FailedPrecondition
from refnet_platform.vocabulary import RiskLevel, ServiceType


class Status(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    IN_SERVICE = "in_service"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ESCALATED = "escalated"
    FAILED = "failed"


ALLOWED: dict[Status, set[Status]] = {
    Status.REQUESTED: {Status.ACCEPTED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED},
    Status.ACCEPTED: {Status.IN_SERVICE, Status.CANCELLED, Status.FAILED},
    Status.IN_SERVICE: {Status.COMPLETED, Status.FAILED, Status.CANCELLED},
    Status.EXPIRED: {Status.ESCALATED},
}


@dataclass(frozen=True)
class Provider:
    provider_id: str
    name: str
    sector: str
    service_type: ServiceType
    province_code: str
    commune_code: str
    public_contact: str
    open_24_7: bool
    shelter_id: str = ""


@dataclass
class Referral:
    referral_id: str
    case_id: str
    need_id: str
    service_type: ServiceType
    provider_id: str
    province_code: str
    status: Status
    emergency: bool
    risk_level: RiskLevel
    case_worker_id: str
    requested_at: datetime
    shelter_id: str = ""
    reason: str = ""

    def move_to(self, status: Status, reason: str = "") -> Status:
        """Changes status if the lifecycle allows it; returns the status it left."""
        if status not in ALLOWED.get(self.status, set()):
            raise FailedPrecondition(f"referral {self.referral_id} is {self.status}; it cannot become {status}")
        previous, self.status, self.reason = self.status, status, reason
        return previous


def rank_providers(providers: list[Provider], service_type: ServiceType, province_code: str,
                   commune_code: str, exclude: set[str] = frozenset()) -> list[Provider]:  # type: ignore[assignment]
    """Providers of the service, nearest first: the survivor's commune, then her province."""
    candidates = [p for p in providers if p.service_type is service_type and p.provider_id not in exclude
                  and p.province_code == province_code]

    def distance(p: Provider) -> tuple[int, bool, str]:
        return (0 if commune_code and p.commune_code == commune_code else 1, not p.open_24_7, p.provider_id)

    return sorted(candidates, key=distance)

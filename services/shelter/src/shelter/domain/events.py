from __future__ import annotations

from dataclasses import dataclass

from refnet_platform.vocabulary import BedRejectionReason, ReleaseReason
from shelter.domain.model import BedPool, Reservation


@dataclass(frozen=True)
class CapacityChanged:
    """A pool's counts after any change (also what the api's watchers are fed from)."""

    province_code: str
    commune_code: str
    pool: BedPool


@dataclass(frozen=True)
class BedReserved:
    reservation: Reservation
    free_after: int


@dataclass(frozen=True)
class BedReservationRejected:
    referral_id: str
    case_id: str
    shelter_id: str
    province_code: str
    reason: BedRejectionReason


@dataclass(frozen=True)
class BedOccupied:
    reservation: Reservation


@dataclass(frozen=True)
class BedReleased:
    reservation: Reservation
    reason: ReleaseReason


@dataclass(frozen=True)
class HoldExpired:
    reservation: Reservation

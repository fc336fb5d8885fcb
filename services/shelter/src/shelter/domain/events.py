from __future__ import annotations

from dataclasses import dataclass

from shelter.domain.model import Reservation, Shelter


@dataclass(frozen=True)
class CapacityChanged:
    shelter: Shelter


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
    reason: str

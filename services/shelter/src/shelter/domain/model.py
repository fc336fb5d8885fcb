"""Shelters, their beds and the holds placed on them. No I/O, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from refnet_platform.errors import InvalidArgument
from refnet_platform.vocabulary import TargetGroup


class ReservationStatus(StrEnum):
    HELD = "held"
    OCCUPIED = "occupied"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass
class Shelter:
    shelter_id: str
    name: str
    province_code: str
    commune_code: str
    target_group: TargetGroup
    capacity: int
    reserved: int
    occupied: int
    confirmed_at: datetime
    # Confidential: never leaves the shelter service.
    address: str = ""

    @property
    def free(self) -> int:
        return max(self.capacity - self.reserved - self.occupied, 0)


@dataclass
class Reservation:
    referral_id: str
    shelter_id: str
    case_id: str
    province_code: str
    status: ReservationStatus
    hold_until: datetime


def validate_capacity(capacity: int) -> None:
    if capacity < 0:
        raise InvalidArgument("capacity", "cannot be negative")

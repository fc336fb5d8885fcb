from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from refnet_platform.vocabulary import TargetGroup
from shelter.domain.model import Shelter


@dataclass(frozen=True)
class ReserveBed:
    referral_id: str
    case_id: str
    shelter_id: str
    province_code: str
    target_group: TargetGroup | None
    hold_until: datetime


@dataclass(frozen=True)
class UpdateAvailability:
    shelter_id: str
    capacity: int


@dataclass(frozen=True)
class ListAvailability:
    province_code: str


@dataclass(frozen=True)
class LoadShelters:
    shelters: list[Shelter]

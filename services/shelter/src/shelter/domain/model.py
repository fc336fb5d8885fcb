"""Shelters, their bed pools and the holds placed on them. No I/O, no protobuf."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from refnet_platform.errors import InvalidArgument
from refnet_platform.vocabulary import POOLS_FOR, TargetGroup

# A sanity bound on one pool, so a typo (6000 for 6) is refused rather than shown as free beds.
MAX_POOL_CAPACITY = 1000


class ReservationStatus(StrEnum):
    HELD = "held"
    OCCUPIED = "occupied"
    RELEASED = "released"
    EXPIRED = "expired"
    REJECTED = "rejected"


ACTIVE = (ReservationStatus.HELD, ReservationStatus.OCCUPIED)


class Accessibility(StrEnum):
    WHEELCHAIR = "wheelchair"
    SIGN_LANGUAGE = "sign_language"
    DISABILITY_SUPPORT = "disability_support"


class Proximity(StrEnum):
    SAME_COMMUNE = "same_commune"
    SAME_PROVINCE = "same_province"
    NEIGHBOURING_PROVINCE = "neighbouring_province"


def pools_for(group: TargetGroup | None, kept: Iterable[TargetGroup]) -> list[TargetGroup]:
    """The pools of a shelter that can take a survivor of `group` (any pool when unspecified), best first."""
    kept = list(kept)
    if group is None:
        return kept
    return [g for g in POOLS_FOR[group] if g in kept]


@dataclass(frozen=True)
class BedPool:
    """One shelter's beds for one target group. reserved + occupied never exceeds capacity."""

    shelter_id: str
    target_group: TargetGroup
    capacity: int
    reserved: int
    occupied: int
    confirmed_at: datetime
    version: int = 1

    @property
    def in_use(self) -> int:
        return self.reserved + self.occupied

    @property
    def free(self) -> int:
        return max(self.capacity - self.in_use, 0)


@dataclass(frozen=True)
class Shelter:
    shelter_id: str
    name: str
    province_code: str
    commune_code: str
    accessibility: frozenset[Accessibility] = frozenset()
    # Confidential: never on an event or in a log; in replies only to the shelter's own staff.
    address: str = ""
    pools: tuple[BedPool, ...] = field(default=())

    def pool(self, group: TargetGroup) -> BedPool | None:
        return next((p for p in self.pools if p.target_group is group), None)


class SmsReportProblem(StrEnum):
    """Why a report texted by a shelter's staff was not applied (the door then shows the right form)."""

    POOL_REQUIRED = "pool_required"
    UNKNOWN_POOL = "unknown_pool"
    TOO_MANY_BEDS = "too_many_beds"
    UNKNOWN_REFERENCE = "unknown_reference"
    NOT_HELD = "not_held"
    NOT_ARRIVED = "not_arrived"


@dataclass(frozen=True)
class StaffPhone:
    """A phone on a shelter's staff record: a text from it reports for that shelter, in its language."""

    phone: str  # normalised (refnet_platform.phone)
    shelter_id: str
    language: str = "vi"


def matches_reference(referral_id: str, reference: str) -> bool:
    """Whether a short reference (RF-1A2B3C4D, as notices name a referral: the last 8 hex digits of its id)
    names this referral. Case and the RF- prefix are optional."""
    code = reference.strip().upper().removeprefix("RF-").removeprefix("RF")
    return len(code) == 8 and referral_id.replace("-", "").upper().endswith(code)


@dataclass(frozen=True)
class Reservation:
    referral_id: str
    shelter_id: str
    case_id: str
    province_code: str
    target_group: TargetGroup | None
    status: ReservationStatus
    hold_until: datetime
    # Why it was rejected, released or expired, as its code (a BedRejectionReason's or ReleaseReason's value).
    reason: str = ""


@dataclass(frozen=True)
class Availability:
    """A bed pool as a hotline screen sees it: stale counts are flagged and offer no free beds."""

    shelter_id: str
    name: str
    province_code: str
    commune_code: str
    accessibility: frozenset[Accessibility]
    pool: BedPool
    stale: bool
    age: timedelta
    proximity: Proximity | None = None

    @property
    def free(self) -> int:
        return 0 if self.stale else self.pool.free


def availability(shelter: Shelter, pool: BedPool, now: datetime, stale_after: timedelta,
                 proximity: Proximity | None = None) -> Availability:
    age = max(now - pool.confirmed_at, timedelta(0))
    return Availability(shelter.shelter_id, shelter.name, shelter.province_code, shelter.commune_code,
                        shelter.accessibility, pool, stale=age > stale_after, age=age, proximity=proximity)


def validate_capacity(capacity: int) -> None:
    if capacity < 0:
        raise InvalidArgument("capacity", "cannot be negative")
    if capacity > MAX_POOL_CAPACITY:
        raise InvalidArgument("capacity", f"must be at most {MAX_POOL_CAPACITY} beds in one pool")


@dataclass(frozen=True)
class SmsReport:
    """What a text from a shelter's staff did: the shelter's pools after it, the reservation it moved, or why
    nothing was applied."""

    shelter_id: str
    language: str
    pools: list[Availability]
    reservation: Reservation | None = None
    problem: SmsReportProblem | None = None

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from refnet_platform.vocabulary import ReleaseReason, TargetGroup
from shelter.domain.model import Accessibility, Shelter, StaffPhone

if TYPE_CHECKING:  # the api resolves the caller (certificate or person's token); the domain only passes it on
    from refnet_platform.caller import Caller


# From referral, on shelter.bed-commands.v1.


@dataclass(frozen=True)
class ReserveBed:
    referral_id: str
    case_id: str
    shelter_id: str
    province_code: str
    target_group: TargetGroup | None
    hold_until: datetime | None  # None: the shelter's default hold


@dataclass(frozen=True)
class ReleaseBed:
    referral_id: str
    shelter_id: str
    reason: ReleaseReason | None  # None: none given (or none this build knows), taken as cancelled


# From the worker's timer.


@dataclass(frozen=True)
class ExpireHolds:
    now: datetime | None = None  # None: the clock


# From the gRPC api.


@dataclass(frozen=True)
class UpdateAvailability:
    caller: Caller
    shelter_id: str
    target_group: TargetGroup | None
    capacity: int


@dataclass(frozen=True)
class ConfirmArrival:
    caller: Caller
    referral_id: str


@dataclass(frozen=True)
class CheckOut:
    caller: Caller
    referral_id: str


@dataclass(frozen=True)
class ListReservations:
    caller: Caller
    shelter_id: str


@dataclass(frozen=True)
class GetShelter:
    caller: Caller
    shelter_id: str


@dataclass(frozen=True)
class ListAvailability:
    caller: Caller  # whom the rows are for: a shelter's commune shows only to its audience
    province_code: str
    commune_code: str = ""
    target_group: TargetGroup | None = None
    accessibility: frozenset[Accessibility] = frozenset()
    include_neighbours: bool = False
    # Add neighbouring provinces when the province has no fresh free bed (a watch's snapshot does not).
    fallback: bool = True


@dataclass(frozen=True)
class WatchAvailability:
    """Resolves what a watcher sees: the province codes and target groups its stream carries."""

    caller: Caller
    province_code: str
    commune_code: str = ""
    target_group: TargetGroup | None = None
    include_neighbours: bool = False


# From the api's start-up.


@dataclass(frozen=True)
class LoadShelters:
    shelters: list[Shelter]
    staff_phones: list[StaffPhone] = field(default_factory=list)


# From the SMS door (notifications), for a text from a phone on a shelter's staff record.


@dataclass(frozen=True)
class ReportBySms:
    """At most one report; none: only who the phone belongs to. `free_beds` maps a pool (None: the single
    pool) to its free beds now."""

    caller: Caller
    sender_phone: str
    free_beds: tuple[tuple[TargetGroup | None, int], ...] = ()
    arrived_reference: str = ""
    left_reference: str = ""

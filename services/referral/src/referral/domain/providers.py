"""The directory's providers: who each serves, when it is open, its shelter's bed pools, its duty phone. No I/O,
no protobuf."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from referral.domain.model import Survivor
from refnet_geo import VIETNAM_TZ
from refnet_platform.errors import InvalidArgument
from refnet_platform.vocabulary import POOLS_FOR, ServiceType, Sex, TargetGroup

F = TypeVar("F")  # a bed pool's figure: free beds, or (free, capacity)


class AgeGroup(StrEnum):
    ANY = "any"
    ADULT = "adult"
    CHILD = "child"


@dataclass(frozen=True)
class OpeningHours:
    """Open on these ISO weekdays (1 = Monday) from opens to closes, in minutes after midnight,
    Vietnam time. closes <= opens runs past midnight into the next day."""

    weekdays: frozenset[int]
    opens: int
    closes: int

    @classmethod
    def parse(cls, weekdays: list[int] | frozenset[int], opens_at: str, closes_at: str) -> OpeningHours:
        days = frozenset(int(d) for d in weekdays)
        if not days or not days <= set(range(1, 8)):
            raise InvalidArgument("weekdays", "give ISO weekdays 1 (Monday) to 7 (Sunday)")
        return cls(days, _minutes(opens_at, "opens_at"), _minutes(closes_at, "closes_at"))

    @property
    def opens_at(self) -> str:
        return _hhmm(self.opens)

    @property
    def closes_at(self) -> str:
        return _hhmm(self.closes)

    def is_open(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.isoweekday()
        if self.opens < self.closes:
            return day in self.weekdays and self.opens <= minute < self.closes
        yesterday = 7 if day == 1 else day - 1
        return (day in self.weekdays and minute >= self.opens) or (yesterday in self.weekdays and minute < self.closes)

    def next_opening(self, local: datetime) -> datetime:
        """The next time (at or after `local`) these hours open."""
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for offset in range(8):
            start = midnight + timedelta(days=offset, minutes=self.opens)
            if start.isoweekday() in self.weekdays and start >= local:
                return start
        raise AssertionError("weekdays is never empty")


def _minutes(value: str, field_name: str) -> int:
    hours, sep, minutes = value.partition(":")
    if not sep or not hours.isdigit() or not minutes[:2].isdigit():
        raise InvalidArgument(field_name, f"{value!r} is not HH:MM")
    total = int(hours) * 60 + int(minutes[:2])
    if not 0 <= total <= 24 * 60:
        raise InvalidArgument(field_name, f"{value!r} is not a time of day")
    return total


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class DutyPhone:
    """A provider's duty phone (its directory duty contact): a text from it answers for that provider."""

    phone: str  # normalised (refnet_platform.phone)
    provider_id: str
    language: str = "vi"


@dataclass(frozen=True)
class Provider:
    """A service delivered by an organization (an HSDS `service`); its id is the agency's identity."""

    provider_id: str
    name: str
    sector: str
    service_type: ServiceType
    province_code: str
    commune_code: str
    public_contact: str
    open_24_7: bool
    shelter_id: str = ""
    organization_id: str = ""
    organization_name: str = ""
    description: str = ""
    age_group: AgeGroup = AgeGroup.ANY
    sexes: frozenset[Sex] = frozenset()
    target_groups: frozenset[TargetGroup] = frozenset()
    # Province or commune codes served beyond the provider's own place.
    service_areas: frozenset[str] = frozenset()
    opening_hours: tuple[OpeningHours, ...] = ()
    # Shelters: the beds the directory lists (live figures come from shelter's events).
    beds_capacity: int | None = None
    active: bool = True
    # Accessibility codes it offers (vocabulary.ACCESSIBILITY_CODES), e.g. step_free, accessible_toilet.
    accessibility: frozenset[str] = frozenset()

    @property
    def is_shelter(self) -> bool:
        return bool(self.shelter_id)

    def eligible(self, survivor: Survivor) -> bool:
        if self.is_shelter and not survivor.accessibility_needs <= self.accessibility:
            return False  # a bed she cannot reach or use is no bed for her
        if self.age_group is AgeGroup.ADULT and survivor.is_child:
            return False
        if self.age_group is AgeGroup.CHILD and not survivor.is_child:
            return False
        if self.sexes and survivor.sex is not None and survivor.sex not in self.sexes:
            return False
        group = survivor.target_group
        if self.target_groups and group is not None:
            return group in self.target_groups or (
                group in (TargetGroup.WOMEN, TargetGroup.CHILDREN)
                and TargetGroup.WOMEN_WITH_CHILDREN in self.target_groups)
        return True

    def bed_group(self, survivor: Survivor) -> TargetGroup | None:
        """The pool a bed is asked for (BedRequested): the shelter's own group when it keeps beds for one
        only (a child with her mother goes to a women_with_children bed), else the survivor's; None: any."""
        if len(self.target_groups) == 1:
            return next(iter(self.target_groups))
        return survivor.target_group

    def bed_pools(self, survivor: Survivor) -> tuple[TargetGroup, ...]:
        """The shelter's pools that could take her bed request, as shelter tries them."""
        group = self.bed_group(survivor)
        return POOLS_FOR[group] if group else tuple(TargetGroup)

    def free_beds(self, survivor: Survivor, free: Mapping[tuple[str, TargetGroup], int]) -> int | None:
        """Free beds in the pools she could be placed in (`free`: by shelter id and pool); None when no
        figure of those pools is known."""
        known = self.known_pools(self.bed_pools(survivor), free)
        return sum(known) if known else None

    def known_pools(self, groups: Iterable[TargetGroup], figures: Mapping[tuple[str, TargetGroup], F]) -> list[F]:
        """This shelter's figures for those of `groups` that have one (`figures`: by shelter id and pool)."""
        return [figures[key] for g in groups if (key := (self.shelter_id, g)) in figures]

    def is_open(self, when: datetime) -> bool | None:
        """True or False when the hours are known; None when the directory does not say."""
        if self.open_24_7:
            return True
        if not self.opening_hours:
            return None
        local = when.astimezone(VIETNAM_TZ)
        return any(h.is_open(local) for h in self.opening_hours)

    def next_opening(self, when: datetime) -> datetime | None:
        """When the provider is next open (`when` itself if open now); None if the hours are unknown."""
        open_now = self.is_open(when)
        if open_now is None:
            return None
        if open_now:
            return when
        local = when.astimezone(VIETNAM_TZ)
        return min(h.next_opening(local) for h in self.opening_hours)

    def covered_by(self, sectors: frozenset[str]) -> bool:
        """Whether a consent limited to these recipient sectors (empty: any) lets this provider receive it."""
        return not sectors or self.sector in sectors


def shelter_eligibility(target_group: TargetGroup) -> tuple[AgeGroup, frozenset[Sex], frozenset[TargetGroup]]:
    """Who a shelter keeping beds for `target_group` takes in."""
    age = {TargetGroup.CHILDREN: AgeGroup.CHILD, TargetGroup.WOMEN: AgeGroup.ADULT,
           TargetGroup.MEN: AgeGroup.ADULT}.get(target_group, AgeGroup.ANY)
    return age, frozenset(), frozenset({target_group})


@dataclass(frozen=True)
class DirectoryEntry:
    """A provider as the directory shows it: with the shelter's live beds and whether it is open."""

    provider: Provider
    open_now: bool
    beds_free: int | None = None
    beds_capacity: int | None = None
    area_rank: int | None = None

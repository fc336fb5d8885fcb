"""The types: administrative levels, units with effective dates, the one error."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

#: The day the 2025 map took effect: 34 provinces, no districts (Resolution 202/2025/QH15,
#: Decision 19/2025/QĐ-TTg). The previous map is valid up to and including the day before.
REFORM_DATE = date(2025, 7, 1)

#: Vietnam's time zone (UTC+7, no daylight saving). Legal dates are Vietnamese dates.
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")

#: The last day of the 63-province map (inclusive end of every pre-2025 unit).
LEGACY_VALID_TO = REFORM_DATE - timedelta(days=1)


class Level(enum.StrEnum):
    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"


@dataclass(frozen=True, slots=True)
class Unit:
    """One administrative unit as it was (or is) on the days it is valid.

    ``code`` is the official code (GSO / Decision 19/2025/QĐ-TTg), zero-padded: 2 digits for a
    province, 3 for a district, 5 for a commune (xã, phường, đặc khu, thị trấn). The same code can
    name different units in different periods: a unit is identified by code *and* validity.
    ``parent_code`` is the province for a 2025 commune, the district for an older commune, the
    province for a district, ``None`` for a province. ``valid_from`` and ``valid_to`` are inclusive;
    ``None`` means open (``valid_from`` is ``None`` for pre-2025 units: their start is not recorded).
    ``kind`` is the Vietnamese type: tỉnh, thành phố trung ương, quận, huyện, thị xã, thành phố, xã,
    phường, thị trấn, đặc khu.
    """

    code: str
    name: str
    level: Level
    parent_code: str | None
    valid_from: date | None
    valid_to: date | None
    kind: str

    def valid_on(self, on: date) -> bool:
        return (self.valid_from is None or self.valid_from <= on) and (self.valid_to is None or on <= self.valid_to)

    @property
    def is_current(self) -> bool:
        """True for a unit of the map in force now (no end date)."""
        return self.valid_to is None


class GeoError(ValueError):
    """A code or name that does not fit the map. ``field`` names the offending input.

    The message reads ``"<field>: <problem>"`` like refnet_platform's InvalidArgument, so a service
    can map it with ``InvalidArgument(err.field, err.problem)``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def as_vietnam_date(on: date | datetime | None) -> date:
    """The Vietnamese calendar day of ``on``; today in Vietnam for ``None``.

    An aware datetime is converted to UTC+7 first (a case logged at 2025-06-30T20:00Z happened on
    1 July in Vietnam); a naive one is taken as already local.
    """
    if on is None:
        return datetime.now(VIETNAM_TZ).date()
    if isinstance(on, datetime):
        if on.tzinfo is not None:
            on = on.astimezone(VIETNAM_TZ)
        return on.date()
    return on

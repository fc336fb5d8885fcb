"""refnet's geography: Vietnam's administrative units, before and after 1 July 2025.

From 2025-07-01 Vietnam has 34 provinces and 3,321 communes (xã, phường, đặc khu) and no district
level (codes of Decision 19/2025/QĐ-TTg, from the ``vietnam-provinces`` package). Records made
before then name one of 63 provinces, 696 districts and 10,035 communes; every old unit maps to its
successor. Units are keyed by official code and carry the dates they are valid.

Quick reference::

    import refnet_geo as geo

    geo.province_by_name("Quảng Ninh").code             # "22"
    geo.resolve_province("02").name                     # "Tuyên Quang" (old Hà Giang)
    geo.resolve_commune("00001", on=date(2025, 6, 1))   # old Phúc Xá → its 2025 commune
    geo.resolve_location("01", "00004", on=today)       # intake: validate + resolve, GeoError(field)
    geo.neighbours("22")                                # ("20", "24", "31")
    geo.distance_rank("22", None, "31", None)           # 2: neighbouring province

Nothing is loaded at import; each table loads on first use and is cached for the process
(``preload()`` loads them all, for a service's startup).
"""

from ._api import (
    NEIGHBOURING_PROVINCE,
    SAME_COMMUNE,
    SAME_PROVINCE,
    Location,
    children,
    commune_in_province,
    commune_successors,
    communes,
    communes_by_name,
    distance_rank,
    districts,
    neighbours,
    normalize_code,
    preload,
    province_by_name,
    provinces,
    resolve_commune,
    resolve_district,
    resolve_location,
    resolve_province,
    unit,
)
from ._model import LEGACY_VALID_TO, REFORM_DATE, VIETNAM_TZ, GeoError, Level, Unit

__all__ = [
    "LEGACY_VALID_TO",
    "NEIGHBOURING_PROVINCE",
    "REFORM_DATE",
    "SAME_COMMUNE",
    "SAME_PROVINCE",
    "VIETNAM_TZ",
    "GeoError",
    "Level",
    "Location",
    "Unit",
    "children",
    "commune_in_province",
    "commune_successors",
    "communes",
    "communes_by_name",
    "distance_rank",
    "districts",
    "neighbours",
    "normalize_code",
    "preload",
    "province_by_name",
    "provinces",
    "resolve_commune",
    "resolve_district",
    "resolve_location",
    "resolve_province",
    "unit",
]

"""Lookups, resolution to the 2025 map, validation, neighbours and distance ranks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from . import _data
from ._model import REFORM_DATE, GeoError, Level, Unit, as_vietnam_date
from ._text import commune_exact_key, commune_key, province_key

_WIDTH = {Level.PROVINCE: 2, Level.DISTRICT: 3, Level.COMMUNE: 5}

#: distance_rank results, best first.
SAME_COMMUNE = 0
SAME_PROVINCE = 1
NEIGHBOURING_PROVINCE = 2


def normalize_code(code: str | int, level: Level, field: str) -> str:
    """The zero-padded official code: ``"1"``, ``1`` and ``"01"`` are province ``"01"``."""
    width = _WIDTH[level]
    text = str(code).strip() if isinstance(code, int) else code.strip()
    if not text.isascii() or not text.isdigit() or len(text) > width:
        raise GeoError(field, f"{code!r} is not a {level} code (up to {width} digits)")
    return text.zfill(width)


# ---------------------------------------------------------------------------------------------
# The tree on a given day


def provinces(on: date | datetime | None = None) -> tuple[Unit, ...]:
    """The provinces of the map valid on ``on`` (default today): 34 from 2025-07-01, 63 before."""
    if as_vietnam_date(on) >= REFORM_DATE:
        return tuple(_data.current_map().provinces.values())
    return tuple(_data.legacy_provinces().provinces.values())


def districts(province_code: str | int | None = None) -> tuple[Unit, ...]:
    """The 696 districts of the map before 2025-07-01 (there are none after), or one old province's."""
    legacy = _data.legacy_map()
    if province_code is None:
        return tuple(legacy.districts.values())
    code = normalize_code(province_code, Level.PROVINCE, "province_code")
    if code not in _data.legacy_provinces().provinces:
        raise GeoError("province_code", f"unknown province code {code!r} in the map before {REFORM_DATE}")
    return legacy.districts_by_province.get(code, ())


def communes(province_code: str | int | None = None, on: date | datetime | None = None) -> tuple[Unit, ...]:
    """The communes (xã, phường, đặc khu, thị trấn) valid on ``on`` (default today), all or one province's.

    On or after 2025-07-01: the 3,321 communes; a province code is a 2025 one (an old code is
    resolved to its successor). Before: the 10,035 communes of the old map, under an old province code.
    """
    day = as_vietnam_date(on)
    if day >= REFORM_DATE:
        current = _data.current_map()
        if province_code is None:
            return tuple(current.communes.values())
        province = resolve_province(province_code, on=day)
        return current.communes_by_province.get(province.code, ())
    legacy = _data.legacy_map()
    if province_code is None:
        return tuple(legacy.communes.values())
    return tuple(c for d in districts(province_code) for c in legacy.communes_by_district.get(d.code, ()))


def children(unit: Unit) -> tuple[Unit, ...]:
    """The units directly below ``unit`` in its own map: a 2025 province's communes, an old province's
    districts, an old district's communes; nothing below a commune."""
    if unit.level is Level.COMMUNE:
        return ()
    if unit.is_current:
        return _data.current_map().communes_by_province.get(unit.code, ())
    legacy = _data.legacy_map()
    if unit.level is Level.PROVINCE:
        return legacy.districts_by_province.get(unit.code, ())
    return legacy.communes_by_district.get(unit.code, ())


def unit(level: Level | str, code: str | int, on: date | datetime | None = None) -> Unit:
    """The unit that ``code`` named on ``on`` (default today), exactly: no successor is followed.

    Raises GeoError when no such unit was valid that day (a district on or after 2025-07-01 included).
    """
    lvl = Level(level)
    field = f"{lvl}_code"
    normalized = normalize_code(code, lvl, field)
    day = as_vietnam_date(on)
    if day >= REFORM_DATE:
        if lvl is Level.DISTRICT:
            raise GeoError(field, _NO_DISTRICTS)
        current = _data.current_map()
        table = current.provinces if lvl is Level.PROVINCE else current.communes
    elif lvl is Level.PROVINCE:
        table = _data.legacy_provinces().provinces
    else:
        legacy = _data.legacy_map()
        table = legacy.districts if lvl is Level.DISTRICT else legacy.communes
    found = table.get(normalized)
    if found is None:
        raise GeoError(field, f"unknown {lvl} code {normalized!r} on {day.isoformat()}")
    return found


# ---------------------------------------------------------------------------------------------
# Resolution to the 2025 map

_NO_DISTRICTS = (
    f"district is not used after {REFORM_DATE.isoformat()}: Vietnam has had no district level since then;"
    " give the commune (xã/phường) and province instead"
)


def resolve_province(code: str | int, on: date | datetime | None = None, *, field: str = "province_code") -> Unit:
    """The 2025 province for a province code as recorded on ``on`` (default today).

    An old province code maps to the province it was merged into (old Hà Giang "02" → Tuyên Quang "08",
    old Bình Dương "74" → Hồ Chí Minh City "79"). Every 2025 province kept the code of one of the
    provinces it was formed from, and no province was split, so the answer does not depend on the
    date; ``on`` is accepted for symmetry with :func:`resolve_commune`. Unknown codes raise GeoError
    naming ``field``.
    """
    normalized = normalize_code(code, Level.PROVINCE, field)
    current = _data.current_map()
    day = as_vietnam_date(on)
    if day >= REFORM_DATE and normalized in current.provinces:
        return current.provinces[normalized]
    successor = _data.legacy_provinces().successor.get(normalized)
    if successor is not None:
        return current.provinces[successor]
    if normalized in current.provinces:
        return current.provinces[normalized]
    raise GeoError(field, f"unknown province code {normalized!r}")


def resolve_commune(code: str | int, on: date | datetime | None = None, *, field: str = "commune_code") -> Unit:
    """The 2025 commune for a commune code as recorded on ``on`` (default today).

    * On or after 2025-07-01 a 2025 code means itself. A code that is only an old one (a record
      still using the old list) is read as the old commune and mapped as below.
    * Before 2025-07-01 a code means the old commune of that code, mapped to its successor: the
      commune it was merged into or, when it was divided between several, the default one (the one
      the official conversion tables name first; see :func:`commune_successors` for all of them).
      A 2025-only code (the five đặc khu formed from island districts) means itself.
    Unknown codes raise GeoError naming ``field``.
    """
    return _resolve_commune(code, as_vietnam_date(on), field)[0]


def _resolve_commune(code: str | int, day: date, field: str) -> tuple[Unit, bool]:
    """The 2025 commune, and whether it is one of several successors of a divided old commune."""
    normalized = normalize_code(code, Level.COMMUNE, field)
    current = _data.current_map()
    if day >= REFORM_DATE and normalized in current.communes:
        return current.communes[normalized], False
    successors = _data.legacy_map().commune_successors.get(normalized)
    if successors is not None:
        return current.communes[successors[0]], len(successors) > 1
    if normalized in current.communes:
        return current.communes[normalized], False
    raise GeoError(field, f"unknown commune code {normalized!r}")


def commune_successors(code: str | int, *, field: str = "commune_code") -> tuple[Unit, ...]:
    """The 2025 commune(s) an old commune went into, the default first (one unless it was divided)."""
    normalized = normalize_code(code, Level.COMMUNE, field)
    successors = _data.legacy_map().commune_successors.get(normalized)
    if successors is None:
        raise GeoError(field, f"unknown commune code {normalized!r} in the map before {REFORM_DATE}")
    current = _data.current_map()
    return tuple(current.communes[s] for s in successors)


def resolve_district(code: str | int, on: date | datetime | None = None, *, field: str = "district_code") -> Unit:
    """The 2025 province an old district lies in, for a record dated before 2025-07-01.

    On or after 2025-07-01 any district raises GeoError ("district is not used after 2025-07-01...");
    an unknown district code raises GeoError too, both naming ``field``.
    """
    day = as_vietnam_date(on)
    if day >= REFORM_DATE:
        raise GeoError(field, _NO_DISTRICTS)
    normalized = normalize_code(code, Level.DISTRICT, field)
    district = _data.legacy_map().districts.get(normalized)
    if district is None:
        raise GeoError(field, f"unknown district code {normalized!r}")
    assert district.parent_code is not None
    return resolve_province(district.parent_code, on=day)


@dataclass(frozen=True, slots=True)
class Location:
    """Where something is, on the 2025 map, resolved from what a record gave.

    ``approximate`` is True when the record named an old commune that was divided between several
    2025 communes and ``commune`` is the default one of them.
    """

    province: Unit
    commune: Unit | None
    approximate: bool = False


def resolve_location(
    province_code: str | int,
    commune_code: str | int | None = None,
    district_code: str | int | None = None,
    *,
    on: date | datetime | None = None,
    fields: tuple[str, str, str] = ("province_code", "commune_code", "district_code"),
) -> Location:
    """Validate a recorded place and resolve it to the 2025 map. For intake.

    ``on`` is the day the codes were recorded (default today): it decides which list they belong to.
    Checks, each failure a GeoError naming the field (``fields`` renames them, e.g. to a proto path):
    the codes are known; a district is given only before 2025-07-01; the district lies in the
    province; the commune lies in the district (when given) and in the province. Empty strings
    count as not given.
    """
    province_field, commune_field, district_field = fields
    day = as_vietnam_date(on)
    province = resolve_province(province_code, on=day, field=province_field)
    province_norm = normalize_code(province_code, Level.PROVINCE, province_field)
    legacy = _data.legacy_map() if day < REFORM_DATE else None

    district: Unit | None = None
    if _given(district_code):
        assert district_code is not None
        if legacy is None:
            raise GeoError(district_field, _NO_DISTRICTS)
        district_norm = normalize_code(district_code, Level.DISTRICT, district_field)
        district = legacy.districts.get(district_norm)
        if district is None:
            raise GeoError(district_field, f"unknown district code {district_norm!r}")
        if district.parent_code != province_norm:
            raise GeoError(
                district_field, f"district {district.code} ({district.name}) is not in province {province_norm}"
            )

    if not _given(commune_code):
        return Location(province=province, commune=None)
    assert commune_code is not None
    commune, approximate = _resolve_commune(commune_code, day, commune_field)
    commune_norm = normalize_code(commune_code, Level.COMMUNE, commune_field)
    if district is not None:
        old = legacy.communes.get(commune_norm) if legacy is not None else None
        if old is None or old.parent_code != district.code:
            raise GeoError(
                commune_field, f"commune {commune_norm} is not in district {district.code} ({district.name})"
            )
    if not _in_province(commune_norm, commune, province_norm, province, day):
        raise GeoError(commune_field, f"commune {commune_norm} is not in province {province_norm}")
    return Location(province=province, commune=commune, approximate=approximate)


def _given(code: str | int | None) -> bool:
    return code is not None and str(code).strip() != ""


def _in_province(commune_norm: str, commune: Unit, province_norm: str, province: Unit, day: date) -> bool:
    """Before 2025-07-01 an old commune is checked against the old province code as given; otherwise
    (2025 codes, or old codes recorded after the reform) the 2025 commune against the 2025 province."""
    if day < REFORM_DATE:
        legacy = _data.legacy_map()
        old = legacy.communes.get(commune_norm)
        if old is not None and old.parent_code is not None:
            return legacy.districts[old.parent_code].parent_code == province_norm
    return commune.parent_code == province.code


def commune_in_province(commune_code: str | int, province_code: str | int, on: date | datetime | None = None) -> bool:
    """Whether the commune lies in the province, both codes as recorded on ``on`` (default today).

    Before 2025-07-01 an old commune is checked against the old province (old Bắc Giang's communes
    are not in old Bắc Ninh, though both provinces became Bắc Ninh). Unknown codes raise GeoError.
    """
    day = as_vietnam_date(on)
    province = resolve_province(province_code, on=day)
    commune = _resolve_commune(commune_code, day, "commune_code")[0]
    return _in_province(
        normalize_code(commune_code, Level.COMMUNE, "commune_code"),
        commune,
        normalize_code(province_code, Level.PROVINCE, "province_code"),
        province,
        day,
    )


# ---------------------------------------------------------------------------------------------
# Neighbours and distance


def neighbours(province_code: str | int) -> tuple[str, ...]:
    """Codes of the 2025 provinces sharing a land border with this one (an old code is resolved first)."""
    province = resolve_province(province_code)
    return _data.neighbour_table()[province.code]


def distance_rank(
    survivor_province: str | int,
    survivor_commune: str | int | None,
    provider_province: str | int,
    provider_commune: str | int | None,
) -> int | None:
    """How near a provider is to a survivor, for routing: lower is nearer.

    0 (SAME_COMMUNE) both communes given and equal; 1 (SAME_PROVINCE); 2 (NEIGHBOURING_PROVINCE);
    ``None`` farther. Codes are read on today's map (old codes resolved to their successors).
    A provider that serves a whole province passes ``provider_commune=None``.
    """
    survivor = resolve_province(survivor_province, field="survivor_province")
    provider = resolve_province(provider_province, field="provider_province")
    if survivor_commune is not None and provider_commune is not None:
        a = resolve_commune(survivor_commune, field="survivor_commune")
        b = resolve_commune(provider_commune, field="provider_commune")
        if a.code == b.code:
            return SAME_COMMUNE
    if survivor.code == provider.code:
        return SAME_PROVINCE
    if provider.code in _data.neighbour_table()[survivor.code]:
        return NEIGHBOURING_PROVINCE
    return None


# ---------------------------------------------------------------------------------------------
# Names


def province_by_name(name: str) -> Unit:
    """The 2025 province with this name, ignoring case, diacritics and "Tỉnh"/"Thành phố"/"TP".

    ``"Quảng Ninh"``, ``"quang ninh"``, ``"TP.HCM"``, ``"Ho Chi Minh City"``, ``"Hà Nội"``. An old
    province's name gives the province it was merged into (``"Bình Dương"`` → Hồ Chí Minh City).
    """
    key = province_key(name)
    code = _data.province_names().get(key)
    if code is None:
        raise GeoError("province_name", f"unknown province name {name!r}")
    return _data.current_map().provinces[code]


def communes_by_name(name: str, province_code: str | int | None = None) -> tuple[Unit, ...]:
    """2025 communes with this name (with or without "Xã"/"Phường"/"Đặc khu"), optionally in one province.

    Exact spelling (case aside) wins: ``"Văn Lang"`` does not also return ``"Văn Lăng"``; without
    diacritics (``"van lang"``) both come back. May return several, or none.
    """
    province = resolve_province(province_code) if province_code is not None else None

    def within(found: tuple[Unit, ...]) -> tuple[Unit, ...]:
        return found if province is None else tuple(c for c in found if c.parent_code == province.code)

    names = _data.commune_names()
    exact = within(names.by_exact_key.get(commune_exact_key(name), ()))
    if exact:
        return exact
    return within(names.by_key.get(commune_key(name), ()))


def preload() -> None:
    """Load every table now (a service's startup), so no request pays for it."""
    _data.current_map()
    _data.commune_names()
    _data.legacy_provinces()
    _data.legacy_map()
    _data.neighbour_table()
    _data.province_names()

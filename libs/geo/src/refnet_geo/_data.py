"""Loading the maps: lazily, once per process, thread-safe.

Three independent caches, so a lookup pays only for what it touches:

* the 2025 map (34 provinces, 3,321 communes) from the ``vietnam-provinces`` package's JSON, with
  the official codes of the 123 communes its 2025.10.1 release numbers after the draft decision
  (``data/code_corrections_2025.tsv``);
* the map before 2025-07-01 (63 provinces, 696 districts, 10,035 communes) and each old unit's
  successors, from ``data/legacy_units.tsv``;
* the neighbouring provinces of the 2025 map, from ``data/neighbours_2025.tsv``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ._model import LEGACY_VALID_TO, REFORM_DATE, Level, Unit
from ._text import commune_exact_key, commune_key, province_key

T = TypeVar("T")

_lock = threading.RLock()
_loaded: set[str] = set()


def _once(load: Callable[[], T]) -> Callable[[], T]:
    """Run ``load`` on first call only; every later call returns its result."""
    box: list[T] = []

    @functools.wraps(load)
    def get() -> T:
        if not box:
            with _lock:
                if not box:
                    box.append(load())
                    _loaded.add(load.__name__)
        return box[0]

    return get


def loaded_tables() -> frozenset[str]:
    """Names of the tables loaded so far in this process (for tests and diagnostics)."""
    return frozenset(_loaded)


@dataclass(frozen=True, slots=True)
class CurrentMap:
    provinces: dict[str, Unit]
    communes: dict[str, Unit]
    communes_by_province: dict[str, tuple[Unit, ...]]


@dataclass(frozen=True, slots=True)
class CommuneNames:
    # commune_key / commune_exact_key → 2025 communes
    by_key: dict[str, tuple[Unit, ...]]
    by_exact_key: dict[str, tuple[Unit, ...]]


@dataclass(frozen=True, slots=True)
class LegacyProvinces:
    provinces: dict[str, Unit]
    # old province code → 2025 province code
    successor: dict[str, str]


@dataclass(frozen=True, slots=True)
class LegacyMap:
    districts: dict[str, Unit]
    communes: dict[str, Unit]
    districts_by_province: dict[str, tuple[Unit, ...]]
    communes_by_district: dict[str, tuple[Unit, ...]]
    # old commune code → 2025 commune codes, default first
    commune_successors: dict[str, tuple[str, ...]]


def _vietnam_provinces_json() -> bytes:
    # vietnam_provinces.NESTED_DIVISIONS_JSON_PATH is <package>/data/nested-divisions.json. Importing
    # the package builds two enums with 3,355 members (~45 ms), so find the file without importing it.
    spec = importlib.util.find_spec("vietnam_provinces")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / "data" / "nested-divisions.json"
            if path.is_file():
                return path.read_bytes()
    import vietnam_provinces

    return Path(vietnam_provinces.NESTED_DIVISIONS_JSON_PATH).read_bytes()


def _group(units: list[Unit], key: Callable[[Unit], str]) -> dict[str, tuple[Unit, ...]]:
    groups: dict[str, list[Unit]] = {}
    for unit in units:
        groups.setdefault(key(unit), []).append(unit)
    return {k: tuple(v) for k, v in groups.items()}


def _clean(name: object) -> str:
    return " ".join(str(name).split())  # vietnam-provinces 2025.10.1 has a few doubled spaces


def _code_corrections() -> dict[tuple[str, str], tuple[str, str]]:
    """(province code, code in vietnam-provinces) → (name key, official code); see the data file's header."""
    return {
        (pcode, vp_code): (commune_key(name), official)
        for pcode, name, vp_code, official in _data_lines("code_corrections_2025.tsv")
    }


@_once
def current_map() -> CurrentMap:
    """The map in force from 2025-07-01: vietnam-provinces' units under their official codes."""
    return build_current_map(json.loads(_vietnam_provinces_json()), _code_corrections())


def build_current_map(nested: list[dict[str, Any]], corrections: dict[tuple[str, str], tuple[str, str]]) -> CurrentMap:
    """The 2025 map from vietnam-provinces' nested JSON, with code corrections applied.

    A correction (province, code) → (name key, official code) applies only to the commune that has
    that code *and* that name, so data already under official codes passes through unchanged.
    """
    provinces: dict[str, Unit] = {}
    by_province: dict[str, tuple[Unit, ...]] = {}
    province_level, commune_level = Level.PROVINCE, Level.COMMUNE
    for province in sorted(nested, key=lambda p: int(p["code"])):
        pcode = f"{int(province['code']):02d}"
        provinces[pcode] = Unit(
            pcode, _clean(province["name"]), province_level, None, REFORM_DATE, None, str(province["division_type"])
        )
        units: list[Unit] = []
        for ward in province["wards"]:
            code, name = f"{int(ward['code']):05d}", _clean(ward["name"])
            correction = corrections.get((pcode, code))
            if correction is not None and correction[0] == commune_key(name):
                code = correction[1]
            units.append(Unit(code, name, commune_level, pcode, REFORM_DATE, None, str(ward["division_type"])))
        by_province[pcode] = tuple(sorted(units, key=lambda u: u.code))
    communes = {c.code: c for group in by_province.values() for c in group}
    if len(communes) != sum(len(group) for group in by_province.values()):
        raise RuntimeError("refnet_geo: two 2025 communes share a code after corrections; regenerate the data")
    return CurrentMap(provinces=provinces, communes=dict(sorted(communes.items())), communes_by_province=by_province)


@_once
def commune_names() -> CommuneNames:
    """Name indexes of the 2025 communes, for communes_by_name."""
    communes = list(current_map().communes.values())
    return CommuneNames(
        by_key=_group(communes, lambda c: commune_key(c.name)),
        by_exact_key=_group(communes, lambda c: commune_exact_key(c.name)),
    )


_DATA_DIR = Path(__file__).resolve().parent / "data"


def _data_lines(name: str) -> Iterator[list[str]]:
    """The tab-separated fields of each line of a data file, comments and blank lines skipped."""
    with (_DATA_DIR / name).open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip() and not line.startswith("#"):
                yield line.rstrip("\n").split("\t")


@_once
def legacy_provinces() -> LegacyProvinces:
    """The 63 provinces valid until 2025-06-30, with the 2025 province each went into."""
    provinces: dict[str, Unit] = {}
    successor: dict[str, str] = {}
    for level, code, name, kind, _parent, succ in _data_lines("legacy_units.tsv"):
        if level != "province":
            break  # the file lists provinces first
        provinces[code] = Unit(code, name, Level.PROVINCE, None, None, LEGACY_VALID_TO, kind)
        successor[code] = succ
    return LegacyProvinces(provinces=provinces, successor=successor)


@_once
def legacy_map() -> LegacyMap:
    """The districts and communes valid until 2025-06-30, with the communes' successors."""
    districts: dict[str, Unit] = {}
    communes: dict[str, Unit] = {}
    commune_successors: dict[str, tuple[str, ...]] = {}
    district_level, commune_level = Level.DISTRICT, Level.COMMUNE
    for level, code, name, kind, parent, successors in _data_lines("legacy_units.tsv"):
        if level == "commune":
            communes[code] = Unit(code, name, commune_level, parent, None, LEGACY_VALID_TO, kind)
            commune_successors[code] = tuple(successors.split(";"))
        elif level == "district":
            districts[code] = Unit(code, name, district_level, parent, None, LEGACY_VALID_TO, kind)
    return LegacyMap(
        districts=districts,
        communes=communes,
        districts_by_province=_group(list(districts.values()), lambda d: d.parent_code or ""),
        communes_by_district=_group(list(communes.values()), lambda c: c.parent_code or ""),
        commune_successors=commune_successors,
    )


@_once
def neighbour_table() -> dict[str, tuple[str, ...]]:
    """2025 province code → codes of the provinces it shares a land border with."""
    return {code: tuple(others.split()) for code, _name, others in _data_lines("neighbours_2025.tsv")}


@_once
def province_names() -> dict[str, str]:
    """Name key (see _text.province_key) → 2025 province code, old names mapped to their successor."""
    index: dict[str, str] = {}
    legacy = legacy_provinces()
    for code, unit in legacy.provinces.items():
        index[province_key(unit.name)] = legacy.successor[code]
    for code, unit in current_map().provinces.items():
        index[province_key(unit.name)] = code  # a 2025 name wins over an old one
    # Common short forms in Vietnamese and English.
    for alias, code in {
        "hcm": "79",
        "tphcm": "79",
        "hcmc": "79",
        "saigon": "79",
        "hn": "01",
        "tphn": "01",
        "hanoi": "01",
        "danang": "48",
        "cantho": "92",
        "haiphong": "31",
        "hue": "46",
        "thuathienhue": "46",  # the province's name until it became a city on 2025-01-01
    }.items():
        index.setdefault(alias, code)
    return index

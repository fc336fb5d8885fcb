"""Regenerate refnet_geo's data files. A developer's tool: not installed, not run by tests or CI.

Inputs
  * ``vietnam-provinces`` (installed, the version pinned in constraints.txt): the 34 provinces and
    3,321 communes in force from 2025-07-01. Its 2025.10.1 release numbers 123 communes as the draft
    of Decision 19/2025/QĐ-TTg did, not as the final list: see ``code_corrections_2025.tsv``.
  * The ``vietnamadminunits`` 1.0.4 wheel from PyPI (MIT licence, © 2025 Tran Ngoc Minh Hieu): the
    63-province map as it stood on 2025-06-30 (provinces, districts, communes, GSO codes) and its
    old → new conversion table (which new commune(s) each old commune went into, and which one is
    the default when an old commune was divided). Fetch it with
    ``pip download --no-deps -d /tmp/vau vietnamadminunits==1.0.4``.
    Its 2025 commune codes are the official ones (they agree with the official old → new conversion
    table and the GSO/NSO catalogue); its communes are joined to ``vietnam-provinces`` by province and
    name, and where the codes differ that is a correction.
  * ``src/refnet_geo/data/province_adjacency_63.tsv``: the land borders between the 63 old provinces
    (compiled by hand; see that file's header).

Outputs (in ``src/refnet_geo/data/``)
  * ``code_corrections_2025.tsv``: official code of each commune vietnam-provinces numbers otherwise.
  * ``legacy_units.tsv``: the 63 provinces, 696 districts and 10,035 communes valid until
    2025-06-30, each old province and commune with its successor(s) in the 2025 map.
  * ``neighbours_2025.tsv``: the land borders between the 34 provinces, derived from the 63-province
    table through the province successors (no province was split in 2025, so a new province borders
    another exactly when one of its old provinces bordered one of the other's).

Run from the repository root::

    .venv/bin/python libs/geo/tools/build_data.py /tmp/vau/vietnamadminunits-1.0.4-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import collections
import json
import sqlite3
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import vietnam_provinces

DATA = Path(__file__).resolve().parent.parent / "src" / "refnet_geo" / "data"


def fold(text: str) -> str:
    """Lower case, no diacritics, đ → d, letters and digits only."""
    decomposed = unicodedata.normalize("NFD", text.casefold()).replace("đ", "d")
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def exact(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def load_current() -> tuple[
    dict[str, str], dict[tuple[str, str], str], dict[tuple[str, str], list[str]], dict[str, str]
]:
    """Province names by code; commune codes by (province code, exact name) and by (province code, folded
    name); commune names by code."""
    nested = json.loads(Path(vietnam_provinces.NESTED_DIVISIONS_JSON_PATH).read_text(encoding="utf-8"))
    provinces: dict[str, str] = {}
    by_exact: dict[tuple[str, str], str] = {}
    by_fold: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    names: dict[str, str] = {}
    for province in nested:
        pcode = f"{province['code']:02d}"
        provinces[pcode] = province["name"]
        for ward in province["wards"]:
            wcode = f"{ward['code']:05d}"
            key = (pcode, exact(ward["name"]))
            if key in by_exact:
                raise SystemExit(f"two communes named {ward['name']!r} in province {pcode}")
            by_exact[key] = wcode
            by_fold[(pcode, fold(ward["name"]))].append(wcode)
            names[wcode] = " ".join(ward["name"].split())
    return provinces, by_exact, by_fold, names


def province_kind(name: str) -> str:
    return "thành phố trung ương" if name.startswith("Thành phố") else "tỉnh"


def province_name(name: str) -> str:
    # vietnam-provinces writes "Quảng Ninh" and "Thành phố Hà Nội"; the legacy table writes "Tỉnh Quảng Ninh".
    return name.removeprefix("Tỉnh ")


LegacyRow = tuple[str, str, str | None, str, str, str | None, str, str, str | None, str, str | None]


NewRow = tuple[str, str, str, str, str]  # province key, ward key, province code, ward code, ward name


def read_wheel(wheel_path: Path) -> tuple[dict[str, Any], list[LegacyRow], list[NewRow]]:
    """The conversion table, the old units and the new communes, from the vietnamadminunits wheel."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel_path) as wheel:
        wheel.extract("vietnamadminunits/data/dataset.db", tmp)
        converter = json.loads(wheel.read("vietnamadminunits/data/converter_2025.json"))
        db = sqlite3.connect(Path(tmp) / "vietnamadminunits/data/dataset.db")
        legacy_rows = db.execute(
            "SELECT provinceKey, districtKey, wardKey, provinceCode, districtCode, wardCode,"
            " province, district, ward, districtType, wardType FROM admin_units_legacy"
        ).fetchall()
        new_rows = db.execute("SELECT provinceKey, wardKey, provinceCode, wardCode, ward FROM admin_units").fetchall()
        db.close()
    return converter, legacy_rows, new_rows


def match_new_codes(
    new_rows: list[NewRow],
    by_exact: dict[tuple[str, str], str],
    by_fold: dict[tuple[str, str], list[str]],
    vp_names: dict[str, str],
) -> tuple[dict[tuple[str, str], str], list[tuple[str, str, str, str]]]:
    """New commune (province key, ward key) → official code; and the corrections vietnam-provinces needs.

    vietnamadminunits' codes are the official ones. Each of its new communes is matched to the
    vietnam-provinces commune of the same province and name; where the two codes differ, that is a
    correction (province, name, code in vietnam-provinces, official code).
    """
    official: dict[tuple[str, str], str] = {}
    corrections: list[tuple[str, str, str, str]] = []
    matched: set[str] = set()
    for pkey, wkey, pcode, code, name in new_rows:
        vp_code = by_exact.get((pcode, exact(name)))
        if vp_code is None:
            candidates = by_fold.get((pcode, fold(name)), [])
            if len(candidates) != 1:
                raise SystemExit(f"cannot match new commune {name!r} in {pcode}: {candidates}")
            vp_code = candidates[0]
        matched.add(vp_code)
        official[(pkey, wkey)] = code
        if vp_code != code:
            corrections.append((pcode, vp_names[vp_code], vp_code, code))
    if matched != set(by_exact.values()) or len(set(official.values())) != len(official):
        raise SystemExit("vietnamadminunits and vietnam-provinces do not list the same 2025 communes")
    return official, corrections


def successor_table(converter: dict[str, Any], new_code: dict[tuple[str, str], str]) -> dict[str, list[str]]:
    """Old commune key "province_district_ward" → 2025 commune codes, the default first."""
    successors: dict[str, list[str]] = collections.defaultdict(list)
    for pkey, wards in converter["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for wkey, olds in wards.items():
            for old in olds:
                successors[old].append(new_code[(pkey, wkey)])
    for pkey, olds in converter["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old, parts in olds.items():
            if sum(1 for part in parts if part["isDefaultNewWard"]) != 1:
                raise SystemExit(f"{old}: expected exactly one default successor")
            ordered = sorted(parts, key=lambda part: not part["isDefaultNewWard"])
            successors[old].extend(new_code[(pkey, part["newWardKey"])] for part in ordered)
    return successors


def write_legacy(
    provinces: dict[str, tuple[str, str]],
    province_successor: dict[str, str],
    districts: dict[str, tuple[str, str, str]],
    communes: list[tuple[str, str, str, str, list[str]]],
) -> None:
    with (DATA / "legacy_units.tsv").open("w", encoding="utf-8", newline="\n") as out:
        out.write(LEGACY_HEADER)
        for pcode in sorted(provinces):
            name, kind = provinces[pcode]
            out.write(f"province\t{pcode}\t{name}\t{kind}\t\t{province_successor[pcode]}\n")
        for dcode in sorted(districts):
            name, kind, parent = districts[dcode]
            out.write(f"district\t{dcode}\t{name}\t{kind}\t{parent}\t\n")
        for wcode, name, kind, parent, succ in sorted(communes):
            out.write(f"commune\t{wcode}\t{name}\t{kind}\t{parent}\t{';'.join(succ)}\n")


def write_corrections(corrections: list[tuple[str, str, str, str]]) -> None:
    with (DATA / "code_corrections_2025.tsv").open("w", encoding="utf-8", newline="\n") as out:
        out.write(CORRECTIONS_HEADER)
        for pcode, name, vp_code, code in sorted(corrections):
            out.write(f"{pcode}\t{name}\t{vp_code}\t{code}\n")


def write_neighbours(current_provinces: dict[str, str], successor: dict[str, str]) -> int:
    adjacency_63 = read_adjacency(DATA / "province_adjacency_63.tsv")
    if set(adjacency_63) != set(successor):
        raise SystemExit("province_adjacency_63.tsv does not list exactly the 63 old provinces")
    neighbours: dict[str, set[str]] = {code: set() for code in current_provinces}
    for old, others in adjacency_63.items():
        for other in others:
            a, b = successor[old], successor[other]
            if a != b:
                neighbours[a].add(b)
                neighbours[b].add(a)
    with (DATA / "neighbours_2025.tsv").open("w", encoding="utf-8", newline="\n") as out:
        out.write(NEIGHBOURS_HEADER)
        for code in sorted(neighbours):
            out.write(f"{code}\t{current_provinces[code]}\t{' '.join(sorted(neighbours[code]))}\n")
    return sum(len(v) for v in neighbours.values()) // 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path, help="path to vietnamadminunits-1.0.4-py3-none-any.whl")
    args = parser.parse_args()

    current_provinces, by_exact, by_fold, vp_names = load_current()
    converter, legacy_rows, new_rows = read_wheel(args.wheel)
    official, corrections = match_new_codes(new_rows, by_exact, by_fold, vp_names)
    successors = successor_table(converter, official)

    commune_province = {code: pcode for _pkey, _wkey, pcode, code, _name in new_rows}
    provinces: dict[str, tuple[str, str]] = {}
    province_successors: dict[str, set[str]] = collections.defaultdict(set)
    districts: dict[str, tuple[str, str, str]] = {}
    communes: list[tuple[str, str, str, str, list[str]]] = []
    for pkey, dkey, wkey, pcode, dcode, wcode, pname, dname, wname, dtype, wtype in legacy_rows:
        provinces[pcode] = (province_name(pname), province_kind(pname))
        districts[dcode] = (dname, dtype.casefold(), pcode)
        succ = successors[f"{pkey}_{dkey}_{wkey or ''}"]
        if not succ:
            raise SystemExit(f"no successor for {pname} / {dname} / {wname}")
        province_successors[pcode].update(commune_province[code] for code in succ)
        if wcode is None or wname is None or wtype is None:
            continue  # an island district with no communes (Bạch Long Vĩ, Cồn Cỏ, Hoàng Sa, Lý Sơn, Côn Đảo)
        if wcode in succ:
            # A divided commune whose code a successor kept: that successor is the default (Thị trấn
            # Đông Anh 00454 → Xã Đông Anh 00454), so a code that survived means the same place
            # whatever the date of the record.
            succ = [wcode, *(code for code in succ if code != wcode)]
        communes.append((wcode, wname, wtype.casefold(), dcode, succ))
    province_successor: dict[str, str] = {}
    for pcode, succ_set in province_successors.items():
        if len(succ_set) != 1:
            raise SystemExit(f"old province {pcode} went into several provinces: {succ_set}")
        (province_successor[pcode],) = succ_set

    write_corrections(corrections)
    write_legacy(provinces, province_successor, districts, communes)
    borders = write_neighbours(current_provinces, province_successor)
    print(
        f"wrote code_corrections_2025.tsv: {len(corrections)} communes;"
        f" legacy_units.tsv: {len(provinces)} provinces, {len(districts)} districts, {len(communes)} communes;"
        f" neighbours_2025.tsv: {borders} borders",
        file=sys.stderr,
    )
    return 0


LEGACY_HEADER = (
    "# Vietnam's administrative units valid until 2025-06-30 (63 provinces, districts, communes),\n"
    "# with their successors in the map in force from 2025-07-01.\n"
    "# Source: the vietnamadminunits 1.0.4 package on PyPI (MIT licence, (c) 2025 Tran Ngoc Minh Hieu):\n"
    "#   its admin_units_legacy table (GSO codes) and its converter_2025 old -> new table.\n"
    "#   Successors carry the official codes of Decision 19/2025/QD-TTg (see code_corrections_2025.tsv).\n"
    "# Generated by libs/geo/tools/build_data.py; do not edit by hand.\n"
    "# Columns: level, code, name, kind, parent code, successor codes (';'-separated, default first).\n"
    "#   Default of a divided commune: the successor that kept its code, if one did (every old code that is\n"
    "#   also a 2025 code is among its own successors); otherwise the one vietnamadminunits marks default.\n"
    "#   province successors are 2025 province codes; commune successors are 2025 commune codes;\n"
    "#   districts have no successor (no district level from 2025-07-01): their province's applies.\n"
)

CORRECTIONS_HEADER = (
    "# Official codes of 2025 communes that vietnam-provinces 2025.10.1 numbers differently.\n"
    "# That release took its codes from the draft of Decision 19/2025/QD-TTg; for these communes the\n"
    "# final list (GSO/NSO catalogue danhmuchanhchinh.nso.gov.vn, and the official old -> new conversion\n"
    "# table) gives another code. vietnam-provinces switched to the official list in 2026.1.0, which the\n"
    "# package registry used here does not serve; vietnamadminunits 1.0.4 (MIT, (c) 2025 Tran Ngoc Minh Hieu)\n"
    "# uses the official codes, and this table is the difference between the two packages, matched by\n"
    "# province and name. refnet_geo applies a row only when the commune with that code in vietnam-provinces\n"
    "# still has that name, so a vietnam-provinces with official codes makes every row a no-op.\n"
    "# Generated by libs/geo/tools/build_data.py; do not edit by hand.\n"
    "# Columns: province code, commune name (as in vietnam-provinces), code in vietnam-provinces 2025.10.1,\n"
    "# official code.\n"
)

NEIGHBOURS_HEADER = (
    "# Land borders between Vietnam's 34 provinces in force from 2025-07-01\n"
    "# (codes of Decision 19/2025/QD-TTg).\n"
    "# Derived, not drawn: from province_adjacency_63.tsv (land borders between the 63 provinces before\n"
    "# 2025-07-01, compiled by hand, see its header) mapped through each old province's successor\n"
    "# (Resolution 202/2025/QH15; no province was split, so province A borders B exactly when one of A's\n"
    "# old provinces bordered one of B's). Borders with China, Laos and Cambodia are not listed.\n"
    "# No 2025 province is an island: every one has at least one neighbour.\n"
    "# Generated by libs/geo/tools/build_data.py; do not edit by hand.\n"
    "# Columns: province code, its name, neighbour codes (space-separated, ascending).\n"
)


def read_adjacency(path: Path) -> dict[str, set[str]]:
    adjacency: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        code, _name, others = line.split("\t")
        adjacency[code] = set(others.split())
    for code, listed in adjacency.items():
        for other in listed:
            if code not in adjacency.get(other, set()):
                raise SystemExit(f"province_adjacency_63.tsv is not symmetric: {code} lists {other}, not back")
    return adjacency


if __name__ == "__main__":
    raise SystemExit(main())

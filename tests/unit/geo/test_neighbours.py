"""Neighbouring provinces and the distance ranks referral routes by."""

from __future__ import annotations

from pathlib import Path

import pytest

import refnet_geo as geo
from refnet_geo import _data

DATA = Path(geo.__file__).parent / "data"


def _table(name: str) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, _name, others = line.split("\t")
            table[code] = set(others.split())
    return table


def test_table_covers_the_34_provinces_and_is_symmetric() -> None:
    codes = {p.code for p in geo.provinces()}
    assert set(_data.neighbour_table()) == codes
    for code in codes:
        others = geo.neighbours(code)
        assert code not in others
        assert set(others) <= codes
        assert list(others) == sorted(others)
        for other in others:
            assert code in geo.neighbours(other), (code, other)


def test_every_2025_province_has_a_land_neighbour() -> None:
    # No 2025 province is an island: Kiên Giang (Phú Quốc) joined An Giang, Bà Rịa - Vũng Tàu (Côn Đảo)
    # joined Hồ Chí Minh City.
    assert all(geo.neighbours(p.code) for p in geo.provinces())


def test_quang_ninh_borders_lang_son_bac_ninh_and_hai_phong() -> None:
    assert geo.neighbours("22") == ("20", "24", "31")
    assert [geo.resolve_province(c).name for c in geo.neighbours("22")] == [
        "Lạng Sơn",
        "Bắc Ninh",
        "Thành phố Hải Phòng",
    ]


@pytest.mark.parametrize(
    ("province", "expected"),
    [
        ("01", {"19", "24", "25", "33", "37"}),  # Hà Nội: Thái Nguyên, Bắc Ninh, Phú Thọ, Hưng Yên, Ninh Bình
        ("42", {"40", "44"}),  # Hà Tĩnh: Nghệ An, Quảng Trị
        ("48", {"46", "51"}),  # Đà Nẵng: Huế, Quảng Ngãi
        ("79", {"68", "75", "80", "82"}),  # HCMC: Lâm Đồng, Đồng Nai, Tây Ninh, Đồng Tháp
        ("92", {"82", "86", "91", "96"}),  # Cần Thơ: Đồng Tháp, Vĩnh Long, An Giang, Cà Mau
        ("96", {"91", "92"}),  # Cà Mau: An Giang, Cần Thơ
    ],
)
def test_known_borders(province: str, expected: set[str]) -> None:
    assert set(geo.neighbours(province)) == expected


def test_old_code_gets_its_successors_neighbours() -> None:
    assert geo.neighbours("45") == geo.neighbours("44")  # old Quảng Trị → Quảng Trị (44)


def test_the_63_province_source_table_is_symmetric_and_complete() -> None:
    table = _table("province_adjacency_63.tsv")
    assert set(table) == {p.code for p in geo.provinces(on=geo.LEGACY_VALID_TO)}
    for code, others in table.items():
        assert code not in others
        for other in others:
            assert code in table[other], (code, other)
    assert sum(len(v) for v in table.values()) == 2 * 135


def test_the_2025_table_is_the_63_province_table_through_the_successors() -> None:
    derived: dict[str, set[str]] = {p.code: set() for p in geo.provinces()}
    for old, others in _table("province_adjacency_63.tsv").items():
        for other in others:
            a, b = geo.resolve_province(old).code, geo.resolve_province(other).code
            if a != b:
                derived[a].add(b)
    assert derived == {code: set(others) for code, others in _data.neighbour_table().items()}


def test_data_files_name_their_source() -> None:
    for name in ("neighbours_2025.tsv", "province_adjacency_63.tsv", "legacy_units.tsv", "code_corrections_2025.tsv"):
        header = (DATA / name).read_text(encoding="utf-8").split("\n", 12)[:12]
        assert any("Source" in line or "Derived" in line or "vietnamadminunits" in line for line in header), name


# -------------------------------------------------------------------------------------------------
# distance_rank

HA_LONG = "06688"  # Phường Hạ Long, Quảng Ninh
BA_DINH = "00004"  # Phường Ba Đình, Hà Nội


def test_same_commune_ranks_0() -> None:
    assert geo.distance_rank("22", HA_LONG, "22", HA_LONG) == geo.SAME_COMMUNE == 0


def test_same_province_ranks_1() -> None:
    other = next(c.code for c in geo.communes("22") if c.code != HA_LONG)
    assert geo.distance_rank("22", HA_LONG, "22", other) == geo.SAME_PROVINCE == 1
    assert geo.distance_rank("22", HA_LONG, "22", None) == 1  # a provider serving the whole province
    assert geo.distance_rank("22", None, "22", HA_LONG) == 1


def test_neighbouring_province_ranks_2() -> None:
    assert geo.distance_rank("22", HA_LONG, "31", None) == geo.NEIGHBOURING_PROVINCE == 2


def test_farther_ranks_none() -> None:
    assert geo.distance_rank("22", HA_LONG, "79", None) is None
    assert geo.distance_rank("01", BA_DINH, "96", None) is None


def test_distance_rank_reads_old_codes_on_todays_map() -> None:
    # Old Bắc Giang (24) and old Bắc Ninh (27) are one province now.
    assert geo.distance_rank("27", None, "24", None) == 1
    # Old Phúc Xá (00001) is in Phường Hồng Hà (00097) now.
    assert geo.distance_rank("01", "00001", "01", "00097") == 0


def test_distance_rank_unknown_code_names_the_argument() -> None:
    with pytest.raises(geo.GeoError) as err:
        geo.distance_rank("22", None, "99", None)
    assert err.value.field == "provider_province"
    with pytest.raises(geo.GeoError) as err:
        geo.distance_rank("22", "99999", "22", HA_LONG)
    assert err.value.field == "survivor_commune"

"""The administrative units themselves: the 2025 map, the map before it, their dates and tree."""

from __future__ import annotations

from datetime import date

import pytest

import refnet_geo as geo
from refnet_geo import _data

BEFORE = date(2025, 6, 30)
AFTER = date(2025, 7, 1)


def test_the_2025_map_has_34_provinces_and_3321_communes() -> None:
    assert len(geo.provinces(on=AFTER)) == 34
    assert len(geo.communes(on=AFTER)) == 3321
    assert sum(len(geo.communes(p.code)) for p in geo.provinces()) == 3321


def test_the_map_before_has_63_provinces_696_districts_10035_communes() -> None:
    assert len(geo.provinces(on=BEFORE)) == 63
    assert len(geo.districts()) == 696
    assert len(geo.communes(on=BEFORE)) == 10035


def test_codes_are_zero_padded_official_codes_and_unique() -> None:
    provinces = geo.provinces()
    communes = geo.communes()
    assert [p.code for p in provinces] == sorted({p.code for p in provinces})
    assert all(len(p.code) == 2 and p.code.isdigit() for p in provinces)
    assert all(len(c.code) == 5 and c.code.isdigit() for c in communes)
    assert len({c.code for c in communes}) == len(communes)
    assert all(len(d.code) == 3 for d in geo.districts())


def test_effective_dates() -> None:
    hanoi = geo.unit("province", "01", on=AFTER)
    assert (hanoi.valid_from, hanoi.valid_to, hanoi.is_current) == (geo.REFORM_DATE, None, True)
    assert hanoi.valid_on(date(2030, 1, 1))
    assert not hanoi.valid_on(BEFORE)
    old = geo.unit("district", "001", on=BEFORE)  # Quận Ba Đình
    assert (old.valid_from, old.valid_to, old.is_current) == (None, date(2025, 6, 30), False)
    assert old.valid_on(date(2020, 1, 1))
    assert not old.valid_on(AFTER)


def test_tree_2025_province_to_commune() -> None:
    quang_ninh = geo.unit("province", "22")
    assert quang_ninh.name == "Quảng Ninh"
    assert quang_ninh.kind == "tỉnh"
    communes = geo.children(quang_ninh)
    assert len(communes) == 54
    assert {c.parent_code for c in communes} == {"22"}
    assert {c.kind for c in geo.communes()} == {"xã", "phường", "đặc khu"}
    assert geo.children(communes[0]) == ()
    assert geo.unit("province", "79").kind == "thành phố trung ương"


def test_tree_before_province_district_commune() -> None:
    bac_giang = geo.unit("province", "24", on=BEFORE)
    assert bac_giang.name == "Bắc Giang"
    districts = geo.children(bac_giang)
    assert "213" in {d.code for d in districts}  # Thành phố Bắc Giang
    city = geo.unit("district", "213", on=BEFORE)
    assert (city.name, city.kind, city.parent_code) == ("Thành phố Bắc Giang", "thành phố", "24")
    phuc_xa = geo.unit("commune", "00001", on=BEFORE)
    assert (phuc_xa.name, phuc_xa.parent_code) == ("Phường Phúc Xá", "001")
    assert len(geo.communes("24", on=BEFORE)) == sum(len(geo.children(d)) for d in districts)


def test_same_code_names_different_units_in_different_periods() -> None:
    # 24 was Bắc Giang until 2025-06-30 and is the merged Bắc Ninh from 2025-07-01.
    assert geo.unit("province", "24", on=BEFORE).name == "Bắc Giang"
    assert geo.unit("province", "24", on=AFTER).name == "Bắc Ninh"
    assert geo.unit("commune", "00004", on=BEFORE).name == "Phường Trúc Bạch"
    assert geo.unit("commune", "00004", on=AFTER).name == "Phường Ba Đình"


def test_codes_are_the_official_ones_not_the_drafts() -> None:
    # vietnam-provinces 2025.10.1 numbers these communes as the draft decision did (00073, 00196, 01558).
    assert geo.unit("commune", "00082").name == "Phường Cửa Nam"
    assert geo.unit("commune", "00226").name == "Phường Văn Miếu - Quốc Tử Giám"
    ly_quoc = geo.unit("commune", "01537")
    assert (ly_quoc.name, ly_quoc.parent_code) == ("Xã Lý Quốc", "04")
    assert geo.unit("commune", "01558").name == "Xã Hạ Lang"
    with pytest.raises(geo.GeoError):
        geo.unit("commune", "00073", on=AFTER)  # the draft code of Cửa Nam is no 2025 code


def test_code_corrections_apply_only_where_the_name_matches() -> None:
    nested = [
        {
            "code": 1,
            "name": "Thành phố Hà Nội",
            "division_type": "thành phố trung ương",
            "wards": [
                {"code": 73, "name": "Phường  Cửa Nam", "division_type": "phường"},
                {"code": 97, "name": "Phường Hồng Hà", "division_type": "phường"},
            ],
        }
    ]
    corrections = {("01", "00073"): ("cuanam", "00082"), ("01", "00097"): ("somewhereelse", "00001")}
    built = _data.build_current_map(nested, corrections)
    assert sorted(built.communes) == ["00082", "00097"]
    assert built.communes["00082"].name == "Phường Cửa Nam"  # doubled space collapsed too
    assert built.communes["00097"].name == "Phường Hồng Hà"


def test_unit_lookup_errors_name_the_field() -> None:
    with pytest.raises(geo.GeoError) as err:
        geo.unit("commune", "99999")
    assert err.value.field == "commune_code"
    assert "99999" in str(err.value)
    with pytest.raises(geo.GeoError) as err:
        geo.unit("district", "001", on=AFTER)
    assert err.value.field == "district_code"
    assert "district is not used after 2025-07-01" in err.value.problem


@pytest.mark.parametrize(
    ("raw", "level", "expected"),
    [("1", "province", "01"), (1, "province", "01"), (" 22 ", "province", "22"), (97, "commune", "00097")],
)
def test_codes_are_normalized(raw: str | int, level: str, expected: str) -> None:
    assert geo.normalize_code(raw, geo.Level(level), "x") == expected


@pytest.mark.parametrize("raw", ["", "abc", "123", "-1", "\uff11\uff12", "2.0"])  # "\uff11\uff12": fullwidth digits
def test_malformed_province_codes_are_refused(raw: str) -> None:
    with pytest.raises(geo.GeoError) as err:
        geo.resolve_province(raw)
    assert err.value.field == "province_code"
    assert str(err.value).startswith("province_code: ")

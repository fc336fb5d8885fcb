"""Resolving recorded codes to the 2025 map, and validating where a case was reported."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refnet_geo as geo
from refnet_geo import _data

BEFORE = date(2025, 6, 1)
AFTER = date(2025, 8, 1)


@pytest.mark.parametrize(
    ("old", "new", "new_name"),
    [
        ("02", "08", "Tuyên Quang"),  # Hà Giang
        ("74", "79", "Thành phố Hồ Chí Minh"),  # Bình Dương
        ("77", "79", "Thành phố Hồ Chí Minh"),  # Bà Rịa - Vũng Tàu
        ("24", "24", "Bắc Ninh"),  # Bắc Giang, whose code the merged Bắc Ninh kept
        ("27", "24", "Bắc Ninh"),  # Bắc Ninh
        ("10", "15", "Lào Cai"),  # Lào Cai took Yên Bái's code 15
        ("15", "15", "Lào Cai"),  # Yên Bái
        ("89", "91", "An Giang"),  # An Giang took Kiên Giang's code 91
        ("93", "92", "Thành phố Cần Thơ"),  # Hậu Giang
        ("49", "48", "Thành phố Đà Nẵng"),  # Quảng Nam
        ("22", "22", "Quảng Ninh"),  # unchanged
    ],
)
def test_old_province_maps_to_its_successor(old: str, new: str, new_name: str) -> None:
    resolved = geo.resolve_province(old, on=BEFORE)
    assert (resolved.code, resolved.name) == (new, new_name)
    assert resolved.is_current


def test_every_old_province_has_one_successor_and_every_new_one_a_predecessor() -> None:
    old = geo.provinces(on=BEFORE)
    successors = {p.code: geo.resolve_province(p.code, on=BEFORE).code for p in old}
    assert set(successors.values()) == {p.code for p in geo.provinces()}
    # Each 2025 province kept the code of one of the provinces it was formed from.
    for new in geo.provinces():
        assert successors[new.code] == new.code
    assert sum(1 for o, n in successors.items() if o == n) == 34


def test_province_resolution_does_not_depend_on_the_date() -> None:
    for p in geo.provinces(on=BEFORE):
        assert geo.resolve_province(p.code, on=BEFORE) == geo.resolve_province(p.code, on=AFTER)


def test_old_commune_maps_to_the_commune_it_was_merged_into() -> None:
    # Phường Phúc Xá (Ba Đình) became part of Phường Hồng Hà.
    assert geo.resolve_commune("00001", on=BEFORE).name == "Phường Hồng Hà"
    # A record made after the reform but still using the old code is read the same way.
    assert geo.resolve_commune("00001", on=AFTER).code == "00097"
    # Old Trúc Bạch (00004) went into the 2025 Phường Ba Đình, which kept the code 00004.
    assert geo.resolve_commune("00004", on=BEFORE).name == "Phường Ba Đình"


def test_divided_commune_has_several_successors_the_one_keeping_its_code_first() -> None:
    successors = geo.commune_successors("00454")  # Thị trấn Đông Anh
    assert [s.code for s in successors] == ["00454", "00466", "00475"]
    assert [s.name for s in successors] == ["Xã Đông Anh", "Xã Phúc Thịnh", "Xã Thư Lâm"]
    location = geo.resolve_location("01", "00454", on=BEFORE)
    assert location.commune is not None
    assert location.commune.name == "Xã Đông Anh"
    assert location.approximate
    assert not geo.resolve_location("01", "00454", on=AFTER).approximate


def test_island_districts_became_special_zones() -> None:
    con_dao = geo.resolve_commune("26732", on=BEFORE)  # a 2025-only code: Đặc khu Côn Đảo
    assert (con_dao.name, con_dao.kind, con_dao.parent_code) == ("Đặc khu Côn Đảo", "đặc khu", "79")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(_data.current_map().communes)), st.dates(date(2000, 1, 1), date(2040, 1, 1)))
def test_a_code_that_survived_means_the_same_commune_on_any_date(code: str, on: date) -> None:
    assert geo.resolve_commune(code, on=on).code == code


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(_data.legacy_map().communes)))
def test_old_commune_successors_lie_in_the_old_provinces_successor(code: str) -> None:
    old = geo.unit("commune", code, on=BEFORE)
    assert old.parent_code is not None
    old_province = geo.unit("district", old.parent_code, on=BEFORE).parent_code
    assert old_province is not None
    new_province = geo.resolve_province(old_province)
    assert {s.parent_code for s in geo.commune_successors(code)} == {new_province.code}
    assert geo.resolve_commune(code, on=BEFORE) == geo.commune_successors(code)[0]


def test_district_after_july_2025_is_refused_naming_the_field() -> None:
    with pytest.raises(geo.GeoError) as err:
        geo.resolve_district("001", on=date(2025, 7, 1))
    assert err.value.field == "district_code"
    assert str(err.value).startswith("district_code: district is not used after 2025-07-01")
    with pytest.raises(geo.GeoError) as err:
        geo.resolve_location("01", "00004", "001", on=AFTER)
    assert err.value.field == "district_code"
    assert "district is not used after 2025-07-01" in str(err.value)


def test_the_reform_day_is_a_vietnamese_day() -> None:
    # 20:00 UTC on 30 June is 03:00 on 1 July in Vietnam: the district level is already gone.
    late_june_utc = datetime(2025, 6, 30, 20, 0, tzinfo=UTC)
    with pytest.raises(geo.GeoError):
        geo.resolve_district("001", on=late_june_utc)
    assert geo.resolve_district("001", on=datetime(2025, 6, 30, 16, 0, tzinfo=UTC)).code == "01"


def test_district_before_july_2025_resolves_to_its_province() -> None:
    assert geo.resolve_district("213", on=BEFORE).name == "Bắc Ninh"  # Thành phố Bắc Giang
    assert geo.resolve_district("001", on=BEFORE).code == "01"  # Quận Ba Đình


@pytest.mark.parametrize(
    ("call", "field", "what"),
    [
        (lambda: geo.resolve_province("99"), "province_code", "unknown province code '99'"),
        (lambda: geo.resolve_commune("99999"), "commune_code", "unknown commune code '99999'"),
        (lambda: geo.resolve_district("999", on=BEFORE), "district_code", "unknown district code '999'"),
        (lambda: geo.commune_successors("26732"), "commune_code", "unknown commune code '26732'"),
        (lambda: geo.resolve_location("01", "99999"), "commune_code", "unknown commune code '99999'"),
        (lambda: geo.resolve_location("98", "00004"), "province_code", "unknown province code '98'"),
        (lambda: geo.resolve_commune("1234567"), "commune_code", "is not a commune code"),
    ],
)
def test_unknown_codes_raise_naming_the_field(call: object, field: str, what: str) -> None:
    assert callable(call)
    with pytest.raises(geo.GeoError) as err:
        call()
    assert err.value.field == field
    assert what in str(err.value)
    assert isinstance(err.value, ValueError)


def test_fields_can_be_renamed_for_the_caller() -> None:
    with pytest.raises(geo.GeoError) as err:
        geo.resolve_location(
            "01", "99999", on=AFTER, fields=("location.province", "location.commune", "location.district")
        )
    assert err.value.field == "location.commune"


def test_resolve_location_2025_record() -> None:
    location = geo.resolve_location("01", "00004", on=AFTER)
    assert location.province.name == "Thành phố Hà Nội"
    assert location.commune is not None
    assert location.commune.name == "Phường Ba Đình"
    assert geo.resolve_location("22", on=AFTER) == geo.Location(province=geo.resolve_province("22"), commune=None)
    assert geo.resolve_location("22", "", "", on=AFTER).commune is None  # empty means not given


def test_resolve_location_old_record_with_district() -> None:
    location = geo.resolve_location("24", "07201", "213", on=BEFORE)  # Thọ Xương, TP Bắc Giang
    assert location.province.name == "Bắc Ninh"
    assert location.commune is not None
    assert location.commune.parent_code == "24"


def test_resolve_location_refuses_places_that_do_not_fit() -> None:
    with pytest.raises(geo.GeoError) as err:
        geo.resolve_location("27", "07201", "213", on=BEFORE)  # TP Bắc Giang is not in old Bắc Ninh
    assert err.value.field == "district_code"
    with pytest.raises(geo.GeoError) as err:
        geo.resolve_location("01", "00004", "002", on=BEFORE)  # Trúc Bạch is in Ba Đình (001), not 002
    assert err.value.field == "commune_code"
    with pytest.raises(geo.GeoError) as err:
        geo.resolve_location("22", "00004", on=AFTER)
    assert err.value.field == "commune_code"
    assert "not in province 22" in str(err.value)


def test_commune_in_province() -> None:
    assert geo.commune_in_province("00004", "01")
    assert not geo.commune_in_province("00004", "22")
    assert geo.commune_in_province("06688", "22")  # Phường Hạ Long
    # Before the reform an old commune belongs to its old province only.
    assert geo.commune_in_province("07201", "24", on=BEFORE)
    assert not geo.commune_in_province("07201", "27", on=BEFORE)
    # After it, old Bắc Ninh's code 27 means the merged Bắc Ninh (24).
    assert geo.commune_in_province("07201", "27", on=AFTER)
    with pytest.raises(geo.GeoError) as err:
        geo.commune_in_province("99999", "01")
    assert err.value.field == "commune_code"

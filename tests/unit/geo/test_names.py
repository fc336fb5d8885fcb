"""Finding provinces and communes by name, as demo data and operators write them."""

from __future__ import annotations

import unicodedata

import pytest

import refnet_geo as geo


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Quảng Ninh", "22"),
        ("Hà Tĩnh", "42"),
        ("Cần Thơ", "92"),
        ("Hà Nội", "01"),
        ("Hồ Chí Minh", "79"),
        ("Đà Nẵng", "48"),
        ("quang ninh", "22"),
        ("QUẢNG NINH", "22"),
        ("Tỉnh Quảng Ninh", "22"),
        ("  quảng   ninh ", "22"),
        ("Thành phố Hà Nội", "01"),
        ("Hanoi", "01"),
        ("TP. Hồ Chí Minh", "79"),
        ("TP.HCM", "79"),
        ("Ho Chi Minh City", "79"),
        ("da nang", "48"),
        ("Thanh Hoá", "38"),  # the older accent placement
        ("Huế", "46"),
    ],
)
def test_province_by_name(name: str, code: str) -> None:
    assert geo.province_by_name(name).code == code


def test_decomposed_unicode_input() -> None:
    assert geo.province_by_name(unicodedata.normalize("NFD", "Hà Tĩnh")).code == "42"


@pytest.mark.parametrize(
    ("old_name", "code"),
    [("Bình Dương", "79"), ("Hà Giang", "08"), ("Bắc Giang", "24"), ("Thừa Thiên Huế", "46"), ("Kiên Giang", "91")],
)
def test_old_province_names_give_the_2025_province(old_name: str, code: str) -> None:
    assert geo.province_by_name(old_name).code == code


def test_every_province_is_found_by_its_own_name() -> None:
    for province in geo.provinces():
        assert geo.province_by_name(province.name) == province


def test_unknown_province_name() -> None:
    with pytest.raises(geo.GeoError) as err:
        geo.province_by_name("Atlantis")
    assert err.value.field == "province_name"
    assert "Atlantis" in str(err.value)


def test_communes_by_name() -> None:
    (hong_ha,) = geo.communes_by_name("Phường Hồng Hà")
    assert (hong_ha.code, hong_ha.parent_code) == ("00097", "01")
    assert geo.communes_by_name("hong ha", "01") == (hong_ha,)
    (ha_long,) = geo.communes_by_name("Hạ Long", "22")
    assert ha_long.name == "Phường Hạ Long"
    assert geo.communes_by_name("Nowhere") == ()


def test_communes_by_name_exact_spelling_wins() -> None:
    # Thái Nguyên has both Xã Văn Lang and Xã Văn Lăng.
    assert [c.name for c in geo.communes_by_name("Văn Lang", "19")] == ["Xã Văn Lang"]
    assert sorted(c.name for c in geo.communes_by_name("van lang", "19")) == ["Xã Văn Lang", "Xã Văn Lăng"]

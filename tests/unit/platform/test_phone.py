"""One way to write a phone number, so intake, the directory and the SMS gateway's numbers compare equal."""

from __future__ import annotations

import pytest

from refnet_platform.phone import normalise_phone


@pytest.mark.parametrize("raw", ["0912 345 678", "0912-345-678", "+84 912 345 678", "84912345678", "0084912345678",
                                 "(+84) 912.345.678", " 0912345678 "])
def test_every_way_of_writing_a_vietnamese_mobile_is_one_number(raw: str) -> None:
    assert normalise_phone(raw) == "84912345678"


@pytest.mark.parametrize("raw", ["", "  ", "not a phone", "0912abc678", "123", "+84 9123456789012345", "+-84"])
def test_what_is_not_a_phone_number_is_empty(raw: str) -> None:
    assert normalise_phone(raw) == ""


def test_a_foreign_number_keeps_its_country_code() -> None:
    assert normalise_phone("+44 20 7946 0958") == "442079460958"

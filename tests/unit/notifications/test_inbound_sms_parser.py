"""The SMS keywords: Vietnamese without diacritics and English, any case, extra spaces, and every error form."""

from __future__ import annotations

import pytest

from notifications.domain.inbound_sms import (
    REPLIES,
    Keyword,
    Parsed,
    ParseError,
    Reply,
    beds_form,
    counts_text,
    parse,
    reasons_text,
    render,
    reply_language,
)
from notifications.domain.messages import Language
from refnet_platform.vocabulary import DeclineReason, TargetGroup

VI, EN = Language.VI, Language.EN
W, C, WC, M = TargetGroup.WOMEN, TargetGroup.CHILDREN, TargetGroup.WOMEN_WITH_CHILDREN, TargetGroup.MEN
REF = "RF-1A2B3C4D"


@pytest.mark.parametrize(("text", "expected"), [
    ("GIUONG 3", Parsed(Keyword.BEDS, VI, pools=((None, 3),))),
    ("giuong 3", Parsed(Keyword.BEDS, VI, pools=((None, 3),))),
    ("  Giường   0 ", Parsed(Keyword.BEDS, VI, pools=((None, 0),))),
    ("BEDS 3", Parsed(Keyword.BEDS, EN, pools=((None, 3),))),
    ("beds\t12", Parsed(Keyword.BEDS, EN, pools=((None, 12),))),
    ("GIUONG PN 2 TE 1", Parsed(Keyword.BEDS, VI, pools=((W, 2), (C, 1)))),
    ("giuong pn2 te1", Parsed(Keyword.BEDS, VI, pools=((W, 2), (C, 1)))),
    ("BEDS W 2 C 1 WC 0 M 4", Parsed(Keyword.BEDS, EN, pools=((W, 2), (C, 1), (WC, 0), (M, 4)))),
    ("GIUONG MC 1 NAM 2", Parsed(Keyword.BEDS, VI, pools=((WC, 1), (M, 2)))),
    ("DEN RF-1A2B3C4D", Parsed(Keyword.ARRIVED, VI, reference=REF)),
    ("den rf-1a2b3c4d", Parsed(Keyword.ARRIVED, VI, reference=REF)),
    ("Đến  RF 1a2b3c4d", Parsed(Keyword.ARRIVED, VI, reference=REF)),
    ("ARRIVED 1a2b3c4d", Parsed(Keyword.ARRIVED, EN, reference=REF)),
    ("DI RF1A2B3C4D", Parsed(Keyword.LEFT, VI, reference=REF)),
    ("left rf-1a2b3c4d", Parsed(Keyword.LEFT, EN, reference=REF)),
    ("NHAN RF-1A2B3C4D", Parsed(Keyword.ACCEPT, VI, reference=REF)),
    ("Nhận rf-1a2b3c4d", Parsed(Keyword.ACCEPT, VI, reference=REF)),
    ("accept RF-1A2B3C4D", Parsed(Keyword.ACCEPT, EN, reference=REF)),
    ("TU CHOI RF-1A2B3C4D HETCHO", Parsed(Keyword.DECLINE, VI, reference=REF, reason=DeclineReason.NO_CAPACITY)),
    ("từ  chối rf-1a2b3c4d hết chỗ", Parsed(Keyword.DECLINE, VI, reference=REF, reason=DeclineReason.NO_CAPACITY)),
    ("TUCHOI RF-1A2B3C4D trung", Parsed(Keyword.DECLINE, VI, reference=REF, reason=DeclineReason.DUPLICATE)),
    ("decline RF-1A2B3C4D out of area", Parsed(Keyword.DECLINE, EN, reference=REF, reason=DeclineReason.OUT_OF_AREA)),
    ("DECLINE RF-1A2B3C4D no_capacity", Parsed(Keyword.DECLINE, EN, reference=REF, reason=DeclineReason.NO_CAPACITY)),
    ("STOP", Parsed(Keyword.STOP, EN)),
    ("stop please", Parsed(Keyword.STOP, EN)),
    ("Dừng", Parsed(Keyword.STOP, VI)),
    ("DUNG", Parsed(Keyword.STOP, VI)),
    ("START", Parsed(Keyword.START, EN)),
    ("bat  dau", Parsed(Keyword.START, VI)),
    ("Bắt đầu", Parsed(Keyword.START, VI)),
])
def test_every_keyword_in_both_languages(text: str, expected: Parsed) -> None:
    parsed = parse(text)
    assert parsed == expected
    assert parsed.understood


@pytest.mark.parametrize(("text", "keyword", "error"), [
    ("", None, ParseError.NO_KEYWORD),
    ("xin chao", None, ParseError.NO_KEYWORD),
    ("3 GIUONG", None, ParseError.NO_KEYWORD),
    ("GIUONG", Keyword.BEDS, ParseError.MISSING_COUNT),
    ("GIUONG ba", Keyword.BEDS, ParseError.BAD_COUNT),
    ("GIUONG -1", Keyword.BEDS, ParseError.BAD_COUNT),
    ("GIUONG 99999", Keyword.BEDS, ParseError.BAD_COUNT),
    ("GIUONG PN", Keyword.BEDS, ParseError.BAD_COUNT),
    ("GIUONG PN 2 TE", Keyword.BEDS, ParseError.BAD_COUNT),
    ("GIUONG XY 2", Keyword.BEDS, ParseError.UNKNOWN_POOL),
    ("BEDS W 1 W 2", Keyword.BEDS, ParseError.REPEATED_POOL),
    ("DEN", Keyword.ARRIVED, ParseError.MISSING_REFERENCE),
    ("DEN 123", Keyword.ARRIVED, ParseError.BAD_REFERENCE),
    ("ARRIVED RF-XYZ", Keyword.ARRIVED, ParseError.BAD_REFERENCE),
    ("DEN RF-1A2B3C4D hom nay", Keyword.ARRIVED, ParseError.EXTRA_WORDS),
    ("LEFT", Keyword.LEFT, ParseError.MISSING_REFERENCE),
    ("NHAN", Keyword.ACCEPT, ParseError.MISSING_REFERENCE),
    ("TU CHOI RF-1A2B3C4D", Keyword.DECLINE, ParseError.MISSING_REASON),
    ("DECLINE RF-1A2B3C4D because", Keyword.DECLINE, ParseError.UNKNOWN_REASON),
    ("DECLINE", Keyword.DECLINE, ParseError.MISSING_REFERENCE),
])
def test_every_error_form(text: str, keyword: Keyword | None, error: ParseError) -> None:
    parsed = parse(text)
    assert (parsed.keyword, parsed.error) == (keyword, error)
    assert not parsed.understood


def test_the_reference_is_kept_when_only_the_reason_is_wrong() -> None:
    assert parse("TU CHOI rf-1a2b3c4d ban").reference == REF


def test_reply_language_english_keyword_or_record() -> None:
    assert reply_language(parse("GIUONG 3"), "") is VI
    assert reply_language(parse("BEDS 3"), "vi") is EN
    assert reply_language(parse("GIUONG 3"), "en") is EN
    assert reply_language(parse("hello"), "") is VI


def test_forms_and_counts_shown_back() -> None:
    assert beds_form([W], VI) == "3"
    assert beds_form([W, C], VI) == "PN 2 TE 1"
    assert beds_form([W, C], EN) == "W 2 C 1"
    assert counts_text([(W, 3)], VI) == "3"
    assert counts_text([(W, 2), (C, 0)], EN) == "W 2, C 0"
    assert reasons_text(VI).startswith("HETCHO, ")
    assert "FULL" in reasons_text(EN)


def test_every_reply_exists_in_both_languages_and_survivor_replies_name_nothing() -> None:
    assert set(REPLIES[VI]) == set(REPLIES[EN]) == set(Reply)
    for language in (VI, EN):
        for reply in (Reply.STOPPED, Reply.STARTED):
            text = render(language, reply).lower()
            assert not any(word in text for word in ("refnet", "referral", "chuyển", "bạo lực", "violence",
                                                     "shelter", "hotline", "đường dây"))

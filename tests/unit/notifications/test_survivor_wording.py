"""What a survivor reads is neutral: it names no service, no violence, no shelter, no organisation.

Someone else may read her phone. Every survivor message, in both languages, on both of her channels,
in every part (subject, text, SMS, HTML), is checked against a list of forbidden words, with and
without Vietnamese diacritics, and shown to be the same whatever the event was about.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime

import pytest

from notifications.domain.messages import (
    Addressee,
    Channel,
    Language,
    NoticeKind,
    ReferralStatus,
    Role,
    StatusChange,
    Urgency,
)
from notifications.domain.rendering import render
from notifications.domain.safe_contact import (
    ANYTIME,
    ContactPoint,
    Send,
    SurvivorProfile,
    survivor_message,
)
from refnet_platform.vocabulary import ServiceType

FORBIDDEN_EN = [
    "violence", "violent", "abuse", "abused", "abuser", "assault", "rape", "sexual", "domestic", "gbv",
    "gender", "trafficking", "trafficked", "exploitation", "shelter", "safe house", "refuge", "police",
    "officer", "hospital", "clinic", "medical", "doctor", "forensic", "legal", "lawyer", "court",
    "counsel", "counselling", "counseling", "therapy", "psychosocial", "social work", "women's union",
    "protection", "victim", "survivor", "referral", "case", "hotline", "helpline", "111", "refnet",
    "child", "emergency", "crisis", "bed",
]
FORBIDDEN_VI = [
    "bạo lực", "bạo hành", "xâm hại", "lạm dụng", "hiếp", "tình dục", "gia đình", "giới", "mua bán người",
    "buôn bán người", "bóc lột", "nhà tạm lánh", "tạm lánh", "địa chỉ tin cậy", "công an", "cảnh sát",
    "bệnh viện", "trạm y tế", "y tế", "bác sĩ", "pháp y", "pháp lý", "luật sư", "tòa án", "tư vấn",
    "tâm lý", "công tác xã hội", "bảo trợ", "hội phụ nữ", "phụ nữ", "bảo vệ", "nạn nhân", "chuyển gửi",
    "hồ sơ", "đường dây nóng", "trẻ em", "khẩn cấp", "giường",
]


def strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def forbidden_in(text: str) -> list[str]:
    found = []
    plain = strip_marks(text).lower()
    for word in FORBIDDEN_EN + FORBIDDEN_VI:
        for form, haystack in ((word.lower(), text.lower()), (strip_marks(word).lower(), plain)):
            if re.search(rf"(?<!\w){re.escape(form)}(?!\w)", haystack) and word not in found:
                found.append(word)
    return found


def test_the_check_catches_forbidden_words_with_or_without_diacritics() -> None:
    assert set(forbidden_in("Nha tam lanh has a bed")) == {"bed", "nhà tạm lánh", "tạm lánh"}
    assert forbidden_in("Công an phường") == ["công an"]
    assert forbidden_in("cong an") == ["công an"]
    assert forbidden_in("Thành công!") == []


SURVIVOR_KINDS = [k for k in NoticeKind if k.for_survivor]


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("kind", SURVIVOR_KINDS)
def test_survivor_templates_contain_no_forbidden_word(kind: NoticeKind, language: Language) -> None:
    rendered = render(kind, language, {})
    for part in (rendered.subject, rendered.text, rendered.sms, rendered.html):
        assert part
        assert forbidden_in(part) == [], f"{kind}/{language}: {forbidden_in(part)}"
    assert "STOP" in rendered.sms and "href" not in rendered.html


def test_survivor_templates_cannot_see_anything_about_the_event() -> None:
    # The survivor templates render from an empty context: any variable would fail (StrictUndefined).
    for kind in SURVIVOR_KINDS:
        for language in Language:
            assert render(kind, language, {}) == render(kind, language, {})


CASE = str(uuid.uuid4())
NOW = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.EMAIL])
@pytest.mark.parametrize("language", list(Language))
def test_survivor_messages_are_identical_whatever_the_service_or_urgency(
    channel: Channel, language: Language
) -> None:
    profile = SurvivorProfile(
        CASE, language, True, frozenset(ServiceType), (channel,),
        (ContactPoint(Channel.SMS, "0912000111", True), ContactPoint(Channel.EMAIL, "her@mail.test", True)),
        (ANYTIME,),
    )
    bodies = set()
    for service in ServiceType:
        for urgency in Urgency:
            event = StatusChange("ev", str(uuid.uuid4()), CASE, "prov", "79", ReferralStatus.REQUESTED,
                                 ReferralStatus.ACCEPTED, "", "cw", service, urgency)
            decision = survivor_message(event, Addressee(Role.SURVIVOR, CASE, NoticeKind.SURVIVOR_CONFIRMED),
                                        profile, NOW)
            assert isinstance(decision, Send)
            m = decision.message
            assert m.channel is channel
            assert not m.payload
            for part in (m.subject, m.body, m.html):
                assert forbidden_in(part) == []
            bodies.add((m.subject, m.body, m.html))
    assert len(bodies) == 1

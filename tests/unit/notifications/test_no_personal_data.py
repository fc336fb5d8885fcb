"""No personal data in what staff read, even when personal data is smuggled into an event's fields.

Seeded personal data (names, phone numbers, addresses, e-mail addresses, narratives) is put into
every string field of every event type, any number of them at once. Rendering must then either
refuse the event (InvalidEvent: an id or province code that is not one) or produce messages in which
none of the seeded strings appears, in any channel, in any part (subject, body, HTML, webhook JSON).
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import fields, replace
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.domain.messages import (
    BedOutcome,
    BedUpdate,
    Channel,
    EmergencyCase,
    Escalation,
    Event,
    InvalidEvent,
    Language,
    NewReferral,
    ReferralStatus,
    Role,
    StatusChange,
    Urgency,
    recipients_for,
)
from notifications.domain.rendering import Contact, Endpoint, Links, OutboundMessage, staff_messages
from notifications.domain.safe_contact import ANYTIME, ContactPoint, Send, SurvivorProfile, survivor_message
from refnet_platform.vocabulary import ServiceType

LINKS = Links("https://partners.refnet.test", "https://ops.refnet.test")
CONTACT_CHANNELS = (
    Endpoint(Channel.EMAIL, "duty@partner.test"), Endpoint(Channel.SMS, "0901000001"),
    Endpoint(Channel.WEBHOOK, "https://partner.test/hook"), Endpoint(Channel.IN_APP, "inbox-1"),
)

NAMES = ["Nguyễn Thị Lan", "Trần Văn Hùng", "Lê Thị Mai Anh", "Phạm Ngọc Bích", "Hoàng Minh Tuấn", "Đỗ Thu Hà"]
ADDRESSES = ["12 Lê Lợi, phường Bến Nghé", "số 5 ngõ 42 Trần Duy Hưng", "thôn Đông, xã Yên Phong"]
NARRATIVES = [
    "chồng đánh chị ấy tối qua",
    "her husband beat her last night",
    "bị bán sang Trung Quốc năm 2023",
    "the child sleeps at the market",
]
phones = st.from_regex(r"0[35789][0-9]{8}", fullmatch=True) | st.from_regex(
    r"\+84 ?[35789][0-9]{2} ?[0-9]{3} ?[0-9]{3}", fullmatch=True
)
emails = st.from_regex(r"[a-z]{4,10}\.[a-z]{3,8}[0-9]{2}@(gmail|yahoo)\.com", fullmatch=True)
PERSONAL = st.one_of(st.sampled_from(NAMES), st.sampled_from(ADDRESSES), st.sampled_from(NARRATIVES), phones, emails)

uuids = st.uuids().map(str)
valid_province = st.sampled_from(["01", "79", "48", "92"])
hold_until = st.none() | st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


def _events(valid_ids: bool) -> st.SearchStrategy[Event]:
    # With valid_ids, ids and province codes are well formed and personal data goes only into the
    # other string fields; otherwise it may go anywhere.
    idv = uuids if valid_ids else uuids | PERSONAL
    prov = valid_province if valid_ids else valid_province | PERSONAL
    free = st.sampled_from(["", "prov-1", "cw-1", "no_capacity", "accept", "no_provider", "hold_expired"]) | PERSONAL
    urgency = st.sampled_from(Urgency)
    service = st.sampled_from(ServiceType)
    status = st.sampled_from(ReferralStatus)
    return st.one_of(
        st.builds(NewReferral, free, idv, idv, service, free, prov, urgency, free, free),
        st.builds(StatusChange, free, idv, idv, free, prov, st.none() | status, status, free, free,
                  st.none() | service, urgency),
        st.builds(Escalation, free, idv, idv, prov, st.none() | service, free, free, free, hold_until, st.booleans(),
                  free, urgency),
        st.builds(BedUpdate, free, st.sampled_from(BedOutcome), idv, idv, free, prov, free, hold_until, free,
                  urgency),
        st.builds(EmergencyCase, free, idv, prov, free, st.integers(-1, 9)),
    )


def _seeded(event: Event) -> set[str]:
    values = {getattr(event, f.name) for f in fields(event)}
    return {
        v for v in values
        if isinstance(v, str) and v and (v in NAMES or v in ADDRESSES or v in NARRATIVES or "@" in v
                                         or (v.lstrip("+").replace(" ", "").isdigit() and len(v) >= 10))
    }


def _surfaces(message: OutboundMessage) -> list[str]:
    return [
        message.subject, message.body, message.html,
        json.dumps(dict(message.payload), ensure_ascii=False), *message.payload.values(),
    ]


def _assert_clean(message: OutboundMessage, personal: set[str]) -> None:
    for surface in _surfaces(message):
        lowered = surface.lower()
        for value in personal:
            for form in (value, html.escape(value), json.dumps(value, ensure_ascii=False)[1:-1]):
                assert form.lower() not in lowered, f"{value!r} leaked into a {message.kind} {message.channel}"


EVERYONE = SurvivorProfile(
    case_id="",  # replaced per event
    contact_consented=True,
    services=frozenset(ServiceType),
    channels=(Channel.SMS, Channel.EMAIL),
    contact_points=(ContactPoint(Channel.SMS, "0987654321", True),),
    windows=(ANYTIME,),
)


def _render_all(event: Event, language: Language) -> list[OutboundMessage]:
    profile = replace(EVERYONE, case_id=event.case_id, language=language)
    out: list[OutboundMessage] = []
    for addressee in recipients_for(event, profile):
        if addressee.role is Role.SURVIVOR:
            decision = survivor_message(event, addressee, profile, datetime(2025, 6, 1, 3, 0, tzinfo=UTC))
            assert isinstance(decision, Send)
            out.append(decision.message)
        else:
            out.extend(staff_messages(event, addressee, Contact("x", language, CONTACT_CHANNELS), LINKS))
    return out


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(event=_events(valid_ids=False), language=st.sampled_from(Language))
def test_personal_data_anywhere_is_refused_or_never_rendered(event: Event, language: Language) -> None:
    personal = _seeded(event)
    try:
        messages = _render_all(event, language)
    except InvalidEvent as refused:
        # Refusal is only for the fields that are ids or codes.
        assert refused.field_name in {"referral_id", "case_id", "province_code"}
        return
    for message in messages:
        _assert_clean(message, personal)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(event=_events(valid_ids=True), language=st.sampled_from(Language))
def test_well_formed_events_always_render_and_never_carry_free_text(event: Event, language: Language) -> None:
    personal = _seeded(event)
    messages = _render_all(event, language)
    # Every event tells someone, except a referral routed to no provider (its escalation event does).
    assert messages or (isinstance(event, NewReferral) and not event.provider_id)
    for message in messages:
        _assert_clean(message, personal)


def test_the_seeding_itself_is_detected() -> None:
    # Guard against a vacuous property: a message that did carry the data would fail the check.
    event = NewReferral("e", str(uuid.uuid4()), str(uuid.uuid4()), ServiceType.MEDICAL, NAMES[0], "01")
    assert _seeded(event) == {NAMES[0]}
    (message,) = staff_messages(event, recipients_for(event)[0], Contact("x", Language.VI,
                                                                           CONTACT_CHANNELS[:1]), LINKS)
    leaky = replace(message, body=message.body + NAMES[0])
    try:
        _assert_clean(leaky, _seeded(event))
    except AssertionError:
        return
    raise AssertionError("a leak went unnoticed")

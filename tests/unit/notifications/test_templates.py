"""What staff read: both languages render, every code has a label, provider messages say where to act."""

from __future__ import annotations

import re
import uuid
from dataclasses import fields, replace
from datetime import UTC, datetime

import jinja2
import pytest

from notifications.domain import rendering
from notifications.domain.messages import (
    KNOWN_REASONS,
    KNOWN_SLAS,
    KNOWN_STEPS,
    Addressee,
    BedOutcome,
    BedUpdate,
    Channel,
    EmergencyCase,
    Escalation,
    Event,
    InvalidEvent,
    Language,
    NewReferral,
    NoticeKind,
    ReferralStatus,
    Role,
    StatusChange,
    StepOverdue,
    Urgency,
    recipients_for,
)
from notifications.domain.rendering import (
    TEMPLATES_DIR,
    Contact,
    Endpoint,
    Links,
    by_priority,
    context_for,
    notice_id,
    render,
    short_ref,
    staff_messages,
    template_environment,
)
from refnet_platform.vocabulary import ServiceType

LINKS = Links("https://partners.refnet.test", "https://ops.refnet.test/console")
REFERRAL = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
CASE = "0190a5b2-7c3d-7e4f-8a9b-aaaabbbbcccc"
VIETNAMESE = re.compile(r"[ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ]", re.I)
ALL_CHANNELS = tuple(
    Endpoint(c, a) for c, a in (
        (Channel.EMAIL, "duty@partner.test"), (Channel.SMS, "0901000001"),
        (Channel.WEBHOOK, "https://partner.test/hook"), (Channel.IN_APP, "inbox-1"),
    )
)


def events() -> list[Event]:
    hold = datetime(2025, 11, 23, 16, 30, tzinfo=UTC)
    return [
        NewReferral("e1", REFERRAL, CASE, ServiceType.MEDICAL, "prov", "79", Urgency.EMERGENCY, "cw"),
        NewReferral("e1b", REFERRAL, CASE, ServiceType.SHELTER, "prov", "01", Urgency.ROUTINE, "cw"),
        StatusChange("e2", REFERRAL, CASE, "prov", "79", ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED,
                     "", "cw", ServiceType.LEGAL_AID),
        StatusChange("e3", REFERRAL, CASE, "prov", "79", ReferralStatus.REQUESTED, ReferralStatus.ESCALATED,
                     "not_accepted_in_time", "cw", ServiceType.POLICE_PROTECTION, Urgency.EMERGENCY),
        StatusChange("e4", REFERRAL, CASE, "prov", "79", ReferralStatus.REQUESTED, ReferralStatus.EXPIRED,
                     "", "", None),
        StatusChange("e5", REFERRAL, CASE, "prov", "79", None, ReferralStatus.CANCELLED,
                     "consent_withdrawn", "cw", ServiceType.PSYCHOSOCIAL),
        Escalation("e6", REFERRAL, CASE, "79", ServiceType.SOCIAL_PROTECTION, "prov", "not_started_in_time",
                   "start", hold, rerouted=False, urgency=Urgency.EMERGENCY),
        Escalation("e6b", REFERRAL, CASE, "79", ServiceType.SHELTER, "", "no_provider", rerouted=False),
        Escalation("e6c", REFERRAL, CASE, "79", None, "prov", "not_accepted_in_time", "accept", hold, True),
        BedUpdate("e7", BedOutcome.RESERVED, REFERRAL, CASE, "sh", "79", "", hold, "cw"),
        BedUpdate("e8", BedOutcome.REJECTED, REFERRAL, CASE, "sh", "79", "no_capacity", None, "cw",
                  Urgency.EMERGENCY),
        BedUpdate("e9", BedOutcome.RELEASED, REFERRAL, CASE, "sh", "79", "checked_out", None, "cw"),
        EmergencyCase("e10", CASE, "79", "cw", 2),
        StepOverdue("e11", CASE, "22", "emergency_measures", hold, "qn-worker-7", Urgency.EMERGENCY),
        StepOverdue("e12", CASE, "22", "not-a-step", None, ""),
    ]


def staff_pairs() -> list[tuple[Event, Addressee]]:
    return [(e, a) for e in events() for a in recipients_for(e) if a.role is not Role.SURVIVOR]


def test_every_staff_kind_is_exercised() -> None:
    kinds = {a.kind for _, a in staff_pairs()}
    assert kinds == {k for k in NoticeKind if not k.for_survivor}


def test_every_kind_has_a_template_in_both_languages_and_nothing_else() -> None:
    expected = {f"{k}.j2" for k in NoticeKind} | {"_labels.j2", "_email.html.j2"}
    for language in Language:
        assert {p.name for p in (TEMPLATES_DIR / language).iterdir()} == expected
        env = template_environment()
        for kind in NoticeKind:
            assert set(env.get_template(f"{language}/{kind}.j2").blocks) == {"subject", "text", "sms"}


@pytest.mark.parametrize("language", list(Language))
def test_every_code_has_a_label(language: Language) -> None:
    labels = template_environment().get_template(f"{language}/_labels.j2").module
    assert {str(s) for s in ServiceType} | {""} == set(labels.service)  # type: ignore[attr-defined]
    assert {str(u) for u in Urgency} == set(labels.urgency)  # type: ignore[attr-defined]
    assert {str(s) for s in ReferralStatus} | {""} == set(labels.status)  # type: ignore[attr-defined]
    assert set(KNOWN_REASONS) | {""} == set(labels.reason)  # type: ignore[attr-defined]
    assert set(KNOWN_SLAS) == set(labels.sla)  # type: ignore[attr-defined]
    assert set(KNOWN_STEPS) == set(labels.step)  # type: ignore[attr-defined]


def test_a_missed_step_tells_the_case_worker_and_alerts_the_supervisor_with_the_step_named() -> None:
    event = StepOverdue("e11", CASE, "22", "emergency_measures", datetime(2026, 1, 5, 1, 0, tzinfo=UTC), "qn-worker-7",
                        Urgency.EMERGENCY)
    worker, supervisor = recipients_for(event)
    assert (worker.role, worker.recipient_id, worker.kind) == (Role.CASE_WORKER, "qn-worker-7",
                                                                NoticeKind.CASE_STEP_OVERDUE)
    assert (supervisor.role, supervisor.recipient_id, supervisor.kind) == (Role.SUPERVISOR, "22",
                                                                            NoticeKind.CASE_STEP_ESCALATED)
    vi = render(supervisor.kind, Language.VI, context_for(event, supervisor, LINKS))
    assert "can thiệp khẩn cấp" in vi.text and "08:00 05/01/2026" in vi.text and "CS-BBBBCCCC" in vi.subject
    en = render(worker.kind, Language.EN, context_for(event, worker, LINKS))
    assert "emergency measures (within 12 hours)" in en.text and f"/cases/{CASE}" in en.text


@pytest.mark.parametrize(("event", "addressee"), staff_pairs(), ids=lambda v: getattr(v, "kind", ""))
def test_staff_messages_render_in_both_languages(event: Event, addressee: Addressee) -> None:
    by_language = {}
    for language in Language:
        contact = Contact(addressee.recipient_id, language, ALL_CHANNELS)
        messages = staff_messages(event, addressee, contact, LINKS)
        assert [m.channel for m in messages] == [Channel.EMAIL, Channel.SMS, Channel.WEBHOOK, Channel.IN_APP]
        for m in messages:
            assert m.subject and m.body and "\n" not in m.subject
            assert m.language is language
            assert "{{" not in m.body and "{%" not in m.body
        sms = messages[1].body
        assert "\n" not in sms and len(sms) <= 320
        email = messages[0]
        assert email.html.startswith("<!DOCTYPE html>") and f'lang="{language}"' in email.html
        assert messages[2].payload["notice_id"] == messages[2].notice_id
        assert messages[2].payload["text"] == messages[2].body
        by_language[language] = messages[0]
    assert VIETNAMESE.search(by_language[Language.VI].body)
    assert not VIETNAMESE.search(by_language[Language.EN].body)
    assert by_language[Language.VI].body != by_language[Language.EN].body


def test_provider_message_has_short_ref_service_urgency_and_where_to_act() -> None:
    event = events()[0]
    (addressee,) = recipients_for(event)
    en, sms = staff_messages(event, addressee, Contact("prov", Language.EN, ALL_CHANNELS[:2]), LINKS)
    assert short_ref(REFERRAL) == "RF-2E3F4A5B"
    assert short_ref(REFERRAL) in en.subject and short_ref(REFERRAL) in sms.body
    assert "Medical care" in en.body and "EMERGENCY" in en.body and en.subject.startswith("[EMERGENCY]")
    link = f"https://partners.refnet.test/referrals/{REFERRAL}"
    assert link in en.body and link in sms.body and f'href="{link}"' in en.html
    assert "refnet.referral.v1.ReferralService" in en.body
    assert CASE not in en.body and CASE not in en.html  # the provider never sees the case id
    vi = staff_messages(event, addressee, Contact("prov", Language.VI, ALL_CHANNELS[:1]), LINKS)[0]
    assert vi.subject.startswith("[KHẨN CẤP]") and "Y tế" in vi.body and link in vi.body


def test_case_worker_message_names_old_and_new_status_and_reason() -> None:
    event = StatusChange("e", REFERRAL, CASE, "p", "79", ReferralStatus.ACCEPTED, ReferralStatus.CANCELLED,
                         "case_closed", "cw", ServiceType.SHELTER)
    addressee = Addressee(Role.CASE_WORKER, "cw", NoticeKind.REFERRAL_STATUS)
    (en,) = staff_messages(event, addressee, Contact("cw", Language.EN, ALL_CHANNELS[:1]), LINKS)
    assert "now cancelled (was accepted): case closed" in en.body
    assert f"https://ops.refnet.test/console/cases/{CASE}/referrals/{REFERRAL}" in en.body


def test_a_provider_is_not_told_what_the_survivor_decided() -> None:
    event = StatusChange("e", REFERRAL, CASE, "p", "79", ReferralStatus.ACCEPTED, ReferralStatus.CANCELLED,
                         "consent_withdrawn", "cw", ServiceType.MEDICAL)
    provider = Addressee(Role.PROVIDER, "p", NoticeKind.REFERRAL_CANCELLED)
    (en,) = staff_messages(event, provider, Contact("p", Language.EN, ALL_CHANNELS[:1]), LINKS)
    assert "consent" not in en.body and "no action is needed" in en.body
    case_worker = Addressee(Role.CASE_WORKER, "cw", NoticeKind.REFERRAL_STATUS)
    (cw,) = staff_messages(event, case_worker, Contact("cw", Language.EN, ALL_CHANNELS[:1]), LINKS)
    assert "consent withdrawn" in cw.body


def test_unknown_reason_codes_are_never_rendered_verbatim() -> None:
    event = StatusChange("e", REFERRAL, CASE, "p", "79", ReferralStatus.REQUESTED, ReferralStatus.REJECTED,
                         "she_said_her_husband_is_a_policeman", "cw", ServiceType.SHELTER)
    addressee = Addressee(Role.CASE_WORKER, "cw", NoticeKind.REFERRAL_STATUS)
    assert context_for(event, addressee, LINKS)["reason"] == "other"
    (en,) = staff_messages(event, addressee, Contact("cw", Language.EN, ALL_CHANNELS[:1]), LINKS)
    assert "husband" not in en.body and "other reason" in en.body


def test_supervisor_messages_say_what_was_missed_and_whether_it_was_rerouted() -> None:
    contact = Contact("sup", Language.EN, ALL_CHANNELS[:1])
    breach, nobody, rerouted = (e for e in events() if isinstance(e, Escalation))
    (en,) = staff_messages(breach, recipients_for(breach)[0], contact, LINKS)
    assert en.subject.startswith("[SLA breached] [EMERGENCY]")
    assert "missed its start of service deadline of 23:30 23/11/2025 (Vietnam time): not started in time" in en.body
    assert "No other provider was found" in en.body
    (en,) = staff_messages(nobody, recipients_for(nobody)[0], contact, LINKS)
    assert en.subject.startswith("[Escalated]") and "escalated to you: no provider found" in en.body
    (en,) = staff_messages(rerouted, recipients_for(rerouted)[0], contact, LINKS)
    assert "passed to another provider" in en.body and "Not stated" in en.body


def test_bed_hold_time_is_shown_in_vietnam_time() -> None:
    event = next(e for e in events() if e.event_id == "e7")  # hold until 16:30 UTC = 23:30 in Vietnam
    (addressee,) = recipients_for(event)
    (en,) = staff_messages(event, addressee, Contact("cw", Language.EN, ALL_CHANNELS[:1]), LINKS)
    assert "until 23:30 23/11/2025 (Vietnam time)" in en.body


@pytest.mark.parametrize(
    "bad",
    [
        {"referral_id": "Nguyen Thi Lan"},
        {"referral_id": "ref-1"},
        {"referral_id": "{" + REFERRAL + "}"},
        {"case_id": "0912345678"},
        {"province_code": "Ha Noi"},
        {"province_code": "7"},
    ],
)
def test_malformed_ids_are_refused_not_rendered(bad: dict[str, str]) -> None:
    fields = dict(event_id="e", referral_id=REFERRAL, case_id=CASE, service_type=ServiceType.MEDICAL,
                  provider_id="p", province_code="79")
    fields.update(bad)
    event = NewReferral(**fields)
    with pytest.raises(InvalidEvent) as info:
        staff_messages(event, recipients_for(event)[0], Contact("p", Language.EN, ALL_CHANNELS), LINKS)
    assert next(iter(bad)) == info.value.field_name


def test_strict_undefined_fails_loudly_on_a_missing_variable() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render(NoticeKind.REFERRAL_NEW, Language.EN, {"urgency": "routine"})


def test_html_is_autoescaped_and_text_is_not() -> None:
    ctx = context_for(events()[0], Addressee(Role.PROVIDER, "prov", NoticeKind.REFERRAL_NEW), LINKS)
    ctx["action_url"] = 'https://x.test/?a=1&b="<script>'
    rendered = render(NoticeKind.REFERRAL_NEW, Language.EN, ctx)
    assert "<script>" not in rendered.html
    assert "&amp;b=&#34;&lt;script&gt;" in rendered.html
    assert 'a=1&b="<script>' in rendered.text


def test_links_must_be_plain_urls() -> None:
    with pytest.raises(ValueError, match="partner_portal"):
        Links("javascript:alert(1)", "https://ops.test")
    with pytest.raises(ValueError, match="operator_console"):
        Links("https://p.test", "https://ops.test/?next=evil")


def test_notice_ids_are_deterministic_per_event_recipient_and_channel() -> None:
    event = events()[0]
    (addressee,) = recipients_for(event)
    first = staff_messages(event, addressee, Contact("prov", Language.EN, ALL_CHANNELS), LINKS)
    again = staff_messages(event, addressee, Contact("prov", Language.VI, ALL_CHANNELS), LINKS)
    assert [m.notice_id for m in first] == [m.notice_id for m in again]
    assert len({m.notice_id for m in first}) == 4
    assert notice_id("e1", Role.PROVIDER, "prov", Channel.SMS) == first[1].notice_id


def test_one_message_per_channel_and_empty_addresses_skipped() -> None:
    event = events()[0]
    (addressee,) = recipients_for(event)
    contact = Contact("prov", Language.EN, (
        Endpoint(Channel.EMAIL, ""), Endpoint(Channel.EMAIL, "a@p.test"), Endpoint(Channel.EMAIL, "b@p.test"),
    ))
    (only,) = staff_messages(event, addressee, contact, LINKS)
    assert only.address == "a@p.test"


def test_emergencies_go_first() -> None:
    routine, emergency = events()[1], events()[0]
    contact = Contact("prov", Language.EN, ALL_CHANNELS[:1])
    queue = [
        *staff_messages(routine, recipients_for(routine)[0], contact, LINKS),
        *staff_messages(emergency, recipients_for(emergency)[0], contact, LINKS),
    ]
    assert [m.event_id for m in by_priority(queue)] == ["e1", "e1b"]
    assert by_priority(queue)[0].priority == 0


def test_survivor_addressees_are_refused_by_staff_messages() -> None:
    addressee = Addressee(Role.SURVIVOR, CASE, NoticeKind.SURVIVOR_CONFIRMED)
    with pytest.raises(ValueError, match="safe_contact"):
        staff_messages(events()[2], addressee, Contact(CASE, Language.VI, ALL_CHANNELS), LINKS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("vi", Language.VI), ("en-GB", Language.EN), ("EN_us", Language.EN), ("fr", Language.VI), (None, Language.VI)],
)
def test_language_parse(value: str | None, expected: Language) -> None:
    assert Language.parse(value) is expected


def test_ids_must_be_canonical_uuids() -> None:
    assert short_ref(str(uuid.UUID(REFERRAL)).upper()) == short_ref(REFERRAL)
    with pytest.raises(InvalidEvent):
        short_ref("urn:uuid:" + REFERRAL)


def another(event: Event) -> Event:
    """The same kind of event about another referral and case, due at another time."""
    later = datetime(2026, 2, 3, 4, 5, tzinfo=UTC)
    changes = {"event_id": "other", "referral_id": str(uuid.uuid4()), "case_id": str(uuid.uuid4()),
               "deadline": later, "hold_until": later, "due_at": later}
    return replace(event, **{k: v for k, v in changes.items()
                             if k in {f.name for f in fields(event)} and (k.endswith("_id") or getattr(event, k))})


@pytest.mark.parametrize(("event", "addressee"), staff_pairs(), ids=lambda v: getattr(v, "kind", ""))
def test_a_notice_of_a_kind_seen_before_reads_as_its_templates_render_it(
        event: Event, addressee: Addressee, monkeypatch: pytest.MonkeyPatch) -> None:
    later = another(event)
    for language in Language:
        monkeypatch.setattr(rendering, "_SHAPES", {})
        fresh = render(addressee.kind, language, context_for(later, addressee, LINKS))  # the templates run
        render(addressee.kind, language, context_for(event, addressee, LINKS))  # the shape of both, kept
        assert all(rendering._SHAPES.values())
        again = render(addressee.kind, language, context_for(later, addressee, LINKS))  # from the shape
        assert again == fresh and getattr(later, "referral_id", later.case_id)[-8:].upper() in again.subject


def test_a_value_put_in_a_kept_shape_is_escaped_in_the_html(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendering, "_SHAPES", {})
    ctx = context_for(events()[0], Addressee(Role.PROVIDER, "prov", NoticeKind.REFERRAL_NEW), LINKS)
    render(NoticeKind.REFERRAL_NEW, Language.EN, ctx)
    rendered = render(NoticeKind.REFERRAL_NEW, Language.EN, {**ctx, "action_url": "https://x.test/a&b"})
    assert "https://x.test/a&amp;b" in rendered.html and "https://x.test/a&b" in rendered.text


def test_a_template_that_does_more_with_a_value_than_print_it_is_run_for_every_notice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = template_environment()
    lowered = env.from_string("{% block subject %}{{ ref|lower }}{% endblock %}{% block text %}{{ ref }}{% endblock %}"
                              "{% block sms %}{{ ref }}{% endblock %}")
    monkeypatch.setattr(rendering, "_templates", lambda kind, language: rendering._Templates(
        lowered, object(), env.from_string("{{ subject }}")))
    monkeypatch.setattr(rendering, "_SHAPES", {})
    first = render(NoticeKind.REFERRAL_NEW, Language.EN, {"ref": "RF-AAAA0001"})
    second = render(NoticeKind.REFERRAL_NEW, Language.EN, {"ref": "RF-BBBB0002"})
    assert (first.subject, second.subject, second.text) == ("rf-aaaa0001", "rf-bbbb0002", "RF-BBBB0002")
    assert list(rendering._SHAPES.values()) == [None]

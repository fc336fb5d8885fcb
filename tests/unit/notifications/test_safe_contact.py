"""Safe contact: only safe addresses, only in her window (Asia/Ho_Chi_Minh), deferred never dropped,
and withdrawal of consent stops what is pending."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from notifications.domain.messages import (
    Addressee,
    Channel,
    Language,
    NoticeKind,
    ReferralStatus,
    Role,
    StatusChange,
    Urgency,
    recipients_for,
)
from notifications.domain.rendering import Contact, Endpoint, Links, OutboundMessage, staff_messages
from notifications.domain.safe_contact import (
    ANYTIME,
    ConsentWithdrawal,
    ContactPoint,
    ContactWindow,
    Defer,
    Route,
    Send,
    SurvivorProfile,
    Withhold,
    apply_withdrawal,
    choose_route,
    in_window,
    next_window_open,
    normalize_address,
    recheck,
    stop_pending,
    survivor_message,
)
from refnet_platform.vocabulary import ServiceType

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
DAYTIME = ContactWindow.parse("07:00-21:00")
CASE = str(uuid.UUID(int=7))


def hcm(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=HCM)


# --- the window ----------------------------------------------------------------------------------


def test_inside_the_window_is_now() -> None:
    now = hcm(2025, 6, 2, 12)
    assert next_window_open([DAYTIME], now) == now
    assert next_window_open([DAYTIME], hcm(2025, 6, 2, 7)) == hcm(2025, 6, 2, 7)


def test_before_the_window_waits_for_it_the_same_day() -> None:
    assert next_window_open([DAYTIME], hcm(2025, 6, 2, 6, 59)) == hcm(2025, 6, 2, 7)


def test_the_window_end_is_exclusive() -> None:
    assert next_window_open([DAYTIME], hcm(2025, 6, 2, 21)) == hcm(2025, 6, 3, 7)


def test_around_midnight_the_vietnam_date_not_the_utc_date_counts() -> None:
    # 16:30 UTC on 1 March is 23:30 on 1 March in Vietnam: next opening 07:00 on 2 March.
    assert next_window_open([DAYTIME], datetime(2025, 3, 1, 16, 30, tzinfo=UTC)) == hcm(2025, 3, 2, 7)
    # 17:30 UTC on 1 March is already 00:30 on 2 March in Vietnam: still 07:00 on 2 March, not 3 March.
    opens = next_window_open([DAYTIME], datetime(2025, 3, 1, 17, 30, tzinfo=UTC))
    assert opens == hcm(2025, 3, 2, 7)
    assert opens is not None and opens.astimezone(UTC) == datetime(2025, 3, 2, 0, 0, tzinfo=UTC)
    # Midnight exactly, and one second before it.
    assert next_window_open([DAYTIME], hcm(2025, 3, 2, 0)) == hcm(2025, 3, 2, 7)
    assert next_window_open([DAYTIME], hcm(2025, 3, 1, 23, 59) + timedelta(seconds=59)) == hcm(2025, 3, 2, 7)
    # New Year's Eve rolls into the next year.
    assert next_window_open([DAYTIME], hcm(2025, 12, 31, 22)) == hcm(2026, 1, 1, 7)


def test_a_window_across_midnight() -> None:
    night = ContactWindow.parse("22:00-06:00")
    assert night.duration == timedelta(hours=8)
    assert next_window_open([night], hcm(2025, 6, 2, 23)) == hcm(2025, 6, 2, 23)
    assert next_window_open([night], hcm(2025, 6, 3, 5, 59)) == hcm(2025, 6, 3, 5, 59)  # opened yesterday
    assert next_window_open([night], hcm(2025, 6, 3, 6)) == hcm(2025, 6, 3, 22)
    assert next_window_open([night], hcm(2025, 6, 3, 12)) == hcm(2025, 6, 3, 22)


def test_weekday_windows_wait_over_the_weekend() -> None:
    office = ContactWindow(time(9), time(17), frozenset(range(5)))  # Monday to Friday
    friday_evening = hcm(2025, 6, 6, 18)
    assert friday_evening.weekday() == 4
    assert next_window_open([office], friday_evening) == hcm(2025, 6, 9, 9)
    # A night window opening on Sunday (6) runs into Monday morning.
    sunday_night = ContactWindow(time(23), time(2), frozenset({6}))
    assert next_window_open([sunday_night], hcm(2025, 6, 9, 1)) == hcm(2025, 6, 9, 1)
    assert next_window_open([sunday_night], hcm(2025, 6, 9, 3)) == hcm(2025, 6, 15, 23)


def test_the_earliest_of_several_windows() -> None:
    windows = [ContactWindow.parse("18:00-19:00"), ContactWindow.parse("11:30-12:00")]
    assert next_window_open(windows, hcm(2025, 6, 2, 8)) == hcm(2025, 6, 2, 11, 30)
    assert next_window_open(windows, hcm(2025, 6, 2, 12)) == hcm(2025, 6, 2, 18)


@pytest.mark.parametrize(
    "now",
    [
        # New York springs forward at 02:00 on 9 March 2025; 03:30 EDT = 07:30 UTC = 14:30 in Vietnam.
        datetime(2025, 3, 9, 3, 30, tzinfo=ZoneInfo("America/New_York")),
        # London falls back on 26 October 2025: 01:30 happens twice (fold 0 = BST, fold 1 = GMT).
        datetime(2025, 10, 26, 1, 30, tzinfo=ZoneInfo("Europe/London")),
        datetime(2025, 10, 26, 1, 30, fold=1, tzinfo=ZoneInfo("Europe/London")),
        # Berlin springs forward on 30 March 2025.
        datetime(2025, 3, 30, 3, 15, tzinfo=ZoneInfo("Europe/Berlin")),
    ],
)
def test_now_in_a_zone_with_daylight_saving_is_judged_in_vietnam_time(now: datetime) -> None:
    local = now.astimezone(HCM)
    opens = next_window_open([DAYTIME], now)
    assert opens is not None and opens.utcoffset() == timedelta(hours=7)
    # Compared as instants: Python never calls a time in a repeated (fold) hour equal to one in
    # another zone, so == across zones is the wrong test here.
    if time(7) <= local.time() < time(21):
        assert opens.timestamp() == now.timestamp()
    else:
        expected_day = local.date() if local.time() < time(7) else local.date() + timedelta(days=1)
        assert opens == datetime.combine(expected_day, time(7), tzinfo=HCM)


def test_vietnam_keeps_no_daylight_saving() -> None:
    offsets = {datetime(2025, m, 15, tzinfo=HCM).utcoffset() for m in range(1, 13)}
    assert offsets == {timedelta(hours=7)}


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_window_open([DAYTIME], datetime(2025, 1, 1, 12))


def test_no_window_means_no_safe_time() -> None:
    assert next_window_open([], hcm(2025, 1, 1, 12)) is None
    assert next_window_open([ANYTIME], hcm(2025, 1, 1, 3)) == hcm(2025, 1, 1, 3)


def test_window_parsing() -> None:
    assert ContactWindow.parse(" 7:05 - 24:00 ") == ContactWindow(time(7, 5), time(0, 0))
    with pytest.raises(ValueError):
        ContactWindow.parse("morning")
    with pytest.raises(ValueError):
        ContactWindow(time(1), time(2), frozenset({7}))
    with pytest.raises(ValueError):
        ContactWindow(time(1, tzinfo=UTC), time(2))


def test_a_safe_time_as_intake_records_it() -> None:
    # ISO weekdays (1 = Monday) become Python's (Monday is 0); none is every day; 24:00 ends the day.
    assert ContactWindow.from_safe_time([1, 7], "21:30", "23:00") == ContactWindow(
        time(21, 30), time(23, 0), frozenset({0, 6}))
    assert ContactWindow.from_safe_time([], "00:00", "24:00") == ANYTIME
    night = ContactWindow.from_safe_time([5], "22:00", "06:00")  # opens Friday night, into Saturday
    assert in_window([night], hcm(2026, 3, 7, 5, 59)) and not in_window([night], hcm(2026, 3, 8, 5))
    for weekdays, start, end in (([0], "08:00", "09:00"), ([8], "08:00", "09:00"), ([], "8:00", "09:00"),
                                 ([], "24:00", "06:00"), ([], "08:00", "08:00"), ([], "08:00", "25:00"),
                                 ([], "", "")):
        with pytest.raises(ValueError):
            ContactWindow.from_safe_time(weekdays, start, end)


windows_st = st.lists(
    st.builds(
        ContactWindow,
        st.times(),
        st.times(),
        st.frozensets(st.integers(0, 6), min_size=1),
    ),
    min_size=1,
    max_size=3,
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, HCM, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")]),
)


@given(windows=windows_st, now=instants)
def test_deferral_is_to_the_first_opening_and_never_a_drop(windows: list[ContactWindow], now: datetime) -> None:
    opens = next_window_open(windows, now)
    assert opens is not None, "with any window at all there is always a next opening"
    assert opens.utcoffset() == timedelta(hours=7)
    assert now <= opens <= now + timedelta(days=7)
    assert in_window(windows, opens)
    if opens > now:
        assert not in_window(windows, now)
        just_before = opens - timedelta(microseconds=1)
        assume(just_before >= now)
        assert not in_window(windows, just_before), "an earlier opening was skipped"


# --- the address ---------------------------------------------------------------------------------


def test_a_number_not_marked_safe_is_never_used() -> None:
    profile = SurvivorProfile(
        CASE, channels=(Channel.SMS,), contact_consented=True,
        contact_points=(ContactPoint(Channel.SMS, "0912000111", False), ContactPoint(Channel.SMS, "0988000222", True)),
    )
    assert choose_route(profile) == Route(Channel.SMS, "0988000222")
    only_unsafe = replace(profile, contact_points=profile.contact_points[:1])
    assert choose_route(only_unsafe) is None


def test_a_number_marked_unsafe_anywhere_is_unsafe_in_every_spelling() -> None:
    profile = SurvivorProfile(
        CASE, channels=(Channel.SMS,), contact_consented=True,
        contact_points=(
            ContactPoint(Channel.SMS, "0912 000 111", True), ContactPoint(Channel.SMS, "+84912000111", False),
        ),
    )
    assert normalize_address(Channel.SMS, "+84 912.000.111") == "0912000111"
    assert normalize_address(Channel.SMS, "0084912000111") == "0912000111"
    assert choose_route(profile) is None


def test_her_channel_preference_and_only_sms_or_email() -> None:
    points = (ContactPoint(Channel.SMS, "0912000111", True), ContactPoint(Channel.EMAIL, "Her@Mail.test", True),
              ContactPoint(Channel.WEBHOOK, "https://x.test", True))
    profile = SurvivorProfile(CASE, channels=(Channel.EMAIL, Channel.SMS), contact_points=points)
    assert choose_route(profile) == Route(Channel.EMAIL, "Her@Mail.test")
    assert choose_route(replace(profile, channels=(Channel.SMS,))) == Route(Channel.SMS, "0912000111")
    assert choose_route(replace(profile, channels=(Channel.WEBHOOK, Channel.IN_APP))) is None
    # A safe e-mail address she did not allow e-mail for is not used.
    assert choose_route(replace(profile, channels=(), contact_points=points)) is None


def test_garbage_addresses_are_not_routes() -> None:
    profile = SurvivorProfile(CASE, channels=(Channel.SMS, Channel.EMAIL), contact_points=(
        ContactPoint(Channel.SMS, "call after 6", True), ContactPoint(Channel.EMAIL, "not-an-address", True),
    ))
    assert choose_route(profile) is None


points_st = st.lists(
    st.builds(
        ContactPoint,
        st.sampled_from([Channel.SMS, Channel.EMAIL]),
        st.sampled_from(["0912000111", "+84 912 000 111", "0988000222", "0977-000-333", "a@x.test", "A@X.test",
                         "b@y.test"]),
        st.booleans(),
    ),
    max_size=6,
)


@given(points=points_st, channels=st.lists(st.sampled_from(Channel), max_size=4, unique=True))
def test_the_chosen_address_is_always_safe_and_allowed(points: list[ContactPoint], channels: list[Channel]) -> None:
    profile = SurvivorProfile(CASE, channels=tuple(channels), contact_points=tuple(points))
    route = choose_route(profile)
    unsafe = {(p.channel, normalize_address(p.channel, p.address)) for p in points if not p.safe}
    if route is None:
        return
    assert route.channel in channels and route.channel in (Channel.SMS, Channel.EMAIL)
    assert (route.channel, normalize_address(route.channel, route.address)) not in unsafe
    assert any(p.safe and p.channel is route.channel and p.address.strip() == route.address for p in points)


# --- the decision --------------------------------------------------------------------------------

LINKS = Links("https://p.test", "https://o.test")
PROFILE = SurvivorProfile(
    case_id=CASE, language=Language.EN, contact_consented=True,
    services=frozenset({ServiceType.MEDICAL, ServiceType.LEGAL_AID}), channels=(Channel.SMS,),
    contact_points=(ContactPoint(Channel.SMS, "0911111111", False), ContactPoint(Channel.SMS, "0922222222", True)),
    windows=(DAYTIME,),
)


def accepted(service: ServiceType = ServiceType.MEDICAL, urgency: Urgency = Urgency.ROUTINE) -> StatusChange:
    return StatusChange("ev-1", str(uuid.UUID(int=9)), CASE, "prov", "79", ReferralStatus.REQUESTED,
                        ReferralStatus.ACCEPTED, "", "cw", service, urgency)


SURVIVOR = Addressee(Role.SURVIVOR, CASE, NoticeKind.SURVIVOR_CONFIRMED)


def test_inside_her_window_it_is_sent_now_to_the_safe_number() -> None:
    decision = survivor_message(accepted(), SURVIVOR, PROFILE, hcm(2025, 6, 2, 10))
    assert isinstance(decision, Send)
    m = decision.message
    assert (m.channel, m.address, m.not_before, m.role) == (Channel.SMS, "0922222222", None, Role.SURVIVOR)
    assert m.body == "Your appointment is confirmed. Reply STOP to stop messages."


def test_in_quiet_hours_it_is_deferred_to_when_her_window_opens() -> None:
    late = hcm(2025, 6, 2, 23, 30)
    decision = survivor_message(accepted(ServiceType.MEDICAL, Urgency.EMERGENCY),
                                SURVIVOR, PROFILE, late)
    assert isinstance(decision, Defer)
    assert decision.until == hcm(2025, 6, 3, 7) == decision.message.not_before
    assert decision.message.address == "0922222222"
    assert decision.message.priority == 0  # an emergency still goes first once her window opens


def test_when_the_window_opens_the_deferred_message_is_sent_as_the_same_notice() -> None:
    deferred = survivor_message(accepted(), SURVIVOR, PROFILE, hcm(2025, 6, 2, 23, 30))
    assert isinstance(deferred, Defer)
    still_night = recheck(deferred.message, PROFILE, hcm(2025, 6, 3, 6, 59))
    assert isinstance(still_night, Defer) and still_night.until == hcm(2025, 6, 3, 7)
    morning = recheck(deferred.message, PROFILE, hcm(2025, 6, 3, 7))
    assert isinstance(morning, Send)
    assert morning.message.notice_id == deferred.message.notice_id
    assert morning.message.not_before is None and morning.message.address == "0922222222"


def test_recheck_follows_her_current_profile() -> None:
    deferred = survivor_message(accepted(), SURVIVOR, PROFILE, hcm(2025, 6, 2, 23, 30))
    assert isinstance(deferred, Defer)
    morning = hcm(2025, 6, 3, 8)
    # Her safe number changed overnight: the new one is used, the old one never.
    moved = replace(PROFILE, contact_points=(ContactPoint(Channel.SMS, "0922222222", False),
                                             ContactPoint(Channel.SMS, "0933333333", True)))
    now_send = recheck(deferred.message, moved, morning)
    assert isinstance(now_send, Send) and now_send.message.address == "0933333333"
    # She now prefers e-mail, in Vietnamese: re-rendered for the channel, same notice.
    email = replace(PROFILE, language=Language.VI, channels=(Channel.EMAIL,),
                    contact_points=(ContactPoint(Channel.EMAIL, "lan@mail.test", True),))
    by_mail = recheck(deferred.message, email, morning)
    assert isinstance(by_mail, Send)
    assert by_mail.message.channel is Channel.EMAIL and by_mail.message.html
    assert by_mail.message.body.startswith("Lịch hẹn của bạn")
    assert by_mail.message.notice_id == deferred.message.notice_id
    # No safe number any more: withheld, not sent to the old one.
    none_safe = replace(PROFILE, contact_points=(ContactPoint(Channel.SMS, "0922222222", False),))
    assert recheck(deferred.message, none_safe, morning) == Withhold("no_safe_contact_point")
    # Consent withdrawn overnight.
    withdrawn = apply_withdrawal(PROFILE, ConsentWithdrawal(CASE))
    assert recheck(deferred.message, withdrawn, morning) == Withhold("no_consent")


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        (replace(PROFILE, contact_consented=False), "no_consent"),
        (replace(PROFILE, services=frozenset({ServiceType.SHELTER})), "consent_does_not_cover"),
        (replace(PROFILE, contact_points=PROFILE.contact_points[:1]), "no_safe_contact_point"),
        (replace(PROFILE, channels=()), "no_safe_contact_point"),
        (replace(PROFILE, windows=()), "no_safe_time"),
        (replace(PROFILE, case_id=str(uuid.uuid4())), "case_mismatch"),
    ],
)
def test_withheld_only_for_want_of_consent_or_of_any_safe_way(profile: SurvivorProfile, reason: str) -> None:
    assert survivor_message(accepted(), SURVIVOR, profile, hcm(2025, 6, 2, 10)) == Withhold(reason)


@given(now=instants, windows=windows_st)
def test_with_consent_a_safe_number_and_a_window_it_is_never_dropped(
    now: datetime, windows: list[ContactWindow]
) -> None:
    decision = survivor_message(accepted(), SURVIVOR, replace(PROFILE, windows=tuple(windows)), now)
    assert isinstance(decision, Send | Defer)
    assert decision.message.address == "0922222222"
    if isinstance(decision, Defer):
        assert decision.until > now


def test_one_survivor_notice_per_event_whatever_the_channel() -> None:
    sms = survivor_message(accepted(), SURVIVOR, PROFILE, hcm(2025, 6, 2, 10))
    email_profile = replace(PROFILE, channels=(Channel.EMAIL,),
                            contact_points=(ContactPoint(Channel.EMAIL, "lan@mail.test", True),))
    email = survivor_message(accepted(), SURVIVOR, email_profile, hcm(2025, 6, 2, 10))
    assert isinstance(sms, Send) and isinstance(email, Send)
    assert sms.message.notice_id == email.message.notice_id


def test_survivor_message_refuses_staff_addressees() -> None:
    with pytest.raises(ValueError):
        survivor_message(accepted(), Addressee(Role.CASE_WORKER, "cw", NoticeKind.REFERRAL_STATUS), PROFILE,
                         hcm(2025, 6, 2, 10))


# --- withdrawal ----------------------------------------------------------------------------------


def _pending() -> list[OutboundMessage]:
    out: list[OutboundMessage] = []
    for i, service in enumerate([ServiceType.MEDICAL, ServiceType.LEGAL_AID]):
        event = replace(accepted(service), event_id=f"ev-{i}")
        decision = survivor_message(event, SURVIVOR, PROFILE, hcm(2025, 6, 2, 23))
        assert isinstance(decision, Defer)
        out.append(decision.message)
    unknown = replace(out[0], notice_id="n-unknown", service_type=None)
    other_case = replace(out[0], notice_id="n-other", case_id=str(uuid.uuid4()))
    staff_event = accepted()
    staff = [
        m for a in recipients_for(staff_event) if a.role is not Role.SURVIVOR
        for m in staff_messages(staff_event, a, Contact("cw", Language.EN, (Endpoint(Channel.EMAIL, "cw@x.test"),)),
                                LINKS)
    ]
    return [out[0], staff[0], out[1], unknown, other_case]


def test_withdrawing_contact_consent_stops_every_pending_survivor_message_of_the_case() -> None:
    pending = _pending()
    kept, cancelled = stop_pending(pending, ConsentWithdrawal(CASE))
    assert cancelled == [pending[0], pending[2], pending[3]]
    assert kept == [pending[1], pending[4]]  # staff message and another case untouched, order kept


def test_withdrawing_one_service_stops_its_messages_and_those_of_unknown_service() -> None:
    pending = _pending()
    kept, cancelled = stop_pending(pending, ConsentWithdrawal(CASE, frozenset({ServiceType.MEDICAL})))
    assert cancelled == [pending[0], pending[3]]
    assert kept == [pending[1], pending[2], pending[4]]


def test_apply_withdrawal_updates_the_profile() -> None:
    assert apply_withdrawal(PROFILE, ConsentWithdrawal(CASE, frozenset({ServiceType.MEDICAL}))).services == frozenset(
        {ServiceType.LEGAL_AID}
    )
    assert not apply_withdrawal(PROFILE, ConsentWithdrawal(CASE)).contact_consented
    assert apply_withdrawal(PROFILE, ConsentWithdrawal(str(uuid.uuid4()))) == PROFILE

"""Calls, cases, places, triage, idempotency and roles: intake's rules through its bus."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake.domain import commands
from intake.domain.model import (
    CallChannel,
    CallDetails,
    CallOutcome,
    CallTopic,
    CaseStatus,
    CloseOutcome,
    ConsentGiver,
    ConsentTerms,
    Contact,
    EraseReason,
    LegalBasis,
    NeedSpec,
    Place,
    SafeTime,
    Survivor,
)
from refnet.intake.v1 import events_pb2
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex


def rid() -> str:
    return f"req-{uuid.uuid4()}"


HOTLINE_CALL = CallDetails(CallChannel.PROVINCIAL_HOTLINE, CallTopic.DOMESTIC_VIOLENCE, duration_seconds=420)


# ---------------------------------------------------------------------------------------------
# Registration and places


def test_a_registered_case_is_stored_published_and_keyed_by_province(intake: Any) -> None:
    case = intake.register()
    assert case.status is CaseStatus.OPEN
    assert case.case_worker_id == intake.operator.subject_id  # the operator, when none is named
    [(topic, key, event)] = intake.events(case.case_id)
    assert (topic, key) == ("intake.cases.v1", "22")
    assert isinstance(event, events_pb2.CaseRegistered)
    assert (event.age_band, event.commune_code) == ("18-59", "06673")


@pytest.mark.parametrize(("place", "recorded_at", "field"), [
    (Place("99", ""), None, "province_code"),
    (Place("", "06673"), None, "province_code"),
    (Place("22", "99999"), None, "commune_code"),
    (Place("22", "18100"), None, "commune_code"),  # Trần Phú is in Hà Tĩnh, not Quảng Ninh
    (Place("22", "06673", "193"), None, "district_code"),  # no districts after 1 July 2025
    (Place("22", "00688", "193"), datetime(2025, 3, 1, tzinfo=UTC), "commune_code"),  # not in that district
    (Place("2a", ""), None, "province_code"),
    (Place("22", "06673"), datetime(9999, 12, 31, 20, tzinfo=UTC), "recorded_at"),  # UTC+7 leaves the calendar
    (Place("22", "06673"), datetime.now(UTC) + timedelta(hours=1), "recorded_at"),  # not taken yet
])
def test_places_are_checked_against_the_official_map(intake: Any, place: Place, recorded_at: datetime | None,
                                                     field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        intake.register(occurred_in=place, recorded_at=recorded_at)
    assert refused.value.field == field
    assert intake.total_rows() == 0


def test_old_codes_map_to_their_successors(intake: Any) -> None:
    # Old Hà Khánh (Hạ Long) is now part of Cao Xanh.
    assert intake.register(occurred_in=Place("22", "06649")).commune_code == "06658"
    # A record from before the reform: old Hà Giang province, its city district and a ward.
    old = intake.register(caller=intake.national, occurred_in=Place("02", "00688", "024"),
                          recorded_at=datetime(2025, 3, 1, tzinfo=UTC))
    assert (old.province_code, old.commune_code) == ("08", "00691")


def test_where_it_was_reported_is_checked_too(intake: Any) -> None:
    with pytest.raises(InvalidArgument) as refused:
        intake.register(caller=intake.national, reported_in=Place("42", "06673"))
    assert refused.value.field == "reported_in.commune_code"
    case = intake.register(caller=intake.national, reported_in=Place("42", "18100"))
    assert case.reported_in == Place("42", "18100")
    assert case.province_code == "22"  # events stay keyed by where it happened


@pytest.mark.parametrize(("survivor", "field"), [
    (Survivor(False, 121, Sex.FEMALE), "survivor.age"),
    (Survivor(False, -1, Sex.FEMALE), "survivor.age"),
    (Survivor(True, 19, Sex.FEMALE), "survivor.age"),
    (Survivor(False, 15, Sex.FEMALE), "survivor.is_child"),
    (Survivor(False, None, Sex.FEMALE, "16-17"), "survivor.is_child"),
    (Survivor(True, None, Sex.FEMALE, "18-59"), "survivor.age_band"),
    (Survivor(False, None, Sex.FEMALE, "adult"), "survivor.age_band"),
    (Survivor(False, 40, Sex.FEMALE, "60+"), "survivor.age_band"),
])
def test_survivor_ages_must_make_sense(intake: Any, survivor: Survivor, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        intake.register(survivor=survivor)
    assert refused.value.field == field


def test_an_age_band_stands_in_for_an_unknown_age(intake: Any) -> None:
    case = intake.register(survivor=Survivor(True, None, Sex.MALE, "12-15"),
                           needs=[], risk_level=RiskLevel.LOW)
    [(_, _, event)] = intake.events(case.case_id)
    assert (event.is_child, event.age_band) == (True, "12-15")


@pytest.mark.parametrize(("overrides", "field"), [
    ({"client_request_id": ""}, "client_request_id"),
    ({"client_request_id": "x" * 101}, "client_request_id"),
    ({"case_types": []}, "case_types"),
    ({"risk_level": None}, "risk_level"),
    ({"needs": [NeedSpec(None)]}, "needs[0].service_type"),
    ({"needs": [NeedSpec(ServiceType.SHELTER), NeedSpec(ServiceType.SHELTER)]}, "needs[1].service_type"),
    ({"case_worker_id": "w" * 101}, "case_worker_id"),
    ({"narrative": "x" * 20_001}, "narrative"),
    ({"call": CallDetails(None, CallTopic.ADVICE)}, "call.channel"),
])
def test_every_invalid_field_is_named(intake: Any, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        intake.register(**overrides)
    assert refused.value.field == field
    assert intake.total_rows() == 0


def times(*safe_times: SafeTime) -> dict[str, Any]:
    return {"contact": Contact(phone="0912 345 678", safe_times=safe_times)}


@pytest.mark.parametrize(("overrides", "field"), [
    (times(SafeTime((), "08:00", "09:00"), SafeTime((), "8:00", "09:00")), "contact.safe_times[1].start"),
    (times(SafeTime((), "", "09:00")), "contact.safe_times[0].start"),
    (times(SafeTime((), "24:00", "06:00")), "contact.safe_times[0].start"),
    (times(SafeTime((), "08:00", "08:60")), "contact.safe_times[0].end"),
    (times(SafeTime((), "08:00", "08:00\n")), "contact.safe_times[0].end"),
    (times(SafeTime((), "08:00", "08:00")), "contact.safe_times[0].end"),
    (times(SafeTime((1, 0), "08:00", "09:00")), "contact.safe_times[0].weekdays[1]"),
    (times(SafeTime((8,), "08:00", "09:00")), "contact.safe_times[0].weekdays[0]"),
    (times(SafeTime((3, 3), "08:00", "09:00")), "contact.safe_times[0].weekdays[1]"),
    (times(*[SafeTime((), "08:00", "09:00")] * 21), "contact.safe_times"),
])
def test_every_invalid_safe_time_is_named(intake: Any, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        intake.register(**overrides)
    assert refused.value.field == field
    assert intake.total_rows() == 0


def test_safe_times_across_midnight_and_the_whole_day_are_accepted(intake: Any) -> None:
    intake.register(**times(SafeTime((5, 6), "22:00", "06:00"), SafeTime((7,), "00:00", "24:00"),
                            SafeTime((), "12:00", "24:00")))


def test_errors_about_personal_data_never_repeat_it(intake: Any) -> None:
    contact = intake.register_command().contact
    secret_phone = "0912-NOT-A-PHONE Nguyễn"
    with pytest.raises(InvalidArgument) as refused:
        intake.register(contact=type(contact)(name="Nguyễn Thị Bí Mật", phone=secret_phone))
    assert refused.value.field == "contact.phone"
    assert "Nguyễn" not in str(refused.value) and secret_phone not in str(refused.value)


# ---------------------------------------------------------------------------------------------
# Triage


def test_a_child_at_serious_risk_starts_the_12_hour_deadline_on_the_urgent_lane(intake: Any) -> None:
    guardian = ConsentTerms(ConsentGiver.GUARDIAN, ("name", "phone"))
    case = intake.register(survivor=Survivor(True, 12, Sex.FEMALE), risk_level=RiskLevel.HIGH,
                           needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consent=guardian)])
    assert case.child_protection_deadline == case.registered_at + timedelta(hours=12)
    [(topic, _, event)] = intake.events(case.case_id)
    assert topic == "intake.cases-urgent.v1"
    assert event.emergency and event.child_protection_deadline.ToDatetime(tzinfo=UTC) == case.child_protection_deadline


def test_an_adult_emergency_goes_urgent_without_a_child_deadline(intake: Any) -> None:
    case = intake.register(immediate_danger=True)
    assert case.emergency and case.child_protection_deadline is None
    assert intake.events(case.case_id)[0][0] == "intake.cases-urgent.v1"


def test_risk_updates_start_the_deadline_once(intake: Any) -> None:
    case = intake.register(survivor=Survivor(True, 9, Sex.MALE), needs=[], risk_level=RiskLevel.LOW)
    assert case.child_protection_deadline is None

    def update(risk: RiskLevel, danger: bool) -> Any:
        return intake.handle(commands.UpdateRisk(intake.operator, rid(), case.case_id, risk, danger))[0]

    raised = update(RiskLevel.MEDIUM, True)
    deadline = raised.child_protection_deadline
    assert deadline is not None and raised.emergency
    assert update(RiskLevel.HIGH, True).child_protection_deadline == deadline  # not restarted
    lowered = update(RiskLevel.LOW, False)
    assert not lowered.emergency and lowered.child_protection_deadline == deadline
    risk_events = [(t, e) for t, _, e in intake.events(case.case_id) if isinstance(e, events_pb2.RiskUpdated)]
    assert [t for t, _ in risk_events] == ["intake.cases-urgent.v1", "intake.cases-urgent.v1", "intake.cases.v1"]
    assert all(e.child_protection_deadline.ToDatetime(tzinfo=UTC) == deadline for _, e in risk_events)


# ---------------------------------------------------------------------------------------------
# Calls


def test_a_call_that_became_a_case_is_logged_with_it(intake: Any) -> None:
    case = intake.register(call=HOTLINE_CALL)
    assert case.call_id
    assert intake.count("calls", "case_id = :c AND outcome = 'case_opened'", c=case.case_id) == 1
    [logged] = [e for _, _, e in intake.events() if isinstance(e, events_pb2.CallLogged)]
    assert (logged.case_id, logged.call_id, logged.duration_seconds) == (case.case_id, case.call_id, 420)


def test_most_calls_are_just_logged(intake: Any) -> None:
    call, created = intake.handle(commands.LogCall(intake.national, rid(), Place("92"), HOTLINE_CALL,
                                                   CallOutcome.ADVICE_GIVEN, ""))
    assert created and call.outcome is CallOutcome.ADVICE_GIVEN and call.details.started_at is not None
    [(topic, key, event)] = intake.events()
    assert (topic, key, event.call_id, event.operator_id) == ("intake.cases.v1", "92", call.call_id, "111-operator-1")
    assert intake.count("cases") == 0


@pytest.mark.parametrize(("outcome", "case_id", "field"), [
    (None, "", "outcome"),
    (CallOutcome.CASE_OPENED, "", "case_id"),
    (CallOutcome.ADVICE_GIVEN, "some-case", "case_id"),
])
def test_call_outcomes_name_a_case_only_when_they_should(intake: Any, outcome: CallOutcome | None, case_id: str,
                                                         field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        intake.handle(commands.LogCall(intake.operator, rid(), Place("22"), HOTLINE_CALL, outcome, case_id))
    assert refused.value.field == field


def test_a_follow_up_call_names_an_existing_case(intake: Any) -> None:
    with pytest.raises(NotFound):
        intake.handle(commands.LogCall(intake.operator, rid(), Place("22"), HOTLINE_CALL,
                                       CallOutcome.CASE_FOLLOW_UP, "no-such-case"))
    case = intake.register()
    call, _ = intake.handle(commands.LogCall(intake.operator, rid(), Place("22"), HOTLINE_CALL,
                                             CallOutcome.CASE_FOLLOW_UP, case.case_id))
    assert call.case_id == case.case_id


# ---------------------------------------------------------------------------------------------
# Needs, closing


def test_a_need_added_later_is_published_with_its_consent_state(intake: Any) -> None:
    case = intake.register()
    updated, need_id, created = intake.handle(commands.AddNeed(intake.operator, rid(), case.case_id,
                                                               NeedSpec(ServiceType.MEDICAL, consented=True)))
    assert created and updated.need(need_id).consent is not None
    added = [e for _, _, e in intake.events(case.case_id) if isinstance(e, events_pb2.NeedAdded)]
    assert [(e.need.need_id, e.need.consented) for e in added] == [(need_id, True)]
    with pytest.raises(AlreadyExists):
        intake.handle(commands.AddNeed(intake.operator, rid(), case.case_id, NeedSpec(ServiceType.MEDICAL)))


def test_a_closed_case_takes_no_new_needs(intake: Any) -> None:
    case = intake.register()
    closed, _ = intake.handle(commands.CloseCase(intake.operator, rid(), case.case_id, CloseOutcome.RESOLVED))
    assert closed.status is CaseStatus.CLOSED and closed.close_outcome is CloseOutcome.RESOLVED
    [closed_event] = [e for _, _, e in intake.events(case.case_id) if isinstance(e, events_pb2.CaseClosed)]
    assert closed_event.outcome == "resolved"
    for command in (commands.AddNeed(intake.operator, rid(), case.case_id, NeedSpec(ServiceType.MEDICAL)),
                    commands.UpdateRisk(intake.operator, rid(), case.case_id, RiskLevel.HIGH, True),
                    commands.CloseCase(intake.operator, rid(), case.case_id, CloseOutcome.RESOLVED)):
        with pytest.raises(FailedPrecondition):
            intake.handle(command)


# ---------------------------------------------------------------------------------------------
# Idempotency, roles, atomicity


def test_every_mutating_command_runs_once_per_client_request_id(intake: Any) -> None:
    register = intake.register_command(call=HOTLINE_CALL)
    case, created = intake.handle(register)
    assert created
    need_id = case.needs[1].need_id  # legal aid, not consented yet
    terms = ConsentTerms(ConsentGiver.SURVIVOR, ("name",))
    repeatable = [
        register,
        commands.LogCall(intake.operator, rid(), Place("22"), HOTLINE_CALL, CallOutcome.CASE_FOLLOW_UP, case.case_id),
        commands.AddNeed(intake.operator, rid(), case.case_id, NeedSpec(ServiceType.MEDICAL)),
        commands.UpdateRisk(intake.operator, rid(), case.case_id, RiskLevel.HIGH, False),
        commands.GiveConsent(intake.operator, rid(), case.case_id, need_id, terms),
        commands.WithdrawConsent(intake.operator, rid(), case.case_id, need_id),
        commands.OverrideConsent(intake.supervisor, rid(), case.case_id, need_id,
                                 ConsentTerms(ConsentGiver.SUPERVISOR_OVERRIDE, ("phone",),
                                              legal_basis=LegalBasis.DECREE_56_2017)),
        commands.CloseCase(intake.operator, rid(), case.case_id, CloseOutcome.RESOLVED),
        commands.EraseCase(intake.supervisor, rid(), case.case_id, EraseReason.SURVIVOR_REQUEST),
    ]
    for command in repeatable[1:]:
        first = intake.handle(command)
        assert first[-1] is True, type(command).__name__
    published = len(intake.events())
    for command in repeatable:
        again = intake.handle(command)
        assert again[-1] is False, type(command).__name__
    assert len(intake.events()) == published
    assert intake.count("cases") == 1 and intake.count("needs") == 3 and intake.count("calls") == 2


def test_a_client_request_id_cannot_be_reused_for_something_else(intake: Any) -> None:
    case = intake.register()
    request_id = rid()
    intake.handle(commands.UpdateRisk(intake.operator, request_id, case.case_id, RiskLevel.HIGH, False))
    with pytest.raises(AlreadyExists) as refused:
        intake.handle(commands.CloseCase(intake.operator, request_id, case.case_id, CloseOutcome.RESOLVED))
    assert "client_request_id" in str(refused.value)


def test_a_registration_under_a_request_id_used_for_something_else_is_refused_and_writes_nothing(intake: Any) -> None:
    # A registration writes its request's record first: the id already taken is what refuses it.
    case = intake.register()
    request_id = rid()
    intake.handle(commands.UpdateRisk(intake.operator, request_id, case.case_id, RiskLevel.HIGH, False))
    published = len(intake.events())
    with pytest.raises(AlreadyExists) as refused:
        intake.handle(intake.register_command(client_request_id=request_id))
    assert "client_request_id" in str(refused.value)
    assert intake.count("cases") == 1 and intake.count("case_keys") == 1 and len(intake.events()) == published


@pytest.mark.parametrize("role", [Role.AGENCY, Role.SHELTER, Role.OPS, Role.SERVICE])
def test_only_operators_and_supervisors_work_on_cases(intake: Any, role: Role) -> None:
    case = intake.register()
    actor = Caller("someone", role, provinces=frozenset({"*"}))  # even with every province
    for command in (intake.register_command(caller=actor),
                    commands.GetCase(actor, case.case_id),
                    commands.LogCall(actor, rid(), Place("22"), HOTLINE_CALL, CallOutcome.ADVICE_GIVEN, ""),
                    commands.AddNeed(actor, rid(), case.case_id, NeedSpec(ServiceType.MEDICAL)),
                    commands.UpdateRisk(actor, rid(), case.case_id, RiskLevel.HIGH, True),
                    commands.GiveConsent(actor, rid(), case.case_id, case.needs[1].need_id,
                                         ConsentTerms(ConsentGiver.SURVIVOR, ("name",))),
                    commands.WithdrawConsent(actor, rid(), case.case_id, case.needs[0].need_id),
                    commands.CloseCase(actor, rid(), case.case_id, CloseOutcome.RESOLVED)):
        with pytest.raises(PermissionDenied):
            intake.handle(command)


def test_erasing_and_overriding_need_a_supervisor(intake: Any) -> None:
    case = intake.register()
    override = ConsentTerms(ConsentGiver.SUPERVISOR_OVERRIDE, ("phone",), legal_basis=LegalBasis.DECREE_56_2017)
    for command in (commands.EraseCase(intake.operator, rid(), case.case_id, EraseReason.SURVIVOR_REQUEST),
                    commands.OverrideConsent(intake.operator, rid(), case.case_id, case.needs[1].need_id, override)):
        with pytest.raises(PermissionDenied):
            intake.handle(command)
    assert intake.count("audit_log") == 0


def test_a_failure_mid_handler_leaves_nothing_behind(intake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from intake.service_layer import unit_of_work

    real = unit_of_work.event_to_record

    def fail_on_call(event: object) -> Any:
        if type(event).__name__ == "CallLogged":  # staged after the case, its needs, key and ciphertext
            raise RuntimeError("injected")
        return real(event)

    monkeypatch.setattr(unit_of_work, "event_to_record", fail_on_call)
    with pytest.raises(RuntimeError):
        intake.register(call=HOTLINE_CALL)
    assert intake.total_rows() == 0


def test_referral_progress_is_kept_on_the_need_it_serves(intake: Any) -> None:
    case = intake.register()
    police, legal = case.needs
    intake.handle(commands.RecordReferral(case.case_id, police.need_id, "ref-1", "requested", "qn-police-baichay"))
    # Status changes name only the referral; the provider stays as first reported.
    intake.handle(commands.RecordReferral(case.case_id, "", "ref-1", "accepted", ""))
    intake.handle(commands.RecordReferral(case.case_id, "", "ref-unknown", "accepted", "elsewhere"))
    intake.handle(commands.RecordReferral("no-such-case", "", "ref-2", "requested", "p"))  # logged, not raised
    stored = intake.handle(commands.GetCase(intake.operator, case.case_id))
    by_id = {n.need_id: n for n in stored.needs}
    assert (by_id[police.need_id].referral_id, by_id[police.need_id].referral_status,
            by_id[police.need_id].provider_id) == ("ref-1", "accepted", "qn-police-baichay")
    assert (by_id[legal.need_id].referral_id, by_id[legal.need_id].referral_status) == ("", "")

"""People, not certificates: operators and supervisors act only within their provinces, and a case or
call outside them looks exactly like one that does not exist (repeated request ids included)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from intake.domain import commands
from intake.domain.model import (
    CallChannel,
    CallDetails,
    CallOutcome,
    CallTopic,
    CloseOutcome,
    ConsentGiver,
    ConsentTerms,
    EraseReason,
    LegalBasis,
    NeedSpec,
    Place,
)
from intake.service_layer.authorization import authorization_table_markdown
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import AlreadyExists, NotFound, PermissionDenied
from refnet_platform.requests import REUSED
from refnet_platform.vocabulary import RiskLevel, ServiceType

HA_TINH_PLACE = Place("42", "18100")  # Trần Phú, Hà Tĩnh
CALL = CallDetails(CallChannel.PROVINCIAL_HOTLINE, CallTopic.DOMESTIC_VIOLENCE, duration_seconds=60)
HT_OPERATOR = Caller("ht-operator-1", Role.OPERATOR, provinces=frozenset({"42"}), person=True)
HT_SUPERVISOR = Caller("ht-supervisor-1", Role.SUPERVISOR, provinces=frozenset({"42"}), person=True)
README = Path(__file__).resolve().parents[3] / "services" / "intake" / "README.md"


def rid() -> str:
    return f"req-{uuid.uuid4()}"


def refusal(intake: Any, command: object) -> Exception:
    with pytest.raises(Exception) as refused:
        intake.handle(command)
    return refused.value


def as_missing(intake: Any, command: object, case_id: str) -> None:
    """The command is refused exactly as it would be for a case id that does not exist."""
    missing_id = str(uuid.uuid4())
    out_of_remit = refusal(intake, command)
    missing = refusal(intake, _with_case(command, missing_id))
    assert type(out_of_remit) is NotFound and type(missing) is NotFound
    assert str(out_of_remit).replace(case_id, "<id>") == str(missing).replace(missing_id, "<id>")
    assert str(out_of_remit) == f"case {case_id} not found"


def _with_case(command: Any, case_id: str) -> Any:
    fields = {"case_id": case_id}
    if hasattr(command, "client_request_id"):
        fields["client_request_id"] = rid()
    return replace(command, **fields)


@pytest.fixture
def ha_tinh_case(intake: Any) -> Any:
    return intake.register(caller=HT_OPERATOR, occurred_in=HA_TINH_PLACE)


def test_an_operator_reads_a_case_of_another_province_as_not_found(intake: Any, ha_tinh_case: Any) -> None:
    as_missing(intake, commands.GetCase(intake.operator, ha_tinh_case.case_id), ha_tinh_case.case_id)
    assert intake.handle(commands.GetCase(HT_OPERATOR, ha_tinh_case.case_id)).case_id == ha_tinh_case.case_id


def test_the_national_line_sees_every_province(intake: Any, ha_tinh_case: Any) -> None:
    quang_ninh_case = intake.register()
    for case in (quang_ninh_case, ha_tinh_case):
        assert intake.handle(commands.GetCase(intake.national, case.case_id)).province_code == case.province_code
    with pytest.raises(NotFound):
        intake.handle(commands.GetCase(HT_OPERATOR, quang_ninh_case.case_id))


def test_a_caller_with_two_provinces_sees_both(intake: Any, ha_tinh_case: Any) -> None:
    both = Caller("regional-1", Role.SUPERVISOR, provinces=frozenset({"22", "42"}), person=True)
    quang_ninh_case = intake.register()
    for case in (quang_ninh_case, ha_tinh_case):
        assert intake.handle(commands.GetCase(both, case.case_id)).case_id == case.case_id


def test_no_change_reaches_a_case_of_another_province(intake: Any, ha_tinh_case: Any) -> None:
    case_id = ha_tinh_case.case_id
    police, legal = (n.need_id for n in ha_tinh_case.needs)
    before, published = intake.total_rows(), len(intake.events())
    override = ConsentTerms(ConsentGiver.SUPERVISOR_OVERRIDE, ("phone",), legal_basis=LegalBasis.DECREE_56_2017)
    for command in (
        commands.AddNeed(intake.operator, rid(), case_id, NeedSpec(ServiceType.MEDICAL)),
        commands.UpdateRisk(intake.operator, rid(), case_id, RiskLevel.HIGH, True),
        commands.GiveConsent(intake.operator, rid(), case_id, legal, ConsentTerms(ConsentGiver.SURVIVOR, ("name",))),
        commands.WithdrawConsent(intake.operator, rid(), case_id, police),
        commands.CloseCase(intake.operator, rid(), case_id, CloseOutcome.RESOLVED),
        commands.LogCall(intake.operator, rid(), Place("22"), CALL, CallOutcome.CASE_FOLLOW_UP, case_id),
        commands.OverrideConsent(intake.supervisor, rid(), case_id, legal, override),
        commands.EraseCase(intake.supervisor, rid(), case_id, EraseReason.SURVIVOR_REQUEST),
    ):
        as_missing(intake, command, case_id)
    assert intake.total_rows() == before and len(intake.events()) == published


def test_erasing_and_overriding_stay_with_the_supervisor_of_the_province(intake: Any, ha_tinh_case: Any) -> None:
    override = ConsentTerms(ConsentGiver.SUPERVISOR_OVERRIDE, ("phone",), legal_basis=LegalBasis.DECREE_56_2017)
    with pytest.raises(PermissionDenied):  # an operator never, even in her own province
        intake.handle(commands.EraseCase(HT_OPERATOR, rid(), ha_tinh_case.case_id, EraseReason.SURVIVOR_REQUEST))
    intake.handle(commands.OverrideConsent(HT_SUPERVISOR, rid(), ha_tinh_case.case_id,
                                           ha_tinh_case.needs[1].need_id, override))
    erased, created = intake.handle(commands.EraseCase(HT_SUPERVISOR, rid(), ha_tinh_case.case_id,
                                                       EraseReason.SURVIVOR_REQUEST))
    assert created and erased.erased_at is not None


def test_creating_in_another_province_is_refused_naming_the_field(intake: Any) -> None:
    cases: list[tuple[object, str]] = [
        (intake.register_command(occurred_in=HA_TINH_PLACE), "province_code"),
        (intake.register_command(reported_in=HA_TINH_PLACE), "reported_in.province_code"),
        (intake.register_command(occurred_in=HA_TINH_PLACE, call=CALL), "province_code"),
        (commands.LogCall(intake.operator, rid(), Place("42"), CALL, CallOutcome.ADVICE_GIVEN, ""), "province_code"),
    ]
    for command, field in cases:
        refused = refusal(intake, command)
        assert type(refused) is PermissionDenied
        assert str(refused) == f"{field}: 42 is not one of your provinces"
    assert intake.total_rows() == 0


def test_an_old_code_is_judged_by_the_province_it_became(intake: Any) -> None:
    # Old Hà Giang (02) is part of Tuyên Quang (08) since 1 July 2025: neither is Quảng Ninh's.
    old = intake.register_command(occurred_in=Place("02", "00688", "024"), recorded_at=datetime(2025, 3, 1, tzinfo=UTC))
    assert str(refusal(intake, old)) == "province_code: 08 is not one of your provinces"
    tuyen_quang = Caller("tq-operator-1", Role.OPERATOR, provinces=frozenset({"08"}), person=True)
    assert intake.handle(replace(old, caller=tuyen_quang))[0].province_code == "08"


def test_a_repeated_request_id_never_returns_another_provinces_case(intake: Any, ha_tinh_case: Any) -> None:
    # The same client_request_id, sent by a Quảng Ninh operator: neither the case nor its id comes back.
    repeat = intake.register_command(client_request_id=ha_tinh_case.client_request_id)
    refused = refusal(intake, repeat)
    assert type(refused) is AlreadyExists and ha_tinh_case.case_id not in str(refused)
    # Hà Tĩnh's own repeat still returns the first case.
    again, created = intake.handle(intake.register_command(caller=HT_OPERATOR, occurred_in=HA_TINH_PLACE,
                                                           client_request_id=ha_tinh_case.client_request_id))
    assert (again.case_id, created) == (ha_tinh_case.case_id, False)


def test_a_repeated_call_request_never_returns_another_provinces_call(intake: Any) -> None:
    request_id = rid()
    call, _ = intake.handle(commands.LogCall(HT_OPERATOR, request_id, Place("42"), CALL, CallOutcome.ADVICE_GIVEN, ""))
    refused = refusal(intake, commands.LogCall(intake.operator, request_id, Place("22"), CALL,
                                               CallOutcome.ADVICE_GIVEN, ""))
    assert type(refused) is AlreadyExists and call.call_id not in str(refused)


def test_a_repeated_case_request_answers_as_not_found_out_of_remit(intake: Any, ha_tinh_case: Any) -> None:
    request_id = rid()
    update = commands.UpdateRisk(HT_OPERATOR, request_id, ha_tinh_case.case_id, RiskLevel.HIGH, False)
    intake.handle(update)
    # The exact repeat by a Quảng Ninh operator: as a case that does not exist.
    as_missing(intake, commands.UpdateRisk(intake.operator, request_id, ha_tinh_case.case_id, RiskLevel.HIGH, False),
               ha_tinh_case.case_id)
    # The id reused on her own case: refused without naming Hà Tĩnh's case.
    own = intake.register()
    refused = refusal(intake, commands.CloseCase(intake.operator, request_id, own.case_id, CloseOutcome.RESOLVED))
    assert type(refused) is AlreadyExists and ha_tinh_case.case_id not in str(refused)
    # Within the remit the refusal is the same one answer every service gives.
    refused = refusal(intake, commands.CloseCase(HT_OPERATOR, request_id, ha_tinh_case.case_id, CloseOutcome.RESOLVED))
    assert type(refused) is AlreadyExists and str(refused) == REUSED


def test_the_readme_shows_the_authorization_table_in_code() -> None:
    assert authorization_table_markdown() in README.read_text(encoding="utf-8")

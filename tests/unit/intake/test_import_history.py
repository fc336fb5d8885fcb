"""ImportHistory: past calls and cases with their original dates, stored once per row, published as imported
events; reporting consent and the handling line on every case registered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from intake.domain import commands
from intake.domain.model import (
    CallChannel,
    CallDetails,
    CallOutcome,
    CallTopic,
    CloseOutcome,
    Disability,
    Place,
    Survivor,
)
from refnet.intake.v1 import events_pb2
from refnet.intake.v1 import types_pb2 as intake_types
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import AlreadyExists, InvalidArgument, PermissionDenied
from refnet_platform.vocabulary import CaseType, RiskLevel, Sex

MARCH_2024 = datetime(2024, 3, 5, 2, 30, tzinfo=UTC)


def person(subject_id: str, role: Role, *provinces: str) -> Caller:
    return Caller(subject_id, role, provinces=frozenset(provinces), person=True)


def past_case(key: str, **overrides: Any) -> commands.ImportedCase:
    fields: dict[str, Any] = dict(
        idempotency_key=key, occurred_in=Place("22"), reported_in=None, national_line=False,
        case_types=[CaseType.DOMESTIC_VIOLENCE],
        survivor=Survivor(is_child=False, age=None, sex=Sex.FEMALE, age_band_given="18-59",
                          disability=Disability.YES),
        risk_level=RiskLevel.HIGH, immediate_danger=False, registered_at=MARCH_2024,
        closed_at=datetime(2024, 4, 1, tzinfo=UTC), close_outcome=CloseOutcome.RESOLVED)
    fields.update(overrides)
    return commands.ImportedCase(**fields)


def past_call(key: str, case_key: str = "") -> commands.ImportedCall:
    return commands.ImportedCall(key, Place("22"), CallDetails(CallChannel.PROVINCIAL_HOTLINE, CallTopic.ADVICE,
                                                               started_at=MARCH_2024),
                                 CallOutcome.CASE_OPENED if case_key else CallOutcome.ADVICE_GIVEN, case_key)


def test_history_is_stored_once_with_its_original_dates_and_published_as_imported(intake: Any) -> None:
    # Old Hải Dương (30) became Hải Phòng (31): a Quảng Ninh line's case that happened there.
    across = past_case("qn:case:2", occurred_in=Place("30"), reported_in=Place("22"), closed_at=None,
                       close_outcome=None)
    request = commands.ImportHistory(intake.supervisor, [past_case("qn:case:1"), across],
                                     [past_call("qn:call:1", "qn:case:1"), past_call("qn:call:2")])
    cases, calls = intake.handle(request)
    assert [c[2] for c in cases + calls] == [True] * 4
    events = intake.events()
    registered = [e for _, _, e in events if isinstance(e, events_pb2.CaseRegistered)]
    assert {(e.province_code, e.handling_line, e.imported) for e in registered} == {("22", "22", True),
                                                                                   ("31", "22", True)}
    assert all(e.registered_at.ToDatetime(tzinfo=UTC) == MARCH_2024 and not e.needs for e in registered)
    assert {e.disability for e in registered} == {intake_types.DISABILITY_YES}
    closed = [e for _, _, e in events if isinstance(e, events_pb2.CaseClosed)]
    assert len(closed) == 1 and closed[0].imported and closed[0].closed_at.ToDatetime(tzinfo=UTC).month == 4
    logged = [e for _, _, e in events if isinstance(e, events_pb2.CallLogged)]
    assert {e.case_id for e in logged} == {cases[0][1], ""} and all(e.imported for e in logged)
    # High risk, but the past: never the urgent lane, no child-protection deadline.
    assert {topic for topic, _, _ in events} == {"intake.cases.v1"}
    before = intake.total_rows()
    again = intake.handle(request)
    assert [c[2] for c in again[0] + again[1]] == [False] * 4
    assert [c[1] for c in again[0]] == [c[1] for c in cases] and intake.total_rows() == before


def test_a_bad_row_refuses_the_whole_request_naming_the_row_and_field(intake: Any) -> None:
    before = intake.total_rows()
    with pytest.raises(InvalidArgument, match=r"^cases\[1\]\.province_code"):
        intake.handle(commands.ImportHistory(intake.supervisor, [past_case("a"), past_case("b",
                                                                                           occurred_in=Place("99"))],
                                             []))
    with pytest.raises(InvalidArgument, match=r"^cases\[0\]\.registered_at"):
        intake.handle(commands.ImportHistory(intake.supervisor, [past_case("a", registered_at=None)], []))
    with pytest.raises(InvalidArgument, match=r"^calls\[0\]\.case_key"):
        intake.handle(commands.ImportHistory(intake.supervisor, [], [past_call("k", "never-imported")]))
    with pytest.raises(InvalidArgument, match=r"^cases\[1\]\.idempotency_key"):
        intake.handle(commands.ImportHistory(intake.supervisor, [past_case("a"), past_case("a")], []))
    assert intake.total_rows() == before


def test_only_a_supervisor_imports_and_only_their_own_lines_records(intake: Any) -> None:
    with pytest.raises(PermissionDenied):
        intake.handle(commands.ImportHistory(intake.operator, [past_case("a")], []))
    with pytest.raises(PermissionDenied, match=r"^cases\[0\]\.reported_in\.province_code"):
        intake.handle(commands.ImportHistory(intake.supervisor, [past_case("a", occurred_in=Place("31"),
                                                                           reported_in=Place("42"))], []))
    with pytest.raises(PermissionDenied, match=r"^cases\[0\]\.province_code"):
        intake.handle(commands.ImportHistory(intake.supervisor, [past_case("a", national_line=True,
                                                                           occurred_in=Place("42"))], []))


def test_a_case_registered_says_whether_it_may_be_reported_and_which_line_took_it(intake: Any) -> None:
    refused = intake.register(reporting_consent=False)
    through_111 = intake.handle(intake.register_command(
        caller=intake.national, call=CallDetails(CallChannel.NATIONAL_111, CallTopic.CHILD_PROTECTION)))[0]
    events = {e.case_id: e for _, _, e in intake.events() if isinstance(e, events_pb2.CaseRegistered)}
    assert events[refused.case_id].HasField("reporting_consent") and not events[refused.case_id].reporting_consent
    assert events[refused.case_id].handling_line == "22" and not events[refused.case_id].imported
    assert events[through_111.case_id].handling_line == "111" and events[through_111.case_id].reporting_consent


def test_a_row_imported_by_another_province_tells_nothing_of_it(intake: Any) -> None:
    ha_tinh = person("ht-supervisor-1", Role.SUPERVISOR, "42")
    intake.handle(commands.ImportHistory(ha_tinh, [past_case("shared-key", occurred_in=Place("42"))], []))
    with pytest.raises(AlreadyExists) as refused:
        intake.handle(commands.ImportHistory(intake.supervisor, [past_case("shared-key")], []))
    assert "42" not in str(refused.value)

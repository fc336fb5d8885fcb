"""Case work through intake's bus: assessments, plans, follow-ups (sealed), reviews, reassignment, closure, a
child's Decree 56/2017 steps with their deadlines and the timer that escalates a missed one, and the case lists
(scoped to the caller's provinces, due first, paginated, searched by ids only)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from intake.domain import commands
from intake.domain.casework import (
    AssessmentSpec,
    CaseFilter,
    Difficulty,
    FollowUpKind,
    FunctionalDifficulty,
    FunctionalDomain,
    Goal,
    GoalStatus,
    ReassignReason,
    ResponsibleKind,
    ReviewOutcome,
)
from intake.domain.model import (
    CallChannel,
    CallDetails,
    CallOutcome,
    CallTopic,
    CaseStatus,
    CaseStep,
    CloseOutcome,
    CloseReason,
    NeedSpec,
    Place,
    Survivor,
)
from refnet.intake.v1 import events_pb2
from refnet.intake.v1 import types_pb2 as intake_types
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex

NOTE = "Bà Canary-{} nói con trai đánh bà tối thứ Bảy"  # personal data: sealed, never in an event


def rid() -> str:
    return f"req-{uuid.uuid4()}"


def child(intake: Any, risk: RiskLevel = RiskLevel.HIGH, **overrides: Any) -> Any:
    return intake.register(survivor=Survivor(is_child=True, age=9, sex=Sex.MALE), risk_level=risk,
                           case_types=[CaseType.CHILD_ABUSE_OR_NEGLECT], needs=[], **overrides)


def steps(intake: Any, case_id: str) -> dict[str, tuple[str, Any, Any]]:
    found = intake.handle(commands.GetCaseFile(intake.operator, case_id)).steps
    return {str(s.step): (str(s.status), s.due_at, s.escalated_at) for s in found}


def goal(services: tuple[ServiceType, ...], days: int, who: str = "ht-worker-3",
         kind: ResponsibleKind = ResponsibleKind.PERSON, **overrides: Any) -> Goal:
    fields: dict[str, Any] = dict(goal_id="", description="Nhận trợ cấp xã hội hằng tháng", services=services,
                                  responsible_kind=kind, responsible_id=who, due_at=None)
    fields.update(overrides)
    return Goal(**fields)


def test_an_assessment_plan_follow_up_review_and_closure_each_announce_ids_only(intake: Any) -> None:
    case = intake.register(needs=[])
    now = intake.clock()
    canary = NOTE.format(uuid.uuid4().hex[:8])
    spec = AssessmentSpec(RiskLevel.HIGH, False, (ServiceType.SOCIAL_PROTECTION, ServiceType.MEDICAL),
                          (FunctionalDifficulty(FunctionalDomain.WALKING, Difficulty.A_LOT),), ("step_free",),
                          summary=canary)
    _, assessment_id, created = intake.handle(commands.RecordAssessment(intake.operator, rid(), case.case_id, spec))
    assert created
    plan_goals = [goal((ServiceType.SOCIAL_PROTECTION,), 0, due_at=now + timedelta(days=20), description=canary),
                  goal((ServiceType.MEDICAL,), 0, "ht-hospital", ResponsibleKind.AGENCY,
                       due_at=now + timedelta(days=5))]
    after_plan, plan_id, _ = intake.handle(commands.RecordCasePlan(intake.operator, rid(), case.case_id, plan_goals,
                                                                   None))
    # The plan's services became needs (routed once consent is given); the earliest goal is what is due next.
    assert {n.service_type for n in after_plan.needs} == {ServiceType.SOCIAL_PROTECTION, ServiceType.MEDICAL}
    assert after_plan.next_due_at == now + timedelta(days=5)
    intake.handle(commands.AddFollowUp(intake.operator, rid(), case.case_id, FollowUpKind.HOME_VISIT, canary, None))
    intake.handle(commands.ReviewCase(intake.operator, rid(), case.case_id, ReviewOutcome.READY_TO_CLOSE, canary, None))
    closed, _ = intake.handle(commands.CloseCase(intake.operator, rid(), case.case_id, CloseOutcome.RESOLVED,
                                                 CloseReason.GOALS_MET))
    assert (closed.status, closed.close_reason, closed.next_due_at) == (CaseStatus.CLOSED, CloseReason.GOALS_MET, None)

    kinds = [type(p).__name__ for _, _, p in intake.events(case.case_id)]
    for kind in ("CaseAssessed", "RiskUpdated", "NeedAdded", "CasePlanRecorded", "FollowUpRecorded", "CaseReviewed",
                 "CaseClosed"):
        assert kind in kinds
    closed_event = next(p for _, _, p in intake.events(case.case_id) if isinstance(p, events_pb2.CaseClosed))
    assert (closed_event.outcome, closed_event.reason) == ("resolved", "goals_met")
    # The note, the goal and the summary are in no event and nowhere in the database in the clear.
    for _, _, payload in intake.events(case.case_id):
        assert canary.encode() not in payload.SerializeToString()
    with intake.engine.connect() as conn:
        for table in ("follow_ups", "plan_goals", "assessments", "case_reviews", "outbox"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert not any(canary.encode() in (v if isinstance(v, bytes) else str(v).encode()) for v in row)
    # ... and read back through the case file (audited).
    found = intake.handle(commands.GetCaseFile(intake.supervisor, case.case_id))
    assert found.follow_ups[0].note == canary and found.plan.goals[0].description == canary
    assert found.assessments[0].accessibility_needs == ("step_free",)
    assert found.assessments[0].difficulties[0].domain is FunctionalDomain.WALKING
    assert found.plan.plan_id == plan_id and found.assessments[0].assessment_id == assessment_id
    assert intake.count("audit_log", "action = 'read_case_file'") == 1


def test_a_child_at_serious_risk_gets_the_12_hour_step_and_a_missed_one_escalates_once(intake: Any) -> None:
    case = child(intake)
    registered = intake.clock()
    open_steps = steps(intake, case.case_id)
    assert open_steps["emergency_measures"][:2] == ("open", registered + timedelta(hours=12))
    assert open_steps["receive_and_assess"][0] == "open"
    assert case.current_step is CaseStep.EMERGENCY_MEASURES
    assert case.next_due_at == registered + timedelta(hours=12)

    assert intake.handle(commands.ExpireOverdueSteps()) == 0
    intake.clock.advance(hours=12, seconds=1)
    assert intake.handle(commands.ExpireOverdueSteps()) == 1
    assert intake.handle(commands.ExpireOverdueSteps()) == 0  # once per deadline
    overdue = [p for _, _, p in intake.events(case.case_id) if isinstance(p, events_pb2.CaseStepOverdue)]
    assert len(overdue) == 1 and overdue[0].step == intake_types.CASE_STEP_EMERGENCY_MEASURES
    assert overdue[0].case_worker_id == case.case_worker_id and overdue[0].is_child

    # Emergency measures taken; the assessment opens the support plan; the plan opens carrying out and review.
    intake.handle(commands.CompleteStep(intake.operator, rid(), case.case_id, CaseStep.EMERGENCY_MEASURES))
    intake.handle(commands.RecordAssessment(intake.operator, rid(), case.case_id, AssessmentSpec(
        RiskLevel.HIGH, True, (ServiceType.PSYCHOSOCIAL,))))
    now = intake.clock()
    after = steps(intake, case.case_id)
    assert after["emergency_measures"][0] == "done" and after["receive_and_assess"][0] == "done"
    assert after["support_plan"][:2] == ("open", now + timedelta(days=10))
    intake.handle(commands.RecordCasePlan(intake.operator, rid(), case.case_id, [
        goal((ServiceType.PSYCHOSOCIAL,), 0, due_at=now + timedelta(days=14))], now + timedelta(days=21)))
    after = steps(intake, case.case_id)
    assert after["support_plan"][0] == "done"
    assert after["carry_out"][:2] == ("open", now + timedelta(days=14))
    assert after["review"][:2] == ("open", now + timedelta(days=21))
    intake.handle(commands.ReviewCase(intake.operator, rid(), case.case_id, ReviewOutcome.CONTINUE_PLAN, "",
                                      now + timedelta(days=30)))
    assert steps(intake, case.case_id)["review"][:2] == ("open", now + timedelta(days=30))
    intake.handle(commands.CloseCase(intake.operator, rid(), case.case_id, CloseOutcome.RESOLVED,
                                     CloseReason.NO_LONGER_AT_RISK))
    final = steps(intake, case.case_id)
    assert final["close"][0] == "done" and final["review"][0] == "cancelled" and final["carry_out"][0] == "cancelled"
    intake.clock.advance(days=60)
    assert intake.handle(commands.ExpireOverdueSteps()) == 0  # nothing fires for a closed case


def test_a_step_done_by_a_record_is_not_completed_by_hand(intake: Any) -> None:
    case = child(intake, RiskLevel.LOW)
    assert "emergency_measures" not in steps(intake, case.case_id)
    with pytest.raises(InvalidArgument) as error:
        intake.handle(commands.CompleteStep(intake.operator, rid(), case.case_id, CaseStep.RECEIVE_AND_ASSESS))
    assert error.value.field == "step"
    with pytest.raises(FailedPrecondition):
        intake.handle(commands.CompleteStep(intake.operator, rid(), case.case_id, CaseStep.EMERGENCY_MEASURES))
    # Raised to serious risk later: the 12-hour step opens then.
    intake.handle(commands.UpdateRisk(intake.operator, rid(), case.case_id, RiskLevel.HIGH, False))
    assert steps(intake, case.case_id)["emergency_measures"][:2] == ("open", intake.clock() + timedelta(hours=12))


def test_reassignment_is_a_supervisors_and_is_announced(intake: Any) -> None:
    case = intake.register()
    with pytest.raises(PermissionDenied):
        intake.handle(commands.ReassignCase(intake.operator, rid(), case.case_id, "qn-worker-7", ReassignReason.LEAVE))
    request = commands.ReassignCase(intake.supervisor, rid(), case.case_id, "qn-worker-7", ReassignReason.LEAVE)
    moved, created = intake.handle(request)
    assert created and moved.case_worker_id == "qn-worker-7"
    again, created = intake.handle(request)
    assert not created and again.case_worker_id == "qn-worker-7"
    events = [p for _, _, p in intake.events(case.case_id) if isinstance(p, events_pb2.CaseReassigned)]
    assert len(events) == 1 and events[0].to_case_worker_id == "qn-worker-7"
    assert events[0].from_case_worker_id == case.case_worker_id


def test_bad_case_work_names_the_field_and_writes_nothing(intake: Any) -> None:
    case = intake.register()
    now = intake.clock()
    before = intake.total_rows()
    bad: list[tuple[object, str]] = [
        (commands.RecordAssessment(intake.operator, rid(), case.case_id, AssessmentSpec(None, False, ())),
         "risk_level"),
        (commands.RecordAssessment(intake.operator, rid(), case.case_id, AssessmentSpec(
            RiskLevel.LOW, False, (), accessibility_needs=("lift", ))), "accessibility_needs[0]"),
        (commands.RecordCasePlan(intake.operator, rid(), case.case_id, [], None), "goals"),
        (commands.RecordCasePlan(intake.operator, rid(), case.case_id, [
            goal((ServiceType.MEDICAL,), 0, due_at=now - timedelta(days=1))], None), "goals[0].due_at"),
        (commands.RecordCasePlan(intake.operator, rid(), case.case_id, [
            goal((ServiceType.MEDICAL,), 0, due_at=now + timedelta(days=1), responsible_id="")], None),
         "goals[0].responsible_id"),
        (commands.AddFollowUp(intake.operator, rid(), case.case_id, None, "x", None), "kind"),
        (commands.AddFollowUp(intake.operator, rid(), case.case_id, FollowUpKind.PHONE_CALL, "", None), "note"),
        (commands.ReviewCase(intake.operator, rid(), case.case_id, ReviewOutcome.CONTINUE_PLAN, "", None),
         "next_review_at"),
        (commands.ListCases(intake.operator, CaseFilter(), 500, ""), "page_size"),
        (commands.ListCases(intake.operator, CaseFilter(), 10, "not-a-token"), "page_token"),
    ]
    for command, field in bad:
        with pytest.raises(InvalidArgument) as error:
            intake.handle(command)
        assert error.value.field == field, command
    assert intake.total_rows() == before


def test_case_work_on_another_provinces_case_is_not_found(intake: Any) -> None:
    case = intake.register()
    ha_tinh = Caller("ht-operator", Role.OPERATOR, provinces=frozenset({"42"}), person=True)
    for command in (commands.GetCaseFile(ha_tinh, case.case_id),
                    commands.AddFollowUp(ha_tinh, rid(), case.case_id, FollowUpKind.PHONE_CALL, "x", None),
                    commands.CompleteStep(ha_tinh, rid(), case.case_id, CaseStep.CARRY_OUT)):
        with pytest.raises(NotFound) as error:
            intake.handle(command)
        assert str(error.value) == f"case {case.case_id} not found"


def test_case_lists_are_the_callers_provinces_due_first_paginated_and_searched_by_ids(intake: Any) -> None:
    national = intake.national
    qn = [child(intake, caller=national) for _ in range(3)]  # each due 12 h after registration
    intake.clock.advance(minutes=1)
    later = child(intake, caller=national)
    adult = intake.register(caller=national)  # nothing due: last
    ht = intake.register(caller=national, occurred_in=Place("42", "18100"),
                         survivor=Survivor(is_child=True, age=7, sex=Sex.FEMALE), needs=[], risk_level=RiskLevel.HIGH)
    listed, token = intake.handle(commands.ListCases(intake.supervisor, CaseFilter(), 2, ""))
    rest, end = intake.handle(commands.ListCases(intake.supervisor, CaseFilter(), 10, token))
    ids = [c.case_id for c in [*listed, *rest]]
    assert end == "" and ht.case_id not in ids
    assert ids[:3] == sorted(c.case_id for c in qn) and ids[3:] == [later.case_id, adult.case_id]
    # Filters: the step, the risk, the case type, mine, a province not the caller's, a due date.
    by_step = CaseFilter(step=CaseStep.EMERGENCY_MEASURES)
    step_only, _ = intake.handle(commands.ListCases(intake.supervisor, by_step, 0, ""))
    assert {c.case_id for c in step_only} == {c.case_id for c in [*qn, later]}
    assert intake.handle(commands.ListCases(intake.supervisor, CaseFilter(province_code="42"), 0, ""))[0] == []
    low, _ = intake.handle(commands.ListCases(intake.supervisor, CaseFilter(risk_level=RiskLevel.MEDIUM), 0, ""))
    assert [c.case_id for c in low] == [adult.case_id]
    dv, _ = intake.handle(commands.ListCases(intake.supervisor, CaseFilter(case_type="domestic_violence"), 0, ""))
    assert [c.case_id for c in dv] == [adult.case_id]
    mine, _ = intake.handle(commands.ListCases(national, CaseFilter(mine=True, province_code="42"), 0, ""))
    assert [c.case_id for c in mine] == [ht.case_id]
    soon, _ = intake.handle(commands.ListCases(intake.supervisor, CaseFilter(
        due_before=intake.clock() + timedelta(hours=11, minutes=59, seconds=30)), 0, ""))
    assert {c.case_id for c in soon} == {c.case_id for c in qn}
    # Search by the call id or a referral id (never by personal data); another province's case is not found.
    with_call = intake.register(caller=national, call=None)
    intake.refer(with_call, referral_id="ref-search", service=ServiceType.POLICE_PROTECTION)
    found, _ = intake.handle(commands.ListCases(intake.supervisor, CaseFilter(query="ref-search"), 0, ""))
    assert [c.case_id for c in found] == [with_call.case_id]
    follow_up_call, _ = intake.handle(commands.LogCall(
        national, rid(), Place("22"), CallDetails(CallChannel.PROVINCIAL_HOTLINE, CallTopic.DOMESTIC_VIOLENCE),
        CallOutcome.CASE_FOLLOW_UP, adult.case_id))
    by_call, _ = intake.handle(commands.ListCases(intake.supervisor, CaseFilter(query=follow_up_call.call_id), 0, ""))
    assert [c.case_id for c in by_call] == [adult.case_id]
    assert intake.handle(commands.ListCases(intake.supervisor, CaseFilter(query=ht.case_id), 0, ""))[0] == []
    assert intake.handle(commands.ListCases(intake.supervisor, CaseFilter(query="Trần Thị Mẫu"), 0, ""))[0] == []


def test_a_goal_already_achieved_may_be_in_the_past(intake: Any) -> None:
    case = intake.register(needs=[NeedSpec(ServiceType.MEDICAL, consented=True)])
    now = intake.clock()
    intake.handle(commands.RecordCasePlan(intake.operator, rid(), case.case_id, [
        goal((ServiceType.MEDICAL,), 0, due_at=now - timedelta(days=1), status=GoalStatus.ACHIEVED),
        goal((), 0, due_at=now + timedelta(days=3))], None))
    found = intake.handle(commands.GetCaseFile(intake.operator, case.case_id))
    assert found.plan.version == 1 and [g.status for g in found.plan.goals] == [GoalStatus.ACHIEVED, GoalStatus.OPEN]
    assert found.case.next_due_at == now + timedelta(days=3)
    assert found.steps == []  # adults have no statutory steps

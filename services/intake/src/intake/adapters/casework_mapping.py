"""Case work (intake's CaseWorkService) between protobuf and the domain: requests -> commands, the case file and
case lists -> responses. Its events become outbox records in proto_mapping, with the case's other events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from intake.adapters.proto_mapping import case_to_pb, vocabulary_list
from intake.domain import commands
from intake.domain.casework import (
    AssessmentSpec,
    CaseFile,
    CaseFilter,
    CaseSummary,
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
from intake.domain.model import CaseStatus, CaseStep
from refnet.common.v1 import types_pb2
from refnet.intake.v1 import casework_service_pb2 as cw
from refnet.intake.v1 import types_pb2 as intake_types
from refnet_platform.caller import Caller
from refnet_platform.timestamps import from_timestamp, to_timestamp
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, from_pb, to_pb


def _services(numbers: Any, field: str) -> tuple[ServiceType, ...]:
    return tuple(vocabulary_list(ServiceType, types_pb2.ServiceType, numbers, field, "service type"))


def record_assessment_command(request: cw.RecordAssessmentRequest, caller: Caller) -> commands.RecordAssessment:
    spec = AssessmentSpec(
        risk_level=from_pb(RiskLevel, types_pb2.RiskLevel, request.risk_level),
        immediate_danger=request.immediate_danger, needs=_services(request.needs, "needs"),
        difficulties=tuple(FunctionalDifficulty(from_pb(FunctionalDomain, cw.FunctionalDomain, d.domain),
                                                from_pb(Difficulty, cw.Difficulty, d.difficulty))
                           for d in request.difficulties),
        accessibility_needs=tuple(request.accessibility_needs), summary=request.summary,
        assessed_at=from_timestamp(request, "assessed_at"))
    return commands.RecordAssessment(caller, request.client_request_id, request.case_id, spec)


def record_case_plan_command(request: cw.RecordCasePlanRequest, caller: Caller) -> commands.RecordCasePlan:
    goals = [Goal(goal_id="", description=g.description, services=_services(g.services, f"goals[{i}].services"),
                  responsible_kind=from_pb(ResponsibleKind, intake_types.ResponsibleKind, g.responsible_kind),
                  responsible_id=g.responsible_id, due_at=from_timestamp(g, "due_at", f"goals[{i}].due_at"),
                  status=from_pb(GoalStatus, intake_types.GoalStatus, g.status) or GoalStatus.OPEN)
             for i, g in enumerate(request.goals)]
    return commands.RecordCasePlan(caller, request.client_request_id, request.case_id, goals,
                                   from_timestamp(request, "review_due_at"))


def add_follow_up_command(request: cw.AddFollowUpRequest, caller: Caller) -> commands.AddFollowUp:
    return commands.AddFollowUp(caller, request.client_request_id, request.case_id,
                                from_pb(FollowUpKind, intake_types.FollowUpKind, request.kind), request.note,
                                from_timestamp(request, "occurred_at"))


def review_case_command(request: cw.ReviewCaseRequest, caller: Caller) -> commands.ReviewCase:
    return commands.ReviewCase(caller, request.client_request_id, request.case_id,
                               from_pb(ReviewOutcome, intake_types.ReviewOutcome, request.outcome), request.note,
                               from_timestamp(request, "next_review_at"))


def reassign_case_command(request: cw.ReassignCaseRequest, caller: Caller) -> commands.ReassignCase:
    return commands.ReassignCase(caller, request.client_request_id, request.case_id, request.case_worker_id,
                                 from_pb(ReassignReason, intake_types.ReassignReason, request.reason))


def complete_step_command(request: cw.CompleteStepRequest, caller: Caller) -> commands.CompleteStep:
    return commands.CompleteStep(caller, request.client_request_id, request.case_id,
                                 from_pb(CaseStep, intake_types.CaseStep, request.step))


def list_cases_command(request: cw.ListCasesRequest, caller: Caller) -> commands.ListCases:
    case_type = from_pb(CaseType, types_pb2.CaseType, request.case_type)
    wanted = CaseFilter(
        mine=request.mine, province_code=request.province_code,
        status=from_pb(CaseStatus, intake_types.CaseStatus, request.status),
        step=from_pb(CaseStep, intake_types.CaseStep, request.step), due_before=from_timestamp(request, "due_before"),
        risk_level=from_pb(RiskLevel, types_pb2.RiskLevel, request.risk_level),
        case_type=str(case_type) if case_type else "", case_worker_id=request.case_worker_id,
        query=request.query.strip())
    return commands.ListCases(caller, wanted, request.page_size, request.page_token)


def case_file_to_pb(found: CaseFile, now: datetime) -> cw.GetCaseFileResponse:
    plan = found.plan
    return cw.GetCaseFileResponse(
        case=case_to_pb(found.case, now), readable=found.readable,
        assessments=[cw.Assessment(
            assessment_id=a.assessment_id, risk_level=to_pb(a.risk_level, types_pb2.RiskLevel),
            immediate_danger=a.immediate_danger, needs=[to_pb(n, types_pb2.ServiceType) for n in a.needs],
            difficulties=[cw.FunctionalDifficulty(domain=to_pb(d.domain, cw.FunctionalDomain),
                                                  difficulty=to_pb(d.difficulty, cw.Difficulty))
                          for d in a.difficulties],
            accessibility_needs=a.accessibility_needs, summary=a.summary, assessed_by=a.assessed_by,
            assessed_at=to_timestamp(a.assessed_at)) for a in found.assessments],
        plan=cw.CasePlan(
            plan_id=plan.plan_id, version=plan.version, review_due_at=to_timestamp(plan.review_due_at),
            recorded_by=plan.recorded_by, recorded_at=to_timestamp(plan.recorded_at),
            goals=[cw.Goal(goal_id=g.goal_id, description=g.description,
                           services=[to_pb(x, types_pb2.ServiceType) for x in g.services],
                           responsible_kind=to_pb(g.responsible_kind, intake_types.ResponsibleKind),
                           responsible_id=g.responsible_id, due_at=to_timestamp(g.due_at),
                           status=to_pb(g.status, intake_types.GoalStatus)) for g in plan.goals],
        ) if plan else None,
        follow_ups=[cw.FollowUp(follow_up_id=f.follow_up_id, kind=to_pb(f.kind, intake_types.FollowUpKind),
                                note=f.note, occurred_at=to_timestamp(f.occurred_at), recorded_by=f.recorded_by)
                    for f in found.follow_ups],
        reviews=[cw.Review(review_id=r.review_id, outcome=to_pb(r.outcome, intake_types.ReviewOutcome), note=r.note,
                           next_review_at=to_timestamp(r.next_review_at), reviewed_by=r.reviewed_by,
                           reviewed_at=to_timestamp(r.reviewed_at)) for r in found.reviews],
        steps=[cw.Step(step=to_pb(s.step, intake_types.CaseStep), status=to_pb(s.status, intake_types.StepStatus),
                       due_at=to_timestamp(s.due_at), opened_at=to_timestamp(s.opened_at),
                       done_at=to_timestamp(s.done_at), escalated_at=to_timestamp(s.escalated_at))
               for s in found.steps],
    )


def case_summary_to_pb(c: CaseSummary, now: datetime) -> cw.CaseSummary:
    return cw.CaseSummary(
        case_id=c.case_id, province_code=c.province_code,
        case_types=[to_pb(t, types_pb2.CaseType) for x in c.case_types if (t := _case_type(x)) is not None],
        risk_level=to_pb(c.risk_level, types_pb2.RiskLevel), emergency=c.emergency, is_child=c.is_child,
        status=to_pb(c.status, intake_types.CaseStatus), current_step=to_pb(c.current_step, intake_types.CaseStep),
        next_due_at=to_timestamp(c.next_due_at), overdue=c.overdue(now), case_worker_id=c.case_worker_id,
        registered_at=to_timestamp(c.registered_at), call_id=c.call_id)


def _case_type(code: str) -> CaseType | None:
    return CaseType(code) if code in CaseType._value2member_map_ else None

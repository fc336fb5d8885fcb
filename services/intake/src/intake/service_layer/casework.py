"""Case work's use cases: assessments, the plan, follow-ups, reviews, reassignment, a child's steps and their
deadlines, the case file and the case lists. Same rules as every intake handler: authorize first, validate
before touching the database, one transaction per change with its events, once per client request id, a case
outside the caller's provinces answers as a missing one.

Intake owns case work because it owns what case work is about and writes it: the case record, its case worker
and the survivor's sealed personal data (notes are personal data, sealed with the case's key)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from intake.domain import commands, events
from intake.domain.casework import (
    DEFAULT_PAGE_SIZE,
    DONE_BY_RECORD,
    MAX_PAGE_SIZE,
    Assessment,
    CaseFile,
    CasePlan,
    CaseSummary,
    FollowUp,
    GoalStatus,
    Review,
    ReviewOutcome,
    StepPolicy,
    StepStatus,
    validate_assessment,
    validate_follow_up,
    validate_goals,
    validate_reassignment,
    validate_review,
)
from intake.domain.contact_reads import AuditEntry
from intake.domain.model import Case, CaseStep, Need
from intake.domain.validation import require_id
from intake.service_layer.authorization import authorize
from intake.service_layer.handlers import UowFactory, _case, _load, _once, require_ids
from intake.service_layer.steps import refresh_due, set_step
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform import metrics
from refnet_platform.clock import Clock
from refnet_platform.envelope import new_event_id
from refnet_platform.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Case work


def _key(work: IntakeUnitOfWork, case: Case) -> bytes:
    key = work.casework.case_key(case.case_id)
    if key is None:
        raise FailedPrecondition(f"case {case.case_id} was erased")
    return key


def record_assessment(cmd: commands.RecordAssessment, uow: UowFactory, clock: Clock,
                      policy: StepPolicy) -> tuple[Case, str, bool]:
    authorize("RecordAssessment", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    spec = cmd.assessment
    validate_assessment(spec, clock())
    assert spec.risk_level is not None
    risk_level = spec.risk_level

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        assessment = Assessment(
            assessment_id=new_event_id(), risk_level=risk_level, immediate_danger=spec.immediate_danger,
            needs=spec.needs, assessed_by=cmd.caller.subject_id, assessed_at=spec.assessed_at or now,
            difficulties=spec.difficulties, accessibility_needs=spec.accessibility_needs, summary=spec.summary)
        work.casework.add_assessment(_key(work, case), case.case_id, assessment)
        before = (case.risk_level, case.immediate_danger)
        case.triage(risk_level, spec.immediate_danger, now, policy.emergency_measures)
        work.emit(events.CaseAssessed(case, assessment))
        if (case.risk_level, case.immediate_danger) != before:
            work.emit(events.RiskUpdated(case))
        steps = work.casework.steps(case.case_id)
        if case.survivor.is_child:
            set_step(work, case, steps, CaseStep.RECEIVE_AND_ASSESS, StepStatus.DONE, now, cmd.caller.subject_id)
            if case.child_protection_deadline is not None \
                    and not any(s.step is CaseStep.EMERGENCY_MEASURES for s in steps):
                set_step(work, case, steps, CaseStep.EMERGENCY_MEASURES, StepStatus.OPEN, now, cmd.caller.subject_id,
                         case.child_protection_deadline)
            if not any(s.step is CaseStep.SUPPORT_PLAN for s in steps):
                set_step(work, case, steps, CaseStep.SUPPORT_PLAN, StepStatus.OPEN, now, cmd.caller.subject_id,
                         now + policy.support_plan)
        refresh_due(work, case, steps)
        return assessment.assessment_id

    assessment_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "record_assessment", cmd.case_id,
                                   perform)
    if created:
        log.info("case assessed", extra={"fields": {"case_id": cmd.case_id, "assessment_id": assessment_id}})
    return _load(uow, cmd.case_id, cmd.caller), assessment_id, created


def record_case_plan(cmd: commands.RecordCasePlan, uow: UowFactory, clock: Clock,
                     policy: StepPolicy) -> tuple[Case, str, bool]:
    authorize("RecordCasePlan", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    received = clock()
    validate_goals(cmd.goals, received)
    if cmd.review_due_at is not None and cmd.review_due_at <= received:
        raise InvalidArgument("review_due_at", "must be in the future")

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        key = _key(work, case)
        plan = CasePlan(plan_id=new_event_id(), version=work.casework.latest_plan_version(case.case_id) + 1,
                        goals=[replace(g, goal_id=new_event_id()) for g in cmd.goals],
                        review_due_at=cmd.review_due_at or now + policy.review, recorded_by=cmd.caller.subject_id,
                        recorded_at=now)
        work.casework.add_plan(key, case.case_id, plan)
        # A service the plan relies on becomes a need of the case (routed once consent is given).
        for goal in plan.goals:
            for service in goal.services:
                if case.need_for(service) is None:
                    need = Need(need_id=new_event_id(), service_type=service)
                    work.cases.add_need(case.case_id, need)
                    case.needs.append(need)
                    work.emit(events.NeedAdded(case, need, now))
        work.emit(events.CasePlanRecorded(case, plan))
        steps = work.casework.steps(case.case_id)
        if case.survivor.is_child:
            by = cmd.caller.subject_id
            set_step(work, case, steps, CaseStep.SUPPORT_PLAN, StepStatus.DONE, now, by)
            open_goals = [g.due_at for g in plan.goals if g.status is GoalStatus.OPEN and g.due_at]
            set_step(work, case, steps, CaseStep.CARRY_OUT, StepStatus.OPEN, now, by,
                     max(open_goals, default=plan.review_due_at))
            set_step(work, case, steps, CaseStep.REVIEW, StepStatus.OPEN, now, by, plan.review_due_at)
        refresh_due(work, case, steps)
        return plan.plan_id

    plan_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "record_case_plan", cmd.case_id, perform)
    if created:
        log.info("case plan recorded", extra={"fields": {"case_id": cmd.case_id, "plan_id": plan_id}})
    return _load(uow, cmd.case_id, cmd.caller), plan_id, created


def add_follow_up(cmd: commands.AddFollowUp, uow: UowFactory, clock: Clock) -> tuple[Case, str, bool]:
    authorize("AddFollowUp", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    validate_follow_up(cmd.kind, cmd.note, cmd.occurred_at, clock())
    assert cmd.kind is not None
    kind = cmd.kind

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        follow_up = FollowUp(follow_up_id=new_event_id(), kind=kind, note=cmd.note,
                             occurred_at=cmd.occurred_at or now, recorded_by=cmd.caller.subject_id)
        work.casework.add_follow_up(_key(work, case), case.case_id, follow_up, now)
        work.emit(events.FollowUpRecorded(case, follow_up))
        return follow_up.follow_up_id

    follow_up_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "add_follow_up", cmd.case_id,
                                  perform)
    if created:
        log.info("follow-up recorded", extra={"fields": {"case_id": cmd.case_id, "follow_up_id": follow_up_id,
                                                         "kind": str(kind)}})
    return _load(uow, cmd.case_id, cmd.caller), follow_up_id, created


def review_case(cmd: commands.ReviewCase, uow: UowFactory, clock: Clock,
                policy: StepPolicy) -> tuple[Case, str, bool]:
    authorize("ReviewCase", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    outcome = validate_review(cmd.outcome, cmd.note, cmd.next_review_at, clock())

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        review = Review(review_id=new_event_id(), outcome=outcome, note=cmd.note,
                        next_review_at=None if outcome is ReviewOutcome.READY_TO_CLOSE else cmd.next_review_at,
                        reviewed_by=cmd.caller.subject_id, reviewed_at=now)
        work.casework.add_review(_key(work, case), case.case_id, review)
        work.emit(events.CaseReviewed(case, review))
        steps = work.casework.steps(case.case_id)
        if case.survivor.is_child:
            by = cmd.caller.subject_id
            if outcome is ReviewOutcome.READY_TO_CLOSE:
                set_step(work, case, steps, CaseStep.REVIEW, StepStatus.DONE, now, by)
                set_step(work, case, steps, CaseStep.CARRY_OUT, StepStatus.DONE, now, by)
                set_step(work, case, steps, CaseStep.CLOSE, StepStatus.OPEN, now, by, now + policy.close)
            else:
                set_step(work, case, steps, CaseStep.REVIEW, StepStatus.OPEN, now, by, review.next_review_at)
        refresh_due(work, case, steps)
        return review.review_id

    review_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "review_case", cmd.case_id, perform)
    return _load(uow, cmd.case_id, cmd.caller), review_id, created


def reassign_case(cmd: commands.ReassignCase, uow: UowFactory, clock: Clock) -> tuple[Case, bool]:
    authorize("ReassignCase", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    require_id(cmd.case_worker_id, "case_worker_id")

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        reason = validate_reassignment(case, cmd.case_worker_id, cmd.reason)
        before = case.case_worker_id
        case.case_worker_id = cmd.case_worker_id
        work.cases.update(case)
        work.casework.add_assignment(new_event_id(), case.case_id, before, case.case_worker_id, str(reason),
                                     cmd.caller.subject_id, now)
        work.emit(events.CaseReassigned(case, before, reason, cmd.caller.subject_id))
        return case.case_id

    _, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "reassign_case", cmd.case_id, perform)
    return _load(uow, cmd.case_id, cmd.caller), created


def complete_step(cmd: commands.CompleteStep, uow: UowFactory, clock: Clock) -> tuple[Case, bool]:
    authorize("CompleteStep", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    if cmd.step is None:
        raise InvalidArgument("step", "is required")
    step = cmd.step
    if step in DONE_BY_RECORD:
        raise InvalidArgument("step", f"{step} is done by {DONE_BY_RECORD[step]}")

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        steps = work.casework.steps(case.case_id)
        if not any(s.step is step and s.open for s in steps):
            raise FailedPrecondition(f"case {case.case_id} has no open {step} step")
        set_step(work, case, steps, step, StepStatus.DONE, now, cmd.caller.subject_id)
        refresh_due(work, case, steps)
        return case.case_id

    _, created = _once(uow, clock, cmd.caller, cmd.client_request_id, f"complete_step:{step}", cmd.case_id, perform)
    return _load(uow, cmd.case_id, cmd.caller), created


def get_case_file(cmd: commands.GetCaseFile, uow: UowFactory, clock: Clock) -> CaseFile:
    """Everything recorded in case work, what was sealed opened with the case's key; audited."""
    authorize("GetCaseFile", cmd.caller)
    require_ids(cmd, "case_id")
    with uow() as work:
        case = _case(work, cmd.case_id, cmd.caller, lock=False)
        key = work.casework.case_key(case.case_id)
        found = CaseFile(case=case, assessments=work.casework.assessments(key, case.case_id),
                         plan=work.casework.plan(key, case.case_id),
                         follow_ups=work.casework.follow_ups(key, case.case_id),
                         reviews=work.casework.reviews(key, case.case_id), steps=work.casework.steps(case.case_id),
                         readable=key is not None)
        work.audit.append(AuditEntry(actor=cmd.caller, action="read_case_file", case_id=case.case_id, at=clock(),
                                     purpose="case_work"))
        work.commit()
    return found


def list_cases(cmd: commands.ListCases, uow: UowFactory) -> tuple[list[CaseSummary], str]:
    authorize("ListCases", cmd.caller)
    if cmd.page_size < 0 or cmd.page_size > MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"between 1 and {MAX_PAGE_SIZE} (0: {DEFAULT_PAGE_SIZE})")
    if len(cmd.filter.query) > 100:
        raise InvalidArgument("query", "a case id, a call id or a referral id (at most 100 characters)")
    with uow().reading() as work:
        return work.casework.list_cases(cmd.caller, cmd.filter, cmd.page_size or DEFAULT_PAGE_SIZE, cmd.page_token)


# ---------------------------------------------------------------------------------------------
# The timer (intake-worker)


def expire_overdue_steps(cmd: commands.ExpireOverdueSteps, uow: UowFactory, clock: Clock) -> int:
    """Every open step past its deadline is escalated once: CaseStepOverdue tells notifications to notify the case
    worker and alert the province's supervisor. Each in its own transaction (several workers may run this: a
    step another one took is skipped); the deadlines are intake's own rows, so a restart misses none."""
    now = cmd.now or clock()
    with uow() as work:
        due = work.casework.due_steps(now, cmd.limit)
    escalated = 0
    for case_id, step_name in due:
        try:
            with uow() as work:
                case = work.cases.get(case_id, lock=True)
                steps = work.casework.steps(case_id)
                step = next((s for s in steps if s.step is step_name), None)
                if case is None or step is None or not step.open or step.escalated_at is not None \
                        or step.due_at is None or step.due_at > now:
                    continue
                step.escalated_at = now
                work.casework.save_step(case_id, step, new=False)
                work.emit(events.CaseStepOverdue(case, step))
                work.commit()
                escalated += 1
            metrics.sla_breached(case.province_code, f"case_step_{step_name}")
            metrics.escalated(case.province_code, "case_step_overdue")
            log.warning("case step overdue", extra={"fields": {"case_id": case_id, "step": str(step_name)}})
        except Exception:
            # One bad row must not hold up every other overdue step; the next run tries it again.
            log.exception("could not escalate a case step", extra={"fields": {"case_id": case_id}})
    return escalated


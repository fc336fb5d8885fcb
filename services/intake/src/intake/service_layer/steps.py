"""A child's steps under Decree 56/2017 (opened, done, cancelled, each announced) and what the case lists sort by.
Used by intake's handlers (registration, triage, closing, erasure) and case work's."""

from __future__ import annotations

from datetime import datetime

from intake.domain import events
from intake.domain.casework import Step, StepPolicy, StepStatus, child_steps_at_registration, next_step
from intake.domain.model import Case, CaseStatus, CaseStep
from intake.service_layer.unit_of_work import IntakeUnitOfWork


def set_step(work: IntakeUnitOfWork, case: Case, steps: list[Step], step: CaseStep, status: StepStatus,
             now: datetime, by: str, due_at: datetime | None = None, announce: bool = True) -> None:
    """Opens (with `due_at`), completes or cancels one of a child's steps, and announces it (unless CaseRegistered
    already says so: a child's first steps). Opening a step that was done before (a review after a review) opens it
    again with its new deadline."""
    existing = next((s for s in steps if s.step is step), None)
    if existing is not None and existing.status is status and status is not StepStatus.OPEN:
        return
    if existing is None:
        if status is not StepStatus.OPEN and step is not CaseStep.CLOSE:
            return  # nothing to complete or cancel
        existing = Step(step, status, due_at, now)
        steps.append(existing)
        new = True
    else:
        new = False
    existing.status = status
    if status is StepStatus.OPEN:
        existing.due_at, existing.opened_at, existing.done_at, existing.escalated_at = due_at, now, None, None
    else:
        existing.done_at = now
    work.casework.save_step(case.case_id, existing, new)
    if announce:
        work.emit(events.CaseStepChanged(case, existing, by))


def refresh_due(work: IntakeUnitOfWork, case: Case, steps: list[Step]) -> None:
    """What the case lists sort by: the open step due first, and the earliest of its deadline and the plan's open
    goals' due dates. A case that is no longer open has none."""
    if case.status is not CaseStatus.OPEN:
        case.current_step, case.next_due_at = None, None
    else:
        current = next_step(steps)
        case.current_step = current.step if current else None
        deadlines = [d for d in (current.due_at if current else None, work.casework.open_goal_due(case.case_id)) if d]
        case.next_due_at = min(deadlines, default=None)
    work.cases.update(case)


def first_child_steps(case: Case, policy: StepPolicy, now: datetime) -> list[Step]:
    """At registration, before the case is stored: a child's first steps, receive and assess, and emergency measures
    for a child at serious risk, and what the case lists sort by (a new case has no plan yet, so its open step's
    deadline). CaseRegistered announces them (is_child and child_protection_deadline); the caller stores them once
    the case is (work.casework.add_steps)."""
    steps = child_steps_at_registration(case, policy, now)
    current = next_step(steps)
    case.current_step, case.next_due_at = (current.step, current.due_at) if current else (None, None)
    return steps


def after_triage(work: IntakeUnitOfWork, case: Case, now: datetime, by: str) -> None:
    """A child newly at serious risk: emergency measures open, due at the case's 12-hour deadline."""
    if not case.survivor.is_child or case.child_protection_deadline is None:
        return
    steps = work.casework.steps(case.case_id)
    if not any(s.step is CaseStep.EMERGENCY_MEASURES for s in steps):
        set_step(work, case, steps, CaseStep.EMERGENCY_MEASURES, StepStatus.OPEN, now, by,
                 case.child_protection_deadline)
    refresh_due(work, case, steps)


def end_steps(work: IntakeUnitOfWork, case: Case, now: datetime, by: str, closed: bool) -> None:
    """The case was closed (its close step done) or erased: every other open step is cancelled, so no timer
    fires for it."""
    steps = work.casework.steps(case.case_id)
    for step in list(steps):
        if step.open and step.step is not CaseStep.CLOSE:
            set_step(work, case, steps, step.step, StepStatus.CANCELLED, now, by)
    if closed and case.survivor.is_child:
        set_step(work, case, steps, CaseStep.CLOSE, StepStatus.DONE, now, by)
    refresh_due(work, case, steps)



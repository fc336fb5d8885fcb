"""Case work after intake: assessments, the case plan, follow-ups, reviews, reassignment and, for a child, the
steps of Decree 56/2017/NĐ-CP, each with a deadline that a timer watches. No I/O, no protobuf.

What a case worker writes in her own words (an assessment's summary, a goal, a follow-up note, a review note)
and the survivor's functional difficulties and accessibility needs are personal data: sealed with the case's
key, never in an event, a log line, a span or an error message. Events carry ids and codes only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from intake.domain.model import MAX_ID, Case, CaseStatus, CaseStep
from intake.domain.validation import require_id
from refnet_platform.errors import FailedPrecondition, InvalidArgument
from refnet_platform.vocabulary import ACCESSIBILITY_CODES, RiskLevel, ServiceType

NOTE_LIMIT = 20_000
GOAL_LIMIT = 2_000
MAX_GOALS = 30
MAX_ACCESSIBILITY_NEEDS = 20


# Done by another record (an assessment, a plan, a review, closing the case), not by CompleteStep.
DONE_BY_RECORD = {CaseStep.RECEIVE_AND_ASSESS: "RecordAssessment", CaseStep.SUPPORT_PLAN: "RecordCasePlan",
                  CaseStep.REVIEW: "ReviewCase", CaseStep.CLOSE: "CloseCase"}


class StepStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class FollowUpKind(StrEnum):
    HOME_VISIT = "home_visit"
    PHONE_CALL = "phone_call"
    OFFICE_VISIT = "office_visit"
    SERVICE_CHECK = "service_check"
    OTHER = "other"


class ReviewOutcome(StrEnum):
    CONTINUE_PLAN = "continue_plan"
    REVISE_PLAN = "revise_plan"
    READY_TO_CLOSE = "ready_to_close"


class ReassignReason(StrEnum):
    WORKLOAD = "workload"
    LEAVE = "leave"
    CONFLICT_OF_INTEREST = "conflict_of_interest"
    SKILLS = "skills"
    SURVIVOR_REQUEST = "survivor_request"


class ResponsibleKind(StrEnum):
    PERSON = "person"
    AGENCY = "agency"


class GoalStatus(StrEnum):
    OPEN = "open"
    ACHIEVED = "achieved"
    DROPPED = "dropped"


class FunctionalDomain(StrEnum):
    """The Washington Group Short Set's domains."""

    SEEING = "seeing"
    HEARING = "hearing"
    WALKING = "walking"
    REMEMBERING = "remembering"
    SELF_CARE = "self_care"
    COMMUNICATING = "communicating"


class Difficulty(StrEnum):
    NONE = "none"
    SOME = "some"
    A_LOT = "a_lot"
    CANNOT_DO = "cannot_do"




@dataclass(frozen=True)
class StepPolicy:
    """How long each step may take once it opens. Emergency measures: 12 hours by law; the others are the
    province's procedure (configurable: intake's settings)."""

    assess: timedelta = timedelta(days=3)
    emergency_measures: timedelta = timedelta(hours=12)
    support_plan: timedelta = timedelta(days=10)
    review: timedelta = timedelta(days=30)
    close: timedelta = timedelta(days=7)


@dataclass
class Step:
    step: CaseStep
    status: StepStatus
    due_at: datetime | None
    opened_at: datetime
    done_at: datetime | None = None
    escalated_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status is StepStatus.OPEN


@dataclass(frozen=True)
class FunctionalDifficulty:
    domain: FunctionalDomain | None
    difficulty: Difficulty | None


@dataclass(frozen=True)
class AssessmentSpec:
    risk_level: RiskLevel | None
    immediate_danger: bool
    needs: tuple[ServiceType, ...]
    difficulties: tuple[FunctionalDifficulty, ...] = ()
    accessibility_needs: tuple[str, ...] = ()
    summary: str = ""
    assessed_at: datetime | None = None


@dataclass
class Assessment:
    assessment_id: str
    risk_level: RiskLevel
    immediate_danger: bool
    needs: tuple[ServiceType, ...]
    assessed_by: str
    assessed_at: datetime
    # Sealed: None when the case was erased (or read by a process without the master key).
    difficulties: tuple[FunctionalDifficulty, ...] = ()
    accessibility_needs: tuple[str, ...] = ()
    summary: str = ""


@dataclass
class Goal:
    goal_id: str
    description: str
    services: tuple[ServiceType, ...]
    responsible_kind: ResponsibleKind | None
    responsible_id: str
    due_at: datetime | None
    status: GoalStatus = GoalStatus.OPEN


@dataclass
class CasePlan:
    plan_id: str
    version: int
    goals: list[Goal]
    review_due_at: datetime | None
    recorded_by: str
    recorded_at: datetime


@dataclass
class FollowUp:
    follow_up_id: str
    kind: FollowUpKind
    note: str
    occurred_at: datetime
    recorded_by: str


@dataclass
class Review:
    review_id: str
    outcome: ReviewOutcome
    note: str
    next_review_at: datetime | None
    reviewed_by: str
    reviewed_at: datetime


@dataclass
class CaseFile:
    case: Case
    assessments: list[Assessment] = field(default_factory=list)
    plan: CasePlan | None = None
    follow_ups: list[FollowUp] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    readable: bool = True


@dataclass(frozen=True)
class CaseFilter:
    """A case list's filters; the caller's provinces always bound it."""

    mine: bool = False
    province_code: str = ""
    status: CaseStatus | None = None
    step: CaseStep | None = None
    due_before: datetime | None = None
    risk_level: RiskLevel | None = None
    case_type: str = ""
    case_worker_id: str = ""
    query: str = ""


@dataclass(frozen=True)
class CaseSummary:
    case_id: str
    province_code: str
    case_types: tuple[str, ...]
    risk_level: RiskLevel
    emergency: bool
    is_child: bool
    status: CaseStatus
    current_step: CaseStep | None
    next_due_at: datetime | None
    case_worker_id: str
    registered_at: datetime
    call_id: str

    def overdue(self, now: datetime) -> bool:
        return self.next_due_at is not None and self.next_due_at <= now


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


# ---------------------------------------------------------------------------------------------
# The child-protection steps


def child_steps_at_registration(case: Case, policy: StepPolicy, now: datetime) -> list[Step]:
    """A child's case opens with "receive and assess"; a child at serious risk also with emergency measures,
    due at the case's 12-hour deadline."""
    if not case.survivor.is_child:
        return []
    steps = [Step(CaseStep.RECEIVE_AND_ASSESS, StepStatus.OPEN, now + policy.assess, now)]
    if case.child_protection_deadline is not None:
        steps.append(Step(CaseStep.EMERGENCY_MEASURES, StepStatus.OPEN, case.child_protection_deadline, now))
    return steps


def next_step(steps: list[Step]) -> Step | None:
    """The open step due first."""
    open_steps = [s for s in steps if s.open]
    return min(open_steps, key=lambda s: (s.due_at is None, s.due_at or s.opened_at), default=None)


# ---------------------------------------------------------------------------------------------
# Validation: each failure names the request field and never repeats what was written


def validate_text(value: str, field_name: str, limit: int, required: bool = False) -> None:
    if required and not value.strip():
        raise InvalidArgument(field_name, "is required")
    if len(value) > limit:
        raise InvalidArgument(field_name, f"at most {limit} characters")


def validate_assessment(spec: AssessmentSpec, now: datetime) -> None:
    if spec.risk_level is None:
        raise InvalidArgument("risk_level", "is required (low, medium or high)")
    _distinct(spec.needs, "needs")
    for index, item in enumerate(spec.difficulties):
        if item.domain is None:
            raise InvalidArgument(f"difficulties[{index}].domain", "is required")
        if item.difficulty is None:
            raise InvalidArgument(f"difficulties[{index}].difficulty", "is required")
        if any(other.domain is item.domain for other in spec.difficulties[:index]):
            raise InvalidArgument(f"difficulties[{index}].domain", "this domain is listed twice")
    if len(spec.accessibility_needs) > MAX_ACCESSIBILITY_NEEDS:
        raise InvalidArgument("accessibility_needs", f"at most {MAX_ACCESSIBILITY_NEEDS}")
    for index, code in enumerate(spec.accessibility_needs):
        if code not in ACCESSIBILITY_CODES:
            raise InvalidArgument(f"accessibility_needs[{index}]", f"must be one of {', '.join(ACCESSIBILITY_CODES)}")
        if code in spec.accessibility_needs[:index]:
            raise InvalidArgument(f"accessibility_needs[{index}]", "listed twice")
    validate_text(spec.summary, "summary", NOTE_LIMIT)
    _not_future(spec.assessed_at, now, "assessed_at")


def validate_goals(goals: list[Goal], now: datetime) -> None:
    if not goals:
        raise InvalidArgument("goals", "at least one goal is required")
    if len(goals) > MAX_GOALS:
        raise InvalidArgument("goals", f"at most {MAX_GOALS}")
    for index, goal in enumerate(goals):
        prefix = f"goals[{index}]."
        validate_text(goal.description, f"{prefix}description", GOAL_LIMIT, required=True)
        _distinct(goal.services, f"{prefix}services")
        if goal.responsible_kind is None:
            raise InvalidArgument(f"{prefix}responsible_kind", "is required (person or agency)")
        require_id(goal.responsible_id, f"{prefix}responsible_id")
        if goal.due_at is None:
            raise InvalidArgument(f"{prefix}due_at", "is required")
        if goal.status is GoalStatus.OPEN and goal.due_at <= now:
            raise InvalidArgument(f"{prefix}due_at", "an open goal's due date must be in the future")


def validate_follow_up(kind: FollowUpKind | None, note: str, occurred_at: datetime | None, now: datetime) -> None:
    if kind is None:
        raise InvalidArgument("kind", "is required")
    validate_text(note, "note", NOTE_LIMIT, required=True)
    _not_future(occurred_at, now, "occurred_at")


def validate_review(outcome: ReviewOutcome | None, note: str, next_review_at: datetime | None,
                    now: datetime) -> ReviewOutcome:
    if outcome is None:
        raise InvalidArgument("outcome", "is required")
    validate_text(note, "note", NOTE_LIMIT)
    if outcome is not ReviewOutcome.READY_TO_CLOSE:
        if next_review_at is None:
            raise InvalidArgument("next_review_at", "is required unless the case is ready to close")
        if next_review_at <= now:
            raise InvalidArgument("next_review_at", "must be in the future")
    return outcome


def validate_reassignment(case: Case, case_worker_id: str, reason: ReassignReason | None) -> ReassignReason:
    require_id(case_worker_id, "case_worker_id")
    if len(case_worker_id) > MAX_ID:
        raise InvalidArgument("case_worker_id", f"at most {MAX_ID} characters")
    if reason is None:
        raise InvalidArgument("reason", "is required")
    if case_worker_id == case.case_worker_id:
        raise FailedPrecondition(f"case {case.case_id} is already with {case_worker_id}")
    return reason


def _distinct(values: tuple[ServiceType, ...], field_name: str) -> None:
    for index, value in enumerate(values):
        if value in values[:index]:
            raise InvalidArgument(f"{field_name}[{index}]", f"{value} is listed twice")


def _not_future(value: datetime | None, now: datetime, field_name: str) -> None:
    if value is not None and value > now + timedelta(minutes=5):
        raise InvalidArgument(field_name, "is in the future")

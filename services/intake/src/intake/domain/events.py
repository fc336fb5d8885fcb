"""What happened, for the outbox. `at` is when it happened: consent validity is judged then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from intake.domain.casework import Assessment, CasePlan, FollowUp, ReassignReason, Review, Step
from intake.domain.model import Call, Case, Consent, Need


@dataclass(frozen=True)
class CallLogged:
    call: Call


@dataclass(frozen=True)
class CaseRegistered:
    case: Case
    at: datetime


@dataclass(frozen=True)
class NeedAdded:
    case: Case
    need: Need
    at: datetime


@dataclass(frozen=True)
class RiskUpdated:
    case: Case


@dataclass(frozen=True)
class ConsentGiven:
    case: Case
    need: Need
    consent: Consent


@dataclass(frozen=True)
class ConsentWithdrawn:
    case: Case
    need: Need
    consent: Consent


@dataclass(frozen=True)
class CaseClosed:
    case: Case


@dataclass(frozen=True)
class CaseErased:
    case: Case


# Case work: the mapping to protobuf takes ids and codes only (never a note, goal or summary).


@dataclass(frozen=True)
class CaseAssessed:
    case: Case
    assessment: Assessment


@dataclass(frozen=True)
class CasePlanRecorded:
    case: Case
    plan: CasePlan


@dataclass(frozen=True)
class FollowUpRecorded:
    case: Case
    follow_up: FollowUp


@dataclass(frozen=True)
class CaseReviewed:
    case: Case
    review: Review


@dataclass(frozen=True)
class CaseReassigned:
    case: Case
    from_case_worker_id: str
    reason: ReassignReason
    by: str


@dataclass(frozen=True)
class CaseStepChanged:
    case: Case
    step: Step
    by: str


@dataclass(frozen=True)
class CaseStepOverdue:
    case: Case
    step: Step

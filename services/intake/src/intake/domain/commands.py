"""What intake is asked to do. Every command from a gRPC call carries the platform's `Caller` (who,
which role, which provinces) so the handler authorizes it, server-side."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from intake.domain.casework import (
    AssessmentSpec,
    CaseFilter,
    FollowUpKind,
    Goal,
    ReassignReason,
    ReviewOutcome,
)
from intake.domain.model import (
    CallDetails,
    CallOutcome,
    CaseStep,
    CloseOutcome,
    CloseReason,
    ConsentTerms,
    Contact,
    EraseReason,
    NeedSpec,
    Place,
    Survivor,
)
from refnet_platform.caller import Caller
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType


@dataclass(frozen=True)
class LogCall:
    caller: Caller
    client_request_id: str
    place: Place
    details: CallDetails
    outcome: CallOutcome | None
    case_id: str


@dataclass(frozen=True)
class RegisterCase:
    caller: Caller
    client_request_id: str
    occurred_in: Place
    recorded_at: datetime | None
    reported_in: Place | None
    case_types: list[CaseType]
    survivor: Survivor
    needs: list[NeedSpec]
    risk_level: RiskLevel | None
    immediate_danger: bool
    case_worker_id: str
    contact: Contact
    narrative: str
    call: CallDetails | None = None
    reporting_consent: bool = True


@dataclass(frozen=True)
class GetCase:
    caller: Caller
    case_id: str


@dataclass(frozen=True)
class AddNeed:
    caller: Caller
    client_request_id: str
    case_id: str
    need: NeedSpec


@dataclass(frozen=True)
class UpdateRisk:
    caller: Caller
    client_request_id: str
    case_id: str
    risk_level: RiskLevel | None
    immediate_danger: bool


@dataclass(frozen=True)
class GiveConsent:
    caller: Caller
    client_request_id: str
    case_id: str
    need_id: str
    terms: ConsentTerms | None


@dataclass(frozen=True)
class WithdrawConsent:
    caller: Caller
    client_request_id: str
    case_id: str
    need_id: str


@dataclass(frozen=True)
class OverrideConsent:
    """A supervisor consents in the survivor's place, under a legal basis (terms.legal_basis)."""

    caller: Caller
    client_request_id: str
    case_id: str
    need_id: str
    terms: ConsentTerms


@dataclass(frozen=True)
class CloseCase:
    caller: Caller
    client_request_id: str
    case_id: str
    outcome: CloseOutcome | None
    reason: CloseReason | None = None


@dataclass(frozen=True)
class EraseCase:
    caller: Caller
    client_request_id: str
    case_id: str
    reason: EraseReason | None


@dataclass(frozen=True)
class GetCaseContact:
    """Another refnet service (caller.subject_id: its certificate CN) reads the contact for `purpose`, on
    behalf of a referral intake's own record shows accepted."""

    caller: Caller
    case_id: str
    referral_id: str
    recipient_id: str
    recipient_sector: str
    service_type: ServiceType | None
    purpose: str


@dataclass(frozen=True)
class RecordReferral:
    """What referral arranged for one need, learned from its events."""

    case_id: str
    need_id: str
    referral_id: str
    status: str
    provider_id: str


# Case work (CaseWorkService)


@dataclass(frozen=True)
class RecordAssessment:
    caller: Caller
    client_request_id: str
    case_id: str
    assessment: AssessmentSpec


@dataclass(frozen=True)
class RecordCasePlan:
    """goals: as asked for (goal_id empty: intake names them)."""

    caller: Caller
    client_request_id: str
    case_id: str
    goals: list[Goal]
    review_due_at: datetime | None


@dataclass(frozen=True)
class AddFollowUp:
    caller: Caller
    client_request_id: str
    case_id: str
    kind: FollowUpKind | None
    note: str
    occurred_at: datetime | None


@dataclass(frozen=True)
class ReviewCase:
    caller: Caller
    client_request_id: str
    case_id: str
    outcome: ReviewOutcome | None
    note: str
    next_review_at: datetime | None


@dataclass(frozen=True)
class ReassignCase:
    caller: Caller
    client_request_id: str
    case_id: str
    case_worker_id: str
    reason: ReassignReason | None


@dataclass(frozen=True)
class CompleteStep:
    caller: Caller
    client_request_id: str
    case_id: str
    step: CaseStep | None


@dataclass(frozen=True)
class GetCaseFile:
    caller: Caller
    case_id: str


@dataclass(frozen=True)
class ListCases:
    caller: Caller
    filter: CaseFilter
    page_size: int
    page_token: str


@dataclass(frozen=True)
class ExpireOverdueSteps:
    """intake-worker's timer: every open step past its deadline is escalated, once."""

    now: datetime | None = None
    limit: int = 200


@dataclass(frozen=True)
class ImportedCase:
    """One past case from a hotline's own records: codes and original dates, no personal data."""

    idempotency_key: str
    occurred_in: Place
    reported_in: Place | None
    national_line: bool
    case_types: list[CaseType]
    survivor: Survivor
    risk_level: RiskLevel | None
    immediate_danger: bool
    registered_at: datetime | None
    closed_at: datetime | None
    close_outcome: CloseOutcome | None
    reporting_consent: bool = True


@dataclass(frozen=True)
class ImportedCall:
    idempotency_key: str
    place: Place
    details: CallDetails
    outcome: CallOutcome | None
    case_key: str = ""


@dataclass(frozen=True)
class ImportHistory:
    caller: Caller
    cases: list[ImportedCase]
    calls: list[ImportedCall]


@dataclass(frozen=True)
class SetSmsPreference:
    """The SMS door (caller.subject_id "notifications"): a survivor texted STOP (stop=True) or START."""

    caller: Caller
    sender_phone: str
    stop: bool

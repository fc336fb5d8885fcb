from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from referral.domain.model import Progress, Status, Survivor
from referral.domain.providers import DutyPhone, Provider
from refnet_platform.vocabulary import (
    BedRejectionReason,
    DeclineReason,
    FailureReason,
    Outcome,
    RiskLevel,
    ServiceType,
    TargetGroup,
)

if TYPE_CHECKING:
    from refnet_platform.caller import Caller

# --- from intake's case events -----------------------------------------------------------------


@dataclass(frozen=True)
class NeedToRoute:
    need_id: str
    service_type: ServiceType
    consented: bool
    # The consent given with the need, when consented.
    consent_id: str = ""
    sectors: frozenset[str] = frozenset()
    expires_at: datetime | None = None


@dataclass(frozen=True)
class RouteCase:
    """CaseRegistered: remember the case and route each consented need."""

    case_id: str
    province_code: str
    commune_code: str
    needs: list[NeedToRoute]
    risk_level: RiskLevel
    emergency: bool
    case_worker_id: str
    survivor: Survivor = field(default_factory=Survivor)
    child_deadline: datetime | None = None


@dataclass(frozen=True)
class AddNeed:
    """NeedAdded: route the new need if consented."""

    case_id: str
    province_code: str
    commune_code: str
    need: NeedToRoute
    risk_level: RiskLevel
    emergency: bool
    case_worker_id: str
    survivor: Survivor = field(default_factory=Survivor)


@dataclass(frozen=True)
class UpdateRisk:
    case_id: str
    risk_level: RiskLevel
    emergency: bool
    child_deadline: datetime | None = None


@dataclass(frozen=True)
class GiveConsent:
    case_id: str
    need_id: str
    service_type: ServiceType
    sectors: frozenset[str] = frozenset()
    expires_at: datetime | None = None
    consent_id: str = ""


@dataclass(frozen=True)
class WithdrawConsent:
    case_id: str
    need_id: str
    service_type: ServiceType | None
    consent_id: str = ""


@dataclass(frozen=True)
class CloseCase:
    case_id: str


@dataclass(frozen=True)
class EraseCase:
    case_id: str


@dataclass(frozen=True)
class NoteAccessibility:
    """intake's CaseAssessed: the accessibility codes she needs, for routing her next needs."""

    case_id: str
    accessibility_needs: frozenset[str]


@dataclass(frozen=True)
class ReassignCaseWorker:
    """intake's CaseReassigned: notices about the case's referrals go to the new case worker."""

    case_id: str
    case_worker_id: str


# --- from shelter's bed events -----------------------------------------------------------------
# Beds are counted per pool (shelter, target group). A bed event without its pool leaves the counts alone
# (the CapacityChanged that follows every change has them); the referral still moves.


@dataclass(frozen=True)
class RecordBedReserved:
    referral_id: str
    shelter_id: str
    free_after: int
    target_group: TargetGroup | None = None


@dataclass(frozen=True)
class RecordBedRejected:
    referral_id: str
    shelter_id: str
    # None: the event gave no reason this build knows.
    reason: BedRejectionReason | None


@dataclass(frozen=True)
class RecordHoldExpired:
    referral_id: str
    shelter_id: str
    target_group: TargetGroup | None = None


@dataclass(frozen=True)
class RecordBedReleased:
    referral_id: str
    shelter_id: str
    target_group: TargetGroup | None = None


@dataclass(frozen=True)
class RecordBedOccupied:
    referral_id: str
    shelter_id: str


@dataclass(frozen=True)
class RecordCapacity:
    """One pool's counts."""

    shelter_id: str
    province_code: str
    target_group: TargetGroup
    capacity: int
    reserved: int
    occupied: int


# --- timers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpireOverdue:
    """Expire, escalate and re-route every referral past its deadline (at most `limit` per run)."""

    now: datetime | None = None
    limit: int = 200


# --- the partner agencies' API -----------------------------------------------------------------


@dataclass(frozen=True)
class ListReferrals:
    caller: Caller
    provider_id: str = ""
    case_id: str = ""
    statuses: frozenset[Status] = frozenset()
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class ChangedReferrals:
    """The caller's referrals changed at or after `since` (after `after_id` at exactly `since`)."""

    caller: Caller
    since: datetime
    after_id: str = ""
    limit: int = 200
    open_only: bool = False


@dataclass(frozen=True)
class GetReferral:
    caller: Caller
    referral_id: str


@dataclass(frozen=True)
class AcceptReferral:
    caller: Caller
    referral_id: str
    client_request_id: str
    provider_id: str = ""


@dataclass(frozen=True)
class DeclineReferral:
    caller: Caller
    referral_id: str
    client_request_id: str
    reason: DeclineReason | None


@dataclass(frozen=True)
class StartService:
    caller: Caller
    referral_id: str
    client_request_id: str


@dataclass(frozen=True)
class ReportProgress:
    caller: Caller
    referral_id: str
    client_request_id: str
    progress: Progress | None


@dataclass(frozen=True)
class CompleteReferral:
    caller: Caller
    referral_id: str
    client_request_id: str
    outcome: Outcome | None


@dataclass(frozen=True)
class ReportFailure:
    caller: Caller
    referral_id: str
    client_request_id: str
    reason: FailureReason | None


@dataclass(frozen=True)
class GetSurvivorContact:
    caller: Caller
    referral_id: str


# --- supervisors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListEscalations:
    caller: Caller
    province_code: str
    unresolved_only: bool = False
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class AssignProvider:
    caller: Caller
    referral_id: str
    provider_id: str
    client_request_id: str


# --- the directory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListProviders:
    province_code: str
    service_type: ServiceType | None


@dataclass(frozen=True)
class GetProvider:
    provider_id: str


@dataclass(frozen=True)
class RankProviders:
    province_code: str
    commune_code: str
    service_type: ServiceType | None
    survivor: Survivor
    risk_level: RiskLevel
    emergency: bool


@dataclass(frozen=True)
class AnswerBySms:
    """The SMS door (caller.subject_id "notifications"): a text from a provider's duty phone. reference empty:
    only who the phone belongs to."""

    caller: Caller
    sender_phone: str
    reference: str
    accept: bool
    reason: DeclineReason | None
    client_request_id: str


@dataclass(frozen=True)
class LoadDirectory:
    providers: list[Provider]
    # False: add only providers not yet known (the api's start-up seed); True: an import, which
    # replaces what is known of each provider in the file.
    update_existing: bool = False
    duty_phones: list[DutyPhone] = field(default_factory=list)


@dataclass(frozen=True)
class ExportDirectory:
    """Every provider, with the shelters' live bed figures."""

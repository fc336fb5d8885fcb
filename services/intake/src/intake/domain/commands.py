from __future__ import annotations

from dataclasses import dataclass

from intake.domain.model import Contact, Need, Survivor
from refnet_platform.vocabulary import CaseType, RiskLevel


@dataclass(frozen=True)
class RegisterCase:
    client_request_id: str
    province_code: str
    commune_code: str
    case_types: list[CaseType]
    survivor: Survivor
    needs: list[Need]
    risk_level: RiskLevel
    immediate_danger: bool
    case_worker_id: str
    contact: Contact
    narrative: str


@dataclass(frozen=True)
class GetCase:
    case_id: str


@dataclass(frozen=True)
class RecordReferral:
    """What referral arranged for one need, learned from its events."""

    case_id: str
    need_id: str
    referral_id: str
    status: str
    provider_id: str

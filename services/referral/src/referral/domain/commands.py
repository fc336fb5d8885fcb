from __future__ import annotations

from dataclasses import dataclass

from referral.domain.model import Provider
from refnet_platform.vocabulary import RiskLevel, ServiceType


@dataclass(frozen=True)
class NeedToRoute:
    need_id: str
    service_type: ServiceType
    consented: bool


@dataclass(frozen=True)
class RouteCase:
    case_id: str
    province_code: str
    commune_code: str
    needs: list[NeedToRoute]
    risk_level: RiskLevel
    emergency: bool
    case_worker_id: str


@dataclass(frozen=True)
class RecordBedDecision:
    referral_id: str
    reserved: bool
    reason: str = ""


@dataclass(frozen=True)
class AcceptReferral:
    referral_id: str
    provider_id: str


@dataclass(frozen=True)
class GetReferral:
    referral_id: str


@dataclass(frozen=True)
class ListReferrals:
    provider_id: str
    case_id: str = ""


@dataclass(frozen=True)
class ListProviders:
    province_code: str
    service_type: ServiceType | None


@dataclass(frozen=True)
class LoadDirectory:
    providers: list[Provider]

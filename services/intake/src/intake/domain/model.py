"""Cases as a hotline operator registers them. No I/O, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from refnet_platform.errors import InvalidArgument
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex

MAX_AGE = 120
ADULT_AGE = 18


@dataclass(frozen=True)
class Survivor:
    is_child: bool
    age: int | None
    sex: Sex | None

    @property
    def age_band(self) -> str:
        if self.age is None:
            return "child-unknown" if self.is_child else "unknown"
        for upper, band in ((5, "0-5"), (11, "6-11"), (15, "12-15"), (17, "16-17"), (59, "18-59")):
            if self.age <= upper:
                return band
        return "60+"


@dataclass(frozen=True)
class Contact:
    """Personal data: only ever stored encrypted, never logged or published."""

    name: str = ""
    phone: str = ""
    address: str = ""
    safe_contact_note: str = ""


@dataclass
class Need:
    need_id: str
    service_type: ServiceType
    consented: bool
    referral_id: str = ""
    referral_status: str = ""
    provider_id: str = ""


@dataclass
class Case:
    case_id: str
    client_request_id: str
    province_code: str
    commune_code: str
    case_types: list[CaseType]
    survivor: Survivor
    needs: list[Need]
    risk_level: RiskLevel
    immediate_danger: bool
    case_worker_id: str
    registered_at: datetime
    events: list[object] = field(default_factory=list, compare=False, repr=False)

    @property
    def emergency(self) -> bool:
        return self.immediate_danger or self.risk_level is RiskLevel.HIGH

    def need(self, need_id: str) -> Need | None:
        return next((n for n in self.needs if n.need_id == need_id), None)


def validate_survivor(survivor: Survivor) -> None:
    if survivor.age is not None:
        if not 0 <= survivor.age <= MAX_AGE:
            raise InvalidArgument("survivor.age", f"must be between 0 and {MAX_AGE}")
        if survivor.is_child and survivor.age >= ADULT_AGE:
            raise InvalidArgument("survivor.age", f"a child is under {ADULT_AGE}")


def validate_case(case: Case) -> None:
    if not case.client_request_id:
        raise InvalidArgument("client_request_id", "is required so a repeated request creates nothing new")
    if not case.province_code:
        raise InvalidArgument("province_code", "is required")
    if not case.case_types:
        raise InvalidArgument("case_types", "at least one case type is required")
    if case.risk_level is None:
        raise InvalidArgument("risk_level", "is required")
    validate_survivor(case.survivor)
    seen: set[ServiceType] = set()
    for index, need in enumerate(case.needs):
        if need.service_type is None:
            raise InvalidArgument(f"needs[{index}].service_type", "is required")
        if need.service_type in seen:
            raise InvalidArgument(f"needs[{index}].service_type", f"{need.service_type} is listed twice")
        seen.add(need.service_type)

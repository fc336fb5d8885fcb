"""What happened, for the outbox. `at` is when it happened: consent validity is judged then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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

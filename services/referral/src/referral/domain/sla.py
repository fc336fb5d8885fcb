"""Service-level deadlines: how long a provider has to accept a referral, then to start the service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from referral.domain.model import Case
from refnet_platform.vocabulary import RiskLevel


@dataclass(frozen=True)
class Window:
    accept: timedelta
    start: timedelta


@dataclass(frozen=True)
class SlaPolicy:
    emergency: Window
    high: Window
    medium: Window
    low: Window

    def window(self, emergency: bool, risk_level: RiskLevel) -> Window:
        if emergency:
            return self.emergency
        return {RiskLevel.HIGH: self.high, RiskLevel.MEDIUM: self.medium, RiskLevel.LOW: self.low}[risk_level]

    def deadlines(self, case: Case, now: datetime) -> tuple[datetime, datetime]:
        """(accept_by, start_by) for a referral made now. A child at serious risk caps both at the
        12-hour emergency-measures deadline intake started (Decree 56/2017)."""
        window = self.window(case.emergency, case.risk_level)
        accept_by, start_by = now + window.accept, now + window.start
        if case.child_deadline is not None:
            accept_by, start_by = min(accept_by, case.child_deadline), min(start_by, case.child_deadline)
        return accept_by, max(start_by, accept_by)

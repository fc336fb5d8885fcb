"""The indicator report the hotlines publish, per province (or nationally) and period, counted from events.

Rules:
- each survivor once: case-based figures count distinct case ids, across every agency and re-routing
  (a case referred to two police stations after a decline is one survivor referred to the police);
- only reportable cases: a case whose registration said it may not be reported is left out of every
  figure (calls are not cases and are always counted);
- periods are calendar days in Vietnam time, both ends included.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from ops.domain.model import SECTOR_OF
from refnet_geo import VIETNAM_TZ


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("the period ends before it starts")

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, VIETNAM_TZ)

    @property
    def end_before(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, VIETNAM_TZ)

    def __contains__(self, moment: datetime | None) -> bool:
        return moment is not None and self.start_at <= moment < self.end_before


@dataclass(frozen=True)
class CaseFact:
    case_id: str
    province_code: str
    registered_at: datetime
    case_types: tuple[str, ...]
    is_child: bool
    reportable: bool = True
    emergency_at: datetime | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class CallFact:
    call_id: str
    province_code: str
    at: datetime
    topic: str


@dataclass(frozen=True)
class ReferralFact:
    referral_id: str
    case_id: str
    province_code: str
    sector: str
    requested_at: datetime
    accepted_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class StayFact:
    """A survivor given a shelter bed: the bed was occupied."""

    case_id: str
    province_code: str
    occupied_at: datetime


@dataclass(frozen=True)
class SectorCounts:
    made: int = 0
    accepted: int = 0
    completed: int = 0


@dataclass
class IndicatorReport:
    province_code: str  # "" for the whole country
    period: Period
    calls_by_topic: dict[str, int] = field(default_factory=dict)
    cases_by_type: dict[str, int] = field(default_factory=dict)
    cases: int = 0
    children_under_case_management: int = 0
    referrals_by_sector: dict[str, SectorCounts] = field(default_factory=dict)
    emergency_interventions: int = 0
    people_sheltered: int = 0
    median_minutes_to_acceptance: float | None = None
    excluded_cases: int = 0  # cases left out because reporting was not allowed

    @property
    def calls(self) -> int:
        return sum(self.calls_by_topic.values())

    def rows(self) -> list[tuple[str, str, str]]:
        """(indicator, breakdown, value): the CSV's body, in the order the hotlines publish."""
        rows: list[tuple[str, str, str]] = [("calls", "total", str(self.calls))]
        rows += [("calls", topic, str(n)) for topic, n in sorted(self.calls_by_topic.items())]
        rows.append(("cases", "total", str(self.cases)))
        rows += [("cases", case_type, str(n)) for case_type, n in sorted(self.cases_by_type.items())]
        rows.append(("children_under_case_management", "", str(self.children_under_case_management)))
        for sector in sorted(self.referrals_by_sector):
            counts = self.referrals_by_sector[sector]
            rows += [("referrals_made", sector, str(counts.made)), ("referrals_accepted", sector, str(counts.accepted)),
                     ("referrals_completed", sector, str(counts.completed))]
        rows.append(("emergency_interventions", "", str(self.emergency_interventions)))
        rows.append(("people_sheltered", "", str(self.people_sheltered)))
        median = self.median_minutes_to_acceptance
        rows.append(("median_minutes_to_acceptance", "", "" if median is None else f"{median:.1f}"))
        return rows


def build_report(province_code: str, period: Period, cases: list[CaseFact], calls: list[CallFact],
                 referrals: list[ReferralFact], stays: list[StayFact]) -> IndicatorReport:
    """Facts may cover more than the province and period: this picks what counts."""

    def here(code: str) -> bool:
        return not province_code or code == province_code

    report = IndicatorReport(province_code, period)
    # A case ops never saw registered (ops started later) counts: every case is reportable unless it said not.
    excluded = {c.case_id for c in cases if not c.reportable}
    report.excluded_cases = len({c.case_id for c in cases if not c.reportable and here(c.province_code)
                                 and c.registered_at in period})
    report.calls_by_topic = dict(Counter(c.topic for c in calls if here(c.province_code) and c.at in period))

    registered = {c.case_id: c for c in cases if c.reportable and here(c.province_code) and c.registered_at in period}
    report.cases = len(registered)
    report.cases_by_type = dict(Counter(t for c in registered.values() for t in set(c.case_types)))
    report.children_under_case_management = len({
        c.case_id for c in cases
        if c.reportable and c.is_child and here(c.province_code) and c.registered_at < period.end_before
        and (c.closed_at is None or c.closed_at >= period.start_at)})
    report.emergency_interventions = len({c.case_id for c in cases if c.reportable and here(c.province_code)
                                          and c.emergency_at in period})

    counted = [r for r in referrals if r.case_id not in excluded and here(r.province_code)]
    made: dict[str, set[str]] = {s: set() for s in SECTOR_OF.values()}
    accepted: dict[str, set[str]] = {s: set() for s in SECTOR_OF.values()}
    completed: dict[str, set[str]] = {s: set() for s in SECTOR_OF.values()}
    waits = []
    for r in counted:
        if r.requested_at in period:
            made.setdefault(r.sector, set()).add(r.case_id)
        if r.accepted_at in period:
            accepted.setdefault(r.sector, set()).add(r.case_id)
            waits.append((r.accepted_at - r.requested_at).total_seconds() / 60)  # type: ignore[operator]
        if r.completed_at in period:
            completed.setdefault(r.sector, set()).add(r.case_id)
    report.referrals_by_sector = {
        sector: SectorCounts(len(made.get(sector, ())), len(accepted.get(sector, ())), len(completed.get(sector, ())))
        for sector in sorted({*made, *accepted, *completed})}
    report.median_minutes_to_acceptance = statistics.median(waits) if waits else None
    report.people_sheltered = len({s.case_id for s in stays if s.case_id not in excluded and here(s.province_code)
                                   and s.occupied_at in period})
    return report

"""The indicator report the hotlines publish, per handling line or per place, per period, counted from events.

Rules:
- whose figure: a report is asked for a *handling line* (the hotline that took the call or case: the national
  111 line, or a province's own line, named by the province's code) or a *place* (the province where it
  happened). A hotline's report is by handling line unless the place is asked for. The whole country is the same
  either way. A referral or a stay belongs to its case's line and place;
- each survivor once: a case referred twice to the same sector (a decline, then re-routing) counts once for
  that sector (its first referral in the period stands for the pair); people sheltered are distinct cases;
- only reportable cases: a case whose registration said it may not be reported is left out of every figure
  (its referrals and stays too), and how many were left out is shown; calls are not cases and always count;
- every breakdown sums to its total: what is not known is a row of its own (`unknown`); a case's type is its
  main (first recorded) type;
- every figure knows the ids it counts (for the operations team: ids only, never personal data);
- periods are calendar days in Vietnam time, both ends included.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from refnet_geo import VIETNAM_TZ

UNKNOWN = "unknown"
NATIONAL_LINE = "111"
BY_LINE, BY_PLACE = "line", "place"
# The public numbers of the hotlines refnet serves, and the line code each reports under (a province's code, or
# 111). `refnet report --line 18001769` and the console accept either.
HOTLINES: dict[str, str] = {"18001769": "22", "1800577756": "42", "18008065": "92", "111": NATIONAL_LINE}
# What a case's survivor is broken down by, in the order the reports show it.
PERSON_DIMENSIONS = ("sex", "age_band", "child_adult", "disability")
# Referral statuses that end a referral without the service (cancelled is a withdrawal, not a failure).
FAILED_STATUSES = frozenset({"rejected", "expired", "escalated", "failed"})


def line_code(line: str) -> str:
    """A line as asked for ("18001769", "1800.577.756", "111", "22") -> the code it reports under."""
    digits = "".join(ch for ch in line if ch.isdigit())
    return HOTLINES.get(digits, digits)


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
class Scope:
    """Whose figures: by handling line or by place; code "" is the whole country."""

    by: str = BY_LINE
    code: str = ""

    def __post_init__(self) -> None:
        if self.by not in (BY_LINE, BY_PLACE):
            raise ValueError(f"a report is by {BY_LINE} or by {BY_PLACE}, not {self.by!r}")
        if self.by == BY_PLACE and self.code == NATIONAL_LINE:
            raise ValueError("111 is a line, not a place: ask for it by line")

    @property
    def province_code(self) -> str:
        """The province whose remit the report is in ("" for the country or the national line)."""
        return "" if self.code == NATIONAL_LINE else self.code


@dataclass(frozen=True)
class Person:
    """What a case says of the survivor, as codes; anything not recorded is `unknown`."""

    sex: str = UNKNOWN
    age_band: str = UNKNOWN
    is_child: bool | None = None
    disability: str = UNKNOWN

    def value(self, dimension: str) -> str:
        if dimension == "child_adult":
            return UNKNOWN if self.is_child is None else ("child" if self.is_child else "adult")
        return str(getattr(self, dimension)) or UNKNOWN


@dataclass(frozen=True)
class CaseFact:
    case_id: str
    province_code: str  # where it happened
    registered_at: datetime
    case_types: tuple[str, ...]
    is_child: bool
    reportable: bool = True
    emergency_at: datetime | None = None
    closed_at: datetime | None = None
    handling_line: str = ""  # "" when ops never learnt it: the province where it happened
    sex: str = UNKNOWN
    age_band: str = UNKNOWN
    disability: str = UNKNOWN
    imported: bool = False

    @property
    def line(self) -> str:
        return self.handling_line or self.province_code

    @property
    def person(self) -> Person:
        return Person(self.sex or UNKNOWN, self.age_band or UNKNOWN, self.is_child, self.disability or UNKNOWN)


@dataclass(frozen=True)
class CallFact:
    call_id: str
    province_code: str  # the line's province (for 111: the caller's)
    at: datetime
    topic: str
    handling_line: str = ""
    channel: str = UNKNOWN
    outcome: str = UNKNOWN
    imported: bool = False


@dataclass(frozen=True)
class ReferralFact:
    referral_id: str
    case_id: str
    province_code: str
    sector: str
    requested_at: datetime
    accepted_at: datetime | None = None
    completed_at: datetime | None = None
    provider_type: str = UNKNOWN
    started_at: datetime | None = None
    failed_at: datetime | None = None


@dataclass(frozen=True)
class StayFact:
    """A survivor given a shelter bed: the bed was occupied (and, once she left, released)."""

    case_id: str
    province_code: str
    occupied_at: datetime
    shelter_id: str = UNKNOWN
    released_at: datetime | None = None
    referral_id: str = ""


@dataclass
class Figure:
    """One indicator: what it counts (id -> weight: 1 for a count, nights for bed-nights) and, per dimension,
    which of those ids fall under each value. Every dimension's values partition the ids."""

    group: str
    indicator: str
    counted: dict[str, float] = field(default_factory=dict)
    breakdowns: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.counted.values())

    def add(self, counted_id: str, weight: float, values: dict[str, str]) -> None:
        self.counted[counted_id] = weight
        for dimension, value in values.items():
            self.breakdowns.setdefault(dimension, {}).setdefault(value or UNKNOWN, {})[counted_id] = weight

    def ids(self, dimension: str = "", value: str = "") -> list[str]:
        if not dimension or dimension == "total":
            return sorted(self.counted)
        return sorted(self.breakdowns.get(dimension, {}).get(value, {}))


@dataclass(frozen=True)
class Timing:
    """Minutes from a referral's request to a milestone: median and 90th percentile, over the referrals listed."""

    indicator: str
    minutes: dict[str, float]  # referral id -> minutes

    @property
    def median(self) -> float | None:
        return statistics.median(self.minutes.values()) if self.minutes else None

    @property
    def p90(self) -> float | None:
        if not self.minutes:
            return None
        ordered = sorted(self.minutes.values())
        return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]  # nearest rank


# The indicator groups, in the order the hotlines publish them (the XLSX has a sheet per group).
GROUPS = ("calls", "cases", "referrals", "shelter", "timing")


@dataclass
class IndicatorReport:
    scope: Scope
    period: Period
    figures: dict[str, Figure] = field(default_factory=dict)
    timings: dict[str, Timing] = field(default_factory=dict)
    excluded_case_ids: list[str] = field(default_factory=list)  # left out: reporting was not allowed

    @property
    def province_code(self) -> str:
        return self.scope.code

    @property
    def excluded_cases(self) -> int:
        return len(self.excluded_case_ids)

    def value(self, indicator: str) -> float:
        figure = self.figures.get(indicator)
        return figure.total if figure else 0

    @property
    def calls(self) -> int:
        return int(self.value("calls"))

    @property
    def cases(self) -> int:
        return int(self.value("cases"))

    @property
    def emergency_interventions(self) -> int:
        return int(self.value("emergency_interventions"))

    @property
    def children_under_case_management(self) -> int:
        return int(self.value("children_under_case_management"))

    @property
    def people_sheltered(self) -> int:
        return int(self.value("people_sheltered"))

    @property
    def median_minutes_to_acceptance(self) -> float | None:
        timing = self.timings.get("minutes_to_acceptance")
        return timing.median if timing else None

    def breakdown(self, indicator: str, dimension: str) -> dict[str, float]:
        figure = self.figures.get(indicator)
        if figure is None:
            return {}
        return {value: sum(ids.values()) for value, ids in sorted(figure.breakdowns.get(dimension, {}).items())}

    def ids(self, indicator: str, dimension: str = "", value: str = "") -> list[str]:
        """The ids a figure counts (case, call or referral ids; for bed-nights, the stays' referral ids)."""
        if indicator in ("excluded_cases", "excluded_no_reporting_consent"):
            return sorted(self.excluded_case_ids)
        if indicator in self.timings:
            return sorted(self.timings[indicator].minutes)
        figure = self.figures.get(indicator)
        return figure.ids(dimension, value) if figure else []

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(group, indicator, dimension, value, figure): the CSV's body. Each figure's total first ("total",
        ""), then each dimension's rows, which sum to it."""
        rows: list[tuple[str, str, str, str, str]] = []
        for figure in self.figures.values():
            rows.append((figure.group, figure.indicator, "total", "", _number(figure.total)))
            for dimension, values in figure.breakdowns.items():
                rows += [(figure.group, figure.indicator, dimension, value, _number(sum(ids.values())))
                         for value, ids in sorted(values.items())]
        for timing in self.timings.values():
            rows += [("timing", timing.indicator, "median", "", _minutes(timing.median)),
                     ("timing", timing.indicator, "p90", "", _minutes(timing.p90)),
                     ("timing", timing.indicator, "referrals", "", str(len(timing.minutes)))]
        rows.append(("cases", "excluded_no_reporting_consent", "total", "", str(self.excluded_cases)))
        return rows


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _minutes(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _nights(occupied_at: datetime, released_at: datetime | None, period: Period, now: datetime) -> int:
    """Nights of a stay inside the period: Vietnam calendar days from arrival to leaving (or the period's end)."""
    start = max(occupied_at, period.start_at).astimezone(VIETNAM_TZ).date()
    end = min(released_at or now, period.end_before).astimezone(VIETNAM_TZ).date()
    return max((end - start).days, 0)


def build_report(scope: Scope, period: Period, cases: Iterable[CaseFact], calls: Iterable[CallFact],
                 referrals: Iterable[ReferralFact], stays: Iterable[StayFact],
                 now: datetime | None = None) -> IndicatorReport:
    """Facts may cover more than the scope and period: this picks what counts."""
    now = now or datetime.now(VIETNAM_TZ)
    by_id = {c.case_id: c for c in cases}

    def in_scope(line: str, place: str) -> bool:
        return not scope.code or (line if scope.by == BY_LINE else place) == scope.code

    def case_in_scope(case: CaseFact) -> bool:
        return in_scope(case.line, case.province_code)

    def person_of(case_id: str) -> dict[str, str]:
        case = by_id.get(case_id)
        person = case.person if case else Person()
        return {d: person.value(d) for d in PERSON_DIMENSIONS}

    def related_in_scope(case_id: str, province_code: str) -> bool:
        """A referral's or stay's: its case's line and place (the fact's own province when ops never saw the case)."""
        case = by_id.get(case_id)
        return case_in_scope(case) if case else in_scope(province_code, province_code)

    report = IndicatorReport(scope, period)
    excluded = {c.case_id for c in by_id.values() if not c.reportable}
    report.excluded_case_ids = sorted(c.case_id for c in by_id.values()
                                      if not c.reportable and case_in_scope(c) and c.registered_at in period)
    figures = report.figures

    def figure(group: str, indicator: str) -> Figure:
        return figures.setdefault(indicator, Figure(group, indicator))

    calls_figure = figure("calls", "calls")
    for call in calls:
        if call.at in period and in_scope(call.handling_line or call.province_code, call.province_code):
            calls_figure.add(call.call_id, 1, {"topic": call.topic, "channel": call.channel, "outcome": call.outcome})

    counted = [c for c in by_id.values() if c.reportable and case_in_scope(c)]
    cases_figure = figure("cases", "cases")
    emergencies = figure("cases", "emergency_interventions")
    children = figure("cases", "children_under_case_management")
    for case in counted:
        person = person_of(case.case_id)
        if case.registered_at in period:
            main_type = case.case_types[0] if case.case_types else UNKNOWN
            cases_figure.add(case.case_id, 1, {"case_type": main_type, **person})
        if case.emergency_at in period:
            emergencies.add(case.case_id, 1, person)
        if case.is_child and case.registered_at < period.end_before and (
                case.closed_at is None or case.closed_at >= period.start_at):
            children.add(case.case_id, 1, person)

    counted_referrals = sorted((r for r in referrals if r.case_id not in excluded
                                and related_in_scope(r.case_id, r.province_code)),
                               key=lambda r: (r.requested_at, r.referral_id))
    completed_pairs = {(r.case_id, r.sector) for r in counted_referrals if r.completed_at is not None}
    stages: tuple[tuple[str, Callable[[ReferralFact], datetime | None]], ...] = (
        ("referrals_made", lambda r: r.requested_at), ("referrals_accepted", lambda r: r.accepted_at),
        ("referrals_completed", lambda r: r.completed_at),
        ("referrals_failed", lambda r: r.failed_at if (r.case_id, r.sector) not in completed_pairs else None))
    for indicator, moment in stages:
        stage = figure("referrals", indicator)
        pairs: set[tuple[str, str]] = set()
        for r in counted_referrals:
            if moment(r) in period and (r.case_id, r.sector) not in pairs:
                pairs.add((r.case_id, r.sector))
                stage.add(r.referral_id, 1, {"sector": r.sector, "provider_type": r.provider_type or UNKNOWN,
                                             **person_of(r.case_id)})
    to_accept = {r.referral_id: (r.accepted_at - r.requested_at).total_seconds() / 60
                 for r in counted_referrals if r.accepted_at is not None and r.accepted_at in period}
    to_start = {r.referral_id: (r.started_at - r.requested_at).total_seconds() / 60
                for r in counted_referrals if r.started_at is not None and r.started_at in period}
    report.timings = {"minutes_to_acceptance": Timing("minutes_to_acceptance", to_accept),
                      "minutes_to_service_start": Timing("minutes_to_service_start", to_start)}

    sheltered = figure("shelter", "people_sheltered")
    nights = figure("shelter", "bed_nights")
    for stay in sorted(stays, key=lambda s: (s.occupied_at, s.referral_id)):
        if stay.case_id in excluded or not related_in_scope(stay.case_id, stay.province_code):
            continue
        overlaps = stay.occupied_at < period.end_before and (stay.released_at is None
                                                               or stay.released_at >= period.start_at)
        if stay.occupied_at in period and stay.case_id not in sheltered.counted:
            sheltered.add(stay.case_id, 1, {"shelter": stay.shelter_id, **person_of(stay.case_id)})
        if overlaps:
            stay_nights = _nights(stay.occupied_at, stay.released_at, period, now)
            if stay_nights:
                nights.add(stay.referral_id or stay.case_id, stay_nights, {"shelter": stay.shelter_id})
    return report
